"""Study parameters: one YAML per study configuration, validated into one pydantic model with a section per stage.

Every knob of the study lives here. Unknown keys, wrong types and impossible values are refused with one line that
names the file and the key, e.g. ``params/testbed.yaml: sampling.target_per_bin: Input should be greater than 0``.
Command-line overrides (``-p sampling.target_per_bin=50``) are applied before validation, so they are checked too,
and an error in a value (or a section) an override set names the override.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from ..errors import ProvenanceError
from .base import Section
from .binning import Binning
from .contrast import Contrast
from .gradients import Gradients
from .sampling import Executor, LocalExecutor, RayExecutor, Sampling, SlurmExecutor
from .sources import (
    Benchmarks,
    CentroidClassifierSpec,
    ClassifierSpec,
    HubModel,
    Labels,
    LocalModel,
    Models,
    ModelSource,
    PackagedModel,
    SequenceClassifierSpec,
    WorldModel,
)
from .unlearning import Unlearning
from .validation import Validation
from .world import PaperWorld, RealMiniWorld, ReleasedWorld, StandinClassifier, TestbedWorld, World


# --------------------------------------------------------------------------------------------------- study
class StudyParams(Section):
    seed: int = 0
    threads: int = Field(default=2, gt=0, description="torch intra-op threads (set deliberately on small CPUs)")
    world: World
    model: Models | None = None  # required unless the world is the released matrix (see below)
    benchmarks: Benchmarks | None = None
    labels: Labels = Labels()
    stages: list[str] | None = Field(
        default=None,
        min_length=1,
        description=(
            "the stage notebooks this study runs (ids like 03_binning); null = all of them. A world that provides an "
            "earlier stage's output itself (the paper's released bin matrix) lists only the stages after it"
        ),
    )
    sampling: Sampling | None = None  # required when the study runs 01_sampling
    gradients: Gradients = Gradients()
    binning: Binning = Binning()
    contrast: Contrast = Contrast()
    unlearning: Unlearning = Unlearning()

    @model_validator(mode="after")
    def _sections_the_study_needs(self):
        """A world that builds a corpus, benchmarks and models needs ``model`` and ``benchmarks``; a stage the
        study runs needs its section; the released matrix replaces stages 01-03's computation, so its study lists
        the stages it runs."""
        released = self.world.kind == "released"
        if released and (self.stages is None or any(s[:2] < "03" for s in self.stages)):
            raise ValueError(
                "a released world has no corpus or model: list the stages after it, stages: [03_binning, 04_contrast]"
            )
        missing = [] if released else [name for name in ("model", "benchmarks") if getattr(self, name) is None]
        runs = {s.split("_", 1)[-1] for s in self.stages} if self.stages else set(STAGE_SECTIONS_WITHOUT_DEFAULTS)
        missing += [name for name in STAGE_SECTIONS_WITHOUT_DEFAULTS if name in runs and getattr(self, name) is None]
        if missing:
            raise ValueError(f"missing section(s) {', '.join(missing)}: the study's world and stages need them")
        return self

    @model_validator(mode="after")
    def _one_evaluation(self):
        """Stage 02's correctness labels and stage 05's accuracies are one evaluation: the same shots."""
        if self.gradients.query.shots != self.unlearning.evaluation.shots:
            raise ValueError(
                f"gradients.query.shots {self.gradients.query.shots} differ from "
                f"unlearning.evaluation.shots {self.unlearning.evaluation.shots}: give both the same"
            )
        return self

    def section(self, name: str, fingerprint: bool = False) -> dict[str, Any]:
        """The resolved contents of one section (empty for a stage that has no params), JSON-ready; ``fingerprint``:
        less its keys that decide only where the work runs (``Section.NOT_IN_FINGERPRINT``)."""
        value = getattr(self, name, None)
        if isinstance(value, Section):
            return value.model_dump(mode="json", exclude=set(value.NOT_IN_FINGERPRINT) if fingerprint else None)
        return {} if value is None else {name: value}


STAGE_SECTIONS_WITHOUT_DEFAULTS = ("sampling",)
"""Stage sections a study must write out (no sensible default, e.g. documents per bin) when it runs the stage."""

SHARED_SECTIONS = ("seed", "threads", "world", "model", "benchmarks", "labels")
"""Sections every stage depends on; a stage's own section is the one named like the stage (01_sampling -> sampling)."""


def _format_error(error: dict, source: str, overrides: list[str]) -> str:
    """One line per error: where the value came from (the file, or the ``-p`` override that set it or its
    section), the key, what is wrong, and the value when it is one (a cross-field error's input is a section:
    printing it would bury the message)."""
    path = _key_path(error["loc"])
    key = ".".join(path) or "<top level>"
    section = path[:-1] if error["type"] == "missing" else path  # a key missing from a section an override made
    blamed = [text for text in overrides if _on_path(section, parse_override(text)[0])]
    where = f"{source} with -p {blamed[-1]}" if blamed else source
    if error["type"] == "extra_forbidden":
        return f"{where}: {key}: unknown key (remove it or check its spelling)"
    value = error.get("input")
    got = "" if isinstance(value, (dict, list, BaseModel)) else f" (got {value!r})"
    return f"{where}: {key}: {error['msg']}{got}"


def _on_path(a: list[str], b: list[str]) -> bool:
    """One key path leads to the other (a section and a key inside it, or the same key)."""
    return a[: len(b)] == b[: len(a)]


def _key_path(loc: tuple) -> list[str]:
    """pydantic puts the chosen member of a tagged union into the location ("world.testbed.seed"); the user wrote
    "world.seed", so drop the tag that follows a union-valued key."""
    parts = [str(part) for part in loc]
    return [p for i, p in enumerate(parts) if not (i > 0 and parts[i - 1] in UNION_KEYS and p in UNION_TAGS)]


UNION_KEYS = {"world", "base", "query", "model", "topic", "format", "executor"}
UNION_TAGS = {
    "testbed",
    "real-mini",
    "paper",
    "released",
    "world",
    "hub",
    "local",
    "packaged",
    "sequence_classifier",
    "centroid",
    "slurm",
    "ray",
}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"sampling.target_per_bin=50"`` -> (["sampling", "target_per_bin"], 50); the value is read as YAML."""
    if "=" not in text:
        raise ProvenanceError(f"override {text!r} is not of the form key.path=value", "write e.g. -p seed=3")
    key, value = text.split("=", 1)
    try:
        return key.strip().split("."), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        problem = str(getattr(exc, "problem", None) or exc).strip().splitlines()[0]
        raise ProvenanceError(
            f"override {text!r}: the value is not valid YAML ({problem})",
            "quote it for the shell and close every bracket and quote, e.g. -p 'x=[1, 2]'",
        ) from None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Set each ``key.path=value``; a section that is null or missing (``labels.topic: null``) becomes one."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for depth, part in enumerate(path[:-1]):
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ProvenanceError(
                    f"override {text!r}: {'.'.join(path[: depth + 1])} is a value, not a section",
                    f"set it whole: -p {'.'.join(path[: depth + 1])}=...",
                )
        node[path[-1]] = value
    return raw


def validate(raw: dict, source: str = "<params>", overrides: list[str] = (), model: type[Section] = StudyParams):
    """``raw`` as ``model`` (a study by default; the validation file has its own model), one line per error."""
    try:
        validated = model.model_validate(raw)
    except ValidationError as exc:
        lines = [_format_error(e, source, list(overrides)) for e in exc.errors()]
        raise ProvenanceError("; ".join(lines), "see params/*.yaml and provenance_lib/params/") from None
    errors = boolean_numbers(validated, raw)
    if errors:
        lines = [_format_error(e, source, list(overrides)) for e in errors]
        raise ProvenanceError("; ".join(lines), "write the number") from None
    return validated


def boolean_numbers(section: Section, raw: dict, loc: tuple = ()) -> list[dict]:
    """Where YAML's true/false stands for a number: pydantic reads ``target_per_bin: true`` as 1 (a bool is an int
    in Python), so the raw values are walked beside the validated sections."""
    errors = []
    for name, value in raw.items():
        field = type(section).model_fields.get(name)
        if field is None:
            continue
        if isinstance(value, bool):
            accepted = _plain_types(field.annotation)
            if bool not in accepted and accepted & {int, float}:
                errors.append(
                    {
                        "loc": (*loc, name),
                        "msg": "a boolean (true/false) is not a number",
                        "input": value,
                        "type": "bool_number",
                    }
                )
        elif isinstance(value, dict) and isinstance(getattr(section, name), Section):
            errors += boolean_numbers(getattr(section, name), value, (*loc, name))
    return errors


def _plain_types(annotation: Any) -> set:
    """The classes an annotation accepts at its top level (through unions, ``X | None`` and ``Annotated``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_plain_types(arg) for arg in typing.get_args(annotation)))
    if origin is typing.Annotated:
        return _plain_types(typing.get_args(annotation)[0])
    return {annotation} if isinstance(annotation, type) else set()


def load(path: str | Path, overrides: list[str] = (), model: type[Section] = StudyParams):
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(f"params file {path} does not exist", _close_files(path))
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProvenanceError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ProvenanceError(f"{path}: top level must be a mapping of sections")
    return validate(apply_overrides(raw, list(overrides)), str(path), list(overrides), model)


def _close_files(path: Path) -> str:
    """The fix for a params path that is not there: the file it was probably meant to be, else where they are."""
    folder = path.parent if path.parent.is_dir() else Path("params")
    names = sorted(p.name for p in folder.glob("*.y*ml")) if folder.is_dir() else []
    close = difflib.get_close_matches(path.stem, [Path(name).stem for name in names], n=1, cutoff=0.6)
    if close:
        return f"did you mean {folder / next(n for n in names if Path(n).stem == close[0])}?"
    return f"pass one of {folder}/*.yaml ({', '.join(names)})" if names else "pass one of params/*.yaml"


def dump(params: StudyParams) -> str:
    """Resolved params as YAML: written into every run so it can be replayed exactly."""
    return yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False)

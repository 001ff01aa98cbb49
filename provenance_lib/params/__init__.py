"""Study parameters: one YAML per study configuration, validated into one pydantic model with a section per stage.

Every knob of the study lives here. Unknown keys, wrong types and impossible values are refused with one line that
names the file and the key, e.g. ``params/testbed.yaml: sampling.target_per_bin: Input should be greater than 0``.
Command-line overrides (``-p sampling.target_per_bin=50``) are applied before validation, so they are checked too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from ..errors import ProvenanceError
from .base import Section
from .sampling import Sampling
from .sources import (Benchmarks, CentroidClassifierSpec, ClassifierSpec, HubModel, Labels, LocalModel, Models,
                      ModelSource, PackagedModel, SequenceClassifierSpec, WorldModel)
from .unlearning import Unlearning
from .world import PaperWorld, RealMiniWorld, StandinClassifier, TestbedWorld, World


# --------------------------------------------------------------------------------------------------- study
class StudyParams(Section):
    seed: int = 0
    threads: int = Field(default=2, gt=0, description="torch intra-op threads (set deliberately on small CPUs)")
    world: World
    model: Models
    benchmarks: Benchmarks
    labels: Labels = Labels()
    stages: list[str] | None = Field(default=None, min_length=1, description=(
        "the stage notebooks this study runs (ids like 03_binning); null = all of them. A world that provides an "
        "earlier stage's output itself (the paper's released bin matrix) lists only the stages after it"))
    sampling: Sampling
    unlearning: Unlearning = Unlearning()

    def section(self, name: str) -> dict[str, Any]:
        """The resolved contents of one section (empty for a stage that has no params), JSON-ready."""
        value = getattr(self, name, None)
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return {} if value is None else {name: value}


SHARED_SECTIONS = ("seed", "threads", "world", "model", "benchmarks", "labels")
"""Sections every stage depends on; a stage's own section is the one named like the stage (01_sampling -> sampling)."""


def _format_error(source: str, error: dict) -> str:
    key = ".".join(_key_path(error["loc"]))
    if error["type"] == "extra_forbidden":
        return f"{source}: {key}: unknown key (remove it or check its spelling)"
    return f"{source}: {key or '<top level>'}: {error['msg']} (got {error.get('input')!r})"


def _key_path(loc: tuple) -> list[str]:
    """pydantic puts the chosen member of a tagged union into the location ("world.testbed.seed"); the user wrote
    "world.seed", so drop the tag that follows a union-valued key."""
    parts = [str(part) for part in loc]
    return [p for i, p in enumerate(parts) if not (i > 0 and parts[i - 1] in UNION_KEYS and p in UNION_TAGS)]


UNION_KEYS = {"world", "base", "query", "model", "topic", "format"}
UNION_TAGS = {"testbed", "real-mini", "paper", "world", "hub", "local", "packaged", "sequence_classifier", "centroid"}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"sampling.target_per_bin=50"`` -> (["sampling", "target_per_bin"], 50); the value is read as YAML."""
    if "=" not in text:
        raise ProvenanceError(f"override {text!r} is not of the form key.path=value", "write e.g. -p seed=3")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ProvenanceError(f"override {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return raw


def validate(raw: dict, source: str = "<params>") -> StudyParams:
    try:
        return StudyParams.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        lines = [_format_error(source, e) for e in errors]
        raise ProvenanceError("; ".join(lines), "see params/*.yaml and provenance_lib/params.py") from None


def load(path: str | Path, overrides: list[str] = ()) -> StudyParams:
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(f"params file {path} does not exist", "pass one of params/*.yaml")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProvenanceError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ProvenanceError(f"{path}: top level must be a mapping of sections")
    return validate(apply_overrides(raw, list(overrides)), str(path))


def dump(params: StudyParams) -> str:
    """Resolved params as YAML: written into every run so it can be replayed exactly."""
    return yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False)

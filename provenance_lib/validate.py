"""Known answers: run stages 01-03 on planted and null testbed worlds and tabulate what they recover.

``python -m provenance_lib validate params/validation.yaml`` plans the worlds (``plan``: planted seeds at the study's
dose, further doses, null worlds), runs each through the package's own runner (``runs.run_study`` into
``runs/<validation>/<world>/``: a world and stages that are current are reused, as in any run), then executes
``notebooks/validation.ipynb`` with papermill into ``runs/<validation>/notebooks/``; the notebook writes the tables
(``validation_tables``) into ``runs/<validation>/tables/``. ``validation.json`` records the plan, the params, the code
and how long each run took.

Stage 02's settings are an axis too (``gradient_settings``): under each setting other than the study's own, every
world runs stages 01-03 again in ``runs/<validation>/<world>@<setting>/``, on the default run's world shared as hard
links (``share_world``): a setting overrides only ``gradients.*``, so the world's fingerprint is the same and the
runner reuses it as current ("unchanged: reused") instead of building it again (minutes per world).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import counterfactual, validation_results
from . import params as params_mod
from .artifacts import hash_tree, link_or_copy, replace_dir, write_json
from .context import project_root
from .errors import ProvenanceError
from .execute import run_notebook
from .params import StudyParams, Validation
from .params.validation import DEFAULT_SETTING
from .record import git_state, now
from .plans import WORLD_DIR
from .runs import run_study
from .validation_tables import PLAN
from .worlds import load_world

STAGES = ["01_sampling", "02_gradients", "03_binning"]
NOTEBOOK, TABLES = "validation.ipynb", "tables"


@dataclass(frozen=True)
class WorldPlan:
    """One world of a validation: a testbed study with its own seed and dose."""

    name: str  # its run folder under runs/<validation>/
    kind: str  # planted (the study's dose), dose (the dose-response), sham (a never-evaluated
    seed: int  #   benchmark's content in the planted bins), null (nothing planted)
    dose: float  # planted token share per benchmark (0: null)
    twin: str | None = None  # null, sham: the planted world whose attributed checkpoint it takes

    def overrides(self) -> list[str]:
        content = ["world.planted_content=sham"] if self.kind == "sham" else []
        return [f"seed={self.seed}", f"world.planted_token_share={self.dose}", *content]


def plan(validation: Validation, study: StudyParams) -> list[WorldPlan]:
    """The worlds, planted ones first (a sham or null world needs its twin's checkpoint)."""
    base = study.world.planted_token_share
    twin = {s: f"seed-{s}" for s in validation.seeds}
    worlds = [WorldPlan(f"seed-{s}", "planted", s, base) for s in validation.seeds]
    worlds += [WorldPlan(f"sham-seed-{s}", "sham", s, base, twin.get(s)) for s in validation.sham_seeds]
    worlds += [
        WorldPlan(f"dose-{d:g}-seed-{s}", "dose", s, d)
        for d in validation.doses
        for s in validation.dose_seeds
        if not (d == base and s in validation.seeds)
    ]
    worlds += [WorldPlan(f"null-seed-{s}", "null", s, 0.0, twin.get(s)) for s in validation.null_seeds]
    return worlds


def run_name(world: str, setting: str) -> str:
    """A world's run folder under a stage 02 setting: the world's own under the study's settings."""
    return world if setting == DEFAULT_SETTING else f"{world}@{setting}"


def share_world(source_run: Path, run_dir: Path) -> None:
    """Give ``run_dir`` the world ``source_run`` built, as hard links (a copy where the file system refuses them),
    unless it already has exactly those files. The runner then finds it current by its fingerprint and reuses it;
    if ``source_run``'s world is ever rebuilt, the next call shares the new one."""
    source, target = Path(source_run) / WORLD_DIR, Path(run_dir) / WORLD_DIR
    if (target / "world.json").is_file() and os.path.samefile(source / "world.json", target / "world.json"):
        return
    staging = target.with_name(target.name + ".sharing")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, copy_function=link_or_copy)
    replace_dir(staging, target)


def twin_checkpoint(run_dir: Path) -> int:
    """The number of the checkpoint a built world attributes at (its history ends at it)."""
    return len(load_world(Path(run_dir) / "world").checkpoints)


def load(params_path: str | Path, overrides: list[str] = ()) -> tuple[Validation, Path, StudyParams]:
    """The validation params, the study params file they name and the study at its overrides (a testbed)."""
    params_path = Path(params_path)
    validation = params_mod.load(params_path, overrides, model=Validation)
    study_path = params_path.parent / validation.study
    study = params_mod.load(study_path, validation.overrides)
    if study.world.kind != "testbed":
        raise ProvenanceError(
            f"{params_path}: study {validation.study} is a {study.world.kind} world; known answers "
            "need a testbed's ground truth",
            "name a testbed study, e.g. study: testbed.yaml",
        )
    for overrides in validation.gradient_settings.values():  # a setting that does not load fails before any build
        params_mod.load(study_path, [*validation.overrides, *overrides])
    return validation, study_path, study


def validate(
    params_path: str | Path,
    overrides: list[str] = (),
    name: str | None = None,
    runs_dir: str | Path | None = None,
    timeout: float | None = None,
    force: bool = False,
    trust_code: bool = False,
    results_dir: str | Path | None = None,
) -> Path:
    """Every planned world through stages 01-03 under each stage 02 setting, the retrains, then the validation
    notebook. Returns runs/<validation>/. ``force`` and ``trust_code`` mean what they mean to ``run_study`` (its
    ``--force``, ``--trust-code``); ``results_dir``: also write the summary there as measured results
    (``validation_results``: known_answers.json and .md)."""
    invoked = time.time()
    validation, study_path, study = load(params_path, overrides)
    root = project_root()
    runs_dir = Path(runs_dir or root / "runs")
    name = name or Path(params_path).stem
    folder = runs_dir / name
    common = [*validation.overrides, f"binning.variants={json.dumps(validation.variants)}"]
    settings = validation.gradient_settings
    record = dict(
        params=validation.model_dump(mode="json"),
        study=str(study_path),
        overrides=list(overrides),
        trust_code=trust_code,
        git=git_state(),
        started=now(),
        worlds=[],
        settings={s: dict(overrides=o, duration_s=0.0) for s, o in settings.items()},
    )
    worlds = plan(validation, study)
    for world in worlds:
        extra = world.overrides()
        if world.twin is not None:
            extra.append(f"world.attribute_at={twin_checkpoint(folder / world.twin)}")
        for setting, setting_overrides in settings.items():
            run, shared = run_name(world.name, setting), setting != DEFAULT_SETTING
            if shared and validation.setting_seeds is not None and world.seed not in validation.setting_seeds:
                continue
            started = time.time()
            if shared:
                share_world(folder / world.name, folder / run)
            run_overrides = [*extra, *setting_overrides]
            print(f"[validate] {run}: {' '.join('-p ' + o for o in run_overrides)}", flush=True)
            run_study(
                study_path,
                [*common, *run_overrides],
                name=f"{name}/{run}",
                stages=STAGES,
                runs_dir=runs_dir,
                timeout=timeout,
                force=force,
                trust_code=trust_code,
            )
            duration = round(time.time() - started, 1)
            record["worlds"].append(
                dict(
                    asdict(world),
                    setting=setting,
                    run=run,
                    overrides=run_overrides,
                    duration_s=duration,
                    **({"world_from": f"{world.name}/{WORLD_DIR}"} if shared else {}),
                )
            )
            record["settings"][setting]["duration_s"] = round(record["settings"][setting]["duration_s"] + duration, 1)
            write_json(folder / PLAN, record)
    started = time.time()
    for world in worlds:  # the counterfactual ground truth, cached job by job
        if world.kind == "planted" and world.seed in validation.retraining.seeds:
            counterfactual.run_world(
                folder / world.name / WORLD_DIR,
                folder / counterfactual.RETRAINS / world.name,
                params_mod.load(study_path, [*common, *world.overrides()]),
                validation.retraining,
                trust_code=trust_code,
            )
    record.update(retrains_s=round(time.time() - started, 1))
    write_json(folder / PLAN, record)
    started = time.time()
    executed = folder / "notebooks" / NOTEBOOK
    executed.parent.mkdir(parents=True, exist_ok=True)
    ending = run_notebook(
        root / "notebooks" / NOTEBOOK,
        executed,
        timeout=timeout,
        parameters={"run_dir": str(folder.resolve()), "out_dir": str((folder / TABLES).resolve())},
    )
    if ending is not None:
        raise ProvenanceError(
            f"the validation notebook {ending.status}: {ending.message} (notebook: {executed})",
            "read the failing cell's traceback in that notebook; the world runs are kept",
        )
    record.update(
        tables_s=round(time.time() - started, 1), ended=now(), tables=hash_tree(folder / TABLES, relative_to=folder)
    )
    write_json(folder / PLAN, record)
    if results_dir is not None:
        command = " ".join(
            [
                "python -m provenance_lib validate",
                str(params_path),
                *(f"-p {o}" for o in overrides),
                "--results",
                str(results_dir),
            ]
        )
        validation_results.write(folder, Path(results_dir), command, study.binning.reading, time.time() - invoked)
    return folder

"""The stage context a notebook works with: its params, the world, where it reads and where it writes.

Run by the runner (papermill injects ``out_dir``, a staging folder), a notebook executes its stage with the params
of the invocation in flight, which the runner writes beside the staging folders (``.staging/params.yaml``). Opened
by hand (``out_dir`` None), it shows the artifacts the run recorded for the stage, with the params they were made
with (``run.json``), and recomputes only when asked (``recompute = True``, written into
``<run>/interactive/<stage>/`` so exploring never overwrites a recorded artifact). Every stage notebook follows the
same pattern::

    stage = open_stage("01_sampling", run_dir=run_dir, out_dir=out_dir, recompute=recompute)
    result = stage.run_or_load(sampling.run, sampling.load_result)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from collections.abc import Callable

from . import params as params_mod
from .errors import ProvenanceError
from .params import StudyParams
from .record import RunRecord
from .threads import set_threads
from .worlds import WorldInfo, load_world

T = TypeVar("T")
STAGING = ".staging"  # a run's folder of stages in flight: runs/<name>/.staging/<stage>/, .staging/params.yaml
LOCK = ".lock"  # a run's lock: one runner at a time (runs.run_lock)
RESUMABLE = ".work"  # a stage's work it resumes (``Stage.work_dir``): kept for the next attempt of the same
#                        fingerprint however an attempt ends, removed by the runner once the stage completed


# ----------------------------------------------------------------------------------------------- locations
def project_root(start: Path | None = None) -> Path:
    """The checkout holding ``params/`` and ``notebooks/`` (searched upward from the working directory, so a
    notebook opened from ``notebooks/`` finds the same ``runs/`` as the command line)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return here


def latest_run(runs_dir: Path | None = None) -> Path:
    runs_dir = runs_dir or project_root() / "runs"
    records = sorted(runs_dir.glob("*/run.json"), key=lambda p: p.stat().st_mtime)
    if not records:
        raise ProvenanceError(
            f"no run under {runs_dir}",
            "run the study first: make study (or python -m provenance_lib run params/testbed.yaml)",
        )
    return records[-1].parent


# ----------------------------------------------------------------------------------------------- the context
@dataclass
class Stage:
    """What a stage notebook works with: its params, the world, where to read and where to write."""

    stage_id: str
    run_dir: Path
    out_dir: Path
    params: StudyParams
    world: WorldInfo
    recompute: bool = True  # False: a notebook opened by hand shows the recorded artifacts

    @property
    def recorded_dir(self) -> Path:
        """The stage's artifacts as the run recorded them."""
        return self.run_dir / self.stage_id

    @property
    def world_dir(self) -> Path:
        return self.run_dir / "world"

    @property
    def work_dir(self) -> Path:
        """Where the stage keeps the work it resumes (completed chunks, tasks, caches). The stage never removes it:
        the runner keeps it for the next attempt of the same fingerprint, whatever stopped this one (a kill, Ctrl-C,
        SIGTERM, a timeout), and removes it once the notebook completed; a stage computed by hand removes it when
        ``run`` returned."""
        return self.out_dir / RESUMABLE

    @property
    def under_runner(self) -> bool:
        return in_staging(self.run_dir, self.out_dir)

    def world_path(self, value: str) -> Path:
        return self.world.resolve(self.world_dir, value)

    def input_dir(self, stage_id: str) -> Path:
        record = RunRecord(self.run_dir)
        if stage_id >= self.stage_id or not record.completed(stage_id):
            raise ProvenanceError(
                f"{self.stage_id} reads {stage_id}, which has not completed in {self.run_dir}",
                f"run it first: python -m provenance_lib run {self.run_dir}/params.yaml --stages {stage_id[:2]}",
            )
        return self.run_dir / stage_id

    def run_or_load(self, run: Callable[[Stage], T], load: Callable[[Path], T]) -> T:
        """``run(self)`` when the stage executes (the runner, or ``recompute = True``); otherwise ``load`` the
        recorded artifacts, after saying which run, commit and params made them."""
        if self.recompute:
            result = run(self)
            if not self.under_runner:
                shutil.rmtree(self.work_dir, ignore_errors=True)
            return result
        entry = RunRecord(self.run_dir).completed(self.stage_id)
        if entry is None:
            raise ProvenanceError(
                f"{self.stage_id} has not completed in {self.run_dir}: nothing recorded to show",
                "run the study first, or set recompute = True in the parameters cell",
            )
        print(
            f"Showing the recorded artifacts of {self.run_dir.name}/{self.stage_id} (completed {entry.ended}, "
            f"commit {str(entry.git.commit)[:12]}{' (dirty)' if entry.git.dirty else ''}, params "
            f"{str(entry.params_sha256)[:12]}). Set recompute = True to compute them again."
        )
        return load(self.recorded_dir)


def open_stage(
    stage_id: str, run_dir: str | Path | None = None, out_dir: str | Path | None = None, recompute: bool = False
) -> Stage:
    """The context of a stage notebook. ``run_dir`` None: the latest run. ``out_dir`` given (the runner): the stage
    executes into it. ``out_dir`` None (a notebook opened by hand): the recorded artifacts are shown, or, with
    ``recompute``, computed again into ``<run_dir>/interactive/<stage>``."""
    run_dir = Path(run_dir) if run_dir else latest_run()
    if out_dir is not None and in_staging(run_dir, out_dir) and not runner_working(run_dir):
        print(
            "This notebook was executed by the runner, into a staging folder that is gone. Run again by hand, it "
            "shows the run's recorded artifacts (recompute = True computes them again)."
        )
        out_dir = None
    params = stage_params(run_dir, stage_id, out_dir)
    executing = out_dir is not None or recompute
    out_dir = Path(out_dir) if out_dir else run_dir / "interactive" / stage_id
    if executing:
        out_dir.mkdir(parents=True, exist_ok=True)
    set_threads(params.threads)
    return Stage(stage_id, run_dir, out_dir, params, load_world(run_dir / "world"), recompute=executing)


def runner_working(run_dir: str | Path) -> bool:
    """Whether a runner holds the run's lock now (``runs.run_lock``); a run folder one cannot lock has none."""
    from filelock import FileLock, Timeout

    lock = FileLock(Path(run_dir) / LOCK, timeout=0)
    try:
        with lock:
            return False
    except Timeout:
        return True
    except OSError:
        return False


def invocation_params_path(run_dir: str | Path) -> Path:
    """Where the runner writes the params of the invocation in flight, for the stages it executes."""
    return Path(run_dir) / STAGING / "params.yaml"


def in_staging(run_dir: str | Path, out_dir: str | Path) -> bool:
    """Whether ``out_dir`` is a staging folder of the run: the runner is executing the stage."""
    return Path(out_dir).resolve().parent == (Path(run_dir) / STAGING).resolve()


def stage_params(run_dir: Path, stage_id: str, out_dir: str | Path | None = None) -> StudyParams:
    """The params a stage works with. Executing in the run's staging folder (the runner): the invocation's. Opened
    by hand: those its recorded artifacts were made with; for a stage that never completed, the run's params.yaml
    (the last invocation that completed)."""
    if out_dir is not None and in_staging(run_dir, out_dir):
        return params_mod.load(invocation_params_path(run_dir))
    entry = RunRecord(run_dir).completed(stage_id)
    if entry and entry.params is not None:
        return params_mod.validate(entry.params, f"{run_dir}/run.json: stages.{stage_id}.params")
    if not (Path(run_dir) / "params.yaml").is_file():
        raise ProvenanceError(
            f"{run_dir} has no params.yaml: no invocation of the runner completed there",
            f"run the study: python -m provenance_lib run params/<study>.yaml --name {Path(run_dir).name}",
        )
    return params_mod.load(Path(run_dir) / "params.yaml")

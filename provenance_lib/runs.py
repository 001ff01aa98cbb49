"""Runs: the papermill runner that executes a study's stage notebooks into ``runs/<name>/``, and ``verify``.

A run is a folder::

    runs/<name>/params.yaml              resolved params (replayable: python -m provenance_lib run runs/<name>/params.yaml)
    runs/<name>/run.json                 the record: git, params hash, versions, host, and per stage its timings and
                                         the sha256 of every artifact it read and wrote
    runs/<name>/world/                   the world (see provenance_lib.worlds)
    runs/<name>/NN_stage/                a stage's artifacts
    runs/<name>/notebooks/NN_stage.ipynb the executed notebook (NN_stage.failed.ipynb if a cell failed)

A stage is a notebook ``notebooks/NN_<section>.ipynb``: it depends on the shared params sections, its own section
(named like the stage) and everything earlier stages wrote. Its fingerprint hashes exactly those, so a rerun skips a
stage whose fingerprint matches a completed record, and a changed section re-runs that stage and, through the
hashes of what it writes, the stages after it. A stage executes into a staging folder that replaces its artifact
folder only once the notebook finished, so a failed or killed stage leaves the previous artifacts intact.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import params as params_mod
from .artifacts import hash_tree, replace_dir, sha256_file, sha256_json, write_text
from .context import project_root
from .errors import ProvenanceError
from .params import SHARED_SECTIONS, StudyParams
from .record import RunRecord, now
from .worlds import WorldInfo, ensure_world

WORLD_STAGE = "00_world"
STAGE_PATTERN = re.compile(r"^(\d\d)_([a-z][a-z0-9_]*)\.ipynb$")


# ----------------------------------------------------------------------------------------------- locations
def discover_stages(notebooks_dir: Path) -> list[str]:
    """Stage ids (``01_sampling``, ...) of the numbered notebooks, in order."""
    stages = sorted(p.stem for p in Path(notebooks_dir).glob("*.ipynb") if STAGE_PATTERN.match(p.name))
    if not stages:
        raise ProvenanceError(f"no stage notebooks (NN_name.ipynb) in {notebooks_dir}")
    return stages


def stage_section(stage_id: str) -> str:
    return stage_id.split("_", 1)[1]


# ----------------------------------------------------------------------------------------------- the runner
@dataclass
class StagePlan:
    stage_id: str
    fingerprint: str
    inputs: dict[str, str]
    params_sha256: str


def plan_stage(record: RunRecord, params: StudyParams, stage_id: str) -> StagePlan:
    sections = {name: params.section(name) for name in (*SHARED_SECTIONS, stage_section(stage_id))}
    inputs = record.outputs_before(stage_id)
    params_sha = sha256_json(sections)
    return StagePlan(stage_id, sha256_json({"params": params_sha, "inputs": inputs}), inputs, params_sha)


def is_current(record: RunRecord, plan: StagePlan) -> bool:
    """A completed record with the same fingerprint whose outputs are still on disk, unmodified."""
    entry = record.completed(plan.stage_id)
    return bool(entry and entry["fingerprint"] == plan.fingerprint and not check_hashes(record.run_dir, entry["outputs"]))


def check_hashes(run_dir: Path, hashes: dict[str, str]) -> list[str]:
    problems = []
    for rel, expected in sorted(hashes.items()):
        path = run_dir / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif sha256_file(path) != expected:
            problems.append(f"modified: {rel}")
    return problems


def run_study(params_path: str | Path, overrides: list[str] = (), name: str | None = None,
              stages: list[str] | None = None, from_stage: str | None = None, force: bool = False,
              runs_dir: str | Path | None = None, notebooks_dir: str | Path | None = None) -> Path:
    """Build (or reuse) the world, then execute the selected stage notebooks in order. Returns the run folder."""
    params_path = Path(params_path)
    params = params_mod.load(params_path, overrides)
    root = project_root()
    notebooks_dir = Path(notebooks_dir or root / "notebooks")
    all_stages = study_stages(discover_stages(notebooks_dir), params.stages)
    selected = select_stages(all_stages, stages, from_stage)
    run_dir = Path(runs_dir or root / "runs") / (name or params_path.stem)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = RunRecord(run_dir)
    record.start(params, params_path)
    write_text(run_dir / "params.yaml", params_mod.dump(params))

    _build_world(record, params)
    for stage_id in selected:
        plan = plan_stage(record, params, stage_id)
        missing = [s for s in all_stages if s < stage_id and not record.completed(s)]
        if missing:
            raise ProvenanceError(f"stage {stage_id} needs {', '.join(missing)}, which has not completed in {run_dir}",
                                  f"run the earlier stages first (--from {missing[0][:2]})")
        if not force and is_current(record, plan):
            _say(stage_id, "unchanged: skipped")
            continue
        execute_stage(record, plan, notebooks_dir / f"{stage_id}.ipynb")
    return run_dir


def study_stages(notebooks: list[str], wanted: list[str] | None) -> list[str]:
    """The stages of this study: every stage notebook, or those the params' ``stages`` list names."""
    if wanted is None:
        return notebooks
    unknown = sorted(set(wanted) - set(notebooks))
    if unknown:
        raise ProvenanceError(f"params stages {unknown} have no notebook", f"choose from {', '.join(notebooks)}")
    return [s for s in notebooks if s in wanted]


def select_stages(all_stages: list[str], stages: list[str] | None, from_stage: str | None) -> list[str]:
    def match(key: str) -> str:
        hits = [s for s in all_stages if s == key or s[:2] == key.zfill(2) or stage_section(s) == key]
        if not hits:
            raise ProvenanceError(f"unknown stage {key!r}", f"choose from {', '.join(all_stages)}")
        return hits[0]

    chosen = all_stages
    if stages:
        wanted = {match(s) for s in stages}
        chosen = [s for s in chosen if s in wanted]
    if from_stage:
        first = match(from_stage)
        chosen = [s for s in chosen if s >= first]
    return chosen


def _build_world(record: RunRecord, params: StudyParams) -> WorldInfo:
    world_dir = record.run_dir / "world"
    started = time.time()
    info, built = ensure_world(params, world_dir)
    _say(WORLD_STAGE, f"built {info.kind} world in {time.time() - started:.1f} s" if built else "unchanged: reused")
    outputs = hash_tree(world_dir, relative_to=record.run_dir)
    if built or record.stages.get(WORLD_STAGE, {}).get("outputs") != outputs:
        record.stages[WORLD_STAGE] = {
            "status": "complete", "fingerprint": info.fingerprint, "started": _iso(started), "ended": now(),
            "duration_s": round(time.time() - started, 3), "inputs": {}, "outputs": outputs,
        }
        record.save()
    return info


def execute_stage(record: RunRecord, plan: StagePlan, notebook: Path) -> None:
    import papermill

    run_dir = record.run_dir
    staging = run_dir / ".staging" / plan.stage_id
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    executed = run_dir / ".staging" / notebook.name
    final_notebook = run_dir / "notebooks" / notebook.name
    final_notebook.parent.mkdir(exist_ok=True)
    started = time.time()
    _record_attempt(record, plan.stage_id, status="running", started=_iso(started))
    _say(plan.stage_id, f"running {notebook.name} -> {final_notebook}")
    try:
        papermill.execute_notebook(
            str(notebook), str(executed), kernel_name="python3", cwd=str(notebook.parent), progress_bar=True,
            log_output=True, stdout_file=None,
            parameters={"run_dir": str(run_dir.resolve()), "out_dir": str(staging.resolve())},
        )
    except papermill.PapermillExecutionError as exc:
        failed = final_notebook.with_suffix(".failed.ipynb")
        os.replace(executed, failed)
        _record_attempt(record, plan.stage_id, status="failed", started=_iso(started), ended=now(),
                        error=f"{exc.ename}: {exc.evalue}", notebook=str(failed.relative_to(run_dir)))
        raise ProvenanceError(
            f"stage {plan.stage_id} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n  notebook: {failed}",
            "read the failing cell's traceback in that notebook",
        ) from None
    replace_dir(staging, run_dir / plan.stage_id)
    os.replace(executed, final_notebook)
    record.stages[plan.stage_id] = {
        "status": "complete", "fingerprint": plan.fingerprint, "params_sha256": plan.params_sha256,
        "started": _iso(started), "ended": now(), "duration_s": round(time.time() - started, 3),
        "notebook": str(final_notebook.relative_to(run_dir)), "inputs": plan.inputs,
        "outputs": hash_tree(run_dir / plan.stage_id, relative_to=run_dir),
    }
    record.save()
    _say(plan.stage_id, f"done in {time.time() - started:.1f} s")


def _record_attempt(record: RunRecord, stage_id: str, **attempt) -> None:
    """Note an unfinished attempt. If the stage completed before, its artifacts on disk are still that run's, so
    its complete entry stays and carries the attempt beside it."""
    previous = record.completed(stage_id)
    if previous:
        previous["attempt"] = attempt
    else:
        record.stages[stage_id] = attempt
    record.save()


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def _say(stage_id: str, message: str) -> None:
    print(f"[{stage_id}] {message}", flush=True)


# ----------------------------------------------------------------------------------------------- verify
def verify(run_dir: str | Path) -> list[str]:
    """Recompute every recorded hash; return one line per problem (empty: the run is intact)."""
    record = RunRecord(Path(run_dir))
    if not record.path.is_file():
        raise ProvenanceError(f"{run_dir} has no run.json", "pass a folder under runs/")
    problems = []
    for stage_id, entry in sorted(record.stages.items()):
        if entry.get("status") != "complete":
            problems.append(f"{stage_id}: not complete ({entry.get('status')})")
            continue
        problems += [f"{stage_id}: {p}" for p in check_hashes(record.run_dir, entry["outputs"])]
        stale = {rel for rel, sha in entry.get("inputs", {}).items()
                 if record.outputs_before(stage_id).get(rel) != sha}
        problems += [f"{stage_id}: input changed since it ran: {rel}" for rel in sorted(stale)]
    return problems



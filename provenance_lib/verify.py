"""``verify``: is every artifact of a run what its record says, and is every stage current?

For each stage of ``run.json`` it checks, and reports one line per problem:

* the stage completed (else how its attempt ended; a runner that died is told from one still working);
* every artifact it wrote is on disk with the recorded sha256, hashed in full (``missing`` / ``modified``), and
  its folder holds nothing else (``added``);
* the record adds up: the fingerprint re-derives from the params, inputs and code hashes it records;
* the stage is not stale: its inputs are what the earlier stages hold now, the run's ``params.yaml`` gives it the
  params it ran with, the world's external inputs are unchanged, and (unless ``trust_code``) the library code and
  notebook it runs are those that made its artifacts.

A run whose verify is empty is what a replay of its ``params.yaml`` would skip entirely.
"""

from __future__ import annotations

from pathlib import Path

from . import params as params_mod
from .codebase import notebook_sha256, stage_code_sha256
from .context import project_root, runner_working
from .params import StudyParams
from .plans import artifact_changes
from .record import (
    ABANDONED_NOTE,
    RUNNING,
    WORLD_STAGE,
    Attempt,
    RunRecord,
    StageRecord,
    params_sha256,
    stage_fingerprint,
    stage_sections,
    world_stage_fingerprint,
)
from .runs import PARAMS_FILE
from .worlds import builder_code_sha256, fingerprint as world_fingerprint
from .worlds.contract import WORLD_SECTIONS


def verify(run_dir: str | Path, notebooks_dir: str | Path | None = None, trust_code: bool = False) -> list[str]:
    """One line per problem (empty: every artifact is intact and every stage current)."""
    record = RunRecord.existing(run_dir)
    notebooks_dir = Path(notebooks_dir or project_root() / "notebooks")
    run_params = params_mod.load(record.run_dir / PARAMS_FILE) if (record.run_dir / PARAMS_FILE).is_file() else None
    alive = runner_working(record.run_dir)
    problems = []
    for stage_id, entry in sorted(record.stages.items()):
        if not isinstance(entry, StageRecord):
            problems.append(f"{stage_id}: not complete ({_how_it_ended(entry, alive)})")
            continue
        found = artifact_changes(record, stage_id, entry, full=True)
        if stage_id == WORLD_STAGE:
            found += _world_staleness(entry, run_params, trust_code)
        else:
            found += _stage_staleness(record, stage_id, entry, run_params, notebooks_dir, trust_code)
        problems += [f"{stage_id}: {line}" for line in found]
    return problems


def _how_it_ended(attempt: Attempt, alive: bool) -> str:
    if attempt.status == RUNNING:
        return "running now" if alive else f"abandoned: {ABANDONED_NOTE}"
    return f"{attempt.status}: {attempt.error}" if attempt.error else attempt.status


def _recorded_params(entry: StageRecord) -> StudyParams | None:
    return params_mod.validate(entry.params, "run.json") if entry.params is not None else None


def _params_yaml_differs(run_params: StudyParams | None, params: StudyParams, sections: tuple[str, ...]) -> list[str]:
    if run_params is None:
        return []
    differ = [
        name
        for name in sections  # in what decides the artifacts: a changed executor is not stale
        if run_params.section(name, fingerprint=True) != params.section(name, fingerprint=True)
    ]
    return [f"stale: {PARAMS_FILE} differs from the params it ran with in {', '.join(differ)}"] if differ else []


def _stage_staleness(
    record: RunRecord,
    stage_id: str,
    entry: StageRecord,
    run_params: StudyParams | None,
    notebooks_dir: Path,
    trust_code: bool,
) -> list[str]:
    params = _recorded_params(entry)
    if params is None or entry.code_sha256 is None:
        return ["its record predates code and params fingerprints: run it again"]
    sections = stage_sections(stage_id)
    params_sha = params_sha256(params, sections)
    if (
        params_sha != entry.params_sha256
        or stage_fingerprint(params_sha, entry.inputs, entry.code_sha256, entry.notebook_sha256) != entry.fingerprint
    ):
        return [
            "its record does not add up: the fingerprint does not follow from the params, inputs and code it records"
        ]
    found = _params_yaml_differs(run_params, params, sections)
    now = record.outputs_before(stage_id)
    changed = sorted(rel for rel in set(now) | set(entry.inputs) if now.get(rel) != entry.inputs.get(rel))
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        found.append(f"stale: inputs changed since it ran: {', '.join(changed[:3])}{more}")
    if not trust_code:
        notebook = notebooks_dir / f"{stage_id}.ipynb"
        if not notebook.is_file():
            found.append(f"cannot check its code: {notebook} is missing (verify --trust-code checks the rest)")
        else:
            commit = str(entry.git.commit)[:12]
            if stage_code_sha256(notebook) != entry.code_sha256:
                found.append(f"stale: the library code it runs changed since it ran (made by commit {commit})")
            if notebook_sha256(notebook) != entry.notebook_sha256:
                found.append(f"stale: its notebook {notebook.name} changed since it ran")
    return found


def _world_staleness(entry: StageRecord, run_params: StudyParams | None, trust_code: bool) -> list[str]:
    params = _recorded_params(entry)
    if params is None or entry.world_fingerprint is None:
        return ["its record predates code and params fingerprints: run it again"]
    if (
        params_sha256(params, WORLD_SECTIONS) != entry.params_sha256
        or world_stage_fingerprint(entry.world_fingerprint, entry.code_sha256) != entry.fingerprint
    ):
        return ["its record does not add up: the fingerprint does not follow from the params and code it records"]
    found = _params_yaml_differs(run_params, params, WORLD_SECTIONS)
    if world_fingerprint(params) != entry.world_fingerprint:
        found.append(
            "stale: its params no longer give its fingerprint here (its inputs outside the params changed: "
            "world.json lists them)"
        )
    if not trust_code and builder_code_sha256() != entry.code_sha256:
        found.append("stale: the library code that builds it changed since it was built")
    return found

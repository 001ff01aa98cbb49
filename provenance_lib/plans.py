"""What the runner decides before it executes a stage: the stage's plan (its fingerprint's parts), whether its
recorded artifacts are current, and whether the files it reads are still the bytes their record names.

A stage reads what the world and the stages before it wrote, and its record names their sha256 as its inputs. So
those files are checked before the stage starts and again once it completed: a file whose size and mtime are those
it had when its stage hashed it is taken as unchanged, any other is hashed again (``artifacts.changed_files``); a
file added to a stage's folder counts as a change too (stage 01's working set is read by a glob). A change stops
the run, naming the file and the fix: a record never names bytes the stage did not read. ``verify`` hashes every
file in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .artifacts import changed_files, tree_files
from .codebase import notebook_sha256, stage_code_sha256
from .errors import ProvenanceError
from .params import StudyParams
from .record import WORLD_STAGE, RunRecord, StageRecord, params_sha256, stage_fingerprint, stage_sections
from .worlds import builder_code_sha256, load_world, world_inputs
from .worlds.contract import WORLD_SECTIONS

WORLD_DIR = "world"


@dataclass
class StagePlan:
    stage_id: str
    notebook: Path
    params: StudyParams
    params_sha256: str
    inputs: dict[str, str]
    code_sha256: str
    notebook_sha256: str

    @property
    def fingerprint(self) -> str:
        return stage_fingerprint(self.params_sha256, self.inputs, self.code_sha256, self.notebook_sha256)


def plan_stage(record: RunRecord, params: StudyParams, stage_id: str, notebook: Path) -> StagePlan:
    return StagePlan(
        stage_id,
        notebook,
        params,
        params_sha256(params, stage_sections(stage_id)),
        record.outputs_before(stage_id),
        stage_code_sha256(notebook),
        notebook_sha256(notebook),
    )


def reasons_to_run(record: RunRecord, plan: StagePlan) -> list[str]:
    """Why the recorded artifacts are not current for ``plan`` (empty: they are)."""
    entry = record.completed(plan.stage_id)
    if entry is None:
        return ["never completed"]
    if artifact_changes(record, plan.stage_id, entry):
        return ["its artifacts were modified or removed"]
    reasons = [
        why
        for changed, why in (
            (entry.params_sha256 != plan.params_sha256, "params changed"),
            (entry.inputs != plan.inputs, "inputs changed"),
            (entry.code_sha256 != plan.code_sha256, "library code changed"),
            (entry.notebook_sha256 != plan.notebook_sha256, "notebook changed"),
        )
        if changed
    ]
    return reasons or ([] if entry.fingerprint == plan.fingerprint else ["fingerprint changed"])


def stage_folder(stage_id: str) -> str:
    return WORLD_DIR if stage_id == WORLD_STAGE else stage_id


def artifact_changes(record: RunRecord, stage_id: str, entry: StageRecord, full: bool = False) -> list[str]:
    """``missing: <path>``, ``modified: <path>`` and ``added: <path>`` for the files of a completed stage's folder
    that are not those it recorded (tools' caches, hidden or ``__pycache__``, are not artifacts). Fast (size and
    mtime; the record's stamps are brought up to date for files whose bytes are unchanged) unless ``full``: every
    file hashed."""
    problems = changed_files(record.run_dir, entry.outputs, None if full else entry.stamps)
    folder = record.run_dir / stage_folder(stage_id)
    added = [
        rel
        for path in tree_files(folder)
        if (rel := str(path.relative_to(record.run_dir))) not in entry.outputs
        and not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(folder).parts)
    ]
    return problems + [f"added: {rel}" for rel in added]


def check_inputs(record: RunRecord, stage_id: str, when: str = "") -> None:
    """Stop, naming the file and the fix, if what the completed stages before ``stage_id`` wrote is not what they
    recorded (``when``: words saying when the change was found)."""
    for other, entry in sorted(record.stages.items()):
        if other >= stage_id or not isinstance(entry, StageRecord):
            continue
        problems = artifact_changes(record, other, entry)
        if problems:
            record.save()  # refreshed stamps
            raise changed_error(record, other, problems, f"{stage_id} reads what {other} wrote{when}")
    record.save()  # refreshed stamps


def changed_error(record: RunRecord, stage_id: str, problems: list[str], context: str) -> ProvenanceError:
    more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
    listed = f"{', '.join(problems[:3])}{more}"
    if stage_id == WORLD_STAGE:
        fix = (
            f"restore the file, or rebuild the world: remove {record.run_dir / WORLD_DIR} and run again (every "
            "stage then runs again)"
        )
        return ProvenanceError(f"{context}: the world changed since it was built ({listed})", fix)
    fix = (
        f"restore the file, or run {stage_id} again (--from {stage_id[:2]} --force); `python -m provenance_lib "
        f"verify {record.run_dir}` lists every change"
    )
    return ProvenanceError(f"{context}, which changed since that stage completed ({listed})", fix)


def check_world_inputs(record: RunRecord, params: StudyParams, trust_code: bool) -> None:
    """Stop when the recorded world no longer matches although its params and code do: what it read outside its
    params changed (the paper's shard listing, real-mini's packaged texts, a release folder). Rebuilding it without a
    word would put another study under the run's name; removing the world folder asks for that rebuild."""
    entry, world_dir = record.completed(WORLD_STAGE), record.run_dir / WORLD_DIR
    if entry is None or not (world_dir / "world.json").is_file():
        return
    if entry.params_sha256 != params_sha256(params, WORLD_SECTIONS) or (
        not trust_code and entry.code_sha256 != builder_code_sha256()
    ):
        return  # its params or code changed: a new world is due
    recorded, now = load_world(world_dir).inputs, world_inputs(params)
    changed = sorted(key for key in set(recorded) | set(now) if recorded.get(key) != now.get(key))
    if changed:
        raise ProvenanceError(
            f"the world's inputs outside its params changed since it was built ({', '.join(changed)}"
            f": world.json's inputs against what is there now)",
            f"restore them, or rebuild the world on them: remove {world_dir} and run again",
        )

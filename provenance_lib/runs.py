"""Runs: the papermill runner that executes a study's stage notebooks into ``runs/<name>/``.

A run is a folder::

    runs/<name>/params.yaml               the params of the last invocation that completed; replaying it
                                          (python -m provenance_lib run runs/<name>/params.yaml) works on this run
    runs/<name>/run.json                  the record (``provenance_lib.record``)
    runs/<name>/world/                    the world (``provenance_lib.worlds``)
    runs/<name>/NN_stage/                 a stage's artifacts
    runs/<name>/notebooks/NN_stage.ipynb  the executed notebook; NN_stage.failed.ipynb: the last attempt that did
                                          not complete, as far as it got
    runs/<name>/.staging/                 stages in flight, and the params of the invocation in flight

A stage is a notebook ``notebooks/NN_<section>.ipynb``. Its fingerprint (``record.stage_fingerprint``) hashes what
decides its artifacts: the shared params sections and its own (named like the stage), the sha256 of everything
earlier stages wrote, the library code it runs (``codebase``) and its notebook. A rerun skips a stage whose
fingerprint matches a completed record with intact artifacts, and re-runs it otherwise, saying why; through the
hashes of what it writes, the stages after it follow. ``trust_code`` (``--trust-code``) also skips a stage whose
params and inputs match when only the code differs, and records that it did. The world is reused while its params,
its code and its files are those recorded; what a stage reads is checked against its record before the stage starts
and once it completed (``plans``): a changed file stops the run, naming it.

A stage executes into a staging folder that replaces its artifact folder only once the notebook finished: however
an attempt ends (``execute``), the previous artifacts stay intact and the record says how it ended. The work a stage
resumes (``Stage.work_dir``, ``.work/`` in its staging folder: stage 01's completed datatrove tasks, stage 02's
checkpointed chunks) is kept for the next attempt of the same fingerprint whatever stopped the attempt (a kill, the
out-of-memory killer, Ctrl-C, SIGTERM, a timeout), so it is not redone, and removed once the stage completed;
anything else an attempt that did not complete left is removed, and an attempt of another fingerprint starts from
an empty folder. One runner at a time works on a run (a lock); a runner that died without a word is found out by
the next one (``abandoned``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from collections.abc import Iterator

from filelock import FileLock, Timeout

from . import params as params_mod
from .artifacts import hash_and_stamp_tree, recover_dir, replace_dir, write_text
from .codebase import code_sha256
from .context import LOCK, RESUMABLE, STAGING, invocation_params_path, project_root
from .errors import ProvenanceError
from .execute import (
    Ending,
    deferred_interrupts,
    first_line,
    iso_time,
    run_notebook,
    say,
    sigterm_as_interrupt,
)
from .execute import ending as stopped
from .plans import (
    StagePlan,
    check_inputs,
    plan_stage,
    reasons_to_run,
    stage_folder,
)
from .record import (
    COMPLETE,
    RUNNING,
    Attempt,
    RunRecord,
    StageRecord,
    Trusted,
    now,
    stage_section,
)
from .report import REPORT_DIR, build_report
from .world_stage import build_world_stage

STAGE_PATTERN = re.compile(r"^(\d\d)_([a-z][a-z0-9_]*)\.ipynb$")
PARAMS_FILE = "params.yaml"
FINISHED_WORK = ".finished-work"  # .staging/<stage>.finished-work: a completed stage's work, being removed
CODE_REASONS = {"library code changed", "notebook changed"}  # what --trust-code lets pass
FIXES = {
    "failed": "read the failing cell's traceback in that notebook",
    "killed": "if it ran out of memory, lower the stage's batch sizes or workers in the params; then run again",
    "timed out": "raise --timeout, or make the stage's slow cell faster",
    "error": "the stage's previous artifacts are intact; fix the cause and run again",
}


class StageEnded(ProvenanceError):
    """A stage's attempt did not complete; ``ending`` says how (``execute.Ending``)."""

    def __init__(self, ending: Ending, problem: str, fix: str):
        super().__init__(problem, fix)
        self.ending = ending


# ----------------------------------------------------------------------------------------------- locations
def discover_stages(notebooks_dir: Path) -> list[str]:
    """Stage ids (``01_sampling``, ...) of the numbered notebooks, in order."""
    stages = sorted(p.stem for p in Path(notebooks_dir).glob("*.ipynb") if STAGE_PATTERN.match(p.name))
    if not stages:
        raise ProvenanceError(f"no stage notebooks (NN_name.ipynb) in {notebooks_dir}")
    return stages


def run_folder(params_path: Path, name: str | None, runs_dir: Path | None, default_runs_dir: Path) -> Path:
    """``<runs>/<name>``; without a name, a run's own params.yaml replays into that run, any other params file into
    ``<runs>/<its stem>``."""
    replay = params_path.name == PARAMS_FILE and (params_path.parent / "run.json").is_file()
    if name is None and replay:
        return (Path(runs_dir) / params_path.parent.name) if runs_dir else params_path.parent
    return Path(runs_dir or default_runs_dir) / (name or params_path.stem)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One runner at a time on a run; the lock dies with its process, so a killed runner never blocks the next."""
    lock = FileLock(run_dir / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ProvenanceError(
            f"another runner is working on {run_dir}", "wait for it to finish (or stop it), then run again"
        ) from None
    try:
        yield
    finally:
        lock.release()


# ----------------------------------------------------------------------------------------------- the runner
def run_study(
    params_path: str | Path,
    overrides: list[str] = (),
    name: str | None = None,
    stages: list[str] | None = None,
    from_stage: str | None = None,
    force: bool = False,
    trust_code: bool = False,
    timeout: float | None = None,
    runs_dir: str | Path | None = None,
    notebooks_dir: str | Path | None = None,
) -> Path:
    """Build (or reuse) the world, then execute the selected stage notebooks in order. Returns the run folder.
    ``timeout``: seconds a cell may run (None: no limit)."""
    params_path = Path(params_path)
    params = params_mod.load(params_path, overrides)
    root = project_root()
    notebooks_dir = Path(notebooks_dir or root / "notebooks")
    all_stages = study_stages(discover_stages(notebooks_dir), params.stages)
    selected = select_stages(all_stages, stages, from_stage)
    run_dir = run_folder(params_path, name, runs_dir and Path(runs_dir), root / "runs")
    check_selection(RunRecord(run_dir), all_stages, selected)  # before anything is made or built
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir), sigterm_as_interrupt():
        record = RunRecord(run_dir)
        _settle(record)
        number = record.begin(params, params_path, trust_code, code_sha256())
        write_text(invocation_params_path(run_dir), params_mod.dump(params))
        changed = False
        try:
            changed = build_world_stage(record, params, number, trust_code)
            for stage_id in selected:
                check_selection(record, all_stages, [stage_id])
                check_inputs(record, stage_id)
                plan = plan_stage(record, params, stage_id, notebooks_dir / f"{stage_id}.ipynb")
                reasons = ["--force"] if force else reasons_to_run(record, plan)
                if reasons and trust_code and set(reasons) <= CODE_REASONS:
                    changed |= _trust(record, plan, number, reasons)
                elif reasons:
                    execute_stage(record, plan, number, ", ".join(reasons), timeout)
                    changed = True
                else:
                    say(stage_id, "unchanged: skipped")
        except BaseException as exc:
            status = (
                exc.ending.status
                if isinstance(exc, StageEnded)
                else "interrupted"
                if isinstance(exc, KeyboardInterrupt)
                else "error"
            )
            record.end(number, status, error=first_line(exc) or type(exc).__name__)
            raise
        finally:
            invocation_params_path(run_dir).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                (run_dir / STAGING).rmdir()  # only when empty: no stage left work to resume
        write_text(run_dir / PARAMS_FILE, params_mod.dump(params))  # only now: the params of what completed
        record.completed_with(params, params_path)
        record.end(number, COMPLETE)
        if changed or not report_is_current(record):
            build_report(run_dir)  # the study as a page, rebuilt when something it shows changed
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


def check_selection(record: RunRecord, all_stages: list[str], selected: list[str]) -> None:
    """Every stage before a selected one has completed in the run, or is selected to run before it."""
    for stage_id in selected:
        missing = [s for s in all_stages if s < stage_id and not record.completed(s) and s not in selected]
        if missing:
            raise ProvenanceError(
                f"stage {stage_id} needs {', '.join(missing)}, which has not completed in {record.run_dir}",
                f"run the earlier stages first (--from {missing[0][:2]})",
            )


def report_is_current(record: RunRecord) -> bool:
    """The report exists and is younger than every stage's completion (a stage that completed in an invocation
    that then failed never got its report)."""
    index = record.run_dir / REPORT_DIR / "index.html"
    if not index.is_file():
        return False
    ended = [
        datetime.fromisoformat(e.ended).timestamp()
        for e in record.stages.values()
        if isinstance(e, StageRecord) and e.ended
    ]
    return index.stat().st_mtime >= max(ended, default=0)


def _settle(record: RunRecord) -> None:
    """Before working on a run: finish folder swaps a kill interrupted, and record what a runner that died left
    running, moving its partial notebook where a user looks for it."""
    run_dir = record.run_dir
    for stage_id in record.stages:
        recover_dir(run_dir / stage_folder(stage_id))
    for stage_id in record.settle_abandoned():
        partial = run_dir / STAGING / f"{stage_id}.ipynb"
        if partial.is_file():
            failed = run_dir / "notebooks" / f"{stage_id}.failed.ipynb"
            failed.parent.mkdir(exist_ok=True)
            os.replace(partial, failed)
            record.attempt(stage_id).notebook = str(failed.relative_to(run_dir))
            record.save()
        clear_staging(run_dir / STAGING / stage_id, keep_work=True)
    for finished in (run_dir / STAGING).glob(f"*{FINISHED_WORK}"):
        shutil.rmtree(finished, ignore_errors=True)


def resumable_attempt(record: RunRecord, plan: StagePlan) -> int | None:
    """The invocation whose attempt at this stage did not complete, ran with ``plan``'s fingerprint and left work to
    resume (``RESUMABLE``); None: the next attempt starts from an empty folder."""
    attempt = record.attempt(plan.stage_id)
    if (
        attempt is not None
        and attempt.fingerprint == plan.fingerprint
        and (record.run_dir / STAGING / plan.stage_id / RESUMABLE).is_dir()
    ):
        return attempt.invocation
    return None


def clear_staging(staging: Path, keep_work: bool) -> None:
    """Remove what an attempt left in ``staging`` (half-written artifacts, temporary files); ``keep_work``: all but
    the work the stage resumes (``RESUMABLE``), and the folder itself only if that is all there was."""
    for path in staging.iterdir() if staging.is_dir() else ():
        if not (keep_work and path.name == RESUMABLE):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if staging.is_dir() and not any(staging.iterdir()):
        staging.rmdir()


def execute_stage(record: RunRecord, plan: StagePlan, number: int, reason: str, timeout: float | None = None) -> None:
    run_dir, stage_id = record.run_dir, plan.stage_id
    staging = run_dir / STAGING / stage_id
    resumes = resumable_attempt(record, plan)
    clear_staging(staging, keep_work=resumes is not None)
    staging.mkdir(parents=True, exist_ok=True)
    executed = run_dir / STAGING / plan.notebook.name
    final_notebook = run_dir / "notebooks" / plan.notebook.name
    failed_notebook = final_notebook.with_suffix(".failed.ipynb")
    final_notebook.parent.mkdir(exist_ok=True)
    started = time.time()
    attempt = Attempt(
        status=RUNNING,
        invocation=number,
        reason=reason,
        started=iso_time(started),
        fingerprint=plan.fingerprint,
        resumes=resumes,
    )
    record.note_attempt(stage_id, attempt)

    def kernel_started(pid: int) -> None:
        attempt.kernel_pid = pid
        record.note_attempt(stage_id, attempt)

    say(stage_id, f"running ({reason}) {plan.notebook.name} -> {final_notebook}")
    if resumes:
        say(stage_id, f"resuming the work of invocation {resumes} (same fingerprint): {staging / RESUMABLE}")
    ending = run_notebook(
        plan.notebook,
        executed,
        timeout=timeout,
        on_kernel_start=kernel_started,
        parameters={"run_dir": str(run_dir.resolve()), "out_dir": str(staging.resolve())},
    )
    if ending is None:
        try:
            check_inputs(record, stage_id, " while it ran")
            # hashed in place, before the swap: the block below, which holds Ctrl-C, is a few renames
            outputs, stamps = hash_and_stamp_tree(staging, named_as=stage_id, skip=RESUMABLE)
        except ProvenanceError as exc:
            ending = Ending("error", exc.problem)
        except KeyboardInterrupt as exc:
            ending = stopped(exc)
    if ending is not None:
        _end_attempt(record, stage_id, attempt, ending, executed, failed_notebook)
    finished_work = run_dir / STAGING / f"{stage_id}{FINISHED_WORK}"
    with deferred_interrupts():  # the swap and its record happen together
        if (staging / RESUMABLE).is_dir():
            os.replace(staging / RESUMABLE, finished_work)  # the stage completed: its work is not needed again
        replace_dir(staging, run_dir / stage_id)
        os.replace(executed, final_notebook)
        failed_notebook.unlink(missing_ok=True)  # an earlier attempt's; this one completed
        record.complete(
            stage_id,
            StageRecord(
                fingerprint=plan.fingerprint,
                params_sha256=plan.params_sha256,
                params=plan.params.model_dump(mode="json"),
                code_sha256=plan.code_sha256,
                notebook_sha256=plan.notebook_sha256,
                git=record.invocation(number).git,
                interpreter=sys.executable,
                invocation=number,
                reason=reason,
                started=iso_time(started),
                ended=now(),
                duration_s=round(time.time() - started, 3),
                notebook=str(final_notebook.relative_to(run_dir)),
                inputs=plan.inputs,
                outputs=outputs,
                stamps=stamps,
                resumes=resumes,
            ),
        )
    shutil.rmtree(finished_work, ignore_errors=True)
    say(stage_id, f"done in {time.time() - started:.1f} s")


def _end_attempt(
    record: RunRecord, stage_id: str, attempt: Attempt, ending: Ending, executed: Path, failed_notebook: Path
) -> None:
    """Record how an attempt that did not complete ended, keep its work and partial notebook, and stop the run."""
    run_dir = record.run_dir
    staging = run_dir / STAGING / stage_id
    if executed.is_file():
        os.replace(executed, failed_notebook)
    clear_staging(staging, keep_work=True)
    attempt.status, attempt.ended, attempt.error = ending.status, now(), ending.message
    attempt.notebook = str(failed_notebook.relative_to(run_dir)) if failed_notebook.is_file() else None
    record.note_attempt(stage_id, attempt)
    if ending.status == "interrupted":
        raise KeyboardInterrupt(ending.message)
    cell = f" in cell {ending.cell}" if ending.cell is not None else ""
    work = staging / RESUMABLE
    kept = f"\n  its work is kept for a rerun with the same params and code: {work}" if work.is_dir() else ""
    raise StageEnded(
        ending,
        f"stage {stage_id} {ending.status}{cell}: {ending.message}\n  notebook: {failed_notebook}{kept}",
        FIXES[ending.status],
    )


def _trust(record: RunRecord, plan: StagePlan, number: int, reasons: list[str]) -> bool:
    """--trust-code: keep artifacts whose params and inputs match although the code differs, and say so in the
    record (the entry keeps naming the code that made them). Returns whether that is news (not trusted so before)."""
    entry = record.completed(plan.stage_id)
    before = entry.trusted
    entry.trusted = Trusted(
        invocation=number, reasons=reasons, code_sha256=plan.code_sha256, notebook_sha256=plan.notebook_sha256
    )
    record.save()
    say(
        plan.stage_id,
        f"{' and '.join(reasons)}, params and inputs unchanged: skipped (--trust-code; made by "
        f"commit {str(entry.git.commit)[:12]})",
    )
    return before is None or before.model_dump(exclude={"invocation"}) != entry.trusted.model_dump(
        exclude={"invocation"}
    )

"""Stage 00 of a run: its world, reused while its params, code and files are those the run recorded, else built,
and recorded in run.json like any stage."""

from __future__ import annotations

import time

from .artifacts import hash_and_stamp_tree
from .execute import first_line, iso_time, say
from .params import StudyParams
from .plans import WORLD_DIR, artifact_changes, changed_error, check_world_inputs
from .record import (
    WORLD_STAGE,
    Attempt,
    RunRecord,
    StageRecord,
    Trusted,
    now,
    params_sha256,
    world_stage_fingerprint,
)
from .worlds import builder_code_sha256, ensure_world, matching_world
from .worlds.contract import WORLD_SECTIONS


def build_world_stage(record: RunRecord, params: StudyParams, number: int, trust_code: bool) -> bool:
    """Reuse the world while its params, code and files are those recorded, else build it; returns whether it was
    built or recorded now (a world put in place by hand, ``python -m provenance_lib world``, is recorded as found)."""
    world_dir = record.run_dir / WORLD_DIR
    started = time.time()
    entry = record.completed(WORLD_STAGE)
    try:
        info = matching_world(params, world_dir, trust_code=trust_code)
        recorded_world = info is not None and entry is not None and entry.world_fingerprint == info.fingerprint
        if recorded_world:
            problems = artifact_changes(record, WORLD_STAGE, entry)
            record.save()  # refreshed stamps
            if problems:
                raise changed_error(record, WORLD_STAGE, problems, "the world cannot be reused")
        built = info is None
        if built:
            check_world_inputs(record, params, trust_code)
            info = ensure_world(params, world_dir, force=True)[0]
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
        record.note_attempt(
            WORLD_STAGE,
            Attempt(
                status=status,
                invocation=number,
                started=iso_time(started),
                ended=now(),
                error=f"{type(exc).__name__}: {first_line(exc)}",
            ),
        )
        raise
    trusted = not built and info.code_sha256 != builder_code_sha256()
    say(
        WORLD_STAGE,
        f"built {info.kind} world in {time.time() - started:.1f} s"
        if built
        else "params and inputs unchanged, library code changed: reused (--trust-code)"
        if trusted
        else "unchanged: reused",
    )
    recorded = not recorded_world
    if recorded:
        outputs, stamps = hash_and_stamp_tree(world_dir, named_as=WORLD_DIR)
        entry = StageRecord(
            fingerprint=world_stage_fingerprint(info.fingerprint, info.code_sha256),
            world_fingerprint=info.fingerprint,
            code_sha256=info.code_sha256,
            params_sha256=params_sha256(params, WORLD_SECTIONS),
            params=params.model_dump(mode="json"),
            git=record.invocation(number).git,
            invocation=number,
            started=iso_time(started),
            ended=now(),
            duration_s=round(time.time() - started, 3),
            outputs=outputs,
            stamps=stamps,
        )
    entry.attempt = None  # an attempt that did not complete is outdated: this world is current
    if trusted:
        entry.trusted = Trusted(invocation=number, reasons=["library code changed"], code_sha256=builder_code_sha256())
    record.complete(WORLD_STAGE, entry)
    return recorded

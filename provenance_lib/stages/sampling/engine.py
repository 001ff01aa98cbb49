"""Stage 01's engine: the steps on datatrove executors (local, Slurm or Ray, from ``sampling.executor``), a work
folder inside the stage folder that a rerun resumes, failed tasks reported with their log, and the released
outputs written from the merged sample once every step completed."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from collections.abc import Callable
from unittest import mock

import numpy as np
import pyarrow.parquet as pq
import zstandard
from tqdm import tqdm

from ... import corpus, taxonomy
from ...artifacts import atomic_path
from ...context import RESUMABLE
from ...errors import ProvenanceError
from .annotate import describe, needs_annotation
from .index import bins_of
from .job import HEATMAP, LABEL_AXES, MANIFEST, ROW_BITS, SKEW, SUMMARY, WORKING_SET, SamplingJob
from .outputs import SamplingResult, write_outputs
from .select import CorpusIndex, Selection, check_population
from .steps import EXAMPLES, STEPS, Plan, Work

WORK = RESUMABLE  # the work folder inside the stage folder (the runner keeps it for a rerun of the same
# fingerprint): removed once the stage completed
ROWS_PER_BUCKET = 1 << 20  # buckets: null aims at ~1M rows (30 MiB) per bucket task


# ----------------------------------------------------------------------------------------------- the stage
def sample(job: SamplingJob, keep_work: bool = False) -> SamplingResult:
    """Run every step (resuming a killed run of the same plan), then write the manifest, summary and skew.
    ``keep_work``: leave the work folder (rows, task logs and stats) for inspection instead of removing it."""
    if not job.shards:
        raise ProvenanceError("no corpus shards to sample from", "build the world first")
    plan = make_plan(job)
    work = prepare_work(job, plan)
    executors = make_executors(job, plan, work)
    if job.executor.kind == "slurm":
        run_slurm(executors, job.executor, work)
    else:
        run_here(executors, job.executor, work)
    result = finish(job, plan, work)
    if not keep_work:
        shutil.rmtree(work.root)
    return result


def make_plan(job: SamplingJob) -> Plan:
    buckets = job.buckets or max(1, math.ceil(estimate_documents(job) / ROWS_PER_BUCKET))
    return Plan(
        tasks=job.executor.tasks,
        buckets=buckets,
        merge_tasks=min(taxonomy.load().n_bins, buckets),
        annotate=needs_annotation(job),
    )


def estimate_documents(job: SamplingJob) -> int:
    """Documents in the corpus, estimated from the lines per byte of its largest shard (it is read once)."""
    sizes = [shard.path.stat().st_size for shard in job.shards]
    largest = job.shards[int(np.argmax(sizes))]
    lines = 0
    try:
        with open(largest.path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
            while chunk := reader.read(1 << 24):
                lines += chunk.count(b"\n")
    except zstandard.ZstdError:
        return 0  # the map step reports the broken shard with its line
    return math.ceil(lines * sum(sizes) / max(max(sizes), 1))


def prepare_work(job: SamplingJob, plan: Plan) -> Work:
    """The work folder of this plan, with what a rerun may keep. A folder of another plan (or none) starts over:
    its files, the working set and earlier outputs go (the annotation cache stays: it is keyed by shard and
    classifier). Shards changed since (size or mtime) redo their map tasks and every task after the map."""
    work = Work(Path(job.out_dir) / WORK)
    record = {
        "plan": asdict(plan),
        "shards": [shard.name for shard in job.shards],
        "seed": job.seed,
        "target_per_bin": job.target_per_bin,
        "tokens": job.tokens,
        "tokenizer": job.tokenizer,
        "batch_size": job.batch_size,
        **{axis: describe(getattr(job, f"{axis}_classifier")) for axis in LABEL_AXES},
    }
    files = [list(shard_stat(shard.path)) for shard in job.shards]
    plan_file = work.root / "plan.json"
    previous = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
    if previous.get("record") != record:
        for path in work.root.iterdir() if work.root.is_dir() else ():
            if path.name != "annotations":
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        clear_outputs(job)
    elif previous["files"] != files:
        changed = [i for i, (old, new) in enumerate(zip(previous["files"], files)) if old != new]
        ranks = range(plan.tasks) if work.released("ids") else {i % plan.tasks for i in changed}
        for rank in ranks:  # every map task if the ids step released the map's rows already
            (work.root / "map" / "completions" / f"{rank:05d}").unlink(missing_ok=True)
        for step in STEPS[1:]:
            shutil.rmtree(work.root / step.name / "completions", ignore_errors=True)
        clear_outputs(job)
    work.root.mkdir(parents=True, exist_ok=True)
    with atomic_path(plan_file) as tmp:
        tmp.write_text(json.dumps({"record": record, "files": files}))
    return work


def shard_stat(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def clear_outputs(job: SamplingJob) -> None:
    """The working set and the released outputs of an earlier run: a new sample replaces them whole."""
    shutil.rmtree(Path(job.out_dir) / WORKING_SET, ignore_errors=True)
    for name in (MANIFEST, SUMMARY, SKEW, HEATMAP):
        (Path(job.out_dir) / name).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------- executors
def make_executors(job: SamplingJob, plan: Plan, work: Work) -> list:
    """One datatrove executor per step, in order; each logs, marks completions and keeps stats in work/<step>."""
    tasks = {
        "map": plan.tasks,
        "ids": plan.buckets,
        "texts": plan.buckets,
        "annotate": plan.tasks,
        "bins": plan.buckets,
        "merge": plan.merge_tasks,
        "fetch": plan.tasks,
    }
    settings, executors = job.executor, []
    after = None
    for step in STEPS:
        if step.name == "annotate" and not plan.annotate:
            continue
        options = dict(
            pipeline=[step(job, plan, work, after)], tasks=tasks[step.name], logging_dir=str(work.root / step.name)
        )
        after = (step.name, tasks[step.name])
        gpus = settings.kind != "local" and step.name == "annotate" and uses_gpu(job)
        if settings.kind == "local":
            from datatrove.executor import LocalPipelineExecutor

            executors.append(LocalPipelineExecutor(**options, workers=min(settings.workers, tasks[step.name])))
        elif settings.kind == "slurm":
            from datatrove.executor import SlurmPipelineExecutor

            executors.append(
                SlurmPipelineExecutor(
                    **options,
                    time=settings.time,
                    partition=(gpus and settings.gpu_partition) or settings.partition,
                    cpus_per_task=settings.cpus_per_task,
                    mem_per_cpu_gb=settings.mem_per_cpu_gb,
                    gpus_per_task=settings.gpus_per_task if gpus else 0,
                    workers=settings.workers,
                    job_name=f"sampling-{step.name}",
                    qos=settings.qos,
                    env_command=settings.env_command or this_env(),
                    sbatch_args=dict(settings.sbatch_args),
                    max_array_size=settings.max_array_size,
                    slurm_logs_folder=str(work.root / step.name / "slurm_logs"),
                    depends=executors[-1] if executors else None,
                )
            )
        else:
            from datatrove.executor import RayPipelineExecutor

            executors.append(
                RayPipelineExecutor(
                    **options,
                    workers=settings.workers,
                    cpus_per_task=settings.cpus_per_task,
                    mem_per_cpu_gb=settings.mem_per_cpu_gb,
                    gpus_per_task=settings.gpus_per_task if gpus else 0,
                )
            )
    return executors


def this_env() -> str | None:
    """The line that activates this process's virtual environment on a compute node (same shared filesystem)."""
    activate = Path(sys.prefix) / "bin" / "activate"
    return f"source {activate}" if activate.is_file() else None


def uses_gpu(job: SamplingJob) -> bool:
    """Whether a classifier would run on a GPU (a WebOrganizer classifier not pinned to the CPU)."""
    return any(getattr(getattr(job, f"{axis}_classifier"), "device", "cpu") != "cpu" for axis in LABEL_AXES)


def step_name(executor) -> str:
    return executor.pipeline[0].name


def run_here(executors: list, settings, work: Work) -> None:
    """Local (or Ray) executors, one step after the other; datatrove's console output goes to work/<step>/."""
    if settings.kind == "ray":
        connect_ray(settings.address)
    elif settings.workers > 1:  # forked from one server that imported these once, not per task (seconds each)
        import multiprocess

        multiprocess.set_forkserver_preload(["datatrove.executor.local", __name__])
    for executor in tqdm(executors, desc="stage 01", unit="step", file=sys.stderr):
        name = step_name(executor)
        error = None
        with console_to(work.root / name / "console.log"):
            try:
                executor.run()
            except Exception as exc:  # reported below with the task's log, whatever it was
                error = exc
        check_step(executor, error)
        work.release(name)
        if name == "bins":
            check_population(totals(work))


def connect_ray(address: str) -> None:
    try:
        import ray
    except ImportError:
        raise ProvenanceError(
            "sampling.executor kind ray needs the ray package, which is not installed",
            "pip install ray on the cluster (matching its version), or use kind local / slurm",
        ) from None
    if not ray.is_initialized():
        ray.init(address=address)


@contextlib.contextmanager
def console_to(path: Path):
    """datatrove's console logger (loguru, on sys.stderr) into a file while a step runs here."""
    from datatrove.utils.logging import setup_default_logger

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "a") as log, contextlib.redirect_stderr(log):
            setup_default_logger()
            yield
    finally:
        setup_default_logger()


# ----------------------------------------------------------------------------------------------- slurm
def run_slurm(executors: list, settings, work: Work) -> None:
    """Submit every step as a job array chained on the one before (afterok), then wait for them in order. Jobs an
    earlier attempt submitted that are still queued or running are waited for, not submitted twice."""
    if not settings.submit:
        script = write_slurm_scripts(executors, work)
        raise ProvenanceError(
            f"dry run: the Slurm scripts are written (submission commands in {script}); nothing was submitted",
            "set sampling.executor.submit: true to launch them",
        )
    submitted = work.root / "slurm_jobs.json"
    earlier = json.loads(submitted.read_text()) if submitted.is_file() else {}
    if any(slurm_queued(str(job_id)) for job_id in earlier.values()):
        for executor in executors:
            executor.job_id = earlier.get(step_name(executor))
    else:
        for executor in executors:
            executor.run()  # outside a Slurm job, run() submits (datatrove then skips completed tasks)
        with atomic_path(submitted) as tmp:
            tmp.write_text(json.dumps({step_name(e): e.job_id for e in executors}))
    wait_slurm(executors, work, settings.poll_seconds)


def write_slurm_scripts(executors: list, work: Work) -> Path:
    """What ``run_slurm`` would submit, written and not submitted: each step's launch_script.slurm and pickled
    executor (datatrove's own), and the sbatch commands in order in work/slurm_dry_run.sh."""
    from datatrove.executor import slurm

    commands = ["#!/bin/bash", "# sbatch commands stage 01 would run, in order (dry run)"]

    def record(contents: str, job_id_retriever: Callable, *args: str) -> str:
        job_id = f"DRY-RUN-{len(commands) - 1}"
        path = work.root / "slurm_dry_run" / f"{job_id}.slurm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(contents)
        commands.append(f"sbatch {' '.join(args)} {path}  # -> {job_id}")
        return job_id

    with mock.patch.object(slurm, "launch_slurm_job", record):
        for executor in executors:
            executor.run()
    script = work.root / "slurm_dry_run.sh"
    script.write_text("\n".join(commands) + "\n")
    return script


def wait_slurm(executors: list, work: Work, poll_seconds: float, queued: Callable[[str], bool] | None = None) -> None:
    """Until every step's tasks completed; a step whose job left the queue with tasks incomplete failed: the rest
    of the chain is cancelled and the first failed task is reported with its log."""
    queued = queued or slurm_queued
    for i, executor in enumerate(tqdm(executors, desc="stage 01 (Slurm)", unit="step", file=sys.stderr)):
        while executor.get_incomplete_ranks(skip_completed=True):
            if not queued(str(executor.job_id)) and executor.get_incomplete_ranks(skip_completed=True):
                cancel_slurm([e.job_id for e in executors[i + 1 :]])
                check_step(executor, None)
            time.sleep(poll_seconds)
        work.release(step_name(executor))
        if step_name(executor) == "bins":
            try:
                check_population(totals(work))
            except ProvenanceError:
                cancel_slurm([e.job_id for e in executors[i + 1 :]])
                raise


def slurm_queued(job_id: str) -> bool:
    """Whether any task of the job array is still pending or running."""
    result = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i"], capture_output=True, text=True)
    return result.returncode == 0 and bool(result.stdout.strip())


def cancel_slurm(job_ids: list) -> None:
    ids = [str(job_id) for job_id in job_ids if job_id not in (None, -1)]
    if ids:
        subprocess.run(["scancel", *ids], check=False)


# ----------------------------------------------------------------------------------------------- failures
def check_step(executor, error: BaseException | None) -> None:
    """Raise for a step with incomplete tasks: the first failed task, its error and its log."""
    incomplete = executor.get_incomplete_ranks(skip_completed=True)
    if not incomplete and error is None:
        return
    name, logs = step_name(executor), Path(executor.logging_dir.path) / "logs"
    failed = [(rank, logs / f"task_{rank:05d}.log") for rank in incomplete]
    errors = [(rank, log, logged_error(log)) for rank, log in failed if log.is_file()]
    rank, log, message = next(((r, lg, m) for r, lg, m in errors if m), errors[0] if errors else (None, None, None))
    if isinstance(error, ProvenanceError):
        problem, fix = error.problem, error.fix
    else:
        problem = message or (f"{type(error).__name__}: {error}" if error else "it did not complete")
        fix = None
    where = (
        f"task {rank} of {executor.world_size} (log: {log})"
        if rank is not None
        else f"{len(incomplete)} of {executor.world_size} tasks did not run (logs: {logs.parent})"
    )
    raise ProvenanceError(
        f"stage 01 step {name!r} failed in {where}: {problem}",
        fix or "read the log, fix the cause and run the stage again: completed tasks are not redone",
    )


def logged_error(log: Path) -> str | None:
    """The message of the first ERROR line of a datatrove task log (loguru format: ``... | ERROR | where - msg``)."""
    for line in log.read_text(errors="replace").splitlines():
        if "| ERROR" in line and " - " in line:
            return line.split(" - ", 1)[1]
    return None


# ----------------------------------------------------------------------------------------------- the result
def totals(work: Work) -> Counter:
    """The counts every task wrote (documents read, duplicates removed, labels), summed over tasks and steps."""
    counts = Counter()
    for step in STEPS:
        for task_counts in work.read_counts(step.name):
            counts.update({k: v for k, v in task_counts.items() if not isinstance(v, list)})
    return counts


def finish(job: SamplingJob, plan: Plan, work: Work) -> SamplingResult:
    """The Selection from the merged sample and the counts, the ids the fetch step read; the released outputs."""
    counts = totals(work)
    check_population(counts)
    for axis in LABEL_AXES:  # read: from metadata + from the classifier (unique documents) + missing
        counts[f"{axis}_missing"] = counts[f"{axis}_absent"] - counts[f"{axis}_from_classifier"]
    populations = work.read_counts("bins")
    population = {
        name: np.sum([c[name] for c in populations], axis=0).astype(np.int64)
        for name in ("population_docs", "population_tokens")
    }
    sampled = np.sort(np.concatenate([np.load(work.sample(g)) for g in range(plan.merge_tasks)]), order="position")
    fetched = pq.read_table([str(p) for p in sorted(work.fetched(0).parent.glob("*.parquet"))])
    order = np.argsort(fetched["position"].to_numpy(), kind="stable")
    ids = fetched["id"].take(order).to_pylist()
    shards, starts = np.unique(fetched["position"].to_numpy()[order] >> np.uint64(ROW_BITS), return_index=True)
    ids_by_shard = {int(o): ids[lo:hi] for o, lo, hi in zip(shards, starts, [*starts[1:], len(ids)])}
    selection = Selection(
        CorpusIndex.from_rows(sampled, bins_of(sampled, len(taxonomy.load().formats))),
        population["population_docs"],
        population["population_tokens"],
        counts,
    )
    return write_outputs(job, selection, ids_by_shard, left_out(job, work, counts))


def left_out(job: SamplingJob, work: Work, counts: Counter) -> dict:
    """The documents the stage leaves out besides duplicates, counted and named (the first few) in the summary and
    on the console: documents with no text (nothing to attribute) and documents whose id an earlier document with
    another text holds (the first occurrence is kept: Dolma3 reuses ids across crawls, so this is a warning)."""
    empty = sorted(p for c in work.read_counts("map") for p in c.get("empty_text_positions", []))[:EXAMPLES]
    pairs = sorted(tuple(p) for c in work.read_counts("ids") for p in c.get("conflict_positions", []))[:EXAMPLES]
    where = documents_at(job, {*empty, *(p for pair in pairs for p in pair)})
    notes = {
        "empty_text": {"documents": counts["removed_empty_text"], "first": [where[p] for p in empty]},
        "conflicting_duplicate_id": {
            "documents": counts["conflicting_duplicate_id"],
            "first": [{"id": where[d]["id"], "kept": where[k], "dropped": where[d]} for k, d in pairs],
        },
    }
    for name, why in (
        ("empty_text", "have no text: left out"),
        ("conflicting_duplicate_id", "reuse the id of an earlier document with another text: the first kept"),
    ):
        if notes[name]["documents"]:
            named = ", ".join(repr(n["id"]) for n in notes[name]["first"])
            print(
                f"stage 01: {notes[name]['documents']:,} documents {why} (first: {named}; {SUMMARY}: left_out.{name})",
                flush=True,
            )
    return notes


def documents_at(job: SamplingJob, positions: set[int]) -> dict[int, dict]:
    """Shard, row and id of the documents at ``positions`` (read from their shards: a few, for naming them)."""
    found = {}
    for ordinal in sorted({p >> ROW_BITS for p in positions}):
        wanted = {p & ((1 << ROW_BITS) - 1) for p in positions if p >> ROW_BITS == ordinal}
        shard = job.shards[ordinal]
        for row, doc in enumerate(corpus.iter_shard(shard.path)):
            if row in wanted:
                found[ordinal << ROW_BITS | row] = {"shard": shard.name, "row": row, "id": doc["id"]}
            if row >= max(wanted):
                break
    return found

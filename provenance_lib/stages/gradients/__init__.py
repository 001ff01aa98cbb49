"""Stage 02 — gradient collection: TrackStar attribution through bergson, streamed into bin-level and
document-level scores. ``scores`` is what stages 03-05 read.

TrackStar's score of a document d for a query q is the cosine of their preconditioned gradients,
``<R^-1/2 g_d / |R^-1/2 g_d|, R^-1/2 g_q / |R^-1/2 g_q|>``, with every gradient first divided by sqrt(V) and
projected (bergson does both in its hooks). It is linear in the document's unit gradient u_d, so documents are
streamed and only sums are kept: per bin the sum of u_d (a query's mean score on a bin is one product), per
document its score against each benchmark's mean query gradient. Modules: ``queries`` (the query texts and
correctness), ``collect`` (driving bergson), ``second_moment`` (V), ``curvature`` (R), ``documents`` (the working
set as windows), ``accumulate`` (the streaming sums and their checkpoints), ``engine`` (ranks), ``pipeline`` (one
checkpoint), ``exactness`` and ``profiles`` (how projection and query variants move the scores), ``outputs``.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ...artifacts import read_json, sha256_file, sha256_json, write_json, write_parquet
from ...errors import ProvenanceError
from ...models import ModelRef
from ...params.gradients import ALL, FINAL, Gradients
from ...taxonomy import load as load_taxonomy
from ...threads import set_threads
from ..sampling import MANIFEST
from . import collect
from .documents import calibration_sample, check_working_set
from .exactness import run_exactness
from .outputs import (
    BIN_SUMS,
    COLLECTION,
    DOCUMENT_GRADIENTS,
    DOCUMENT_IDS,
    EXACTNESS,
    PRECONDITIONER,
    QUERY_STORE,
    STORE,
    VARIANTS,
    GradientsResult,
    collection_record,
    load_result,
    plot_profiles,
    recipe_info,
    save_profiles,
)
from .pipeline import Checkpoint, CheckpointRun, run_checkpoint, score_variants
from .queries import correctness, eval_items, queries_table, query_text
from .scores import CHECKPOINTS, GradientScores, doc_score_columns, save_npy

KEY = "key.json"
SUMMED_COLUMNS = ("id", "bin", "tokens", "windows", "dropped_tokens")

__all__ = ["GradientScores", "GradientsResult", "load_result", "plot_profiles", "run"]


def model_ref(stage, value: str, revision: str | None) -> tuple[ModelRef, Path | None]:
    """A world's model: its local folder when it has one (relative to the world), else a hub id."""
    local = stage.world_path(value)
    return (ModelRef(str(local)), local) if local.is_dir() else (ModelRef(value, revision), None)


def checkpoints(stage, settings: Gradients) -> list[Checkpoint]:
    """The base-model checkpoints to score and sum, with the model each one's query gradients come from: the
    world's query model, or, for an intermediate checkpoint of a world that fine-tuned one per checkpoint (the
    testbed's ``extra.checkpoint_models``), that checkpoint's own, so both sides of a score share its weights."""
    world = stage.world
    labels = list(world.checkpoints) if settings.checkpoints == [ALL] else settings.checkpoints
    if not labels:
        raise ProvenanceError("gradients.checkpoints: [all], but the world lists no checkpoints", f"use [{FINAL}]")
    if len(set(labels)) != len(labels):
        raise ProvenanceError(f"gradients.checkpoints lists a checkpoint twice: {labels}")
    base, base_dir = model_ref(stage, world.base_model, world.base_revision)
    query = model_ref(stage, world.query_model, world.query_revision)[0]
    own_queries = {label: m["query"] for label, m in world.extra.get("checkpoint_models", {}).items() if "query" in m}
    points = []
    for label in labels:
        if label == FINAL:
            (ref, folder), query_ref, names = (base, base_dir), query, (world.base_model, world.query_model)
        elif label in world.checkpoints:
            ref, folder = model_ref(stage, world.checkpoints[label], None)
            query_name = own_queries.get(label, world.query_model)
            query_ref = model_ref(stage, query_name, None)[0] if label in own_queries else query
            names = (world.checkpoints[label], query_name)
        else:
            raise ProvenanceError(
                f"gradients.checkpoints names {label!r}, which the world does not have",
                f"use '{FINAL}', '{ALL}' or one of {sorted(world.checkpoints) or '(none in this world)'}",
            )
        if settings.query.model == "base":
            query_ref, names = ref, (names[0], names[0])
        points.append(Checkpoint(label, ref, folder, query_ref, {"base": names[0], "query": names[1]}))
    return points


def _work_dir(work: Path, key: dict) -> Path:
    """The resume folder (``stage.work_dir``): kept while the inputs are the same, cleared when they changed."""
    if (work / KEY).is_file() and read_json(work / KEY) != key:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / KEY, key)
    return work


def _judge(stage, settings: Gradients, points: list[Checkpoint], work: Path) -> pd.DataFrame:
    """Per item correctness of the model that answers the queries (lm-eval), cached for a resumed run."""
    path = work / "correctness.parquet"
    if not path.is_file():
        model = points[-1].query_model if settings.query.model == "query" else points[-1].model
        judged = correctness(
            model,
            stage.world_path(stage.world.task_dir),
            stage.world.tasks,
            settings.query.eval_batch_size,
            settings.query.shots,
            collect.pick_device(settings.device),
        )
        write_parquet(path, judged)
    return pd.read_parquet(path)


def check_skipped(run: CheckpointRun, documents: int, max_share: float) -> None:
    """Say how many documents the checkpoint left out and why; refuse to go on past ``max_share`` of them."""
    skipped = run.documents.skipped
    if not skipped:
        return
    reasons = Counter(s["reason"] for s in skipped)
    share = len(skipped) / max(documents, 1)
    said = (
        f"stage 02 left out {len(skipped):,} of {documents:,} working-set documents at checkpoint {run.label} "
        f"({share:.1%}): "
        + "; ".join(f"{n:,} {reason}" for reason, n in reasons.most_common())
        + f" (first: {', '.join(s['id'] for s in skipped[:3])})"
    )
    if share > max_share:
        raise ProvenanceError(
            f"{said}, more than gradients.max_skipped_share ({max_share:.1%})",
            "when most documents fail, the model is the cause (check its weights; "
            "gradients.on_nonfinite: stop names the first document); else raise "
            "gradients.max_skipped_share: the work done is kept",
        )
    print(said, flush=True)


# ----------------------------------------------------------------------------------------------- scores
def checkpoint_scores(run: CheckpointRun, queries: pd.DataFrame, manifest: pd.DataFrame, info: dict) -> GradientScores:
    """The contract files of one checkpoint: documents in manifest order, skipped ones left out."""
    rows = run.documents.table().set_index("id")
    doc_scores = rows.reindex([i for i in manifest["id"] if i in rows.index]).reset_index()
    return GradientScores(
        queries,
        run.query_bin_scores(),
        run.documents.counts,
        doc_scores,
        {**info, "checkpoint": run.label, "skipped_documents": run.documents.skipped},
    )


def summed_scores(parts: dict[str, GradientScores], info: dict) -> GradientScores:
    """TrackStar's checkpoint sum: query x bin scores and per-document scores added over checkpoints."""
    first = next(iter(parts.values()))
    ids = [list(p.doc_scores["id"]) for p in parts.values()]
    if any(i != ids[0] for i in ids):
        raise ProvenanceError(
            "checkpoints left out different documents (non-finite gradients in some only)",
            "set gradients.on_nonfinite: stop to see which, or score one checkpoint",
        )
    columns = [c for name in first.benchmarks for c in doc_score_columns(name)]
    doc_scores = first.doc_scores[list(SUMMED_COLUMNS)].copy()
    for column in columns:
        doc_scores[column] = sum(p.doc_scores[column].to_numpy() for p in parts.values())
    qbs = sum(p.query_bin_scores for p in parts.values())
    skipped = [s for p in parts.values() for s in p.info["skipped_documents"]]
    return GradientScores(first.queries, qbs, first.bin_counts, doc_scores, {**info, "skipped_documents": skipped})


def save_store(run: CheckpointRun, folder: Path, work_dir: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_npy(folder / QUERY_STORE, run.query_store.astype(np.float32))
    save_npy(folder / BIN_SUMS, run.documents.bin_sums)
    shutil.copyfile(work_dir / "prepared.pt", folder / PRECONDITIONER)
    grads = run.documents.document_gradients()
    if grads is not None:
        save_npy(folder / DOCUMENT_GRADIENTS, grads)
        write_parquet(folder / DOCUMENT_IDS, run.documents.table()[["id", "bin"]])


# ----------------------------------------------------------------------------------------------- the stage
def run(stage) -> GradientsResult:
    """Stage 02 end to end (see the module docstring); resumes from ``stage.work_dir`` after a kill (the runner
    keeps it for the next attempt and removes it once the stage completed)."""
    s, world, out = stage.params.gradients, stage.world, Path(stage.out_dir)
    started = time.perf_counter()
    set_threads(stage.params.threads)  # the same threads give the same float sums: a resumed run matches
    sampling_dir = stage.input_dir("01_sampling")
    manifest = check_working_set(sampling_dir)
    manifest_sha = sha256_file(sampling_dir / MANIFEST)
    items = eval_items(stage.world_path(world.queries), world.tasks)
    points = checkpoints(stage, s)
    for point in points:  # before anything slow
        collect.check_models(point.model, point.query_model)
    key = {
        "manifest_sha256": manifest_sha,
        "world": world.fingerprint,
        "seed": stage.params.seed,
        "gradients": sha256_json(
            s.model_dump(mode="json", exclude={"exactness", "workers", "nodes", *s.NOT_IN_FINGERPRINT})
        ),
    }
    work = _work_dir(stage.work_dir, key)
    queries = queries_table(items, _judge(stage, s, points, work))
    texts = [query_text(r.question, list(r.choices), int(r.answer), s.query.format) for r in items.itertuples()]
    calibration = calibration_sample(
        sampling_dir, max(s.v.calibration_documents, s.curvature.train_documents), stage.params.seed
    )
    n_bins = load_taxonomy().n_bins
    runs = [
        run_checkpoint(p, s, queries, texts, calibration, sampling_dir, work / p.label, stage.params.threads, n_bins)
        for p in points
    ]
    for r in runs:
        check_skipped(r, len(manifest), s.max_skipped_share)
    info = recipe_info(world.base_model, world.query_model, s, runs, manifest_sha, {p.label: p.names for p in points})
    parts = {r.label: checkpoint_scores(r, queries, manifest, info) for r in runs}
    for r in runs:
        save_store(r, out / STORE / r.label, work / r.label)
    if len(parts) > 1:
        for label, part in parts.items():
            part.save(out / CHECKPOINTS / label)
    scores = summed_scores(parts, info) if len(parts) > 1 else parts[points[0].label]
    final = points[-1]
    if s.query.variants:
        models = {"query": model_ref(stage, world.query_model, world.query_revision)[0], "base": final.model}
        write_parquet(out / VARIANTS, score_variants(s, items, queries, runs[-1], models, work / final.label))
    facts = None
    if s.exactness.enabled:
        table, facts = run_exactness(final, s, queries, texts, calibration, sampling_dir, work / "bergson")
        write_parquet(out / EXACTNESS, table)
    write_json(out / COLLECTION, collection_record(runs, facts, time.perf_counter() - started))
    scores.save(out)
    save_profiles(scores, out)
    return load_result(out)

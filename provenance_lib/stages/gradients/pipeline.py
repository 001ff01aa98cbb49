"""One checkpoint's TrackStar run: V, the query gradients, R, the query store, then the documents pass.

1. **V** for the checkpoint's base model (its ``optimizer.pt``, else the estimate on the calibration sample), and the
   token batch (``budget``: the configured one, or the largest that fits ``memory_gb``).
2. **Query gradients**: every query's (prompt, completion) through bergson on the query model (or the base model),
   divided by the base model's V and projected with the same matrices as the documents.
3. **Train-side gradients** of the calibration sample (documents' windows summed).
4. **R**: both autocorrelations mixed by lambda, inverted to the damped H^-1/2.
5. **Query store**: H^-1/2 applied to the query gradients, unit-normalized (queries x D); the benchmarks' mean
   query gradients (all / correctly / incorrectly answered) for the per-document scores.
6. **Documents** (``engine``): every working-set document's gradient, preconditioned, unit-normalized, summed per
   bin and scored against the means, over ranks.

Steps 1-5 run once in this process and are saved in the checkpoint's work folder, so a resumed run skips them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...artifacts import read_json, write_json
from ...errors import ProvenanceError
from ...models import ModelRef
from ...params.gradients import Gradients
from .collect import Example, grad_sizes, gradients, load_model, nonfinite_rows, pick_device, processor
from .accumulate import Accumulator, query_bin_scores
from .budget import choose_token_batch
from .curvature import Curvature, fit, unit_rows
from .documents import Document
from .engine import PREPARE_RECORD, PREPARED, DocumentJob, Prepared, score_documents, summed_gradients
from .queries import QueryText
from .scores import doc_score_columns, save_npy
from .second_moment import SecondMoment, second_moment

QUERY_GRADIENTS = "query_gradients.npy"


@dataclass(frozen=True)
class Checkpoint:
    """A base-model checkpoint to score: its label, the model, its folder (for ``optimizer.pt``), the model the
    query gradients are taken on, and both as the world names them (recorded)."""

    label: str
    model: ModelRef
    model_dir: Path | None
    query_model: ModelRef
    names: dict = field(default_factory=dict)  # {"base": ..., "query": ...} as in world.json


@dataclass
class CheckpointRun:
    label: str
    sizes: dict[str, int]
    query_store: np.ndarray  # (Q, D) preconditioned unit query gradients
    curvature: Curvature
    second_moment: dict  # where V came from
    documents: Accumulator
    timings: dict = field(default_factory=dict)
    token_batch: dict = field(default_factory=dict)  # budget.TokenBatch.record()

    def query_bin_scores(self) -> np.ndarray:
        return query_bin_scores(self.query_store, self.documents.bin_sums, self.documents.counts)


def query_examples(texts: list[QueryText], tokenizer, max_length: int) -> list[Example]:
    """Prompt + completion, the loss on the completion only (lm-eval's split: the prompt's tokens are those of the
    prompt alone). A query longer than ``max_length`` keeps its last tokens."""
    out = []
    for text in texts:
        whole = tokenizer(text.prompt + text.completion)["input_ids"]
        prompt = len(tokenizer(text.prompt)["input_ids"])
        labels = [-100] * prompt + whole[prompt:]
        out.append(Example(whole[-max_length:], labels[-max_length:]))
    return out


def mean_directions(store: np.ndarray, queries: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Per benchmark: the mean unit query gradient over all its queries, its correctly and its incorrectly answered
    ones (NaN when there are none): a document's mean score over those queries is one dot product with it."""
    rows, columns = [], []
    correct = queries["correct"].to_numpy(bool)
    for name in pd.unique(queries["benchmark"]):
        mine = (queries["benchmark"] == name).to_numpy()
        for mask, column in zip((mine, mine & correct, mine & ~correct), doc_score_columns(name)):
            rows.append(store[mask].mean(axis=0) if mask.any() else np.full(store.shape[1], np.nan))
            columns.append(column)
    return np.asarray(rows), columns


def document_gradients(model, proc, docs: list[Document], settings: Gradients, scratch: Path) -> np.ndarray:
    """Per-document gradients (windows summed), float64, of calibration documents; one whose gradient is not finite
    stops the run or is left out (``on_nonfinite``)."""
    summed, _, bad = summed_gradients(model, proc, docs, settings, scratch)
    return summed[~bad]


def prepare(
    point: Checkpoint,
    settings: Gradients,
    queries: pd.DataFrame,
    texts: list[QueryText],
    calibration: list[dict],
    work_dir: Path,
) -> None:
    """Steps 1-5 (module docstring), saved into ``work_dir`` (``prepare.json`` last: V's record, the timings)."""
    from .documents import tokenize

    timings, start = {}, time.perf_counter()
    device = pick_device(settings.device)
    model, tokenizer = load_model(point.model, device)
    sizes = grad_sizes(model, settings.projection_dim)
    docs = [tokenize(d, tokenizer, settings.max_length, settings.max_windows) for d in calibration]
    docs = [d for d in docs if d.windows]
    v_docs = [d.examples() for d in docs[: settings.v.calibration_documents]]
    moment: SecondMoment = second_moment(model, point.model_dir, list(sizes), v_docs)
    normalizers = moment.normalizers(settings.v.factored)
    proc = processor(normalizers, settings.projection_dim, settings.projection_seed)
    timings["v_s"] = time.perf_counter() - start

    start = time.perf_counter()
    batch = choose_token_batch(model, proc, [e for d in docs for e in d.examples()], settings, work_dir / "bergson")
    settings = settings.model_copy(update={"token_batch_size": batch.token_batch_size})
    timings["token_batch_s"] = time.perf_counter() - start

    start = time.perf_counter()
    query_model = model
    if point.query_model != point.model:
        query_model = load_model(point.query_model, device)[0]
    raw, losses = gradients(
        query_model,
        proc,
        query_examples(texts, tokenizer, settings.max_length),
        settings.token_batch_size,
        work_dir / "bergson",
    )
    bad = nonfinite_rows(raw, losses)
    if bad.any():
        raise ProvenanceError(
            f"query {queries['id'].iloc[int(np.flatnonzero(bad)[0])]} has a non-finite gradient on {point.query_model}",
            "inspect the item and the query model",
        )
    del query_model
    timings["queries_s"] = time.perf_counter() - start

    start = time.perf_counter()
    train = document_gradients(model, proc, docs[: settings.curvature.train_documents], settings, work_dir / "bergson")
    timings["train_side_s"] = time.perf_counter() - start
    c = settings.curvature
    curvature = fit(train, raw, sizes, c.downweight_share, c.damping, c.mix)
    store, _ = unit_rows(curvature.apply(raw))
    means, columns = mean_directions(store, queries)
    save_npy(work_dir / QUERY_GRADIENTS, raw)
    Prepared(normalizers, curvature, means, columns).save(work_dir / PREPARED)
    write_json(
        work_dir / PREPARE_RECORD, {"second_moment": moment.record(), "timings": timings, "token_batch": batch.record()}
    )


def run_checkpoint(
    point: Checkpoint,
    settings: Gradients,
    queries: pd.DataFrame,
    texts: list[QueryText],
    calibration: list[dict],
    sampling_dir: Path,
    work_dir: Path,
    threads: int,
    n_bins: int,
) -> CheckpointRun:
    """The whole checkpoint, resuming from ``work_dir`` (the caller clears it when the inputs changed)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    if not (work_dir / PREPARE_RECORD).is_file():
        prepare(point, settings, queries, texts, calibration, work_dir)
    record = read_json(work_dir / PREPARE_RECORD)
    moment, timings = record["second_moment"], record["timings"]
    prepared = Prepared.load(work_dir / PREPARED)
    start = time.perf_counter()
    job = DocumentJob(Path(sampling_dir), work_dir, point.model, prepared_settings(settings, work_dir), threads, n_bins)
    documents = score_documents(job)
    timings = {**timings, "documents_s": time.perf_counter() - start}
    raw = np.load(work_dir / QUERY_GRADIENTS)
    store, _ = unit_rows(prepared.curvature.apply(raw))
    return CheckpointRun(
        point.label,
        prepared.curvature.sizes,
        store,
        prepared.curvature,
        moment,
        documents,
        timings,
        record["token_batch"],
    )


def prepared_settings(settings: Gradients, work_dir: Path) -> Gradients:
    """The settings with the token batch the checkpoint's prepare step chose (and recorded)."""
    size = read_json(work_dir / PREPARE_RECORD)["token_batch"]["token_batch_size"]
    return settings.model_copy(update={"token_batch_size": size})


# ----------------------------------------------------------------------------------------------- query variants
VARIANTS = (("bare", "query"), ("bare", "base"), ("lettered", "query"), ("lettered", "base"))


def score_variants(
    settings: Gradients,
    items: pd.DataFrame,
    queries: pd.DataFrame,
    run: CheckpointRun,
    models: dict[str, ModelRef],
    work_dir: Path,
) -> pd.DataFrame:
    """How far each other query variant (format x model) moves every benchmark's bin z profile: its query
    gradients, preconditioned with the same R and scored against the same bin sums, beside the run's. A variant
    whose model is the same as another's (real-mini: one model for both roles) is not repeated."""
    from .profiles import variant_table
    from .queries import query_text

    device = pick_device(settings.device)
    settings = prepared_settings(settings, work_dir)
    prepared = Prepared.load(work_dir / PREPARED)
    proc = processor(prepared.normalizers, settings.projection_dim, settings.projection_seed)
    default = (settings.query.format, settings.query.model)
    loaded: dict[str, tuple] = {}
    scores = {}
    for fmt, kind in VARIANTS:
        if (fmt, kind) == default or (kind != default[1] and models[kind] == models[default[1]]):
            continue
        if kind not in loaded:
            loaded[kind] = load_model(models[kind], device)
        model, tokenizer = loaded[kind]
        texts = [query_text(r.question, list(r.choices), int(r.answer), fmt) for r in items.itertuples()]
        grads = gradients(
            model,
            proc,
            query_examples(texts, tokenizer, settings.max_length),
            settings.token_batch_size,
            work_dir / "bergson",
        )[0]
        store, _ = unit_rows(prepared.curvature.apply(grads))
        scores[f"{fmt} / {kind} model"] = query_bin_scores(store, run.documents.bin_sums, run.documents.counts)
    return variant_table(run.query_bin_scores(), scores, queries)

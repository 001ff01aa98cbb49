"""How close the projected scores come to the exact ones, at the levels the study uses them.

On a bounded sample (``exactness.documents_per_bin`` working-set documents per bin, ``queries_per_benchmark``
queries, the run's calibration sample for R), bergson collects every gradient unprojected (projection 0) under each
V path. The exact scores precondition those with the same R recipe (``curvature.fit_low_rank``: the damped, mixed
H^-1/2 without forming a d x d matrix) and unit-normalize them. Each projected variant is made from the same
unprojected gradients with bergson's own projection matrices (``create_module_projection_matrix``: the matrices
its collector uses at that dim and seed, so this equals collecting at that dim), then gets its own R exactly as
the run does. Rows of the table: V path x projection dim x seed against exact; two seeds against each other; the
factored V against the exact Adam V, both unprojected.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from ...params.gradients import Gradients
from .collect import grad_sizes, gradients, load_model, pick_device, processor, tracked_shapes
from .curvature import column_slices, fit, fit_low_rank, unit_rows
from ...taxonomy import load as load_taxonomy
from ..sampling import iter_working_set
from .documents import Document, tokenize
from .pipeline import query_examples
from .profiles import compare
from .queries import QueryText


def sample_documents(sampling_dir, tokenizer, settings: Gradients) -> list[Document]:
    """``exactness.documents`` working-set documents, round-robin over bins (every bin's first document in
    working-set order, then every bin's second, ...), in working-set order; all when None. Two passes: the first
    keeps two integers a document."""
    cap, seen, order = settings.exactness.documents, {}, []
    for position, raw in enumerate(iter_working_set(sampling_dir)):
        b = int(raw["metadata"]["sampling"]["bin"])
        seen[b] = seen.get(b, 0) + 1
        order.append((seen[b], position))
    chosen = {position for _, position in sorted(order)[: cap or len(order)]}
    docs = (
        tokenize(raw, tokenizer, settings.max_length, settings.max_windows)
        for position, raw in enumerate(iter_working_set(sampling_dir))
        if position in chosen
    )
    return [d for d in docs if d.windows]


def sample_queries(queries: pd.DataFrame, per_benchmark: int | None) -> np.ndarray:
    """Row indices of the first ``per_benchmark`` queries of every benchmark (all when None)."""
    if per_benchmark is None:
        return np.arange(len(queries))
    return queries.groupby("benchmark", sort=False).head(per_benchmark).index.to_numpy()


def project(grads: np.ndarray, shapes: dict[str, tuple[int, int]], dim: int, seed: int) -> np.ndarray:
    """Unprojected per-module gradients (rows x sum of O*I) projected to dim x dim per module with bergson's
    matrices for (module, seed): L G R^T, exactly what its collector computes at that dim."""
    from bergson.collector.collector import create_module_projection_matrix

    sizes = {name: o * i for name, (o, i) in shapes.items()}
    out = []
    for name, cols in column_slices(sizes).items():
        o, i = shapes[name]
        g = torch.from_numpy(np.ascontiguousarray(grads[:, cols])).view(-1, o, i)
        left = create_module_projection_matrix(name, "left", dim, o, g.dtype, g.device, "rademacher", "jl", seed)
        right = create_module_projection_matrix(name, "right", dim, i, g.dtype, g.device, "rademacher", "jl", seed)
        out.append((left @ g @ right.T).flatten(1).numpy())
    return np.concatenate(out, axis=1)


def _scores(
    docs: np.ndarray, train: np.ndarray, queries: np.ndarray, sizes: dict[str, int], s: Gradients, low_rank: bool
) -> np.ndarray:
    """Documents x queries TrackStar scores: R from the train and query rows, H^-1/2 both sides, unit norm."""
    c = s.curvature
    curvature = (fit_low_rank if low_rank else fit)(train, queries, sizes, c.downweight_share, c.damping, c.mix)
    return unit_rows(curvature.apply(docs))[0] @ unit_rows(curvature.apply(queries))[0].T


def run_exactness(
    point,
    settings: Gradients,
    queries: pd.DataFrame,
    texts: list[QueryText],
    calibration: list[dict],
    sampling_dir,
    scratch,
) -> tuple[pd.DataFrame, dict]:
    """The exactness table on checkpoint ``point``: its base model, its V (both paths) and its query model."""
    from .second_moment import second_moment

    device = pick_device(settings.device)
    model, tokenizer = load_model(point.model, device)
    query_model = model if point.query_model == point.model else load_model(point.query_model, device)[0]
    docs = [
        d
        for d in (tokenize(raw, tokenizer, settings.max_length, settings.max_windows) for raw in calibration)
        if d.windows
    ]
    names = list(grad_sizes(model, 0))
    moment = second_moment(
        model, point.model_dir, names, [d.examples() for d in docs[: settings.v.calibration_documents]]
    )
    return exactness_table(model, query_model, tokenizer, moment, settings, queries, texts, docs, sampling_dir, scratch)


def exactness_table(
    model,
    query_model,
    tokenizer,
    moment,
    settings: Gradients,
    queries: pd.DataFrame,
    texts: list[QueryText],
    calibration: list[Document],
    sampling_dir,
    scratch,
) -> tuple[pd.DataFrame, dict]:
    """The table described in the module docstring, and what it was computed on."""
    from .pipeline import document_gradients

    e, start = settings.exactness, time.perf_counter()
    docs = sample_documents(sampling_dir, tokenizer, settings)
    train_docs = calibration[: settings.curvature.train_documents]
    picked = sample_queries(queries, e.queries_per_benchmark)
    chosen = queries.iloc[picked].reset_index(drop=True)
    examples = query_examples([texts[i] for i in picked], tokenizer, settings.max_length)
    benchmarks = {
        name: np.flatnonzero((chosen["benchmark"] == name).to_numpy()) for name in pd.unique(chosen["benchmark"])
    }
    bins = np.array([d.bin for d in docs])
    shapes = tracked_shapes(model)
    sizes = grad_sizes(model, 0)
    n_bins = load_taxonomy().n_bins
    rows, exact = [], {}
    for path in e.v_paths:
        proc = processor(moment.normalizers(path == "factored"), 0, settings.projection_seed)
        d_grads = document_gradients(model, proc, docs, settings, scratch)
        t_grads = document_gradients(model, proc, train_docs, settings, scratch)
        q_grads = gradients(query_model, proc, examples, settings.token_batch_size, scratch)[0].astype(np.float64)
        exact[path] = _scores(d_grads, t_grads, q_grads, sizes, settings, low_rank=True)
        for dim in e.dims:
            by_seed = {}
            for seed in e.seeds:
                projected = [project(g, shapes, dim, seed) for g in (d_grads, t_grads, q_grads)]
                # the same R either way (tests/test_gradients_parts.py); the low-rank form is much cheaper once a
                # module's p^2 exceeds the rows (dim 64: 4096^2 eigendecompositions otherwise)
                low_rank = dim * dim > len(t_grads) + len(q_grads)
                by_seed[seed] = _scores(*projected, {n: dim * dim for n in shapes}, settings, low_rank=low_rank)
                rows.append(
                    {
                        "v": path,
                        "dim": dim,
                        "seed": seed,
                        "against": "exact",
                        **compare(exact[path], by_seed[seed], bins, benchmarks, n_bins, e.top_k),
                    }
                )
            if len(e.seeds) > 1:
                a, b = e.seeds[:2]
                rows.append(
                    {
                        "v": path,
                        "dim": dim,
                        "seed": f"{a} vs {b}",
                        "against": "another seed",
                        **compare(by_seed[a], by_seed[b], bins, benchmarks, n_bins, e.top_k),
                    }
                )
    if {"factored", "adam"} <= exact.keys():
        rows.append(
            {
                "v": "factored",
                "dim": 0,
                "seed": "-",
                "against": "exact Adam V",
                **compare(exact["adam"], exact["factored"], bins, benchmarks, n_bins, e.top_k),
            }
        )
    facts = {
        "documents": len(docs),
        "bins": int(len(set(bins.tolist()))),
        "queries": len(chosen),
        "train_documents": len(train_docs),
        "unprojected_dim": sum(sizes.values()),
        "seconds": round(time.perf_counter() - start, 2),
    }
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype(str)
    return table, facts

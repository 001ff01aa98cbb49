"""Bootstrap replicates of stage 02's scores: queries resampled within their benchmark, documents within their bin.

A replicate is itself a ``GradientScores``, so every aggregation variant runs on it unchanged. Stage 02 keeps
per-query bin means and per-document benchmark means, not the documents x queries matrix, so the two resamplings
are combined additively, as main effects of the two-way bootstrap of a crossed design:

* a query row of the replicate is a resampled query's row plus the shift its bin takes when the bin's documents are
  resampled (from ``doc_scores``: the column of the query's own split, correct or incorrect, so the correctness
  differential sees the documents' split-specific noise);
* a document's score is a resampled document's score plus the shift its bin takes when the benchmark's queries are
  resampled (from ``query_bin_scores``), so ``topk`` sees both resamplings too.

Exact for the bin means when documents and queries do not interact; the document x query interaction, which
aggregates cannot recover, is left out, so the intervals are if anything a little narrow. Each replicate draws from
its own generator seeded with (seed, replicate), so every variant and every score set (final, summed) sees the same
draw: their replicates are paired.

Cost per replicate: one gather of the query rows (queries x 576) and of ``doc_scores``, plus the variants; at paper
scale (17k queries, 5.7M documents) ``topk``'s per-bin sort dominates (seconds a replicate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ...params.binning import Binning
from ...stats import zscore
from ..gradients.scores import GradientScores, doc_score_columns
from .variants import SPLITS, BinMeans, Variant, split_masks


@dataclass(frozen=True)
class Draw:
    queries: np.ndarray  # query rows, each benchmark resampled within itself (sizes kept)
    documents: np.ndarray  # doc_scores rows, each bin resampled within itself (bin counts kept)


def draw(scores: GradientScores, rng: np.random.Generator, masks: dict | None = None) -> Draw:
    masks = masks or split_masks(scores.queries)
    rows = [np.flatnonzero(masks[(benchmark, "all")]) for benchmark in scores.benchmarks]
    queries = np.concatenate([rng.choice(r, size=len(r)) for r in rows])
    bins = scores.doc_scores["bin"].to_numpy(np.int64)
    order = np.argsort(bins, kind="stable")
    counts = np.bincount(bins, minlength=len(scores.bin_counts))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_bins = bins[order]
    documents = order[starts[sorted_bins] + (rng.random(len(order)) * counts[sorted_bins]).astype(np.int64)]
    return Draw(queries, documents)


def resample(scores: GradientScores, d: Draw, masks: dict | None = None) -> GradientScores:
    """The replicate ``d`` describes (see the module docstring for how the two resamplings combine); ``masks``:
    ``split_masks(scores.queries)``, passed in to compute it once per bootstrap rather than once per replicate."""
    n_bins = len(scores.bin_counts)
    old_masks = masks or split_masks(scores.queries)
    new_masks = {key: mask[d.queries] for key, mask in old_masks.items()}
    queries = scores.queries.take(d.queries).reset_index(drop=True)
    queries["query_index"] = np.arange(len(queries))
    docs = scores.doc_scores.take(d.documents).reset_index(drop=True)
    old_bins = scores.doc_scores["bin"].to_numpy(np.int64)
    new_bins = old_bins[d.documents]
    drawn_rows = scores.query_bin_scores[d.queries]
    rows = drawn_rows.copy()
    for benchmark in {b for b, _ in old_masks}:
        for split, column in zip(SPLITS, doc_score_columns(benchmark)):
            old, new = old_masks[(benchmark, split)], new_masks[(benchmark, split)]
            if not old.any() or not new.any():
                continue  # no such split in the data, or none drawn in this replicate
            drawn_docs = docs[column].to_numpy(np.float64)
            if split != "all":  # every query row is in exactly one of the correct / incorrect splits
                original = scores.doc_scores[column].to_numpy(np.float64)
                rows[new] += _bin_mean(drawn_docs, new_bins, n_bins) - _bin_mean(original, old_bins, n_bins)
            query_shift = drawn_rows[new].mean(axis=0) - scores.query_bin_scores[old].mean(axis=0)
            docs[column] = drawn_docs + query_shift[new_bins]
    return GradientScores(queries, rows, scores.bin_counts, docs, scores.info)


def replicate_z(
    inputs: dict[str, GradientScores],
    variants: list[Variant],
    params: Binning,
    scored: np.ndarray,
    seed: int,
    scales: dict[str, dict],
) -> dict[str, np.ndarray]:
    """variant name -> (replicates, splits, benchmarks, scored bins) float32 z; NaN where a split has no query in
    a replicate. A replicate's z divides by the point estimate's spread over bins (``scales``), not its own: a
    replicate adds resampling noise to every bin, which would widen the spread and shrink every z, so the interval
    of a strong bin would miss its own estimate when the spread is mostly noise (small worlds)."""
    benchmarks = inputs["final"].benchmarks
    shape = (params.bootstrap, len(SPLITS), len(benchmarks), int(scored.sum()))
    out = {v.name: np.full(shape, np.nan, dtype=np.float32) for v in variants}
    masks = {name: split_masks(s.queries) for name, s in inputs.items()}
    for i in tqdm(range(params.bootstrap), desc="bootstrap replicates", mininterval=5):
        replicate = {
            name: resample(s, draw(s, np.random.default_rng([seed, i]), masks[name]), masks[name])
            for name, s in inputs.items()
        }
        for v in variants:
            for key, z in zscores(v.aggregate(replicate[v.scores], params), scored, scales[v.name]).items():
                out[v.name][i, SPLITS.index(key[1]), benchmarks.index(key[0])] = z[scored]
    return out


def zscores(means: BinMeans, scored: np.ndarray, scales: dict | None = None) -> BinMeans:
    """The within-benchmark z of each split over the scored bins (masked bins are NaN and left out of the mean and
    std, which is the paper's definition whenever no bin is masked, as at paper scale); ``scales``: the spread to
    divide by per (benchmark, split), else each split's own."""
    return {
        key: zscore(np.where(scored, value, np.nan), None if scales is None else scales[key])
        for key, value in means.items()
    }


def spreads(means: BinMeans, scored: np.ndarray) -> dict:
    """The std over the scored bins (ddof 1) per (benchmark, split): the scale of the point estimate's z."""
    return {key: float(np.nanstd(np.where(scored, value, np.nan), ddof=1)) for key, value in means.items()}


def _bin_mean(values: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(bins, weights=values, minlength=n_bins) / counts

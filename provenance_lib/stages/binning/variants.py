"""Aggregations: how stage 02's scores become one score per bin and benchmark, before the within-benchmark z.

Each variant is a small function ``(GradientScores, Binning params) -> BinMeans``, swappable like TRAK's parts:
``BinMeans`` maps (benchmark, split) to a (576,) array of bin scores (NaN where a bin has no documents), for the
splits ``all``, ``correct`` and ``incorrect`` queries (the correctness differential z-scores each split on its own).

* ``paper`` — the paper's definition: a document's score for a benchmark is its mean over the benchmark's queries, a
  bin's score the mean over its documents. Both are means over the same documents x queries block, so it is the mean
  over the benchmark's rows of ``query_bin_scores`` (stage 02 keeps per-query bin means for exactly this).
* ``centered`` — the paper's bin means minus the direction every benchmark shares (all four queries sets answer in
  the same prompt format, so part of every query gradient is common to them). Scores are linear in the query
  gradient, so subtracting a mean query gradient is subtracting its bin scores: by default the mean of the four
  benchmarks' mean rows (each benchmark weighs the same), or the mean over every query row (``centering``).
* ``topk`` — a bin's score is the mean of its top ``topk_share`` documents (from ``doc_scores``): a source that is a
  minority of its bin is diluted by the bin mean, less by its upper tail. Its bootstrap intervals are too narrow
  when a bin's top share is a handful of documents (the bootstrap is inconsistent for extreme order statistics,
  Bickel & Freedman 1981: on 10-document bins Benjamini-Hochberg flagged three null bins beside a planted one); at
  paper scale a bin's top 20% is 2,000 documents, a smooth trimmed mean, and the bootstrap holds.
* ``format_residualized`` — the paper's bin means minus the mean of their format (over the scored bins of that
  format), so a format that matches the queries' shape everywhere (Q&A forums) does not light up every topic. A
  format with a single scored bin residualizes to 0, so at small scales it can erase a real source (on the testbed
  the planted ARC-Challenge bin is the only scored Tutorial bin).
* ``checkpoint_summed`` — the paper's aggregation of scores summed over checkpoints (TrackStar); every other
  variant reads the final checkpoint's own scores, so ``paper`` stays the paper's single-model recipe.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from ...errors import ProvenanceError
from ...params.binning import Binning
from ...taxonomy import load as load_taxonomy
from ..gradients.scores import GradientScores, doc_score_columns

SPLITS = ("all", "correct", "incorrect")
BinMeans = dict[tuple[str, str], np.ndarray]


class VariantUnavailable(ProvenanceError):
    """This variant cannot be computed from these scores (said in the stage summary, not an error of the run)."""


def split_masks(queries: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """(benchmark, split) -> boolean mask over the query rows (all, correctly, incorrectly answered queries)."""
    names, correct = queries["benchmark"].to_numpy(), queries["correct"].to_numpy(bool)
    masks = {}
    for benchmark in sorted(set(names)):
        mine = names == benchmark
        masks.update({(benchmark, "all"): mine, (benchmark, "correct"): mine & correct,
                      (benchmark, "incorrect"): mine & ~correct})
    return masks


def split_rows(scores: GradientScores) -> Iterator[tuple[str, str, np.ndarray]]:
    """(benchmark, split, query rows) for every split that has queries, in the design's benchmark order."""
    masks = split_masks(scores.queries)
    for benchmark in scores.benchmarks:
        for split in SPLITS:
            if masks[(benchmark, split)].any():
                yield benchmark, split, np.flatnonzero(masks[(benchmark, split)])


def scored_bins(scores: GradientScores, params: Binning) -> np.ndarray:
    """Bins with at least ``min_docs`` working-set documents; the rest are masked everywhere."""
    return scores.bin_counts >= params.min_docs


# ----------------------------------------------------------------------------------------------- variants
def paper(scores: GradientScores, params: Binning) -> BinMeans:
    return {(b, s): scores.query_bin_scores[rows].mean(axis=0) for b, s, rows in split_rows(scores)}


def centered(scores: GradientScores, params: Binning) -> BinMeans:
    means = paper(scores, params)
    if len(scores.benchmarks) < 2:
        raise VariantUnavailable("centering needs at least two benchmarks")
    if params.centering == "benchmark_means":
        shared = np.mean([means[(b, "all")] for b in scores.benchmarks], axis=0)
    else:
        shared = scores.query_bin_scores.mean(axis=0)
    return {key: value - shared for key, value in means.items()}


def topk(scores: GradientScores, params: Binning) -> BinMeans:
    bins = scores.doc_scores["bin"].to_numpy(np.int64)
    out = {}
    for benchmark in scores.benchmarks:
        for split, column in zip(SPLITS, doc_score_columns(benchmark)):
            values = scores.doc_scores[column].to_numpy(np.float64)
            if np.isfinite(values).any():
                out[(benchmark, split)] = top_share_mean(bins, values, params.topk_share, len(scores.bin_counts))
    return out


def format_residualized(scores: GradientScores, params: Binning) -> BinMeans:
    scored = scored_bins(scores, params)
    n_formats = len(load_taxonomy().formats)
    out = {}
    for key, value in paper(scores, params).items():
        grid = np.where(scored, value, np.nan).reshape(-1, n_formats)
        with warnings.catch_warnings():   # a format with no scored bin has no mean: NaN, and nothing to subtract
            warnings.simplefilter("ignore", RuntimeWarning)
            format_mean = np.nanmean(grid, axis=0)
        out[key] = (grid - format_mean).ravel()
    return out


def top_share_mean(bins: np.ndarray, values: np.ndarray, share: float, n_bins: int) -> np.ndarray:
    """Per bin, the mean of its ceil(share x n) highest values (NaN for an empty bin)."""
    order = np.lexsort((-values, bins))
    sorted_bins = bins[order]
    counts = np.bincount(bins, minlength=n_bins)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(bins)) - starts[sorted_bins]
    keep = np.ceil(share * counts[sorted_bins] - 1e-9).astype(np.int64)
    chosen = order[rank < np.maximum(keep, 1)]
    sums = np.bincount(bins[chosen], weights=values[chosen], minlength=n_bins)
    taken = np.bincount(bins[chosen], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(taken > 0, sums / taken, np.nan)


# ----------------------------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Variant:
    name: str
    aggregate: Callable[[GradientScores, Binning], BinMeans]
    scores: str   # which of stage 02's score sets it reads: "final" (the last checkpoint) or "summed"


VARIANTS = {v.name: v for v in (
    Variant("paper", paper, "final"),
    Variant("centered", centered, "final"),
    Variant("topk", topk, "final"),
    Variant("format_residualized", format_residualized, "final"),
    Variant("checkpoint_summed", paper, "summed"),
)}


def selected(params: Binning) -> list[Variant]:
    """The variants the params ask for, ``paper`` always first (it is the one exported in the paper's layout)."""
    return [VARIANTS["paper"], *(VARIANTS[name] for name in params.variants if name != "paper")]


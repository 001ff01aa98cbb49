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

Three readings built to be robust to a bin's within-bin spread and its size, each a statistic against the null of
a bin of the same size drawn at random from the benchmark's documents (``topk`` rises with a bin's spread: its top
share is about mean + 1.4 sd, and planting anything widens a bin; at 6 documents its ceil makes it a top 33%):

* ``mean_null`` — the bin mean as a z against its own permutation null: (mean - mu) / (sigma sqrt((N - n) /
  ((N - 1) n))), mu and sigma over the benchmark's N documents. The paper's ordering for equal sizes; a small bin's
  noisy mean is not rewarded, and its own spread never enters.
* ``moderated_t`` — the bin mean over its own standard error, the bin's variance shrunk toward the median
  within-bin variance with ``moderation_df`` prior degrees of freedom (limma's moderated t): a bin whose documents
  disagree (a wide bin) scores lower, a small bin borrows the typical spread.
* ``tail_balance`` — how many of the bin's documents lie in the benchmark's top ``tail_share`` minus how many lie
  in its bottom ``tail_share``, as a z under the size-matched null (hypergeometric counts): like ``topk`` it sees a
  minority of sources in a bin, but a bin that is only wider gains in both tails and nets out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from collections.abc import Callable, Iterator

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
        masks.update(
            {
                (benchmark, "all"): mine,
                (benchmark, "correct"): mine & correct,
                (benchmark, "incorrect"): mine & ~correct,
            }
        )
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


def per_document(statistic: Callable[[np.ndarray, np.ndarray, int, Binning], np.ndarray]) -> Callable:
    """A variant from a per-bin ``statistic(bins, values, n_bins)`` of the documents' scores (``doc_scores``), for
    every benchmark and split that has scores."""

    def aggregate(scores: GradientScores, params: Binning) -> BinMeans:
        bins = scores.doc_scores["bin"].to_numpy(np.int64)
        out = {}
        for benchmark in scores.benchmarks:
            for split, column in zip(SPLITS, doc_score_columns(benchmark)):
                values = scores.doc_scores[column].to_numpy(np.float64)
                finite = np.isfinite(values)
                if finite.any():
                    out[(benchmark, split)] = statistic(bins[finite], values[finite], len(scores.bin_counts), params)
        return out

    return aggregate


topk = per_document(lambda bins, values, n_bins, params: top_share_mean(bins, values, params.topk_share, n_bins))


def format_residualized(scores: GradientScores, params: Binning) -> BinMeans:
    scored = scored_bins(scores, params)
    n_formats = len(load_taxonomy().formats)
    out = {}
    for key, value in paper(scores, params).items():
        grid = np.where(scored, value, np.nan).reshape(-1, n_formats)
        with warnings.catch_warnings():  # a format with no scored bin has no mean: NaN, and nothing to subtract
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


def size_matched_mean(bins: np.ndarray, values: np.ndarray, n_bins: int, params: Binning) -> np.ndarray:
    """``mean_null``: each bin's mean as a z against the mean of as many documents drawn without replacement."""
    n, mean, _ = _bin_moments(bins, values, n_bins)
    total = len(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = values.std() * np.sqrt((total - n) / (max(total - 1, 1) * n))
        return np.where((n > 0) & (se > 0), (mean - values.mean()) / se, np.nan)


def moderated_t(bins: np.ndarray, values: np.ndarray, n_bins: int, params: Binning) -> np.ndarray:
    """``moderated_t``: (bin mean - mean) / sqrt(s2 / n), s2 the bin's variance shrunk toward the median one."""
    n, mean, var = _bin_moments(bins, values, n_bins)
    spread = n >= 2
    prior = float(np.median(var[spread])) if spread.any() else float(values.var())
    df = params.moderation_df
    with np.errstate(invalid="ignore", divide="ignore"):
        shrunk = (df * prior + np.where(spread, (n - 1) * var, 0.0)) / (df + np.maximum(n - 1, 0))
        return np.where((n > 0) & (shrunk > 0), (mean - values.mean()) / np.sqrt(shrunk / n), np.nan)


def tail_balance(bins: np.ndarray, values: np.ndarray, n_bins: int, params: Binning) -> np.ndarray:
    """``tail_balance``: (documents in the top tail - in the bottom tail) as a z under the size-matched null."""
    high, low = np.quantile(values, [1 - params.tail_share, params.tail_share])
    up, down = values > high, values < low
    n = np.bincount(bins, minlength=n_bins).astype(np.float64)
    excess = np.bincount(bins, weights=up.astype(float), minlength=n_bins) - np.bincount(
        bins, weights=down.astype(float), minlength=n_bins
    )
    p_up, p_down, total = up.mean(), down.mean(), len(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = n * (p_up + p_down - (p_up - p_down) ** 2) * (total - n) / max(total - 1, 1)
        return np.where((n > 0) & (var > 0), (excess - n * (p_up - p_down)) / np.sqrt(var), np.nan)


def _bin_moments(bins: np.ndarray, values: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: document count, mean and variance (ddof 1; 0 below two documents)."""
    n = np.bincount(bins, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(bins, weights=values, minlength=n_bins) / n
        squares = np.bincount(bins, weights=(values - mean[bins]) ** 2, minlength=n_bins)
        var = np.where(n >= 2, squares / (n - 1), 0.0)
    return n, mean, var


# ----------------------------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Variant:
    name: str
    aggregate: Callable[[GradientScores, Binning], BinMeans]
    scores: str  # which of stage 02's score sets it reads: "final" (the last checkpoint) or "summed"


VARIANTS = {
    v.name: v
    for v in (
        Variant("paper", paper, "final"),
        Variant("centered", centered, "final"),
        Variant("topk", topk, "final"),
        Variant("format_residualized", format_residualized, "final"),
        Variant("checkpoint_summed", paper, "summed"),
        Variant("mean_null", per_document(size_matched_mean), "final"),
        Variant("moderated_t", per_document(moderated_t), "final"),
        Variant("tail_balance", per_document(tail_balance), "final"),
    )
}


def selected(params: Binning) -> list[Variant]:
    """The variants the params ask for, ``paper`` always first (it is the one exported in the paper's layout)."""
    return [VARIANTS["paper"], *(VARIANTS[name] for name in params.variants if name != "paper")]

"""Comparing two sets of scores at the levels the study uses them: the 576-bin z profile per benchmark, per-document
scores, and top-k document retrieval. Used by the exactness table and the query-variant table."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ...stats import zscore


def bin_profile(query_bin_scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A benchmark's bin means: the mean over its queries of each query's mean score on the bin (the paper's bin
    mean of per-document query means). NaN on empty bins."""
    return np.asarray(query_bin_scores)[rows].mean(axis=0)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 3:
        return float("nan")
    return float(spearmanr(a[both], b[both]).statistic)


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Mean over columns (queries) of |top-k documents by a  and  top-k by b| / k."""
    k = min(k, len(a))
    top_a = np.argpartition(-a, k - 1, axis=0)[:k]
    top_b = np.argpartition(-b, k - 1, axis=0)[:k]
    return float(np.mean([len(np.intersect1d(top_a[:, j], top_b[:, j])) / k for j in range(a.shape[1])]))


def compare(
    reference: np.ndarray,
    candidate: np.ndarray,
    bins: np.ndarray,
    benchmarks: dict[str, np.ndarray],
    n_bins: int,
    top_k: int,
) -> dict:
    """How well ``candidate`` (documents x queries) reproduces ``reference`` on the same documents: per-document
    Spearman (median over queries), top-k retrieval overlap, and per benchmark the Spearman of the bin z profiles.
    ``bins``: each document's bin; ``benchmarks``: name -> query columns."""
    per_query = [spearman(reference[:, j], candidate[:, j]) for j in range(reference.shape[1])]
    out = {
        "document_spearman": float(np.nanmedian(per_query)),
        "top_k_overlap": top_k_overlap(reference, candidate, top_k),
    }
    counts = np.bincount(bins, minlength=n_bins)
    for name, cols in benchmarks.items():
        profiles = []
        for scores in (reference, candidate):
            sums = np.zeros(n_bins)
            np.add.at(sums, bins, scores[:, cols].mean(axis=1))
            with np.errstate(invalid="ignore", divide="ignore"):
                profiles.append(zscore(np.where(counts > 0, sums / counts, np.nan)))
        out[f"z_spearman/{name}"] = spearman(*profiles)
    return out


def variant_table(reference: np.ndarray, variants: dict[str, np.ndarray], queries: pd.DataFrame) -> pd.DataFrame:
    """Spearman of each benchmark's bin z profile between the default query variant and each other one (all
    query x bin score matrices against the same bins)."""
    rows = []
    for name, scores in variants.items():
        for bench in pd.unique(queries["benchmark"]):
            mine = (queries["benchmark"] == bench).to_numpy()
            rows.append(
                {
                    "variant": name,
                    "benchmark": bench,
                    "z_spearman": spearman(zscore(bin_profile(reference, mine)), zscore(bin_profile(scores, mine))),
                }
            )
    return pd.DataFrame(rows)

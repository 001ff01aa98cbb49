"""Profile-level contrasts over the 576-bin z matrix: correlations between benchmarks' profiles, topic and format
marginals, and the contrastive topics of the 2 x 2 design with the test of "the reasoning split is sharper".

Uncertainty comes from one of two kinds of replicate, and every table says which (``unit``):

* ``queries+documents``: stage 03's bootstrap replicates of the z matrix (queries within benchmark, documents within
  bin), for everything linear in z (marginals, their differences) and the sharper-split test;
* ``bins``: resampling the bins themselves, for the profile correlations (a correlation across bins; query-level
  replicates add resampling noise to both profiles and would pull every r toward 0) and, where stage 03 has no
  replicates (the paper's released matrix), for the marginals: the 24 bins a marginal averages are resampled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ...stats import percentile_interval
from ...taxonomy import load as load_taxonomy

CONTRASTS = {"reasoning": ("SocialIQA", "ARC-Challenge"), "knowledge": ("MMLU Social Sciences", "MMLU STEM")}
"""Domain contrasts of the 2 x 2 design, within a capability: social minus STEM."""

INTERACTIONAL_FORMATS = (
    "customer_support",
    "comment_section",
    "faq",
    "q_a_forum",
    "audio_transcript",
    "about_pers",
    "personal_blog",
    "user_review",
    "creative_writing",
)
"""Formats we count as interactional (dialogic or personal) when splitting a benchmark's top bins, as the paper splits
SocialIQA's top 20 into interactional and expository-structured formats. The paper states the counts, not its
assignment; this one is ours (Creative Writing counted as personal narrative, with dialogue)."""


def grids(z: pd.DataFrame) -> np.ndarray:
    """bins x benchmarks -> (benchmarks, topics, formats)."""
    tax = load_taxonomy()
    return z.to_numpy().T.reshape(z.shape[1], len(tax.topics), len(tax.formats))


def _axis_mean(grid: np.ndarray, axis: str) -> np.ndarray:
    """(..., topics, formats) -> (..., labels of ``axis``): the unweighted mean of a label's scored bins."""
    return _nanmean(grid, -1 if axis == "topic" else -2)


def axis_means(z: pd.DataFrame, axis: str) -> pd.DataFrame:
    """labels x benchmarks: the topic (or format) marginals, each the unweighted mean of its scored bins' z."""
    return pd.DataFrame(_axis_mean(grids(z), axis).T, index=load_taxonomy().axis(axis).shorts, columns=z.columns)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """NaN-ignoring mean; NaN (without a warning) where a slice has no finite value (a label with no scored bin)."""
    finite = np.isfinite(x)
    count = finite.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, x, 0).sum(axis=axis) / np.where(count > 0, count, np.nan)


# ----------------------------------------------------------------------------------------------- replicates
def marginal_replicates(
    z: pd.DataFrame, axis: str, replicates: np.ndarray | None, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """(replicates, benchmarks, labels) marginal replicates and their unit. ``replicates``: stage 03's z replicates
    expanded to (replicates, benchmarks, 576), or None to resample the bins a marginal averages."""
    tax = load_taxonomy()
    if replicates is not None:
        shaped = replicates.reshape(len(replicates), z.shape[1], len(tax.topics), len(tax.formats))
        return _axis_mean(shaped, axis), "queries+documents"
    g = grids(z)  # (benchmarks, topics, formats)
    if axis == "format":
        g = g.transpose(0, 2, 1)  # average over topics instead
    draws = rng.integers(0, g.shape[2], size=(n_boot, g.shape[2]))
    resampled = g[:, :, draws]  # (benchmarks, labels, n_boot, 24)
    return _nanmean(resampled, -1).transpose(2, 0, 1), "bins"


# ----------------------------------------------------------------------------------------------- marginals
def marginals(z: pd.DataFrame, axis: str, reps: np.ndarray, unit: str, level: float) -> pd.DataFrame:
    """One row per (label, benchmark): the mean z of the label's scored bins, its interval, the bins it averages."""
    tax = load_taxonomy()
    g = grids(z)
    point = _axis_mean(g, axis)  # (benchmarks, labels)
    n_bins = np.isfinite(g).sum(axis=-1 if axis == "topic" else -2)
    low, high = percentile_interval(reps, level) if len(reps) else (np.full_like(point, np.nan),) * 2
    labels = tax.axis(axis).shorts
    rows = [
        dict(
            axis=axis,
            label=labels[j],
            benchmark=b,
            mean_z=point[i, j],
            low=low[i, j],
            high=high[i, j],
            n_bins=int(n_bins[i, j]),
            unit=unit,
        )
        for i, b in enumerate(z.columns)
        for j in range(len(labels))
    ]
    return pd.DataFrame(rows)


def top_both_ways(table: pd.DataFrame, by: list[str], value: str, n: int, columns: list[str]) -> pd.DataFrame:
    """Per group of ``by`` (in order of appearance), the n rows with the highest and the n with the lowest
    ``value`` (rows without one left out), marked ``direction`` (positive / negative) and ``rank`` (1: the most
    extreme)."""
    rows = []
    for _, group in table.dropna(subset=[value]).groupby(by, sort=False):
        ranked = group.sort_values(value, ascending=False)
        for direction, part in (("positive", ranked.head(n)), ("negative", ranked.tail(n).iloc[::-1])):
            rows += [dict(r, direction=direction, rank=k + 1) for k, r in enumerate(part.to_dict("records"))]
    return pd.DataFrame(rows, columns=columns)


def top_marginals(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """Per axis and benchmark, the n most positive and n most negative marginals (the paper's top formats)."""
    return top_both_ways(
        table,
        ["axis", "benchmark"],
        "mean_z",
        n,
        ["axis", "benchmark", "direction", "rank", "label", "mean_z", "low", "high", "unit"],
    )


# ----------------------------------------------------------------------------------------------- contrasts
def contrastive_topics(z: pd.DataFrame, reps: np.ndarray, unit: str, level: float) -> pd.DataFrame:
    """Per contrast of the design and topic: delta = social minus STEM topic marginal, with its interval."""
    tax = load_taxonomy()
    point = _axis_mean(grids(z), "topic")
    columns = list(z.columns)
    rows = []
    for contrast, (social, stem) in CONTRASTS.items():
        if social not in columns or stem not in columns:
            continue
        i, j = columns.index(social), columns.index(stem)
        delta = point[i] - point[j]
        low, high = (
            percentile_interval(reps[:, i] - reps[:, j], level) if len(reps) else (np.full(len(delta), np.nan),) * 2
        )
        rows += [
            dict(
                contrast=contrast,
                pair=f"{social} minus {stem}",
                topic=tax.topics.shorts[k],
                delta=delta[k],
                low=low[k],
                high=high[k],
                unit=unit,
            )
            for k in range(len(delta))
        ]
    return pd.DataFrame(rows)


def sharper_test(contrasts: pd.DataFrame, z: pd.DataFrame, reps: np.ndarray, unit: str, level: float) -> dict:
    """Is the reasoning split sharper than the knowledge split? D = max |delta| (reasoning) - max |delta|
    (knowledge) over topics; its interval and the one-sided bootstrap p of D <= 0."""
    columns = list(z.columns)
    if not all(b in columns for pair in CONTRASTS.values() for b in pair) or contrasts.empty:
        return dict(available=False, reason="needs all four benchmarks")
    sharpness = {c: float(contrasts.loc[contrasts["contrast"] == c, "delta"].abs().max()) for c in CONTRASTS}
    out = dict(
        available=True, unit=unit, max_abs_delta=sharpness, difference=sharpness["reasoning"] - sharpness["knowledge"]
    )
    if len(reps):

        def spread(pair):
            social, stem = (columns.index(b) for b in pair)
            return np.nanmax(np.abs(reps[:, social] - reps[:, stem]), axis=1)

        d = spread(CONTRASTS["reasoning"]) - spread(CONTRASTS["knowledge"])
        low, high = percentile_interval(d, level)
        out.update(
            low=float(low),
            high=float(high),
            replicates=len(d),
            share_reasoning_sharper=float(np.mean(d > 0)),
            p_one_sided=float((np.sum(d <= 0) + 1) / (len(d) + 1)),
        )
    return out


# ----------------------------------------------------------------------------------------------- correlations
def correlation_table(z: pd.DataFrame, n_boot: int, level: float, rng: np.random.Generator) -> pd.DataFrame:
    """Every pair of benchmarks, Pearson and Spearman r over the bins scored in all of them, with a bins-resampled
    percentile interval (the same bins drawn for every pair in a replicate)."""
    complete = z.dropna()
    values = complete.to_numpy()
    draws = rng.integers(0, len(values), size=(n_boot, len(values))) if n_boot else np.zeros((0, len(values)), int)
    rows = []
    for method in ("pearson", "spearman"):
        point = _corr(values[None], method)[0]
        reps = _corr(values[draws], method) if n_boot else np.zeros((0,) + point.shape)
        low, high = percentile_interval(reps, level) if n_boot else (np.full_like(point, np.nan),) * 2
        for i, a in enumerate(complete.columns):
            for j, b in enumerate(complete.columns):
                if i < j:
                    rows.append(
                        dict(
                            method=method,
                            a=a,
                            b=b,
                            r=point[i, j],
                            low=low[i, j],
                            high=high[i, j],
                            n_bins=len(values),
                            unit="bins",
                        )
                    )
    return pd.DataFrame(rows)


def correlation_matrix(table: pd.DataFrame, names: list[str], method: str = "pearson") -> pd.DataFrame:
    """``correlation_table``'s pairs as a square matrix over ``names`` (1 on the diagonal of a benchmark the run
    has, NaN for one it lacks)."""
    present = set(table["a"]) | set(table["b"])
    matrix = pd.DataFrame(np.nan, index=names, columns=names)
    for name in present & set(names):
        matrix.at[name, name] = 1.0
    for row in table[table["method"] == method].itertuples():
        matrix.at[row.a, row.b] = matrix.at[row.b, row.a] = row.r
    return matrix


def _corr(samples: np.ndarray, method: str) -> np.ndarray:
    """(draws, bins, benchmarks) -> (draws, benchmarks, benchmarks) correlation; Spearman = Pearson of ranks."""
    x = rankdata(samples, axis=1) if method == "spearman" else samples
    x = x - x.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = x / np.sqrt((x**2).sum(axis=1, keepdims=True))
    return np.einsum("dnk,dnl->dkl", x, x)


# ----------------------------------------------------------------------------------------------- top bins
def interactional_split(z: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per benchmark: how many of its top-k bins have an interactional format (``INTERACTIONAL_FORMATS``)."""
    tax = load_taxonomy()
    rows = []
    for benchmark in z.columns:
        top = z[benchmark].dropna().sort_values(ascending=False).head(k).index
        formats = [tax.bin_labels(int(b))[1].key for b in top]
        inter = sum(f in INTERACTIONAL_FORMATS for f in formats)
        rows.append(
            dict(
                benchmark=benchmark,
                top_bins=len(formats),
                interactional=inter,
                expository_structured=len(formats) - inter,
            )
        )
    return pd.DataFrame(rows)

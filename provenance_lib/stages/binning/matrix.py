"""The 576 x benchmark influence matrix as one long table: a row per (variant, split, benchmark, bin) with the bin's
score, its within-benchmark z, the bootstrap interval and p-value of z, the Benjamini-Hochberg q over the bins, and
the counts behind it. Built from stage 02's scores, or imported from the paper's released files.

Masked bins (fewer than ``min_docs`` working-set documents, empty ones included) keep their mean score when they
have one, but get no z and are left out of the mean and std every other bin's z is taken against: an empty bin has
no score to average, and a bin of two documents would widen the spread with noise. With no masked bin (the paper:
436 to 10,000 documents a bin) this is exactly the paper's z over 576 bins.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from ...errors import ProvenanceError
from ...params.binning import Binning
from ...stats import bh_qvalues, bootstrap_p, percentile_interval
from ...taxonomy import load as load_taxonomy
from ..gradients.scores import GradientScores
from .bootstrap import replicate_z, spreads, zscores
from .variants import SPLITS, VariantUnavailable, scored_bins, selected, split_masks

COLUMNS = [
    "bin",
    "topic",
    "format",
    "benchmark",
    "variant",
    "split",
    "mean_score",
    "z",
    "z_low",
    "z_high",
    "p_value",
    "q_value",
    "n_docs",
    "n_queries",
    "masked",
]


def compute(inputs: dict[str, GradientScores], params: Binning, seed: int):
    """Every selected variant on ``inputs`` ({"final": scores, "summed": scores when stage 02 summed checkpoints}).
    Returns (table, the paper variant's replicate z or None, {variant: why it was skipped})."""
    final = inputs["final"]
    scored = scored_bins(final, params)
    if scored.sum() < 2:
        raise ProvenanceError(
            f"{int(scored.sum())} of {len(scored)} bins have at least binning.min_docs = {params.min_docs} scored "
            "documents; a within-benchmark z needs two",
            "lower binning.min_docs, or sample more documents per bin",
        )
    variants, skipped, means = [], {}, {}
    for variant in selected(params):
        if variant.scores not in inputs:
            skipped[variant.name] = "stage 02 scored a single checkpoint: there is no sum over checkpoints"
            continue
        try:
            means[variant.name] = variant.aggregate(inputs[variant.scores], params)
        except VariantUnavailable as exc:
            skipped[variant.name] = exc.problem
            continue
        variants.append(variant)
    scales = {name: spreads(value, scored) for name, value in means.items()}
    replicates = replicate_z(inputs, variants, params, scored, seed, scales) if params.bootstrap else {}
    frames = [variant_rows(name, value, scored, final, replicates.get(name), params) for name, value in means.items()]
    return pd.concat(frames, ignore_index=True), replicates.get("paper"), skipped


def variant_rows(
    variant: str,
    means: dict,
    scored: np.ndarray,
    scores: GradientScores,
    replicates: np.ndarray | None,
    params: Binning,
) -> pd.DataFrame:
    """One variant's rows: per (benchmark, split) its bin scores, z, interval, p and BH q over the scored bins."""
    z_all = zscores(means, scored)
    masks = split_masks(scores.queries)
    frames = []
    for (benchmark, split), mean in means.items():
        z = z_all[(benchmark, split)]
        low, high, p = (np.full(len(z), np.nan) for _ in range(3))
        if replicates is not None:
            reps = replicates[:, SPLITS.index(split), scores.benchmarks.index(benchmark)].astype(np.float64)
            low[scored], high[scored] = percentile_interval(reps, params.ci_level)
            p[scored] = bootstrap_p(z[scored], reps)
        frames.append(
            bin_frame(
                benchmark,
                variant,
                split,
                mean,
                z,
                low,
                high,
                p,
                scores.bin_counts,
                int(masks[(benchmark, split)].sum()),
                ~scored,
            )
        )
    return pd.concat(frames, ignore_index=True)


def bin_frame(
    benchmark: str,
    variant: str,
    split: str,
    mean: np.ndarray,
    z: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    p: np.ndarray,
    n_docs: np.ndarray,
    n_queries: int | None,
    masked: np.ndarray,
) -> pd.DataFrame:
    topics, formats = bin_label_columns()
    return pd.DataFrame(
        {
            "bin": np.arange(len(topics), dtype=np.int16),
            "topic": topics,
            "format": formats,
            "benchmark": benchmark,
            "variant": variant,
            "split": split,
            "mean_score": mean,
            "z": z,
            "z_low": low,
            "z_high": high,
            "p_value": p,
            "q_value": bh_qvalues(p),
            "n_docs": np.asarray(n_docs, dtype=np.int64),
            "n_queries": pd.array([n_queries] * len(topics), dtype="Int64"),
            "masked": np.asarray(masked, dtype=bool),
        }
    )[COLUMNS]


@cache
def bin_label_columns() -> tuple[list[str], list[str]]:
    """The topic and format short names of bins 0-575."""
    tax = load_taxonomy()
    labels = [tax.bin_labels(b) for b in range(tax.n_bins)]
    return [t.short for t, _ in labels], [f.short for _, f in labels]


def released_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The paper's released files as this stage's table: the paper variant, all queries, values as published (no
    interval: the files carry no query-level scores to resample; no query counts: the files do not say)."""
    nan = np.full(load_taxonomy().n_bins, np.nan)
    return pd.concat(
        [
            bin_frame(
                name,
                "paper",
                "all",
                t["mean_score"].to_numpy(float),
                t["zscore"].to_numpy(float),
                nan,
                nan,
                nan,
                t["doc_count"].to_numpy(),
                None,
                np.zeros(len(t), bool),
            )
            for name, t in tables.items()
        ],
        ignore_index=True,
    )

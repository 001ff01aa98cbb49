"""The correctness differential: which bins' influence differs between the queries the query model answers
correctly and those it gets wrong. Each split is aggregated and z-scored on its own (stage 03's ``correct`` and
``incorrect`` splits of the paper variant), then delta z = z_correct - z_incorrect per bin; intervals and p-values
from stage 03's paired replicates (both splits come from the same draw), Benjamini-Hochberg over the scored bins."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...stats import bh_qvalues, bootstrap_p, percentile_interval
from ...taxonomy import load as load_taxonomy
from ..binning import SPLITS, BinningResult
from .profiles import top_both_ways

COLUMNS = [
    "benchmark",
    "bin",
    "bin_name",
    "z_correct",
    "z_incorrect",
    "delta_z",
    "low",
    "high",
    "p_value",
    "q_value",
    "significant",
    "n_correct",
    "n_incorrect",
]


def differential(
    binning: BinningResult, replicates: np.ndarray | None, level: float, fdr: float
) -> tuple[pd.DataFrame, dict[str, str]]:
    """(one row per benchmark and scored bin, {benchmark: why it has no differential})."""
    tax = load_taxonomy()
    correct, incorrect = binning.matrix("paper", "correct"), binning.matrix("paper", "incorrect")
    counts = binning.summary["n_queries"]
    frames, unavailable = [], {}
    for k, benchmark in enumerate(binning.benchmarks):
        if correct[benchmark].isna().all() or incorrect[benchmark].isna().all():
            unavailable[benchmark] = (
                "the released matrix has no split by correctness"
                if not counts.get(f"{benchmark} / all")
                else "the query model answers all of its queries correctly or none"
            )
            continue
        delta = (correct[benchmark] - incorrect[benchmark]).to_numpy()
        scored = np.isfinite(delta)
        low, high, p = (np.full(len(delta), np.nan) for _ in range(3))
        if replicates is not None:
            reps = replicates[:, SPLITS.index("correct"), k] - replicates[:, SPLITS.index("incorrect"), k]
            low[scored], high[scored] = percentile_interval(reps[:, scored], level)
            p[scored] = bootstrap_p(delta[scored], reps[:, scored])
        q = bh_qvalues(p)
        bins = np.flatnonzero(scored)
        frames.append(
            pd.DataFrame(
                {
                    "benchmark": benchmark,
                    "bin": bins,
                    "bin_name": [tax.bin_name(int(b)) for b in bins],
                    "z_correct": correct[benchmark].to_numpy()[bins],
                    "z_incorrect": incorrect[benchmark].to_numpy()[bins],
                    "delta_z": delta[bins],
                    "low": low[bins],
                    "high": high[bins],
                    "p_value": p[bins],
                    "q_value": q[bins],
                    "significant": q[bins] <= fdr,
                    "n_correct": counts.get(f"{benchmark} / correct"),
                    "n_incorrect": counts.get(f"{benchmark} / incorrect"),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return table[COLUMNS], unavailable


def top_differentials(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """Per benchmark, the n bins with the largest positive and the largest negative delta z."""
    return top_both_ways(
        table,
        ["benchmark"],
        "delta_z",
        n,
        ["benchmark", "direction", "rank", "bin_name", "delta_z", "low", "high", "q_value", "significant"],
    )

"""The paired analysis: does forgetting the top-attributed documents hurt a benchmark more than forgetting random ones?

For each pair (construction, benchmark b, topic, seed) the difference d = gamma_targeted(b) - gamma_random(b), on
each measure (accuracy, mean gold-answer log-likelihood). Per construction, benchmark and measure:

* median of d with a percentile bootstrap CI (``bootstrap`` resamples, seeded);
* one-sided Wilcoxon signed-rank test (d > 0) over the pairs (zero differences dropped, as Wilcoxon does; NaN when
  every d is zero);
* one-sided paired t-test on per-topic seed means (gamma_targeted vs gamma_random averaged over seeds; NaN with
  fewer than two topics);
* Benjamini-Hochberg over the four benchmarks within each (construction, measure, test) family, as the paper
  reports them (``scipy.stats.false_discovery_control``);
* Cohen's d_z = mean(d) / sd(d).

Selectivity sel(b) = |gamma(b)| / mean over the other benchmarks b' of |gamma(b')|, with gamma the mean damage of
the runs whose forget sets target b (> 1: the intended benchmark is hurt more than the collateral ones).
gamma_net = gamma - gamma_global subtracts the damage of forgetting as many documents of any topic.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
from scipy import stats

from ...benchmarks import BENCHMARKS
from ...reported import paper_reported
from ...stats import bh_qvalues
from .evaluate import MEASURES

PAIR_KEYS = ["construction", "benchmark", "topic", "seed"]


def pair_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per pair, evaluated benchmark and measure: gamma of the targeted and the random run, and d.
    ``runs``: one row per run and evaluated benchmark (``kind``, ``PAIR_KEYS``, ``evaluated``, ``gamma_*``)."""
    long = runs[runs["kind"] != "global"].melt(
        id_vars=["kind", *PAIR_KEYS, "evaluated"], value_vars=[f"gamma_{m}" for m in MEASURES],
        var_name="measure", value_name="gamma")
    long["measure"] = long["measure"].str.removeprefix("gamma_")
    wide = long.pivot_table(index=[*PAIR_KEYS, "evaluated", "measure"], columns="kind", values="gamma",
                            aggfunc="first").reset_index()
    wide = wide.rename(columns={"targeted": "gamma_targeted", "random": "gamma_random"}).dropna(
        subset=["gamma_targeted", "gamma_random"])
    wide["d"] = wide["gamma_targeted"] - wide["gamma_random"]
    wide.columns.name = None
    return wide.reset_index(drop=True)


def bootstrap_median_ci(d: np.ndarray, resamples: int, confidence: float, seed: int) -> tuple[float, float]:
    draws = np.random.default_rng(seed).choice(d, size=(resamples, len(d)), replace=True)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.median(draws, axis=1), [tail, 100 - tail])
    return float(low), float(high)


def _wilcoxon(d: np.ndarray) -> float:
    if not np.any(d != 0):
        return float("nan")
    return float(stats.wilcoxon(d, alternative="greater").pvalue)


def _topic_t(pairs: pd.DataFrame) -> float:
    means = pairs.groupby("topic")[["gamma_targeted", "gamma_random"]].mean()
    if len(means) < 2 or np.ptp(means["gamma_targeted"] - means["gamma_random"]) == 0:
        return float("nan")   # fewer than two topics, or no variance: the t statistic is undefined
    return float(stats.ttest_rel(means["gamma_targeted"], means["gamma_random"], alternative="greater").pvalue)


def paired_statistics(pairs: pd.DataFrame, resamples: int, confidence: float, seed: int) -> pd.DataFrame:
    """One row per (construction, benchmark, measure): the statistics of d on the targeted benchmark itself."""
    own = pairs[pairs["evaluated"] == pairs["benchmark"]]
    rows = []
    for (construction, benchmark, measure), group in own.groupby(["construction", "benchmark", "measure"], sort=False):
        d = group["d"].to_numpy(np.float64)
        low, high = bootstrap_median_ci(d, resamples, confidence, seed)
        sd = d.std(ddof=1) if len(d) > 1 else float("nan")
        rows.append(dict(construction=construction, benchmark=benchmark, measure=measure, n=len(d),
                         topics=group["topic"].nunique(), median_d=float(np.median(d)), ci_low=low, ci_high=high,
                         mean_d=float(d.mean()), cohens_dz=float(d.mean() / sd) if sd and sd > 0 else float("nan"),
                         wilcoxon_p=_wilcoxon(d), paired_t_p=_topic_t(group)))
    table = pd.DataFrame(rows)
    for test in ("wilcoxon_p", "paired_t_p"):
        table[f"{test}_bh"] = table.groupby(["construction", "measure"])[test].transform(
            lambda family: bh_qvalues(family.to_numpy()))
    order = {b.name: i for i, b in enumerate(BENCHMARKS)}
    return table.sort_values(["measure", "construction", "benchmark"], key=lambda c: c.map(order) if
                             c.name == "benchmark" else c, kind="stable").reset_index(drop=True)


def selectivity(runs: pd.DataFrame) -> pd.DataFrame:
    """sel(b) per (construction, kind, benchmark, measure), from the mean damage of the runs that target b."""
    rows = []
    aimed = runs[runs["kind"] != "global"]
    for (construction, kind, benchmark), group in aimed.groupby(["construction", "kind", "benchmark"], sort=False):
        for measure in MEASURES:
            gamma = group.groupby("evaluated")[f"gamma_{measure}"].mean().abs()
            others = gamma.drop(benchmark, errors="ignore")
            if benchmark not in gamma or others.empty:
                continue
            sel = gamma[benchmark] / others.mean() if others.mean() > 0 else float("inf")
            rows.append(dict(construction=construction, kind=kind, benchmark=benchmark, measure=measure,
                             gamma_own=float(gamma[benchmark]), gamma_others=float(others.mean()),
                             selectivity=float(sel)))
    return pd.DataFrame(rows)


def net_damage(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean gamma, gamma_global and gamma_net = gamma - gamma_global per (construction, kind, benchmark, measure),
    on the targeted benchmark."""
    own = runs[(runs["kind"] != "global") & (runs["evaluated"] == runs["benchmark"])]
    rows = []
    for measure in MEASURES:
        grouped = own.groupby(["construction", "kind", "benchmark"], sort=False)
        table = grouped[[f"gamma_{measure}", f"gamma_global_{measure}"]].mean()
        table.columns = ["gamma", "gamma_global"]
        table["gamma_net"] = table["gamma"] - table["gamma_global"]
        rows.append(table.reset_index().assign(measure=measure))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def paper_values() -> dict:
    return paper_reported()["unlearning_paired_targeted_minus_random"]


def paper_table(statistics: pd.DataFrame, measure: str = "acc") -> pd.DataFrame:
    """This run's accuracy statistics per construction beside the paper's (72 pairs per benchmark)."""
    paper = paper_values()
    mine = statistics[statistics["measure"] == measure]
    rows = []
    for b in BENCHMARKS:
        reported = paper.get(b.name, {})
        row = {"benchmark": b.name, "paper median_d": reported.get("median_d"), "paper ci": reported.get("ci"),
               "paper wilcoxon_p_bh": reported.get("wilcoxon_p_bh"), "paper dz": reported.get("cohens_dz"),
               "paper verdict": reported.get("verdict")}
        for r in mine[mine["benchmark"] == b.name].itertuples():
            row.update({f"{r.construction} n": r.n, f"{r.construction} median_d": round(r.median_d, 4),
                        f"{r.construction} ci": [round(r.ci_low, 4), round(r.ci_high, 4)],
                        f"{r.construction} wilcoxon_p_bh": r.wilcoxon_p_bh, f"{r.construction} dz": r.cohens_dz})
        rows.append(row)
    return pd.DataFrame(rows).set_index("benchmark")


def plot_pairs(pairs: pd.DataFrame):
    """Paired points per benchmark: gamma of the random (left) and targeted (right) run of each pair, joined by a
    line; one row per measure, one column per targeted benchmark; colour = construction."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    own = pairs[pairs["evaluated"] == pairs["benchmark"]]
    benchmarks = [b.name for b in BENCHMARKS if b.name in set(own["benchmark"])]
    constructions = sorted(own["construction"].unique())
    colours = dict(zip(constructions, sns.color_palette("colorblind", len(constructions))))
    fig, axes = plt.subplots(len(MEASURES), max(len(benchmarks), 1), figsize=(3.2 * max(len(benchmarks), 1), 5.5),
                             squeeze=False, sharex=True)
    for row, measure in enumerate(MEASURES):
        for col, benchmark in enumerate(benchmarks):
            ax = axes[row][col]
            cell = own[(own["measure"] == measure) & (own["benchmark"] == benchmark)]
            for i, construction in enumerate(constructions):
                part = cell[cell["construction"] == construction]
                x = np.array([0, 1]) + (i - (len(constructions) - 1) / 2) * 0.12
                for r in part.itertuples():
                    ax.plot(x, [r.gamma_random, r.gamma_targeted], "-o", color=colours[construction], alpha=0.6,
                            markersize=3, linewidth=0.8, label=construction if r.Index == part.index[0] else None)
            ax.axhline(0, color="grey", linewidth=0.6)
            ax.set_xticks([0, 1], ["random", "targeted"])
            ax.set_xlim(-0.4, 1.4)
            if row == 0:
                ax.set_title(benchmark, fontsize=10)
            if col == 0:
                ax.set_ylabel(f"gamma ({MEASURES[measure]})", fontsize=8)
    if constructions and benchmarks:
        axes[0][0].legend(title="construction", fontsize=7, title_fontsize=7)
    fig.suptitle("Damage of forgetting targeted vs matched random documents (positive = damage)", fontsize=10)
    fig.tight_layout()
    return fig

"""The paired analysis: does forgetting the top-attributed documents hurt a benchmark more than forgetting random ones?

For each pair (construction, benchmark b, topic, seed) the difference d = gamma_targeted(b) - gamma_random(b), on
each measure (accuracy, mean gold-answer log-likelihood). Pairs are not independent when they share documents (with
``targeted: top`` every seed of a topic forgets the same targeted set), so the headline statistics are computed over
**clusters**: the connected groups of pairs linked by a shared document in either of their sets (a topic's pairs
under ``top``; each pair alone under ``split``, whose sets are disjoint). Per construction, benchmark and measure:

* median of the cluster means of d with a percentile cluster-bootstrap CI (``bootstrap`` resamples, seeded);
* one-sided Wilcoxon signed-rank test (d > 0) over the cluster means (valid when each cluster's targeted and random
  sets are exchangeable under the null; zero means dropped, as Wilcoxon does; NaN when every mean is zero);
* Cohen's d_z = mean / sd of the cluster means;
* one-sided paired t-test on per-topic means (gamma_targeted vs gamma_random averaged over seeds; NaN with fewer
  than two topics);
* the paper's statistics beside them (``paper_method_*``): median, bootstrap CI, Wilcoxon and d_z over the pairs as
  if independent, as the paper reports its 72 pairs per benchmark;
* Benjamini-Hochberg over the four benchmarks within each (construction, measure, test) family, as the paper
  reports them (``scipy.stats.false_discovery_control``).

Selectivity sel(b) = |gamma(b)| / mean over the other benchmarks b' of |gamma(b')|, with gamma the mean damage of
the runs whose forget sets target b (> 1: the intended benchmark is hurt more than the collateral ones).
gamma_net = gamma - gamma_global subtracts the damage of forgetting as many documents of any topic, on the same
retain stream.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse, stats

from ...benchmarks import BENCHMARKS
from ...reported import paper_reported
from ...stats import bh_qvalues
from .evaluate import MEASURES

PAIR_KEYS = ["construction", "benchmark", "topic", "seed"]


def pair_table(runs: pd.DataFrame, ids: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per pair, evaluated benchmark and measure: gamma of the targeted and the random run, d, and the
    pair's cluster. ``runs``: one row per run and evaluated benchmark (``kind``, ``set``, ``PAIR_KEYS``,
    ``evaluated``, ``gamma_*``); ``ids``: the sets' documents (set, id), which link pairs into clusters (absent:
    pairs of one topic are one cluster)."""
    aimed = runs[runs["kind"] != "global"]
    long = aimed.melt(
        id_vars=["kind", *PAIR_KEYS, "evaluated"],
        value_vars=[f"gamma_{m}" for m in MEASURES],
        var_name="measure",
        value_name="gamma",
    )
    long["measure"] = long["measure"].str.removeprefix("gamma_")
    wide = long.pivot_table(
        index=[*PAIR_KEYS, "evaluated", "measure"], columns="kind", values="gamma", aggfunc="first"
    ).reset_index()
    wide = wide.rename(columns={"targeted": "gamma_targeted", "random": "gamma_random"}).dropna(
        subset=["gamma_targeted", "gamma_random"]
    )
    wide["d"] = wide["gamma_targeted"] - wide["gamma_random"]
    wide.columns.name = None
    sets = aimed.drop_duplicates([*PAIR_KEYS, "kind"]).pivot(index=PAIR_KEYS, columns="kind", values="set")
    sets = sets.rename(columns={"targeted": "targeted_set", "random": "random_set"}).reset_index()
    sets.columns.name = None
    sets["cluster"] = clusters(sets, ids)
    return wide.merge(sets, on=PAIR_KEYS, how="left").reset_index(drop=True)


def clusters(pairs: pd.DataFrame, ids: pd.DataFrame | None) -> np.ndarray:
    """A cluster label per pair (``pairs``: PAIR_KEYS, targeted_set, random_set): within each construction and
    benchmark, the connected components of pairs linked by a document either of their sets forgets."""
    labels = np.empty(len(pairs), dtype=object)
    for (construction, benchmark), group in pairs.groupby(["construction", "benchmark"], sort=False):
        if ids is None:
            component = group["topic"].factorize()[0]
        else:
            members = pd.concat(
                [
                    group[["targeted_set"]].rename(columns={"targeted_set": "set"}).assign(pair=range(len(group))),
                    group[["random_set"]].rename(columns={"random_set": "set"}).assign(pair=range(len(group))),
                ]
            ).merge(ids[["set", "id"]], on="set")
            doc = members["id"].factorize()[0]
            incidence = sparse.csr_matrix(
                (np.ones(len(members)), (members["pair"], doc)), shape=(len(group), doc.max() + 1 if len(doc) else 0)
            )
            component = sparse.csgraph.connected_components(incidence @ incidence.T, directed=False)[1]
        labels[pairs.index.get_indexer(group.index)] = [f"{construction}/{benchmark}/{c}" for c in component]
    return labels


def bootstrap_median_ci(d: np.ndarray, resamples: int, confidence: float, seed: int) -> tuple[float, float]:
    draws = np.random.default_rng(seed).choice(d, size=(resamples, len(d)), replace=True)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.median(draws, axis=1), [tail, 100 - tail])
    return float(low), float(high)


def wilcoxon_greater(d: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p (d > 0); NaN when every difference is zero."""
    if not np.any(d != 0):
        return float("nan")
    return float(stats.wilcoxon(d, alternative="greater").pvalue)


def cohens_dz(d: np.ndarray) -> float:
    sd = d.std(ddof=1) if len(d) > 1 else float("nan")
    return float(d.mean() / sd) if sd and sd > 0 else float("nan")


def _topic_t(pairs: pd.DataFrame) -> float:
    means = pairs.groupby("topic")[["gamma_targeted", "gamma_random"]].mean()
    if len(means) < 2 or np.ptp(means["gamma_targeted"] - means["gamma_random"]) == 0:
        return float("nan")  # fewer than two topics, or no variance: the t statistic is undefined
    return float(stats.ttest_rel(means["gamma_targeted"], means["gamma_random"], alternative="greater").pvalue)


TESTS = ("wilcoxon_p", "paired_t_p", "paper_method_wilcoxon_p")


def paired_statistics(pairs: pd.DataFrame, resamples: int, confidence: float, seed: int) -> pd.DataFrame:
    """One row per (construction, benchmark, measure): the statistics of d on the targeted benchmark itself, over
    clusters (the headline) and over pairs as the paper computes them (``paper_method_*``)."""
    own = pairs[pairs["evaluated"] == pairs["benchmark"]]
    rows = []
    for (construction, benchmark, measure), group in own.groupby(["construction", "benchmark", "measure"], sort=False):
        d = group["d"].to_numpy(np.float64)
        means = group.groupby("cluster")["d"].mean().to_numpy(np.float64)
        low, high = bootstrap_median_ci(means, resamples, confidence, seed)
        paper_low, paper_high = bootstrap_median_ci(d, resamples, confidence, seed)
        rows.append(
            dict(
                construction=construction,
                benchmark=benchmark,
                measure=measure,
                n=len(d),
                topics=group["topic"].nunique(),
                clusters=len(means),
                median_d=float(np.median(means)),
                ci_low=low,
                ci_high=high,
                mean_d=float(means.mean()),
                cohens_dz=cohens_dz(means),
                wilcoxon_p=wilcoxon_greater(means),
                paired_t_p=_topic_t(group),
                paper_method_median_d=float(np.median(d)),
                paper_method_ci_low=paper_low,
                paper_method_ci_high=paper_high,
                paper_method_cohens_dz=cohens_dz(d),
                paper_method_wilcoxon_p=wilcoxon_greater(d),
            )
        )
    table = pd.DataFrame(rows)
    for test in TESTS:
        table[f"{test}_bh"] = table.groupby(["construction", "measure"])[test].transform(
            lambda family: bh_qvalues(family.to_numpy())
        )
    order = {b.name: i for i, b in enumerate(BENCHMARKS)}
    return table.sort_values(
        ["measure", "construction", "benchmark"],
        key=lambda c: c.map(order) if c.name == "benchmark" else c,
        kind="stable",
    ).reset_index(drop=True)


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
            rows.append(
                dict(
                    construction=construction,
                    kind=kind,
                    benchmark=benchmark,
                    measure=measure,
                    gamma_own=float(gamma[benchmark]),
                    gamma_others=float(others.mean()),
                    selectivity=float(sel),
                )
            )
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
    """This run's accuracy statistics per construction beside the paper's reported values (72 pairs per benchmark,
    treated as independent): this run's pairwise statistics computed the paper's way, and its cluster ones."""
    paper = paper_values()
    mine = statistics[statistics["measure"] == measure]
    rows = []
    for b in BENCHMARKS:
        reported = paper.get(b.name, {})
        row = {
            "benchmark": b.name,
            "paper median_d": reported.get("median_d"),
            "paper ci": reported.get("ci"),
            "paper wilcoxon_p_bh": reported.get("wilcoxon_p_bh"),
            "paper dz": reported.get("cohens_dz"),
            "paper verdict": reported.get("verdict"),
        }
        for r in mine[mine["benchmark"] == b.name].itertuples():
            c = r.construction
            row.update(
                {
                    f"{c} pairs (paper's method)": r.n,
                    f"{c} median_d (paper's method)": round(r.paper_method_median_d, 4),
                    f"{c} ci (paper's method)": [round(r.paper_method_ci_low, 4), round(r.paper_method_ci_high, 4)],
                    f"{c} wilcoxon_p_bh (paper's method)": r.paper_method_wilcoxon_p_bh,
                    f"{c} dz (paper's method)": r.paper_method_cohens_dz,
                    f"{c} clusters": r.clusters,
                    f"{c} median_d": round(r.median_d, 4),
                    f"{c} ci": [round(r.ci_low, 4), round(r.ci_high, 4)],
                    f"{c} wilcoxon_p_bh": r.wilcoxon_p_bh,
                    f"{c} dz": r.cohens_dz,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("benchmark")


def findings(statistics: pd.DataFrame, selectivity_table: pd.DataFrame, confidence: float, level: float = 0.05) -> str:
    """What the run found, in sentences written from its tables: per construction, targeted benchmark and measure,
    the headline (clustered) test's verdict, median d and CI, the paper's pairwise p beside it, and selectivity."""
    lines = []
    for r in statistics.itertuples():
        table = selectivity_table
        sel = table[
            (table["construction"] == r.construction)
            & (table["kind"] == "targeted")
            & (table["benchmark"] == r.benchmark)
            & (table["measure"] == r.measure)
        ]
        verdict = (
            "damages it more than forgetting matched random documents"
            if r.wilcoxon_p < level
            else "shows no more damage than forgetting matched random documents"
        )
        text = (
            f"- **{r.benchmark}**, {r.construction} construction, {MEASURES[r.measure]}: forgetting its "
            f"top-attributed documents {verdict} (median d {r.median_d:.3g}, {confidence:.0%} CI "
            f"[{r.ci_low:.3g}, {r.ci_high:.3g}], one-sided Wilcoxon over {r.clusters} clusters of {r.n} pairs "
            f"p = {_p(r.wilcoxon_p)}; the paper's pairwise p = {_p(r.paper_method_wilcoxon_p)})"
        )
        if len(sel):
            text += f"; selectivity {sel['selectivity'].iloc[0]:.2f}"
        lines.append(text + ".")
    return "\n".join(lines) if lines else "No pair was built: see the shortfalls."


def _p(value: float) -> str:
    return "undefined (every difference zero)" if np.isnan(value) else f"{value:.3g}"


def plot_pairs(pairs: pd.DataFrame):
    """Paired points per benchmark: gamma of the random (left) and targeted (right) run of each pair, joined by a
    line; one row per measure, one column per targeted benchmark; colour = construction."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    own = pairs[pairs["evaluated"] == pairs["benchmark"]]
    benchmarks = [b.name for b in BENCHMARKS if b.name in set(own["benchmark"])]
    constructions = sorted(own["construction"].unique())
    colours = dict(zip(constructions, sns.color_palette("colorblind", len(constructions))))
    fig, axes = plt.subplots(
        len(MEASURES), max(len(benchmarks), 1), figsize=(3.2 * max(len(benchmarks), 1), 5.5), squeeze=False, sharex=True
    )
    for row, measure in enumerate(MEASURES):
        for col, benchmark in enumerate(benchmarks):
            ax = axes[row][col]
            cell = own[(own["measure"] == measure) & (own["benchmark"] == benchmark)]
            for i, construction in enumerate(constructions):
                part = cell[cell["construction"] == construction]
                x = np.array([0, 1]) + (i - (len(constructions) - 1) / 2) * 0.12
                for r in part.itertuples():
                    ax.plot(
                        x,
                        [r.gamma_random, r.gamma_targeted],
                        "-o",
                        color=colours[construction],
                        alpha=0.6,
                        markersize=3,
                        linewidth=0.8,
                        label=construction if r.Index == part.index[0] else None,
                    )
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

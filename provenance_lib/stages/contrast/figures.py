"""Stage 04's figures; every one carries the world's scale note (testbed, real-mini, released) in its title."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from ...benchmarks import BENCHMARKS
from ...heatmap import diverging, draw_bins
from ...taxonomy import load as load_taxonomy

SHORT = {"SocialIQA": "SIQA", "MMLU Social Sciences": "MMLU-SS", "ARC-Challenge": "ARC-C", "MMLU STEM": "MMLU-STEM"}


def _title(fig, title: str, note: str | None) -> None:
    fig.suptitle(title + ("\n" + textwrap.fill(note, 110) if note else ""), fontsize=12)


def plot_correlations(matrices: pd.DataFrame, note: str | None):
    """This run's Pearson matrix of the 576-bin z profiles beside the paper's (``ContrastResult.
    correlation_matrices``: two column blocks)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    design = list(matrices["this run"].index)
    labels = [SHORT[b] for b in design]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
    for ax, title in zip(axes, ("this run", "paper")):
        sns.heatmap(
            matrices[title].to_numpy(),
            ax=ax,
            annot=True,
            fmt=".2f",
            cmap="RdBu_r",
            center=0,
            vmin=-1,
            vmax=1,
            square=True,
            xticklabels=labels,
            yticklabels=labels,
            cbar_kws={"label": "Pearson r over bins", "shrink": 0.8},
        )
        ax.set_title(title)
    _title(fig, "Profile correlations between the benchmarks' 576-bin z profiles", note)
    return fig


def plot_marginals(marginals: pd.DataFrame, note: str | None):
    """Topic and format marginals (mean z of a label's bins) per benchmark, both panels on one symmetric scale."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    scale = diverging(marginals["mean_z"], "mean z of the label's bins", "marginal of this run")
    fig, axes = plt.subplots(1, 2, figsize=(14, 10), layout="constrained")
    for ax, axis in zip(axes, ("topic", "format")):
        wide = (
            marginals[marginals["axis"] == axis]
            .pivot(index="label", columns="benchmark", values="mean_z")
            .reindex(index=load_taxonomy().axis(axis).shorts)
        )
        wide = wide[[b.name for b in BENCHMARKS if b.name in wide.columns]]
        sns.heatmap(
            wide,
            ax=ax,
            annot=True,
            fmt=".2f",
            cmap=scale.cmap,
            center=0,
            vmin=scale.vmin,
            vmax=scale.vmax,
            xticklabels=[SHORT[b] for b in wide.columns],
            cbar_kws={"label": scale.label, "shrink": 0.6},
            annot_kws={"fontsize": 7},
        )
        ax.set(title=f"{axis} marginals", xlabel="", ylabel=axis)
    _title(fig, "Topic and format marginals: unweighted mean z of each label's bins", note)
    return fig


def plot_contrasts(contrasts: pd.DataFrame, sharper: dict, note: str | None):
    """Delta topic marginal (social minus STEM) for the reasoning and the knowledge pair, with intervals."""
    import matplotlib.pyplot as plt

    pairs = list(dict.fromkeys(contrasts["contrast"]))
    panels = max(len(pairs), 1)
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 8), squeeze=False, layout="constrained")
    limit = np.nanmax(np.abs(contrasts[["delta", "low", "high"]].to_numpy(float))) if len(contrasts) else 1.0
    for ax, contrast in zip(axes.flat, pairs):
        part = contrasts[contrasts["contrast"] == contrast].sort_values("delta")
        error = np.abs(part[["low", "high"]].to_numpy(float).T - part["delta"].to_numpy(float))
        ax.barh(
            part["topic"],
            part["delta"],
            xerr=None if np.isnan(error).all() else error,
            color=np.where(part["delta"] > 0, "#b2182b", "#2166ac"),
            capsize=2,
        )
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set(
            xlim=(-1.05 * limit, 1.05 * limit),
            xlabel="delta topic marginal z (social - STEM)",
            title=f"{contrast}: {part['pair'].iloc[0]}",
        )
    verdict = ""
    if sharper.get("available"):
        verdict = (
            f" - max |delta|: reasoning {sharper['max_abs_delta']['reasoning']:.2f}, knowledge "
            f"{sharper['max_abs_delta']['knowledge']:.2f}"
        )
        if "p_one_sided" in sharper:
            verdict += f" (p one-sided = {sharper['p_one_sided']:.3g}, {sharper['unit']} bootstrap)"
    _title(fig, "Contrastive topics" + verdict, note)
    return fig


def plot_differential(table: pd.DataFrame, benchmarks: list[str], note: str | None):
    """z_correct - z_incorrect per bin, one 24 x 24 heatmap per benchmark that has both splits, all on one scale;
    None when no benchmark has both (the stage then says why instead of drawing an empty figure)."""
    import matplotlib.pyplot as plt

    present = [b for b in benchmarks if b in set(table.get("benchmark", ()))]
    if not present:
        return None
    columns = 2 if len(present) > 1 else 1
    rows = -(-len(present) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(8.5 * columns, 7.5 * rows + 1), squeeze=False, layout="constrained"
    )
    scale = diverging(table["delta_z"], "z correct - z incorrect", "correctness-differential heatmap of this run")
    n_bins = load_taxonomy().n_bins
    for ax, benchmark in zip(axes.flat, present):
        part = table[table["benchmark"] == benchmark]
        values = np.full(n_bins, np.nan)
        values[part["bin"].to_numpy(int)] = part["delta_z"].to_numpy(float)
        draw_bins(ax, values, f"{benchmark}: {int(part['significant'].sum())} bins significant (BH)", scale)
    for ax in list(axes.flat)[len(present) :]:
        ax.set_visible(False)
    _title(fig, "Correctness differential", note)
    return fig

"""The known-answers figures: the dose-response of the planted bins' z, and planted against sham bins' z."""

from __future__ import annotations

import pandas as pd

from .stages.binning import VARIANTS


def dose_figure(dose: pd.DataFrame):
    """One row of panels per stage 02 setting: the planted bin's rank-1 share per variant, and the carriers' AUC."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    settings = list(dict.fromkeys(dose["setting"]))
    fig, grid = plt.subplots(len(settings), 2, figsize=(11, 4 * len(settings)), squeeze=False, constrained_layout=True)
    order = [v for v in VARIANTS if v in set(dose["variant"])]  # the paper's recipe first, as in stage 03
    for setting, axes in zip(settings, grid):
        data = dose[dose["setting"] == setting].assign(dose=lambda t: t["dose"].map(lambda d: f"{d:g}"))
        sns.pointplot(data=data, x="dose", y="rank1_share", hue="variant", hue_order=order, ax=axes[0], dodge=0.3)
        axes[0].set(
            xlabel="planted token share per benchmark",
            ylabel="planted bin ranks 1st (share of cells)",
            ylim=(-0.05, 1.05),
            title=f"stage 02 setting: {setting}",
        )
        auc = data.drop_duplicates(["dose", "score_set"]).dropna(subset=["median_auc"])  # the same for every variant
        sns.pointplot(data=auc, x="dose", y="median_auc", hue="score_set", ax=axes[1])  # of a score set
        axes[1].legend(title="stage 02 scores")
        axes[1].axhline(0.5, color="grey", lw=0.8, ls="--")
        axes[1].set(
            xlabel="planted token share per benchmark", ylabel="planted-document AUC (median)", ylim=(0.3, 1.02)
        )
    fig.suptitle("Known answers: recovery against the planted dose (testbed; dose 0 = null worlds)")
    return fig


def sham_figure(planted_z: pd.DataFrame):
    """Per stage 02 setting, every planted bin's z for its own benchmark beside every sham bin's, per variant: a
    reading that finds provenance separates them; one that finds planting does not."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    settings = list(dict.fromkeys(planted_z["setting"]))
    fig, axes = plt.subplots(len(settings), 1, figsize=(12, 4 * len(settings)), squeeze=False, constrained_layout=True)
    order = [v for v in VARIANTS if v in set(planted_z["variant"])]
    for setting, (ax,) in zip(settings, axes):
        data = planted_z[planted_z["setting"] == setting]
        sns.boxplot(
            data=data, x="variant", y="z", hue="kind", order=order, hue_order=["planted", "sham"], ax=ax, fliersize=0
        )
        sns.stripplot(
            data=data,
            x="variant",
            y="z",
            hue="kind",
            order=order,
            hue_order=["planted", "sham"],
            ax=ax,
            dodge=True,
            size=3,
            palette="dark:black",
            legend=False,
        )
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.set(title=f"stage 02 setting: {setting}", ylabel="z of the bin for its slot's benchmark", xlabel="")
    fig.suptitle("Planted bins (a benchmark's content) beside sham bins (never-evaluated content, same planting)")
    return fig

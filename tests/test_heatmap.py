"""The one bin heatmap: every panel of a figure family on one stated scale, the bins beyond it labelled with their
value; a figure with nothing to draw is not drawn."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from provenance_lib.heatmap import counts, diverging, draw_bins  # noqa: E402
from provenance_lib.stages.contrast import figures  # noqa: E402


def images(fig):
    return [image for ax in fig.axes for image in ax.get_images()]


def test_a_diverging_scale_is_symmetric_shared_and_labels_the_bins_beyond_it():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=576), rng.normal(size=576) * 3
    large[7] = 40.0  # one extreme bin must not wash out the rest
    scale = diverging([small, large], "z", "test panel")
    assert scale.vmin == -scale.vmax and scale.vmax < 40 and f"±{scale.vmax:.2g}" in scale.label
    fig, axes = plt.subplots(1, 2)
    draw_bins(axes[0], small, "small", scale)
    draw_bins(axes[1], large, "large", scale)
    assert {(i.norm.vmin, i.norm.vmax) for i in images(fig)} == {(scale.vmin, scale.vmax)}
    labels = [t.get_text() for t in axes[1].texts]
    assert "40" in labels and len(labels) == int((np.abs(large) > scale.vmax).sum())
    plt.close(fig)


def test_a_count_scale_is_logarithmic_over_both_panels_and_leaves_empty_bins_blank():
    population, sample = np.arange(576) * 10, np.minimum(np.arange(576), 40)
    scale = counts([population, sample], "documents", "skew panel")
    assert scale.log and scale.vmin == 1 and scale.vmax == population.max()
    fig, ax = plt.subplots()
    draw_bins(ax, population, "population", scale)
    assert images(fig)[0].get_array().mask[0, 0]  # bin 0 holds no document: grey, not the lowest colour
    plt.close(fig)


def test_the_correctness_differential_figure_is_not_drawn_without_a_split():
    empty = pd.DataFrame(columns=["benchmark", "bin", "delta_z", "significant"])
    assert figures.plot_differential(empty, ["SocialIQA"], None) is None
    table = pd.DataFrame(
        {"benchmark": "SocialIQA", "bin": range(576), "delta_z": np.linspace(-2, 2, 576), "significant": False}
    )
    fig = figures.plot_differential(table, ["SocialIQA", "ARC-Challenge"], None)
    assert len(images(fig)) == 1
    plt.close(fig)


def test_every_stage_03_heatmap_of_a_run_shares_one_scale(tmp_path):
    from provenance_lib import params
    from provenance_lib.stages.binning import BinningResult, describe, plot_heatmaps, released_table
    from provenance_lib.worlds.released import packaged_folder, read_matrix

    study = params.load("params/paper-released.yaml")
    table = released_table(read_matrix(packaged_folder()))
    result = BinningResult(tmp_path, table, dict(variants=["paper"], **describe(table, study.binning, "released")))
    one, four = plot_heatmaps(result, benchmarks=["SocialIQA"], columns=1), plot_heatmaps(result)
    norms = {(i.norm.vmin, i.norm.vmax) for fig in (one, four) for i in images(fig)}
    assert len(norms) == 1 and len(images(four)) == 4
    plt.close("all")

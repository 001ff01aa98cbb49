"""Stage 04: the contrasts on known inputs, the correctness differential on a planted and a null world, the lexical
counts, the paper-vs-run comparison, and stages 03-04 end to end on a planted run folder."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from provenance_lib.context import open_stage
from provenance_lib.params.binning import Binning
from provenance_lib.record import Run, RunRecord
from provenance_lib.stages import binning, contrast
from provenance_lib.stages.contrast import correctness, lexical, paper, profiles
from provenance_lib.taxonomy import load as load_taxonomy
from planted_runs import PLANTED, _complete, plant_run
from synthetic import score_matrix, scores_from_matrix

BENCHMARKS = ["SocialIQA", "MMLU Social Sciences", "ARC-Challenge", "MMLU STEM"]


def z_frame(seed=0, masked=()):
    z = pd.DataFrame(np.random.default_rng(seed).normal(size=(576, 4)), columns=BENCHMARKS)
    z.iloc[list(masked)] = np.nan
    return z


def test_correlations_are_pearson_and_spearman_over_the_bins_scored_everywhere():
    z = z_frame(masked=range(0, 576, 5))
    z["MMLU STEM"] = z["MMLU Social Sciences"] + 0.5 * z["MMLU STEM"]
    table = profiles.correlation_table(z, 200, 0.95, np.random.default_rng(0)).set_index(["method", "a", "b"])
    complete = z.dropna()
    row = table.loc[("pearson", "MMLU Social Sciences", "MMLU STEM")]
    assert row["r"] == pytest.approx(pearsonr(complete["MMLU Social Sciences"], complete["MMLU STEM"])[0])
    assert row["low"] < row["r"] < row["high"] and row["n_bins"] == len(complete)
    rho = spearmanr(complete["SocialIQA"], complete["ARC-Challenge"])[0]
    assert table.loc[("spearman", "SocialIQA", "ARC-Challenge"), "r"] == pytest.approx(rho)


def test_marginals_are_unweighted_means_of_a_labels_scored_bins_and_contrasts_their_differences():
    tax = load_taxonomy()
    z = z_frame(masked=[tax.bin_id("Literature", "FAQ")])
    rng = np.random.default_rng(0)
    reps, unit = profiles.marginal_replicates(z, "topic", None, 100, rng)
    table = profiles.marginals(z, "topic", reps, unit, 0.95).set_index(["label", "benchmark"])
    literature = [tax.bin_id("Literature", f.id) for f in tax.formats if f.short != "FAQ"]
    assert table.loc[("Literature", "SocialIQA"), "mean_z"] == pytest.approx(z.loc[literature, "SocialIQA"].mean())
    assert table.loc[("Literature", "SocialIQA"), "n_bins"] == 23 and unit == "bins"
    deltas = profiles.contrastive_topics(z, reps, unit, 0.95).set_index(["contrast", "topic"])
    politics = table.loc["Politics", "mean_z"]
    expected = politics["MMLU Social Sciences"] - politics["MMLU STEM"]
    assert deltas.loc[("knowledge", "Politics"), "delta"] == pytest.approx(expected)


def test_sharper_split_test_tells_a_sharp_reasoning_split_from_a_sharp_knowledge_split():
    tax = load_taxonomy()
    literature = [tax.bin_id("Literature", f.id) for f in tax.formats]
    for sharp, expected in (("SocialIQA", True), ("MMLU Social Sciences", False)):
        z = z_frame(seed=1) * 0.3
        z.loc[literature, sharp] += 2.0
        reps, unit = profiles.marginal_replicates(z, "topic", None, 300, np.random.default_rng(0))
        deltas = profiles.contrastive_topics(z, reps, unit, 0.95)
        test = profiles.sharper_test(deltas, z, reps, unit, 0.95)
        assert (test["difference"] > 0) == expected
        assert (test["p_one_sided"] < 0.05) == expected


def test_top_marginals_and_interactional_split():
    tax = load_taxonomy()
    z = z_frame(seed=2) * 0.1
    support = [tax.bin_id(t.id, "Customer Support") for t in tax.topics]
    z.loc[support, "SocialIQA"] += 3
    reps, unit = profiles.marginal_replicates(z, "format", None, 50, np.random.default_rng(0))
    tops = profiles.top_marginals(profiles.marginals(z, "format", reps, unit, 0.95), 3)
    first = tops.query("benchmark == 'SocialIQA' and direction == 'positive' and rank == 1")
    assert first["label"].item() == "Customer Support"
    split = profiles.interactional_split(z, 20).set_index("benchmark")
    assert split.loc["SocialIQA", "interactional"] == 20


# ----------------------------------------------------------------------------------------------- correctness
def _differential(lift_correct: float):
    docs, queries, matrix = score_matrix(seed=4, docs_per_bin=10)
    bins, right = docs["bin"].to_numpy(), queries["correct"].to_numpy()
    siqa = (queries["benchmark"] == "SocialIQA").to_numpy()
    matrix[np.ix_(bins == 70, siqa & right)] += lift_correct
    table, replicates, _ = binning.compute(
        {"final": scores_from_matrix(docs, queries, matrix)}, Binning(bootstrap=60, variants=["paper"]), seed=0
    )
    result = binning.BinningResult(
        None,
        table,
        dict(
            benchmarks=BENCHMARKS,
            n_queries={
                f"{b} / {s}": int(n)
                for (b, s), n in table.drop_duplicates(["benchmark", "split"])
                .set_index(["benchmark", "split"])["n_queries"]
                .items()
            },
        ),
    )
    scored = sorted(table.loc[~table["masked"], "bin"].unique())
    full = np.full((*replicates.shape[:3], 576), np.nan)
    full[..., scored] = replicates
    return correctness.differential(result, full, 0.95, 0.05)


def test_correctness_differential_finds_a_bin_that_only_correct_answers_use():
    table, unavailable = _differential(lift_correct=1.0)
    siqa = table[table["benchmark"] == "SocialIQA"].set_index("bin")
    assert unavailable == {} and siqa["delta_z"].idxmax() == 70 and siqa.loc[70, "significant"]
    assert siqa.loc[70, "low"] > 0 and siqa["significant"].sum() == 1
    assert siqa.loc[70, "delta_z"] == pytest.approx(siqa.loc[70, "z_correct"] - siqa.loc[70, "z_incorrect"])


def test_correctness_differential_flags_nothing_without_a_difference():
    table, _ = _differential(lift_correct=0.0)
    assert table["significant"].mean() <= 0.05


# ----------------------------------------------------------------------------------------------- lexical, paper
def test_lexical_counts_follow_the_word_lists():
    text = 'Customer: I think you know what we want?\nAgent: "Thanks!" She felt sure they forgot it.'
    counts = lexical.count_text(text)
    assert counts["first_person"] == 2 and counts["second_person"] == 1 and counts["third_person"] == 2
    assert counts["mental_state"] == 6  # think know want felt sure forgot
    assert counts["dialogue"] == 2 + 1 + 1 + 1  # two speaker turns, one quote, one '?', 'thanks'
    assert counts["words"] == 16


def test_reported_values_keep_the_papers_precision():
    reported = paper.paper_reported()
    value = reported["bin_z_scores"]["Literature x Customer Support"][0]
    assert value == 16.0 and value.decimals == 1 and value.tolerance == pytest.approx(0.05)
    assert reported["profile_correlations"][1][3].decimals == 2
    c = paper.Comparison("released")
    c.add("s", "b", "close", value, 16.04)
    c.add("s", "b", "far", value, 16.06)
    c.add("s", "b", "missing", value, None, missing="no such thing")
    assert list(c.table()["status"]) == ["agrees", "differs", "not produced: no such thing"]
    mini = paper.Comparison("real-mini")
    mini.add("s", "b", "x", value, 16.0)
    assert mini.table()["status"].item() == "not comparable (real-mini world)"


# ----------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    """Stages 03 and 04 run in-process on a planted real-mini-kind run folder (figures left to the slow test)."""
    patch = pytest.MonkeyPatch()
    patch.setattr(binning, "save_figures", lambda result: [])
    patch.setattr(contrast, "save_figures", lambda result, b: None)
    run_dir = plant_run(
        tmp_path_factory.mktemp("project"),
        "mini",
        kind="real-mini",
        bins=range(0, 576, 5),
        overrides=("binning.bootstrap=30", "contrast.bin_bootstrap=30"),
        lift=1.0,
        checkpoints=2,
    )
    result3 = binning.run(open_stage("03_binning", run_dir=run_dir, out_dir=run_dir / "03_binning"))
    _complete(RunRecord(run_dir), "03_binning", run_dir / "03_binning")
    result4 = contrast.run(open_stage("04_contrast", run_dir=run_dir, out_dir=run_dir / "04_contrast"))
    patch.undo()
    return run_dir, result3, result4


def test_stage_03_finds_every_planted_bin_and_writes_the_released_layout(planted_run):
    run_dir, result, _ = planted_run
    assert result.reading == RunRecord(run_dir).run.params["binning"]["reading"]
    for variant in (result.reading, "paper"):  # the reading, and the paper's definition beside it
        tops = result.top_bins(1, variant)
        assert dict(zip(tops["benchmark"], tops["bin_name"])) == PLANTED, variant
    assert (run_dir / "03_binning" / "zscored_mmlu_social_science.csv").is_file()
    asked = RunRecord(run_dir).run.params["binning"]["variants"]  # every variant the params ask for, none skipped
    assert set(result.summary["variants"]) == set(asked) and result.summary["skipped"] == {}
    loaded = binning.load_result(run_dir / "03_binning")
    assert loaded.replicates().shape[0] == 30 and loaded.table.equals(result.table)


def test_every_real_mini_table_says_what_it_may_be_read_as(planted_run):
    _, result3, result4 = planted_run
    assert "not a provenance finding" in result3.note
    with_documents = result3.summary["scored_bins"] + len(result3.summary["masked_bins"])
    assert f"covering {with_documents} of 576" in result3.note
    assert result4.note == result3.note and result4.note in result4.show("paper_vs_run").caption
    statuses = set(result4.tables["paper_vs_run"]["status"].str.split(":").str[0])
    assert statuses <= {"not comparable (real-mini world)", "not produced"}


def test_stage_04_reads_its_tables_back_and_profiles_the_top_bins(planted_run):
    run_dir, _, result = planted_run
    loaded = contrast.load_result(run_dir / "04_contrast")
    assert set(loaded.tables) == set(contrast.TABLES) and loaded.summary["replicates"] == 30
    profiles_ = result.tables["lexical_profiles"].set_index("group")
    # the planted SocialIQA bin is Literature x Customer Support, written as dialogue by the planted working set
    assert profiles_.loc["SocialIQA: top bins", "bins"] == 20
    assert (
        profiles_.loc["SocialIQA: top bins", "dialogue_per_1k"]
        > profiles_.loc["working set (all bins)", "dialogue_per_1k"]
    )
    survival = result.tables["findings"]
    top = survival[(survival["finding"] == "top bin") & (survival["variant"] == "checkpoint_summed")]
    assert top["holds"].all()


@pytest.mark.slow
def test_notebooks_03_and_04_run_through_the_runner_on_a_planted_testbed_run(tmp_path):
    """The stage notebooks as the runner executes them (papermill), figures included, then a no-op rerun."""
    from pathlib import Path

    from provenance_lib import runs
    from provenance_lib.verify import verify

    root = Path(__file__).resolve().parents[1]
    overrides = ["binning.bootstrap=50", "contrast.bin_bootstrap=50"]
    run_dir = plant_run(tmp_path, "tb", overrides=tuple(overrides), lift=1.0)
    run = dict(
        overrides=overrides,
        name="tb",
        stages=["03", "04"],
        runs_dir=tmp_path / "runs",
        notebooks_dir=root / "notebooks",
    )
    runs.run_study(root / "params" / "testbed.yaml", **run)
    for name in ("heatmaps_2x2.png", "heatmap_social_iqa.png", "heatmaps_2x2_paper.png", "bin_influence.parquet"):
        assert (run_dir / "03_binning" / name).is_file(), name
    for name in (*contrast.FIGURES, "paper_vs_run.csv", "contrast.json"):
        assert (run_dir / "04_contrast" / name).is_file(), name
    assert (run_dir / "notebooks" / "04_contrast.ipynb").is_file() and verify(run_dir) == []
    before = (run_dir / "run.json").read_text()
    runs.run_study(root / "params" / "testbed.yaml", **run)
    assert RunRecord(run_dir).stages["04_contrast"] == Run.model_validate_json(before).stages["04_contrast"]

"""Stage 03: the paper's definitions exactly, every aggregation variant on a planted and a null world, the
bootstrap, the released layout, and one clear error for each bad input."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from provenance_lib.artifacts import sha256_file
from provenance_lib.errors import ProvenanceError
from provenance_lib.params.binning import Binning
from provenance_lib.stages import binning
from provenance_lib.stages.binning import variants
from provenance_lib.stages.gradients.scores import GradientScores, doc_score_columns
from provenance_lib.taxonomy import load as load_taxonomy
from synthetic import score_matrix, scores_from_matrix

PLANTED = {"SocialIQA": 7 * 10, "MMLU Social Sciences": 7 * 20, "ARC-Challenge": 7 * 30, "MMLU STEM": 7 * 40}
BENCHMARKS = list(PLANTED)


def plain_z(values: np.ndarray) -> np.ndarray:
    """The paper's z over the bins that have a score, written out."""
    out = np.full(len(values), np.nan)
    ok = np.isfinite(values)
    out[ok] = (values[ok] - values[ok].mean()) / values[ok].std(ddof=1)
    return out


def compute(scores, **params):
    inputs = scores if isinstance(scores, dict) else {"final": scores}
    return binning.compute(inputs, Binning(**{"bootstrap": 0, **params}), seed=0)


def rows(table, variant="paper", split="all", benchmark="SocialIQA"):
    t = table[(table["variant"] == variant) & (table["split"] == split) & (table["benchmark"] == benchmark)]
    return t.sort_values("bin")


def top_bin(table, variant, benchmark, split="all"):
    t = rows(table, variant, split, benchmark)
    return int(t.loc[t["z"].idxmax(), "bin"])


# ----------------------------------------------------------------------------------------------- the paper's definition
def test_paper_variant_is_the_bin_mean_of_document_means_and_its_z_over_bins():
    docs, queries, matrix = score_matrix(planted={"SocialIQA": 70}, docs_per_bin=5)
    table, _, _ = compute(scores_from_matrix(docs, queries, matrix), min_docs=1)
    bins = docs["bin"].to_numpy()
    for benchmark in BENCHMARKS:
        for split, keep in (("all", None), ("correct", True), ("incorrect", False)):
            mine = (queries["benchmark"] == benchmark).to_numpy()
            if keep is not None:
                mine = mine & (queries["correct"].to_numpy() == keep)
            doc_means = matrix[:, mine].mean(axis=1)  # a document's score: its mean over the queries
            expected = np.full(576, np.nan)
            for b in np.unique(bins):
                expected[b] = doc_means[bins == b].mean()  # a bin's score: the mean over its documents
            got = rows(table, "paper", split, benchmark)
            np.testing.assert_allclose(got["mean_score"], expected, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(got["z"], plain_z(expected), rtol=1e-12, atol=1e-12)
            assert (got["n_queries"] == mine.sum()).all() and not got["masked"][np.isfinite(expected)].any()


def test_masked_bins_keep_their_mean_but_leave_the_z_and_its_reference():
    docs, queries, matrix = score_matrix(docs_per_bin=6)
    sparse = docs["bin"].isin([7, 14]) & (docs.groupby("bin").cumcount() >= 2)  # bins 7 and 14 keep 2 documents
    docs, matrix = docs[~sparse].reset_index(drop=True), matrix[~sparse.to_numpy()]
    table, _, _ = compute(scores_from_matrix(docs, queries, matrix), min_docs=3)
    got = rows(table)
    assert got.set_index("bin").loc[[7, 14], "masked"].all() and got.set_index("bin").loc[[7, 14], "z"].isna().all()
    assert got.set_index("bin").loc[[7, 14], "mean_score"].notna().all()
    means = got["mean_score"].to_numpy().copy()
    means[[7, 14]] = np.nan
    np.testing.assert_allclose(got["z"], plain_z(means), rtol=1e-12)


# ----------------------------------------------------------------------------------------------- known answers
@pytest.fixture(scope="module")
def planted_table():
    docs, queries, matrix = score_matrix(planted=PLANTED, lift=0.8, docs_per_bin=10)
    final = scores_from_matrix(docs, queries, matrix)
    later = scores_from_matrix(docs, queries, score_matrix(seed=1, planted=PLANTED, lift=0.8, docs_per_bin=10)[2])
    summed = scores_from_matrix(
        docs, queries, matrix + score_matrix(seed=1, planted=PLANTED, lift=0.8, docs_per_bin=10)[2]
    )
    assert later.benchmarks == final.benchmarks
    table, replicates, skipped = compute({"final": final, "summed": summed}, bootstrap=40)
    return table, replicates, skipped


@pytest.mark.parametrize("variant", binning.VARIANTS)
def test_every_variant_ranks_the_planted_bin_first(planted_table, variant):
    table, _, skipped = planted_table
    assert skipped == {}
    for benchmark, planted in PLANTED.items():
        assert top_bin(table, variant, benchmark) == planted, (variant, benchmark)
        flagged = rows(table, variant, "all", benchmark).query("q_value <= 0.05")["bin"].tolist()
        assert planted in flagged, (variant, benchmark, flagged)


@pytest.fixture(scope="module")
def null_table():
    docs, queries, matrix = score_matrix(seed=3, docs_per_bin=10)
    return compute(scores_from_matrix(docs, queries, matrix), bootstrap=40)[0]


@pytest.mark.parametrize("variant", [v for v in binning.VARIANTS if v != "checkpoint_summed"])
def test_null_world_flags_at_most_a_few_bins(null_table, variant):
    for benchmark in BENCHMARKS:
        t = rows(null_table, variant, "all", benchmark).dropna(subset=["z"])
        assert (t["q_value"] <= 0.05).mean() <= 0.05, (variant, benchmark)


def test_intervals_cover_the_estimate_and_replicates_are_kept_for_stage_04(planted_table):
    table, replicates, _ = planted_table
    scored = rows(table).dropna(subset=["z"])
    inside = (scored["z_low"] <= scored["z"]) & (scored["z"] <= scored["z_high"])
    assert inside.mean() > 0.9
    n_scored = len(scored)
    assert replicates.shape == (40, 3, 4, n_scored) and replicates.dtype == np.float32


def test_checkpoint_summed_is_skipped_with_a_reason_when_there_is_one_checkpoint():
    docs, queries, matrix = score_matrix()
    _, _, skipped = compute(scores_from_matrix(docs, queries, matrix))
    assert set(skipped) == {"checkpoint_summed"} and "single checkpoint" in skipped["checkpoint_summed"]


def test_the_reading_falls_back_to_the_paper_variant_with_its_reason_when_not_computed():
    docs, queries, matrix = score_matrix()
    _, _, skipped = compute(scores_from_matrix(docs, queries, matrix))
    computed = dict(variants=["paper", "centered", "topk", "format_residualized", "mean_null"], skipped=skipped)
    assert binning.reading_of(Binning(), computed) == dict(reading="mean_null")
    fallback = binning.reading_of(Binning(reading="checkpoint_summed"), computed)
    assert fallback["reading"] == "paper" and "single checkpoint" in fallback["reading_fallback"]
    computed = dict(variants=["paper", "centered"], skipped={})
    left_out = binning.reading_of(Binning(variants=["paper", "centered"]), computed)
    assert left_out["reading"] == "paper" and left_out["reading_fallback"].endswith("not in binning.variants")


# ----------------------------------------------------------------------------------------------- variant properties
def test_centered_ignores_a_direction_every_benchmark_shares():
    docs, queries, matrix = score_matrix(planted=PLANTED, lift=0.8)
    shared = np.random.default_rng(5).normal(size=(len(docs), 1)) * 3  # a document effect common to all queries
    plain, _, _ = compute(scores_from_matrix(docs, queries, matrix))
    shifted, _, _ = compute(scores_from_matrix(docs, queries, matrix + shared))
    for benchmark in BENCHMARKS:
        np.testing.assert_allclose(
            rows(shifted, "centered", benchmark=benchmark)["z"],
            rows(plain, "centered", benchmark=benchmark)["z"],
            atol=1e-9,
        )
        assert not np.allclose(
            rows(shifted, "paper", benchmark=benchmark)["z"],
            rows(plain, "paper", benchmark=benchmark)["z"],
            equal_nan=True,
        )


def test_format_residualized_ignores_a_format_wide_effect():
    docs, queries, matrix = score_matrix(planted=PLANTED, lift=0.8)
    per_format = (docs["bin"].to_numpy() % 24 == 17)[:, None] * 2.0  # every Q&A Forum bin lifted
    plain, _, _ = compute(scores_from_matrix(docs, queries, matrix))
    lifted, _, _ = compute(scores_from_matrix(docs, queries, matrix + per_format))
    np.testing.assert_allclose(
        rows(lifted, "format_residualized")["z"], rows(plain, "format_residualized")["z"], atol=1e-9
    )


def test_top_share_mean_takes_the_top_share_of_each_bin():
    bins = np.array([0, 0, 0, 0, 0, 2, 2])
    values = np.array([1.0, 5.0, 3.0, 4.0, 2.0, -1.0, 7.0])
    got = variants.top_share_mean(bins, values, 0.4, 3)
    np.testing.assert_allclose(got, [4.5, np.nan, 7.0])  # top 2 of 5 (ceil 0.4*5), top 1 of 2, empty bin NaN


def test_topk_reads_doc_scores_per_split():
    docs, queries, matrix = score_matrix()
    scores = scores_from_matrix(docs, queries, matrix)
    got = variants.topk(scores, Binning(topk_share=1.0))
    for split, column in zip(variants.SPLITS, doc_score_columns("MMLU STEM")):
        expected = scores.doc_scores.groupby("bin")[column].mean()
        np.testing.assert_allclose(got[("MMLU STEM", split)][expected.index], expected.to_numpy())


# ----------------------------------------------------------------------------------------------- outputs
def test_released_layout_has_576_rows_keys_and_empty_z_for_masked_bins(tmp_path):
    docs, queries, matrix = score_matrix()
    table, _, _ = compute(scores_from_matrix(docs, queries, matrix))
    result = binning.BinningResult(tmp_path, table, {"benchmarks": BENCHMARKS})
    layout = binning.paper_layout(result, "SocialIQA")
    tax = load_taxonomy()
    assert list(layout.columns) == ["topic_label", "format_label", "mean_score", "zscore", "doc_count"]
    assert len(layout) == 576 and set(layout["topic_label"]) == set(tax.topics.keys)
    assert layout["zscore"].notna().sum() == docs["bin"].nunique()
    pairs = list(zip(layout["topic_label"], layout["format_label"]))
    assert pairs == sorted(pairs)


# ----------------------------------------------------------------------------------------------- bad input
def test_all_bins_masked_is_one_clear_error():
    docs, queries, matrix = score_matrix(docs_per_bin=3)
    with pytest.raises(ProvenanceError, match="0 of 576 bins have at least binning.min_docs = 5"):
        compute(scores_from_matrix(docs, queries, matrix))


def _stage(tmp_path, scores: GradientScores, manifest: bytes = b"manifest", tasks=BENCHMARKS):
    (tmp_path / "01_sampling").mkdir(exist_ok=True)
    (tmp_path / "01_sampling" / "manifest.parquet").write_bytes(manifest)
    scores.save(tmp_path / "02_gradients")
    world = SimpleNamespace(tasks={name: name for name in tasks}, checkpoints={})
    return SimpleNamespace(input_dir=lambda stage_id: tmp_path / stage_id, world=world)


def test_scores_of_another_working_set_are_refused(tmp_path):
    docs, queries, matrix = score_matrix()
    stage = _stage(tmp_path, scores_from_matrix(docs, queries, matrix, manifest_sha256="f" * 64))
    with pytest.raises(ProvenanceError, match="manifest sha256 f{64}, but this run's manifest is"):
        binning.load_inputs(stage)


def test_a_benchmark_without_queries_is_refused(tmp_path):
    docs, queries, matrix = score_matrix()
    keep = (queries["benchmark"] != "ARC-Challenge").to_numpy()
    queries = queries[keep].reset_index(drop=True).assign(query_index=lambda q: np.arange(len(q)))
    sha = __import__("hashlib").sha256(b"manifest").hexdigest()
    stage = _stage(tmp_path, scores_from_matrix(docs, queries, matrix[:, keep], manifest_sha256=sha))
    with pytest.raises(ProvenanceError, match="scored no queries of \\['ARC-Challenge'\\]"):
        binning.load_inputs(stage)


@pytest.mark.parametrize("recipe, final", [(None, "step10"), (["step10", "final", "step2"], "step2")])
def test_inputs_pair_the_final_checkpoint_with_the_sum(tmp_path, recipe, final):
    docs, queries, matrix = score_matrix()
    sha = __import__("hashlib").sha256(b"manifest").hexdigest()
    summed = scores_from_matrix(docs, queries, 2 * matrix, manifest_sha256=sha)
    if recipe:
        summed.info["recipe"] = {"checkpoints": recipe}
    stage = _stage(tmp_path, summed)
    for label in ("step2", "step10", "final") if recipe else ("step2", "step10"):
        scores = scores_from_matrix(docs, queries, matrix, manifest_sha256=sha)
        scores.save(tmp_path / "02_gradients/checkpoints" / label)
    inputs, source = binning.load_inputs(stage)
    assert set(inputs) == {"final", "summed"} and f"checkpoints/{final} (final)" in source["scores"]
    assert source["manifest_sha256"] == sha256_file(tmp_path / "01_sampling" / "manifest.parquet")
    np.testing.assert_allclose(inputs["summed"].query_bin_scores, 2 * inputs["final"].query_bin_scores)
    assert isinstance(inputs["final"].doc_scores, pd.DataFrame)

"""The contract between stage 02 and stages 03-05: round trip, and one clear error for every inconsistency."""

import numpy as np
import pytest

from provenance_lib.errors import ProvenanceError
from provenance_lib.stages.gradients.scores import GradientScores
from synthetic import score_matrix, scores_from_matrix


def test_scores_round_trip_and_views(tmp_path):
    docs, queries, matrix = score_matrix(planted={"SocialIQA": 7})
    scores = scores_from_matrix(docs, queries, matrix)
    loaded = GradientScores.load(scores.save(tmp_path / "02"))
    np.testing.assert_array_equal(loaded.query_bin_scores, scores.query_bin_scores)
    assert loaded.benchmarks == ["SocialIQA", "MMLU Social Sciences", "ARC-Challenge", "MMLU STEM"]
    rows = loaded.rows("SocialIQA", correct=True)
    assert len(rows) == 10 and loaded.queries.loc[rows, "correct"].all()
    # the paper's bin mean of per-document query means is the column mean over a benchmark's rows
    mean_of_docs = loaded.doc_scores.groupby("bin")["social_iqa"].mean()
    by_queries = loaded.query_bin_scores[loaded.rows("SocialIQA")][:, mean_of_docs.index].mean(axis=0)
    np.testing.assert_allclose(by_queries, mean_of_docs.to_numpy())
    assert GradientScores.checkpoints(tmp_path / "02") == []


def test_mixed_or_broken_scores_are_refused(tmp_path):
    docs, queries, matrix = score_matrix()
    scores = scores_from_matrix(docs, queries, matrix)
    with pytest.raises(ProvenanceError, match="different runs"):
        GradientScores(scores.queries, scores.query_bin_scores, scores.bin_counts + 1, scores.doc_scores)
    broken = scores.query_bin_scores.copy()
    broken[0, docs["bin"].iloc[0]] = np.nan
    with pytest.raises(ProvenanceError, match="NaN gradient"):
        GradientScores(scores.queries, broken, scores.bin_counts, scores.doc_scores)
    with pytest.raises(ProvenanceError, match="no queries"):
        GradientScores(scores.queries.iloc[:0], scores.query_bin_scores[:0], scores.bin_counts, scores.doc_scores)
    with pytest.raises(ProvenanceError, match="manifest"):
        scores.check_manifest("f" * 64)
    with pytest.raises(ProvenanceError, match="run stage 02 first"):
        GradientScores.load(tmp_path / "nothing")

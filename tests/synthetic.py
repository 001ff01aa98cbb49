"""Stage 02 scores made from a known documents x queries score matrix: the reference the later stages' tests check
their aggregations against (the definitions of ``stages.gradients.scores``, computed the plain way)."""

import numpy as np
import pandas as pd

from provenance_lib.benchmarks import BY_NAME
from provenance_lib.stages.gradients.scores import GradientScores, doc_score_columns
from provenance_lib.taxonomy import load as load_taxonomy


def score_matrix(
    seed: int = 0,
    bins=range(0, 576, 7),
    docs_per_bin: int = 12,
    queries: int = 20,
    planted: dict[str, int] | None = None,
    lift: float = 1.0,
):
    """(documents table, queries table, documents x queries scores): noise, plus ``lift`` on the documents of
    ``planted[benchmark]`` for that benchmark's queries. Every other query is answered correctly."""
    rng = np.random.default_rng(seed)
    docs = pd.DataFrame({"bin": np.repeat(np.asarray(list(bins)), docs_per_bin)})
    docs.insert(0, "id", [f"doc-{i:05d}" for i in range(len(docs))])
    docs["tokens"] = rng.integers(20, 400, len(docs))
    rows = [
        dict(
            id=f"{b.slug}-{i}", benchmark=name, subject=name, correct=bool(i % 2 == 0), gold_loglik=float(-rng.random())
        )
        for name, b in BY_NAME.items()
        for i in range(queries)
    ]
    queries_table = pd.DataFrame(rows)
    queries_table.insert(0, "query_index", np.arange(len(queries_table)))
    scores = rng.normal(size=(len(docs), len(queries_table)))
    for name, bin_id in (planted or {}).items():
        scores[np.ix_(docs["bin"].to_numpy() == bin_id, (queries_table["benchmark"] == name).to_numpy())] += lift
    return docs, queries_table, scores


def scores_from_matrix(
    docs: pd.DataFrame, queries: pd.DataFrame, scores: np.ndarray, manifest_sha256: str = "0" * 64
) -> GradientScores:
    n_bins = load_taxonomy().n_bins
    bins = docs["bin"].to_numpy()
    counts = np.bincount(bins, minlength=n_bins)
    query_bin = np.full((len(queries), n_bins), np.nan)
    for b in np.flatnonzero(counts):
        query_bin[:, b] = scores[bins == b].mean(axis=0)
    doc_scores = docs.copy()
    for name in queries["benchmark"].unique():
        column, correct, incorrect = doc_score_columns(name)
        mine = (queries["benchmark"] == name).to_numpy()
        right = mine & queries["correct"].to_numpy(bool)
        doc_scores[column] = scores[:, mine].mean(axis=1)
        doc_scores[correct] = scores[:, right].mean(axis=1) if right.any() else np.nan
        doc_scores[incorrect] = scores[:, mine & ~right].mean(axis=1) if (mine & ~right).any() else np.nan
    return GradientScores(queries, query_bin, counts, doc_scores, {"manifest_sha256": manifest_sha256})

"""Stand-ins for stage 02's scores until it lands, both built with ``synthetic.scores_from_matrix`` (the contract's
reference definitions), so stage 05 reads exactly what stage 02 will write.

* ``oracle_scores`` (testbed): a planted document of benchmark b scores ``lift`` (plus small seeded noise) on b's
  queries, every other document noise alone. It isolates one question from attribution quality: does the unlearning
  protocol detect a causal source it is pointed at?
* ``lexical_scores`` (real-mini, no ground truth): TF-IDF cosine similarity of each document to each query (question
  and gold answer), a classic non-gradient attribution baseline, to run and time the protocol on real text.

Once stage 02 exists, the tests and the real-mini measurement read its scores instead.
"""

import numpy as np
import pandas as pd

from provenance_lib.artifacts import hash_tree, read_json, sha256_file
from provenance_lib.record import RunRecord, now
from provenance_lib.stages.gradients.scores import GradientScores
from synthetic import scores_from_matrix


def _queries(world_dir) -> pd.DataFrame:
    queries = pd.read_parquet(world_dir / "benchmarks" / "queries.parquet")
    queries = queries[queries["split"] == "eval"].reset_index(drop=True)
    queries.insert(0, "query_index", np.arange(len(queries)))
    return queries.assign(correct=True, gold_loglik=np.nan)


def _docs(sampling_dir) -> pd.DataFrame:
    manifest = pd.read_parquet(sampling_dir / "manifest.parquet")
    return manifest[["id", "bin", "tokens"]].astype({"bin": np.int64}).reset_index(drop=True)


def oracle_scores(world_dir, sampling_dir, lift: float = 1.0, noise: float = 0.1, seed: int = 0) -> GradientScores:
    truth = read_json(world_dir / "ground_truth.json")
    docs, queries = _docs(sampling_dir), _queries(world_dir)
    matrix = np.random.default_rng(seed).normal(scale=noise, size=(len(docs), len(queries)))
    for name, planted in truth["benchmarks"].items():
        rows = docs["id"].isin(planted["documents"]).to_numpy()
        matrix[np.ix_(rows, (queries["benchmark"] == name).to_numpy())] += lift
    return _scores(docs, queries, matrix, sampling_dir)


def lexical_scores(world_dir, sampling_dir) -> GradientScores:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from provenance_lib.stages.sampling import iter_working_set

    docs, queries = _docs(sampling_dir), _queries(world_dir)
    texts = {doc["id"]: doc["text"] for doc in iter_working_set(sampling_dir)}
    asked = [f"{q.question} {q.choices[q.answer]}" for q in queries.itertuples()]
    vectors = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit_transform(
        [texts[i] for i in docs["id"]] + asked)
    matrix = (vectors[:len(docs)] @ vectors[len(docs):].T).toarray()
    return _scores(docs, queries, matrix, sampling_dir)


def _scores(docs, queries, matrix, sampling_dir) -> GradientScores:
    columns = ["query_index", "id", "benchmark", "subject", "correct", "gold_loglik"]
    return scores_from_matrix(docs, queries[columns], matrix,
                              manifest_sha256=sha256_file(sampling_dir / "manifest.parquet"))


def register_as_stage_02(run_dir, scores: GradientScores) -> None:
    """Write ``scores`` as the run's ``02_gradients`` and record that stage as complete, so the runner executes
    stage 05 on them (until stage 02's notebook exists)."""
    folder = run_dir / "02_gradients"
    scores.save(folder)
    record = RunRecord(run_dir)
    record.stages["02_gradients"] = {"status": "complete", "fingerprint": "stand-in", "ended": now(), "inputs": {},
                                     "outputs": hash_tree(folder, relative_to=run_dir)}
    record.save()

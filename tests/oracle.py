"""Oracle attribution for the testbed: stage 02 scores made from the world's ground truth instead of gradients.

A planted document of benchmark b scores ``lift`` (plus small seeded noise) on b's queries, every other
document noise alone, computed with ``synthetic.scores_from_matrix`` (the contract's reference definitions). It
isolates one question from attribution quality: does the unlearning protocol detect a causal source it is pointed
at? Once stage 02 exists, the known-answer tests run the real pipeline (stages 01-02-05) instead.
"""

import numpy as np
import pandas as pd

from provenance_lib.artifacts import read_json, sha256_file
from provenance_lib.stages.gradients.scores import GradientScores
from synthetic import scores_from_matrix


def oracle_scores(world_dir, sampling_dir, lift: float = 1.0, noise: float = 0.1, seed: int = 0) -> GradientScores:
    truth = read_json(world_dir / "ground_truth.json")
    manifest = pd.read_parquet(sampling_dir / "manifest.parquet")
    docs = manifest[["id", "bin", "tokens"]].astype({"bin": np.int64}).reset_index(drop=True)
    queries = pd.read_parquet(world_dir / "benchmarks" / "queries.parquet")
    queries = queries[queries["split"] == "eval"][["id", "benchmark", "subject"]].reset_index(drop=True)
    queries = queries.assign(correct=True, gold_loglik=np.nan)
    queries.insert(0, "query_index", np.arange(len(queries)))
    matrix = np.random.default_rng(seed).normal(scale=noise, size=(len(docs), len(queries)))
    for name, planted in truth["benchmarks"].items():
        rows = docs["id"].isin(planted["documents"]).to_numpy()
        matrix[np.ix_(rows, (queries["benchmark"] == name).to_numpy())] += lift
    return scores_from_matrix(docs, queries, matrix, manifest_sha256=sha256_file(sampling_dir / "manifest.parquet"))

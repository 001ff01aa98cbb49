"""What stage 02 hands to stages 03-05: the contract between gradient collection and everything after it.

Scores are linear in the preconditioned, unit-normalized document gradients, so stage 02 streams documents and
keeps aggregates, never a documents x queries matrix. What the later stages read, in ``02_gradients/``:

``queries.parquet``         one row per query (benchmark eval item), in the row order of the score matrix:
                            ``query_index``, ``id``, ``benchmark``, ``subject``, ``correct`` (the query model answers
                            it correctly), ``gold_loglik`` (the query model's log-likelihood of the gold answer)
``query_bin_scores.npy``    (queries, 576) float64: the mean score of each query over the working-set documents of
                            each bin (NaN where the bin has none). The paper's bin mean of per-document query means
                            is a column mean over a benchmark's rows, so bootstrap over queries comes free.
``bin_counts.npy``          (576,) int64: working-set documents scored per bin
``doc_scores.parquet``      one row per working-set document: ``id``, ``bin``, ``tokens``, and per benchmark (its
                            ``slug``, e.g. ``social_iqa``) the document's mean score over that benchmark's queries,
                            ``<slug>_correct`` and ``<slug>_incorrect`` over its correctly / incorrectly answered
                            queries (NaN when there are none): what per-document forget sets need
``scores.json``             provenance: the manifest sha256 the scores belong to, the recipe, the checkpoints

When stage 02 sums over several checkpoints (TrackStar), the top-level files hold the sum and
``checkpoints/<label>/`` holds each checkpoint's own files in the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...artifacts import atomic_path, read_json, write_json, write_parquet
from ...benchmarks import BENCHMARKS, BY_NAME
from ...errors import ProvenanceError
from ...taxonomy import load as load_taxonomy

QUERIES, QUERY_BIN_SCORES, BIN_COUNTS = "queries.parquet", "query_bin_scores.npy", "bin_counts.npy"
DOC_SCORES, INFO, CHECKPOINTS = "doc_scores.parquet", "scores.json", "checkpoints"
QUERY_COLUMNS = ("query_index", "id", "benchmark", "subject", "correct", "gold_loglik")
DOC_COLUMNS = ("id", "bin", "tokens")


def doc_score_columns(benchmark: str) -> tuple[str, str, str]:
    """The ``doc_scores`` columns of one benchmark: all its queries, the correctly and the incorrectly answered."""
    slug = BY_NAME[benchmark].slug
    return slug, f"{slug}_correct", f"{slug}_incorrect"


@dataclass
class GradientScores:
    """Stage 02's scores (see the module docstring); ``info["manifest_sha256"]`` ties them to one working set."""

    queries: pd.DataFrame
    query_bin_scores: np.ndarray
    bin_counts: np.ndarray
    doc_scores: pd.DataFrame
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------------------------------- views
    @property
    def benchmarks(self) -> list[str]:
        """The benchmarks that have queries, in the 2x2 design's order."""
        present = set(self.queries["benchmark"])
        return [b.name for b in BENCHMARKS if b.name in present]

    def rows(self, benchmark: str, correct: bool | None = None) -> np.ndarray:
        """Row indices of a benchmark's queries in ``query_bin_scores`` (only the correctly / incorrectly answered
        ones when ``correct`` is given)."""
        mask = (self.queries["benchmark"] == benchmark).to_numpy().copy()
        if correct is not None:
            mask &= self.queries["correct"].to_numpy(bool) == correct
        return self.queries["query_index"].to_numpy()[mask]

    # ------------------------------------------------------------------------------------------- checks
    def validate(self) -> None:
        """Shapes, columns and ids line up; one clear error naming what does not."""
        n_bins = load_taxonomy().n_bins
        missing = [c for c in QUERY_COLUMNS if c not in self.queries.columns]
        if missing:
            raise ProvenanceError(f"stage 02 queries lack the columns {missing}", "rerun stage 02")
        if not len(self.queries):
            raise ProvenanceError("stage 02 scored no queries", "check that the world's benchmarks have eval items")
        unknown = sorted(set(self.queries["benchmark"]) - set(BY_NAME))
        if unknown:
            raise ProvenanceError(f"stage 02 queries name unknown benchmarks {unknown}")
        if list(self.queries["query_index"]) != list(range(len(self.queries))):
            raise ProvenanceError("stage 02 queries are not in query_index order 0..Q-1", "rerun stage 02")
        if self.query_bin_scores.shape != (len(self.queries), n_bins):
            raise ProvenanceError(
                f"query_bin_scores has shape {self.query_bin_scores.shape}, expected ({len(self.queries)}, {n_bins})",
                "rerun stage 02",
            )
        if self.bin_counts.shape != (n_bins,):
            raise ProvenanceError(f"bin_counts has shape {self.bin_counts.shape}, expected ({n_bins},)")
        columns = [c for b in self.benchmarks for c in doc_score_columns(b)]
        missing = [c for c in (*DOC_COLUMNS, *columns) if c not in self.doc_scores.columns]
        if missing:
            raise ProvenanceError(f"stage 02 doc_scores lack the columns {missing}", "rerun stage 02")
        per_bin = np.bincount(self.doc_scores["bin"].to_numpy(np.int64), minlength=n_bins)
        if not np.array_equal(per_bin, self.bin_counts):
            raise ProvenanceError(
                "doc_scores and bin_counts disagree on the documents per bin",
                "the files come from different runs of stage 02: rerun it",
            )
        empty = self.bin_counts == 0
        scores = self.query_bin_scores
        if np.isfinite(scores[:, empty]).any() or not np.isfinite(scores[:, ~empty]).all():
            raise ProvenanceError(
                "query_bin_scores must be finite exactly on the bins that have documents",
                "rerun stage 02 (a NaN score in a non-empty bin means a NaN gradient)",
            )

    def check_manifest(self, manifest_sha256: str) -> None:
        """The scores belong to this working set (artifacts of different runs must not be mixed)."""
        recorded = self.info.get("manifest_sha256")
        if recorded != manifest_sha256:
            raise ProvenanceError(
                f"stage 02 scored the working set with manifest sha256 {recorded}, but this run's "
                f"manifest is {manifest_sha256}",
                "rerun stage 02 on this run's stage 01",
            )

    # ------------------------------------------------------------------------------------------- files
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_parquet(folder / QUERIES, self.queries)
        save_npy(folder / QUERY_BIN_SCORES, self.query_bin_scores.astype(np.float64))
        save_npy(folder / BIN_COUNTS, self.bin_counts.astype(np.int64))
        write_parquet(folder / DOC_SCORES, self.doc_scores)
        write_json(folder / INFO, self.info)
        return folder

    @classmethod
    def load(cls, folder: str | Path, checkpoint: str | None = None) -> GradientScores:
        """The scores in ``folder`` (stage 02's output); ``checkpoint``: one checkpoint's own scores."""
        folder = Path(folder) if checkpoint is None else Path(folder) / CHECKPOINTS / checkpoint
        missing = [
            name for name in (QUERIES, QUERY_BIN_SCORES, BIN_COUNTS, DOC_SCORES, INFO) if not (folder / name).is_file()
        ]
        if missing:
            raise ProvenanceError(f"{folder} lacks stage 02's {', '.join(missing)}", "run stage 02 first")
        return cls(
            pd.read_parquet(folder / QUERIES),
            np.load(folder / QUERY_BIN_SCORES),
            np.load(folder / BIN_COUNTS),
            pd.read_parquet(folder / DOC_SCORES),
            read_json(folder / INFO),
        )

    @staticmethod
    def checkpoints(folder: str | Path) -> list[str]:
        """Labels of the per-checkpoint scores kept beside the summed ones (empty for a single checkpoint)."""
        root = Path(folder) / CHECKPOINTS
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)

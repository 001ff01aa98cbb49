"""Streaming accumulators: what a rank keeps of the documents it has scored, checkpointed after every chunk.

Scores are linear in the preconditioned, unit-normalized document gradients u_d, so a rank keeps
* per bin the sum of u_d and the count (bins x D, float64): a query's mean score on a bin is one dot product;
* per document a few numbers: its bin, tokens, windows, loss, gradient norm, and its score against each
  benchmark's mean query gradient (all queries, the correctly and the incorrectly answered ones) — the mean of its
  scores over those queries, what the per-document forget sets need;
* optionally u_d itself (``keep_document_gradients``), so tests can check the bin sums against it.

A checkpoint is a folder per rank: ``rows-NNNNN.parquet`` (+ ``grads-NNNNN.npy``) per chunk, ``sums-NNNNN.npz`` (bin
sums and counts after chunk NNNNN) and ``progress.json`` written last, naming the chunk the state belongs to. A
kill between two files leaves ``progress.json`` at the previous chunk; files of later chunks are ignored and
overwritten on resume, so a resumed run ends with the same bytes as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...artifacts import atomic_path, read_json, write_json, write_parquet
from ...errors import ProvenanceError
from .scores import save_npy

PROGRESS = "progress.json"


@dataclass
class Accumulator:
    n_bins: int
    dim: int
    bin_sums: np.ndarray = None
    counts: np.ndarray = None
    rows: list[pd.DataFrame] = field(default_factory=list)
    grads: list[np.ndarray] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    documents: int = 0  # documents consumed from the rank's stream, skipped ones included
    chunks: int = 0

    def __post_init__(self):
        if self.bin_sums is None:
            self.bin_sums = np.zeros((self.n_bins, self.dim), np.float64)
            self.counts = np.zeros(self.n_bins, np.int64)

    def add(self, rows: pd.DataFrame, unit: np.ndarray, keep_grads: bool) -> None:
        """Add one chunk's scored documents: ``rows`` (id, bin, ... one per row of ``unit``)."""
        import torch

        bins = rows["bin"].to_numpy(np.int64, copy=True)
        torch.from_numpy(self.bin_sums).index_add_(
            0, torch.from_numpy(bins), torch.from_numpy(np.ascontiguousarray(unit, np.float64))
        )  # in place: the tensor shares bin_sums' memory
        self.counts += np.bincount(bins, minlength=self.n_bins)
        self.rows.append(rows.reset_index(drop=True))
        if keep_grads:
            self.grads.append(unit.astype(np.float32))

    # ------------------------------------------------------------------------------------------- checkpoints
    def save(self, folder: Path, chunk_skipped: list[dict], consumed: int) -> None:
        """Write the chunk just added and the state after it; ``progress.json`` last."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{self.chunks:05d}"
        write_parquet(folder / f"rows-{name}.parquet", self.rows[-1] if self.rows else pd.DataFrame())
        if self.grads:
            save_npy(folder / f"grads-{name}.npy", self.grads[-1])
        with atomic_path(folder / f"sums-{name}.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, bin_sums=self.bin_sums, counts=self.counts)
        self.skipped += chunk_skipped
        self.documents += consumed
        self.chunks += 1
        write_json(
            folder / PROGRESS,
            {
                "chunks": self.chunks,
                "documents": self.documents,
                "skipped": self.skipped,
                "keeps_grads": bool(self.grads),
            },
        )
        previous = folder / f"sums-{self.chunks - 2:05d}.npz"
        previous.unlink(missing_ok=True)

    @classmethod
    def load(cls, folder: Path, n_bins: int, dim: int) -> Accumulator:
        """The state a rank's checkpoint folder holds (empty when there is none)."""
        acc = cls(n_bins, dim)
        if not (folder / PROGRESS).is_file():
            return acc
        progress = read_json(folder / PROGRESS)
        acc.chunks, acc.documents, acc.skipped = progress["chunks"], progress["documents"], progress["skipped"]
        if acc.chunks:
            state = np.load(folder / f"sums-{acc.chunks - 1:05d}.npz")
            acc.bin_sums, acc.counts = state["bin_sums"], state["counts"]
            if acc.bin_sums.shape != (n_bins, dim):
                raise ProvenanceError(
                    f"{folder} holds accumulators of shape {acc.bin_sums.shape}, expected {(n_bins, dim)}",
                    "delete the folder to start stage 02 afresh",
                )
        for i in range(acc.chunks):
            acc.rows.append(pd.read_parquet(folder / f"rows-{i:05d}.parquet"))
            if progress["keeps_grads"]:
                acc.grads.append(np.load(folder / f"grads-{i:05d}.npy"))
        return acc

    @classmethod
    def merge(cls, parts: list[Accumulator]) -> Accumulator:
        """The ranks' accumulators summed (in rank order) and their rows joined."""
        total = cls(parts[0].n_bins, parts[0].dim)
        for part in parts:
            total.bin_sums += part.bin_sums
            total.counts += part.counts
            total.rows += part.rows
            total.grads += part.grads
            total.skipped += part.skipped
            total.documents += part.documents
        return total

    # ------------------------------------------------------------------------------------------- views
    def table(self) -> pd.DataFrame:
        return pd.concat(self.rows, ignore_index=True) if self.rows else pd.DataFrame()

    def document_gradients(self) -> np.ndarray | None:
        return np.concatenate(self.grads) if self.grads else None


def query_bin_scores(
    query_store: np.ndarray, bin_sums: np.ndarray, counts: np.ndarray, block: int = 1024
) -> np.ndarray:
    """(queries x bins): each query's mean score over each bin's documents, one product (in row blocks of the
    query store, so a float32 store is never copied whole to float64); NaN where a bin is empty."""
    means = np.zeros_like(bin_sums)
    present = counts > 0
    means[present] = bin_sums[present] / counts[present, None]
    scores = np.empty((len(query_store), len(counts)))
    for start in range(0, len(query_store), block):
        scores[start : start + block] = np.asarray(query_store[start : start + block], np.float64) @ means.T
    scores[:, ~present] = np.nan
    return scores

"""The documents pass: ranks launched by bergson's launcher (``launch_distributed_run``: one process per rank, a GPU
each when there are GPUs, ``--nnode`` / ``NODE_RANK`` across nodes) stream their slices of the working set in
chunks of ``checkpoint_every`` documents, and the ranks' accumulators are summed at the end.

Ranks share nothing while they work: each reads the preconditioner the prepare step saved, scores its own
documents and checkpoints its accumulators in its own folder, so there is no collective to wait in and a killed
rank resumes on its own. The merge reads every rank's folder (on a cluster, a shared file system; nodes meet at
bergson's ``parent_barrier`` first) and sums them in rank order.
"""

from __future__ import annotations

import itertools
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...artifacts import atomic_path, read_json, write_json
from ...errors import ProvenanceError
from ...models import ModelRef
from ...params.gradients import Gradients
from ...threads import set_threads
from .collect import gradients, load_model, nonfinite_rows, pick_device, processor
from .accumulate import Accumulator
from .curvature import Curvature, unit_rows
from .documents import Document, rank_slice, tokenize

PREPARED, PREPARE_RECORD, ERROR = "prepared.pt", "prepare.json", "error.json"


@dataclass
class Prepared:
    """What every rank needs besides the model: V, R and the benchmarks' mean query gradients."""

    normalizers: dict  # module -> bergson normalizer
    curvature: Curvature
    means: np.ndarray  # (columns, D): mean preconditioned unit query gradient per doc_scores column
    columns: list[str]

    def save(self, path: Path) -> None:
        state = {
            "normalizers": {n: v.state_dict() for n, v in self.normalizers.items()},
            "curvature": self.curvature.state(),
            "means": self.means,
            "columns": self.columns,
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: Path) -> Prepared:
        from bergson.gradients import Normalizer

        state = torch.load(path, weights_only=False)
        normalizers = {n: Normalizer.from_state_dict(dict(v)) for n, v in state["normalizers"].items()}
        return cls(normalizers, Curvature.from_state(state["curvature"]), state["means"], state["columns"])


@dataclass(frozen=True)
class DocumentJob:
    """Everything a rank needs (picklable: bergson's launcher hands it to spawned processes)."""

    sampling_dir: Path
    work_dir: Path  # this checkpoint's resume folder (prepared.pt, one folder per rank)
    model: ModelRef
    settings: Gradients
    threads: int
    n_bins: int

    @property
    def world_size(self) -> int:
        return self.settings.workers * self.settings.nodes

    def rank_dir(self, rank: int) -> Path:
        return self.work_dir / f"rank-{rank:03d}-of-{self.world_size:03d}"


# ----------------------------------------------------------------------------------------------- one rank
def summed_gradients(
    model, proc, docs: list[Document], settings: Gradients, scratch: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each document's gradient (its windows' bergson gradients summed, float64), its summed loss, and whether
    either is not finite. A non-finite document stops the run, naming it, unless ``on_nonfinite`` is skip."""
    owner = [i for i, doc in enumerate(docs) for _ in doc.windows]
    grads, losses = gradients(
        model, proc, [e for doc in docs for e in doc.examples()], settings.token_batch_size, scratch
    )
    summed = torch.zeros(len(docs), grads.shape[1], dtype=torch.float64)
    summed.index_add_(0, torch.as_tensor(owner, dtype=torch.long), torch.from_numpy(grads).double())
    loss = np.bincount(owner, weights=losses, minlength=len(docs))
    bad = np.bincount(owner, weights=nonfinite_rows(grads, losses), minlength=len(docs)) > 0
    if bad.any() and settings.on_nonfinite == "stop":
        raise ProvenanceError(
            f"document {docs[int(np.flatnonzero(bad)[0])].id} has a non-finite (NaN/inf) gradient or loss",
            "inspect the document and the model; set gradients.on_nonfinite: skip to "
            "leave such documents out and report them",
        )
    return summed.numpy(), loss, bad


def score_chunk(
    model, proc, prepared: Prepared, docs: list[Document], settings: Gradients, scratch: Path
) -> tuple[pd.DataFrame, np.ndarray, list[dict]]:
    """One chunk of documents: their gradients summed per document, preconditioned with R, unit-normalized, scored
    against the mean query gradients. Returns the rows, the unit gradients and the documents left out."""
    summed, loss, bad = summed_gradients(model, proc, docs, settings, scratch)
    skipped = [{"id": d.id, "reason": "fewer than 2 tokens: no next-token loss"} for d in docs if not d.windows]
    skipped += [{"id": docs[i].id, "reason": "non-finite gradient or loss"} for i in np.flatnonzero(bad)]
    keep = np.array([bool(d.windows) and not bad[i] for i, d in enumerate(docs)], dtype=bool)
    unit, norms = unit_rows(prepared.curvature.apply(summed[keep]))
    kept = [d for d, k in zip(docs, keep) if k]
    rows = pd.DataFrame(
        {
            "id": [d.id for d in kept],
            "bin": np.array([d.bin for d in kept], np.int64),
            "tokens": np.array([d.tokens for d in kept], np.int64),
            "windows": np.array([len(d.windows) for d in kept], np.int64),
            "window_tokens": np.array([sum(map(len, d.windows)) for d in kept], np.int64),
            "dropped_tokens": np.array([d.dropped_tokens for d in kept], np.int64),
            "loss": loss[keep],
            "grad_norm": norms,
        }
    )
    scores = unit @ prepared.means.T
    for j, column in enumerate(prepared.columns):
        rows[column] = scores[:, j]
    return rows, unit, skipped


def score_slice(job: DocumentJob, rank: int) -> None:
    """Rank ``rank``: stream its documents after its checkpoint, a chunk at a time, checkpointing after each."""
    s = job.settings
    set_threads(max(1, job.threads // s.workers))
    folder = job.rank_dir(rank)
    prepared = Prepared.load(job.work_dir / PREPARED)
    acc = Accumulator.load(folder, job.n_bins, prepared.means.shape[1])
    model, tokenizer = load_model(job.model, pick_device(s.device))
    proc = processor(prepared.normalizers, s.projection_dim, s.projection_seed)
    stream = rank_slice(job.sampling_dir, rank, job.world_size, skip=acc.documents)
    while chunk := list(itertools.islice(stream, s.checkpoint_every)):
        docs = [tokenize(doc, tokenizer, s.max_length, s.max_windows) for doc in chunk]
        rows, unit, skipped = score_chunk(model, proc, prepared, docs, s, folder / "bergson")
        acc.add(rows, unit, s.keep_document_gradients)
        acc.save(folder, skipped, len(chunk))


def rank_worker(rank: int, local_rank: int, world_size: int, job: DocumentJob) -> None:
    """bergson's launcher calls this in each rank; a bad-input error is left in the rank's folder for the parent."""
    try:
        score_slice(job, rank)
    except ProvenanceError as exc:
        write_json(job.rank_dir(rank) / ERROR, {"problem": exc.problem, "fix": exc.fix})
        raise
    except Exception:
        write_json(job.rank_dir(rank) / ERROR, {"problem": traceback.format_exc(), "fix": None})
        raise


# ----------------------------------------------------------------------------------------------- all ranks
def score_documents(job: DocumentJob) -> Accumulator:
    """Run (or resume) every rank of this node, wait for the other nodes, and sum the ranks' accumulators."""
    from bergson.config.config import DistributedConfig
    from bergson.distributed import launch_distributed_run, parent_barrier

    s = job.settings
    dist = DistributedConfig(nnode=s.nodes, nproc_per_node=s.workers)
    for rank in range(job.world_size):
        job.rank_dir(rank).joinpath(ERROR).unlink(missing_ok=True)
    try:
        launch_distributed_run("stage 02 documents", rank_worker, [job], dist)
    except RuntimeError:
        _raise_rank_error(job)
        raise
    parent_barrier(dist)
    _raise_rank_error(job)
    dim = Prepared.load(job.work_dir / PREPARED).means.shape[1]
    parts = [Accumulator.load(job.rank_dir(rank), job.n_bins, dim) for rank in range(job.world_size)]
    return Accumulator.merge(parts)


def _raise_rank_error(job: DocumentJob) -> None:
    for rank in range(job.world_size):
        path = job.rank_dir(rank) / ERROR
        if path.is_file():
            error = read_json(path)
            raise ProvenanceError(f"rank {rank}: {error['problem']}", error["fix"])

"""Stage 01's engine: torch.distributed (gloo) ranks share the index and fetch maps; rank 0 merges and writes."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from ... import taxonomy
from ...errors import ProvenanceError
from .index import CorpusIndex, index_shards
from .job import WORKING_SET, SamplingJob, stage_job
from .outputs import SamplingResult, save_heatmap, write_outputs
from .select import Selection, select, write_working_set_shard

# Ranks wait in a collective while the slowest one finishes its shards; at paper scale that can take hours.
COLLECTIVE_TIMEOUT = timedelta(hours=6)


# ----------------------------------------------------------------------------------------------- ranks
@dataclass
class _Outcome:
    """A rank's value or its error, so a failure on one rank reaches every rank through the collectives instead
    of leaving the others waiting."""

    value: Any = None
    error: BaseException | None = None

    def unwrap(self):
        if self.error is not None:
            raise self.error
        return self.value


def _attempt(step: Callable[[], Any]) -> _Outcome:
    try:
        return _Outcome(step())
    except ProvenanceError as exc:
        return _Outcome(error=exc)
    except Exception:  # a bug: keep its traceback, in a form that pickles
        return _Outcome(error=RuntimeError(traceback.format_exc()))


def _gather(outcome: _Outcome, rank: int, world: int) -> list[_Outcome] | None:
    if world == 1:
        return [outcome]
    import torch.distributed as dist

    gathered = [None] * world if rank == 0 else None
    dist.gather_object(outcome, gathered, dst=0)
    return gathered


def _broadcast(outcome: _Outcome | None, world: int) -> _Outcome:
    if world == 1:
        return outcome
    import torch.distributed as dist

    box = [outcome]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run_rank(job: SamplingJob, rank: int, world: int) -> SamplingResult:
    """One rank's share: index its shards, (rank 0) select, fetch its shards' sampled documents, (rank 0) write
    the released artifacts. Every rank returns the same result or raises the same error."""
    mine = range(rank, len(job.shards), world)
    parts = _gather(_attempt(lambda: index_shards(job, mine, desc=f"index (rank {rank})")), rank, world)
    selected = None
    if rank == 0:
        def merge() -> Selection:
            index = CorpusIndex.concat([part.unwrap() for part in parts])
            parts.clear()  # the parts' arrays are now copied into the index
            selection = select(index, job.seed, job.target_per_bin, taxonomy.load().n_bins)
            _clear_working_set(Path(job.out_dir))
            return selection
        selected = _attempt(merge)
    selection: Selection = _broadcast(selected, world).unwrap()

    def fetch() -> dict[int, list[str]]:
        ids = {}
        for ordinal in tqdm(mine, desc=f"fetch (rank {rank})", unit="shard"):
            rows = selection.rows_of(ordinal)
            if len(rows):
                shard = job.shards[ordinal]
                ids[ordinal] = write_working_set_shard(shard, rows, Path(job.out_dir) / WORKING_SET / shard.name)
        return ids

    fetched = _gather(_attempt(fetch), rank, world)
    written = None
    if rank == 0:
        written = _attempt(lambda: write_outputs(
            job, selection, {k: v for part in fetched for k, v in part.unwrap().items()}))
    return _broadcast(written, world).unwrap()


def _clear_working_set(out_dir: Path) -> None:
    shutil.rmtree(out_dir / WORKING_SET, ignore_errors=True)
    (out_dir / WORKING_SET).mkdir(parents=True)


def sample(job: SamplingJob) -> SamplingResult:
    """Run the job: on the torch.distributed ranks this process belongs to, in this process (``workers`` 1), or
    on ``workers`` local gloo ranks."""
    if not job.shards:
        raise ProvenanceError("no corpus shards to sample from", "build the world first")
    if "torch" in sys.modules and sys.modules["torch"].distributed.is_initialized():
        import torch.distributed as dist

        return run_rank(job, dist.get_rank(), dist.get_world_size())
    if job.workers == 1:
        return run_rank(job, 0, 1)
    return _run_local_ranks(job)


def _run_local_ranks(job: SamplingJob) -> SamplingResult:
    import multiprocessing
    import torch.distributed as dist

    with tempfile.TemporaryDirectory(prefix="sampling-rendezvous-") as rendezvous:
        init_method = (Path(rendezvous) / "store").as_uri()
        context = multiprocessing.get_context("spawn")
        helpers = [context.Process(target=_helper_rank, args=(job, rank, job.workers, init_method), daemon=True)
                   for rank in range(1, job.workers)]
        for helper in helpers:
            helper.start()
        try:
            dist.init_process_group("gloo", init_method=init_method, rank=0, world_size=job.workers,
                                    timeout=COLLECTIVE_TIMEOUT)
            try:
                return run_rank(job, 0, job.workers)
            finally:
                dist.destroy_process_group()
        finally:
            for helper in helpers:
                helper.join()


def _helper_rank(job: SamplingJob, rank: int, world: int, init_method: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT)
    try:
        run_rank(job, rank, world)
    except (ProvenanceError, RuntimeError):
        sys.exit(1)  # rank 0 raises the same error to the caller
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    """Cluster entry: ``torchrun --nnodes N --nproc-per-node P -m provenance_lib.stages.sampling.engine --run-dir RUN``."""
    import torch.distributed as dist

    from ...context import open_stage

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--out-dir", default=None, help="default: the run's interactive folder for 01_sampling")
    args = parser.parse_args(argv)
    dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        result = run_rank(stage_job(open_stage("01_sampling", run_dir=args.run_dir, out_dir=args.out_dir)),
                          dist.get_rank(), dist.get_world_size())
        if dist.get_rank() == 0:
            save_heatmap(result)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

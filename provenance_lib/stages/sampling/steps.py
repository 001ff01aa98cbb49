"""Stage 01's steps as datatrove pipeline steps, and the work folder they hand their rows over in.

Each step runs as ``tasks`` independent datatrove tasks (task ``rank`` of ``world_size``); a step starts once every
task of the one before has completed, and reads only files those tasks wrote. Rows are ``index.ROW`` records
(30 bytes, no text) in raw ``.rows`` files, named ``data/<kind>/<part>/<writer task>.rows`` as datatrove's own
de-duplication names its bucket files. Every file is a pure function of the corpus and the plan, so a task that
is run again after a crash writes the same bytes.

=========  =====================  ==================================================================================
step       tasks                  does
=========  =====================  ==================================================================================
map        ``tasks`` over shards  rows of shards rank, rank + tasks, ... into id buckets (``data/ids``)
ids        one per bucket         first row of each id; the survivors into text buckets (``data/texts``)
texts      one per bucket         first row of each text (``data/unique``); rows that need their text annotated,
                                  to the task that reads their shard (``data/requests``)
annotate   ``tasks`` over shards  classifier labels and base-model tokens of those rows (``data/annotated``)
bins       one per bucket         labels joined; population per bin; bottom-k per bin (``data/candidates``)
merge      one per bin group      bottom-k per bin over every bucket's candidates (``data/sample``)
fetch      ``tasks`` over shards  the sampled documents' text into the working set; their ids (``data/fetched``)
=========  =====================  ==================================================================================
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from ... import taxonomy
from ...artifacts import atomic_path, read_json, write_json
from ...errors import ProvenanceError
from ...process import peak_rss_mib
from .annotate import Annotator
from .index import ROW, MetadataLabels, bins_of, index_shard, text_hash
from .job import ROW_BITS, WORKING_SET, SamplingJob
from .select import CorpusIndex, bottom_k, bucket_of, first_occurrences, split_by, write_working_set_shard

FLUSH_ROWS = 1 << 18  # rows a map task buffers before appending them to its bucket files (7.5 MiB)
EMPTY_TEXT_HASH = np.uint64(text_hash(""))  # the text hash of a document with no words
EXAMPLES = 5  # positions a task keeps of the documents it names (empty texts, conflicting duplicate ids)


@dataclass(frozen=True)
class Plan:
    """How the work is split; the result does not depend on it, the files in the work folder do."""

    tasks: int  # map, annotate and fetch tasks (each reads shards rank, rank + tasks, ...)
    buckets: int  # id and text hash buckets (ids, texts and bins tasks)
    merge_tasks: int  # bin groups of the merge step
    annotate: bool  # whether the annotate step runs (classifiers or base-model token counts)


# ----------------------------------------------------------------------------------------------- the work folder
@dataclass(frozen=True)
class Work:
    root: Path

    def rows(self, kind: str, part: int, writer: int) -> Path:
        return self.root / "data" / kind / f"{part:05d}" / f"{writer:05d}.rows"

    def read_part(self, kind: str, part: int) -> np.ndarray:
        """Every writer's rows of one part, in writer order."""
        files = sorted((self.root / "data" / kind / f"{part:05d}").glob("*.rows"))
        return np.concatenate([np.fromfile(f, ROW) for f in files]) if files else np.empty(0, ROW)

    def write_parts(self, kind: str, parts: list[np.ndarray], writer: int) -> None:
        """One file per part, empty ones too: a task run again overwrites every file it wrote before."""
        for part, rows in enumerate(parts):
            self.write_part(kind, part, writer, rows)

    def write_part(self, kind: str, part: int, writer: int, rows: np.ndarray) -> None:
        path = self.rows(kind, part, writer)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.tofile(path)

    def counts(self, step: str, task: int) -> Path:
        return self.root / "counts" / step / f"{task:05d}.json"

    def read_counts(self, step: str) -> list[dict]:
        return [read_json(p) for p in sorted((self.root / "counts" / step).glob("*.json"))]

    def release(self, step: str) -> None:
        """Once every task of ``step`` completed, the rows only it reads are not needed again: the work folder's
        peak stays near two steps' rows (at paper scale ~230 GB, not the ~450 GB of every step's)."""
        for kind in READS[step]:
            shutil.rmtree(self.root / "data" / kind, ignore_errors=True)

    def released(self, kind: str) -> bool:
        return not (self.root / "data" / kind).is_dir()

    def sample(self, group: int) -> Path:
        return self.root / "data" / "sample" / f"{group:05d}.npy"

    def fetched(self, task: int) -> Path:
        return self.root / "data" / "fetched" / f"{task:05d}.parquet"


class SamplingStep(PipelineStep):
    """A step of stage 01: a datatrove pipeline step that reads and writes the work folder, nothing in between."""

    type = "📊 - SAMPLING"

    def __init__(self, job: SamplingJob, plan: Plan, work: Work, after: tuple[str, int] | None = None):
        super().__init__()
        self.job, self.plan, self.work, self.after = job, plan, work, after

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        self.check_inputs()
        cpu = time.process_time()
        with self.track_time(unit="task"):
            counts = Counter(self.process(rank, world_size))
        self.stat_update("rows", value=counts.get("rows", 0), unit="task")
        self.stat_update("cpu_ms", value=round(1000 * (time.process_time() - cpu)), unit="task")
        # this process's peak so far: the task's own when it ran in a fresh worker (Slurm, Ray, a local pool)
        self.stat_update("peak_rss_mib", value=round(peak_rss_mib()), unit="task")
        write_json(self.work.counts(self.name, rank), dict(counts))

    def check_inputs(self) -> None:
        """Every task of the step before (``after``: its name and task count) completed. The executors order the
        steps already; this also holds where a scheduler would not (Slurm splits a step of more tasks than its
        MaxArraySize into several arrays, and the next step's afterok waits for the last one only)."""
        if self.after is None:
            return
        step, tasks = self.after
        completions = self.work.root / step / "completions"
        done = len(list(completions.iterdir())) if completions.is_dir() else 0
        if done < tasks:
            raise ProvenanceError(
                f"step {self.name!r} started before step {step!r} completed ({done} of {tasks} tasks)",
                "run the stage again: it redoes the missing tasks first",
            )

    def process(self, rank: int, world_size: int) -> Counter:
        raise NotImplementedError

    def my_shards(self, rank: int, world_size: int) -> range:
        return range(rank, len(self.job.shards), world_size)


# ----------------------------------------------------------------------------------------------- steps
class MapStep(SamplingStep):
    name = "map"

    def process(self, rank: int, world_size: int) -> Counter:
        for stale in (self.work.root / "data" / "ids").glob(f"*/{rank:05d}.rows"):  # from a killed attempt
            stale.unlink()
        counts, labels, buffered = Counter(), MetadataLabels(), []
        count_words = self.job.tokens == "whitespace"
        for ordinal in self.my_shards(rank, world_size):
            for rows in index_shard(self.job.shards[ordinal], ordinal, labels, count_words, counts):
                empty = rows["text_hash"] == EMPTY_TEXT_HASH  # nothing to attribute: left out, counted, named
                if empty.any():
                    counts["removed_empty_text"] += int(empty.sum())
                    counts["empty_text_positions"] = [
                        *(counts["empty_text_positions"] or []),
                        *map(int, rows["position"][empty]),
                    ][:EXAMPLES]
                    rows = rows[~empty]
                buffered.append(rows)
                if sum(map(len, buffered)) >= FLUSH_ROWS:
                    self._append(buffered, rank)
                    buffered = []
        self._append(buffered, rank)
        counts["rows"] = counts["documents"]
        return counts

    def _append(self, buffered: list[np.ndarray], rank: int) -> None:
        if not buffered:
            return
        rows = np.concatenate(buffered)
        for bucket, part in enumerate(split_by(rows, bucket_of(rows["id_hash"], self.plan.buckets), self.plan.buckets)):
            if len(part):
                path = self.work.rows("ids", bucket, rank)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "ab") as f:
                    part.tofile(f)


class DedupIdsStep(SamplingStep):
    name = "ids"

    def process(self, rank: int, world_size: int) -> Counter:
        rows = self.work.read_part("ids", rank)
        survivors = first_occurrences(rows, "id_hash")
        self.work.write_parts(
            "texts", split_by(survivors, bucket_of(survivors["text_hash"], self.plan.buckets), self.plan.buckets), rank
        )
        kept, dropped = conflicting_duplicates(rows, survivors)
        return Counter(
            rows=len(rows),
            removed_duplicate_id=len(rows) - len(survivors),
            conflicting_duplicate_id=len(dropped),
            conflict_positions=[[int(k), int(d)] for k, d in zip(kept[:EXAMPLES], dropped[:EXAMPLES])],
        )


class DedupTextsStep(SamplingStep):
    name = "texts"

    def process(self, rank: int, world_size: int) -> Counter:
        rows = self.work.read_part("texts", rank)
        unique = first_occurrences(rows, "text_hash")
        self.work.write_part("unique", rank, rank, unique)
        if self.plan.annotate:
            wanted = unique[self._needs_text(unique)]
            shard_task = (wanted["position"] >> np.uint64(ROW_BITS)).astype(np.int64) % self.plan.tasks
            self.work.write_parts("requests", split_by(wanted, shard_task, self.plan.tasks), rank)
        return Counter(rows=len(rows), removed_duplicate_text=len(rows) - len(unique))

    def _needs_text(self, rows: np.ndarray) -> np.ndarray:
        """Rows that can end up labelled and lack a label the classifiers give, or need base-model tokens."""
        can = {
            axis: (rows[axis] >= 0) | (source is not None)
            for axis, source in (("topic", self.job.topic_classifier), ("format", self.job.format_classifier))
        }
        labellable = can["topic"] & can["format"]
        if self.job.tokens == "base_model":
            return labellable
        return labellable & ((rows["topic"] < 0) | (rows["format"] < 0))


class AnnotateStep(SamplingStep):
    name = "annotate"

    def process(self, rank: int, world_size: int) -> Counter:
        requests = self.work.read_part("requests", rank)
        requests = requests[np.argsort(requests["position"], kind="stable")]
        ordinals = (requests["position"] >> np.uint64(ROW_BITS)).astype(np.int64)
        annotator = Annotator(self.job, rank, self.work.root / "annotations")
        counts, done = Counter(rows=len(requests)), []
        for ordinal in np.unique(ordinals):
            lo, hi = np.searchsorted(ordinals, [ordinal, ordinal + 1])
            done.append(annotator.annotate(self.job.shards[ordinal], requests[lo:hi], counts))
        rows = np.concatenate(done) if done else np.empty(0, ROW)
        self.work.write_parts(
            "annotated", split_by(rows, bucket_of(rows["text_hash"], self.plan.buckets), self.plan.buckets), rank
        )
        return counts


class BinsStep(SamplingStep):
    name = "bins"

    def process(self, rank: int, world_size: int) -> Counter:
        rows = self.work.read_part("unique", rank)  # in corpus order
        if self.plan.annotate:
            annotated = self.work.read_part("annotated", rank)
            at = np.searchsorted(rows["position"], annotated["position"])
            if (at >= len(rows)).any() or not np.array_equal(rows["position"][at], annotated["position"]):
                raise ProvenanceError(
                    f"bucket {rank}: annotated rows that are not among its unique rows",
                    "a bug: report it with the work folder",
                )
            rows[at] = annotated
        n_formats = len(taxonomy.load().formats)
        bins = bins_of(rows, n_formats)
        labelled = bins >= 0
        n_bins = taxonomy.load().n_bins
        candidates, offsets = bottom_k(rows[labelled], bins[labelled], self.job.seed, self.job.target_per_bin)
        save(self.work.rows("candidates", 0, rank).with_suffix(".offsets.npy"), offsets)
        with atomic_path(self.work.rows("candidates", 0, rank)) as tmp:
            candidates.tofile(tmp)
        docs = np.bincount(bins[labelled], minlength=n_bins)
        tokens = np.bincount(bins[labelled], weights=rows["tokens"][labelled], minlength=n_bins).astype(np.int64)
        return Counter(
            rows=len(rows),
            unique=len(rows),
            unlabelled_unique=int((~labelled).sum()),
            population_docs=docs.tolist(),
            population_tokens=tokens.tolist(),
        )


class MergeStep(SamplingStep):
    name = "merge"

    def process(self, rank: int, world_size: int) -> Counter:
        n_bins = taxonomy.load().n_bins
        lo, hi = rank * n_bins // world_size, (rank + 1) * n_bins // world_size  # this task's bins
        parts = []
        for bucket in range(self.plan.buckets):
            path = self.work.rows("candidates", 0, bucket)
            offsets = np.load(path.with_suffix(".offsets.npy"))
            parts.append(
                np.fromfile(path, ROW, count=int(offsets[hi] - offsets[lo]), offset=int(offsets[lo]) * ROW.itemsize)
            )
        candidates = np.concatenate(parts)
        chosen, _ = bottom_k(
            candidates, bins_of(candidates, len(taxonomy.load().formats)), self.job.seed, self.job.target_per_bin
        )
        chosen = np.sort(chosen, order="position")
        save(self.work.sample(rank).with_suffix(".positions.npy"), chosen["position"])
        save(self.work.sample(rank), chosen)
        return Counter(rows=len(candidates))


class FetchStep(SamplingStep):
    name = "fetch"

    def process(self, rank: int, world_size: int) -> Counter:
        samples = [
            (
                np.load(self.work.sample(group), mmap_mode="r"),
                np.load(self.work.sample(group).with_suffix(".positions.npy"), mmap_mode="r"),
            )
            for group in range(self.plan.merge_tasks)
        ]
        n_formats = len(taxonomy.load().formats)
        positions, ids = [], []
        for ordinal in self.my_shards(rank, world_size):
            rows = np.concatenate(
                [rows_of_shard(sample, sample_positions, ordinal) for sample, sample_positions in samples]
            )
            if not len(rows):
                continue
            rows = np.sort(rows, order="position")
            shard = self.job.shards[ordinal]
            ids += write_working_set_shard(
                shard,
                CorpusIndex.from_rows(rows, bins_of(rows, n_formats)),
                Path(self.job.out_dir) / WORKING_SET / shard.name,
            )
            positions.append(rows["position"])
        table = pa.table(
            {
                "position": np.concatenate(positions) if positions else np.empty(0, np.uint64),
                "id": pa.array(ids, pa.string()),
            }
        )
        with atomic_path(self.work.fetched(rank)) as tmp:
            pq.write_table(table, tmp)
        return Counter(rows=len(ids))


def conflicting_duplicates(rows: np.ndarray, survivors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the id duplicates whose text differs from the first occurrence's (the one kept), and of that
    first occurrence: another document under a reused id, dropped by the rule that keeps the first."""
    if not len(rows):
        return rows["position"], rows["position"]
    order = np.argsort(survivors["id_hash"], kind="stable")
    first = survivors[order][np.searchsorted(survivors["id_hash"][order], rows["id_hash"])]
    conflict = first["text_hash"] != rows["text_hash"]
    ordered = np.argsort(rows["position"][conflict], kind="stable")
    return first["position"][conflict][ordered], rows["position"][conflict][ordered]


def rows_of_shard(sample: np.ndarray, positions: np.ndarray, ordinal: int) -> np.ndarray:
    """The rows of one shard in a position-sorted sample part; memory-mapped, so a fetch task reads only the pages
    of its own rows and of the binary search (over the contiguous positions: a strided column would be copied)."""
    lo, hi = np.searchsorted(
        positions, [np.uint64(ordinal) << np.uint64(ROW_BITS), np.uint64(ordinal + 1) << np.uint64(ROW_BITS)]
    )
    return np.asarray(sample[lo:hi])


def save(path: Path, array: np.ndarray) -> None:
    """np.save, atomically (np.save would add .npy to the temporary name)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


STEPS = (MapStep, DedupIdsStep, DedupTextsStep, AnnotateStep, BinsStep, MergeStep, FetchStep)
READS = {
    "map": (),
    "ids": ("ids",),
    "texts": ("texts",),
    "annotate": ("requests",),
    "bins": ("unique", "annotated"),
    "merge": ("candidates",),
    "fetch": (),
}  # the rows each step reads that no later step reads

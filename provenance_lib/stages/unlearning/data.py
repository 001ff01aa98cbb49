"""What an unlearning run reads: working-set texts by id, and the forget / retain document streams of its steps.

The working set (stage 01's zstd JSON-lines shards) only streams, while a run needs a few thousand documents by id
from anywhere in it (its forget set, and 1,000 documents per non-target topic for the retain set, drawn again every
``retain_resample_steps``). So the stage copies id, bin, tokens and text once into an uncompressed Arrow IPC file
(``DocumentStore``) that every run memory-maps: random access without loading the corpus, shared by the parallel
runs of a job array. Document order in every stream is a pure function of the seed, so the targeted and the random
run of a pair see the same retain documents at the same steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from ...artifacts import atomic_path
from ...errors import ProvenanceError
from ...taxonomy import load as load_taxonomy

STORE_SCHEMA = pa.schema([("id", pa.string()), ("bin", pa.int16()), ("tokens", pa.int64()), ("text", pa.string())])


class DocumentStore:
    """Working-set documents by id, memory-mapped from one Arrow IPC file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ProvenanceError(f"document store {self.path} is missing", "run the unlearning stage's plan again")
        self.table = pa.ipc.open_file(pa.memory_map(str(self.path))).read_all()
        ids = self.table.column("id").to_pylist()
        self.row = {doc_id: i for i, doc_id in enumerate(ids)}
        self.topic = self.table.column("bin").to_numpy() // len(load_taxonomy().formats)

    @classmethod
    def write(cls, path: str | Path, documents: Iterable[dict], batch: int = 4096) -> DocumentStore:
        """Copy working-set documents (stage 01's shard records) into the store, in the order given."""
        with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, STORE_SCHEMA) as writer:
            rows: list[dict] = []
            for doc in documents:
                sampling = doc["metadata"]["sampling"]
                rows.append(
                    {"id": doc["id"], "bin": sampling["bin"], "tokens": sampling["tokens"], "text": doc["text"]}
                )
                if len(rows) == batch:
                    writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=STORE_SCHEMA))
                    rows = []
            if rows:
                writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=STORE_SCHEMA))
        return cls(path)

    def texts(self, ids: list[str]) -> list[str]:
        try:
            rows = [self.row[i] for i in ids]
        except KeyError as exc:
            raise ProvenanceError(
                f"document {exc.args[0]!r} is not in the working set {self.path}",
                "the forget set and the working set come from different runs: rerun stage 05's "
                "plan on this run's stage 01",
            ) from None
        return self.table.column("text").take(pa.array(rows, pa.int64())).to_pylist()

    def ids_by_topic(self, exclude_topic: int | None, exclude_ids: Iterable[str]) -> dict[int, np.ndarray]:
        """Retain pools: the document rows of every topic but ``exclude_topic``, without the forgotten documents."""
        keep = np.ones(len(self.row), dtype=bool)
        if exclude_topic is not None:
            keep &= self.topic != exclude_topic
        keep[[self.row[i] for i in exclude_ids if i in self.row]] = False
        return {int(t): np.flatnonzero(keep & (self.topic == t)) for t in np.unique(self.topic[keep])}

    def ids_of(self, rows: np.ndarray) -> list[str]:
        return self.table.column("id").take(pa.array(rows, pa.int64())).to_pylist()


def seeded_rng(*key) -> np.random.Generator:
    """A generator seeded by a readable key: the same key gives the same draws on every machine."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def forget_stream(ids: tuple[str, ...], batch_size: int, seed: int) -> Iterator[list[str]]:
    """Endless batches over the forget set: each epoch a seeded shuffle; a set smaller than a batch repeats."""
    rng, epoch = seeded_rng("forget", seed), []
    while True:
        while len(epoch) < batch_size:
            epoch += [ids[i] for i in rng.permutation(len(ids))]
        yield epoch[:batch_size]
        epoch = epoch[batch_size:]


def retain_stream(
    store: DocumentStore,
    exclude_topic: int | None,
    exclude_ids: tuple[str, ...],
    per_topic: int,
    resample_every: int,
    batch_size: int,
    batches_per_step: int,
    seed: int,
) -> Iterator[list[str]]:
    """Endless retain batches: every ``resample_every`` steps a fresh draw of ``per_topic`` documents from each
    non-target topic (all of a smaller topic's), shuffled together and cycled through until the next draw."""
    pools = store.ids_by_topic(exclude_topic, exclude_ids)
    if not pools:
        raise ProvenanceError(
            "the retain set is empty: every working-set document is in the target topic",
            "target a topic that leaves others in the working set",
        )
    for draw in range(1 << 62):
        rng = seeded_rng("retain", seed, draw)
        rows = np.concatenate(
            [rng.choice(pool, size=min(per_topic, len(pool)), replace=False) for _, pool in sorted(pools.items())]
        )
        order = store.ids_of(rows[rng.permutation(len(rows))])
        for i in range(resample_every * batches_per_step):
            start = (i * batch_size) % len(order)
            yield [order[(start + j) % len(order)] for j in range(batch_size)]

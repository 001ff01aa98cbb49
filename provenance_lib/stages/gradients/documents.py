"""The document side's inputs: stage 01's working set as token windows, a rank's slice of it, and the seeded
calibration sample (V's estimate, the train-side autocorrelation).

Documents are read in working-set order (shard by shard, as stage 01 wrote them); rank r of R takes documents r,
r + R, ... so ranks never share a document and every document's windows stay on one rank. A document is tokenized
with the base model's tokenizer as it is (its special tokens, no truncation) and cut into windows
(``collect.windows``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

import pandas as pd

from ...errors import ProvenanceError
from ..sampling import MANIFEST, iter_working_set
from ..sampling.index import hash64
from .collect import Example, windows


@dataclass
class Document:
    id: str
    bin: int
    tokens: int  # the manifest's count (stage 01's token counting)
    windows: list[list[int]]
    dropped_tokens: int  # tokens beyond max_windows, left out

    def examples(self) -> list[Example]:
        return [Example(w) for w in self.windows]


def tokenize(doc: dict, tokenizer, max_length: int, max_windows: int | None) -> Document:
    ids = tokenizer(doc["text"])["input_ids"]
    cut = windows(ids, max_length, max_windows)
    covered = (len(cut) * (max_length - 1) + 1) if cut else 0
    sampling = doc["metadata"]["sampling"]
    return Document(doc["id"], int(sampling["bin"]), int(sampling["tokens"]), cut, max(0, len(ids) - covered))


def check_working_set(sampling_dir: Path) -> pd.DataFrame:
    """Stage 01's manifest, refused when empty or when the working set does not hold exactly its documents."""
    path = Path(sampling_dir) / MANIFEST
    if not path.is_file():
        raise ProvenanceError(f"{sampling_dir} has no {MANIFEST}", "run stage 01 first")
    manifest = pd.read_parquet(path, columns=["id", "bin", "tokens"])
    if manifest.empty:
        raise ProvenanceError(
            "the working set is empty: stage 01 sampled no documents",
            "check stage 01's sampling_summary.json (no labelled documents?)",
        )
    ids = [doc["id"] for doc in iter_working_set(sampling_dir)]
    if len(ids) != len(manifest) or set(ids) != set(manifest["id"]):
        raise ProvenanceError(
            f"the working set ({len(ids)} documents) does not match the manifest ({len(manifest)} rows)",
            "rerun stage 01",
        )
    return manifest


def rank_slice(sampling_dir: Path, rank: int, world: int, skip: int = 0) -> Iterator[dict]:
    """Rank ``rank``'s documents (every ``world``-th one), after the first ``skip`` of them (resume)."""
    for i, doc in enumerate(iter_working_set(sampling_dir)):
        if i % world == rank and i // world >= skip:
            yield doc


def sample_key(doc_id: str, seed: int) -> int:
    """A seeded hash of the id: the calibration sample is the documents with the smallest keys (uniform, without
    replacement, independent of stage 01's draw, and a smaller sample is a prefix of a larger one)."""
    return hash64(f"provenance-gradients/{seed}/{doc_id}")


def calibration_sample(sampling_dir: Path, n: int, seed: int) -> list[dict]:
    """The ``n`` working-set documents with the smallest ``sample_key``, in key order (one pass, a heap of n)."""
    heap: list[tuple[int, int, dict]] = []
    for i, doc in enumerate(iter_working_set(sampling_dir)):
        item = (-sample_key(doc["id"], seed), i, doc)
        if len(heap) < n:
            heapq.heappush(heap, item)
        elif item[0] > heap[0][0]:
            heapq.heapreplace(heap, item)
    return [doc for _, _, doc in sorted(heap, key=lambda t: (-t[0], t[1]))]

"""The reductions of stage 01, each exact on any partition of the rows it is given: de-duplication by hash
bucket, bottom-k per bin (per bucket, then merged), and the fetch of the sampled documents' text.

Why the partitioned de-duplication equals the plain one (ids first, then texts among the id survivors, first in
canonical order wins each time): every copy of an id hashes into the same id bucket, so the first copy of each id
is found inside its bucket; the id survivors go on to text buckets the same way. A document dropped as an id
duplicate never reaches a text bucket, so it cannot hide a text. And the bottom-k of a bin over the whole corpus is
the bottom-k of the union of each part's bottom-k of that bin, so per-bucket candidates merge exactly."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

import numpy as np

from ... import corpus, taxonomy
from ...errors import ProvenanceError
from .index import content_hash, sampling_key, text_hash
from .job import ROW_BITS, WORKING_SET, ShardRef


# ----------------------------------------------------------------------------------------------- de-duplication
def bucket_of(hashes: np.ndarray, n_buckets: int) -> np.ndarray:
    """The bucket of each 64-bit hash: its top 32 bits scaled to ``n_buckets`` (even for any count)."""
    return ((hashes.astype(np.uint64) >> np.uint64(32)) * np.uint64(n_buckets) >> np.uint64(32)).astype(np.int64)


def first_occurrences(rows: np.ndarray, column: str) -> np.ndarray:
    """The rows that come first in corpus order among those with the same ``column`` value, sorted by position."""
    order = np.lexsort((rows["position"], rows[column]))
    values = rows[column][order]
    first = np.ones(len(order), bool)
    first[1:] = values[1:] != values[:-1]
    kept = order[first]
    return rows[kept[np.argsort(rows["position"][kept], kind="stable")]]


def split_by(rows: np.ndarray, keys: np.ndarray, n_parts: int) -> list[np.ndarray]:
    """``rows`` split into ``n_parts`` by ``keys`` (0 .. n_parts-1), each part in its original order."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n_parts + 1))
    ordered = rows[order]
    return [ordered[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


# ----------------------------------------------------------------------------------------------- bottom-k
def bottom_k(rows: np.ndarray, bins: np.ndarray, seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The at most ``k`` rows per bin with the smallest sampling keys, sorted by (bin, key), and the offsets of
    each bin's run (``n_bins + 1`` entries for bins 0 .. n_bins-1)."""
    n_bins = taxonomy.load().n_bins
    order = np.lexsort((sampling_key(rows["text_hash"], seed), bins))
    sorted_bins = bins[order]
    rank_in_bin = np.arange(len(order)) - np.searchsorted(sorted_bins, sorted_bins)
    kept = order[rank_in_bin < k]
    return rows[kept], np.searchsorted(bins[kept], np.arange(n_bins + 1)).astype(np.int64)


# ----------------------------------------------------------------------------------------------- the result
@dataclass
class CorpusIndex:
    """Columns of some documents (the sample), no text: what the manifest and the summary are written from."""

    position: np.ndarray
    id_hash: np.ndarray
    text_hash: np.ndarray
    bin: np.ndarray
    tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.position)

    @classmethod
    def from_rows(cls, rows: np.ndarray, bins: np.ndarray) -> CorpusIndex:
        return cls(
            rows["position"].copy(),
            rows["id_hash"].copy(),
            rows["text_hash"].copy(),
            bins.astype(np.int16),
            rows["tokens"].copy(),
        )

    def take(self, mask_or_order) -> CorpusIndex:
        return CorpusIndex(
            self.position[mask_or_order],
            self.id_hash[mask_or_order],
            self.text_hash[mask_or_order],
            self.bin[mask_or_order],
            self.tokens[mask_or_order],
        )


@dataclass
class Selection:
    """The merged result: the sampled documents (in corpus order) and the population per bin."""

    sampled: CorpusIndex
    population_docs: np.ndarray  # per bin, after de-duplication
    population_tokens: np.ndarray
    counts: Counter


def check_population(counts: Counter) -> None:
    """The two ways a corpus can give nothing to sample, as errors."""
    if counts["documents"] == 0:
        raise ProvenanceError("the corpus has no documents (every shard is empty)", "build the world again")
    if counts["unique"] == counts["unlabelled_unique"]:
        raise ProvenanceError(
            f"none of the {counts['unique']} unique documents has both a topic and a format label",
            "label the shards (metadata weborganizer_max / weborganizer_format_max) or set labels.topic / "
            "labels.format to a classifier",
        )


# ----------------------------------------------------------------------------------------------- fetch
def write_working_set_shard(shard: ShardRef, rows: CorpusIndex, out_path: Path) -> list[str]:
    """Copy the sampled documents of one shard (``rows``, in row order) into a working-set shard, with their
    labels and sampling facts in ``metadata``; return their ids. Checks each against the index, so a shard changed
    since it was indexed is an error, not a silently different sample."""
    tax = taxonomy.load()
    wanted = {int(position) & ((1 << ROW_BITS) - 1): i for i, position in enumerate(rows.position)}
    ids: list[str] = []

    def documents() -> Iterator[dict]:
        for row, doc in enumerate(corpus.iter_shard(shard.path)):
            i = wanted.get(row)
            if i is None:
                continue
            if content_hash(doc["id"].encode()) != rows.id_hash[i] or text_hash(doc["text"]) != rows.text_hash[i]:
                raise ProvenanceError(
                    f"{shard.name} changed while sampling: document {row} is not the one indexed",
                    "do not modify the corpus during a run; run the stage again",
                )
            topic, fmt = tax.bin_labels(int(rows.bin[i]))
            metadata = dict(doc.get("metadata") or {})
            if corpus.topic_label(doc) is None:
                metadata.update(corpus.label_metadata(topic.key, None))
            if corpus.format_label(doc) is None:
                metadata.update(corpus.label_metadata(None, fmt.key))
            metadata["sampling"] = {
                "bin": int(rows.bin[i]),
                "source_shard": shard.name,
                "row": row,
                "tokens": int(rows.tokens[i]),
                "text_hash": f"{int(rows.text_hash[i]):016x}",
            }
            ids.append(doc["id"])
            yield {**doc, "metadata": metadata}
            if len(ids) == len(wanted):
                return

    corpus.write_shard(out_path, documents())
    if len(ids) != len(wanted):
        raise ProvenanceError(
            f"{shard.name} changed while sampling: it has fewer documents than when indexed",
            "do not modify the corpus during a run; run the stage again",
        )
    return ids


def iter_working_set(sampling_dir: str | Path) -> Iterator[dict]:
    """The working-set documents (text, labels, ``metadata.sampling.bin``) that stage 01 wrote, shard by shard."""
    for path in corpus.list_shards(Path(sampling_dir) / WORKING_SET):
        yield from corpus.iter_shard(path)

"""Steps 2 and 3 of stage 01: select (de-duplicate in canonical corpus order, then bottom-k per bin on a seeded
hash) and fetch (copy the sampled documents' text into the working set)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np

from ... import corpus, taxonomy
from ...errors import ProvenanceError
from .index import CorpusIndex, hash64, sampling_key, text_hash
from .job import ROW_BITS, UNLABELLED, WORKING_SET, ShardRef

# ----------------------------------------------------------------------------------------------- step 2: select
@dataclass
class Selection:
    """The merged result: the sampled documents (index columns in corpus order) and the population per bin."""

    sampled: CorpusIndex
    population_docs: np.ndarray    # per bin, after de-duplication
    population_tokens: np.ndarray
    counts: Counter

    @cached_property
    def _shard_of(self) -> np.ndarray:
        return self.sampled.position >> np.uint64(ROW_BITS)

    def rows_of(self, ordinal: int) -> CorpusIndex:
        lo, hi = np.searchsorted(self._shard_of, [ordinal, ordinal + 1])
        return self.sampled.take(slice(lo, hi))


def select(index: CorpusIndex, seed: int, target_per_bin: int, n_bins: int) -> Selection:
    """De-duplicate (ids, then texts; first occurrence in corpus order wins) and draw bottom-k per bin."""
    if index.counts["documents"] == 0:
        raise ProvenanceError("the corpus has no documents (every shard is empty)", "build the world again")
    index = index.take(np.argsort(index.position, kind="stable"))  # corpus order, whatever order parts came in
    index = index.drop_duplicates("id_hash", "removed_duplicate_id")
    index = index.drop_duplicates("text_hash", "removed_duplicate_text")
    labelled = index.take(index.bin != UNLABELLED)
    counts = index.counts + Counter(unique=len(index), unlabelled_unique=len(index) - len(labelled))
    if not len(labelled):
        raise ProvenanceError(
            f"none of the {len(index)} unique documents has both a topic and a format label",
            "label the shards (metadata weborganizer_max / weborganizer_format_max) or set labels.topic / "
            "labels.format to a classifier")
    bins = labelled.bin.astype(np.int64)
    population_docs = np.bincount(bins, minlength=n_bins)
    population_tokens = np.bincount(bins, weights=labelled.tokens, minlength=n_bins).astype(np.int64)
    order = np.lexsort((sampling_key(labelled.text_hash, seed), bins))
    sorted_bins = bins[order]
    rank_in_bin = np.arange(len(order)) - np.searchsorted(sorted_bins, sorted_bins)
    chosen = np.sort(order[rank_in_bin < target_per_bin])
    sampled = labelled.take(chosen)
    return Selection(sampled, population_docs, population_tokens, counts)


# ----------------------------------------------------------------------------------------------- step 3: fetch
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
            if hash64(doc["id"]) != rows.id_hash[i] or text_hash(doc["text"]) != rows.text_hash[i]:
                raise ProvenanceError(f"{shard.name} changed while sampling: document {row} is not the one indexed",
                                      "do not modify the corpus during a run; run the stage again")
            topic, fmt = tax.bin_labels(int(rows.bin[i]))
            metadata = dict(doc.get("metadata") or {})
            if corpus.topic_label(doc) is None:
                metadata.update(corpus.label_metadata(topic.key, None))
            if corpus.format_label(doc) is None:
                metadata.update(corpus.label_metadata(None, fmt.key))
            metadata["sampling"] = {"bin": int(rows.bin[i]), "source_shard": shard.name, "row": row,
                                    "tokens": int(rows.tokens[i]), "text_hash": f"{int(rows.text_hash[i]):016x}"}
            ids.append(doc["id"])
            yield {**doc, "metadata": metadata}
            if len(ids) == len(wanted):
                return

    corpus.write_shard(out_path, documents())
    if len(ids) != len(wanted):
        raise ProvenanceError(f"{shard.name} changed while sampling: it has fewer documents than when indexed",
                              "do not modify the corpus during a run; run the stage again")
    return ids


def iter_working_set(sampling_dir: str | Path) -> Iterator[dict]:
    """The working-set documents (text, labels, ``metadata.sampling.bin``) that stage 01 wrote, shard by shard."""
    for path in corpus.list_shards(Path(sampling_dir) / WORKING_SET):
        yield from corpus.iter_shard(path)

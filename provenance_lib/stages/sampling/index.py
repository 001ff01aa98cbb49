"""The map of stage 01: stream a shard and keep one 30-byte row per document (position, id hash, text hash, topic,
format, tokens), no text. Labels come from the shard metadata here; what is missing is left to the annotate step."""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from ... import corpus, taxonomy
from ...errors import ProvenanceError
from .job import ROW_BITS, UNLABELLED, ShardRef


# ----------------------------------------------------------------------------------------------- hashing
def normalize_text(text: str) -> str:
    """What counts as the same text: Unicode NFC, case-folded, whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def text_hash(text: str) -> int:
    return hash64(normalize_text(text))


def sampling_key(text_hashes: np.ndarray, seed: int) -> np.ndarray:
    """The keyed hash bottom-k ranks by: splitmix64 of the text hash xor a seed-derived salt. A bijection for a
    fixed seed, so distinct texts never tie, and a new seed draws an independent sample."""
    salt = np.uint64(hash64(f"provenance-sampling/{seed}"))
    z = text_hashes.astype(np.uint64) ^ salt
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


# ----------------------------------------------------------------------------------------------- rows
ROW = np.dtype([("position", "<u8"), ("id_hash", "<u8"), ("text_hash", "<u8"), ("topic", "i1"), ("format", "i1"),
                ("tokens", "<u4")])
"""One document: position = shard ordinal << 32 | row (sorts in canonical corpus order); topic and format ids, -1
where not known (yet); tokens 0 until counted. Packed, 30 bytes: what every intermediate file of the stage holds."""


def bins_of(rows: np.ndarray, n_formats: int) -> np.ndarray:
    """Bin ids (topic * 24 + format), -1 where a label is missing."""
    labelled = (rows["topic"] >= 0) & (rows["format"] >= 0)
    return np.where(labelled, rows["topic"].astype(np.int64) * n_formats + rows["format"], UNLABELLED)


def hashes_of(digests: list[bytes]) -> np.ndarray:
    """64-bit hashes from blake2b-64 digests, as ``hash64`` reads them (little-endian)."""
    return np.frombuffer(b"".join(digests), dtype="<u8") if digests else np.empty(0, "<u8")


# ----------------------------------------------------------------------------------------------- labels
@dataclass
class MetadataLabels:
    """Topic and format ids from a document's metadata (``corpus.topic_label`` / ``format_label``), -1 where absent;
    counts each axis's labels found and missing."""

    taxonomy: Any = field(default_factory=taxonomy.load)
    _ids: dict = field(default_factory=dict)

    def ids(self, doc: dict, shard: ShardRef, row: int, counts: Counter) -> tuple[int, int]:
        topic, fmt = corpus.topic_label(doc), corpus.format_label(doc)
        return (self._id("topic", topic, shard, row, doc, counts), self._id("format", fmt, shard, row, doc, counts))

    def _id(self, axis: str, value: Any, shard: ShardRef, row: int, doc: dict, counts: Counter) -> int:
        if value is None:
            counts[f"{axis}_absent"] += 1
            return UNLABELLED
        counts[f"{axis}_from_metadata"] += 1
        key = (axis, value) if isinstance(value, (str, int)) else None
        label_id = self._ids.get(key)
        if label_id is None:
            try:
                label_id = self.taxonomy.axis(axis).get(value).id
            except ProvenanceError as exc:
                raise ProvenanceError(f"{shard.name}, document {row} (id {doc['id']!r}): {exc.problem}",
                                      exc.fix) from None
            if key is not None:
                self._ids[key] = label_id
        return label_id


# ----------------------------------------------------------------------------------------------- the map
CHUNK_ROWS = 8192  # rows built at a time: memory does not grow with the shard


def index_shard(shard: ShardRef, ordinal: int, labels: MetadataLabels, count_words: bool,
                counts: Counter) -> Iterator[np.ndarray]:
    """The rows of one shard, in chunks of ``CHUNK_ROWS``; texts are dropped as soon as they are hashed.

    ``count_words``: tokens are whitespace words (else 0: the annotate step counts base-model tokens of the unique
    documents only). ASCII texts take a fast path that gives the same hash: NFC leaves them as they are and
    case-folding is lower-casing there, which moves no whitespace, so their words are the normalized words."""
    blake2b = hashlib.blake2b
    row = 0
    id_digests, text_digests, topics, formats, tokens = [], [], [], [], []
    for doc in corpus.iter_shard(shard.path):
        text = doc["text"]
        if text.isascii():
            words = text.lower().split()
            normalized, n_words = " ".join(words), len(words)
        else:
            normalized, n_words = normalize_text(text), len(text.split())
        text_digests.append(blake2b(normalized.encode(), digest_size=8).digest())
        id_digests.append(blake2b(doc["id"].encode(), digest_size=8).digest())
        topic, fmt = labels.ids(doc, shard, row, counts)
        topics.append(topic)
        formats.append(fmt)
        tokens.append(n_words if count_words else 0)
        row += 1
        if len(tokens) == CHUNK_ROWS:
            yield _rows(ordinal, row, id_digests, text_digests, topics, formats, tokens)
            id_digests, text_digests, topics, formats, tokens = [], [], [], [], []
    if tokens:
        yield _rows(ordinal, row, id_digests, text_digests, topics, formats, tokens)
    counts["documents"] += row


def _rows(ordinal: int, end_row: int, id_digests, text_digests, topics, formats, tokens) -> np.ndarray:
    rows = np.empty(len(tokens), ROW)
    rows["position"] = (np.uint64(ordinal) << np.uint64(ROW_BITS)) | np.arange(end_row - len(tokens), end_row,
                                                                             dtype=np.uint64)
    rows["id_hash"], rows["text_hash"] = hashes_of(id_digests), hashes_of(text_digests)
    rows["topic"], rows["format"], rows["tokens"] = topics, formats, tokens
    return rows


def token_counter(mode: str, tokenizer: str | None = None) -> Callable[[list[str]], list[int]]:
    """Token counts for a batch of texts: whitespace words, or the base model's tokenizer (no special tokens)."""
    if mode == "whitespace":
        return lambda texts: [len(text.split()) for text in texts]
    if mode != "base_model":
        raise ProvenanceError(f"unknown token count mode {mode!r}", "use 'whitespace' or 'base_model'")
    if tokenizer is None:
        raise ProvenanceError("tokens: base_model needs the base model's tokenizer", "the world must name a base model")
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(tokenizer)
    return lambda texts: [len(ids) for ids in loaded(texts, add_special_tokens=False, verbose=False)["input_ids"]]

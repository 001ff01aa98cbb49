"""The map of stage 01: stream a shard and keep one 30-byte row per document (position, id hash, text hash, topic,
format, tokens), no text. Labels come from the shard metadata here; what is missing is left to the annotate step."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Iterator

import numpy as np
import xxhash

from ... import corpus, taxonomy
from ...errors import ProvenanceError
from .job import ROW_BITS, UNLABELLED, ShardRef


# ----------------------------------------------------------------------------------------------- hashing
def normalize_text(text: str) -> str:
    """What counts as the same text: Unicode NFC, case-folded, whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def hash64(text: str) -> int:
    """A keyed string's 64-bit hash (blake2b-64): the seeded orders (the sampling salt, stage 02's calibration
    order)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def content_hash(data: bytes) -> int:
    """A document's id or normalized text as 64 bits (xxh3-64): what de-duplication compares and the manifest keeps.
    The map hashes every document read, so it is the fast non-cryptographic hash (blake2b was most of the map's
    time on long documents); a false duplicate among n documents has probability ~n^2 / 2^65 either way."""
    return xxhash.xxh3_64_intdigest(data)


def text_hash(text: str) -> int:
    return content_hash(normalize_text(text).encode())


def sampling_key(text_hashes: np.ndarray, seed: int) -> np.ndarray:
    """The keyed hash bottom-k ranks by: splitmix64 of the text hash xor a seed-derived salt. A bijection for a
    fixed seed, so distinct texts never tie, and a new seed draws an independent sample."""
    salt = np.uint64(hash64(f"provenance-sampling/{seed}"))
    z = text_hashes.astype(np.uint64) ^ salt
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


# ----------------------------------------------------------------------------------------------- rows
ROW = np.dtype(
    [
        ("position", "<u8"),
        ("id_hash", "<u8"),
        ("text_hash", "<u8"),
        ("topic", "i1"),
        ("format", "i1"),
        ("tokens", "<u4"),
    ]
)
"""One document: position = shard ordinal << 32 | row (sorts in canonical corpus order); topic and format ids, -1
where not known (yet); tokens 0 until counted. Packed, 30 bytes: what every intermediate file of the stage holds."""


def bins_of(rows: np.ndarray, n_formats: int) -> np.ndarray:
    """Bin ids (topic * 24 + format), -1 where a label is missing."""
    labelled = (rows["topic"] >= 0) & (rows["format"] >= 0)
    return np.where(labelled, rows["topic"].astype(np.int64) * n_formats + rows["format"], UNLABELLED)


# ----------------------------------------------------------------------------------------------- labels
@dataclass
class MetadataLabels:
    """Topic and format ids from a document's metadata (``corpus.topic_label`` / ``format_label``), -1 where absent.
    Label texts seen before are looked up in a dict: the map calls this for every document read."""

    taxonomy: Any = field(default_factory=taxonomy.load)
    _ids: dict = field(default_factory=dict)

    def ids(self, doc: dict, shard: ShardRef, row: int) -> tuple[int, int]:
        metadata = doc.get("metadata") or {}
        topic = metadata.get(corpus.TOPIC_MAX) or corpus.topic_label(doc)
        fmt = metadata.get(corpus.FORMAT_MAX) or corpus.format_label(doc)
        topic_id = self._ids.get(("topic", topic)) if isinstance(topic, str) else None
        format_id = self._ids.get(("format", fmt)) if isinstance(fmt, str) else None
        if topic_id is None:
            topic_id = self._id("topic", topic, shard, row, doc)
        if format_id is None:
            format_id = self._id("format", fmt, shard, row, doc)
        return topic_id, format_id

    def _id(self, axis: str, value: Any, shard: ShardRef, row: int, doc: dict) -> int:
        if value is None:
            return UNLABELLED
        try:
            label_id = self.taxonomy.axis(axis).get(value).id
        except ProvenanceError as exc:
            raise ProvenanceError(f"{shard.name}, document {row} (id {doc['id']!r}): {exc.problem}", exc.fix) from None
        if isinstance(value, str):
            self._ids[(axis, value)] = label_id
        return label_id


# ----------------------------------------------------------------------------------------------- the map
CHUNK_ROWS = 8192  # rows built at a time: memory does not grow with the shard


_WHITESPACE = b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"  # what str.split() splits ASCII text on, besides the space
_NON_ASCII_WHITESPACE = re.compile("[\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")  # and beyond
_ASCII_FOLD = bytes.maketrans(_WHITESPACE + bytes(range(65, 91)), b" " * len(_WHITESPACE) + bytes(range(97, 123)))
_ASCII_SPACES = bytes.maketrans(_WHITESPACE, b" " * len(_WHITESPACE))


SCAN_WITH_NUMPY = 512  # bytes: from here on one numpy pass finds the spaces faster than two scans of the bytes


def normalized_bytes(text: str) -> tuple[bytes, int]:
    """``normalize_text(text).encode()`` and its number of words, without splitting the text into words when it
    can: the map calls this for every document read. ASCII text: NFC leaves it as it is and case-folding is
    lower-casing there, so one byte translation lower-cases it and turns every whitespace into a space. Other text
    without whitespace beyond ASCII: NFC and case-folding first, then the same on its UTF-8 bytes (no multi-byte
    sequence holds an ASCII byte). Then runs of spaces collapse, if there are any (found, and the spaces counted,
    in one numpy pass on a long text). Its words (spaces + 1) are those of ``text.split()``: NFC and case-folding
    make no whitespace and remove none."""
    if text.isascii():
        folded = text.encode().translate(_ASCII_FOLD)
    elif _NON_ASCII_WHITESPACE.search(text) is None:
        folded = unicodedata.normalize("NFC", text).casefold().encode().translate(_ASCII_SPACES)
    else:
        folded = normalize_text(text).encode()
        return folded, folded.count(b" ") + 1 if folded else 0
    if len(folded) < SCAN_WITH_NUMPY:
        spaces, runs = folded.count(b" "), b"  " in folded
    else:
        is_space = np.frombuffer(folded, np.uint8) == 32
        spaces, runs = int(np.count_nonzero(is_space)), bool(np.count_nonzero(is_space[1:] & is_space[:-1]))
    if runs or folded[:1] == b" " or folded[-1:] == b" ":
        folded = b" ".join(folded.split())
        spaces = folded.count(b" ")
    return folded, spaces + 1 if folded else 0


def index_shard(
    shard: ShardRef, ordinal: int, labels: MetadataLabels, count_words: bool, counts: Counter
) -> Iterator[np.ndarray]:
    """The rows of one shard, in chunks of ``CHUNK_ROWS``; texts are dropped as soon as they are hashed. Counts
    documents read and, per axis, labels found in the metadata and absent.

    ``count_words``: tokens are whitespace words (else 0: the annotate step counts base-model tokens of the unique
    documents only). The loop runs once per document read, so it is written for speed: texts are normalized on
    bytes (``normalized_bytes``), and a pair of label texts seen before is one lookup."""
    xxh3, pair_ids, rows_read = xxhash.xxh3_64_intdigest, {}, 0  # content_hash, without a call per document
    id_hashes, text_hashes, pairs, tokens = [], [], [], []
    for doc in corpus.iter_shard(shard.path):
        normalized, words = normalized_bytes(doc["text"])
        text_hashes.append(xxh3(normalized))
        id_hashes.append(xxh3(doc["id"].encode()))
        tokens.append(words if count_words else 0)
        metadata = doc.get("metadata")
        key = (metadata.get(corpus.TOPIC_MAX), metadata.get(corpus.FORMAT_MAX)) if metadata else None
        ids = pair_ids.get(key)
        if ids is None:
            ids = labels.ids(doc, shard, rows_read)
            if key is not None and isinstance(key[0], str) and isinstance(key[1], str):
                pair_ids[key] = ids  # both max fields given: they alone decide
        pairs.append(ids)
        rows_read += 1
        if len(tokens) == CHUNK_ROWS:
            yield _rows(ordinal, rows_read, id_hashes, text_hashes, pairs, tokens, counts)
            id_hashes, text_hashes, pairs, tokens = [], [], [], []
    if tokens:
        yield _rows(ordinal, rows_read, id_hashes, text_hashes, pairs, tokens, counts)
    counts["documents"] += rows_read


def _rows(ordinal: int, end_row: int, id_hashes, text_hashes, pairs, tokens, counts: Counter) -> np.ndarray:
    rows = np.empty(len(tokens), ROW)
    rows["position"] = (np.uint64(ordinal) << np.uint64(ROW_BITS)) | np.arange(
        end_row - len(rows), end_row, dtype=np.uint64
    )
    rows["id_hash"], rows["text_hash"] = np.array(id_hashes, np.uint64), np.array(text_hashes, np.uint64)
    labels = np.array(pairs, dtype=np.int8).reshape(-1, 2)
    rows["topic"], rows["format"], rows["tokens"] = labels[:, 0], labels[:, 1], tokens
    for axis in ("topic", "format"):
        absent = int((rows[axis] < 0).sum())
        counts[f"{axis}_from_metadata"] += len(rows) - absent
        counts[f"{axis}_absent"] += absent
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

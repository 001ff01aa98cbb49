"""Step 1 of stage 01, the index: stream a shard and keep five numbers per document (position, id hash, text hash,
bin, tokens), no text. Labels come from the shard metadata, else from the WebOrganizer classifiers."""

from __future__ import annotations

import hashlib
import unicodedata
from array import array
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from ... import corpus, taxonomy
from ...errors import ProvenanceError
from ...labels import load_classifier
from .job import ROW_BITS, UNLABELLED, SamplingJob, ShardRef


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


# ----------------------------------------------------------------------------------------------- the index
INDEX_COLUMNS = {"position": np.uint64, "id_hash": np.uint64, "text_hash": np.uint64, "bin": np.int16,
                 "tokens": np.uint32}


@dataclass
class CorpusIndex:
    """Per-document columns of part of the corpus, no text: all the merge needs. ``counts`` carries what the
    summary reports (documents read, label sources, duplicates already removed)."""

    position: np.ndarray
    id_hash: np.ndarray
    text_hash: np.ndarray
    bin: np.ndarray
    tokens: np.ndarray
    counts: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.position)

    @classmethod
    def concat(cls, parts: Sequence[CorpusIndex]) -> CorpusIndex:
        counts = sum((part.counts for part in parts), Counter())
        if not parts:
            return cls(*(np.empty(0, dtype) for dtype in INDEX_COLUMNS.values()), counts=counts)
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in INDEX_COLUMNS), counts=counts)

    def take(self, mask_or_order: np.ndarray) -> CorpusIndex:
        return CorpusIndex(*(getattr(self, name)[mask_or_order] for name in INDEX_COLUMNS), counts=self.counts)

    def drop_duplicates(self, column: str, counter: str) -> CorpusIndex:
        """Keep the first document (in corpus order) of each value of ``column``; count the others in ``counter``."""
        values = getattr(self, column)
        order = np.lexsort((self.position, values))
        first = np.ones(len(order), bool)
        first[1:] = values[order][1:] != values[order][:-1]
        kept = self.take(np.sort(order[first]))
        kept.counts = self.counts + Counter({counter: int(len(self) - len(kept))})
        return kept


# ----------------------------------------------------------------------------------------------- labels, tokens
class DocumentLabeller:
    """Topic and format ids for a batch of documents: the shard metadata first, the classifiers for what is
    missing, -1 where neither gives a label (counted, never silently dropped)."""

    AXES = ("topic", "format")

    def __init__(self, topic_classifier: Any = None, format_classifier: Any = None):
        self.taxonomy = taxonomy.load()
        self.classifiers = {"topic": _load_classifier(topic_classifier, "topic"),
                            "format": _load_classifier(format_classifier, "format")}
        self.read = {"topic": corpus.topic_label, "format": corpus.format_label}
        self._ids: dict[Any, int] = {}

    def label(self, docs: list[dict], shard: ShardRef, first_row: int, counts: Counter) -> dict[str, list[int]]:
        labels = {}
        for axis in self.AXES:
            ids, missing = [], []
            for offset, doc in enumerate(docs):
                value = self.read[axis](doc)
                if value is None:
                    missing.append(offset)
                    ids.append(UNLABELLED)
                else:
                    ids.append(self._label_id(axis, value, shard, first_row + offset, doc["id"]))
            counts[f"{axis}_from_metadata"] += len(docs) - len(missing)
            classifier = self.classifiers[axis]
            if missing and classifier is not None:
                predicted = self._predict(classifier, axis, [docs[i] for i in missing], shard)
                for offset, label_id in zip(missing, predicted):
                    ids[offset] = label_id
                counts[f"{axis}_from_classifier"] += len(missing)
            else:
                counts[f"{axis}_missing"] += len(missing)
            labels[axis] = ids
        return labels

    def _label_id(self, axis: str, value: Any, shard: ShardRef, row: int, doc_id: str) -> int:
        key = (axis, value) if isinstance(value, (str, int)) else None
        if key in self._ids:
            return self._ids[key]
        try:
            label_id = self.taxonomy.axis(axis).get(value).id
        except ProvenanceError as exc:
            raise ProvenanceError(f"{shard.name}, document {row} (id {doc_id!r}): {exc.problem}", exc.fix) from None
        if key is not None:
            self._ids[key] = label_id
        return label_id

    def _predict(self, classifier: Any, axis: str, docs: list[dict], shard: ShardRef) -> list[int]:
        texts = [doc["text"] for doc in docs]
        urls = [(doc.get("metadata") or {}).get("url") or doc.get("url") or "" for doc in docs]
        probs = np.asarray(classifier.predict_proba(texts, urls))
        n_labels = len(self.taxonomy.axis(axis))
        if probs.shape != (len(docs), n_labels):
            raise ProvenanceError(
                f"the {axis} classifier returned shape {probs.shape} for {len(docs)} documents of {shard.name}",
                f"predict_proba must return one row of {n_labels} probabilities per document, in taxonomy id order")
        return probs.argmax(axis=1).tolist()


def _load_classifier(source: Any, axis: str):
    if source is None or hasattr(source, "predict_proba"):
        return source
    return load_classifier(source, axis)


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


# ----------------------------------------------------------------------------------------------- step 1: index
def index_shard(shard: ShardRef, ordinal: int, labeller: DocumentLabeller,
                count_tokens: Callable[[list[str]], list[int]], batch_size: int = 256) -> CorpusIndex:
    """Stream one shard into its index; at most ``batch_size`` texts are held at a time."""
    columns = {name: array(code) for name, code in
               (("id_hash", "Q"), ("text_hash", "Q"), ("bin", "h"), ("tokens", "I"))}
    counts = Counter()
    n_formats = len(labeller.taxonomy.formats)
    documents = corpus.iter_shard(shard.path)
    row = 0
    while batch := list(islice(documents, batch_size)):
        labels = labeller.label(batch, shard, row, counts)
        columns["tokens"].extend(count_tokens([doc["text"] for doc in batch]))
        for doc, topic_id, format_id in zip(batch, labels["topic"], labels["format"]):
            columns["id_hash"].append(hash64(doc["id"]))
            columns["text_hash"].append(text_hash(doc["text"]))
            labelled = topic_id != UNLABELLED and format_id != UNLABELLED
            columns["bin"].append(topic_id * n_formats + format_id if labelled else UNLABELLED)
        row += len(batch)
    counts["documents"] += row
    position = (np.uint64(ordinal) << np.uint64(ROW_BITS)) | np.arange(row, dtype=np.uint64)
    arrays = {name: np.array(column, dtype=INDEX_COLUMNS[name]) for name, column in columns.items()}
    return CorpusIndex(position=position, counts=counts, **arrays)


def index_shards(job: SamplingJob, ordinals: Sequence[int], desc: str = "index") -> CorpusIndex:
    """Index some shards of the job and drop their id duplicates already (exact, and it shrinks what is gathered)."""
    labeller = DocumentLabeller(job.topic_classifier, job.format_classifier)
    count_tokens = token_counter(job.tokens, job.tokenizer)
    parts = [index_shard(job.shards[i], i, labeller, count_tokens, job.batch_size)
             for i in tqdm(ordinals, desc=desc, unit="shard")]
    return CorpusIndex.concat(parts).drop_duplicates("id_hash", "removed_duplicate_id")

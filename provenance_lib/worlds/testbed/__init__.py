"""The testbed world: a generated corpus with planted provenance and a tiny model trained on it (known answers).

``build(params, out_dir)`` writes the world layout of ``provenance_lib.world``:

* corpus shards in the Dolma3 schema, every (topic, format) bin filled from the seed (``documents``, in the
  made-up ``language``, with the ``planting`` of each benchmark's content);
* the four benchmarks (2x2 design): knowledge items ask facts, reasoning items apply rules to entities never seen
  with them; both are stated only in the documents of the benchmark's planted bins (``world.planted``);
* ``ground_truth.json``: planted bins and documents per benchmark, the facts and rules, the duplicates;
* ``models/base``: an OLMo3-architecture model pretrained on the corpus (+ ``optimizer.pt``, TrackStar's V) and
  ``models/query``: it fine-tuned briefly on the benchmarks' train items in question form.

The corpus, the benchmarks and the ground truth are byte-identical for the same params (``generate``); the models
depend on torch's kernels as well, and are not promised to be.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ... import corpus
from ...artifacts import write_json
from ...benchmarks import BY_NAME, write_lm_eval_tasks, write_queries
from ...errors import ProvenanceError
from ...evaluation import evaluate
from ...params import StudyParams
from ...taxonomy import load as load_taxonomy
from ...threads import torch_threads
from ..contract import WorldInfo
from . import training
from .documents import Document, generate_documents
from .language import make_lexicon
from .planting import Capability, plan_capabilities, rule_entities_needed

CORPUS_DIR, QUERIES, TASK_DIR = "corpus", "benchmarks/queries.parquet", "benchmarks/tasks"
BASE_MODEL, QUERY_MODEL, GROUND_TRUTH = "models/base", "models/query", "ground_truth.json"
TASK_PREFIX = "testbed"
PLANTED_POOL = 40
"""People / substances the planted reasoning statements are about (disjoint from the items' entities)."""


@dataclass
class Generated:
    documents: list[Document]
    rows: list[dict]                     # benchmark items in the query schema
    tasks: dict[str, str]                # benchmark name -> lm-eval task
    capabilities: dict[str, Capability]


def build(params: StudyParams, out_dir: str | Path) -> WorldInfo:
    out_dir = Path(out_dir)
    start = time.perf_counter()
    generated = generate(params, out_dir)
    generate_s = time.perf_counter() - start
    with torch_threads(params.threads):
        start = time.perf_counter()
        facts = train_models(params, generated, out_dir)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        accuracy = evaluate_models(out_dir, generated.tasks)
        evaluate_s = time.perf_counter() - start
    return WorldInfo(
        kind="testbed", fingerprint="", corpus=[CORPUS_DIR], queries=QUERIES, tasks=generated.tasks,
        task_dir=TASK_DIR, base_model=BASE_MODEL, query_model=QUERY_MODEL,
        extra=dict(
            documents=len(generated.documents),
            planted_documents={name: sum(d.planted == name for d in generated.documents) for name in BY_NAME},
            nonempty_bins=len({(d.topic, d.format) for d in generated.documents}),
            threads=params.threads, generate_s=round(generate_s, 2), train_s=round(train_s, 2),
            evaluate_s=round(evaluate_s, 2), accuracy=accuracy, **facts,
        ),
    )


# ----------------------------------------------------------------------------------------------- generation
def generate(params: StudyParams, out_dir: str | Path) -> Generated:
    """The deterministic part of the world: corpus shards, benchmarks (queries + lm-eval tasks), ground truth."""
    out_dir = Path(out_dir)
    world, seed, taxonomy = params.world, params.seed, load_taxonomy()
    n_values, n_train, n_eval = world.items.values, world.items.train_items, world.items.eval_items
    lexicon = make_lexicon(seed, len(taxonomy.topics), world.corpus.topic_vocabulary, n_values,
                           n_facts=n_train + n_eval,
                           n_rule_entities=rule_entities_needed(n_train, n_eval, n_values, PLANTED_POOL))
    capabilities = plan_capabilities(lexicon, seed, n_train, n_eval)
    documents = generate_documents(world, seed, lexicon, capabilities, taxonomy)
    write_corpus(documents, out_dir / CORPUS_DIR, world.corpus.shards, taxonomy)
    rows = benchmark_rows(capabilities, seed)
    table = write_queries(out_dir / QUERIES, rows)
    tasks = write_lm_eval_tasks(table, out_dir / TASK_DIR, prefix=TASK_PREFIX)
    write_json(out_dir / GROUND_TRUTH, ground_truth(params, documents, capabilities, taxonomy))
    return Generated(documents, rows, tasks, capabilities)


def write_corpus(documents: list[Document], corpus_dir: Path, n_shards: int, taxonomy) -> list[Path]:
    per_shard = math.ceil(len(documents) / n_shards)
    paths = []
    for k in range(n_shards):
        records = [_record(doc, taxonomy) for doc in documents[k * per_shard:(k + 1) * per_shard]]
        paths.append(corpus.write_shard(corpus_dir / f"testbed-{k:04d}{corpus.SHARD_SUFFIX}", records))
    return paths


def _record(doc: Document, taxonomy) -> dict:
    topic, fmt = taxonomy.topics.labels[doc.topic], taxonomy.formats.labels[doc.format]
    return {"id": doc.id, "text": doc.text, "source": "testbed",
            "metadata": corpus.label_metadata(topic.key, fmt.key, doc.soft_labels["topic"],
                                              doc.soft_labels["format"])}


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
                rows.append(dict(id=f"{TASK_PREFIX}-{b.slug}-{split}-{i:03d}", benchmark=name, split=split,
                                 question=capability.kind.question_text(entity, fact.key), choices=choices,
                                 answer=answer, domain=b.domain, capability=b.capability, subject=fact.key))
    return rows


def ground_truth(params: StudyParams, documents: list[Document], capabilities: dict[str, Capability],
                 taxonomy) -> dict:
    benchmarks = {}
    for name, bins in params.world.planted.items():
        ids = [taxonomy.parse_bin(text) for text in bins]
        capability = capabilities[name]
        benchmarks[name] = dict(
            bins=ids, bin_names=[taxonomy.bin_name(i) for i in ids],
            documents=sorted(d.id for d in documents if d.planted == name),
            statements=[dict(key=f.key, value=f.value, entity=f.entity) for f in capability.facts],
            lead_in=capability.kind.lead_in,
        )
    return dict(
        seed=params.seed, world=params.section("world"), benchmarks=benchmarks,
        duplicates=sorted((dict(id=d.id, of=d.duplicate_of, kind=d.duplicate_kind) for d in documents
                           if d.duplicate_of), key=lambda row: row["id"]),
    )


# ----------------------------------------------------------------------------------------------- models
def train_models(params: StudyParams, generated: Generated, out_dir: Path) -> dict:
    """Tokenizer, pretrained base model (+ optimizer state) and fine-tuned query model; returns facts for ``extra``."""
    world = params.world
    tokenizer = training.train_word_tokenizer(d.text for d in generated.documents)
    _check_vocabulary(tokenizer, generated.rows)
    documents = tokenizer([d.text for d in generated.documents], add_special_tokens=False)["input_ids"]
    arch = world.model
    model = training.tiny_olmo3(tokenizer, arch.layers, arch.hidden, arch.heads, arch.mlp,
                                max_positions=2 * arch.context, seed=params.seed)

    pre = world.pretraining
    steps = math.ceil(pre.epochs * training.packed_steps_per_epoch(documents, arch.context, pre.batch_size))
    batches = training.packed_batches(documents, tokenizer.eos_token_id, arch.context, pre.batch_size,
                                      torch.Generator().manual_seed(params.seed))
    start = time.perf_counter()
    optimizer, pre_losses = training.fit(model, batches, steps, pre.lr, pre.warmup, pre.weight_decay)
    pretrain_s = time.perf_counter() - start
    training.save_model(model, tokenizer, out_dir / BASE_MODEL, optimizer)

    train_rows = [r for r in generated.rows if r["split"] == "train"]
    prompts = tokenizer([r["question"] for r in train_rows], add_special_tokens=False)["input_ids"]
    answers = tokenizer([" " + r["choices"][r["answer"]] for r in train_rows], add_special_tokens=False)["input_ids"]
    fine = world.finetuning
    fine_steps = math.ceil(fine.epochs * math.ceil(len(train_rows) / fine.batch_size))
    query = copy.deepcopy(model)
    _, fine_losses = training.fit(query, training.answer_batches(prompts, answers, tokenizer.pad_token_id,
                                                                 fine.batch_size,
                                                                 torch.Generator().manual_seed(params.seed)),
                                  fine_steps, fine.lr, fine.warmup, fine.weight_decay)
    training.save_model(query, tokenizer, out_dir / QUERY_MODEL)
    return dict(
        tokens=sum(len(d) for d in documents), vocab_size=len(tokenizer),
        model_parameters=sum(p.numel() for p in model.parameters()),
        pretrain_steps=steps, pretrain_s=round(pretrain_s, 2),
        pretrain_tokens_per_s=round(steps * pre.batch_size * arch.context / pretrain_s),
        pretrain_loss_first=round(pre_losses[0], 3), pretrain_loss_last=round(pre_losses[-1], 3),
        finetune_steps=fine_steps, finetune_loss_last=round(fine_losses[-1], 3),
    )


def _check_vocabulary(tokenizer, rows: list[dict]) -> None:
    """Every question and choice word must be a corpus word: an unknown choice would score as [UNK] (lesson 3)."""
    vocabulary = tokenizer.get_vocab()
    missing = sorted({w for r in rows for text in (r["question"], *r["choices"]) for w in text.split()
                      if w not in vocabulary})
    if missing:
        raise ProvenanceError(f"benchmark words never seen in the testbed corpus: {missing[:10]}",
                              "raise world.corpus.documents so every benchmark word is mentioned")


def evaluate_models(out_dir: Path, tasks: dict[str, str]) -> dict:
    """Accuracy of both models on every benchmark's eval items, through lm-eval on the world's local tasks."""
    accuracy = {}
    for label, folder in (("base", BASE_MODEL), ("query", QUERY_MODEL)):
        summary = evaluate(out_dir / folder, out_dir / TASK_DIR, tasks, batch_size=64).summary
        accuracy[label] = {row.benchmark: round(float(row.acc), 4) for row in summary.itertuples()}
    accuracy["chance"] = {row.benchmark: round(float(row.chance), 4) for row in summary.itertuples()}
    return accuracy

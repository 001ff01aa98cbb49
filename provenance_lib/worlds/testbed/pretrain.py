"""The testbed's models: a base model pretrained on the corpus with checkpoints along the way, each saved with its
optimizer state and evaluated, a query ("instruct") variant of each, and the checkpoint the study attributes.

Why checkpoints: a fully learned answer has almost no loss left, so its gradient is weak and mostly noise (on the
first testbed, both models scored 1.00 and the planted answers carried 4-14% of a planted document's gradient norm).
TrackStar attributes a model that is still learning, or sums over checkpoints; so the world keeps
``world.checkpoints`` of them and names as its base model the one ``world.attribute_at`` picks (by default: the query
model answers every benchmark partly right, partly wrong, and the most benchmarks are at an eval accuracy of
0.5-0.9). Benchmarks are learned at different steps, so one checkpoint seldom has all four mid-way:
``WorldInfo.checkpoints`` (the history up to the base model) lets stage 02 sum over them.

The query ("instruct") model of a checkpoint is it fine-tuned for a few steps on the train items in question form.
That lifts accuracy by eliciting what the checkpoint knows, not by teaching it: in a null world (nothing planted)
base and query models stay at chance at every checkpoint.

Layout: ``models/<label>/base`` (HF folder + ``optimizer.pt``, bergson's ``--optimizer_state``) and
``models/<label>/query`` (that checkpoint fine-tuned on the train items; same architecture and tokenizer, so its
parameter shapes are the base model's), ``<label>`` = ``step-00300``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import ProvenanceError
from ...evaluation import evaluate
from .training import (
    answer_batches,
    fit,
    packed_batches,
    packed_steps_per_epoch,
    save_model,
    tiny_olmo3,
    train_word_tokenizer,
)

MODELS_DIR = "models"


@dataclass
class Checkpoint:
    label: str
    step: int
    base: str  # folders relative to the world
    query: str
    accuracy: dict | None = None  # {"base": {benchmark: acc}, "query": {...}, "query_correct": {...}}


def train_models(
    params, documents: list[str], rows: list[dict], tasks: dict[str, str], task_dir: Path, out_dir: Path
) -> tuple[list[Checkpoint], Checkpoint, dict]:
    """Pretrain with checkpoints, fine-tune a query model at each, evaluate both; returns the checkpoints in
    training order, the attributed one, and facts for ``WorldInfo.extra``."""
    world = params.world
    tokenizer = train_word_tokenizer(documents)
    _check_vocabulary(tokenizer, rows)
    token_ids = tokenizer(documents, add_special_tokens=False)["input_ids"]
    arch, pre = world.model, world.pretraining
    model = tiny_olmo3(
        tokenizer, arch.layers, arch.hidden, arch.heads, arch.mlp, max_positions=2 * arch.context, seed=params.seed
    )
    steps = math.ceil(pre.epochs * packed_steps_per_epoch(token_ids, arch.context, pre.batch_size))
    save_at = sorted({math.ceil(steps * k / world.checkpoints) for k in range(1, world.checkpoints + 1)})
    checkpoints = []

    def save(step: int, optimizer) -> None:
        if step in save_at:
            label = f"step-{step:05d}"
            ckpt = Checkpoint(label, step, f"{MODELS_DIR}/{label}/base", f"{MODELS_DIR}/{label}/query")
            save_model(model, tokenizer, out_dir / ckpt.base, optimizer)
            checkpoints.append(ckpt)

    batches = packed_batches(
        token_ids, tokenizer.eos_token_id, arch.context, pre.batch_size, torch.Generator().manual_seed(params.seed)
    )
    start = time.perf_counter()
    _, losses = fit(model, batches, steps, pre.lr, pre.warmup, pre.weight_decay, on_step=save)
    pretrain_s = time.perf_counter() - start

    start = time.perf_counter()
    fine_losses = [finetune_query(params, tokenizer, rows, out_dir / c.base, out_dir / c.query) for c in checkpoints]
    finetune_s = time.perf_counter() - start
    start = time.perf_counter()
    for ckpt in checkpoints:
        ckpt.accuracy = evaluate_checkpoint(out_dir, ckpt, tasks, task_dir)
    evaluate_s = time.perf_counter() - start
    chosen = attributed(checkpoints, world.attribute_at)
    facts = dict(
        tokens=sum(len(d) for d in token_ids),
        vocab_size=len(tokenizer),
        model_parameters=sum(p.numel() for p in model.parameters()),
        pretrain_steps=steps,
        pretrain_s=round(pretrain_s, 2),
        pretrain_tokens_per_s=round(steps * pre.batch_size * arch.context / pretrain_s),
        pretrain_loss_first=round(losses[0], 3),
        pretrain_loss_last=round(losses[-1], 3),
        finetune_s=round(finetune_s, 2),
        finetune_loss_last=round(fine_losses[checkpoints.index(chosen)], 3),
        evaluate_s=round(evaluate_s, 2),
    )
    return checkpoints, chosen, facts


def finetune_query(params, tokenizer, rows: list[dict], base_dir: Path, out_dir: Path) -> float:
    """The checkpoint fine-tuned on the train items (prompt = question, loss on the answer); returns the last loss."""
    from transformers import AutoModelForCausalLM

    fine = params.world.finetuning
    train_rows = [r for r in rows if r["split"] == "train"]
    prompts = tokenizer([r["question"] for r in train_rows], add_special_tokens=False)["input_ids"]
    answers = tokenizer([" " + r["choices"][r["answer"]] for r in train_rows], add_special_tokens=False)["input_ids"]
    steps = math.ceil(fine.epochs * math.ceil(len(train_rows) / fine.batch_size))
    query = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    batches = answer_batches(
        prompts, answers, tokenizer.pad_token_id, fine.batch_size, torch.Generator().manual_seed(params.seed)
    )
    _, losses = fit(query, batches, steps, fine.lr, fine.warmup, fine.weight_decay)
    save_model(query, tokenizer, out_dir)
    return losses[-1]


def evaluate_checkpoint(world_dir: Path, ckpt: Checkpoint, tasks: dict[str, str], task_dir: Path) -> dict:
    """Accuracy of the checkpoint's base and query models on every benchmark's eval items (lm-eval, local tasks),
    and how many eval items the query model answers correctly / incorrectly."""
    accuracy = {}
    for side, folder in (("base", ckpt.base), ("query", ckpt.query)):
        result = evaluate(world_dir / folder, task_dir, tasks, batch_size=64)
        accuracy[side] = {row.benchmark: round(float(row.acc), 4) for row in result.summary.itertuples()}
        if side == "query":
            correct = result.items.groupby("benchmark").correct.agg(["sum", "count"])
            accuracy["query_correct"] = {
                name: [int(row["sum"]), int(row["count"] - row["sum"])] for name, row in correct.iterrows()
            }
    accuracy["chance"] = {row.benchmark: round(float(row.chance), 4) for row in result.summary.itertuples()}
    return accuracy


def attributed(checkpoints: list[Checkpoint], rule) -> Checkpoint:
    """The checkpoint ``world.attribute_at`` names. For an accuracy band: preferably one where every benchmark's
    query model answers some eval items right and some wrong (the correctness differential needs both), then the
    one with the most benchmarks whose base accuracy lies in the band (still learning), then the mean accuracy
    nearest the band's middle, then the earlier checkpoint. In a null world nothing is learned and this picks noise:
    give it its planted twin's checkpoint number. A number k: the k-th; ``final``; or a label."""
    if rule == "final":
        return checkpoints[-1]
    if isinstance(rule, int):
        if rule > len(checkpoints):
            raise ProvenanceError(
                f"world.attribute_at = {rule}, but the world saved {len(checkpoints)} checkpoints",
                f"give a number from 1 to {len(checkpoints)}, or raise world.checkpoints",
            )
        return checkpoints[rule - 1]
    if isinstance(rule, str):
        for ckpt in checkpoints:
            if ckpt.label == rule:
                return ckpt
        raise ProvenanceError(
            f"world.attribute_at names checkpoint {rule!r}, which this world did not save",
            f"use one of {[c.label for c in checkpoints]}, 'final', or an accuracy band",
        )
    low, high = rule

    def fit(ckpt: Checkpoint) -> tuple[bool, int, float]:
        base = list(ckpt.accuracy["base"].values())
        mixed = all(right and wrong for right, wrong in ckpt.accuracy["query_correct"].values())
        return mixed, sum(low <= a <= high for a in base), -abs(sum(base) / len(base) - (low + high) / 2)

    return max(checkpoints, key=fit)  # max keeps the first of equals: the earlier checkpoint


def _check_vocabulary(tokenizer, rows: list[dict]) -> None:
    """Every question and choice word must be a corpus word: an unknown choice would score as [UNK] (lesson 3)."""
    vocabulary = tokenizer.get_vocab()
    missing = sorted(
        {w for r in rows for text in (r["question"], *r["choices"]) for w in text.split() if w not in vocabulary}
    )
    if missing:
        raise ProvenanceError(
            f"benchmark words never seen in the testbed corpus: {missing[:10]}",
            "raise world.corpus.documents so every benchmark word is mentioned",
        )

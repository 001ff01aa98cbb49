"""Counterfactual ground truth: a built testbed world's base model trained again with some bins left out, and what
that does to each benchmark.

``retrain(world_dir, params, removed_bins, seed)`` repeats the world's pretraining (``pretrain.train_models``) from
the same initialization, with the same batches in the same order, up to the step of the checkpoint the world
attributes, except that the documents of ``removed_bins`` get no loss (``packed_batches``' ``unlearned``); then it
makes the query model the way the world does (``finetune_query``) and scores both models on the eval items (lm-eval,
the world's local tasks): per benchmark, accuracy and the mean log-likelihood of the gold answer.

Why masking rather than dropping the documents: dropped, every later document moves to another batch, and the
retrained model differs from the world's by a reshuffle as much as by the removal (on a model this small, about
as much as another seed). Masked, the only difference is the removed documents' loss, which is also the quantity
TrackStar's scores approximate (a document's loss weight, to first order), and what bergson's leave-k-out
validation does (``LDSConfig``: the subset's weights set to 0, the data stream unchanged). bergson's validation
itself does not fit: it retrains with its own MAGIC trainer (torchopt, one document per padded row, its own
schedule), so its full-data model would not be the world's model; this repeats the world's own loop instead, and
with no bin removed it reproduces the world's attributed checkpoint exactly (the fast tests check it). The removed
documents stay in their rows as context for the next document's tokens (no loss on them); the testbed's documents
are unrelated to their neighbours, so what a model could learn from them there is nothing a benchmark asks.

``seed`` other than the world's: the same data trained from another initialization and batch order (the noise
ceiling: how much a benchmark's score moves by chance).
"""

from __future__ import annotations

import math
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ... import corpus
from ...artifacts import read_json
from ...evaluation import evaluate
from ...params import StudyParams
from ...taxonomy import load as load_taxonomy
from ...threads import torch_threads
from .pretrain import finetune_query
from .training import fit, packed_batches, packed_steps_per_epoch, save_model, tiny_olmo3


def world_documents(world_dir: Path) -> tuple[list[str], np.ndarray]:
    """The corpus in the order the world trained on it (shards in order, as written) and each document's bin."""
    tax = load_taxonomy()
    texts, bins = [], []
    for shard in corpus.list_shards(Path(world_dir) / "corpus"):
        for doc in corpus.iter_shard(shard):
            texts.append(doc["text"])
            bins.append(tax.bin_id(corpus.topic_label(doc), corpus.format_label(doc)))
    return texts, np.asarray(bins, dtype=np.int64)


def attributed_step(world_dir: Path) -> int:
    """The pretraining step of the checkpoint the world attributes (its base model)."""
    extra = read_json(Path(world_dir) / "world.json")["extra"]
    return int(extra["checkpoint_models"][extra["attributed"]]["step"])


def retrain(world_dir: str | Path, params: StudyParams, removed_bins: list[int], seed: int | None = None) -> dict:
    """Train the world's base model again without ``removed_bins`` (and from ``seed``'s initialization and batch
    order; None: the world's), make its query model, score both. Returns {"base"|"query": {benchmark: {acc,
    gold_loglik}}, "steps", "removed_documents", "removed_tokens", "seconds"}."""
    from transformers import AutoTokenizer

    world_dir = Path(world_dir)
    info = read_json(world_dir / "world.json")
    world, seed = params.world, params.seed if seed is None else seed
    started = time.perf_counter()
    texts, bins = world_documents(world_dir)
    removed = np.isin(bins, np.asarray(removed_bins, dtype=np.int64))
    tokenizer = AutoTokenizer.from_pretrained(world_dir / info["base_model"])
    with torch_threads(world.train_threads):
        token_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        arch, pre = world.model, world.pretraining
        model = tiny_olmo3(
            tokenizer, arch.layers, arch.hidden, arch.heads, arch.mlp, max_positions=2 * arch.context, seed=seed
        )
        total = math.ceil(pre.epochs * packed_steps_per_epoch(token_ids, arch.context, pre.batch_size))
        step = attributed_step(world_dir)
        batches = packed_batches(
            token_ids,
            tokenizer.eos_token_id,
            arch.context,
            pre.batch_size,
            torch.Generator().manual_seed(seed),
            unlearned=removed.tolist(),
        )
        fit(model, islice(batches, step), total, pre.lr, pre.warmup, pre.weight_decay)  # the schedule of all steps
        rows = pd.read_parquet(world_dir / info["queries"]).to_dict("records")
        scores = {}
        with tempfile.TemporaryDirectory(prefix="retrain-") as tmp:
            base_dir, query_dir = save_model(model, tokenizer, Path(tmp) / "base"), Path(tmp) / "query"
            finetune_query(params, tokenizer, rows, base_dir, query_dir)
            for side, folder in (("base", base_dir), ("query", query_dir)):
                result = evaluate(folder, world_dir / info["task_dir"], info["tasks"], batch_size=64)
                scores[side] = {
                    row.benchmark: dict(acc=float(row.acc), gold_loglik=float(row.mean_gold_loglik))
                    for row in result.summary.itertuples()
                }
    return dict(
        scores,
        steps=step,
        removed_documents=int(removed.sum()),
        removed_tokens=int(sum(len(token_ids[i]) for i in np.flatnonzero(removed))),
        seconds=round(time.perf_counter() - started, 1),
    )

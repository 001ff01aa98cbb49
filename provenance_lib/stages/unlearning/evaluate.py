"""Scoring a model before and after unlearning, through lm-eval on the world's local tasks, and the damage gamma.

gamma = A_baseline - A_unlearned (positive = damage), per run and benchmark, on two measures: accuracy, and the mean
log-likelihood of the gold answer. The second is continuous: near chance (SmolLM2-135M is within a few points of it
on all four benchmarks) accuracy barely moves, while the gold answer's likelihood does.

Which items: when stop checks run, a seeded share of each stop benchmark's items is held out for them and never
scored (``item_split``), so the stop rule never selects a run's stopping step on the items it is scored on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ...benchmarks import task_configs
from ...evaluation import EvalResult, evaluate
from .data import seeded_rng

MEASURES = {"acc": "accuracy", "gold_loglik": "mean gold-answer log-likelihood"}
ITEM_COLUMNS = ["benchmark", "id", "correct", "gold_loglik", "margin"]


@dataclass(frozen=True)
class Scorer:
    """Where and how a model is scored (the world's tasks, ``unlearning.evaluation``): ``items`` are the positions
    of the scored items in each benchmark's task."""

    task_dir: str
    tasks: dict[str, str]  # benchmark name -> lm-eval task
    shots: dict[str, int]
    items: dict[str, list[int]]
    batch_size: int

    def __call__(self, model, tokenizer, benchmarks: list[str] | None = None) -> EvalResult:
        """lm-eval scores of an in-memory model (a peft model scores with its adapter on)."""
        tasks = {b: t for b, t in self.tasks.items() if benchmarks is None or b in benchmarks}
        was_training = model.training
        model.eval()
        try:
            return evaluate(
                model,
                Path(self.task_dir),
                tasks,
                batch_size=self.batch_size,
                tokenizer=tokenizer,
                shots=self.shots,
                samples={b: self.items[b] for b in tasks},
            )
        finally:
            model.train(was_training)

    def on(self, items: dict[str, list[int]]) -> Scorer:
        """The same scorer on other items (the stop checks' held-out ones)."""
        return replace(self, items=items)

    def accuracy(self, model, tokenizer) -> float:
        """Mean accuracy over the benchmarks of ``items``: what the stop rule watches."""
        return float(self(model, tokenizer, list(self.items)).summary["acc"].mean())


def task_sizes(task_dir: str | Path, tasks: dict[str, str]) -> dict[str, int]:
    """Items per benchmark in the world's local tasks (lines of each task's data file)."""
    sizes = {}
    for (name, _), config in zip(tasks.items(), task_configs(task_dir, list(tasks.values()))):
        split = config.get("test_split") or config["validation_split"]
        with open(config["dataset_kwargs"]["data_files"][split]) as f:
            sizes[name] = sum(1 for line in f if line.strip())
    return sizes


def item_split(
    sizes: dict[str, int],
    stop_benchmarks: list[str],
    share: float,
    stop_items: int | None,
    limit: int | None,
    seed: int,
    checks: bool,
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(scored items, stop-check items) per benchmark, as task positions. With ``checks``, a seeded ``share`` of
    each stop benchmark's items (at least one) is held out for the stop checks (their first ``stop_items``) and
    never scored; the scored items are the first ``limit`` of the rest (all when null)."""
    scored, stop = {}, {}
    for name, n in sizes.items():
        held = set()
        if checks and name in stop_benchmarks:
            order = seeded_rng("stop-items", name, seed).permutation(n)
            held = set(order[: max(1, math.ceil(share * n))].tolist())
            stop[name] = sorted(held)[:stop_items]
        scored[name] = [i for i in range(n) if i not in held][:limit]
    return scored, stop


def summary_table(result: EvalResult) -> pd.DataFrame:
    """One row per benchmark: n, acc, gold_loglik (the mean gold-answer log-likelihood)."""
    summary = result.summary.rename(columns={"mean_gold_loglik": "gold_loglik"})
    return summary[["benchmark", "n", "acc", "gold_loglik"]].reset_index(drop=True)


def damage(baseline: pd.DataFrame, unlearned: pd.DataFrame) -> pd.DataFrame:
    """``unlearned`` (a ``summary_table``) with ``gamma_<measure>`` = baseline - unlearned per benchmark."""
    merged = unlearned.merge(
        baseline[["benchmark", *MEASURES]], on="benchmark", suffixes=("", "_baseline"), validate="one_to_one"
    )
    for measure in MEASURES:
        merged[f"gamma_{measure}"] = merged[f"{measure}_baseline"] - merged[measure]
    return merged.drop(columns=[f"{m}_baseline" for m in MEASURES])

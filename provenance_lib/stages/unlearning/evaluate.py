"""Scoring a model before and after unlearning, through lm-eval on the world's local tasks, and the damage gamma.

gamma = A_baseline - A_unlearned (positive = damage), per run and benchmark, on two measures: accuracy, and the mean
log-likelihood of the gold answer. The second is continuous: near chance (SmolLM2-135M is within a few points of it
on all four benchmarks) accuracy barely moves, while the gold answer's likelihood does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ...evaluation import EvalResult, evaluate

MEASURES = {"acc": "accuracy", "gold_loglik": "mean gold-answer log-likelihood"}
ITEM_COLUMNS = ["benchmark", "id", "correct", "gold_loglik", "margin"]


@dataclass(frozen=True)
class Scorer:
    """Where and how a model is scored (the world's tasks, ``unlearning.evaluation``)."""

    task_dir: str
    tasks: dict[str, str]       # benchmark name -> lm-eval task
    shots: dict[str, int]
    limit: int | None
    batch_size: int

    def __call__(self, model, tokenizer, benchmarks: list[str] | None = None) -> EvalResult:
        """lm-eval scores of an in-memory model (a peft model scores with its adapter on)."""
        tasks = {b: t for b, t in self.tasks.items() if benchmarks is None or b in benchmarks}
        was_training = model.training
        model.eval()
        try:
            return evaluate(model, Path(self.task_dir), tasks, batch_size=self.batch_size, limit=self.limit,
                            tokenizer=tokenizer, shots=self.shots)
        finally:
            model.train(was_training)

    def accuracy(self, model, tokenizer, benchmarks: list[str], limit: int | None = None) -> float:
        """Mean accuracy over ``benchmarks`` (on their first ``limit`` items when given): what the stop rule
        watches."""
        scorer = replace(self, limit=limit) if limit else self
        return float(scorer(model, tokenizer, benchmarks).summary["acc"].mean())


def summary_table(result: EvalResult) -> pd.DataFrame:
    """One row per benchmark: n, acc, gold_loglik (the mean gold-answer log-likelihood)."""
    summary = result.summary.rename(columns={"mean_gold_loglik": "gold_loglik"})
    return summary[["benchmark", "n", "acc", "gold_loglik"]].reset_index(drop=True)


def damage(baseline: pd.DataFrame, unlearned: pd.DataFrame) -> pd.DataFrame:
    """``unlearned`` (a ``summary_table``) with ``gamma_<measure>`` = baseline - unlearned per benchmark."""
    merged = unlearned.merge(baseline[["benchmark", *MEASURES]], on="benchmark", suffixes=("", "_baseline"),
                             validate="one_to_one")
    for measure in MEASURES:
        merged[f"gamma_{measure}"] = merged[f"{measure}_baseline"] - merged[measure]
    return merged.drop(columns=[f"{m}_baseline" for m in MEASURES])

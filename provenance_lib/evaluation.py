"""Benchmark evaluation through lm-eval, on the local tasks every world writes (provenance_lib.benchmarks).

Accuracy alone is coarse for small models (SmolLM2 mostly answers "A" on MMLU), so the per-item table also keeps
the gold answer's log-likelihood and its margin over the best wrong choice: continuous measures that move before
accuracy does.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class EvalResult:
    # one row per benchmark: benchmark, task, n, acc, acc_norm, chance, mean_gold_loglik, mean_margin
    summary: pd.DataFrame
    items: pd.DataFrame  # one row per item: benchmark, id, answer, predicted, n_choices, correct, gold_loglik, margin


def evaluate(
    model_path,
    task_dir: str | Path,
    tasks: dict[str, str],
    *,
    batch_size: int = 16,
    limit: int | None = None,
    device: str = "cpu",
    peft_path: str | Path | None = None,
    dtype: str = "float32",
    tokenizer=None,
    shots: dict[str, int] | None = None,
    samples: dict[str, list[int]] | None = None,
) -> EvalResult:
    """Score a model on the local lm-eval tasks: ``model_path`` is an HF folder (``peft_path`` adds a saved LoRA
    adapter) or a model already in memory (a ``PreTrainedModel`` or a peft model, with its ``tokenizer``: how an
    unlearning run is scored without saving and reloading it).

    ``tasks`` maps benchmark names to task names (``WorldInfo.tasks``); ``task_dir`` holds their YAMLs. ``shots``:
    few-shot examples per benchmark name (drawn by lm-eval from the task's other items), zero-shot when absent.
    ``samples``: which items (0-based positions in the task) to score per benchmark name, instead of ``limit``.
    """
    import lm_eval
    from lm_eval.tasks import TaskManager

    from .benchmarks import task_configs

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    # Handing lm-eval a model already in memory is deliberate (an unlearning run is scored without a save/reload);
    # its two warnings about it would repeat for every scoring of every run.
    logging.getLogger("lm_eval.models.huggingface").setLevel(logging.ERROR)
    configs = task_configs(task_dir, list(tasks.values()))
    for name, config in zip(tasks, configs):
        config["num_fewshot"] = (shots or {}).get(name, 0)
    if isinstance(model_path, (str, Path)):
        model, model_args = "hf", {"pretrained": str(model_path), "dtype": dtype, "trust_remote_code": False}
        if peft_path is not None:
            model_args["peft"] = str(peft_path)
    else:
        from lm_eval.models.huggingface import HFLM

        model, model_args = HFLM(pretrained=model_path, tokenizer=tokenizer, batch_size=batch_size), None
    with _without_progress_bars():
        output = lm_eval.simple_evaluate(
            model=model,
            model_args=model_args,
            tasks=configs,
            batch_size=batch_size,
            device=device,
            limit=limit,
            log_samples=True,
            samples=None if samples is None else {tasks[name]: list(map(int, rows)) for name, rows in samples.items()},
            bootstrap_iters=0,
            verbosity="WARNING",
            # the tasks are local configs: indexing lm-eval's ~14k built-in task YAMLs took ~90% of a call's time
            task_manager=TaskManager(include_defaults=False, metadata=model_args),
        )
    items = pd.DataFrame(
        [_item_row(name, sample) for name, task in tasks.items() for sample in output["samples"][task]]
    )
    summary = pd.DataFrame(
        [
            _summary_row(name, task, output["results"][task], items[items.benchmark == name])
            for name, task in tasks.items()
        ]
    )
    return EvalResult(summary=summary, items=items)


@contextlib.contextmanager
def _without_progress_bars():
    """lm-eval draws a progress bar per task and per request type, and ``simple_evaluate`` has no switch for them:
    stage 05 scores every run several times, and the bars buried its notebook. They write to ``sys.stderr`` when
    created, so they are caught here; logged warnings (their handlers hold the real stream) and errors still show."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def _item_row(name: str, sample: dict) -> dict:
    logliks = [float(resp[0]) for resp in sample["filtered_resps"]]
    gold = int(sample["target"])
    wrong = max(ll for i, ll in enumerate(logliks) if i != gold)
    predicted = max(range(len(logliks)), key=logliks.__getitem__)
    return dict(
        benchmark=name,
        id=sample["doc"]["id"],
        answer=gold,
        predicted=predicted,
        n_choices=len(logliks),
        correct=float(sample["acc"]),
        gold_loglik=logliks[gold],
        margin=logliks[gold] - wrong,
    )


def _summary_row(name: str, task: str, metrics: dict, items: pd.DataFrame) -> dict:
    return dict(
        benchmark=name,
        task=task,
        n=len(items),
        acc=metrics["acc,none"],
        acc_norm=metrics["acc_norm,none"],
        chance=(1.0 / items.n_choices).mean(),
        mean_gold_loglik=items.gold_loglik.mean(),
        mean_margin=items.margin.mean(),
    )

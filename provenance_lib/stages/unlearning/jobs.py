"""Stage 05's runs as independent, resumable jobs: the plan, one task per pair, run here or as a Slurm job array.

The stage writes a plan (``plan.json``: the forget sets, the base model, the scorer, the params) into its work
folder, ``<run>/work/05_unlearning``: outside the stage folder, so a failed or re-executed stage keeps every run it
finished. Task i runs pair i: the targeted run (up to ``max_steps``, with the stop rule), then its random partner and
the global control for exactly as many steps. Each run lands in ``runs/<key>/`` (adapter + model card, per-item
scores, training log) and is complete only once ``done.json`` is written last; the key hashes everything the run
depends on (base model weights, forget-set manifest, seed, steps, params), so a finished run is never redone, and a
global control shared by several pairs is run once.

``launcher: local`` runs the tasks one after another in the stage. ``launcher: slurm`` writes ``baseline.sbatch``
(the base model's evaluation), ``array.sbatch`` (one array task per pair, each ``accelerate launch`` of this module
on one GPU) and ``submit.sh`` (submits the array after the baseline); it never submits them. Rerunning the stage
collects what the array finished. By hand::

    python -m provenance_lib.stages.unlearning.jobs <work>/plan.json --baseline
    python -m provenance_lib.stages.unlearning.jobs <work>/plan.json --task 7
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from ...artifacts import read_json, replace_dir, sha256_file, sha256_json, write_json, write_parquet, write_text
from ...errors import ProvenanceError
from ...models import ModelRef, load_causal_lm
from ...threads import set_threads
from .checkpoints import base_identity, save_adapter
from .data import DocumentStore, forget_stream, retain_stream
from .evaluate import ITEM_COLUMNS, Scorer, damage, summary_table
from .forget_sets import ForgetSet

PLAN, STORE, DONE = "plan.json", "documents.arrow", "done.json"
ADAPTER, ITEMS, LOG = "adapter", "items.parquet", "log.json"


@dataclass
class Plan:
    work_dir: str
    base_model: str  # local folder or hub id
    base_revision: str | None
    scorer: dict  # Scorer fields
    unlearning: dict  # the params section
    threads: int
    sets: dict[str, dict]  # name -> ForgetSet fields (ids included)
    tasks: list[dict]  # {"targeted", "random", "global" (or None), "exclude_topic"}
    stop_items: dict[str, list[int]]  # benchmark -> task positions of the stop checks' held-out items
    topics: dict[str, list[str]]  # benchmark -> its target topics (taxonomy keys), as resolved

    @property
    def work(self) -> Path:
        return Path(self.work_dir)

    def save(self) -> Path:
        return write_json(self.work / PLAN, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        path = Path(path)
        if not path.is_file():
            raise ProvenanceError(f"no unlearning plan at {path}", "run stage 05 first: it writes the plan")
        return cls(**read_json(path))

    def forget_set(self, name: str) -> ForgetSet:
        fields = dict(self.sets[name])
        return ForgetSet(**{**fields, "ids": tuple(fields["ids"])})

    def check_keys(self) -> None:
        """Two runs share a key only when they are the same run (same set, kind and retain stream): a plan where
        two different runs would collide is refused before anything runs."""
        seen: dict[str, tuple] = {}
        for task in self.tasks:
            exclusion = self.retain_exclusion(task)
            for kind in ("targeted", "random", "global"):
                if task.get(kind):
                    identity = (kind, task[kind], task["exclude_topic"], exclusion)
                    key = run_key(self, self.forget_set(task[kind]), None, task["exclude_topic"], exclusion)
                    if seen.setdefault(key, identity) != identity:
                        raise ProvenanceError(
                            f"two different unlearning runs share the key {key} ({task[kind]})",
                            "give every forget set a unique name",
                        )

    def retain_exclusion(self, task: dict) -> tuple[str, ...]:
        """The documents no run of a task retains on: every one that any of its runs forgets."""
        names = [task[kind] for kind in ("targeted", "random", "global") if task.get(kind)]
        return tuple(sorted({doc for name in names for doc in self.sets[name]["ids"]}))


def _params(plan: Plan):
    from ...params.unlearning import Unlearning

    return Unlearning.model_validate(plan.unlearning)


# ----------------------------------------------------------------------------------------------- runs
def _load_base(plan: Plan, training):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_causal_lm(
        ModelRef(plan.base_model, plan.base_revision), dtype=getattr(torch, training.dtype), device=device
    )


def _finished(folder: Path) -> dict | None:
    return read_json(folder / DONE) if (folder / DONE).is_file() else None


def scorer_identity(scorer: dict) -> dict:
    """What the scores depend on: the task files' content (not where they are), shots and items."""
    task_dir = Path(scorer["task_dir"])
    files = {
        task: {f.name: sha256_file(f) for f in sorted(task_dir.glob(f"{task}.*"))} for task in scorer["tasks"].values()
    }
    return {"tasks": scorer["tasks"], "files": files, "shots": scorer["shots"], "items": scorer["items"]}


def _baseline_folder(plan: Plan) -> Path:
    return (
        plan.work
        / "baseline"
        / sha256_json(
            [base_identity(plan.base_model, plan.base_revision), scorer_identity(plan.scorer), plan.stop_items]
        )[:16]
    )


def _baseline_done(plan: Plan) -> dict:
    """The base model's scores on the scored items, and its accuracy on the stop checks' items (computed once)."""
    folder = _baseline_folder(plan)
    if not _finished(folder):
        model, tokenizer = _load_base(plan, _params(plan).training)
        scorer = Scorer(**plan.scorer)
        result = scorer(model, tokenizer)
        stop_accuracy = scorer.on(plan.stop_items).accuracy(model, tokenizer) if plan.stop_items else None
        staging = folder.with_name(f".{folder.name}.{os.getpid()}")
        write_parquet(staging / ITEMS, result.items[ITEM_COLUMNS])
        write_json(
            staging / DONE, {"summary": summary_table(result).to_dict("records"), "stop_accuracy": stop_accuracy}
        )
        replace_dir(staging, folder)
    return _finished(folder)


def baseline(plan: Plan) -> pd.DataFrame:
    """The base model's scores (computed once, then read back): what every gamma is measured against."""
    return pd.DataFrame(_baseline_done(plan)["summary"])


def run_key(
    plan: Plan, forget: ForgetSet, steps: int | None, exclude_topic: int | None, exclusion: tuple[str, ...]
) -> str:
    """Everything a run's result depends on; ``steps`` None: up to max_steps under the stop rule."""
    return sha256_json(
        {
            "base": base_identity(plan.base_model, plan.base_revision),
            "set": forget.name,
            "kind": forget.kind,
            "forget": forget.sha256,
            "seed": forget.seed,
            "steps": steps,
            "exclude_topic": exclude_topic,
            "retain_exclusion": sha256_json(list(exclusion)),
            "scorer": scorer_identity(plan.scorer),
            "stop_items": plan.stop_items,
            "training": plan.unlearning["training"],
        }
    )[:16]


def execute_run(
    plan: Plan, name: str, steps: int | None, task: dict, store: DocumentStore, base_scores: pd.DataFrame
) -> dict:
    """Train, score and save one run of ``task`` (or read it back when it finished before); returns its
    ``done.json``."""
    import torch

    from .train import Unlearner, attach_lora

    forget = plan.forget_set(name)
    folder = run_folder(plan, name, steps, task)
    if done := _finished(folder):
        return done
    params = _params(plan)
    t = params.training
    scorer = Scorer(**plan.scorer)
    torch.manual_seed(forget.seed)  # the adapter's initialization: the same for every run of a pair
    model, tokenizer = _load_base(plan, t)
    unlearner = Unlearner(attach_lora(model, t.lora), tokenizer, t, store.texts)
    retain = retain_stream(
        store,
        task["exclude_topic"],
        plan.retain_exclusion(task),
        t.retain_docs_per_topic,
        t.retain_resample_steps,
        t.batch_size,
        t.grad_accumulation,
        forget.seed,
    )
    stop_accuracy = _baseline_done(plan)["stop_accuracy"]
    checker = scorer.on(plan.stop_items)
    log = unlearner.run(
        forget_stream(forget.ids, t.batch_size, forget.seed),
        retain,
        steps,
        stop_check=(lambda: checker.accuracy(unlearner.model, tokenizer)) if plan.stop_items else None,
        stop_below=None if stop_accuracy is None else t.stop_ratio * stop_accuracy,
    )
    result = scorer(unlearner.model, tokenizer)
    table = damage(base_scores, summary_table(result))
    staging = folder.with_name(f".{folder.name}.{os.getpid()}")
    save_adapter(
        unlearner.model,
        staging / ADAPTER,
        base=base_identity(plan.base_model, plan.base_revision),
        forget_set=forget.info(),
        hyperparameters=params.model_dump(mode="json", include={"training"}),
        results=table,
        steps=log.steps,
    )
    write_parquet(staging / ITEMS, result.items[ITEM_COLUMNS])
    write_json(staging / LOG, asdict(log))
    done = {
        "set": name,
        "steps": log.steps,
        "stopped_early": log.stopped_early,
        "train_s": log.seconds,
        "results": table.to_dict("records"),
    }
    write_json(staging / DONE, done)
    replace_dir(staging, folder)
    return done


def run_folder(plan: Plan, name: str, steps: int | None, task: dict) -> Path:
    return (
        plan.work
        / "runs"
        / run_key(plan, plan.forget_set(name), steps, task["exclude_topic"], plan.retain_exclusion(task))
    )


def _first_steps(plan: Plan) -> int | None:
    """A targeted run's steps: None (up to max_steps, under the stop rule), or max_steps when nothing checks."""
    training = plan.unlearning["training"]
    return None if training["stop_check_every"] else training["max_steps"]


def _partners(task: dict, steps: int) -> list[tuple[str, str, int]]:
    """(kind, set, steps) of a pair's other runs: exactly as many steps as its targeted run took."""
    return [("random", task["random"], steps)] + ([("global", task["global"], steps)] if task["global"] else [])


def run_task(plan: Plan, index: int, store: DocumentStore | None = None) -> list[dict]:
    """Pair ``index``: its targeted run, then the random partner and the global control for as many steps."""
    store = store or DocumentStore(plan.work / STORE)
    base_scores = baseline(plan)
    task = plan.tasks[index]
    targeted = execute_run(plan, task["targeted"], _first_steps(plan), task, store, base_scores)
    return [targeted] + [
        execute_run(plan, name, steps, task, store, base_scores)
        for _, name, steps in _partners(task, targeted["steps"])
    ]


def collect(plan: Plan) -> tuple[list[dict[str, tuple[Path, dict]]], list[int]]:
    """Per finished task {"targeted" / "random" / "global": (run folder, done record)}, and the unfinished tasks."""
    finished, missing = [], []
    for index, task in enumerate(plan.tasks):
        folder = run_folder(plan, task["targeted"], _first_steps(plan), task)
        runs = {"targeted": (folder, _finished(folder))}
        if runs["targeted"][1] is not None:
            for kind, name, steps in _partners(task, runs["targeted"][1]["steps"]):
                folder = run_folder(plan, name, steps, task)
                runs[kind] = (folder, _finished(folder))
        if any(done is None for _, done in runs.values()):
            missing.append(index)
        else:
            finished.append(runs)
    return finished, missing


# ----------------------------------------------------------------------------------------------- Slurm
def write_slurm(plan: Plan, slurm, run_name: str) -> Path:
    """``baseline.sbatch``, ``array.sbatch`` (one task per pair) and ``submit.sh`` in the work folder."""
    work = plan.work
    gpu = slurm.gpus_per_task > 0
    launch = [
        "accelerate",
        "launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        *([] if gpu else ["--cpu"]),
        "-m",
        "provenance_lib.stages.unlearning.jobs",
        str(work / PLAN),
    ]
    header = [
        "#!/bin/bash",
        f"#SBATCH --job-name=unlearning-{run_name}",
        f"#SBATCH --cpus-per-task={slurm.cpus_per_task}",
        f"#SBATCH --mem={slurm.mem}",
        f"#SBATCH --time={slurm.time}",
        *([f"#SBATCH --gpus-per-task={slurm.gpus_per_task}"] if gpu else []),
        *([f"#SBATCH --partition={slurm.partition}"] if slurm.partition else []),
    ]
    setup = ["set -euo pipefail", *slurm.setup]
    throttle = f"%{slurm.max_parallel}" if slurm.max_parallel else ""
    write_text(
        work / "baseline.sbatch",
        "\n".join(
            [*header, f"#SBATCH --output={work}/logs/baseline-%j.out", *setup, shlex.join([*launch, "--baseline"]), ""]
        ),
    )
    write_text(
        work / "array.sbatch",
        "\n".join(
            [
                *header,
                f"#SBATCH --array=0-{len(plan.tasks) - 1}{throttle}",
                f"#SBATCH --output={work}/logs/%A_%a.out",
                *setup,
                shlex.join([*launch, "--task"]) + ' "$SLURM_ARRAY_TASK_ID"',
                "",
            ]
        ),
    )
    submit = work / "submit.sh"
    write_text(
        submit,
        "\n".join(
            [
                "#!/bin/bash",
                "# Submit stage 05's runs: the baseline evaluation, then the array once it succeeded.",
                "set -euo pipefail",
                f"mkdir -p {shlex.quote(str(work / 'logs'))}",
                f"baseline=$(sbatch --parsable {shlex.quote(str(work / 'baseline.sbatch'))})",
                f'sbatch --dependency=afterok:"$baseline" {shlex.quote(str(work / "array.sbatch"))}',
                "",
            ]
        ),
    )
    submit.chmod(0o755)
    return submit


# ----------------------------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provenance_lib.stages.unlearning.jobs",
        description="run one task of stage 05's plan (a job array task)",
    )
    parser.add_argument("plan", type=Path)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", type=int, help="the pair to run (0-based)")
    which.add_argument("--baseline", action="store_true", help="evaluate the base model only")
    args = parser.parse_args(argv)
    try:
        plan = Plan.load(args.plan)
        set_threads(plan.threads)
        if args.baseline:
            baseline(plan)
        elif not 0 <= args.task < len(plan.tasks):
            raise ProvenanceError(
                f"task {args.task} is outside the plan's 0-{len(plan.tasks) - 1}",
                "pass an index the array script lists",
            )
        else:
            run_task(plan, args.task)
    except ProvenanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

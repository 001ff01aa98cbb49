"""The four benchmarks of the 2x2 design and the one schema every world writes them in.

Domain (social / STEM) x capability (reasoning / knowledge)::

                 reasoning        knowledge
    social       SocialIQA        MMLU Social Sciences
    STEM         ARC-Challenge    MMLU STEM

Every world writes its items as one table (``QUERY_COLUMNS``) and as lm-eval local tasks, so evaluation always goes
through lm-eval, whatever the world.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import yaml

from ..artifacts import write_parquet, write_text
from ..errors import ProvenanceError


@dataclass(frozen=True)
class Benchmark:
    name: str  # the paper's name, used as the column name of bin-level tables
    domain: str  # "social" | "STEM"
    capability: str  # "reasoning" | "knowledge"
    lm_eval_task: str  # the real lm-eval task (group) name used at paper scale
    n_choices: int

    @property
    def slug(self) -> str:
        """File-name form, also the suffix of the local lm-eval task names."""
        return self.lm_eval_task


BENCHMARKS = (
    Benchmark("SocialIQA", "social", "reasoning", "social_iqa", 3),
    Benchmark("MMLU Social Sciences", "social", "knowledge", "mmlu_social_sciences", 4),
    Benchmark("ARC-Challenge", "STEM", "reasoning", "arc_challenge", 4),
    Benchmark("MMLU STEM", "STEM", "knowledge", "mmlu_stem", 4),
)
BY_NAME = {b.name: b for b in BENCHMARKS}


def benchmark(name: str) -> Benchmark:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ProvenanceError(f"unknown benchmark {name!r}", f"use one of {list(BY_NAME)}") from None


QUERY_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("benchmark", pa.string()),  # Benchmark.name
        ("split", pa.string()),  # "train" (few-shot / instruct tuning) or "eval" (queries and evaluation)
        ("question", pa.string()),  # the zero-shot prompt as the benchmark's lm-eval task renders it (no few-shot
        # examples): what evaluation scores and the query gradient is taken on
        ("choices", pa.list_(pa.string())),
        ("answer", pa.int64()),  # index into choices
        ("domain", pa.string()),
        ("capability", pa.string()),
        ("subject", pa.string()),  # MMLU subject, SIQA/ARC: the benchmark's own name; testbed: planted rule/fact set
    ]
)
QUERY_COLUMNS = QUERY_SCHEMA.names


def query_table(rows: list[dict]) -> pa.Table:
    """Rows in the query schema, checked: every answer indexes its choices, the benchmark is one of the four."""
    for row in rows:
        b = benchmark(row["benchmark"])
        if (row["domain"], row["capability"]) != (b.domain, b.capability):
            raise ProvenanceError(f"item {row['id']}: domain/capability do not match {b.name}")
        if not 0 <= row["answer"] < len(row["choices"]):
            raise ProvenanceError(f"item {row['id']}: answer {row['answer']} outside its {len(row['choices'])} choices")
        if row["split"] not in ("train", "eval"):
            raise ProvenanceError(f"item {row['id']}: split must be 'train' or 'eval', not {row['split']!r}")
    return pa.Table.from_pylist([{c: row[c] for c in QUERY_COLUMNS} for row in rows], schema=QUERY_SCHEMA)


def write_queries(path: str | Path, rows: list[dict]) -> pa.Table:
    table = query_table(rows)
    write_parquet(path, table)
    return table


def write_lm_eval_tasks(table: pa.Table, task_dir: str | Path, prefix: str) -> dict[str, str]:
    """One lm-eval local multiple-choice task per benchmark over its eval items (task YAML + jsonl).

    The prompt is ``question`` and the continuation each choice, scored by log-likelihood (lm-eval's
    ``multiple_choice``), exactly as lm-eval scores the real tasks. A YAML names its jsonl relative to its own folder,
    so a world stays valid when it is moved or copied; ``task_configs`` resolves the path when loading.
    Returns {benchmark name: task name}.
    """
    import json

    task_dir = Path(task_dir)
    tasks = {}
    rows = table.to_pylist()
    for b in BENCHMARKS:
        items = [r for r in rows if r["benchmark"] == b.name and r["split"] == "eval"]
        if not items:
            continue
        task = f"{prefix}_{b.slug}"
        write_text(task_dir / f"{task}.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in items))
        spec = {
            "task": task,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"validation": f"{task}.jsonl"}},
            "validation_split": "validation",
            "output_type": "multiple_choice",
            "doc_to_text": "{{question}}",
            "doc_to_choice": "choices",
            "doc_to_target": "answer",
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
            ],
            "metadata": {"version": 1.0, "benchmark": b.name},
        }
        write_text(task_dir / f"{task}.yaml", yaml.safe_dump(spec, sort_keys=False))
        tasks[b.name] = task
    return tasks


def task_configs(task_dir: str | Path, task_names: list[str]) -> list[dict]:
    """The local tasks as lm-eval config dicts, their data files resolved against ``task_dir`` (pass them to
    ``lm_eval.simple_evaluate(tasks=...)``)."""
    task_dir = Path(task_dir).resolve()
    configs = []
    for name in task_names:
        path = task_dir / f"{name}.yaml"
        if not path.is_file():
            raise ProvenanceError(f"lm-eval task {name!r} not found: {path} is missing", "rebuild the world")
        config = yaml.safe_load(path.read_text())
        files = config["dataset_kwargs"]["data_files"]
        config["dataset_kwargs"]["data_files"] = {split: str(task_dir / f) for split, f in files.items()}
        configs.append(config)
    return configs

"""The paper world: Dolma3 shards, OLMo3-7B and the hub benchmarks.

``build(params, out_dir)`` records what the paper's setting reads, and fetches only the benchmarks:

* the corpus: folders of Dolma3 shards downloaded beforehand (``world.corpus``; the hub dataset and revision they
  came from are recorded). They are checked (shards present, first document in the Dolma3 schema), not copied;
* the models: hub ids and revisions (``model.base`` / ``model.query``); offline they must already be in the HF cache;
* the benchmarks: the real lm-eval tasks (``social_iqa``, ``mmlu_social_sciences``, ``arc_challenge``, ``mmlu_stem``,
  lm-eval pinned), rendered into the query schema and written as local lm-eval tasks like every other world's.

The benchmark items are read by ``benchmarks.lm_eval_tasks``, the loader the real-mini world shares.
"""

from __future__ import annotations

from pathlib import Path

from .. import corpus
from ..benchmarks import write_lm_eval_tasks, write_queries
from ..benchmarks.lm_eval_tasks import benchmark_rows
from ..errors import ProvenanceError
from ..models import resolve
from ..params import StudyParams
from .contract import WorldInfo

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

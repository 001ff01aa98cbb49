"""The paper world: Dolma3 shards, OLMo3-7B and the hub benchmarks.

``build(params, out_dir)`` records what the paper's setting reads, and fetches only the benchmarks:

* the corpus: folders of Dolma3 shards downloaded beforehand (``world.corpus``; the hub dataset and revision they
  came from are recorded). They are checked (shards present, first document in the Dolma3 schema), not copied.
  They live outside the world folder, so their listing (``corpus_listing``: every shard's name, size and the
  content hash and commit the hub download recorded for it) is part of the world's fingerprint and written into
  it: a changed corpus makes a new world, and stage 01 re-runs;
* the models: hub ids and revisions (``model.base`` / ``model.query``); offline they must already be in the HF cache;
* the benchmarks: the real lm-eval tasks (``social_iqa``, ``mmlu_social_sciences``, ``arc_challenge``, ``mmlu_stem``,
  lm-eval pinned), rendered into the query schema and written as local lm-eval tasks like every other world's.

The benchmark items are read by ``benchmarks.lm_eval_tasks``, the loader the real-mini world shares.
"""

from __future__ import annotations

from pathlib import Path

from .. import corpus
from ..artifacts import sha256_json, write_json
from ..benchmarks import write_lm_eval_tasks, write_queries
from ..benchmarks.lm_eval_tasks import benchmark_rows
from ..errors import ProvenanceError
from ..models import resolve
from ..params import StudyParams
from .contract import WorldInfo

QUERIES, TASK_DIR, TASK_PREFIX = "benchmarks/queries.parquet", "benchmarks/tasks", "paper"
LISTING = "corpus_listing.json"
HUB_DOWNLOADS = Path(".cache/huggingface/download")  # where `hf download --local-dir` keeps each file's metadata


def build(params: StudyParams, out_dir: str | Path) -> WorldInfo:
    out_dir, world = Path(out_dir), params.world
    n_shards = [check_dolma_folder(path) for path in world.corpus]
    base, query = resolve(params.model.base), resolve(params.model.query)
    write_json(out_dir / LISTING, corpus_listing(world.corpus))
    rows = benchmark_rows(params, out_dir)
    table = write_queries(out_dir / QUERIES, rows)
    tasks = write_lm_eval_tasks(table, out_dir / TASK_DIR, prefix=TASK_PREFIX)
    return WorldInfo(
        kind="paper",
        fingerprint="",
        corpus=[str(Path(p).resolve()) for p in world.corpus],
        queries=QUERIES,
        tasks=tasks,
        task_dir=TASK_DIR,
        base_model=base.name_or_path,
        query_model=query.name_or_path,
        base_revision=base.revision,
        query_revision=query.revision,
        extra=dict(
            corpus_dataset=world.corpus_dataset,
            corpus_revision=world.corpus_revision,
            shards=sum(n_shards),
            items=_item_counts(rows),
        ),
    )


def input_digest(params: StudyParams) -> dict:
    """The corpus outside the world folder, for the world's fingerprint: shards, bytes and the listing's sha256."""
    listing = corpus_listing(params.world.corpus)
    return {
        "corpus": {
            "shards": len(listing),
            "bytes": sum(row["bytes"] for row in listing),
            "with_hub_sha256": sum(row["hub_etag"] is not None for row in listing),
            "listing_sha256": sha256_json(listing),
        }
    }


def corpus_listing(entries: list[str | Path]) -> list[dict]:
    """Every shard of the corpus folders: its name (relative to its folder's parent, as stage 01 names it), size,
    and, when the shards were fetched with ``hf download --local-dir``, the content hash (the hub's etag: the sha256
    of an LFS file) and dataset commit recorded for it. Hashing terabytes on every run is not affordable; without
    download metadata, a shard rewritten to the same size is not seen (pin ``world.corpus_revision`` then)."""
    rows = []
    for entry in map(Path, entries):
        downloads = _download_root(entry)
        for shard in dolma_shards(entry):
            hub = _hub_metadata(downloads, shard) if downloads else None
            rows.append(
                {
                    "shard": shard.relative_to(entry.parent).as_posix(),
                    "bytes": shard.stat().st_size,
                    "hub_etag": hub and hub[1],
                    "hub_commit": hub and hub[0],
                }
            )
    return sorted(rows, key=lambda row: row["shard"])


def _download_root(entry: Path) -> Path | None:
    """The ``--local-dir`` of a hub download holding ``entry`` (the folder with ``.cache/huggingface``), if any."""
    start = entry.resolve() if entry.is_dir() else entry.resolve().parent
    for folder in (start, *start.parents):
        if (folder / HUB_DOWNLOADS).is_dir():
            return folder
    return None


def _hub_metadata(root: Path, shard: Path) -> tuple[str, str] | None:
    """(commit, etag) huggingface_hub recorded when it downloaded ``shard`` (three lines: commit, etag, time),
    unless the file changed after (the same staleness rule as huggingface_hub's own)."""
    meta = root / HUB_DOWNLOADS / (shard.resolve().relative_to(root.resolve()).as_posix() + ".metadata")
    try:
        commit, etag, saved = meta.read_text().splitlines()[:3]
        fresh = shard.stat().st_mtime - 1 <= float(saved)
    except (OSError, ValueError):
        return None
    return (commit.strip(), etag.strip()) if fresh else None


def dolma_shards(path: str | Path) -> list[Path]:
    """The shards a ``world.corpus`` entry names (a folder of shards, or one shard)."""
    path = Path(path)
    if not path.exists():
        raise ProvenanceError(
            f"Dolma3 corpus folder {path} does not exist",
            "download the shards first (e.g. `hf download --repo-type dataset "
            "allenai/dolma3_mix-6T-1025-7B --include '<subset>/*' --local-dir <folder>`) "
            "and list the folder in world.corpus",
        )
    return [path] if path.is_file() else corpus.list_shards(path)


def check_dolma_folder(path: str | Path) -> int:
    """Number of shards under ``path``, after reading the first document of the first one (Dolma3 schema)."""
    shards = dolma_shards(path)
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

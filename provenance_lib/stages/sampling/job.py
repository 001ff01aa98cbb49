"""Stage 01's inputs and artifact names: the corpus shards in canonical order and the job every task runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import pyarrow as pa

from ... import corpus
from ...errors import ProvenanceError
from ...params import Executor, LocalExecutor

MANIFEST = "manifest.parquet"
SUMMARY = "sampling_summary.json"
SKEW = "skew.json"
HEATMAP = "skew_heatmap.png"
WORKING_SET = "working_set"
UNLABELLED = -1
LABEL_AXES = ("topic", "format")
ROW_BITS = 32  # position = shard ordinal << 32 | row: sorts like (shard name, row)

MANIFEST_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source_shard", pa.string()),  # relative name of the corpus shard (see corpus_shards)
        ("row", pa.int64()),  # the document's 0-based position in that shard
        ("bin", pa.int16()),  # taxonomy bin id: topic_id * 24 + format_id
        ("topic", pa.string()),  # short names, as in the paper's figures
        ("format", pa.string()),
        ("tokens", pa.int64()),
        ("text_hash", pa.string()),  # xxh3-64 of the normalized text, hex
    ]
)


@dataclass(frozen=True)
class ShardRef:
    name: str  # relative name, released in the manifest: stable across machines
    path: Path


def corpus_shards(entries: Iterable[str | Path]) -> list[ShardRef]:
    """The shards of the corpus folders (or shard files) ``entries``, sorted by relative name
    (``corpus.named_shards``)."""
    return [ShardRef(name, path) for name, path in corpus.named_shards(entries)]


def check_listing(shards: list[ShardRef], recorded: list[dict] | None, world_dir: Path) -> None:
    """The shards found are those the world recorded when it was built, with their sizes: a shard deleted, added
    or rewritten since would change the sample without a word. A world that recorded none is not checked."""
    if recorded is None:
        return
    found = {shard.name: shard.path.stat().st_size for shard in shards}
    expected = {row["shard"]: row["bytes"] for row in recorded}
    problems = [f"{name} is missing" for name in sorted(set(expected) - set(found))]
    problems += [f"{name} is not one the world recorded" for name in sorted(set(found) - set(expected))]
    problems += [
        f"{name} has {found[name]:,} bytes, the world recorded {expected[name]:,}"
        for name in sorted(set(found) & set(expected))
        if found[name] != expected[name]
    ]
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise ProvenanceError(
            f"stage 01: the corpus is not the one the world recorded ({len(expected)} shards): "
            f"{'; '.join(problems[:3])}{more}",
            f"restore the shards, or rebuild the world: remove {world_dir} and run again",
        )


@dataclass(frozen=True)
class SamplingJob:
    """Everything a task needs; picklable, so datatrove can ship it to worker processes and Slurm jobs."""

    shards: tuple[ShardRef, ...]  # kept sorted by name: the ordinal of a shard is its index here
    out_dir: Path
    seed: int
    target_per_bin: int
    tokens: str = "whitespace"  # "whitespace" or "base_model"
    tokenizer: str | None = None  # folder or hub id of the base model's tokenizer (tokens == "base_model")
    batch_size: int = 256
    executor: Executor = LocalExecutor(kind="local")  # where the steps run: params.sampling.executor
    buckets: int | None = None  # hash partitions of the de-duplication; None: from the corpus size
    topic_classifier: Any = None  # None, a labels spec for labels.load_classifier, or an object with predict_proba
    format_classifier: Any = None

    def __post_init__(self):
        """Order the shards by name, whatever order they came in: a shard's ordinal is part of every position."""
        shards = tuple(sorted(self.shards, key=lambda shard: shard.name))
        names = [shard.name for shard in shards]
        clashes = sorted({a for a, b in zip(names, names[1:]) if a == b})
        if clashes:
            raise ProvenanceError(
                f"two corpus shards have the same relative name: {clashes[:3]}",
                "give the corpus folders distinct names",
            )
        object.__setattr__(self, "shards", shards)


def stage_job(stage) -> SamplingJob:
    """The job a stage context (``runs.open_stage``) describes: its world's corpus, params and output folder."""
    p = stage.params
    tokenizer = None
    if p.sampling.tokens == "base_model":
        local = stage.world_path(stage.world.base_model)
        tokenizer = str(local) if local.exists() else stage.world.base_model
    shards = corpus_shards(stage.world_path(entry) for entry in stage.world.corpus)
    check_listing(shards, stage.world.shards, stage.world_dir)
    return SamplingJob(
        shards=tuple(shards),
        out_dir=Path(stage.out_dir),
        seed=p.seed,
        target_per_bin=p.sampling.target_per_bin,
        tokens=p.sampling.tokens,
        tokenizer=tokenizer,
        batch_size=p.sampling.batch_size,
        executor=p.sampling.executor,
        buckets=p.sampling.buckets,
        topic_classifier=_in_world(stage, p.labels.topic),
        format_classifier=_in_world(stage, p.labels.format),
    )


def _in_world(stage, spec):
    """A stand-in classifier's relative path is relative to the world folder that wrote it."""
    if spec is not None and spec.kind == "centroid" and not spec.path.is_absolute():
        return spec.model_copy(update={"path": stage.world_path(str(spec.path))})
    return spec

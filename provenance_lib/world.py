"""Worlds: everything a study reads before stage 01 (corpus shards, benchmarks, models), behind one layout.

A built world is a folder::

    world.json                      WorldInfo below: kind, params fingerprint, where each part lives
    corpus/*.jsonl.zst              Dolma3-schema shards (paper scale: world.json points at external shards)
    benchmarks/queries.parquet      the four benchmarks in the query schema (provenance_lib.benchmarks)
    benchmarks/tasks/*.yaml|jsonl   lm-eval local tasks over the eval items
    models/base, models/query       HF model folders when the world makes them (testbed); else paths / hub ids
    ground_truth.json               testbed only: planted bins and documents

The study runner builds the world before stage 01 into ``runs/<name>/world`` and reuses it while the params it
was built from (``seed``, ``world``, ``model``, ``benchmarks``) are unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import shutil
from pathlib import Path

from .artifacts import read_json, replace_dir, sha256_json, write_json
from .errors import ProvenanceError
from .params import StudyParams

WORLD_SECTIONS = ("seed", "world", "model", "benchmarks")


@dataclass
class WorldInfo:
    kind: str
    fingerprint: str                 # sha256 of the params sections the world was built from
    corpus: list[str]                # shard folders or files (relative to the world folder, or absolute)
    queries: str                     # path of queries.parquet
    tasks: dict[str, str]            # benchmark name -> lm-eval task name
    task_dir: str                    # folder holding the lm-eval task YAMLs (load with benchmarks.task_configs)
    base_model: str                  # local folder or hub id
    query_model: str
    base_revision: str | None = None
    query_revision: str | None = None
    extra: dict = field(default_factory=dict)  # world-specific facts worth keeping (sizes, accuracies, timings)

    def resolve(self, root: Path, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else root / path


def fingerprint(params: StudyParams) -> str:
    return sha256_json({name: params.section(name) for name in WORLD_SECTIONS})


def build_world(params: StudyParams, out_dir: str | Path) -> WorldInfo:
    """Build the world the params describe into ``out_dir`` and write its ``world.json`` last."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kind = params.world.kind
    if kind == "testbed":
        from . import testbed as builder
    elif kind == "real-mini":
        from . import realmini as builder
    else:
        from . import paperworld as builder
    info = builder.build(params, out_dir)
    info.fingerprint = fingerprint(params)
    write_json(out_dir / "world.json", asdict(info))
    return info


def load_world(world_dir: str | Path) -> WorldInfo:
    path = Path(world_dir) / "world.json"
    if not path.is_file():
        raise ProvenanceError(f"no world at {world_dir} (world.json missing)",
                              "run `python -m provenance_lib world PARAMS --out DIR` or the study runner")
    return WorldInfo(**read_json(path))


def ensure_world(params: StudyParams, out_dir: str | Path, force: bool = False) -> tuple[WorldInfo, bool]:
    """Reuse the world in ``out_dir`` if it was built from the same params; otherwise build a new one beside it and
    swap it in, so a failed build leaves the previous world intact. Returns the world and whether it was built now."""
    out_dir = Path(out_dir)
    if (out_dir / "world.json").is_file() and not force:
        info = load_world(out_dir)
        if info.fingerprint == fingerprint(params):
            return info, False
    staging = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    build_world(params, staging)
    replace_dir(staging, out_dir)
    return load_world(out_dir), True

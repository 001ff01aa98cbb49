"""Worlds: everything a study reads before stage 01 (corpus shards, benchmarks, models), behind one layout.

A built world is a folder::

    world.json                      WorldInfo below: kind, params fingerprint, where each part lives
    corpus/*.jsonl.zst              Dolma3-schema shards (paper scale: world.json points at external shards)
    benchmarks/queries.parquet      the four benchmarks in the query schema (provenance_lib.benchmarks)
    benchmarks/tasks/*.yaml|jsonl   lm-eval local tasks over the eval items
    models/base, models/query       HF model folders when the world makes them (testbed); else paths / hub ids
    ground_truth.json               testbed only: planted bins and documents

Each world kind (``testbed``, ``realmini``, ``paper``) builds this layout; ``provenance_lib.worlds`` dispatches to
them and reuses a world while its fingerprint and the code that builds it are unchanged. The fingerprint covers the
params it was built from (``seed``, ``world``, ``model``, ``benchmarks``) and the inputs outside the params that
a world kind reads (real-mini's packaged texts, the paper's shard listing), so a world is a function of what its
fingerprint names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts import read_json, sha256_json
from ..errors import ProvenanceError
from ..params import StudyParams

WORLD_SECTIONS = ("seed", "world", "model", "benchmarks")


@dataclass
class WorldInfo:
    kind: str
    fingerprint: str  # sha256 of the params sections and external inputs it was built from
    corpus: list[str]  # shard folders or files (relative to the world folder, or absolute)
    queries: str  # path of queries.parquet
    tasks: dict[str, str]  # benchmark name -> lm-eval task name
    task_dir: str  # folder holding the lm-eval task YAMLs (load with benchmarks.task_configs)
    base_model: str  # local folder or hub id
    query_model: str
    base_revision: str | None = None
    query_revision: str | None = None
    checkpoints: dict[str, str] = field(default_factory=dict)  # label -> folder of an intermediate base-model
    #   checkpoint (HF format, optimizer.pt beside it when known), in training order; the last one is base_model
    extra: dict = field(default_factory=dict)  # world-specific facts worth keeping (sizes, accuracies, timings)
    inputs: dict = field(default_factory=dict)  # digests of what it read outside its params (in the fingerprint)
    code_sha256: str | None = None  # the library code that built it (codebase.code_sha256 of provenance_lib.worlds)
    shards: list[dict] | None = None  # its corpus shards when it was built: name and bytes (corpus.shard_listing)

    def resolve(self, root: Path, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else root / path


def fingerprint(params: StudyParams, inputs: dict | None = None) -> str:
    """sha256 of the world's params sections and of the ``inputs`` digests it reads outside them (none: the world
    is a function of its params alone, as the testbed is)."""
    sections = {name: params.section(name) for name in WORLD_SECTIONS}
    return sha256_json({**sections, "inputs": inputs} if inputs else sections)


def load_world(world_dir: str | Path) -> WorldInfo:
    path = Path(world_dir) / "world.json"
    if not path.is_file():
        raise ProvenanceError(
            f"no world at {world_dir} (world.json missing)",
            "run `python -m provenance_lib world PARAMS --out DIR` or the study runner",
        )
    return WorldInfo(**read_json(path))


# ----------------------------------------------------------------------------------------------- scale
SCALE_NOTES = {
    "testbed": "Testbed world: a generated corpus with planted provenance and a tiny model. This is a known-answers "
    "check of the pipeline, not a finding about real language models.",
    "real-mini": "Real-mini world: packaged text, not the model's pretraining data, covering {bins} of 576 bins. "
    "This matrix demonstrates the pipeline on a real model; it is not a provenance finding.",
    "released": "The paper's released matrix (Matlin et al., arXiv 2606.19625, CC BY 4.0), imported as published.",
}


def scale_note(world_kind: str, bins_with_documents: int) -> str | None:
    """What a figure or table of this world may be read as (None at paper scale); driven by the world kind."""
    note = SCALE_NOTES.get(world_kind)
    return note.format(bins=bins_with_documents) if note else None

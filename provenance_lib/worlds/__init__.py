"""Worlds: everything a study reads before stage 01 (corpus shards, benchmarks, models), behind one layout
(``contract``). The study runner builds the world before stage 01 into ``runs/<name>/world`` and reuses it while
its fingerprint (params and external inputs) and the code that builds it are unchanged.

* ``testbed``: a generated corpus with planted provenance and a tiny model trained on it (known answers);
* ``realmini``: real text, real benchmark items and a real small LM from pip packages;
* ``paper``: Dolma3 shards, OLMo3-7B and the hub benchmarks;
* ``released``: the paper's released 576-bin matrix, standing in for stages 01-03 (no corpus, no model).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from .. import codebase, corpus
from ..artifacts import replace_dir, write_json
from ..params import StudyParams
from . import contract, paper, realmini, released, testbed
from .contract import WorldInfo, load_world

BUILDERS = {"testbed": testbed.build, "real-mini": realmini.build, "paper": paper.build, "released": released.build}
INPUTS = {"real-mini": realmini.input_digest, "paper": paper.input_digest, "released": released.input_digest}
"""World kinds that read inputs outside their params: a digest of them, part of the world's fingerprint."""


def world_inputs(params: StudyParams) -> dict:
    digest = INPUTS.get(params.world.kind)
    return digest(params) if digest else {}


def fingerprint(params: StudyParams) -> str:
    """The fingerprint of the world ``params`` describe here: its params sections and its external inputs."""
    return contract.fingerprint(params, world_inputs(params))


def builder_code_sha256() -> str:
    """The library code a world build runs (this package and what it imports: no stage, no runner)."""
    return codebase.code_sha256([__name__])


def build_world(params: StudyParams, out_dir: str | Path, inputs: dict | None = None) -> WorldInfo:
    """Build the world the params describe into ``out_dir`` and write its ``world.json`` last."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = world_inputs(params) if inputs is None else inputs
    info = BUILDERS[params.world.kind](params, out_dir)
    info.inputs, info.fingerprint = inputs, contract.fingerprint(params, inputs)
    info.code_sha256 = builder_code_sha256()
    info.shards = corpus.shard_listing(info.resolve(out_dir, entry) for entry in info.corpus)
    write_json(out_dir / "world.json", asdict(info))
    return info


def matching_world(
    params: StudyParams, out_dir: str | Path, trust_code: bool = False, inputs: dict | None = None
) -> WorldInfo | None:
    """The world in ``out_dir`` if it has the fingerprint the params give here and was built by the same code
    (``trust_code``: by any code); else None."""
    out_dir = Path(out_dir)
    if not (out_dir / "world.json").is_file():
        return None
    info = load_world(out_dir)
    inputs = world_inputs(params) if inputs is None else inputs
    if info.fingerprint == contract.fingerprint(params, inputs) and (
        trust_code or info.code_sha256 == builder_code_sha256()
    ):
        return info
    return None


def ensure_world(
    params: StudyParams, out_dir: str | Path, force: bool = False, trust_code: bool = False
) -> tuple[WorldInfo, bool]:
    """Reuse the world in ``out_dir`` if it matches the params (``matching_world``); otherwise build a new one
    beside it and swap it in, so a failed build leaves the previous world intact. Returns the world and whether it
    was built now."""
    out_dir = Path(out_dir)
    inputs = world_inputs(params)
    if not force and (info := matching_world(params, out_dir, trust_code, inputs)) is not None:
        return info, False
    staging = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    build_world(params, staging, inputs)
    replace_dir(staging, out_dir)
    return load_world(out_dir), True

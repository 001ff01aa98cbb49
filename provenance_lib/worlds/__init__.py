"""Worlds: everything a study reads before stage 01 (corpus shards, benchmarks, models), behind one layout
(``contract``). The study runner builds the world before stage 01 into ``runs/<name>/world`` and reuses it while
the params it was built from are unchanged.

* ``testbed``: a generated corpus with planted provenance and a tiny model trained on it (known answers);
* ``realmini``: real text, real benchmark items and a real small LM from pip packages;
* ``paper``: Dolma3 shards, OLMo3-7B and the hub benchmarks;
* ``released``: the paper's released 576-bin matrix, standing in for stages 01-03 (no corpus, no model).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from ..artifacts import replace_dir, write_json
from ..params import StudyParams
from . import paper, realmini, released, testbed
from .contract import WorldInfo, fingerprint, load_world

BUILDERS = {"testbed": testbed.build, "real-mini": realmini.build, "paper": paper.build, "released": released.build}


def build_world(params: StudyParams, out_dir: str | Path) -> WorldInfo:
    """Build the world the params describe into ``out_dir`` and write its ``world.json`` last."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = BUILDERS[params.world.kind](params, out_dir)
    info.fingerprint = fingerprint(params)
    write_json(out_dir / "world.json", asdict(info))
    return info


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

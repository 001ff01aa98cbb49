"""The run record, ``runs/<name>/run.json``: what made every artifact of a run (code, params, inputs, versions, host).

It is rewritten atomically after every change, so it always describes what is on disk. The runner (``runs``) writes
it; stage notebooks read it (``context``).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .artifacts import read_json, sha256_json, write_json
from .params import StudyParams

VERSIONED_PACKAGES = ("provenance-lib", "torch", "transformers", "datasets", "accelerate", "peft", "bergson",
                      "lm_eval", "papermill", "pyarrow", "pandas", "numpy", "pydantic")


class RunRecord:
    """``run.json``: rewritten atomically after every change, so it always describes what is on disk."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "run.json"
        self.data = read_json(self.path) if self.path.is_file() else {"stages": {}}

    @property
    def stages(self) -> dict:
        return self.data["stages"]

    def save(self) -> None:
        write_json(self.path, self.data)

    def start(self, params: StudyParams, params_path: Path) -> None:
        resolved = params.model_dump(mode="json")
        self.data.update(
            name=self.run_dir.name, params_file=str(params_path), params=resolved, params_sha256=sha256_json(resolved),
            git=git_state(), versions=package_versions(), host=host_info(),
            invoked=now(), command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        )
        self.save()

    def completed(self, stage_id: str) -> dict | None:
        entry = self.stages.get(stage_id)
        return entry if entry and entry.get("status") == "complete" else None

    def outputs_before(self, stage_id: str) -> dict[str, str]:
        """Hashes of everything completed stages before ``stage_id`` wrote: the stage's possible inputs."""
        inputs = {}
        for other, entry in sorted(self.stages.items()):
            if other < stage_id and entry.get("status") == "complete":
                inputs.update(entry["outputs"])
        return inputs


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_state() -> dict:
    """Commit and dirty flag of the checkout the package was imported from (None outside a git checkout)."""
    source = Path(__file__).resolve().parent

    def git(*args):
        return subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, check=True).stdout

    try:
        return {"commit": git("rev-parse", "HEAD").strip(), "dirty": bool(git("status", "--porcelain").strip())}
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def host_info() -> dict:
    import torch

    device = "cpu"
    if torch.cuda.is_available():
        device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": device}

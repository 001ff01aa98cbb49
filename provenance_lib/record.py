"""The run record, ``runs/<name>/run.json``: what made every artifact of a run (code, params, inputs, interpreter).

::

    name
    params, params_file, params_sha256   what params.yaml holds: the params of the last invocation that completed
    invocations                          every time the runner worked on this folder: command, params hash, git
                                         commit + dirty flag, package code hash, interpreter, package versions,
                                         host, --trust-code, and how it ended
    stages.<id>                          a completed stage: its fingerprint and the parts it is made of (the resolved
                                         params it ran with and their hash, the sha256 of every input, the code and
                                         notebook hashes), commit + dirty flag, interpreter, timings, its executed
                                         notebook and the sha256 of every artifact it wrote; ``attempt``: how a later
                                         attempt that did not complete ended. A stage that never completed: that
                                         attempt alone.

It is rewritten atomically after every change, so it always describes what is on disk. The runner (``runs``) writes
it; stage notebooks read it (``context``); ``runs.verify`` re-derives every fingerprint in it.
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
from .errors import ProvenanceError
from .params import SHARED_SECTIONS, StudyParams

VERSIONED_PACKAGES = ("provenance-lib", "torch", "transformers", "datasets", "accelerate", "peft", "bergson",
                      "lm_eval", "papermill", "ipykernel", "pyarrow", "pandas", "numpy", "pydantic")
WORLD_STAGE = "00_world"
RUNNING, COMPLETE, ABANDONED = "running", "complete", "abandoned"
ABANDONED_NOTE = ("the runner stopped without recording how: killed (SIGKILL, out of memory) or the machine went "
                  "down")


class RunRecord:
    """``run.json``: rewritten atomically after every change, so it always describes what is on disk."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "run.json"
        self.data = read_json(self.path) if self.path.is_file() else {}
        self.data.setdefault("name", self.run_dir.name)
        self.data.setdefault("invocations", [])
        self.data.setdefault("stages", {})

    @classmethod
    def existing(cls, run_dir: str | Path) -> RunRecord:
        """The record of a run folder the runner made; one clear error for any other folder."""
        record = cls(Path(run_dir))
        if not record.path.is_file():
            raise ProvenanceError(f"{run_dir} has no run.json",
                                  "give a run folder made by `python -m provenance_lib run` (runs/<name>)")
        return record

    @property
    def stages(self) -> dict:
        return self.data["stages"]

    @property
    def invocations(self) -> list[dict]:
        return self.data["invocations"]

    def save(self) -> None:
        write_json(self.path, self.data)

    # ------------------------------------------------------------------------------------------- invocations
    def begin(self, params: StudyParams, params_path: Path, trust_code: bool, code_sha256: str) -> int:
        """Record a new invocation of the runner; returns its number."""
        number = len(self.invocations) + 1
        self.invocations.append(dict(
            number=number, started=now(), status=RUNNING, command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            params_file=str(params_path), params_sha256=sha256_json(params.model_dump(mode="json")),
            trust_code=trust_code, git=git_state(), code_sha256=code_sha256, interpreter=interpreter(),
            versions=package_versions(), host=host_info(), pid=os.getpid(),
        ))
        self.save()
        return number

    def end(self, number: int, status: str, error: str | None = None) -> None:
        invocation = self.invocations[number - 1]
        invocation.update(status=status, ended=now(), **({"error": error} if error else {}))
        self.save()

    def completed_with(self, params: StudyParams, params_path: Path) -> None:
        """The invocation completed: its params become the run's (params.yaml is written beside)."""
        resolved = params.model_dump(mode="json")
        self.data.update(params_file=str(params_path), params=resolved, params_sha256=sha256_json(resolved))
        self.save()

    def settle_abandoned(self) -> list[str]:
        """Mark what a runner that died left "running" (only called while holding the run's lock, so no runner is
        alive here); returns the stages it was executing."""
        for invocation in self.invocations:
            if invocation["status"] == RUNNING:
                invocation.update(status=ABANDONED, note=ABANDONED_NOTE)
        stages = []
        for stage_id, entry in self.stages.items():
            attempt = entry.get("attempt", entry)
            if attempt.get("status") == RUNNING:
                attempt.update(status=ABANDONED, error=ABANDONED_NOTE)
                stages.append(stage_id)
        self.save()
        return stages

    # ------------------------------------------------------------------------------------------- stages
    def completed(self, stage_id: str) -> dict | None:
        entry = self.stages.get(stage_id)
        return entry if entry and entry.get("status") == COMPLETE else None

    def outputs_before(self, stage_id: str) -> dict[str, str]:
        """Hashes of everything completed stages before ``stage_id`` wrote: the stage's possible inputs."""
        inputs = {}
        for other, entry in sorted(self.stages.items()):
            if other < stage_id and entry.get("status") == COMPLETE:
                inputs.update(entry["outputs"])
        return inputs

    def note_attempt(self, stage_id: str, attempt: dict) -> None:
        """Record an attempt that has not completed (running, or how it ended). A stage that completed before keeps
        its entry, since its artifacts on disk are still that run's, and carries the attempt beside it."""
        previous = self.completed(stage_id)
        if previous:
            previous["attempt"] = dict(attempt)
        else:
            self.stages[stage_id] = dict(attempt)
        self.save()


# ----------------------------------------------------------------------------------------------- fingerprints
def stage_section(stage_id: str) -> str:
    """A stage's own params section, named like it: ``01_sampling`` -> ``sampling``."""
    return stage_id.split("_", 1)[1]


def stage_sections(stage_id: str) -> tuple[str, ...]:
    """The params sections a stage depends on: the shared ones and its own."""
    return (*SHARED_SECTIONS, stage_section(stage_id))


def params_sha256(params: StudyParams, sections: tuple[str, ...]) -> str:
    """The hash of what ``sections`` decide: where the work runs (``sampling.executor``) is left out."""
    return sha256_json({name: params.section(name, fingerprint=True) for name in sections})


def stage_fingerprint(params_sha: str, inputs: dict[str, str], code_sha: str, notebook_sha: str) -> str:
    """What decides whether a stage's artifacts are current: its params, the sha256 of its inputs, the library code
    it runs and its notebook."""
    return sha256_json({"params": params_sha, "inputs": inputs, "code": code_sha, "notebook": notebook_sha})


def world_stage_fingerprint(world_fingerprint: str, code_sha: str) -> str:
    """The world's: its own fingerprint (params and external inputs, ``worlds.fingerprint``) and the code that built
    it."""
    return sha256_json({"world": world_fingerprint, "code": code_sha})


# ----------------------------------------------------------------------------------------------- the machine
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


def interpreter() -> dict:
    """The interpreter that runs the runner, and so every stage kernel (``execute.RunnerKernelManager``)."""
    return {"executable": sys.executable, "version": platform.python_version(), "prefix": sys.prefix}


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

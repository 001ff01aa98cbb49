"""The run record, ``runs/<name>/run.json``: what made every artifact of a run (code, params, inputs, interpreter).

::

    name
    params, params_file, params_sha256   what params.yaml holds: the params of the last invocation that completed
    invocations                          every time the runner worked on this folder (``Invocation``): command,
                                         params hash, git commit + dirty flag, package code hash, interpreter,
                                         package versions, host, --trust-code, and how it ended
    stages.<id>                          a completed stage (``StageRecord``): its fingerprint and the parts it is
                                         made of (the resolved params it ran with and their hash, the sha256 of every
                                         input it read, the code and notebook hashes), commit + dirty flag,
                                         interpreter, timings, its executed notebook, the sha256 of every artifact it
                                         wrote with their size and mtime then (``stamps``: the runner's fast check);
                                         ``attempt``: how a later attempt that did not complete ended. A stage that
                                         never completed: that attempt alone (``Attempt``).

The models below are the one reader and writer of the file. It is rewritten atomically after every change, so it
always describes what is on disk. The runner (``runs``) writes it; stage notebooks read it (``context``);
``verify`` re-derives every fingerprint in it.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, UTC
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, ValidationError

from .artifacts import sha256_json, write_json
from .errors import ProvenanceError
from .params import SHARED_SECTIONS, StudyParams

VERSIONED_PACKAGES = (
    "provenance-lib",
    "torch",
    "transformers",
    "datasets",
    "accelerate",
    "peft",
    "bergson",
    "lm_eval",
    "papermill",
    "ipykernel",
    "pyarrow",
    "pandas",
    "numpy",
    "pydantic",
)
WORLD_STAGE = "00_world"
RUNNING, COMPLETE, ABANDONED = "running", "complete", "abandoned"
ABANDONED_NOTE = "the runner stopped without recording how: killed (SIGKILL, out of memory) or the machine went down"


# ----------------------------------------------------------------------------------------------- the models
class Entry(BaseModel):
    """A part of the record: unknown fields are refused (a record this code cannot read whole is not rewritten),
    fields that are None are not written."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Git(Entry):
    commit: str | None = None
    dirty: bool | None = None


class Invocation(Entry):
    """One time the runner worked on the run."""

    number: int
    started: str
    status: str  # running, complete, failed, killed, timed out, interrupted, error, abandoned
    command: str
    params_file: str
    params_sha256: str
    trust_code: bool = False
    git: Git = Git()
    code_sha256: str | None = None
    interpreter: dict[str, Any] = {}
    versions: dict[str, str | None] = {}
    host: dict[str, Any] = {}
    pid: int | None = None
    ended: str | None = None
    error: str | None = None
    note: str | None = None


class Attempt(Entry):
    """An attempt at a stage that has not completed: running, or how it ended."""

    status: str  # running, failed, killed, timed out, interrupted, error, abandoned
    invocation: int
    reason: str | None = None  # why it ran (never completed, params changed, --force, ...)
    started: str | None = None
    ended: str | None = None
    fingerprint: str | None = None
    resumes: int | None = None  # the invocation whose work it went on from
    kernel_pid: int | None = None
    error: str | None = None
    notebook: str | None = None  # its partial notebook (NN_stage.failed.ipynb)


class Trusted(Entry):
    """--trust-code kept the artifacts although the code differs: which invocation, why, and the code it saw."""

    invocation: int
    reasons: list[str]
    code_sha256: str | None = None
    notebook_sha256: str | None = None


class StageRecord(Entry):
    """A completed stage: what made its artifacts, and their hashes."""

    status: Literal["complete"] = COMPLETE
    fingerprint: str
    params_sha256: str | None = None
    params: dict[str, Any] | None = None  # the resolved params it ran with
    code_sha256: str | None = None
    notebook_sha256: str | None = None  # stages only
    world_fingerprint: str | None = None  # the world only: its params and external inputs (worlds.fingerprint)
    git: Git = Git()
    interpreter: str | None = None
    invocation: int | None = None
    reason: str | None = None
    started: str | None = None
    ended: str | None = None
    duration_s: float | None = None
    notebook: str | None = None
    inputs: dict[str, str] = {}  # relative path -> sha256 of every file it could read, checked before
    outputs: dict[str, str] = {}  # relative path -> sha256 of every artifact it wrote
    stamps: dict[str, tuple[int, int]] = {}  # relative path -> (size, mtime_ns) of each artifact when hashed
    resumes: int | None = None
    trusted: Trusted | None = None
    attempt: Attempt | None = None  # a later attempt that did not complete


def _entry_kind(value: Any) -> str:
    status = value.get("status") if isinstance(value, dict) else getattr(value, "status", None)
    return "complete" if status == COMPLETE else "attempt"


StageEntry = Annotated[
    Annotated[StageRecord, Tag("complete")] | Annotated[Attempt, Tag("attempt")], Discriminator(_entry_kind)
]


class Run(Entry):
    name: str
    params: dict[str, Any] | None = None
    params_file: str | None = None
    params_sha256: str | None = None
    invocations: list[Invocation] = []
    stages: dict[str, StageEntry] = {}


def read_run(path: Path) -> Run:
    """``run.json`` as a ``Run``; one line naming the file and the fix when it is not one (truncated, edited)."""
    fix = (
        f"restore {path.name} from a backup, or move the run folder aside and run the study again (its "
        "artifacts cannot be trusted without their record)"
    )
    try:
        return Run.model_validate(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvenanceError(f"cannot read the run record {path}: {exc}", fix) from None
    except json.JSONDecodeError as exc:
        raise ProvenanceError(
            f"the run record {path} is not valid JSON (truncated or corrupt: {exc.msg} at line {exc.lineno})", fix
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ProvenanceError(
            f"the run record {path} is not one this code reads: {where}: {first['msg']} "
            f"({exc.error_count()} problem(s))",
            fix,
        ) from None


# ----------------------------------------------------------------------------------------------- the file
class RunRecord:
    """``run.json``: rewritten atomically after every change, so it always describes what is on disk."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "run.json"
        self.run = read_run(self.path) if self.path.is_file() else Run(name=self.run_dir.name)

    @classmethod
    def existing(cls, run_dir: str | Path) -> RunRecord:
        """The record of a run folder the runner made; one clear error for any other folder."""
        if not (Path(run_dir) / "run.json").is_file():
            raise ProvenanceError(
                f"{run_dir} has no run.json", "give a run folder made by `python -m provenance_lib run` (runs/<name>)"
            )
        return cls(Path(run_dir))

    @property
    def stages(self) -> dict[str, StageRecord | Attempt]:
        return self.run.stages

    @property
    def invocations(self) -> list[Invocation]:
        return self.run.invocations

    def save(self) -> None:
        write_json(self.path, self.run.model_dump(mode="json", exclude_none=True))

    # ------------------------------------------------------------------------------------------- invocations
    def begin(self, params: StudyParams, params_path: Path, trust_code: bool, code_sha256: str) -> int:
        """Record a new invocation of the runner; returns its number."""
        number = len(self.invocations) + 1
        self.invocations.append(
            Invocation(
                number=number,
                started=now(),
                status=RUNNING,
                command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                params_file=str(params_path),
                params_sha256=sha256_json(params.model_dump(mode="json")),
                trust_code=trust_code,
                git=Git(**git_state()),
                code_sha256=code_sha256,
                interpreter=interpreter(),
                versions=package_versions(),
                host=host_info(),
                pid=os.getpid(),
            )
        )
        self.save()
        return number

    def invocation(self, number: int) -> Invocation:
        return self.invocations[number - 1]

    def end(self, number: int, status: str, error: str | None = None) -> None:
        invocation = self.invocation(number)
        invocation.status, invocation.ended = status, now()
        if error:
            invocation.error = error
        self.save()

    def completed_with(self, params: StudyParams, params_path: Path) -> None:
        """The invocation completed: its params become the run's (params.yaml is written beside)."""
        resolved = params.model_dump(mode="json")
        self.run.params_file, self.run.params, self.run.params_sha256 = (
            str(params_path),
            resolved,
            sha256_json(resolved),
        )
        self.save()

    def settle_abandoned(self) -> list[str]:
        """Mark what a runner that died left "running" (only called while holding the run's lock, so no runner is
        alive here); returns the stages it was executing."""
        for invocation in self.invocations:
            if invocation.status == RUNNING:
                invocation.status, invocation.note = ABANDONED, ABANDONED_NOTE
        stages = []
        for stage_id in self.stages:
            attempt = self.attempt(stage_id)
            if attempt is not None and attempt.status == RUNNING:
                attempt.status, attempt.error = ABANDONED, ABANDONED_NOTE
                stages.append(stage_id)
        self.save()
        return stages

    # ------------------------------------------------------------------------------------------- stages
    def completed(self, stage_id: str) -> StageRecord | None:
        entry = self.stages.get(stage_id)
        return entry if isinstance(entry, StageRecord) else None

    def attempt(self, stage_id: str) -> Attempt | None:
        """The stage's latest attempt, if it did not complete (None: the stage's last attempt completed)."""
        entry = self.stages.get(stage_id)
        return entry.attempt if isinstance(entry, StageRecord) else entry

    def outputs_before(self, stage_id: str) -> dict[str, str]:
        """Hashes of everything completed stages before ``stage_id`` wrote: the stage's possible inputs."""
        inputs = {}
        for other, entry in sorted(self.stages.items()):
            if other < stage_id and isinstance(entry, StageRecord):
                inputs.update(entry.outputs)
        return inputs

    def note_attempt(self, stage_id: str, attempt: Attempt) -> None:
        """Record an attempt that has not completed (running, or how it ended). A stage that completed before keeps
        its entry, since its artifacts on disk are still that run's, and carries the attempt beside it."""
        previous = self.completed(stage_id)
        if previous:
            previous.attempt = attempt.model_copy()
        else:
            self.stages[stage_id] = attempt.model_copy()
        self.save()

    def complete(self, stage_id: str, entry: StageRecord) -> None:
        """The stage completed: ``entry`` replaces what the record said of it (a failed attempt included)."""
        self.stages[stage_id] = entry
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
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }

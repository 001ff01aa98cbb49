"""Where the bench scripts' measurements go: ``bench/results/<name>.json`` (the records, and which commit, params,
command and machine made them) and ``bench/results/<name>.md`` (the tables, rendered from that JSON by the script
that measured, naming the commit and the command). The docs include the ``.md`` files and read the JSON."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()


def code_state() -> dict:
    """The commit and whether the measured code (package, bench scripts, params) had uncommitted changes."""
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "provenance_lib", "bench", "params", ":!bench/results")),
    }


CODE = code_state()  # when the script started: a measurement names the code it ran, not what was committed since


def machine() -> dict:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory / 1e9, 1),
        "system": platform.system(),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def write_results(
    name: str, params: dict, records: dict, render: Callable[[dict], str], command: str, folder: Path = RESULTS
) -> dict:
    """Write ``<name>.json`` (the records at the top level, beside commit, dirty, command, params, machine and
    generated_at) and ``<name>.md`` (``render`` of that JSON under a line naming the commit and command)."""
    result = {
        **CODE,
        "command": command,
        "params": params,
        "machine": machine(),
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **records,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    dirty = " (with uncommitted changes)" if result["dirty"] else ""
    (folder / f"{name}.md").write_text(
        f"Measured at `{result['commit']}`{dirty} by `{command}` on "
        f"{result['machine']['cpus']} CPUs ({result['machine']['cpu']}), load average "
        f"{result['machine']['load_average_1m']}, {result['generated_at']}.\n\n" + render(result) + "\n"
    )
    return result

"""Peak memory of the README's main command, `make study` (the real-mini study), over its whole process tree.

    python bench/study_memory.py [--name NAME] [--interval 0.2] [--params params/real-mini.yaml]

Runs ``make study PARAMS=... NAME=...`` into a fresh run folder (every stage computed) and samples /proc every
``--interval`` seconds: the resident set summed over make and all its descendants (the tree's peak: what the machine
had to hold at once, up to what a sample between two instants misses), and each process's own peak (VmHWM, read
while it lives; their sum bounds the tree's peak from above, as if every process peaked at once). Writes
``bench/results/study_memory.json`` and ``.md``, only when the study succeeds (else exits non-zero).

Not part of ``make bench``: it runs the whole study (minutes, several GB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import ROOT, write_results  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 2**20


def children_of() -> dict[int, list[int]]:
    """Every live process's children, from /proc/<pid>/stat."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def descendants(root: int) -> list[int]:
    tree, out, todo = children_of(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def sample(pid: int) -> tuple[int, int, str] | None:
    """(resident bytes, peak resident bytes, command line) of one process, None once it is gone."""
    try:
        rss = int((Path(f"/proc/{pid}/statm")).read_text().split()[1]) * PAGE
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, IndexError):
        return None
    hwm = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")), rss)
    return rss, hwm, cmdline


def measure(command: list[str], interval: float) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT)
    tree_peak, tree_peak_at, peaks = 0, 0.0, {}
    while process.poll() is None:
        total = 0
        for pid in descendants(process.pid):
            got = sample(pid)
            if got is None:
                continue
            rss, hwm, cmdline = got
            total += rss
            if hwm > peaks.get(pid, (0, ""))[0]:
                peaks[pid] = (hwm, cmdline)
        if total > tree_peak:
            tree_peak, tree_peak_at = total, time.perf_counter() - started
        time.sleep(interval)
    top = sorted(peaks.values(), reverse=True)[:8]
    return {
        "returncode": process.returncode,
        "wall_s": round(time.perf_counter() - started, 1),
        "tree_peak_rss_gb": round(tree_peak / 1e9, 2),
        "tree_peak_at_s": round(tree_peak_at, 1),
        "sum_of_process_peaks_gb": round(sum(p for p, _ in peaks.values()) / 1e9, 2),
        "processes_seen": len(peaks),
        "largest_processes": [{"peak_rss_gb": round(p / 1e9, 2), "command": c[:160]} for p, c in top],
    }


def markdown(r: dict) -> str:
    lines = [
        "| measure | value |",
        "|---|---|",
        f"| peak resident memory of the whole process tree (sampled every {r['params']['interval']} s) "
        f"| {r['tree_peak_rss_gb']} GB |",
        f"| sum of each process's own peak (upper bound) | {r['sum_of_process_peaks_gb']} GB |",
        f"| processes in the tree | {r['processes_seen']} |",
        f"| wall time | {r['wall_s']} s |",
        "",
        "| largest processes (own peak) | GB |",
        "|---|---|",
    ]
    lines += [f"| `{p['command'][:90]}` | {p['peak_rss_gb']} |" for p in r["largest_processes"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params/real-mini.yaml")
    parser.add_argument("--name", default="study-memory", help="run folder under runs/ (replaced: a fresh run)")
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args()
    shutil.rmtree(ROOT / "runs" / args.name, ignore_errors=True)
    command = ["make", "study", f"PARAMS={args.params}", f"NAME={args.name}"]
    records = measure(command, args.interval)
    if records["returncode"] != 0:  # a study that failed part-way did not hold what a whole one holds
        sys.exit(f"study_memory: `{' '.join(command)}` failed (exit {records['returncode']}); nothing written")
    result = write_results(
        "study_memory",
        {"params_file": args.params, "run": " ".join(command), "interval": args.interval},
        records,
        markdown,
        " ".join(["python bench/study_memory.py", *sys.argv[1:]]),
    )
    print(markdown(result))
    sys.exit(records["returncode"])


if __name__ == "__main__":
    main()

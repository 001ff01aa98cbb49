"""Stage 01 throughput and memory: the map on datatrove beside the floor and beside the engine it replaced, in one run.

Generates corpora of small labelled documents (default 1M and 4M, 15,625 per shard, so the larger corpus has more
shards of the same size; bin sizes log-normal over the 576 bins, ~2 % exact or re-cased copies, ~0.5 % repeated
ids), then measures on each, every run in a fresh process:

* floor: zstd decompression + orjson parsing of every line of the same shards, nothing else (1 and 2 processes);
  seconds and CPU seconds (on a shared machine the CPU time is the work, the wall time also the others' load);
* the stage on datatrove with 1 task (in its process) and 2 tasks (2 worker processes): documents/s of the map step
  (datatrove's time of the slowest map task) and of the whole stage, and the peak RSS of each task (the map's, and
  the largest of any step: a task's process peak, the stage's own process for 1 task);
* the torch.distributed engine it replaced (git revision ``--old``, checked out into a temporary folder), 1 and 2
  ranks: documents/s of the whole stage and peak RSS of rank 0 and of the helper ranks;

and checks that every run wrote the same manifest. Goals: map >= 50 % of the floor's documents/s; peak RSS per task
flat as the corpus grows (largest / smallest corpus <= 1.3).

    python bench/bench_sampling.py [--docs 250000 1000000] [--tasks 1 2] [--corpus DIR] [--old REV] [--name sampling]

Writes bench/results/<name>.json and .md (and prints the JSON). Timings on a shared machine are noisy: the load
average is recorded beside them. The published figures come from two runs: Dolma3-length documents
(``--docs 100000 --words 500 1500 --per-shard 2000 --tasks 1 --old ''``, ``sampling``) and short ones over a 4x
larger corpus (``--docs 1000000 4000000 --old '' --name sampling_scale``).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from provenance_lib import corpus, taxonomy
from provenance_lib.artifacts import sha256_file
from provenance_lib.params import LocalExecutor
from provenance_lib.process import peak_rss_mib
from provenance_lib.stages import sampling

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OLD_ENGINE = "23428e6"  # the last commit with the torch.distributed engine
VOCABULARY = [
    f"{stem}{suffix}"
    for stem in ("data", "care", "ship", "tone", "lamp", "rule", "verse", "mill")
    for suffix in ("", "s", "ed", "ing", "er", "ly", "ness", "ful")
]


# ----------------------------------------------------------------------------------------------- corpus
def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a cheap pseudo-random function of an index, so shards are generated independently."""
    with np.errstate(over="ignore"):  # wrapping is the point (numpy warns on overflowing scalars)
        z = np.asarray(x).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def generate(
    root: Path, n_docs: int, per_shard: int, words: tuple[int, int] = (12, 40), non_ascii: float = 0.0
) -> None:
    """Documents of ``words`` words with topic and format labels, shard by shard (memory does not grow); a share
    ``non_ascii`` of them with a curly apostrophe (the map's slower, exact Unicode path)."""
    tax = taxonomy.load()
    weights = np.random.default_rng(0).lognormal(0.0, 1.5, tax.n_bins) * (
        np.random.default_rng(1).random(tax.n_bins) > 0.05
    )
    cumulative = np.cumsum(weights / weights.sum())
    labels = [tax.bin_labels(b) for b in range(tax.n_bins)]
    for shard, start in enumerate(range(0, n_docs, per_shard)):
        index = np.arange(start, min(n_docs, start + per_shard), dtype=np.uint64)
        is_copy = mix(index * np.uint64(31)) % np.uint64(50) == 0
        source = np.where(is_copy, mix(index * np.uint64(17)) % np.uint64(n_docs), index)
        repeat_id = mix(index * np.uint64(13)) % np.uint64(200) == 0
        bins = np.searchsorted(cumulative, (mix(source * np.uint64(7919)) >> np.uint64(11)) / float(1 << 53))
        lengths = words[0] + mix(source) % np.uint64(words[1] - words[0] + 1)
        docs = []
        for i, src, n, b, copy, repeat in zip(
            index.tolist(), source.tolist(), lengths.tolist(), bins.tolist(), is_copy.tolist(), repeat_id.tolist()
        ):
            word_ids = mix(np.uint64(src) * np.uint64(64) + np.arange(n, dtype=np.uint64)) % np.uint64(64)
            text = f"document {src}: " + " ".join(VOCABULARY[w] for w in word_ids.tolist())
            if int(mix(np.uint64(src) * np.uint64(3))) % 1000 < non_ascii * 1000:
                text += " that\u2019s all"
            topic, fmt = labels[min(b, tax.n_bins - 1)]
            docs.append(
                {
                    "id": f"doc-{(i * 7919) % n_docs if repeat else i}",
                    "text": text.upper() if copy and i % 2 else text,
                    "source": "bench",
                    "metadata": corpus.label_metadata(topic.key, fmt.key),
                }
            )
        corpus.write_shard(root / "corpus" / f"shard-{shard:05d}.jsonl.zst", docs)


# ----------------------------------------------------------------------------------------------- the floor
def read_shards(paths: list[str]) -> tuple[int, int, float, float]:
    """Decompress and parse every line: the least any reader of these shards does. Documents, bytes, seconds and
    CPU seconds (timed here, like a map task: process start-up and imports are not in it)."""
    import orjson

    n, size, started, cpu = 0, 0, time.perf_counter(), time.process_time()
    for path in paths:
        with open(path, "rb") as raw:
            for line in io.BufferedReader(corpus._FrameReader(raw), buffer_size=1 << 16):
                orjson.loads(line)
                n, size = n + 1, size + len(line)
    return n, size, time.perf_counter() - started, time.process_time() - cpu


def floor(corpus_dir: Path, processes: int) -> dict:
    paths = [str(p) for p in corpus.list_shards(corpus_dir)]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(read_shards, [paths[i::processes] for i in range(processes)]))
    docs, size, slowest = sum(p[0] for p in parts), sum(p[1] for p in parts), max(p[2] for p in parts)
    cpu = sum(p[3] for p in parts)
    return {
        "processes": processes,
        "documents": docs,
        "mb": round(size / 1e6, 1),
        "slowest_process_s": round(slowest, 2),
        "docs_per_s": round(docs / slowest),
        "mb_per_s": round(size / 1e6 / slowest, 1),
        "cpu_us_per_document": round(1e6 * cpu / docs, 2),
    }


# ----------------------------------------------------------------------------------------------- the stage
def run_stage(corpus_dir: str, out_dir: str, tasks: int, target: int, queue) -> None:
    """The stage on datatrove in this (fresh) process; per step, the slowest task's time and the tasks' peak RSS."""
    job = sampling.SamplingJob(
        shards=tuple(sampling.corpus_shards([corpus_dir])),
        out_dir=Path(out_dir),
        seed=0,
        target_per_bin=target,
        executor=LocalExecutor(kind="local", tasks=tasks, workers=tasks),
    )
    started = time.perf_counter()
    result = sampling.sample(job, keep_work=True)
    wall = time.perf_counter() - started
    steps = {}
    for stats_dir in sorted((Path(out_dir) / ".work").glob("*/stats")):
        tasks_stats = [json.loads(p.read_text())[0] for p in stats_dir.glob("*.json")]
        steps[stats_dir.parent.name] = {
            "tasks": len(tasks_stats),
            "slowest_task_s": round(max(t["time_stats"]["total"] for t in tasks_stats), 2),
            "cpu_s": round(sum(t["stats"]["cpu_ms"]["total"] for t in tasks_stats) / 1000, 2),
            "peak_rss_mib": max(t["stats"]["peak_rss_mib"]["total"] for t in tasks_stats),
        }
    docs = result.summary["documents"]["read"]
    queue.put(
        {
            "engine": "datatrove",
            "tasks": tasks,
            "documents": docs,
            "buckets": steps["ids"]["tasks"],
            "wall_s": round(wall, 2),
            "docs_per_s": round(docs / wall),
            "map_docs_per_s": round(docs / steps["map"]["slowest_task_s"]),
            "map_docs_per_s_per_task": round(docs / tasks / steps["map"]["slowest_task_s"]),
            "stage_cpu_us_per_document": round(1e6 * sum(step["cpu_s"] for step in steps.values()) / docs, 2),
            "cpu_us_per_document_read": {name: round(1e6 * step["cpu_s"] / docs, 2) for name, step in steps.items()},
            "peak_rss_mib_map_task": steps["map"]["peak_rss_mib"],
            "peak_rss_mib_any_task": max(s["peak_rss_mib"] for s in steps.values()),
            "peak_rss_mib_stage_process": round(peak_rss_mib()),
            "steps": steps,
            "manifest_sha256": sha256_file(Path(out_dir) / sampling.MANIFEST),
        }
    )


OLD_RUN = """
import json, resource, sys, time
from pathlib import Path
from provenance_lib.stages import sampling
corpus_dir, out_dir, workers, target = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
job = sampling.SamplingJob(shards=tuple(sampling.corpus_shards([corpus_dir])), out_dir=Path(out_dir), seed=0,
                           target_per_bin=target, workers=workers)
def cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
started, cpu_before = time.perf_counter(), cpu(resource.RUSAGE_SELF)
result = sampling.sample(job)
wall = time.perf_counter() - started
docs = result.summary["documents"]["read"]
stage_cpu = cpu(resource.RUSAGE_SELF) - cpu_before + cpu(resource.RUSAGE_CHILDREN)  # helper ranks: imports included
from provenance_lib.artifacts import sha256_file
print(json.dumps({"engine": "torch.distributed (old)", "ranks": workers, "documents": docs, "wall_s": round(wall, 2),
                  "docs_per_s": round(docs / wall), "stage_cpu_us_per_document": round(1e6 * stage_cpu / docs, 2),
                  "peak_rss_mib_rank0": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                  "peak_rss_mib_helper_ranks": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
                  "manifest_sha256": sha256_file(Path(out_dir) / sampling.MANIFEST)}))
"""


def run_old_engine(old_dir: Path, corpus_dir: Path, out_dir: Path, ranks: int, target: int) -> dict:
    """The engine of revision ``old_dir`` (its own provenance_lib first on the path), in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(old_dir)}
    done = subprocess.run(
        [sys.executable, "-c", OLD_RUN, str(corpus_dir), str(out_dir), str(ranks), str(target)],
        cwd=old_dir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def checkout(revision: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "provenance_lib"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


# ----------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--per-shard", type=int, default=15_625)
    parser.add_argument(
        "--words",
        type=int,
        nargs=2,
        default=[12, 40],
        metavar=("MIN", "MAX"),
        help="words per document (Dolma3 averages ~1,000: try --docs 100000 --words 500 1500)",
    )
    parser.add_argument("--non-ascii", type=float, default=0.0, help="share of documents with a non-ASCII character")
    parser.add_argument(
        "--target",
        type=int,
        default=100,
        help="target_per_bin (100: about 5 %% of the documents are sampled; the paper: 0.45 %%)",
    )
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--old", default=OLD_ENGINE, help="git revision of the engine to compare with ('' to skip)")
    parser.add_argument(
        "--old-docs", type=int, nargs="*", default=None, help="corpus sizes the old engine runs on (default: all)"
    )
    parser.add_argument("--corpus", default=None, help="folder to generate the corpora in (kept and reused)")
    parser.add_argument("--name", default="sampling", help="bench/results/<name>.json and .md")
    args = parser.parse_args()

    report = {"cpus": os.cpu_count(), "load_avg_1m_before": os.getloadavg()[0], "corpora": []}
    with tempfile.TemporaryDirectory(prefix="bench-sampling-") as scratch:
        old_dir = checkout(args.old, Path(scratch) / "old") if args.old else None
        context = multiprocessing.get_context("spawn")
        for n_docs in args.docs:
            name = f"docs-{n_docs}-{args.per_shard}-{args.words[0]}-{args.words[1]}"
            root = Path(args.corpus or scratch) / (name + (f"-{args.non_ascii}" if args.non_ascii else ""))
            started = time.perf_counter()
            if not (root / "generated").exists():
                generate(root, n_docs, args.per_shard, tuple(args.words), args.non_ascii)
                (root / "generated").touch()
            entry = {
                "documents": n_docs,
                "shards": len(corpus.list_shards(root / "corpus")),
                "generate_s": round(time.perf_counter() - started, 1),
                "floor": [floor(root / "corpus", p) for p in sorted(set(args.tasks))],
                "runs": [],
            }
            for tasks in args.tasks:
                queue = context.Queue()
                out = f"{scratch}/out-{n_docs}-{tasks}"
                process = context.Process(target=run_stage, args=(str(root / "corpus"), out, tasks, args.target, queue))
                process.start()
                entry["runs"].append(queue.get())
                process.join()
            if old_dir and (args.old_docs is None or n_docs in args.old_docs):
                for ranks in args.tasks:
                    entry["runs"].append(
                        run_old_engine(
                            old_dir, root / "corpus", Path(scratch) / f"old-{n_docs}-{ranks}", ranks, args.target
                        )
                    )
            floors = {f["processes"]: f for f in entry["floor"]}
            ours = [r for r in entry["runs"] if r["engine"] == "datatrove"]
            entry["map_share_of_floor"] = {  # wall: as run here, shared; cpu: the work, whatever the load
                "wall": {r["tasks"]: round(r["map_docs_per_s"] / floors[r["tasks"]]["docs_per_s"], 2) for r in ours},
                "cpu": {
                    r["tasks"]: round(
                        floors[r["tasks"]]["cpu_us_per_document"] / r["cpu_us_per_document_read"]["map"], 2
                    )
                    for r in ours
                },
            }
            entry["same_manifest_for_every_run"] = len({r["manifest_sha256"] for r in entry["runs"]}) == 1
            report["corpora"].append(entry)
            print(json.dumps(entry), file=sys.stderr, flush=True)  # progress: one corpus at a time
    if len(report["corpora"]) > 1:
        small, large = report["corpora"][0], report["corpora"][-1]
        report["peak_rss_ratio_largest_to_smallest_corpus"] = {
            r["tasks"]: round(r["peak_rss_mib_any_task"] / s["peak_rss_mib_any_task"], 2)
            for s, r in zip(small["runs"], large["runs"])
            if r["engine"] == "datatrove"
        }
    report["load_avg_1m_after"] = os.getloadavg()[0]
    settings = {k: v for k, v in vars(args).items() if k != "name"}
    result = write_results(
        args.name, settings, report, markdown, " ".join(["python bench/bench_sampling.py", *map(_quoted, sys.argv[1:])])
    )
    print(json.dumps(result, indent=2))


def _quoted(arg: str) -> str:
    return arg if arg else "''"


def markdown(report: dict) -> str:
    lines = [
        "| documents | words | engine | tasks | map docs/s | map CPU µs/doc | floor CPU µs/doc | map / floor "
        "(CPU) | stage CPU µs/doc | peak RSS MiB (map task / any task) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    words = "–".join(map(str, report["params"]["words"]))
    for entry in report["corpora"]:
        floors = {f["processes"]: f for f in entry["floor"]}
        for r in entry["runs"]:
            if r["engine"] != "datatrove":
                lines.append(
                    f"| {entry['documents']:,} | {words} | {r['engine']} | {r.get('ranks', '')} | | | | | "
                    f"{r['stage_cpu_us_per_document']} | {r['peak_rss_mib_rank0']} (rank 0) |"
                )
                continue
            lines.append(
                f"| {entry['documents']:,} | {words} | datatrove | {r['tasks']} | {r['map_docs_per_s']:,} | "
                f"{r['cpu_us_per_document_read']['map']} | {floors[r['tasks']]['cpu_us_per_document']} | "
                f"{entry['map_share_of_floor']['cpu'][r['tasks']]} | {r['stage_cpu_us_per_document']} | "
                f"{r['peak_rss_mib_map_task']} / {r['peak_rss_mib_any_task']} |"
            )
    if "peak_rss_ratio_largest_to_smallest_corpus" in report:
        ratios = ", ".join(
            f"{tasks} task(s): {v}" for tasks, v in report["peak_rss_ratio_largest_to_smallest_corpus"].items()
        )
        lines += ["", f"Peak RSS of any task, largest corpus over smallest: {ratios} (flat: at most 1.3)."]
    lines += [
        "",
        "Same manifest for every run of a corpus: "
        + ", ".join(
            f"{e['documents']:,}: {'yes' if e['same_manifest_for_every_run'] else 'NO'}" for e in report["corpora"]
        )
        + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

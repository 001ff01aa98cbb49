"""Stage 01 throughput: documents per second through provenance_lib.sampling, in one process and on local ranks.

Generates a corpus of small labelled documents (default 1,000,000 in 64 shards; bin sizes log-normal over the 576
bins, a few exact and re-cased duplicates and repeated ids), then runs the whole stage (index, select, fetch the
working set, write the manifest) once per worker count, each in a fresh process so its peak RSS is its own, and
checks that every worker count wrote the same manifest.

    python bench/bench_sampling.py [--docs N] [--workers 1 2] [--corpus DIR]

Prints one JSON object. Timings on a shared machine are noisy: note the load beside them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from provenance_lib import corpus, taxonomy
from provenance_lib.stages import sampling
from provenance_lib.artifacts import sha256_file

VOCABULARY = [f"{stem}{suffix}" for stem in ("data", "care", "ship", "tone", "lamp", "rule", "verse", "mill")
              for suffix in ("", "s", "ed", "ing", "er", "ly", "ness", "ful")]


def generate(root: Path, n_docs: int, n_shards: int, seed: int = 0) -> None:
    """Small documents (12-40 words) with topic and format labels; about 2 % exact or re-cased duplicates and
    0.5 % repeated ids, spread over the shards so that de-duplication has to cross them."""
    rng = np.random.default_rng(seed)
    tax = taxonomy.load()
    weights = rng.lognormal(0.0, 1.5, tax.n_bins) * (rng.random(tax.n_bins) > 0.05)
    bins = rng.choice(tax.n_bins, size=n_docs, p=weights / weights.sum())
    lengths = rng.integers(12, 41, size=n_docs)
    word_ids = rng.integers(0, len(VOCABULARY), size=int(lengths.sum()))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    copy_of = np.where(rng.random(n_docs) < 0.02, rng.integers(0, n_docs, n_docs), -1)
    repeat_id = rng.random(n_docs) < 0.005
    labels = [tax.bin_labels(b) for b in range(tax.n_bins)]
    per_shard = -(-n_docs // n_shards)
    for shard in range(n_shards):
        docs = []
        for i in range(shard * per_shard, min(n_docs, (shard + 1) * per_shard)):
            source = copy_of[i] if copy_of[i] >= 0 else i
            text = f"document {source}: " + " ".join(VOCABULARY[w] for w in word_ids[starts[source]:starts[source + 1]])
            if copy_of[i] >= 0 and i % 2:
                text = text.upper()
            topic, fmt = labels[bins[source]]
            doc_id = f"doc-{(i * 7919) % n_docs if repeat_id[i] else i}"
            docs.append({"id": doc_id, "text": text, "source": "bench",
                         "metadata": corpus.label_metadata(topic.key, fmt.key)})
        corpus.write_shard(root / "corpus" / f"shard-{shard:04d}.jsonl.zst", docs)


def measure(corpus_dir: str, out_dir: str, workers: int, target: int, queue) -> None:
    """One run of the stage in this (fresh) process; reports wall time and peak RSS of it and its ranks."""
    job = sampling.SamplingJob(shards=tuple(sampling.corpus_shards([corpus_dir])), out_dir=Path(out_dir), seed=0,
                               target_per_bin=target, workers=workers)
    started = time.perf_counter()
    result = sampling.sample(job)
    wall = time.perf_counter() - started
    rank0, helpers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    queue.put({
        "workers": workers, "wall_s": round(wall, 2), "documents": result.summary["documents"]["read"],
        "docs_per_s": round(result.summary["documents"]["read"] / wall),
        # CPU seconds (imports included): on a shared machine the busiest rank's CPU time bounds the wall time
        # the run would take on idle cores, which wall time under load cannot show
        "cpu_s_rank0": round(rank0.ru_utime + rank0.ru_stime, 2),
        "cpu_s_helper_ranks": round(helpers.ru_utime + helpers.ru_stime, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_rss_helper_ranks_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "manifest_sha256": sha256_file(Path(out_dir) / sampling.MANIFEST),
        "summary": {k: v for k, v in result.summary["documents"].items() if k != "labels"},
        "sampled_tokens": result.summary["tokens"]["sampled"],
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--target", type=int, default=100,
                        help="target_per_bin (100: about 5 %% of the documents are sampled; the paper: 0.45 %%)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--corpus", default=None, help="folder to generate the corpus in (kept and reused)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-sampling-") as scratch:
        root = Path(args.corpus or scratch)
        marker = root / f"generated-{args.docs}-{args.shards}"
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        if not marker.exists():
            generate(root, args.docs, args.shards)
            marker.touch()
        generated_s = time.perf_counter() - started
        context = multiprocessing.get_context("spawn")
        runs = []
        for workers in args.workers:
            queue = context.Queue()
            process = context.Process(target=measure, args=(str(root / "corpus"), f"{scratch}/out-{workers}",
                                                             workers, args.target, queue))
            process.start()
            runs.append(queue.get())
            process.join()
        by_workers = {run["workers"]: run for run in runs}
        report = {
            "documents": args.docs, "shards": args.shards, "target_per_bin": args.target,
            "generate_s": round(generated_s, 1), "cpus": os.cpu_count(),
            "load_avg_1m": {"before": load_before, "after": os.getloadavg()[0]},
            "runs": runs,
            "same_manifest_for_all_worker_counts": len({run["manifest_sha256"] for run in runs}) == 1,
        }
        if 1 in by_workers:
            report["speedup_wall"] = {w: round(by_workers[1]["wall_s"] / run["wall_s"], 2)
                                      for w, run in by_workers.items()}
            busiest = {w: max(run["cpu_s_rank0"], run["cpu_s_helper_ranks"] / max(w - 1, 1))  # helpers share evenly
                       for w, run in by_workers.items()}
            report["speedup_bound_idle_cores"] = {w: round(by_workers[1]["cpu_s_rank0"] / busiest[w], 2)
                                                  for w in by_workers}
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""The counterfactual ground truth of the known-answers validation: what removing bins from training really does.

For each planted world it names (``retraining.seeds``), ``validate`` runs these retrains of the world's base model
(``worlds.testbed.retrain``: same initialization and batches, the removed bins' documents without loss, up to the
attributed step, then the query model as the world makes it), and records each benchmark's accuracy and mean
gold-answer log-likelihood on its eval items:

* ``full``: nothing removed (reproduces the world's attributed model; every effect is measured against it);
* ``leave_one_out``: each planted bin, and ``other_bins`` other non-empty bins drawn one per size stratum (sorted by
  their document count, cut into equal strata), seeded;
* ``subset``: ``subsets`` random subsets, each keeping a seeded ``keep`` share of the non-empty bins (the rest
  removed): the bin-level datamodel the LDS correlates readings with;
* ``seed``: the full data under ``noise_seeds`` (another initialization and batch order): the noise ceiling.

A retrain is a cached job, like a stage: ``runs/<validation>/retrains/<world>/<label>.json`` holds its result and
the key it was made under (its inputs: the world's fingerprint, the removed bins, the seed, the step; and the code:
the world's builder code and the retrain code); a job whose file holds the same key is not run again, so a killed
``validate`` resumes where it stopped; with ``--trust-code`` a job whose inputs match is kept when only the code
changed, and its file says so.
Jobs run one after another in this process (the testbed trains on one thread; no pool).
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import read_json, sha256_json, write_json
from .codebase import code_sha256
from .params import StudyParams
from .params.validation import Retraining
from .worlds.testbed.retrain import attributed_step, retrain, world_documents

RETRAINS = "retrains"
RETRAIN_MODULE = "provenance_lib.worlds.testbed.retrain"


@dataclass(frozen=True)
class Job:
    label: str  # its file name: full, bin-0123, subset-07, seed-101
    kind: str  # full | leave_one_out | subset | seed
    removed: tuple[int, ...]  # bins whose documents get no loss
    seed: int | None = None  # training seed; None: the world's


def plan_jobs(bins: np.ndarray, planted: list[int], settings: Retraining, world_seed: int) -> list[Job]:
    """The retrains of one world: ``bins`` is every corpus document's bin, ``planted`` every planted bin."""
    sizes = np.bincount(bins, minlength=int(bins.max()) + 1)
    nonempty = [int(b) for b in np.flatnonzero(sizes)]
    rng = random.Random(f"{world_seed}:retrain:{settings.seed}")
    others = sorted((b for b in nonempty if b not in set(planted)), key=lambda b: (sizes[b], b))
    strata = np.array_split(np.asarray(others), min(settings.other_bins, len(others)))
    sampled = sorted(int(rng.choice(list(stratum))) for stratum in strata if len(stratum))
    jobs = [Job("full", "full", ())]
    jobs += [Job(f"bin-{b:04d}", "leave_one_out", (b,)) for b in sorted(planted) + sampled]
    kept = round(settings.keep * len(nonempty))
    for i in range(settings.subsets):
        keep = set(rng.sample(nonempty, kept))
        jobs.append(Job(f"subset-{i:02d}", "subset", tuple(b for b in nonempty if b not in keep)))
    jobs += [Job(f"seed-{s}", "seed", (), s) for s in settings.noise_seeds]
    return jobs


def job_inputs(world_dir: Path, job: Job, step: int) -> str:
    """What a retrain reads: the world (its fingerprint), the removed bins, the seed, the step."""
    world = read_json(Path(world_dir) / "world.json")
    return sha256_json(dict(world=world["fingerprint"], removed=list(job.removed), seed=job.seed, step=step))


def job_key(world_dir: Path, job: Job, step: int) -> str:
    """What decides a retrain's result: its inputs, the code that built the world and the retrain code."""
    world = read_json(Path(world_dir) / "world.json")
    return sha256_json(
        dict(
            inputs=job_inputs(world_dir, job, step),
            world_code=world.get("code_sha256"),
            retrain_code=code_sha256([RETRAIN_MODULE]),
        )
    )


def run_world(
    world_dir: Path, out_dir: Path, study: StudyParams, settings: Retraining, trust_code: bool = False
) -> pd.DataFrame:
    """Every retrain of one world (cached ones reused), as the long table ``effects`` reads. ``trust_code``: also
    reuse a cached retrain whose inputs match when only the code differs (as the runner's ``--trust-code``; the
    record says so)."""
    world_dir, out_dir = Path(world_dir), Path(out_dir)
    truth = read_json(world_dir / "ground_truth.json")["benchmarks"]
    _, bins = world_documents(world_dir)
    jobs = plan_jobs(bins, [b for t in truth.values() for b in t["bins"]], settings, study.seed)
    step = attributed_step(world_dir)
    results = []
    for n, job in enumerate(jobs, start=1):
        path, key = out_dir / f"{job.label}.json", job_key(world_dir, job, step)
        inputs = job_inputs(world_dir, job, step)
        cached = read_json(path) if path.is_file() else None
        if cached is not None and cached.get("key") != key and trust_code and cached.get("inputs") == inputs:
            if not cached.get("trusted"):
                cached["trusted"] = "code changed, inputs unchanged: reused (--trust-code)"
                write_json(path, cached)
        elif cached is None or cached.get("key") != key:
            started = time.time()
            result = retrain(world_dir, study, list(job.removed), job.seed)
            cached = dict(key=key, inputs=inputs, job=asdict(job), result=result)
            write_json(path, cached)
            print(f"[retrain] {out_dir.name} {job.label} ({n}/{len(jobs)}): {time.time() - started:.0f} s", flush=True)
        results.append(cached)
    return job_table(results)


def job_table(results: list[dict]) -> pd.DataFrame:
    """One row per job x model (base, query) x benchmark: acc, gold_loglik, and the drop against the full-data
    retrain (positive: removing the bins lowered it)."""
    rows = [
        dict(
            job=r["job"]["label"],
            kind=r["job"]["kind"],
            removed=list(r["job"]["removed"]),
            train_seed=r["job"]["seed"],
            model=model,
            benchmark=benchmark,
            seconds=r["result"]["seconds"],
            removed_documents=r["result"]["removed_documents"],
            **values,
        )
        for r in results
        for model in ("base", "query")
        for benchmark, values in r["result"][model].items()
    ]
    table = pd.DataFrame(rows)
    full = table[table["kind"] == "full"].set_index(["model", "benchmark"])
    for value in ("acc", "gold_loglik"):
        reference = full[value].reindex(pd.MultiIndex.from_frame(table[["model", "benchmark"]])).to_numpy()
        table[f"{value}_drop"] = reference - table[value].to_numpy()
    return table

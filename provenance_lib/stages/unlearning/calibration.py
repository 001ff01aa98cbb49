"""How often the paired test says "targeted damages more" when it does not: its false-positive rate, simulated.

A simulated study has the design of a stage 05 run (``topics`` x ``seeds`` pairs on one targeted benchmark, whose
items may also be the stop rule's) under an exchangeable null: the targeted set is one more random set of the pool,
so targeted and random runs differ by chance alone. Each run's damage grows as speed x steps, with
log speed = log ``speed`` + a set effect (shared by every run that forgets the same set: with ``targeted: top`` a
topic's seeds all forget one targeted set) + run noise; a correct item of the base model fails once the damage
passes the item's own uniform threshold (drawn per run). With a stop rule, the targeted run stops at the first check
(every ``check_every`` steps) where the stop items' accuracy falls below ``stop_ratio`` x the base model's, on the
scored items themselves (``stop: scored``) or on held-out ones (``stop: held_out``); its partner replays its steps.
gamma is the scored items' accuracy lost. The statistics are the stage's own (``paired.pair_table``,
``paired.paired_statistics``), so the simulation calibrates the code the study runs, clusters included.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from . import paired
from .data import seeded_rng

BENCHMARK = "MMLU STEM"  # targeted and a stop benchmark: where selecting the stop on scored items bites


@dataclass(frozen=True)
class NullDesign:
    """One simulated study design under the exchangeable null (defaults: the paper's 24 topics x 3 seeds)."""

    name: str
    targeted: Literal["top", "split"] = "top"
    stop: Literal["scored", "held_out", "none"] = "held_out"
    topics: int = 24
    seeds: int = 3
    scored_items: int = 400  # scored items of the targeted benchmark
    stop_items: int = 100  # held-out stop items (``stop: held_out``)
    base_accuracy: float = 0.6
    speed: float = 4e-5  # median damage per step: a run crosses the stop threshold after ~2,500 steps
    set_sd: float = 0.3  # sd of log speed between forget sets
    run_sd: float = 0.3  # sd of log speed between runs of one set (training noise)
    stop_ratio: float = 0.9
    check_every: int = 50
    max_steps: int = 5000


def _run(
    rng, speed: float, steps: int | None, design: NullDesign, base_scored: np.ndarray, base_stop: np.ndarray
) -> tuple[float, int]:
    """(gamma on the scored items, steps) of one run: ``steps`` None = a targeted run under the stop rule."""
    u_scored = rng.random(len(base_scored))
    if steps is None:
        steps = design.max_steps
        if design.stop != "none":
            correct_u = np.sort(
                u_scored[base_scored] if design.stop == "scored" else rng.random(len(base_stop))[base_stop]
            )
            needed = math.floor((1 - design.stop_ratio) * len(correct_u)) + 1  # failures that cross the threshold
            if needed <= len(correct_u):
                crossing = correct_u[needed - 1] / speed
                steps = min(math.ceil(crossing / design.check_every) * design.check_every, design.max_steps)
    failed = base_scored & (u_scored < speed * steps)
    return float(failed.sum() / len(base_scored)), steps


def simulate_study(design: NullDesign, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, ids) of one simulated study, in the tables ``paired.pair_table`` reads."""
    base_scored = rng.random(design.scored_items) < design.base_accuracy
    base_stop = rng.random(design.stop_items) < design.base_accuracy
    rows, ids = [], []
    for topic in range(design.topics):
        shared = rng.normal(0, design.set_sd)  # the topic's one targeted set under ``top``
        for seed in range(design.seeds):
            targeted_effect = shared if design.targeted == "top" else rng.normal(0, design.set_sd)
            targeted_name = f"t{topic}" if design.targeted == "top" else f"t{topic}-s{seed}"
            steps = None
            for kind, effect, name in (
                ("targeted", targeted_effect, targeted_name),
                ("random", rng.normal(0, design.set_sd), f"r{topic}-s{seed}"),
            ):
                speed = design.speed * math.exp(effect + rng.normal(0, design.run_sd))
                gamma, steps = _run(rng, speed, steps, design, base_scored, base_stop)
                rows.append(
                    dict(
                        set=f"{name}-{kind}-s{seed}",
                        kind=kind,
                        construction="bin",
                        benchmark=BENCHMARK,
                        topic=f"topic{topic}",
                        seed=seed,
                        evaluated=BENCHMARK,
                        gamma_acc=gamma,
                        gamma_gold_loglik=gamma,
                    )
                )
                ids.append((f"{name}-{kind}-s{seed}", name))
    return pd.DataFrame(rows), pd.DataFrame(ids, columns=["set", "id"])


TESTS = {
    "wilcoxon_p": "clustered Wilcoxon (the package's headline)",
    "paper_method_wilcoxon_p": "pairwise Wilcoxon (the paper's method)",
    "paired_t_p": "paired t on topic means",
}


def false_positive_rates(design: NullDesign, replicates: int, level: float, seed: int) -> dict:
    """Each test's rejection rate at ``level`` over ``replicates`` simulated null studies, with its 95%
    Clopper-Pearson Monte-Carlo interval, and the mean paired difference (the null's bias, if any)."""
    rng = seeded_rng("calibration", design.name, seed)
    p_values = {test: [] for test in TESTS}
    mean_d = []
    for _ in range(replicates):
        runs, ids = simulate_study(design, rng)
        pairs = paired.pair_table(runs, ids)
        row = paired.paired_statistics(pairs, resamples=10, confidence=0.95, seed=seed).query("measure == 'acc'")
        for test in TESTS:
            p_values[test].append(float(row[test].iloc[0]))
        mean_d.append(float(pairs.loc[pairs["measure"] == "acc", "d"].mean()))
    result = {
        "design": asdict(design),
        "replicates": replicates,
        "level": level,
        "mean_d": float(np.mean(mean_d)),
        "mean_d_se": float(np.std(mean_d, ddof=1) / math.sqrt(replicates)),
    }
    for test, values in p_values.items():
        rejected = int(np.sum(np.nan_to_num(np.asarray(values), nan=1.0) < level))
        low, high = clopper_pearson(rejected, replicates)
        result[test] = {
            "test": TESTS[test],
            "rejected": rejected,
            "rate": rejected / replicates,
            "mc_low": low,
            "mc_high": high,
            "holds": bool(low <= level),
        }
    return result


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of a rate k / n."""
    tail = (1 - confidence) / 2
    low = 0.0 if k == 0 else float(stats.beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - tail, k + 1, n - k))
    return low, high

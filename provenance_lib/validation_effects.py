"""Known answers against the counterfactual: does a reading rank bins by what removing them really does?

Reads the retrains ``validate`` made (``counterfactual``: ``<validation>/retrains/<world>/<job>.json``) and the
same worlds' stage 03 z (every stage 02 setting and reading), and tabulates, on the query model's mean gold-answer
log-likelihood of each benchmark's eval items (a drop: the full-data retrain's minus the job's, positive when
removing the bins hurt):

* ``leave_one_out.csv`` — per world, left-out bin, benchmark and model (base, query): the drop in log-likelihood
  and accuracy, and the bin's role for that benchmark (its own planted bin, another benchmark's, an ordinary bin);
* ``lds.csv`` — per world, setting, reading and benchmark: the bin-level linear datamodeling score, the Spearman
  correlation over the random subsets between the reading's predicted effect of removing a subset (the sum of the
  removed scored bins' z: the bin is the unit, as a bin-level datamodel) and the measured drop, with a percentile
  bootstrap interval over subsets; and ``lobo_spearman``, the same over the left-out single bins;
* ``noise.csv`` — per world and benchmark: the spread of the full-data log-likelihood over training seeds (the
  world's and ``noise_seeds``), the spread of the subsets' drops, and the noise ceiling they allow,
  sqrt(1 - seed variance / drop variance) (the Spearman a perfect predictor could reach if a drop carried the
  seeds' noise; a seed changes the initialization and the batch order, so this bounds the noise of a drop measured
  against the same seed's full-data retrain from above).

``summarize`` condenses LDS and ceiling per setting and reading (medians over worlds x benchmarks, the LDS median's
interval from one joint bootstrap of the subsets).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .artifacts import read_json, write_text
from .counterfactual import RETRAINS, job_table
from .stats import pair_auc

LOBO, LDS, NOISE = "leave_one_out.csv", "lds.csv", "noise.csv"
MODEL = "query"  # the model the world evaluates and whose gradients stage 02 takes for the queries
LEVEL = 0.95


def load_jobs(validation_dir: Path) -> pd.DataFrame:
    """Every recorded retrain, one row per world x job x model x benchmark (``counterfactual.job_table``)."""
    frames = []
    for world_dir in sorted((Path(validation_dir) / RETRAINS).glob("*")):
        results = [read_json(path) for path in sorted(world_dir.glob("*.json"))]
        if any(r["job"]["kind"] == "full" for r in results):
            frames.append(job_table(results).assign(world=world_dir.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def compute(
    validation_dir: Path,
    out_dir: Path,
    runs: list[dict],
    bins: dict[str, pd.DataFrame],
    truths: dict[str, dict],
    bootstrap: int,
    seed: int,
) -> dict[str, pd.DataFrame]:
    """The three tables (none when nothing was retrained), written into ``out_dir``."""
    jobs = load_jobs(validation_dir)
    if not len(jobs):
        return {}
    lobo = leave_one_out(jobs, {r["name"]: truths[r["run"]] for r in runs})
    lds, replicates = datamodel_scores(
        jobs, [r for r in runs if r["name"] in set(jobs["world"])], bins, bootstrap, seed
    )
    noise = noise_ceiling(jobs)
    worlds = {r["name"]: r["run_dir"] / "world" for r in runs}
    noise["full_matches_world"] = [
        full_matches_world(jobs, world, benchmark, worlds[world])
        for world, benchmark in zip(noise["world"], noise["benchmark"])
    ]
    for name, table in ((LOBO, lobo), (LDS, lds), (NOISE, noise)):
        write_text(Path(out_dir) / name, table.to_csv(index=False))
    return dict(lobo=lobo, lds=lds, noise=noise, replicates=replicates)


def leave_one_out(jobs: pd.DataFrame, truths: dict[str, dict]) -> pd.DataFrame:
    rows = jobs[jobs["kind"] == "leave_one_out"].copy()
    rows["bin"] = rows["removed"].map(lambda removed: int(removed[0]))

    def role(row) -> str:
        truth = truths[row["world"]]
        if row["bin"] in truth[row["benchmark"]]["bins"]:
            return "own planted"
        return "other planted" if any(row["bin"] in t["bins"] for t in truth.values()) else "ordinary"

    rows["role"] = rows.apply(role, axis=1)
    return rows[["world", "bin", "role", "model", "benchmark", "gold_loglik_drop", "acc_drop", "removed_documents"]]


def lobo_summary(lobo: pd.DataFrame, model: str = MODEL) -> pd.DataFrame:
    """Per world and benchmark: the mean drop when one of its own planted bins, another benchmark's planted bin or
    an ordinary bin is left out, and how often an own planted bin's drop exceeds an ordinary bin's and another
    benchmark's planted bin's (pair AUCs; the other planted bins are the size-matched control: same sizes, same
    planting, other content)."""
    out = []
    for (world, benchmark), block in lobo[lobo["model"] == model].groupby(["world", "benchmark"], sort=False):
        drop = {
            role: block.loc[block["role"] == role, "gold_loglik_drop"].to_numpy()
            for role in ("own planted", "other planted", "ordinary")
        }
        out.append(
            dict(
                world=world,
                benchmark=benchmark,
                **{
                    f"{role.replace(' ', '_')}_drop": float(np.mean(v)) if len(v) else np.nan
                    for role, v in drop.items()
                },
                own_vs_ordinary_auc=pair_auc(drop["own planted"], drop["ordinary"]),
                own_vs_other_planted_auc=pair_auc(drop["own planted"], drop["other planted"]),
            )
        )
    return pd.DataFrame(out)


def datamodel_scores(
    jobs: pd.DataFrame, runs: list[dict], bins: dict[str, pd.DataFrame], bootstrap: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LDS per (world, setting, variant, benchmark) with its interval, LOBO Spearman, and the bootstrap
    replicates of the LDS (the same subset draws for every cell of a world, so medians can be bootstrapped)."""
    out, replicates = [], []
    query = jobs[jobs["model"] == MODEL]
    for world, block in query.groupby("world", sort=False):
        subsets = block[block["kind"] == "subset"]
        single = block[block["kind"] == "leave_one_out"]
        n_subsets = subsets["job"].nunique()
        draws = np.random.default_rng([seed, len(world)]).integers(0, n_subsets, size=(bootstrap, n_subsets))
        for run in (r for r in runs if r["name"] == world):
            table = bins[run["run"]]
            for (variant, benchmark), t in table.groupby(["variant", "benchmark"], sort=False):
                z = dict(zip(t["bin"].astype(int), t["z"]))
                mine = subsets[subsets["benchmark"] == benchmark]
                predicted = np.array([sum(z.get(int(b), 0.0) for b in removed) for removed in mine["removed"]])
                measured = mine["gold_loglik_drop"].to_numpy()
                reps = np.array([spearman(predicted[d], measured[d]) for d in draws])
                low, high = (
                    np.nanpercentile(reps, [50 * (1 - LEVEL), 100 - 50 * (1 - LEVEL)])
                    if np.isfinite(reps).any()
                    else (np.nan, np.nan)
                )
                ones = single[single["benchmark"] == benchmark]
                one_z = np.array([z.get(int(removed[0]), np.nan) for removed in ones["removed"]], dtype=float)
                scored = np.isfinite(one_z)
                out.append(
                    dict(
                        world=world,
                        setting=run["setting"],
                        variant=variant,
                        benchmark=benchmark,
                        subsets=n_subsets,
                        lds=spearman(predicted, measured),
                        lds_low=low,
                        lds_high=high,
                        lobo_bins=int(scored.sum()),
                        lobo_spearman=spearman(one_z[scored], ones["gold_loglik_drop"].to_numpy()[scored]),
                    )
                )
                replicates.append(
                    pd.DataFrame(
                        dict(
                            world=world,
                            setting=run["setting"],
                            variant=variant,
                            benchmark=benchmark,
                            replicate=np.arange(bootstrap),
                            lds=reps,
                        )
                    )
                )
    return pd.DataFrame(out), (pd.concat(replicates, ignore_index=True) if replicates else pd.DataFrame())


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    return float(spearmanr(x, y).statistic)


def full_matches_world(jobs: pd.DataFrame, world: str, benchmark: str, world_dir: Path) -> bool | None:
    """Whether the full-data retrain's query model scores the benchmark's eval items as the world's attributed query
    model did (its accuracy in world.json): the retrain reproduces the model it stands in for."""
    info = Path(world_dir) / "world.json"
    if not info.is_file():
        return None
    recorded = read_json(info).get("extra", {}).get("accuracy", {}).get("query", {}).get(benchmark)
    if recorded is None:
        return None
    full = jobs[
        (jobs["world"] == world)
        & (jobs["kind"] == "full")
        & (jobs["model"] == MODEL)
        & (jobs["benchmark"] == benchmark)
    ]["acc"]
    return bool(len(full) and round(float(full.iloc[0]), 4) == recorded)


def noise_ceiling(jobs: pd.DataFrame) -> pd.DataFrame:
    query = jobs[jobs["model"] == MODEL]
    out = []
    for (world, benchmark), block in query.groupby(["world", "benchmark"], sort=False):
        seeds = block.loc[block["kind"].isin(["full", "seed"]), "gold_loglik"].to_numpy()
        drops = block.loc[block["kind"] == "subset", "gold_loglik_drop"].to_numpy()
        seed_var = float(np.var(seeds, ddof=1)) if len(seeds) > 1 else np.nan
        drop_var = float(np.var(drops, ddof=1)) if len(drops) > 1 else np.nan
        ceiling = float(np.sqrt(max(0.0, 1 - seed_var / drop_var))) if drop_var and np.isfinite(seed_var) else np.nan
        out.append(
            dict(
                world=world,
                benchmark=benchmark,
                training_seeds=len(seeds),
                seed_sd=np.sqrt(seed_var),
                subset_drop_sd=np.sqrt(drop_var),
                subset_drop_mean=float(np.mean(drops)) if len(drops) else np.nan,
                noise_ceiling=ceiling,
            )
        )
    return pd.DataFrame(out)


def summarize(effects: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per setting and variant: median LDS over worlds x benchmarks with the joint-bootstrap interval of that
    median, the median LOBO Spearman, and the median noise ceiling."""
    if not effects or not len(effects["lds"]):
        return pd.DataFrame(columns=["setting", "variant"])
    lds, replicates, noise = effects["lds"], effects["replicates"], effects["noise"]
    medians = replicates.groupby(["setting", "variant", "replicate"])["lds"].median().reset_index()
    interval = medians.groupby(["setting", "variant"])["lds"].quantile([(1 - LEVEL) / 2, (1 + LEVEL) / 2]).unstack()
    interval.columns = ["lds_ci_low", "lds_ci_high"]
    table = (
        lds.groupby(["setting", "variant"], sort=False)
        .agg(
            lds_cells=("lds", "size"),
            lds_median=("lds", "median"),
            lobo_spearman_median=("lobo_spearman", "median"),
        )
        .join(interval)
        .reset_index()
    )
    return table.assign(noise_ceiling=noise["noise_ceiling"].median() if len(noise) else np.nan)


def chosen(summary: pd.DataFrame) -> pd.Series:
    """The rule that picks the default reading and stage 02 setting from the table, fixed before any result was
    seen: among the records measured on as many sham cells as the most-measured record (a setting run on fewer
    worlds cannot show "at most 1 of 12") whose sham worlds put a sham bin first in at most 1 of 12 cells, the
    highest LDS median (ties: more planted bins ranked 1st, then the earlier record); if no record is that clean,
    the fewest sham bins first among the fully measured, then the highest LDS median. A record without an LDS ranks
    below every record with one."""
    sham = summary["sham_first_share"].fillna(np.inf)
    lds = summary.get("lds_median", pd.Series(np.nan, index=summary.index)).fillna(-np.inf)
    complete = summary["sham_cells"].fillna(0) >= summary["sham_cells"].max()
    clean = complete & (sham <= 1 / 12 + 1e-12)
    key = pd.DataFrame(
        dict(complete=complete, clean=clean, sham=-sham.where(~clean, 0.0), lds=lds, rank1=summary["rank1"].fillna(-1))
    )
    best = key.sort_values(["complete", "clean", "sham", "lds", "rank1"], ascending=False, kind="stable").index[0]
    return pd.Series(summary.index == best, index=summary.index)

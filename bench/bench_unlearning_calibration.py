"""Stage 05's causal test, calibrated: its false-positive rate under an exchangeable null, and its known answer.

    python bench/bench_unlearning_calibration.py [--replicates 1000] [--real 10] [--runs-dir runs/calibration]

Writes ``bench/results/unlearning_calibration.json`` (commit, params, machine, every record) and
``bench/results/unlearning_calibration.md`` (the tables, rendered from the JSON by this script).

1. **Simulated null studies** (``stages.unlearning.calibration``): ``--replicates`` studies per design, the targeted
   set one more random set, scored by the stage's own statistics. The false-positive rate at 5% of the clustered
   Wilcoxon (the package's headline), of the paper's pairwise Wilcoxon and of the paired t on topic means, with
   Clopper-Pearson Monte-Carlo intervals: the paper's design (one targeted set per topic) with the stop rule on
   the scored items (as the paper ran it) and on held-out items (the package's default), without a stop rule, the
   split design, and the testbed's design.
2. **The known answer** on the testbed through the runner (stages 01 -> 02 -> 03 -> 05, the testbed params: auto
   topics, split targeted sets, bin construction): the planted world (SocialIQA's bins planted) and the control
   world (nothing planted), SocialIQA's gold-answer log-likelihood and accuracy.
3. **Real null replicates** (``--real``) on the planted world: stage 05 again with each bin's document scores
   shuffled within the bin (seeded), so every targeted set is a uniform draw of the same planted bins and targeted
   and random runs are exchangeable; the simulation's assumptions (symmetric, independent pairs) checked on real
   runs: the rejection rate, the mean paired difference and the correlation of the differences within a topic.
   Real runs cost minutes each replicate on a CPU, so there are fewer of them than simulated studies.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from provenance_lib import params, runs
from provenance_lib.artifacts import read_json, write_json, write_text
from provenance_lib.record import git_state, host_info, now
from provenance_lib.stages import unlearning
from provenance_lib.stages.gradients.scores import GradientScores, doc_score_columns
from provenance_lib.stages.unlearning.calibration import NullDesign, clopper_pearson, false_positive_rates
from provenance_lib.stats import zscore
from provenance_lib.threads import set_threads
from provenance_lib.worlds import load_world

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LEVEL = 0.05
PROTOCOL = [
    "stages=[01_sampling,02_gradients,03_binning,05_unlearning]",  # 04 is not what stage 05 reads
    "gradients.exactness.enabled=false",  # stage 02's projected-vs-exact check: not what 05 reads
    "unlearning.forget.constructions=[bin]",
    "unlearning.forget.global_control=false",
    "threads=1",
]
WORLDS = {"planted": "world.planted_token_share=0.01", "control": "world.planted_token_share=0.0"}
PAPER = NullDesign("paper design, stop on held-out items (the package's)")
DESIGNS = [
    replace(PAPER, name="paper design, stop on the scored items (as the paper ran it)", stop="scored"),
    PAPER,
    replace(PAPER, name="paper design, no stop rule", stop="none"),
    replace(PAPER, name="split targeted sets, stop on held-out items", targeted="split"),
    replace(
        PAPER,
        name="testbed design (split, 3 topics x 4 seeds, no stop rule)",
        targeted="split",
        stop="none",
        topics=3,
        seeds=4,
    ),
]


# ----------------------------------------------------------------------------------------------- the parts
def simulate(replicates: int, seed: int) -> list[dict]:
    return [false_positive_rates(design, replicates, LEVEL, seed) for design in DESIGNS]


def known_answer(runs_dir: Path) -> dict:
    """The planted and the control world's stage 05 on SocialIQA through the runner (stage 02's attribution), and
    the planted world's with the oracle attribution (the world's carrier documents scored 1)."""
    out = {}
    for world, share in WORLDS.items():
        started = time.perf_counter()
        run_dir = runs.run_study(
            ROOT / "params" / "testbed.yaml",
            [share, *PROTOCOL],
            name=f"unlearning-{world}",
            runs_dir=runs_dir,
            notebooks_dir=ROOT / "notebooks",
        )
        result = unlearning.load_result(run_dir / "05_unlearning")
        out[world] = {**socialiqa(result), "run": str(run_dir), "wall_s": round(time.perf_counter() - started, 1)}
    started = time.perf_counter()
    run_dir = Path(out["planted"]["run"])
    scores, reading = oracle(run_dir)
    result = unlearn_again(run_dir, scores, reading, run_dir.parent / "unlearning-planted-oracle")
    out["planted, oracle attribution"] = {
        **socialiqa(result),
        "run": str(result.out_dir),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    return out


def oracle(run_dir: Path) -> tuple[GradientScores, pd.DataFrame]:
    """Stage 02's scores replaced by the ground truth (1 for each benchmark's carrier documents, plus a seeded
    1e-3 jitter that breaks ties), and the stage 03 reading they give (bin means, z-scored per benchmark)."""
    truth = read_json(run_dir / "world" / "ground_truth.json")["benchmarks"]
    scores = GradientScores.load(run_dir / "02_gradients")
    docs = scores.doc_scores.copy()
    rng = np.random.default_rng(0)
    reading = []
    for name in scores.benchmarks:
        carrier = docs["id"].isin(truth[name]["documents"]).to_numpy(float)
        for column in doc_score_columns(name):
            docs[column] = carrier + rng.normal(0, 1e-3, len(docs))
        means = docs.groupby("bin")[doc_score_columns(name)[0]].mean()
        reading.append(
            pd.DataFrame({"benchmark": name, "bin": means.index, "z": zscore(means.to_numpy()), "masked": False})
        )
    oracle_scores = GradientScores(scores.queries, scores.query_bin_scores, scores.bin_counts, docs, scores.info)
    return oracle_scores, pd.concat(reading, ignore_index=True)


def unlearn_again(run_dir: Path, scores: GradientScores, reading: pd.DataFrame, out_dir: Path):
    """Stage 05 of ``run_dir``'s study on other scores, its runs kept beside the study's own (a run is keyed by
    its forget set, so the study's runs are never overwritten)."""
    study = params.load(run_dir / "params.yaml")
    set_threads(study.threads)
    world = load_world(run_dir / "world")
    return unlearning.unlearn(
        study,
        scores,
        run_dir / "01_sampling",
        task_dir=world.resolve(run_dir / "world", world.task_dir),
        tasks=world.tasks,
        base_model=str(world.resolve(run_dir / "world", world.base_model)),
        base_revision=world.base_revision,
        out_dir=out_dir,
        work_dir=run_dir / "work" / "05_unlearning",
        reading=reading,
    )


def socialiqa(result: unlearning.UnlearningResult) -> dict:
    """SocialIQA's paired statistics and selectivity, per measure."""
    stats, sel = result.statistics, result.selectivity
    row = {"topics": result.summary["topics"].get("SocialIQA"), "shortfalls": result.summary["shortfalls"]}
    for measure in ("gold_loglik", "acc"):
        s = stats[(stats["benchmark"] == "SocialIQA") & (stats["measure"] == measure)].iloc[0]
        chosen = sel[(sel["kind"] == "targeted") & (sel["benchmark"] == "SocialIQA") & (sel["measure"] == measure)]
        row[measure] = {
            k: _plain(s[k])
            for k in (
                "n",
                "clusters",
                "median_d",
                "ci_low",
                "ci_high",
                "cohens_dz",
                "wilcoxon_p",
                "paired_t_p",
                "paper_method_median_d",
                "paper_method_wilcoxon_p",
            )
        }
        row[measure]["selectivity"] = float(chosen["selectivity"].iloc[0])
    return row


def real_null(run_dir: Path, replicates: int) -> dict:
    """Stage 05 on the planted world, on the oracle study's forget-set pools, with the oracle scores shuffled
    within each bin (``replicates`` seeds): every targeted set a uniform draw of its bin."""
    scores, reading = oracle(run_dir)
    columns = [c for name in scores.benchmarks for c in doc_score_columns(name)]
    p_values, differences = [], []
    for replicate in range(replicates):
        rng = np.random.default_rng([replicate, 24])
        shuffled = scores.doc_scores.copy()
        for rows in shuffled.groupby("bin").indices.values():
            shuffled.iloc[rows, shuffled.columns.get_indexer(columns)] = shuffled[columns].to_numpy()[
                rows[rng.permutation(len(rows))]
            ]
        null_scores = GradientScores(scores.queries, scores.query_bin_scores, scores.bin_counts, shuffled, scores.info)
        result = unlearn_again(run_dir, null_scores, reading, run_dir.parent / f"unlearning-null-{replicate}")
        row = socialiqa(result)["gold_loglik"]
        p_values.append(row["wilcoxon_p"])
        pairs = result.pairs
        own = pairs[(pairs["evaluated"] == "SocialIQA") & (pairs["measure"] == "gold_loglik")]
        differences.append(own.assign(replicate=replicate)[["replicate", "topic", "seed", "d"]])
    d = pd.concat(differences, ignore_index=True)
    rejected = int(np.sum(np.nan_to_num(p_values, nan=1.0) < LEVEL))
    low, high = clopper_pearson(rejected, replicates)
    return {
        "replicates": replicates,
        "pairs_per_replicate": int(len(d) / replicates),
        "level": LEVEL,
        "rejected": rejected,
        "rate": rejected / replicates,
        "mc_low": low,
        "mc_high": high,
        "p_values": [_plain(p) for p in p_values],
        "mean_d": float(d["d"].mean()),
        "mean_d_se": float(d["d"].std(ddof=1) / np.sqrt(len(d))),
        "share_positive": float((d["d"] > 0).mean()),
        "within_topic_correlation": within_topic_correlation(d),
    }


def within_topic_correlation(d: pd.DataFrame) -> float:
    """The intraclass correlation of d within (replicate, topic): near 0 when pairs of a topic are independent."""
    groups = [g["d"].to_numpy() for _, g in d.groupby(["replicate", "topic"]) if len(g) > 1]
    k = np.mean([len(g) for g in groups])
    within = np.mean([g.var(ddof=1) for g in groups])
    between = np.var([g.mean() for g in groups], ddof=1)
    return float((between - within / k) / (between - within / k + within))


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and np.isnan(value) else value


# ----------------------------------------------------------------------------------------------- output
def render(record: dict) -> str:
    """The Markdown tables of ``record`` (this script's JSON)."""
    lines = [
        f"Measured by `{part['command']}` at commit `{part['commit'][:12]}`{' (dirty)' if part['dirty'] else ''}"
        f", {part['generated_at']} ({name}, {part['wall_s']} s)."
        for name, part in record["parts"].items()
    ]
    lines.append("")
    sim = record.get("simulation", [])
    lines += (
        []
        if not sim
        else [
            f"**Simulated null studies** ({sim[0]['replicates']} per design; rejection rate at "
            f"{record['level']:.0%}, 95% Clopper-Pearson interval)",
            "",
            "| design | clustered Wilcoxon (headline) | pairwise Wilcoxon (paper's method) | paired t on topic means "
            "| mean d (null) |",
            "|---|---|---|---|---|",
        ]
    )
    for r in sim:
        cells = [
            f"{r[t]['rate']:.3f} [{r[t]['mc_low']:.3f}, {r[t]['mc_high']:.3f}]"
            for t in ("wilcoxon_p", "paper_method_wilcoxon_p", "paired_t_p")
        ]
        lines.append(f"| {r['design']['name']} | {' | '.join(cells)} | {r['mean_d']:+.4f} |")
    if record.get("known_answer"):
        lines += [
            "",
            "**Known answer** (testbed, SocialIQA, auto topics, bin construction, split targeted sets)",
            "",
            "| world | measure | pairs | clusters | median d [95% CI] | d_z | p (clustered Wilcoxon) "
            "| p (paper's method) | selectivity |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for world, row in record["known_answer"].items():
            for measure in ("gold_loglik", "acc"):
                m = row[measure]
                lines.append(
                    f"| {world} | {measure} | {m['n']} | {m['clusters']} | {m['median_d']:.3f} "
                    f"[{m['ci_low']:.3f}, {m['ci_high']:.3f}] | {_fmt(m['cohens_dz'])} | "
                    f"{_fmt(m['wilcoxon_p'])} | {_fmt(m['paper_method_wilcoxon_p'])} | "
                    f"{m['selectivity']:.2f} |"
                )
    if record.get("real_null"):
        r = record["real_null"]
        lines += [
            "",
            f"**Real null replicates** (planted world, the oracle study's bins, scores shuffled within "
            f"each bin): {r['replicates']} "
            f"studies of {r['pairs_per_replicate']} pairs; rejected at {r['level']:.0%}: {r['rejected']} "
            f"({r['rate']:.2f}, 95% interval [{r['mc_low']:.2f}, {r['mc_high']:.2f}]); mean d "
            f"{r['mean_d']:+.3f} (s.e. {r['mean_d_se']:.3f}), {r['share_positive']:.0%} positive; "
            f"within-topic correlation of d {r['within_topic_correlation']:+.2f}",
        ]
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


PARTS = ("simulation", "known_answer", "real_null")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=1000, help="simulated null studies per design")
    parser.add_argument("--real", type=int, default=4, help="real null replicate studies on the planted world")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "calibration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="measure these parts only; the others are kept from the JSON (each part records the commit it ran at)",
    )
    args = parser.parse_args()
    path = RESULTS / "unlearning_calibration.json"
    record = read_json(path) if path.is_file() and set(args.parts) != set(PARTS) else {}
    command = (
        f"python bench/bench_unlearning_calibration.py --replicates {args.replicates} --real {args.real} "
        f"--seed {args.seed} --parts {' '.join(args.parts)}"
    )
    stamp = {**git_state(), "generated_at": now(), "machine": host_info(), "command": command}
    record.update(
        stamp,
        level=LEVEL,
        params={
            "replicates": args.replicates,
            "real": args.real,
            "seed": args.seed,
            "protocol": PROTOCOL,
            "worlds": WORLDS,
        },
    )
    for part in args.parts:
        started = time.perf_counter()
        if part == "simulation":
            value = simulate(args.replicates, args.seed)
        elif part == "known_answer":
            value = known_answer(args.runs_dir)
        else:
            value = real_null(args.runs_dir / "unlearning-planted", args.real)
        record[part] = value
        record.setdefault("parts", {})[part] = {**stamp, "wall_s": round(time.perf_counter() - started, 1)}
    record["summary"] = summary(record)
    write_json(path, record)
    write_text(RESULTS / "unlearning_calibration.md", render(record))
    print(render(record))


def summary(record: dict) -> dict:
    """The figures the docs quote: the headline test's false-positive rate in the paper's design, and the known
    answer."""
    out = {"level": LEVEL}
    if "simulation" in record:
        headline = next(r for r in record["simulation"] if r["design"]["name"] == PAPER.name)["wilcoxon_p"]
        out.update(
            replicates=record["simulation"][0]["replicates"],
            false_positive_rate=headline["rate"],
            mc_low=headline["mc_low"],
            mc_high=headline["mc_high"],
            holds=all(r["wilcoxon_p"]["holds"] for r in record["simulation"]),
        )
    if "known_answer" in record:
        planted, control = (
            record["known_answer"][w]["gold_loglik"] for w in ("planted, oracle attribution", "control")
        )
        out.update(
            planted_p=planted["wilcoxon_p"],
            planted_selectivity=planted["selectivity"],
            planted_median_d=planted["median_d"],
            control_p=control["wilcoxon_p"],
            known_answer_holds=bool(
                planted["wilcoxon_p"] < 0.01
                and planted["selectivity"] > 1
                and (control["wilcoxon_p"] is None or control["wilcoxon_p"] >= 0.05)
            ),
        )
    return out


if __name__ == "__main__":
    main()

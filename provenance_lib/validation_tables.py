"""Known answers, tabulated: does the attribution find a planted source, only that source, and nothing where none is
planted?

Reads the runs a validation made (``validate``: ``<validation>/<world>/`` and, per further stage 02 setting,
``<validation>/<world>@<setting>/``, each a study run through stages 01-03 on a testbed world, listed in
``validation.json``) and tabulates, per world x stage 02 setting x benchmark x stage 03 variant (reading)
(``known_answers.parquet``). In a planted world a benchmark's "planted bins" carry its content; in a sham world
the same bins carry a never-evaluated benchmark's content (sham bins); in a null world they carry nothing.

* ``best_rank`` — the rank (1 = highest z among the scored bins) of the benchmark's best planted (sham) bin, ``z``
  its z (stage 03's ``bin_influence.parquet``, all queries); ``median_rank`` over its planted bins; ``top_planted_on``
  — the benchmark's top bin is one of the world's 16 planted-on bins (any benchmark's; in a sham world: a sham bin
  ranks first, a false source);
* ``specificity_auc`` (planted worlds) — the chance that one of the benchmark's own planted bins has a higher z
  than one of the other benchmarks' planted bins (0.5: the reading finds planting, not provenance);
* ``p_sham`` — the best planted bin's z against the sham bins' z of the same reading and stage 02 setting in the
  sham worlds, for every benchmark (bins of the same kind: as large, as planted, about nothing asked), empirical
  p = (1 + #sham z >= z) / (1 + #sham z), Sidak-adjusted for the best of the planted bins; ``p_null`` — the same
  against the ordinary bins of the same working-set size class in the null and sham worlds (a control world's own
  row is scored against the other control worlds);
* ``discoveries``, ``false_discoveries``, ``fdp`` — stage 03's positive discoveries (Benjamini-Hochberg q <=
  binning.fdr and z > 0), those that are not the benchmark's own planted bins (every one, in a sham or null world),
  and their share of the discoveries (0 when there are none): averaged over cells, the false-discovery rate;
* ``auc``, ``recall_at_k`` — how well stage 02's per-document scores (``doc_scores.parquet``, the score set the
  variant reads: the final checkpoint's or the checkpoint sum) separate the benchmark's carrier documents
  (``ground_truth.json``) from the rest of the working set; aggregation variants share their score set's values.

``summary.csv`` condenses it per stage 02 setting and variant beside the bar (planted bin 1st in >= 11 of 12,
median AUC >= 0.9, a sham bin first in <= 1 of 12); ``validation_effects`` adds what retraining measured.
``dose_response.csv`` and ``dose_response.png``: recovery against the planted token share (null worlds: dose 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import validation_effects as effects_mod
from .artifacts import read_json, savefig, sha256_file, write_parquet, write_text
from .benchmarks import BY_NAME
from .context import project_root
from .errors import ProvenanceError
from .params.validation import DEFAULT_SETTING
from .stages.binning import VARIANTS, load_scores
from .stages.binning import load_result as load_binning
from .stages.sampling import MANIFEST
from .stats import pair_auc, separation
from .validation_figures import dose_figure, sham_figure
from .worlds.testbed import GROUND_TRUTH

PLAN = "validation.json"
ROWS, SUMMARY, DOSES, FIGURE = "known_answers.parquet", "summary.csv", "dose_response.csv", "dose_response.png"
SHAM_FIGURE = "sham_vs_planted.png"
BAR = dict(rank1_share=11 / 12, median_auc=0.9, sham_first_share=1 / 12, lds=0.6)
CONTROLS = ("sham", "null")  # worlds where no bin is any benchmark's source
SIZE_CLASSES = (0, 10, 20, 40)  # working-set documents: [min_docs, 10), [10, 20), [20, 40), >= 40


@dataclass
class KnownAnswers:
    out_dir: Path
    rows: pd.DataFrame
    summary: pd.DataFrame
    dose: pd.DataFrame
    planted_z: pd.DataFrame = field(default_factory=pd.DataFrame)  # every planted / sham bin's z (the figure)
    effects: dict[str, pd.DataFrame] = field(default_factory=dict)  # lobo, lds, noise (validation_effects)

    def worlds(self) -> pd.DataFrame:
        """The worlds: kind, seed, nominal dose and the planted token share measured per benchmark (mean)."""
        return (
            self.rows.groupby(["world", "kind", "seed", "dose"], sort=False)["planted_token_share"].mean().reset_index()
        )

    def ranks(self, value: str = "best_rank", kinds: tuple[str, ...] | None = None) -> pd.DataFrame:
        """``value`` per stage 02 setting, world and benchmark (rows) and variant (columns), the paper's recipe
        first; ``kinds``: only worlds of these kinds."""
        rows = self.rows if kinds is None else self.rows[self.rows["kind"].isin(kinds)]
        table = rows.pivot_table(index=["setting", "world", "benchmark"], columns="variant", values=value, sort=False)
        return table[[v for v in dict.fromkeys(self.summary["variant"]) if v in table.columns]]

    def by_setting(self, values=("rank1", "sham_first", "median_specificity_auc", "median_auc", "fdr")):
        """The summary's ``values`` per variant (rows) and stage 02 setting (columns), in the order they ran."""
        table = self.summary.pivot(index="variant", columns="setting", values=list(values))
        settings, variants = (list(dict.fromkeys(self.summary[key])) for key in ("setting", "variant"))
        return table.reindex(index=variants, columns=pd.MultiIndex.from_product([list(values), settings]))

    def verdict(self) -> str:
        """Per stage 02 setting, one line per variant: whether it reaches the bar, and how close it gets where it
        does not."""
        lines = []
        for setting, block in self.summary.groupby("setting", sort=False):
            overrides = " ".join(json.loads(block["overrides"].iloc[0])) or "the study's own stage 02 settings"
            lines += [f"**{setting}** ({overrides}):", "", *map(variant_verdict, block.to_dict("records")), ""]
        return "\n".join(lines).strip()


def variant_verdict(s: dict) -> str:
    checks = [
        (s["rank1_share"] >= BAR["rank1_share"], f"planted bin 1st in {s['rank1']} of {s['planted_cells']}"),
        (s["median_auc"] >= BAR["median_auc"], f"median AUC {s['median_auc']:.2f}"),
        (
            not s["sham_first_share"] > BAR["sham_first_share"],
            f"a sham bin 1st in {s['sham_first']} of {s['sham_cells']}",
        ),
    ]
    if "lds_median" in s and pd.notna(s["lds_median"]):
        checks.append((s["lds_median"] >= BAR["lds"], f"LDS median {s['lds_median']:.2f}"))
    misses = [text for ok, text in checks if not ok]
    return f"- **{s['variant']}**: " + ("meets the bar" if not misses else "misses it: " + ", ".join(misses))


def run_or_load(
    run_dir: str | Path | None = None, out_dir: str | Path | None = None, recompute: bool = False
) -> KnownAnswers:
    """The validation notebook's entry. Executed by ``validate`` (``out_dir`` given) it computes the tables; opened
    by hand it shows the recorded ones (``run_dir`` None: runs/validation), or with ``recompute`` computes them
    again into ``<run_dir>/interactive/tables`` (the recorded ones stay as they are)."""
    run_dir = Path(run_dir) if run_dir else project_root() / "runs" / "validation"
    if out_dir is not None:
        return compute(run_dir, out_dir)
    if recompute:
        return compute(run_dir, run_dir / "interactive" / "tables")
    return load_result(run_dir / "tables")


def load_result(out_dir: str | Path) -> KnownAnswers:
    out_dir = Path(out_dir)
    missing = [name for name in (ROWS, SUMMARY, DOSES) if not (out_dir / name).is_file()]
    if missing:
        raise ProvenanceError(
            f"{out_dir} lacks the validation tables {missing}",
            "run python -m provenance_lib validate params/validation.yaml",
        )
    effects = {
        key: pd.read_csv(out_dir / name)
        for key, name in (("lobo", effects_mod.LOBO), ("lds", effects_mod.LDS), ("noise", effects_mod.NOISE))
        if (out_dir / name).is_file()
    }
    return KnownAnswers(
        out_dir,
        pd.read_parquet(out_dir / ROWS),
        pd.read_csv(out_dir / SUMMARY),
        pd.read_csv(out_dir / DOSES),
        effects=effects,
    )


def plan_runs(validation_dir: Path) -> tuple[dict, list[dict]]:
    """validation.json and its runs (world x setting), each with its folder."""
    plan = read_json(validation_dir / PLAN)
    # a validation recorded before stage 02 settings were an axis ran the study's own settings only
    runs = [dict(w, setting=w.get("setting", DEFAULT_SETTING), run=w.get("run", w["name"])) for w in plan["worlds"]]
    return plan, [dict(r, run_dir=validation_dir / r["run"]) for r in runs]


def compute(validation_dir: str | Path, out_dir: str | Path) -> KnownAnswers:
    """The tables and figures of the validation in ``validation_dir``, written into ``out_dir``."""
    validation_dir, out_dir = Path(validation_dir), Path(out_dir)
    plan, runs = plan_runs(validation_dir)
    bins = {r["run"]: bin_table(r["run_dir"]) for r in runs}
    truths = {r["run"]: read_json(r["run_dir"] / "world" / GROUND_TRUTH)["benchmarks"] for r in runs}
    frames = []
    for run in runs:
        table, fdr = bins[run["run"]]
        controls = {r["run"]: (bins[r["run"]][0], truths[r["run"]], r["kind"]) for r in control_pool(runs, run)}
        frames.append(world_rows(run, table, fdr, truths[run["run"]], controls, plan["params"].get("recall_k")))
    rows = pd.concat(frames, ignore_index=True)
    planted_z = pd.concat(
        [
            planted_bin_z(run, bins[run["run"]][0], truths[run["run"]])
            for run in runs
            if run["kind"] in ("planted", "sham")
        ]
        or [pd.DataFrame()],
        ignore_index=True,
    )
    overrides = {name: s["overrides"] for name, s in plan.get("settings", {}).items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    retraining = plan["params"].get("retraining", {})
    effects = effects_mod.compute(
        validation_dir,
        out_dir,
        runs,
        {name: b[0] for name, b in bins.items()},
        truths,
        retraining.get("bootstrap", 1000),
        retraining.get("seed", 0),
    )
    summary = summarize(rows, planted_z, overrides).merge(
        effects_mod.summarize(effects), how="left", on=["setting", "variant"]
    )
    summary["chosen"] = effects_mod.chosen(summary)
    result = KnownAnswers(
        out_dir, rows, summary, dose_response(rows), planted_z, {k: v for k, v in effects.items() if k != "replicates"}
    )
    write_parquet(out_dir / ROWS, rows)
    write_text(out_dir / SUMMARY, result.summary.to_csv(index=False))
    write_text(out_dir / DOSES, result.dose.to_csv(index=False))
    savefig(out_dir / FIGURE, dose_figure(result.dose))
    if len(planted_z):
        savefig(out_dir / SHAM_FIGURE, sham_figure(planted_z))
    return result


def control_pool(runs: list[dict], run: dict) -> list[dict]:
    """The runs whose z calibrate ``run``'s p-values: the sham and null worlds under the same stage 02 setting (like
    with like: a setting changes every world's z), but for ``run``'s own world (a control world faces the others)."""
    return [r for r in runs if r["kind"] in CONTROLS and r["setting"] == run["setting"] and r["name"] != run["name"]]


# ----------------------------------------------------------------------------------------------- one run
def bin_table(run_dir: Path) -> tuple[pd.DataFrame, float]:
    """Stage 03's scored bins over all queries (variant, benchmark, bin, z, q_value, n_docs) and its BH level."""
    result = load_binning(run_dir / "03_binning")
    t = result.table
    t = t[(t["split"] == "all") & ~t["masked"] & t["z"].notna()]
    return (
        t[["variant", "benchmark", "bin", "z", "q_value", "n_docs"]].reset_index(drop=True),
        float(result.summary["fdr"]),
    )


def size_class(n_docs) -> np.ndarray:
    return np.searchsorted(SIZE_CLASSES, np.asarray(n_docs), side="right")


def planted_on(truth: dict) -> set[int]:
    """Every bin a world planted something into (or, in a null world, would have)."""
    return {b for t in truth.values() for b in t["bins"]}


def world_rows(
    world: dict,
    table: pd.DataFrame,
    fdr: float,
    truth: dict,
    controls: dict[str, tuple[pd.DataFrame, dict, str]],
    recall_k: int | None,
) -> pd.DataFrame:
    """One run's rows (a world under a stage 02 setting): per benchmark and variant, the planted bins' ranks and z,
    specificity, p against the control worlds, discoveries, and the document-level separation of the carriers."""
    run_dir = Path(world["run_dir"])
    documents = document_metrics(run_dir, truth, recall_k)
    every_planted = planted_on(truth)
    rows = []
    for (variant, benchmark), block in table.groupby(["variant", "benchmark"], sort=False):
        own = block["bin"].isin(set(truth[benchmark]["bins"])).to_numpy()
        others = block["bin"].isin(every_planted).to_numpy() & ~own
        ranks = block["z"].rank(ascending=False, method="min").to_numpy()
        z = block["z"].to_numpy()
        found = ((block["q_value"] <= fdr) & (block["z"] > 0)).to_numpy()
        sham_pool, null_pool = control_z(controls, variant, benchmark)
        best = z[own].max() if own.any() else np.nan
        false = found & ~own if world["kind"] == "planted" else found
        score_set = VARIANTS[variant].scores
        rows.append(
            dict(
                world=world["name"],
                setting=world["setting"],
                kind=world["kind"],
                seed=world["seed"],
                dose=world["dose"],
                planted_token_share=truth[benchmark]["planted_token_share"],
                benchmark=benchmark,
                variant=variant,
                score_set=score_set,
                scored_bins=len(block),
                planted_bins=int(own.sum()),
                best_rank=ranks[own].min() if own.any() else np.nan,
                median_rank=float(np.median(ranks[own])) if own.any() else np.nan,
                z=best,
                top_planted_on=bool(block["bin"].iloc[int(np.argmax(z))] in every_planted),
                specificity_auc=pair_auc(z[own], z[others]),
                p_sham=null_p(best, sham_pool, int(own.sum())),
                p_null=null_p(best, null_pool[size_class(block["n_docs"])[own][np.argmax(z[own])]], 1)
                if own.any() and world["kind"] not in CONTROLS
                else np.nan,
                discoveries=int(found.sum()),
                false_discoveries=int(false.sum()),
                fdp=float(false.sum() / found.sum()) if found.any() else 0.0,
                **documents.get((score_set, benchmark), {}),
            )
        )
    return pd.DataFrame(rows)


def control_z(
    controls: dict[str, tuple[pd.DataFrame, dict, str]], variant: str, benchmark: str
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The control worlds' z under this variant: of their sham bins for every benchmark (each z is within its
    benchmark, and no sham bin is any benchmark's source: 16 bins x 4 benchmarks a sham world, so a Sidak-adjusted
    p of the best of 4 planted bins can go below 0.05), and of their other bins for this benchmark per size class."""
    sham, ordinary = [np.empty(0)], {c: [np.empty(0)] for c in range(len(SIZE_CLASSES) + 1)}
    for table, truth, kind in controls.values():
        t = table[table["variant"] == variant]
        planted = t["bin"].isin(planted_on(truth)).to_numpy()
        if kind == "sham":
            sham.append(t["z"].to_numpy()[planted])
        rest = t[~planted & (t["benchmark"] == benchmark).to_numpy()]
        classes = size_class(rest["n_docs"])
        for c in ordinary:
            ordinary[c].append(rest["z"].to_numpy()[classes == c])
    return np.concatenate(sham), {c: np.concatenate(v) for c, v in ordinary.items()}


def null_p(z: float, pool: np.ndarray, planted_bins: int) -> float:
    """Empirical one-sided p of ``z`` among the null z values, Sidak-adjusted for the best of ``planted_bins``."""
    if not len(pool) or not np.isfinite(z) or planted_bins == 0:
        return np.nan
    p_bin = (1 + np.sum(pool >= z)) / (1 + len(pool))
    return float(1 - (1 - p_bin) ** planted_bins)


def planted_bin_z(run: dict, table: pd.DataFrame, truth: dict) -> pd.DataFrame:
    """Every planted (sham) bin's z for its own slot's benchmark, per variant: the sham figure's points."""
    frames = []
    for benchmark, t in truth.items():
        block = table[(table["benchmark"] == benchmark) & table["bin"].isin(set(t["bins"]))]
        frames.append(block.assign(world=run["name"], kind=run["kind"], setting=run["setting"]))
    return pd.concat(frames, ignore_index=True)[["setting", "world", "kind", "variant", "benchmark", "bin", "z"]]


def document_metrics(run_dir: Path, truth: dict, recall_k: int | None) -> dict[tuple[str, str], dict]:
    """(score set, benchmark) -> carriers in the working set, AUC and recall@k of the documents' scores (NaN AUC in
    a sham or null world: no document carries the benchmark's content)."""
    scores, _ = load_scores(run_dir / "02_gradients", sha256_file(run_dir / "01_sampling" / MANIFEST), list(truth))
    sham = read_json(run_dir / "world" / GROUND_TRUTH).get("content") == "sham"
    out = {}
    for score_set, gradient_scores in scores.items():
        docs = gradient_scores.doc_scores
        for benchmark, planted in truth.items():
            carriers = docs["id"].isin(set() if sham else set(planted["documents"])).to_numpy()
            values = docs[BY_NAME[benchmark].slug].to_numpy(np.float64)
            out[(score_set, benchmark)] = separation(values, carriers, recall_k)
    return out


# ----------------------------------------------------------------------------------------------- across worlds
def summarize(rows: pd.DataFrame, planted_z: pd.DataFrame, overrides: dict[str, list[str]] | None = None):
    """Per stage 02 setting (``overrides``: its gradients.* overrides, kept as a JSON list) and variant: the
    planted worlds at the study's dose (rank 1 count, median AUC, specificity, p, false-discovery rate), the sham
    worlds (how often a sham bin ranks first, the sham bins' median z beside the planted bins') and the null worlds."""
    out = []
    for (setting, variant), block in rows.groupby(["setting", "variant"], sort=False):
        p, sham, n = (block[block["kind"] == kind] for kind in ("planted", "sham", "null"))
        z = (
            planted_z[(planted_z["setting"] == setting) & (planted_z["variant"] == variant)]
            if len(planted_z)
            else pd.DataFrame(columns=["kind", "z"])
        )
        out.append(
            dict(
                setting=setting,
                overrides=json.dumps((overrides or {}).get(setting, [])),
                variant=variant,
                planted_cells=len(p),
                rank1=int((p["best_rank"] == 1).sum()),
                rank1_share=float((p["best_rank"] == 1).mean()) if len(p) else np.nan,
                median_best_rank=p["best_rank"].median(),
                median_z=p["z"].median(),
                median_specificity_auc=p["specificity_auc"].median(),
                own_first_among_planted=int((p["specificity_auc"] == 1).sum()),
                p_sham_below_05=int((p["p_sham"] <= 0.05).sum()),
                p_null_below_05=int((p["p_null"] <= 0.05).sum()),
                median_auc=p["auc"].median(),
                median_recall=p["recall_at_k"].median(),
                fdr=p["fdp"].mean(),
                planted_discoveries=p["discoveries"].mean(),
                sham_cells=len(sham),
                sham_first=int(sham["top_planted_on"].sum()),
                sham_first_share=float(sham["top_planted_on"].mean()) if len(sham) else np.nan,
                sham_best_rank_median=sham["best_rank"].median(),
                sham_any_discovery=int((sham["discoveries"] > 0).sum()),
                planted_bin_z_median=z.loc[z["kind"] == "planted", "z"].median(),
                sham_bin_z_median=z.loc[z["kind"] == "sham", "z"].median(),
                null_cells=len(n),
                null_any_discovery=int((n["discoveries"] > 0).sum()),
                null_rank1=int((n["best_rank"] == 1).sum()),
            )
        )
    summary = pd.DataFrame(out)
    summary["meets_bar"] = (
        (summary["rank1_share"] >= BAR["rank1_share"])
        & (summary["median_auc"] >= BAR["median_auc"])
        & ~(summary["sham_first_share"] > BAR["sham_first_share"])
    )
    return summary


def dose_response(rows: pd.DataFrame) -> pd.DataFrame:
    """Per stage 02 setting, nominal dose and variant (and the score set it reads): the measured planted token
    share, the share of (world, benchmark) cells whose planted bin ranks 1st, the median best rank and the median
    AUC (the null worlds are dose 0). Settings stay in the order they ran."""
    order = {setting: i for i, setting in enumerate(dict.fromkeys(rows["setting"]))}
    rows = rows[rows["kind"] != "sham"]
    table = (
        rows.groupby(["setting", "dose", "variant", "score_set"], sort=True)
        .agg(
            planted_token_share=("planted_token_share", "mean"),
            cells=("benchmark", "size"),
            rank1_share=("best_rank", lambda r: float((r == 1).mean())),
            median_best_rank=("best_rank", "median"),
            median_auc=("auc", "median"),
        )
        .reset_index()
    )
    return table.sort_values("setting", key=lambda s: s.map(order), kind="stable", ignore_index=True)

"""Known answers, tabulated: does the attribution find a planted source, and flag nothing where none is planted?

Reads the runs a validation made (``validate``: ``<validation>/<world>/`` and, per further stage 02 setting,
``<validation>/<world>@<setting>/``, each a study run through stages 01-03 on a testbed world, listed in
``validation.json``) and tabulates, per world x stage 02 setting x benchmark x stage 03 variant
(``known_answers.parquet``):

* ``best_rank`` — the rank (1 = highest z among the scored bins) of the benchmark's best planted bin, ``z`` its z
  (stage 03's ``bin_influence.parquet``, all queries); ``median_rank`` over its planted bins;
* ``p_null`` — that z against the calibrated null: the z of every scored bin of the same variant and benchmark in the
  null worlds under the same stage 02 setting (the same ordinary text with nothing planted; a null world's own row is
  scored against the other null worlds), empirical p = (1 + #null z >= z) / (1 + #null z), Sidak-adjusted for
  taking the best of the planted bins;
* ``flag_rate`` — the share of the non-planted scored bins stage 03 flags (Benjamini-Hochberg q <= binning.fdr, either
  sign): false discoveries, since in a null world nothing is planted and in a planted world only the planted bins are;
  ``planted_flagged``: a planted bin is flagged with z > 0;
* ``auc``, ``recall_at_k`` — how well stage 02's per-document scores (``doc_scores.parquet``, the score set the
  variant reads: the final checkpoint's or the checkpoint sum) separate the benchmark's carrier documents
  (``ground_truth.json``) from the rest of the working set; aggregation variants share their score set's values.

``summary.csv`` condenses it per stage 02 setting and variant over the planted worlds at the study's dose and the null
worlds, beside the bar a known-answers check must clear (planted bin 1st in >= 11 of 12, median AUC >= 0.9, null
flag rate <= 5%);
``dose_response.csv`` and ``dose_response.png``: recovery against the planted token share (the null worlds are dose
0), per setting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import read_json, savefig, sha256_file, write_parquet, write_text
from .benchmarks import BY_NAME
from .context import project_root
from .errors import ProvenanceError
from .params.validation import DEFAULT_SETTING
from .stages.binning import VARIANTS, load_scores
from .stages.binning import load_result as load_binning
from .stages.sampling import MANIFEST
from .stats import separation
from .worlds.testbed import GROUND_TRUTH

PLAN = "validation.json"
ROWS, SUMMARY, DOSES, FIGURE = "known_answers.parquet", "summary.csv", "dose_response.csv", "dose_response.png"
BAR = dict(rank1_share=11 / 12, median_auc=0.9, null_flag_rate=0.05)   # what the attribution must show


@dataclass
class KnownAnswers:
    out_dir: Path
    rows: pd.DataFrame
    summary: pd.DataFrame
    dose: pd.DataFrame

    def worlds(self) -> pd.DataFrame:
        """The worlds: kind, seed, nominal dose and the planted token share measured per benchmark (mean)."""
        return (self.rows.groupby(["world", "kind", "seed", "dose"], sort=False)["planted_token_share"].mean()
                .reset_index())

    def ranks(self, value: str = "best_rank") -> pd.DataFrame:
        """``value`` per stage 02 setting, world and benchmark (rows) and variant (columns), the paper's recipe
        first."""
        table = self.rows.pivot_table(index=["setting", "world", "benchmark"], columns="variant", values=value,
                                      sort=False)
        return table[[v for v in dict.fromkeys(self.summary["variant"]) if v in table.columns]]

    def by_setting(self, values=("rank1", "median_best_rank", "median_auc", "null_flag_rate")) -> pd.DataFrame:
        """The summary's ``values`` per variant (rows) and stage 02 setting (columns), in the order they ran."""
        table = self.summary.pivot(index="variant", columns="setting", values=list(values))
        settings, variants = (list(dict.fromkeys(self.summary[key])) for key in ("setting", "variant"))
        return table.reindex(index=variants, columns=pd.MultiIndex.from_product([list(values), settings]))

    def null_flags(self) -> pd.DataFrame:
        """Per setting, null world and variant: the mean share of bins stage 03 flags (Benjamini-Hochberg), over
        benchmarks."""
        null = self.rows[self.rows["kind"] == "null"]
        return null.pivot_table(index=["setting", "world"], columns="variant", values="flag_rate", sort=False)

    def verdict(self) -> str:
        """Per stage 02 setting, one line per variant: whether it reaches the bar (``BAR``), and how close it gets
        where it does not."""
        lines = []
        for setting, block in self.summary.groupby("setting", sort=False):
            overrides = " ".join(json.loads(block["overrides"].iloc[0])) or "the study's own stage 02 settings"
            lines += [f"**{setting}** ({overrides}):", "", *map(variant_verdict, block.to_dict("records")), ""]
        return "\n".join(lines).strip()


def variant_verdict(s: dict) -> str:
    misses = [text for ok, text in (
        (s["rank1_share"] >= BAR["rank1_share"], f"planted bin 1st in {s['rank1']} of {s['planted_cells']}"),
        (s["median_auc"] >= BAR["median_auc"], f"median AUC {s['median_auc']:.2f}"),
        (not s["null_flag_rate"] > BAR["null_flag_rate"], f"null flag rate {s['null_flag_rate']:.1%}"))
        if not ok]
    return f"- **{s['variant']}**: " + ("meets the bar" if not misses else "misses it: " + ", ".join(misses))


def run_or_load(run_dir: str | Path | None = None, out_dir: str | Path | None = None,
                recompute: bool = False) -> KnownAnswers:
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
        raise ProvenanceError(f"{out_dir} lacks the validation tables {missing}",
                              "run python -m provenance_lib validate params/validation.yaml")
    return KnownAnswers(out_dir, pd.read_parquet(out_dir / ROWS), pd.read_csv(out_dir / SUMMARY),
                        pd.read_csv(out_dir / DOSES))


def compute(validation_dir: str | Path, out_dir: str | Path) -> KnownAnswers:
    """The tables and the dose-response figure of the validation in ``validation_dir``, written into ``out_dir``."""
    validation_dir, out_dir = Path(validation_dir), Path(out_dir)
    plan = read_json(validation_dir / PLAN)
    # a validation recorded before stage 02 settings were an axis ran the study's own settings only
    runs = [dict(w, setting=w.get("setting", DEFAULT_SETTING), run=w.get("run", w["name"])) for w in plan["worlds"]]
    runs = [dict(r, run_dir=validation_dir / r["run"]) for r in runs]
    bins = {r["run"]: bin_table(r["run_dir"]) for r in runs}
    frames = []
    for run in runs:
        table, fdr = bins[run["run"]]
        pool = {name: bins[name][0] for name in null_pool(runs, run)}
        frames.append(world_rows(run, table, fdr, pool, plan["params"].get("recall_k")))
    rows = pd.concat(frames, ignore_index=True)
    overrides = {name: s["overrides"] for name, s in plan.get("settings", {}).items()}
    result = KnownAnswers(out_dir, rows, summarize(rows, overrides), dose_response(rows))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(out_dir / ROWS, rows)
    write_text(out_dir / SUMMARY, result.summary.to_csv(index=False))
    write_text(out_dir / DOSES, result.dose.to_csv(index=False))
    savefig(out_dir / FIGURE, dose_figure(result.dose))
    return result


def null_pool(runs: list[dict], run: dict) -> list[str]:
    """The runs whose z calibrate ``run``'s p-values: the null worlds under the same stage 02 setting (like with
    like: a setting changes every world's z), but for ``run``'s own world (a null world faces the other ones)."""
    return [r["run"] for r in runs
            if r["kind"] == "null" and r["setting"] == run["setting"] and r["name"] != run["name"]]


# ----------------------------------------------------------------------------------------------- one run
def bin_table(run_dir: Path) -> tuple[pd.DataFrame, float]:
    """Stage 03's scored bins over all queries (variant, benchmark, bin, z, q_value) and its BH level."""
    result = load_binning(run_dir / "03_binning")
    t = result.table
    t = t[(t["split"] == "all") & ~t["masked"] & t["z"].notna()]
    return t[["variant", "benchmark", "bin", "z", "q_value"]].reset_index(drop=True), float(result.summary["fdr"])


def world_rows(world: dict, table: pd.DataFrame, fdr: float, null_pool: dict[str, pd.DataFrame],
               recall_k: int | None) -> pd.DataFrame:
    """One run's rows (a world under a stage 02 setting): per benchmark and variant, the planted bins' ranks and z,
    p against the null pool, flags, and the document-level separation of the carriers."""
    run_dir = Path(world["run_dir"])
    truth = read_json(run_dir / "world" / GROUND_TRUTH)["benchmarks"]
    documents = document_metrics(run_dir, truth, recall_k)
    rows = []
    for (variant, benchmark), block in table.groupby(["variant", "benchmark"], sort=False):
        planted = set(truth[benchmark]["bins"])
        is_planted = block["bin"].isin(planted).to_numpy()
        ranks = block["z"].rank(ascending=False, method="min").to_numpy()
        z = block["z"].to_numpy()
        flagged = (block["q_value"] <= fdr).to_numpy()
        pool = np.concatenate([t.loc[(t["variant"] == variant) & (t["benchmark"] == benchmark), "z"].to_numpy()
                               for t in null_pool.values()] or [np.empty(0)])
        best = z[is_planted].max() if is_planted.any() else np.nan
        score_set = VARIANTS[variant].scores
        rows.append(dict(
            world=world["name"], setting=world["setting"], kind=world["kind"], seed=world["seed"], dose=world["dose"],
            planted_token_share=truth[benchmark]["planted_token_share"], benchmark=benchmark, variant=variant,
            score_set=score_set, scored_bins=len(block), planted_bins=int(is_planted.sum()),
            best_rank=ranks[is_planted].min() if is_planted.any() else np.nan,
            median_rank=float(np.median(ranks[is_planted])) if is_planted.any() else np.nan,
            z=best, p_null=null_p(best, pool, int(is_planted.sum())),
            planted_flagged=bool((flagged & is_planted & (z > 0)).any()),
            false_flags=int((flagged & ~is_planted).sum()),
            flag_rate=float((flagged & ~is_planted).sum() / max((~is_planted).sum(), 1)),
            **documents.get((score_set, benchmark), {}),
        ))
    return pd.DataFrame(rows)


def null_p(z: float, pool: np.ndarray, planted_bins: int) -> float:
    """Empirical one-sided p of ``z`` among the null z values, Sidak-adjusted for the best of ``planted_bins``."""
    if not len(pool) or not np.isfinite(z) or planted_bins == 0:
        return np.nan
    p_bin = (1 + np.sum(pool >= z)) / (1 + len(pool))
    return float(1 - (1 - p_bin) ** planted_bins)


def document_metrics(run_dir: Path, truth: dict, recall_k: int | None) -> dict[tuple[str, str], dict]:
    """(score set, benchmark) -> carriers in the working set, AUC and recall@k of the documents' scores."""
    scores, _ = load_scores(run_dir / "02_gradients", sha256_file(run_dir / "01_sampling" / MANIFEST), list(truth))
    out = {}
    for score_set, gradient_scores in scores.items():
        docs = gradient_scores.doc_scores
        for benchmark, planted in truth.items():
            carriers = docs["id"].isin(set(planted["documents"])).to_numpy()
            values = docs[BY_NAME[benchmark].slug].to_numpy(np.float64)
            out[(score_set, benchmark)] = separation(values, carriers, recall_k)
    return out


# ----------------------------------------------------------------------------------------------- across worlds
def summarize(rows: pd.DataFrame, overrides: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Per stage 02 setting (``overrides``: its gradients.* overrides, kept as a JSON list) and variant: the
    planted worlds at the study's dose (rank 1 count, median AUC, recall, p) and the null worlds' false-flag rate,
    with whether it reaches the bar (``BAR``)."""
    out = []
    for (setting, variant), block in rows.groupby(["setting", "variant"], sort=False):
        p, n = block[block["kind"] == "planted"], block[block["kind"] == "null"]
        out.append(dict(
            setting=setting, overrides=json.dumps((overrides or {}).get(setting, [])), variant=variant,
            planted_cells=len(p), rank1=int((p["best_rank"] == 1).sum()),
            rank1_share=float((p["best_rank"] == 1).mean()) if len(p) else np.nan,
            median_best_rank=p["best_rank"].median(), median_z=p["z"].median(),
            p_null_below_05=int((p["p_null"] <= 0.05).sum()), median_auc=p["auc"].median(),
            median_recall=p["recall_at_k"].median(), planted_flagged=int(p["planted_flagged"].sum()),
            planted_world_flag_rate=p["flag_rate"].mean(), null_cells=len(n), null_flag_rate=n["flag_rate"].mean(),
            null_rank1=int((n["best_rank"] == 1).sum()),
        ))
    summary = pd.DataFrame(out)
    summary["meets_bar"] = ((summary["rank1_share"] >= BAR["rank1_share"])
                            & (summary["median_auc"] >= BAR["median_auc"])
                            & (summary["null_flag_rate"] <= BAR["null_flag_rate"]))
    return summary


def dose_response(rows: pd.DataFrame) -> pd.DataFrame:
    """Per stage 02 setting, nominal dose and variant (and the score set it reads): the measured planted token
    share, the share of (world, benchmark) cells whose planted bin ranks 1st, the median best rank and the median
    AUC (the null worlds are dose 0). Settings stay in the order they ran."""
    order = {setting: i for i, setting in enumerate(dict.fromkeys(rows["setting"]))}
    table = (rows.groupby(["setting", "dose", "variant", "score_set"], sort=True)
             .agg(planted_token_share=("planted_token_share", "mean"), cells=("benchmark", "size"),
                  rank1_share=("best_rank", lambda r: float((r == 1).mean())),
                  median_best_rank=("best_rank", "median"), median_auc=("auc", "median"))
             .reset_index())
    return table.sort_values("setting", key=lambda s: s.map(order), kind="stable", ignore_index=True)


def dose_figure(dose: pd.DataFrame):
    """One row of panels per stage 02 setting: the planted bin's rank-1 share per variant, and the carriers' AUC."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    settings = list(dict.fromkeys(dose["setting"]))
    fig, grid = plt.subplots(len(settings), 2, figsize=(11, 4 * len(settings)), squeeze=False,
                             constrained_layout=True)
    order = [v for v in VARIANTS if v in set(dose["variant"])]      # the paper's recipe first, as in stage 03
    for setting, axes in zip(settings, grid):
        data = dose[dose["setting"] == setting].assign(dose=lambda t: t["dose"].map(lambda d: f"{d:g}"))
        sns.pointplot(data=data, x="dose", y="rank1_share", hue="variant", hue_order=order, ax=axes[0], dodge=0.3)
        axes[0].set(xlabel="planted token share per benchmark", ylabel="planted bin ranks 1st (share of cells)",
                    ylim=(-0.05, 1.05), title=f"stage 02 setting: {setting}")
        auc = data.drop_duplicates(["dose", "score_set"]).dropna(subset=["median_auc"])  # the same for every variant
        sns.pointplot(data=auc, x="dose", y="median_auc", hue="score_set", ax=axes[1])     # of a score set
        axes[1].legend(title="stage 02 scores")
        axes[1].axhline(0.5, color="grey", lw=0.8, ls="--")
        axes[1].set(xlabel="planted token share per benchmark", ylabel="planted-document AUC (median)",
                    ylim=(0.3, 1.02))
    fig.suptitle("Known answers: recovery against the planted dose (testbed; dose 0 = null worlds)")
    return fig

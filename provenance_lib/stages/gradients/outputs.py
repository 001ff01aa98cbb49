"""Stage 02's artifacts beyond the contract, and the result a notebook shows.

```
02_gradients/
  queries.parquet  query_bin_scores.npy  bin_counts.npy  doc_scores.parquet  scores.json     the contract (scores.py)
  checkpoints/<label>/...                       each checkpoint's own contract files, when several are summed
  store/<label>/query_store.npy                 queries x D: preconditioned, unit-normalized query gradients
  store/<label>/bin_sums.npy                    576 x D: per-bin sums of documents' unit gradients (float64)
  store/<label>/preconditioner.pt               V (bergson normalizers), R (per-module H^-1/2, lambda), the means
  store/<label>/document_gradients.npy          N x D unit gradients + document_ids.parquet (keep_document_gradients)
  exactness.parquet  variants.parquet           projected vs exact; how far the query variants move the profiles
  collection.json                               timings and sizes of the collection
  profiles.png                                  each benchmark's 24 x 24 bin z profile
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...artifacts import read_json, savefig
from ...heatmap import diverging, draw_bins
from ...taxonomy import load as load_taxonomy
from ...stats import separation, zscore
from .profiles import bin_profile
from .scores import GradientScores, doc_score_columns

STORE, EXACTNESS, VARIANTS, COLLECTION, PROFILES = (
    "store",
    "exactness.parquet",
    "variants.parquet",
    "collection.json",
    "profiles.png",
)
QUERY_STORE, BIN_SUMS, PRECONDITIONER = "query_store.npy", "bin_sums.npy", "preconditioner.pt"
DOCUMENT_GRADIENTS, DOCUMENT_IDS = "document_gradients.npy", "document_ids.parquet"


@dataclass
class GradientsResult:
    out_dir: Path
    scores: GradientScores
    collection: dict
    exactness: pd.DataFrame | None
    variants: pd.DataFrame | None

    # ------------------------------------------------------------------------------------------- tables
    def recipe_table(self) -> pd.Series:
        """What was collected, with which model, and how it was preconditioned."""
        r = self.scores.info["recipe"]
        rows = {
            "base model": r["base_model"],
            "query model": f"{r['query']['model']} ({r['query_model']})",
            "query format": r["query"]["format"],
            "loss": r["loss"],
            "projection": f"{r['projection_dim']} per module (seed {r['projection_seed']}), D = {r['dim']}",
            "max length / windows": f"{r['max_length']} / {r['max_windows'] or 'all'}",
            "normalization": r["normalization"],
            "checkpoints": ", ".join(r["checkpoints"]),
        }
        for label, c in r["per_checkpoint"].items():
            v, mix = c["second_moment"], c["mixing"]
            rows[f"V [{label}]"] = f"{'factored' if r['factored_v'] else 'exact Adam'}, from the {v['source']}"
            rows[f"R [{label}]"] = (
                f"lambda {mix['lam']:.4f} at component {mix['target']} of {mix['components']} "
                f"(query rank {mix['query_rank']}, train rank {mix['train_rank']}, "
                f"{mix['train_rows']} train documents)"
            )
        return pd.Series(rows, name="value")

    def query_table(self) -> pd.DataFrame:
        """Queries and accuracy of the query model per benchmark."""
        q = self.scores.queries
        return q.groupby("benchmark", sort=False).agg(
            queries=("id", "size"), accuracy=("correct", "mean"), mean_gold_loglik=("gold_loglik", "mean")
        )

    def top_bins(self, k: int = 5) -> pd.DataFrame:
        """Each benchmark's k bins with the highest z (bins with documents)."""
        tax = load_taxonomy()
        rows = []
        for name in self.scores.benchmarks:
            z = zscore(bin_profile(self.scores.query_bin_scores, self.scores.rows(name)))
            for b in np.argsort(-np.nan_to_num(z, nan=-np.inf))[:k]:
                rows.append(
                    {
                        "benchmark": name,
                        "bin": tax.bin_name(int(b)),
                        "z": z[b],
                        "documents": int(self.scores.bin_counts[b]),
                    }
                )
        return pd.DataFrame(rows)

    def exactness_summary(self) -> pd.DataFrame | None:
        """The exactness table with the z-profile Spearman summarized over benchmarks (median, min)."""
        if self.exactness is None:
            return None
        t = self.exactness.copy()
        z = t[[c for c in t.columns if c.startswith("z_spearman/")]]
        t["z_spearman_median"], t["z_spearman_min"] = z.median(axis=1), z.min(axis=1)
        return t[
            ["v", "dim", "seed", "against", "document_spearman", "top_k_overlap", "z_spearman_median", "z_spearman_min"]
        ]

    def cost_table(self) -> pd.DataFrame:
        return pd.DataFrame(self.collection["per_checkpoint"]).T

    def planted_table(self, truth: dict) -> pd.DataFrame:
        """Known answers (the testbed's ``ground_truth.json``): each benchmark's planted bins, their z and rank
        among the bins with documents, inside each the mean score of the carrier documents vs the filler ones, and
        the carrier-document AUC over the whole working set (does a benchmark's score single out its carriers?)."""
        tax, docs = load_taxonomy(), self.scores.doc_scores
        rows = []
        for name, planted in truth["benchmarks"].items():
            if name not in self.scores.benchmarks:
                continue
            z = zscore(bin_profile(self.scores.query_bin_scores, self.scores.rows(name)))
            column = doc_score_columns(name)[0]
            carriers = docs["id"].isin(set(planted["documents"]))
            auc = separation(docs[column].to_numpy(np.float64), carriers.to_numpy(), None)["auc"]
            for b in planted["bins"]:
                inside = docs["bin"] == b
                rows.append(
                    {
                        "benchmark": name,
                        "planted bin": tax.bin_name(b),
                        "z": z[b],
                        "rank": int((z[np.isfinite(z)] > z[b]).sum()) + 1,
                        "bins": int(np.isfinite(z).sum()),
                        "carrier docs score": docs.loc[inside & carriers, column].mean(),
                        "filler docs score": docs.loc[inside & ~carriers, column].mean(),
                        "carrier AUC": auc,
                    }
                )
        return pd.DataFrame(rows)


def load_result(out_dir: str | Path) -> GradientsResult:
    out_dir = Path(out_dir)
    optional = {
        name: pd.read_parquet(out_dir / name) if (out_dir / name).is_file() else None for name in (EXACTNESS, VARIANTS)
    }
    return GradientsResult(
        out_dir, GradientScores.load(out_dir), read_json(out_dir / COLLECTION), optional[EXACTNESS], optional[VARIANTS]
    )


# ----------------------------------------------------------------------------------------------- records
def recipe_info(
    base_model: str, query_model: str, settings, runs: list, manifest_sha256: str, models: dict[str, dict]
) -> dict:
    """``scores.json``: the working set the scores belong to and the recipe that made them."""
    import bergson

    return {
        "manifest_sha256": manifest_sha256,
        "recipe": {
            "base_model": base_model,
            "query_model": query_model,
            "query": {"format": settings.query.format, "model": settings.query.model},
            "loss": "summed next-token cross-entropy per document (windows summed), fp32",
            "projection": "bergson per-module two-sided Rademacher projection",
            "projection_dim": settings.projection_dim,
            "projection_seed": settings.projection_seed,
            "dim": int(runs[0].query_store.shape[1]),
            "factored_v": settings.v.factored,
            "normalization": "unit, after H^-1/2 on both sides",
            "max_length": settings.max_length,
            "max_windows": settings.max_windows,
            "downweight_share": settings.curvature.downweight_share,
            "damping": settings.curvature.damping,
            "checkpoints": [r.label for r in runs],
            "bergson": bergson.__version__,
            "per_checkpoint": {
                r.label: {
                    "models": models[r.label],
                    "second_moment": r.second_moment,
                    "mixing": r.curvature.mixing.record(),
                }
                for r in runs
            },
        },
    }


def collection_record(runs: list, exactness: dict | None, seconds: float) -> dict:
    """``collection.json``: what each checkpoint's documents pass covered and how long the steps took."""
    per = {}
    for r in runs:
        table = r.documents.table()
        docs_s = r.timings.get("documents_s")
        per[r.label] = {
            "documents": len(table),
            "skipped": len(r.documents.skipped),
            "windows": int(table["windows"].sum()),
            "window_tokens": int(table["window_tokens"].sum()),
            "dropped_tokens": int(table["dropped_tokens"].sum()),
            **{k: round(v, 2) for k, v in r.timings.items()},
            "documents_per_s": round(len(table) / docs_s, 2) if docs_s else None,
            "token_batch": r.token_batch,
        }
    return {"per_checkpoint": per, "exactness": exactness, "seconds": round(seconds, 2)}


# ----------------------------------------------------------------------------------------------- figure
def plot_profiles(scores: GradientScores):
    """Per benchmark, the 24 x 24 grid (topics x formats) of bin z scores on one scale; grey = no documents."""
    import matplotlib.pyplot as plt

    names = scores.benchmarks
    profiles = {name: zscore(bin_profile(scores.query_bin_scores, scores.rows(name))) for name in names}
    scale = diverging(list(profiles.values()), "z (bin mean over queries)", "stage 02 profile of this run")
    fig, axes = plt.subplots(1, len(names), figsize=(7.5 * len(names), 7.5), squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], names):
        draw_bins(ax, profiles[name], name, scale)
    return fig


def save_profiles(scores: GradientScores, out_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    fig = plot_profiles(scores)
    path = savefig(out_dir / PROFILES, fig)
    plt.close(fig)
    return path

"""Stage 03's artifacts: the long table, the paper's released layout, the replicates stage 04 reads, the summary,
and the 24 x 24 heatmaps; ``BinningResult`` reads them back for the notebook and for stage 04."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...artifacts import atomic_path, read_json, savefig, write_json, write_parquet, write_text
from ...benchmarks import BENCHMARKS, BY_NAME
from ...errors import ProvenanceError
from ...heatmap import Scale, diverging, draw_bins
from ...taxonomy import load as load_taxonomy
from ...worlds.released import CSV_COLUMNS, RELEASED_FILES

TABLE, SUMMARY, REPLICATES = "bin_influence.parquet", "binning.json", "bootstrap_z.npy"
HEATMAP_2X2 = "heatmaps_2x2.png"


def captioned(table: pd.DataFrame, title: str, note: str | None):
    """A table for a notebook, captioned with the world's scale note (what it may be read as)."""
    return table.style.set_caption(title + (f" — {note}" if note else "")).format(precision=3, na_rep="—")


def heatmap_name(benchmark: str) -> str:
    return f"heatmap_{BY_NAME[benchmark].slug}.png"


def variant_heatmap_name(variant: str) -> str:
    """The 2 x 2 heatmaps of a variant other than the reading (which is ``HEATMAP_2X2``)."""
    return f"heatmaps_2x2_{variant}.png"


# ----------------------------------------------------------------------------------------------- the result
@dataclass
class BinningResult:
    out_dir: Path
    table: pd.DataFrame
    summary: dict

    @property
    def benchmarks(self) -> list[str]:
        return self.summary["benchmarks"]

    @property
    def note(self) -> str | None:
        return self.summary.get("scale_note")

    @property
    def reading(self) -> str:
        """The variant the study reads first (``binning.reading``; 'paper' for a run recorded before it existed)."""
        return self.summary.get("reading", "paper")

    def show(self, table: pd.DataFrame, title: str):
        """``table`` captioned with ``title`` and the world's scale note, for the notebook."""
        return captioned(table, title, self.note)

    def rows(self, variant: str = "paper", split: str = "all") -> pd.DataFrame:
        t = self.table
        return t[(t["variant"] == variant) & (t["split"] == split)]

    def matrix(self, variant: str = "paper", split: str = "all", value: str = "z") -> pd.DataFrame:
        """bins x benchmarks (design order) of one value; NaN where masked or absent."""
        wide = self.rows(variant, split).pivot(index="bin", columns="benchmark", values=value)
        return wide.reindex(index=range(load_taxonomy().n_bins), columns=self.benchmarks)

    def top_bins(self, n: int = 10, variant: str | None = None, split: str = "all") -> pd.DataFrame:
        """Each benchmark's n highest-z bins with their interval, BH q and counts (``variant``: the reading)."""
        rows = self.rows(variant or self.reading, split).dropna(subset=["z"])
        top = rows.sort_values("z", ascending=False).groupby("benchmark", sort=False).head(n)
        top = top.assign(rank=top.groupby("benchmark").cumcount() + 1, bin_name=top["topic"] + " x " + top["format"])
        columns = ["benchmark", "rank", "bin_name", "z", "z_low", "z_high", "q_value", "n_docs"]
        order = {b: i for i, b in enumerate(self.benchmarks)}
        return top.sort_values(["benchmark", "rank"], key=lambda s: s.map(order) if s.name == "benchmark" else s)[
            columns
        ].reset_index(drop=True)

    def variant_table(self) -> pd.DataFrame:
        """Per variant and benchmark: how its z profile relates to the paper's (Pearson r over the scored bins),
        where the paper's top bin ranks under it, and its own top bin."""
        paper = self.matrix("paper")
        rows = []
        for variant in self.summary["variants"]:
            z = self.matrix(variant)
            for benchmark in self.benchmarks:
                a, b = paper[benchmark], z[benchmark]
                both = a.notna() & b.notna()
                paper_top = a.idxmax()
                rows.append(
                    dict(
                        variant=variant,
                        benchmark=benchmark,
                        r_with_paper=float(np.corrcoef(a[both], b[both])[0, 1]) if both.sum() > 2 else None,
                        paper_top_bin=load_taxonomy().bin_name(int(paper_top)),
                        its_rank_here=int((b > b[paper_top]).sum() + 1) if np.isfinite(b[paper_top]) else None,
                        top_bin_here=load_taxonomy().bin_name(int(b.idxmax())),
                    )
                )
        return pd.DataFrame(rows)

    def masked_table(self) -> pd.DataFrame:
        """Bins with documents but fewer than ``min_docs`` (empty bins are only counted: ``summary["empty_bins"]``)."""
        return pd.DataFrame(self.summary["masked_bins"], columns=["bin", "bin_name", "n_docs"])

    def replicates(self) -> np.ndarray | None:
        """The paper variant's replicate z, (replicates, splits, benchmarks, scored bins); None for an imported
        matrix."""
        path = self.out_dir / REPLICATES
        return np.load(path) if path.is_file() else None


def load_result(out_dir: str | Path) -> BinningResult:
    out_dir = Path(out_dir)
    missing = [name for name in (TABLE, SUMMARY) if not (out_dir / name).is_file()]
    if missing:
        raise ProvenanceError(f"{out_dir} lacks stage 03's {', '.join(missing)}", "run stage 03 first")
    return BinningResult(out_dir, pd.read_parquet(out_dir / TABLE), read_json(out_dir / SUMMARY))


# ----------------------------------------------------------------------------------------------- writing
def write_outputs(out_dir: Path, table: pd.DataFrame, summary: dict, replicates: np.ndarray | None) -> BinningResult:
    write_parquet(out_dir / TABLE, table)
    result = BinningResult(out_dir, table, summary)
    for benchmark in result.benchmarks:
        write_text(out_dir / RELEASED_FILES[benchmark], paper_layout(result, benchmark).to_csv(index=False))
    if replicates is not None:
        with atomic_path(out_dir / REPLICATES) as tmp, open(tmp, "wb") as f:
            np.save(f, replicates)
    write_json(out_dir / SUMMARY, summary)
    return result


def paper_layout(result: BinningResult, benchmark: str) -> pd.DataFrame:
    """The paper variant in the paper's released layout (576 rows, keys as labels, sorted like the paper's files);
    masked bins have an empty zscore."""
    tax = load_taxonomy()
    rows = result.rows("paper").query("benchmark == @benchmark").sort_values("bin")
    labels = [tax.bin_labels(int(b)) for b in rows["bin"]]
    out = pd.DataFrame(
        {
            "topic_label": [t.key for t, _ in labels],
            "format_label": [f.key for _, f in labels],
            "mean_score": rows["mean_score"].to_numpy(),
            "zscore": rows["z"].to_numpy(),
            "doc_count": rows["n_docs"].to_numpy(),
        }
    )
    return out.sort_values(["topic_label", "format_label"]).reset_index(drop=True)[CSV_COLUMNS]


# ----------------------------------------------------------------------------------------------- figures
def z_scale(result: BinningResult) -> Scale:
    """The colour scale every z heatmap of the run shares (all variants and benchmarks, all queries)."""
    return diverging(
        result.table.loc[result.table["split"] == "all", "z"], "z within benchmark", "stage 03 heatmap of this run"
    )


def plot_heatmaps(
    result: BinningResult,
    variant: str = "paper",
    benchmarks: list[str] | None = None,
    columns: int = 2,
    axes_size: float = 7.5,
):
    """24 x 24 diverging heatmaps of z (topics rows, formats columns, taxonomy order) on the run's one z scale
    (``z_scale``); masked bins grey."""
    import matplotlib.pyplot as plt

    benchmarks = benchmarks or result.benchmarks
    rows = -(-len(benchmarks) // columns)
    z = result.matrix(variant)[benchmarks]
    scale = z_scale(result)
    fig, axes = plt.subplots(
        rows, columns, figsize=(axes_size * columns * 1.1, axes_size * rows + 1), squeeze=False, layout="constrained"
    )
    for ax, benchmark in zip(axes.flat, benchmarks):
        b = BY_NAME[benchmark]
        draw_bins(ax, z[benchmark].to_numpy(), f"{benchmark} ({b.domain}, {b.capability})", scale)
    for ax in list(axes.flat)[len(benchmarks) :]:
        ax.set_visible(False)
    title = f"Influence by WebOrganizer bin, {variant} aggregation (grey: masked, < {result.summary['min_docs']} docs)"
    fig.suptitle(title + ("\n" + textwrap.fill(result.note, 110) if result.note else ""), fontsize=13)
    return fig


def save_figures(result: BinningResult) -> list[Path]:
    import matplotlib.pyplot as plt

    paths = []
    design = [b.name for b in BENCHMARKS if b.name in result.benchmarks]
    reading = result.reading
    jobs = [(HEATMAP_2X2, dict(variant=reading, benchmarks=design))]
    jobs += [(heatmap_name(b), dict(variant=reading, benchmarks=[b], columns=1)) for b in design]
    jobs += [
        (variant_heatmap_name(v), dict(variant=v, benchmarks=design))
        for v in result.summary["variants"]
        if v != reading
    ]
    for name, kwargs in jobs:
        fig = plot_heatmaps(result, **kwargs)
        paths.append(savefig(result.out_dir / name, fig))
        plt.close(fig)  # the notebook shows the saved file; an open figure would be drawn a second time
    return paths

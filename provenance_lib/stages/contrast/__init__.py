"""Stage 04 — contrast: what the 576-bin matrix says about the 2 x 2 design, and how it compares with the paper.

Reads stage 03's matrix and replicates (and stage 01's working-set text for the lexical profiles), never stage 02,
so it runs unchanged on the paper's released matrix. Computes (each in its module):

* ``profiles``: profile correlations (Pearson, Spearman) with bins-resampled intervals; topic and format marginals
  and their top positive / negative; contrastive topics (social minus STEM within reasoning and within knowledge)
  and the bootstrap test of "the reasoning split is sharper"; the interactional share of each benchmark's top bins
* ``correctness``: delta z = z_correct - z_incorrect per bin, intervals, Benjamini-Hochberg
* ``lexical``: pronoun, mental-state and dialogue rates of each benchmark's top bins (aggregates only)
* ``findings``: whether each finding of the paper variant survives the other aggregation variants
* ``paper``: the paper-vs-run table of every reported value the run produces

Writes one CSV per table (``TABLES``), ``contrast.json`` (units, the sharper-split test, what is unavailable and
why, the scale note) and four figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...artifacts import read_json, savefig, write_json, write_text
from ...errors import ProvenanceError
from ...taxonomy import load as load_taxonomy
from ..binning import BinningResult, captioned
from ..binning import load_result as load_binning
from ..sampling import iter_working_set
from . import correctness, figures, findings, lexical, paper, profiles

BINNING, SAMPLING = "03_binning", "01_sampling"
SUMMARY = "contrast.json"
TABLES = (
    "profile_correlations",
    "marginals",
    "top_marginals",
    "contrastive_topics",
    "interactional_split",
    "correctness_differential",
    "top_differentials",
    "lexical_bins",
    "lexical_profiles",
    "findings",
    "paper_vs_run",
)
DIFFERENTIAL_FIGURE = "correctness_differential.png"  # written when a benchmark has both correctness splits
ANALYSES = {"correctness_differential": "correctness differential", "lexical": "lexical profiles of the top bins"}
FIGURES = ("profile_correlations.png", "marginals.png", "contrastive_topics.png", DIFFERENTIAL_FIGURE)


@dataclass
class ContrastResult:
    out_dir: Path
    tables: dict[str, pd.DataFrame]
    summary: dict

    @property
    def note(self) -> str | None:
        return self.summary.get("scale_note")

    def show(self, name: str | pd.DataFrame, title: str | None = None):
        """A table (by name, or a frame) for the notebook, captioned with the world's scale note."""
        table = self.tables[name] if isinstance(name, str) else name
        return captioned(table, title or str(name).replace("_", " "), self.note)

    def correlation_matrices(self) -> pd.DataFrame:
        """This run's Pearson matrix beside the paper's (one frame, two column blocks)."""
        reported = paper.paper_reported()
        names = list(reported["benchmarks"])
        paper_r = pd.DataFrame(reported["profile_correlations"], index=names, columns=names).astype(float)
        run = profiles.correlation_matrix(self.tables["profile_correlations"], names)
        return pd.concat({"this run": run, "paper": paper_r}, axis=1)

    def top_labels(self, axis: str) -> pd.DataFrame:
        """The top formats (or topics) as one wide table: a row per direction and rank, a column per benchmark,
        each cell the label, its mean z and interval."""
        top = self.tables["top_marginals"]
        top = top[top["axis"] == axis]
        cells = top.assign(cell=[f"{r.label} {r.mean_z:.2f} [{r.low:.2f}, {r.high:.2f}]" for r in top.itertuples()])
        return (
            cells.pivot(index=["direction", "rank"], columns="benchmark", values="cell")
            .reindex(columns=[b for b in self.summary["benchmarks"] if b in set(top["benchmark"])])
            .sort_index(level=["direction", "rank"], ascending=[False, True])
        )

    def sharper_table(self) -> pd.DataFrame:
        """The sharper-split test as one column of named values."""
        test = dict(self.summary["sharper_split"])
        for contrast, value in test.pop("max_abs_delta", {}).items():
            test[f"max |delta| ({contrast})"] = value
        return pd.Series(test, name="value").to_frame()

    def why_unavailable(self, analysis: str) -> str | None:
        """Why this run lacks an analysis (``correctness_differential``, ``lexical``), in sentences; None when it
        has it for every benchmark."""
        why = self.summary.get("unavailable", {}).get(analysis)
        if not why:
            return None
        name = ANALYSES.get(analysis, analysis)
        if isinstance(why, str):
            return f"No {name} in this run: {why}."
        by_reason: dict[str, list[str]] = {}
        for benchmark in self.summary["benchmarks"]:
            if benchmark in why:
                by_reason.setdefault(why[benchmark], []).append(benchmark)
        return " ".join(f"No {name} for {', '.join(names)}: {reason}." for reason, names in by_reason.items())

    def agreement(self) -> pd.Series:
        """How many reported values agree, differ, or could not be produced or compared."""
        return pd.Series(self.summary["agreement"], name="values")


def load_result(out_dir: str | Path) -> ContrastResult:
    out_dir = Path(out_dir)
    if not (out_dir / SUMMARY).is_file():
        raise ProvenanceError(f"{out_dir} lacks stage 04's {SUMMARY}", "run stage 04 first")
    return ContrastResult(
        out_dir, {name: _read_table(out_dir / f"{name}.csv") for name in TABLES}, read_json(out_dir / SUMMARY)
    )


def _read_table(path: Path) -> pd.DataFrame:
    """A table as written; an analysis this world cannot run (lexical on a released matrix) wrote an empty one."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


# ----------------------------------------------------------------------------------------------- the stage
def run(stage) -> ContrastResult:
    """Stage 04 end to end: every analysis, the paper-vs-run table, the survival table, figures."""
    p = stage.params.contrast
    binning = load_binning(stage.input_dir(BINNING))
    rng = np.random.default_rng(stage.params.seed)
    z = binning.matrix("paper")
    replicates = expand_replicates(binning)
    tables, unavailable = {}, {}

    all_queries = None if replicates is None else replicates[:, 0]
    topic_reps, unit = profiles.marginal_replicates(z, "topic", all_queries, p.bin_bootstrap, rng)
    format_reps, _ = profiles.marginal_replicates(z, "format", all_queries, p.bin_bootstrap, rng)
    tables["profile_correlations"] = profiles.correlation_table(z, p.bin_bootstrap, p.ci_level, rng)
    tables["marginals"] = pd.concat(
        [
            profiles.marginals(z, "topic", topic_reps, unit, p.ci_level),
            profiles.marginals(z, "format", format_reps, unit, p.ci_level),
        ],
        ignore_index=True,
    )
    tables["top_marginals"] = profiles.top_marginals(tables["marginals"], p.top_n)
    tables["contrastive_topics"] = profiles.contrastive_topics(z, topic_reps, unit, p.ci_level)
    sharper = profiles.sharper_test(tables["contrastive_topics"], z, topic_reps, unit, p.ci_level)
    tables["interactional_split"] = profiles.interactional_split(z, p.lexical_top_bins)

    tables["correctness_differential"], missing = correctness.differential(binning, replicates, p.ci_level, p.fdr)
    tables["top_differentials"] = correctness.top_differentials(tables["correctness_differential"], p.top_n)
    if missing:
        unavailable["correctness_differential"] = missing

    tables["lexical_bins"], tables["lexical_profiles"] = lexical_tables(stage, binning, z, p.lexical_top_bins)
    if tables["lexical_bins"].empty:
        unavailable["lexical"] = "a released matrix has no working-set text"
    tables["findings"] = findings.survival(binning)
    intervals = binning.rows("paper").set_index(["bin", "benchmark"])[["z_low", "z_high"]]
    tables["paper_vs_run"] = paper.compare(
        stage.world.kind, z, {**tables, "bin_z_intervals": intervals}, unavailable, binning.summary["n_queries"]
    )

    statuses = tables["paper_vs_run"]["status"].str.split(":").str[0].value_counts()
    summary = dict(
        world_kind=stage.world.kind,
        scale_note=binning.note,
        benchmarks=binning.benchmarks,
        interval_units={
            "profile_correlations": "bins",
            "marginals and contrasts": unit,
            "correctness_differential": "queries+documents",
        },
        replicates=None if replicates is None else len(replicates),
        bin_bootstrap=p.bin_bootstrap,
        ci_level=p.ci_level,
        fdr=p.fdr,
        top_n=p.top_n,
        sharper_split=sharper,
        unavailable=unavailable,
        variants=binning.summary["variants"],
        agreement={k: int(v) for k, v in statuses.items()},
    )
    for name, table in tables.items():
        write_text(stage.out_dir / f"{name}.csv", table.to_csv(index=False))
    write_json(stage.out_dir / SUMMARY, summary)
    result = load_result(stage.out_dir)  # exactly what a notebook opened later shows
    save_figures(result, binning)
    return result


def expand_replicates(binning: BinningResult) -> np.ndarray | None:
    """Stage 03's replicates (replicates, splits, benchmarks, scored bins) spread onto all 576 bins (NaN: masked)."""
    compact = binning.replicates()
    if compact is None:
        return None
    full = np.full((*compact.shape[:3], load_taxonomy().n_bins), np.nan)
    full[..., binning.summary["scored_bin_ids"]] = compact
    return full


def lexical_tables(stage, binning: BinningResult, z: pd.DataFrame, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-bin lexical profiles of the working set and the pooled profile of each benchmark's top-k bins (empty
    frames for a released matrix, which has no text)."""
    if stage.world.kind == "released":
        return pd.DataFrame(), pd.DataFrame()
    counts = lexical.profile_bins(iter_working_set(stage.input_dir(SAMPLING)))
    return (lexical.bin_profiles(counts, binning.summary["scored_bin_ids"]), lexical.top_bin_profiles(counts, z, k))


def save_figures(result: ContrastResult, binning: BinningResult) -> None:
    """The stage's figures; one with nothing to draw (no benchmark with a correctness split) is not written, and
    ``summary["unavailable"]`` says why."""
    import matplotlib.pyplot as plt

    t = result.tables
    made = {
        "profile_correlations.png": figures.plot_correlations(result.correlation_matrices(), result.note),
        "marginals.png": figures.plot_marginals(t["marginals"], result.note),
        "contrastive_topics.png": figures.plot_contrasts(
            t["contrastive_topics"], result.summary["sharper_split"], result.note
        ),
        DIFFERENTIAL_FIGURE: figures.plot_differential(t["correctness_differential"], binning.benchmarks, result.note),
    }
    for name, fig in made.items():
        if fig is not None:
            savefig(result.out_dir / name, fig)
            plt.close(fig)

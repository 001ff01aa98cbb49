"""Stage 03 — binning: the signed 576-bin x benchmark influence matrix and its within-benchmark z-scores.

Reads stage 02's scores (``02_gradients/``, checked against this run's stage 01 manifest) and aggregates them per
WebOrganizer bin with the paper's definition and the sensitivity variants beside it (``variants``), each for all
queries and for the correctly / incorrectly answered ones; bootstrap intervals over queries and documents
(``bootstrap``), Benjamini-Hochberg over the bins (``matrix``). On the released world it imports the paper's
published matrix instead (no corpus, no model). Writes (``outputs``):

* ``bin_influence.parquet`` (released): bin, topic, format, benchmark, variant, split, mean_score, z, z_low, z_high,
  p_value, q_value, n_docs, n_queries, masked
* ``zscored_<benchmark>.csv`` (released): the paper variant in the paper's released layout and file names, so a run
  diffs directly against the paper's files
* ``bootstrap_z.npy`` (internal, read by stage 04): the paper variant's replicate z
* ``binning.json``: benchmarks, variants computed and skipped (why), masked bins, bootstrap settings, scale note
* heatmaps: one per benchmark, the 2 x 2 design, and the 2 x 2 of every other variant
"""

from __future__ import annotations

import pandas as pd
from natsort import natsorted

from ...artifacts import sha256_file
from ...benchmarks import BY_NAME
from ...errors import ProvenanceError
from ...taxonomy import load as load_taxonomy
from ...worlds.contract import scale_note
from ...worlds.released import world_matrix
from ..gradients.scores import GradientScores
from ..sampling import MANIFEST
from .matrix import compute, released_table
from .outputs import (
    HEATMAP_2X2,
    REPLICATES,
    SUMMARY,
    TABLE,
    BinningResult,
    captioned,
    heatmap_name,
    load_result,
    paper_layout,
    plot_heatmaps,
    save_figures,
    variant_heatmap_name,
    write_outputs,
)
from .variants import SPLITS, VARIANTS, Variant, VariantUnavailable

GRADIENTS, SAMPLING = "02_gradients", "01_sampling"


def run(stage) -> BinningResult:
    """Stage 03 end to end: aggregate (or import) the matrix, write the table, the released layout, the replicates,
    the summary and the heatmaps."""
    params = stage.params.binning
    if stage.world.kind == "released":
        table, replicates = released_table(world_matrix(stage.world_dir, stage.world)), None
        summary = dict(
            source="the paper's released files",
            variants=["paper"],
            skipped={
                name: "a released matrix is already aggregated: only the paper's definition applies"
                for name in params.variants
                if name != "paper"
            },
            bootstrap=0,
        )
    else:
        inputs, provenance = load_inputs(stage)
        table, replicates, skipped = compute(inputs, params, stage.params.seed)
        summary = dict(
            source=provenance,
            variants=list(table["variant"].unique()),
            skipped=skipped,
            bootstrap=params.bootstrap,
            seed=stage.params.seed,
        )
    summary.update(reading_of(params, summary))
    result = write_outputs(stage.out_dir, table, {**summary, **describe(table, params, stage.world.kind)}, replicates)
    save_figures(result)
    return result


def load_inputs(stage) -> tuple[dict[str, GradientScores], dict]:
    """Stage 02's scores of this run, checked against its stage 01 manifest (``load_scores``)."""
    return load_scores(
        stage.input_dir(GRADIENTS),
        sha256_file(stage.input_dir(SAMPLING) / MANIFEST),
        list(stage.world.tasks) or list(BY_NAME),
    )


def load_scores(folder, manifest_sha256: str, expected: list[str]) -> tuple[dict[str, GradientScores], dict]:
    """Stage 02's scores in ``folder``, checked: same working set as ``manifest_sha256``, every ``expected``
    benchmark scored. When stage 02 summed checkpoints, {"final": the last checkpoint's own scores (the last of the
    recipe's checkpoints, else of their labels in natural order), "summed": the sum}."""
    summed = GradientScores.load(folder)
    summed.check_manifest(manifest_sha256)
    unscored = [name for name in expected if name not in summed.benchmarks]
    if unscored:
        raise ProvenanceError(
            f"stage 02 scored no queries of {unscored}: a benchmark without queries has no influence matrix",
            "check the world's eval items for it and rerun stage 02",
        )
    labels = GradientScores.checkpoints(folder)
    if not labels:
        return {"final": summed}, dict(scores="02_gradients (one checkpoint)", manifest_sha256=manifest_sha256)
    recorded = summed.info.get("recipe", {}).get("checkpoints", [])  # stage 02 lists them in training order
    in_order = [label for label in recorded if label in labels] or natsorted(labels)
    final = GradientScores.load(folder, in_order[-1])
    final.check_manifest(manifest_sha256)
    return {"final": final, "summed": summed}, dict(
        scores=f"02_gradients/checkpoints/{in_order[-1]} (final); 02_gradients (summed over {len(labels)})",
        manifest_sha256=manifest_sha256,
    )


def reading_of(params, summary: dict) -> dict:
    """The variant the study reads (``binning.reading``), or 'paper' with the reason when this world could not
    compute it."""
    if params.reading in summary["variants"]:
        return dict(reading=params.reading)
    return dict(
        reading="paper",
        reading_fallback=f"binning.reading {params.reading!r} not computed: "
        f"{summary['skipped'].get(params.reading, 'not in binning.variants')}",
    )


def describe(table, params, world_kind: str) -> dict:
    """What the table holds and what was masked, for the summary."""
    tax = load_taxonomy()
    first = table[table["variant"] == "paper"].drop_duplicates("bin").sort_values("bin")
    masked = first[first["masked"] & (first["n_docs"] > 0)]
    scored = int((~first["masked"]).sum())
    queries = (
        table[table["variant"] == "paper"]
        .drop_duplicates(["benchmark", "split"])
        .set_index(["benchmark", "split"])["n_queries"]
    )
    return dict(
        world_kind=world_kind,
        scale_note=scale_note(world_kind, int((first["n_docs"] > 0).sum())),
        benchmarks=[b for b in BY_NAME if b in set(table["benchmark"])],
        splits=list(SPLITS),
        min_docs=params.min_docs,
        ci_level=params.ci_level,
        fdr=params.fdr,
        scored_bins=scored,
        scored_bin_ids=first.loc[~first["masked"], "bin"].astype(int).tolist(),
        empty_bins=int((first["n_docs"] == 0).sum()),
        masked_bins=[[int(b), tax.bin_name(int(b)), int(n)] for b, n in zip(masked["bin"], masked["n_docs"])],
        n_queries={f"{b} / {s}": None if pd.isna(n) else int(n) for (b, s), n in queries.items()},
    )

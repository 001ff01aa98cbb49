"""Stage 01's released artifacts: the manifest (ids and hashes, no text), the summary, the corpus-skew statistics
beside the paper's, and the 24 x 24 heatmaps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ... import taxonomy
from ...artifacts import read_json, savefig, write_json, write_parquet
from ...errors import ProvenanceError
from ...heatmap import counts, draw_bins
from ...reported import paper_reported
from ...stats import skew_statistics
from .job import HEATMAP, LABEL_AXES, MANIFEST, MANIFEST_SCHEMA, ROW_BITS, SKEW, SUMMARY, SamplingJob
from .select import Selection

if TYPE_CHECKING:
    import pandas as pd


def paper_skew() -> dict[str, float]:
    return paper_reported()["corpus_skew"]


def skew_table(skew: dict) -> pd.DataFrame:
    """Population and working-set skew beside the paper's (Dolma3 population) values."""
    import pandas as pd

    paper = paper_skew()
    return pd.DataFrame(
        {
            "population": skew["population"],
            "working_set": skew["working_set"],
            "paper_population": {k: paper.get(k) for k in skew["population"]},
        }
    ).rename_axis("statistic")


# ----------------------------------------------------------------------------------------------- results
@dataclass
class SamplingResult:
    out_dir: Path
    summary: dict
    skew: dict

    def bin_table(self) -> pd.DataFrame:
        """One row per bin: names, population and sampled documents and tokens."""
        import pandas as pd

        return pd.DataFrame(self.summary["per_bin"])

    def bins_overview(self) -> str:
        """One line: full, underfilled and empty bins, and the smallest non-empty one."""
        bins = self.summary["bins"]
        smallest = bins["smallest_nonempty"]
        return (
            f"{bins['full']} full bins, {len(bins['underfilled'])} underfilled, {len(bins['empty'])} empty; "
            f"smallest non-empty: {smallest['bin_name']} ({smallest['docs']} documents)"
        )

    def underfilled_table(self) -> pd.DataFrame:
        """Bins with fewer documents than the target, smallest first (no rows when every bin is full)."""
        import pandas as pd

        rows = self.summary["bins"]["underfilled"]
        return pd.DataFrame(rows, columns=["bin", "bin_name", "docs"]).sort_values(["docs", "bin"], ignore_index=True)

    def totals_table(self) -> pd.DataFrame:
        import pandas as pd

        s = self.summary
        rows = {
            **{f"documents: {k}": v for k, v in s["documents"].items() if not isinstance(v, dict)},
            **{f"tokens: {k}": v for k, v in s["tokens"].items()},
            "bins: full": s["bins"]["full"],
            "bins: underfilled": len(s["bins"]["underfilled"]),
            "bins: empty": len(s["bins"]["empty"]),
            "bins: smallest non-empty": "{bin_name} ({docs} docs)".format(**s["bins"]["smallest_nonempty"]),
        }
        return pd.Series(rows, name="value").to_frame()


def load_result(out_dir: str | Path) -> SamplingResult:
    out_dir = Path(out_dir)
    return SamplingResult(out_dir, read_json(out_dir / SUMMARY), read_json(out_dir / SKEW))


def build_summary(job: SamplingJob, selection: Selection) -> dict:
    tax = taxonomy.load()
    sampled_docs = np.bincount(selection.sampled.bin.astype(np.int64), minlength=tax.n_bins)
    sampled_tokens = np.bincount(
        selection.sampled.bin.astype(np.int64), weights=selection.sampled.tokens, minlength=tax.n_bins
    ).astype(np.int64)
    pop = selection.population_docs
    per_bin = [
        dict(
            bin=b,
            bin_name=tax.bin_name(b),
            population_docs=int(pop[b]),
            population_tokens=int(selection.population_tokens[b]),
            sampled_docs=int(sampled_docs[b]),
            sampled_tokens=int(sampled_tokens[b]),
        )
        for b in range(tax.n_bins)
    ]
    smallest = min((r for r in per_bin if r["population_docs"]), key=lambda r: (r["population_docs"], r["bin"]))
    c = selection.counts
    return {
        "seed": job.seed,
        "target_per_bin": job.target_per_bin,
        "token_count": job.tokens,
        "shards": len(job.shards),
        "documents": {
            "read": c["documents"],
            "removed_empty_text": c["removed_empty_text"],
            "removed_duplicate_id": c["removed_duplicate_id"],
            "conflicting_duplicate_id": c["conflicting_duplicate_id"],
            "removed_duplicate_text": c["removed_duplicate_text"],
            "unique": c["unique"],
            "unlabelled_unique": c["unlabelled_unique"],
            "population": int(pop.sum()),
            "sampled": int(sampled_docs.sum()),
            "labels": {
                f"{axis}_{source}": c[f"{axis}_{source}"]
                for axis in LABEL_AXES
                for source in ("from_metadata", "from_classifier", "missing")
            },
        },
        "tokens": {"population": int(selection.population_tokens.sum()), "sampled": int(sampled_tokens.sum())},
        "bins": {
            "total": tax.n_bins,
            "full": int(np.sum(pop >= job.target_per_bin)),
            "underfilled": [
                dict(bin=r["bin"], bin_name=r["bin_name"], docs=r["population_docs"])
                for r in per_bin
                if 0 < r["population_docs"] < job.target_per_bin
            ],
            "empty": [dict(bin=r["bin"], bin_name=r["bin_name"]) for r in per_bin if r["population_docs"] == 0],
            "smallest_nonempty": dict(
                bin=smallest["bin"], bin_name=smallest["bin_name"], docs=smallest["population_docs"]
            ),
        },
        "per_bin": per_bin,
    }


def manifest_table(job: SamplingJob, selection: Selection, ids_by_shard: dict[int, list[str]]) -> pa.Table:
    """The released manifest: one row per sampled document, sorted by (bin, source shard, row); no text."""
    tax = taxonomy.load()
    sampled = selection.sampled
    shard_of = (sampled.position >> np.uint64(ROW_BITS)).astype(np.int64)
    ids = [doc_id for ordinal in sorted(ids_by_shard) for doc_id in ids_by_shard[ordinal]]
    if len(ids) != len(sampled):
        raise ProvenanceError(f"fetched {len(ids)} sampled documents, expected {len(sampled)}")
    order = np.lexsort((sampled.position, sampled.bin))
    bins = sampled.bin[order].astype(np.int64)
    labels = [tax.bin_labels(b) for b in range(tax.n_bins)]
    return pa.table(
        {
            "id": pa.array(ids).take(order),
            "source_shard": pa.array([shard.name for shard in job.shards]).take(shard_of[order]),
            "row": (sampled.position[order] & np.uint64((1 << ROW_BITS) - 1)).astype(np.int64),
            "bin": sampled.bin[order],
            "topic": pa.array([topic.short for topic, _ in labels]).take(bins),
            "format": pa.array([fmt.short for _, fmt in labels]).take(bins),
            "tokens": sampled.tokens[order].astype(np.int64),
            "text_hash": [f"{int(h):016x}" for h in sampled.text_hash[order]],
        },
        schema=MANIFEST_SCHEMA,
    )


def write_outputs(
    job: SamplingJob, selection: Selection, ids_by_shard: dict[int, list[str]], left_out: dict | None = None
) -> SamplingResult:
    out_dir = Path(job.out_dir)
    write_parquet(out_dir / MANIFEST, manifest_table(job, selection, ids_by_shard))
    summary = build_summary(job, selection)
    if left_out is not None:
        summary["left_out"] = left_out
    per_bin = summary["per_bin"]
    skew = {
        "population": skew_statistics(
            np.array([r["population_docs"] for r in per_bin]), np.array([r["population_tokens"] for r in per_bin])
        ),
        "working_set": skew_statistics(
            np.array([r["sampled_docs"] for r in per_bin]), np.array([r["sampled_tokens"] for r in per_bin])
        ),
    }
    write_json(out_dir / SUMMARY, summary)
    write_json(out_dir / SKEW, skew)
    return SamplingResult(out_dir, summary, skew)


def plot_skew(result: SamplingResult):
    """24 x 24 heatmaps (topics rows, formats columns) of the population and the working set, documents per bin, on
    one log scale."""
    import matplotlib.pyplot as plt

    table = result.bin_table()
    panels = (
        ("population_docs", "population (after de-duplication)"),
        ("sampled_docs", f"working set (target {result.summary['target_per_bin']})"),
    )
    scale = counts(table[[column for column, _ in panels]].to_numpy(), "documents per bin", "skew panel")
    fig, axes = plt.subplots(1, 2, figsize=(22, 9.5), layout="constrained")
    for ax, (column, title) in zip(axes, panels):
        draw_bins(ax, table[column].to_numpy(), title, scale)
    return fig


def save_heatmap(result: SamplingResult) -> Path:
    import matplotlib.pyplot as plt

    fig = plot_skew(result)
    path = savefig(result.out_dir / HEATMAP, fig)
    plt.close(fig)  # the notebook shows the saved file; an open figure would be drawn a second time
    return path

"""The release's dataset card and citation: what the run is (world, models, stages), each table's fields, the
findings the stages wrote, the limits a reader must know (the ARC-Challenge mismatch, what is absent), and the
hub's YAML front matter that makes ``datasets.load_dataset`` read the folder."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd
import yaml

from .errors import ProvenanceError
from .record import COMPLETE, WORLD_STAGE, RunRecord
from .release_fields import describe
from .summaries import stage_findings
from .worlds.contract import load_world
from .worlds.released import SOURCE, WORLD_FOLDER, source_upstream

LICENCE = "cc-by-4.0"  # the paper released its matrix under CC BY 4.0; aggregates of a run follow it
BENCHMARK_DATASETS = ("allenai/social_i_qa", "cais/mmlu", "allenai/ai2_arc")
PAPER_AUTHORS = [{"family-names": "Matlin"}, {"name": "et al."}]
"""The paper's authors as far as the package's references know them: paper_reported.yaml and the released files'
SOURCE.md name only "Matlin et al." (the upstream BibTeX was not retrieved). Complete the list from
arXiv:2606.19625 before publishing; the repository's CITATION.cff holds the same entry."""


# ----------------------------------------------------------------------------------------------- the card
def describe_run(record: RunRecord) -> dict:
    """What the card and the citation say about the run: world, models, corpus, stages present and absent."""
    world_dir = record.run_dir / "world"
    world = load_world(world_dir) if (world_dir / "world.json").is_file() else None
    params = record.run.params or {}
    last = record.invocations[-1].model_dump() if record.invocations else {}
    completed = sorted(s for s, e in record.stages.items() if e.status == COMPLETE and s != WORLD_STAGE)
    return dict(
        name=record.run.name,
        world=world.kind if world else None,
        base_model=world.base_model if world else None,
        query_model=world.query_model if world else None,
        corpus_dataset=(params.get("world") or {}).get("corpus_dataset"),
        params_sha256=record.run.params_sha256,
        commit=(last.get("git") or {}).get("commit"),
        dirty=(last.get("git") or {}).get("dirty"),
        stages=completed,
        version=(last.get("versions") or {}).get("provenance-lib"),
    )


def size_category(rows: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
    ):
        if rows < limit:
            return label
    return "n>1T" if rows > 1e12 else "100M<n<1B"


def table_columns(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path).names
    return list(pd.read_csv(path, nrows=0).columns)


def describe_field(table: str, column: str) -> tuple[str, str]:
    """A column's description and unit; the split files of the paper's matrix share one table's fields."""
    return describe(table if not table.startswith("zscored_") else "bin_scores", column)


def table_rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    try:
        return len(pd.read_csv(path))
    except pd.errors.EmptyDataError:
        return 0


def hub_configs(files: list[dict]) -> list[dict]:
    """One ``configs`` entry per CSV table; the paper's matrix (``bin_scores``) is the default. ``datasets`` picks
    one builder per repository (from the first config's files), so the configs share the paper's CSV format; the
    parquet tables are loaded with ``load_dataset("parquet", data_files=...)`` (the card says so)."""
    configs: dict[str, dict] = {}
    for entry in files:
        if not entry["config"] or not entry["path"].endswith(".csv"):
            continue
        config = configs.setdefault(entry["config"], dict(config_name=entry["config"], data_files=[]))
        config["data_files"].append(dict(split=entry["split"] or "train", path=entry["path"]))
    ordered = sorted(configs.values(), key=lambda c: (c["config_name"] != "bin_scores", c["config_name"]))
    if ordered and ordered[0]["config_name"] == "bin_scores":
        ordered[0] = dict(config_name="bin_scores", default=True, data_files=ordered[0]["data_files"])
    return ordered


def parquet_tables(files: list[dict]) -> list[dict]:
    return [e for e in files if e["config"] and e["path"].endswith(".parquet")]


def front_matter(info: dict, files: list[dict], out: Path) -> dict:
    rows = sum(table_rows(out / e["path"]) for e in files if e["config"])
    corpus = [info["corpus_dataset"]] if info["corpus_dataset"] else []
    return dict(
        license=LICENCE,
        pretty_name=f"Capability provenance: {info['name']} ({info['world']} world)",
        task_categories=["other"],
        language=["en"],
        size_categories=[size_category(rows)],
        source_datasets=[f"extended|{d}" for d in (*corpus, *BENCHMARK_DATASETS)],
        tags=["training-data-attribution", "trackstar", "weborganizer", "unlearning", "provenance"],
        configs=hub_configs(files),
    )


STAGE_NAMES = {
    "01_sampling": "sampling",
    "02_gradients": "gradients",
    "03_binning": "binning",
    "04_contrast": "contrast",
    "05_unlearning": "unlearning",
}


# ----------------------------------------------------------------------------------------------- findings, limits
ANALYSIS_OF_TABLE = {
    "correctness_differential": "correctness_differential",
    "top_differentials": "correctness_differential",
    "lexical_bins": "lexical",
    "lexical_profiles": "lexical",
}


def stage_result(record: RunRecord, stage_id: str):
    """A completed stage's result object, or None when this checkout cannot read it."""
    if not record.completed(stage_id) or stage_id not in STAGE_NAMES:
        return None
    try:
        return importlib.import_module(f"provenance_lib.stages.{STAGE_NAMES[stage_id]}").load_result(
            record.run_dir / stage_id
        )
    except (ProvenanceError, OSError, KeyError):
        return None


def card_findings(record: RunRecord) -> list[str]:
    """What each released stage found, in the sentences its notebook and the report end with."""
    found = []
    for stage_id in STAGE_NAMES:
        result = stage_result(record, stage_id)
        found += [f"**{stage_id}**: {sentence}" for sentence in (stage_findings(stage_id, result) if result else [])]
    return found


def limitations(record: RunRecord, info: dict) -> list[str]:
    """What a reader must not take these tables for, from the world and the run's own records."""
    out = []
    if info["world"] not in ("paper", "released"):
        out.append(
            f"A `{info['world']}` world: another corpus and model than the paper's. Its numbers demonstrate "
            "the pipeline; they are not provenance findings about OLMo3-7B."
        )
    contrast = stage_result(record, "04_contrast")
    if info["world"] == "released":
        out.append(
            "This run computed no attribution: its matrix is the paper's released one, so it inherits that "
            "release's choices; the files carry no query-level scores, so every interval resamples bins."
        )
        out.append(arc_challenge_mismatch(contrast))
    if contrast is not None:
        out += [why for why in map(contrast.why_unavailable, ("correctness_differential", "lexical")) if why]
    absent = [s for s in STAGE_NAMES if s not in info["stages"]]
    if absent:
        out.append(f"Stages not in this run, so none of their tables: {', '.join(absent)}.")
    return out


def arc_challenge_mismatch(contrast) -> str:
    """The paper's released ARC-Challenge file against the ARC-Challenge values the paper reports."""
    text = (
        "The paper's released ARC-Challenge file (`zscored_arc_challenge.csv`) does not match the paper's "
        "reported ARC-Challenge values: per its SOURCE.md, the upstream export takes that file's `mean_score` "
        "from its per-query `mean_influence` aggregate"
    )
    if contrast is not None:
        table = contrast.tables["paper_vs_run"]
        compared = table[table["status"].isin(["agrees", "differs"])]
        arc = compared["benchmark"].str.contains("ARC-Challenge")
        differs = compared["status"] == "differs"
        text += (
            f". Of the reported values involving ARC-Challenge, {int(differs[arc].sum())} of {int(arc.sum())} "
            f"differ in this run, against {int(differs[~arc].sum())} of {int((~arc).sum())} for the other three "
            "benchmarks (`data/contrast/paper_vs_run.csv`)"
        )
    return text + ". Read its z-scores, and the correlations and contrasts involving it, with that in mind."


def why_omitted(record: RunRecord, source: str) -> str:
    analysis = ANALYSIS_OF_TABLE.get(Path(source).stem)
    contrast = stage_result(record, "04_contrast") if analysis else None
    return (contrast.why_unavailable(analysis) if contrast else None) or "no rows in this run"


def upstream_sentence(record: RunRecord) -> str | None:
    """Where the paper's files of a released-world run come from (they are byte copies)."""
    folder = record.run_dir / "world" / WORLD_FOLDER
    if not (folder / SOURCE).is_file():
        return None
    up = source_upstream(folder)
    return (
        f"`data/bin_scores/*.csv` are byte copies of the paper's released matrix: {up['repository']}, "
        f"`{up['path']}` at commit `{up['commit']}` (CC BY 4.0; their sha256 match the upstream MANIFEST.sha256 "
        "and `release.json`). Attribute Matlin et al., arXiv:2606.19625."
    )


def dataset_card(info: dict, files: list[dict], out: Path) -> str:
    meta = yaml.safe_dump(front_matter(info, files, out), sort_keys=False, allow_unicode=True)
    absent = [s for s in STAGE_NAMES if s not in info["stages"]]
    scale = (
        ""
        if info["world"] in ("paper", "released")
        else f"\n> **Scale.** This run is a `{info['world']}` world: another corpus and model than the paper's. Its "
        "numbers demonstrate the pipeline; they are not provenance findings about OLMo3-7B.\n"
    )
    lines = [
        f"---\n{meta}---",
        f"# Capability provenance release: `{info['name']}`",
        scale,
        "Aggregate artifacts of one run of provenance-lib, reproducing "
        "*Where Does Social Reasoning Come From? Capability Provenance in Language Models* (Matlin et al., "
        "COLM 2026): TrackStar attribution of SocialIQA, MMLU Social Sciences, ARC-Challenge and MMLU STEM "
        "to pretraining data, binned over the WebOrganizer taxonomy (24 topics x 24 formats).",
        "",
        "## Summary of findings",
        "",
        *(f"- {f}" for f in info["findings"] or ["no stage result to summarise"]),
        "",
        "## The run",
        "",
        f"- world: `{info['world']}`; base model `{info['base_model']}`, query model `{info['query_model']}`",
        f"- code: commit `{info['commit']}`{' (uncommitted changes)' if info['dirty'] else ''}, "
        f"provenance-lib {info['version']}; params sha256 `{info['params_sha256']}`",
        f"- stages released: {', '.join(info['stages']) or 'none'}"
        + (f"; not in this run: {', '.join(absent)}" if absent else ""),
    ]
    if info.get("upstream"):
        lines += ["", "## Source of the paper's files", "", info["upstream"]]
    lines += [
        "",
        "## Limitations",
        "",
        *(f"- {limit}" for limit in info["limitations"]),
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        'matrix = load_dataset("<this repo or folder>")   # bin_scores: one split per benchmark',
    ]
    lines += [
        f'{e["config"]} = load_dataset("parquet", data_files="<this repo or folder>/{e["path"]}")'
        for e in parquet_tables(files)
    ]
    lines += [
        "```",
        "",
        "CSV configs: " + ", ".join(f"`{c['config_name']}`" for c in hub_configs(files)) + ".",
        "",
        "## Files",
        "",
        "| file | from | what | sha256 |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{e['path']}` | `{e['source']}` | {e['description']} | `{e['sha256'][:16]}…` |" for e in files]
    lines += ["", "Full hashes: `release.json` (they match the run's `run.json`)."]
    if info["omitted"]:
        lines += [
            "",
            "Not released (no rows in this run, so no empty file ships):",
            "",
            *(f"- `{source}`: {why}" for source, why in info["omitted"]),
        ]
    lines += ["", "## Fields", ""]
    for entry in (e for e in files if e.get("fields")):
        if entry["split"] and entry["split"] != files[next(i for i, e in enumerate(files) if e.get("split"))]["split"]:
            continue  # the paper's matrix: one field table for its four split files
        lines += [
            f"`{entry['path']}`" + (" (and the other splits)" if entry["split"] else "") + ":",
            "",
            "| column | what | unit |",
            "|---|---|---|",
            *(f"| `{column}` | {_cell(what)} | {_cell(unit)} |" for column, what, unit in entry["fields"]),
            "",
        ]
    lines += [
        "",
        "## Policy",
        "",
        "Aggregates, ids and hashes only: no document text, and no document-level scores "
        "unless the release was made with `--document-scores`.",
        "",
        "## Citation",
        "",
        "See `CITATION.cff`. Cite the paper: Matlin et al., arXiv:2606.19625, COLM 2026.",
    ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text for a Markdown table cell (a pipe would end the cell)."""
    return text.replace("|", "\\|")


def citation(info: dict) -> str:
    cff = dict(
        {"cff-version": "1.2.0"},
        message="If you use this release, cite it and the study it reproduces.",
        type="dataset",
        title=f"Capability provenance release: {info['name']} ({info['world']} world)",
        license="CC-BY-4.0",
        authors=[dict(name="Capability provenance contributors")],
        keywords=["training data attribution", "TrackStar", "WebOrganizer", "unlearning"],
        **({"commit": info["commit"]} if info["commit"] else {}),
        references=[
            dict(
                type="software",
                title="provenance-lib",
                authors=[dict(name="Capability provenance contributors")],
                license="Apache-2.0",
                **({"version": info["version"]} if info["version"] else {}),
            )
        ],
        **{
            "preferred-citation": dict(
                type="conference-paper",
                title="Where Does Social Reasoning Come From? Capability Provenance in Language Models",
                authors=PAPER_AUTHORS,
                year=2026,
                conference=dict(name="Conference on Language Modeling (COLM 2026)"),
                identifiers=[dict(type="other", value="arXiv:2606.19625", description="arXiv identifier")],
                url="https://arxiv.org/abs/2606.19625",
            )
        },
    )
    return yaml.safe_dump(cff, sort_keys=False, allow_unicode=True)

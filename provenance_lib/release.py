"""The release folder: a run's publishable artifacts, laid out as a Hugging Face dataset repository.

``python -m provenance_lib release runs/<name> --out DIR`` copies what the paper's release policy allows —
aggregates, ids and hashes; no document text, no document-level scores unless ``document_scores`` says otherwise —
from the completed stages of a run, checks each file against the sha256 the run record holds for it (a file changed
since the run wrote it stops the release), and writes beside them:

``README.md``      the dataset card: the hub's YAML front matter (licence, task categories, size, source datasets,
                   one ``configs`` entry per table so ``datasets.load_dataset(DIR, <config>)`` loads it; the paper's
                   576-bin matrix is the default config, one split per benchmark) and what each file is
``CITATION.cff``   cite the release, the software and the paper
``release.json``   every file with its sha256, and for copied files the run artifact and stage it came from

Adapters (stage 05) keep their folders and model cards under ``adapters/``, ready to push as model repositories.
Stages a run does not have are named in the card as absent; the release never invents them.
"""

from __future__ import annotations

import fnmatch
import shutil
from dataclasses import dataclass
from pathlib import Path


from .artifacts import replace_dir, sha256_file, write_json, write_text
from .errors import ProvenanceError
from .record import COMPLETE, WORLD_STAGE, RunRecord
from .release_card import (
    card_findings,
    citation,
    dataset_card,
    describe_field,
    describe_run,
    limitations,
    table_columns,
    table_rows,
    upstream_sentence,
    why_omitted,
)

CARD, CITATION, INDEX = "README.md", "CITATION.cff", "release.json"
TEXT_COLUMNS = ("text", "content", "document")  # document text never leaves the run


@dataclass(frozen=True)
class Rule:
    """Which artifacts of a stage are released, where they go (``{name}``: file name, ``{stem}``, ``{rel}``: the
    path inside the stage folder) and, for tables, the dataset config that loads them (``split``: a config with
    one file per split, the split named by the file stem after ``zscored_``)."""

    stage: str
    pattern: str
    target: str
    config: str | None = None
    split: bool = False
    description: str = ""


RULES = (
    Rule(
        "01_sampling",
        "manifest.parquet",
        "data/sampling/manifest.parquet",
        "sampling_manifest",
        description="the working set: id, source shard and row, bin, topic, format, tokens, text hash (no text)",
    ),
    Rule(
        "01_sampling",
        "sampling_summary.json",
        "data/sampling/{name}",
        description="population and working-set counts per bin, corpus-skew statistics",
    ),
    Rule(
        "03_binning",
        "zscored_*.csv",
        "data/bin_scores/{name}",
        "bin_scores",
        split=True,
        description="the 576-bin matrix in the paper's released layout (topic_label, format_label, mean_score, "
        "zscore, doc_count), one file per benchmark: diff it against the paper's files",
    ),
    Rule(
        "03_binning",
        "bin_influence.parquet",
        "data/binning/{name}",
        "bin_influence",
        description="every variant and split: z, bootstrap interval, p and BH q per bin and benchmark",
    ),
    Rule("03_binning", "binning.json", "data/binning/{name}", description="variants, masked bins, bootstrap settings"),
    Rule("04_contrast", "*.csv", "data/contrast/{name}", "contrast_{stem}", description="a stage 04 table"),
    Rule("04_contrast", "contrast.json", "data/contrast/{name}", description="units, tests, what is unavailable"),
    Rule(
        "05_unlearning",
        "forget_sets/*.parquet",
        "data/unlearning/forget_sets/{name}",
        "forget_{stem}",
        description="forget-set manifests: document ids of every targeted and random set",
    ),
    Rule(
        "05_unlearning",
        "*.parquet",
        "data/unlearning/{name}",
        "unlearning_{stem}",
        description="a stage 05 table (runs, benchmark items, pairs, statistics)",
    ),
    Rule("05_unlearning", "*.json", "data/unlearning/{name}", description="stage 05 summary"),
    Rule(
        "05_unlearning",
        "adapters/*",
        "adapters/{rel_in_adapters}",
        description="a LoRA adapter with its model card (push as a model repository)",
    ),
    Rule("*", "*.png", "figures/{stage}/{name}", description="a figure"),
)
DOCUMENT_SCORES = Rule(
    "02_gradients",
    "doc_scores.parquet",
    "data/gradients/{name}",
    "document_scores",
    description="per-document mean scores per benchmark (released on request only)",
)


def build_release(run_dir: str | Path, out: str | Path, document_scores: bool = False) -> Path:
    """Write the release folder of ``run_dir`` into ``out`` (created; an existing non-empty folder that is not a
    release is refused). Returns ``out``."""
    run_dir, out = Path(run_dir), Path(out)
    record = RunRecord.existing(run_dir)
    if out.exists() and any(out.iterdir()) and not (out / INDEX).is_file():
        raise ProvenanceError(f"{out} exists and is not a release folder", "choose an empty or new --out folder")
    staging = out.with_name(out.name + ".tmp-release")  # built aside, then swapped in: a failure leaves no half
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        write_release(record, staging, RULES + ((DOCUMENT_SCORES,) if document_scores else ()), document_scores)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, out)
    return out


def write_release(record: RunRecord, out: Path, rules: tuple[Rule, ...], document_scores: bool) -> None:
    files, omitted = collect(record, rules)
    for entry in files:
        target = out / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(record.run_dir / entry["source"], target)
        if target.suffix == ".parquet" and entry["config"]:
            check_aggregate(target)
        if entry["config"]:
            entry["fields"] = [
                [column, *describe_field(Path(entry["path"]).stem, column)] for column in table_columns(target)
            ]
    info = describe_run(record)
    info.update(
        findings=card_findings(record),
        limitations=limitations(record, info),
        upstream=upstream_sentence(record),
        omitted=[(source, why_omitted(record, source)) for source in omitted],
    )
    write_text(out / CARD, dataset_card(info, files, out))
    write_text(out / CITATION, citation(info))
    generated = [
        dict(path=name, sha256=sha256_file(out / name), generated_by="provenance_lib.release")
        for name in (CARD, CITATION)
    ]
    write_json(out / INDEX, dict(run=info, document_scores=document_scores, files=files + generated))


def collect(record: RunRecord, rules: tuple[Rule, ...]) -> tuple[list[dict], list[str]]:
    """The files the rules release, each checked against the sha256 its stage recorded (first matching rule wins),
    and the tables left out because they have no rows (an analysis this world cannot run: no empty file ships)."""
    files, omitted, taken = [], [], set()
    for stage_id, entry in sorted(record.stages.items()):
        if stage_id == WORLD_STAGE or entry.status != COMPLETE:
            continue
        for source, expected in sorted(entry.outputs.items()):
            rel = Path(source).relative_to(stage_id).as_posix()
            rule = next((r for r in rules if fnmatch.fnmatch(stage_id, r.stage) and matches(rel, r.pattern)), None)
            if rule is None or source in taken:
                continue
            found = sha256_file(record.run_dir / source)
            if found != expected:
                raise ProvenanceError(
                    f"{source} has sha256 {found[:12]}..., the run recorded {expected[:12]}...",
                    f"run `python -m provenance_lib verify {record.run_dir}` and rerun that stage",
                )
            taken.add(source)
            name, stem = Path(rel).name, Path(rel).stem
            target = rule.target.format(name=name, stem=stem, stage=stage_id, rel_in_adapters=rel.split("/", 1)[-1])
            if rule.config is not None and table_rows(record.run_dir / source) == 0:  # not produced on this world
                omitted.append(source)
                continue
            files.append(
                dict(
                    path=target,
                    sha256=expected,
                    source=source,
                    stage=stage_id,
                    config=rule.config and rule.config.format(stem=stem),
                    split=stem.removeprefix("zscored_") if rule.split else None,
                    description=rule.description,
                )
            )
    return files, omitted


def matches(rel: str, pattern: str) -> bool:
    """fnmatch within one folder level (``*.csv`` is not ``sub/x.csv``); ``adapters/*`` takes a whole subtree."""
    if pattern.endswith("/*"):
        return rel.startswith(pattern[:-1])
    return rel.count("/") == pattern.count("/") and fnmatch.fnmatch(rel, pattern)


def check_aggregate(path: Path) -> None:
    """The release policy, enforced: a released table carries no document text."""
    import pyarrow.parquet as pq

    columns = pq.read_schema(path).names
    leaked = [c for c in columns if c in TEXT_COLUMNS]
    if leaked:
        raise ProvenanceError(
            f"{path.name} would release document text (columns {leaked})",
            "released tables hold aggregates, ids and hashes only: drop the text at its stage",
        )

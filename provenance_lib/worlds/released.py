"""The released world: the paper's own 576-bin influence matrix, released as four CSVs (CC BY 4.0), standing in for
stages 01-03. No corpus, no model: a study on it runs stage 03 (which imports the matrix instead of computing one)
and stage 04 (unchanged), so anyone can extend the released artifacts without a GPU.

The files, one per benchmark, in the paper's layout (``CSV_COLUMNS``; 576 rows, WebOrganizer keys as labels):
``zscored_socialiqa.csv``, ``zscored_mmlu_social_science.csv``, ``zscored_arc_challenge.csv``,
``zscored_mmlu_stem.csv``. The package ships byte-exact copies with their provenance and checksums
(``reference/paper_bin_scores/SOURCE.md``); ``world.folder`` can point at another release in the same layout.
Stage 03 writes its own matrix in this layout too, so a run diffs directly against the paper's files.
"""

from __future__ import annotations

import re
import shutil
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import sha256_file
from ..errors import ProvenanceError
from ..params import StudyParams
from ..reported import paper_reported
from ..stats import zscore
from ..taxonomy import load as load_taxonomy
from .contract import WorldInfo

RELEASED_FILES = {
    "SocialIQA": "zscored_socialiqa.csv",
    "MMLU Social Sciences": "zscored_mmlu_social_science.csv",
    "ARC-Challenge": "zscored_arc_challenge.csv",
    "MMLU STEM": "zscored_mmlu_stem.csv",
}
CSV_COLUMNS = ["topic_label", "format_label", "mean_score", "zscore", "doc_count"]
SOURCE, UPSTREAM_README = "SOURCE.md", "README.upstream.md"
WORLD_FOLDER = "released"
Z_TOLERANCE = 1e-9  # the zscore column must follow from mean_score (it does exactly in the paper's files)


def packaged_folder() -> Path:
    return Path(str(files("provenance_lib").joinpath("reference/paper_bin_scores")))


def source_checksums(folder: str | Path) -> dict[str, str]:
    """file name -> sha256 as SOURCE.md records it (``- sha256 <file>: <hex>``)."""
    text = (Path(folder) / SOURCE).read_text()
    return dict(re.findall(r"sha256 (\S+\.csv): ([0-9a-f]{64})", text))


def source_upstream(folder: str | Path) -> dict[str, str]:
    """Where the released files come from, as SOURCE.md records it (``- Upstream: <repository>, path `<path>`,
    commit <sha>``): repository, path and commit."""
    found = re.search(r"- Upstream: (\S+), path `([^`]+)`, commit ([0-9a-f]{40})", (Path(folder) / SOURCE).read_text())
    if found is None:
        raise ProvenanceError(f"{Path(folder) / SOURCE} names no upstream", "restore SOURCE.md")
    return dict(zip(("repository", "path", "commit"), found.groups()))


def check_checksums(folder: str | Path) -> dict[str, str]:
    """Every released CSV matches the checksum SOURCE.md records for it; returns the checksums."""
    folder = Path(folder)
    expected = source_checksums(folder)
    missing = sorted(set(RELEASED_FILES.values()) - set(expected))
    if missing:
        raise ProvenanceError(f"{folder / SOURCE} records no sha256 for {missing}", "restore SOURCE.md")
    for name in RELEASED_FILES.values():
        found = sha256_file(folder / name)
        if found != expected[name]:
            raise ProvenanceError(
                f"{folder / name} has sha256 {found}, SOURCE.md records {expected[name]}",
                "restore the byte-exact copy of the released file",
            )
    return {name: expected[name] for name in RELEASED_FILES.values()}


# ----------------------------------------------------------------------------------------------- reading
def read_released(path: str | Path) -> pd.DataFrame:
    """One released CSV, checked: the paper's columns, 576 rows naming every topic x format bin once by
    WebOrganizer keys, finite scores, positive document counts, and a zscore that follows from mean_score by the
    paper's definition. Returns it with a ``bin`` column, in bin order."""
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(
            f"released bin scores {path} not found",
            f"give a folder with the four zscored_<benchmark>.csv files ({', '.join(RELEASED_FILES.values())})",
        )
    table = pd.read_csv(path)
    if list(table.columns) != CSV_COLUMNS:
        raise ProvenanceError(f"{path}: columns {list(table.columns)}, expected {CSV_COLUMNS}")
    tax = load_taxonomy()
    keys = {"topic_label": set(tax.topics.keys), "format_label": set(tax.formats.keys)}
    for column, known in keys.items():
        unknown = sorted(set(table[column].astype(str)) - known)
        if unknown:
            raise ProvenanceError(
                f"{path}: unknown WebOrganizer {column.split('_')[0]} labels {unknown[:5]}",
                "labels are the taxonomy's snake-case keys, e.g. 'customer_support'",
            )
    table["bin"] = [tax.bin_id(t, f) for t, f in zip(table["topic_label"], table["format_label"])]
    duplicated = sorted(table.loc[table["bin"].duplicated(), "bin"].map(tax.bin_name).unique())
    if duplicated:
        raise ProvenanceError(f"{path}: bins listed twice: {duplicated[:5]}")
    missing = sorted(set(range(tax.n_bins)) - set(table["bin"]))
    if missing:
        raise ProvenanceError(
            f"{path}: {len(missing)} of {tax.n_bins} bins missing, e.g. {[tax.bin_name(b) for b in missing[:3]]}",
            "a released matrix has every bin",
        )
    numbers = table[["mean_score", "zscore", "doc_count"]].apply(pd.to_numeric, errors="coerce")
    if not np.isfinite(numbers.to_numpy(float)).all() or (numbers["doc_count"] <= 0).any():
        raise ProvenanceError(f"{path}: mean_score, zscore and doc_count must be finite numbers, doc_count > 0")
    drift = np.abs(zscore(table["mean_score"].to_numpy(float)) - table["zscore"].to_numpy(float)).max()
    if drift > Z_TOLERANCE:
        raise ProvenanceError(
            f"{path}: zscore differs from (mean_score - mean) / std (ddof 1) by up to {drift:.3g}",
            "the file is not in the paper's definition; recompute its zscore column",
        )
    return table.sort_values("bin").reset_index(drop=True)


def read_matrix(folder: str | Path) -> dict[str, pd.DataFrame]:
    """benchmark name -> its checked released table (``read_released``)."""
    return {name: read_released(Path(folder) / file) for name, file in RELEASED_FILES.items()}


# ----------------------------------------------------------------------------------------------- the world
def input_digest(params: StudyParams) -> dict:
    """A release folder outside the package is an input the params do not pin: its files' sha256 enter the world's
    fingerprint (the packaged copy is package data, covered by the code fingerprint)."""
    if params.world.folder is None:
        return {}
    folder = Path(params.world.folder)
    return {
        name: sha256_file(folder / name) if (folder / name).is_file() else None
        for name in [SOURCE, *RELEASED_FILES.values()]
    }


def build(params: StudyParams, out_dir: str | Path) -> WorldInfo:
    """Copy the released files into ``<world>/released/`` after checking them; record where they came from."""
    out_dir = Path(out_dir)
    packaged = params.world.folder is None
    source = packaged_folder() if packaged else Path(params.world.folder)
    checksums = check_checksums(source) if packaged else {}
    read_matrix(source)
    target = out_dir / WORLD_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    for name in [*RELEASED_FILES.values(), SOURCE, UPSTREAM_README]:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    checksums = checksums or {name: sha256_file(target / name) for name in RELEASED_FILES.values()}
    setting = paper_reported()["setting"]
    return WorldInfo(
        kind="released",
        fingerprint="",
        corpus=[],
        queries="",
        tasks={},
        task_dir="",
        base_model=setting["base_model"],
        query_model=setting["query_model"],  # what made the matrix; never loaded
        extra=dict(
            released=dict(
                folder=WORLD_FOLDER,
                files=RELEASED_FILES,
                sha256=checksums,
                source="packaged copy (reference/paper_bin_scores)" if packaged else str(source),
                licence="CC BY 4.0; attribute Matlin et al., arXiv 2606.19625 (see SOURCE.md)",
            )
        ),
    )


def world_matrix(world_dir: str | Path, info: WorldInfo) -> dict[str, pd.DataFrame]:
    """The released tables of a built released world."""
    if info.kind != "released":
        raise ProvenanceError(f"the world is {info.kind!r}, not a released matrix")
    return read_matrix(info.resolve(Path(world_dir), info.extra["released"]["folder"]))

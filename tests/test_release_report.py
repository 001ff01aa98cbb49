"""The release folder and the study report, on a run built in seconds: the paper's released matrix through stage 03's
own writer, recorded as a completed stage with an executed notebook, and a stage 01 manifest beside it."""

import base64
import io
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from provenance_lib import params
from provenance_lib.artifacts import hash_tree, sha256_file, write_parquet
from provenance_lib.errors import ProvenanceError
from provenance_lib.record import Git, RunRecord, StageRecord
from provenance_lib.release import INDEX, build_release
from provenance_lib.release_card import PAPER_AUTHORS, table_columns, table_rows
from provenance_lib.report import build_report
from provenance_lib.stages.binning import describe, released_table, write_outputs
from provenance_lib.worlds import build_world
from provenance_lib.worlds.released import CSV_COLUMNS, RELEASED_FILES, packaged_folder, read_matrix, source_upstream

PARAMS = Path(__file__).resolve().parents[1] / "params" / "paper-released.yaml"


def png_bytes() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def record_stage(run: Path, stage_id: str, notebook: str | None = None) -> None:
    RunRecord(run).complete(
        stage_id,
        StageRecord(
            duration_s=1.5,
            started="2026-01-01T00:00:00+00:00",
            git=Git(commit="0" * 40, dirty=False),
            fingerprint="f" * 64,
            outputs=hash_tree(run / stage_id, relative_to=run),
            notebook=notebook,
        ),
    )


def contrast_stage(run: Path, study) -> None:
    """Stage 04 on the released matrix, as the runner's stage context would run it (fewer resamples)."""
    from types import SimpleNamespace

    from provenance_lib.stages import contrast
    from provenance_lib.worlds import load_world

    study = study.model_copy(update={"contrast": study.contrast.model_copy(update={"bin_bootstrap": 50})})
    (run / "04_contrast").mkdir()
    contrast.run(
        SimpleNamespace(
            params=study,
            world=load_world(run / "world"),
            out_dir=run / "04_contrast",
            input_dir=lambda stage_id: run / stage_id,
        )
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "released"
    study = params.load(PARAMS)
    build_world(study, run / "world")
    table = released_table(read_matrix(packaged_folder()))
    out = run / "03_binning"
    out.mkdir(parents=True)
    write_outputs(
        out,
        table,
        dict(
            source="the paper's released files",
            variants=["paper"],
            skipped={},
            bootstrap=0,
            **describe(table, study.binning, "released"),
        ),
        None,
    )
    (out / "heatmaps_2x2.png").write_bytes(png_bytes())
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Stage 03"),
            nbformat.v4.new_code_cell(
                "show()",
                outputs=[
                    nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png_bytes()).decode()})
                ],
            ),
        ]
    )
    (run / "notebooks").mkdir()
    nbformat.write(notebook, run / "notebooks" / "03_binning.ipynb")
    record_stage(run, "03_binning", "notebooks/03_binning.ipynb")
    contrast_stage(run, study)
    record_stage(run, "04_contrast")
    manifest = run / "01_sampling"
    manifest.mkdir()
    write_parquet(manifest / "manifest.parquet", pd.DataFrame({"id": ["a", "b"], "bin": [0, 1], "tokens": [5, 7]}))
    record_stage(run, "01_sampling")
    return run


def test_release_loads_with_datasets_in_the_papers_layout_and_lists_every_hash(run, tmp_path):
    import datasets

    out = build_release(run, tmp_path / "release")
    matrix = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert sorted(matrix) == sorted(Path(f).stem.removeprefix("zscored_") for f in RELEASED_FILES.values())
    assert all(split.column_names == CSV_COLUMNS and split.num_rows == 576 for split in matrix.values())
    for name in RELEASED_FILES.values():  # the paper's own files, byte for byte, from the released world's import
        assert (out / "data" / "bin_scores" / name).read_bytes() == (packaged_folder() / name).read_bytes()
    index = json.loads((out / INDEX).read_text())
    recorded = {path: sha for entry in RunRecord(run).stages.values() for path, sha in entry.outputs.items()}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {INDEX}
    assert {f["path"] for f in index["files"]} == on_disk
    for entry in index["files"]:
        assert sha256_file(out / entry["path"]) == entry["sha256"]
        if "source" in entry:
            assert recorded[entry["source"]] == entry["sha256"]
    assert pd.read_parquet(out / "data" / "sampling" / "manifest.parquet")["id"].tolist() == ["a", "b"]


def test_release_card_has_hub_metadata_and_names_absent_stages(run, tmp_path):
    import yaml

    out = build_release(run, tmp_path / "release")
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "cc-by-4.0" and meta["size_categories"] and meta["task_categories"]
    assert "extended|allenai/social_i_qa" in meta["source_datasets"]
    assert meta["configs"][0] == {
        "config_name": "bin_scores",
        "default": True,
        "data_files": meta["configs"][0]["data_files"],
    }
    assert "not in this run: 02_gradients, 05_unlearning" in card
    cff = yaml.safe_load((out / "CITATION.cff").read_text())
    assert cff["preferred-citation"]["identifiers"][0]["value"] == "arXiv:2606.19625"


def test_release_ships_no_empty_table_and_says_why_each_is_left_out(run, tmp_path):
    out = build_release(run, tmp_path / "release")
    tables = [p for p in out.rglob("*") if p.suffix in (".csv", ".parquet")]
    assert tables and all(table_rows(p) > 0 for p in tables)
    card = (out / "README.md").read_text()
    for name in ("correctness_differential", "top_differentials", "lexical_bins", "lexical_profiles"):
        assert not (out / "data" / "contrast" / f"{name}.csv").exists()
        assert f"`04_contrast/{name}.csv`: No " in card  # and the reason, from stage 04's record of it
    assert "no split by correctness" in card and "no working-set text" in card


def test_release_card_describes_every_column_summarises_and_states_its_limits(run, tmp_path):
    out = build_release(run, tmp_path / "release")
    card = (out / "README.md").read_text()
    for entry in json.loads((out / INDEX).read_text())["files"]:
        if entry.get("config"):
            for column in table_columns(out / entry["path"]):
                row = rf"\| `{re.escape(column)}` \| (?:[^|]|\\\|)+ \| [^|]+ \|"
                assert re.search(row, card), (entry["path"], column)
    findings = card.split("## Summary of findings")[1].split("##")[0]
    assert "Literature x Customer Support (z 16.00)" in findings  # written from stage 03's result
    limits = card.split("## Limitations")[1].split("##")[0]
    paper_vs_run = pd.read_csv(run / "04_contrast" / "paper_vs_run.csv")
    arc = paper_vs_run[paper_vs_run["benchmark"].str.contains("ARC-Challenge")]
    assert "ARC-Challenge file" in limits and f"{int((arc['status'] == 'differs').sum())} of " in limits
    upstream = source_upstream(packaged_folder())
    assert upstream["repository"] in card and upstream["commit"] in card and "byte copies" in card


def test_release_refuses_a_column_no_field_description_covers(run, tmp_path):
    import shutil

    run = Path(shutil.copytree(run, tmp_path / "run"))
    write_parquet(run / "03_binning" / "bin_influence.parquet", pd.DataFrame({"bin": [0], "mystery": [1.0]}))
    record_stage(run, "03_binning", "notebooks/03_binning.ipynb")
    with pytest.raises(ProvenanceError, match="mystery"):
        build_release(run, tmp_path / "release")


def test_the_papers_authors_are_one_entry_in_the_repository_and_in_releases(run, tmp_path):
    import yaml

    root = yaml.safe_load((Path(__file__).resolve().parents[1] / "CITATION.cff").read_text())
    papers = [r for r in root["references"] if r["type"] == "conference-paper"]
    cff = yaml.safe_load((build_release(run, tmp_path / "release") / "CITATION.cff").read_text())
    assert papers[0]["authors"] == PAPER_AUTHORS == cff["preferred-citation"]["authors"]


def test_release_refuses_document_text_and_modified_artifacts(run, tmp_path):
    manifest = run / "01_sampling" / "manifest.parquet"
    original = manifest.read_bytes()
    try:
        write_parquet(manifest, pd.DataFrame({"id": ["a"], "text": ["private words"]}))
        with pytest.raises(ProvenanceError, match="the run recorded"):
            build_release(run, tmp_path / "modified")
        record_stage(run, "01_sampling")  # the record now vouches for a table with text in it
        with pytest.raises(ProvenanceError, match="document text"):
            build_release(run, tmp_path / "text")
        assert not (tmp_path / "text").exists()  # nothing half-written
    finally:
        manifest.write_bytes(original)
        record_stage(run, "01_sampling")


def test_report_is_offline_and_links_every_executed_notebook(run, tmp_path):
    import shutil

    run = Path(shutil.copytree(run, tmp_path / "released"))
    record = RunRecord(run)
    del record.stages["01_sampling"]  # this fixture's stage 01 is a bare manifest, not a stage 01 result
    record.save()
    index = build_report(run)
    page = index.read_text()
    stage_page = (index.parent / "03_binning.html").read_text()
    assert 'href="03_binning.html"' in page and 'href="index.html"' in stage_page
    for html in (page, stage_page):
        assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?://', html)
        assert "data:image/png;base64," in html
    assert "Literature x Customer Support" in page  # stage 03's headline: the paper's top bin
    assert "not in this run" in page.lower() and "01_sampling" in page
    assert RunRecord(run).stages["03_binning"].outputs["03_binning/zscored_socialiqa.csv"] in page


def test_report_shows_every_table_whole_says_why_an_analysis_is_missing_and_shows_the_tolerance(run, tmp_path):
    import shutil

    run = Path(shutil.copytree(run, tmp_path / "released"))
    record = RunRecord(run)
    del record.stages["01_sampling"]
    record.save()
    page = build_report(run).read_text()
    assert "MMLU STEM (STEM, knowledge)" in page  # the design, even without items
    top_formats = page.split("Top formats per benchmark")[1].split("</table>")[0]
    assert all(name in top_formats for name in ("SocialIQA", "MMLU STEM", "Documentation"))
    assert not re.search(r"first \d+ of \d+ rows", page)
    assert "no split by correctness" in page and "marginals.png" in page
    assert "correctness_differential.png" not in page  # not drawn: nothing to draw
    paper = page.split("Paper vs this run")[1]
    assert "|run − paper|" in paper and "<th>tolerance</th>" in paper and "0.005" in paper

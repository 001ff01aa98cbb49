"""The paper's released 576-bin matrix as a world: shipped byte-exact, checked on import, reproduced by stage 04's
definitions where the paper's reported numbers come from these files, and refused when malformed."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from provenance_lib import params
from provenance_lib.artifacts import sha256_file
from provenance_lib.errors import ProvenanceError
from provenance_lib.stages.binning import BinningResult, paper_layout, released_table
from provenance_lib.stages.contrast import paper, profiles
from provenance_lib.worlds import build_world, load_world
from provenance_lib.worlds.released import RELEASED_FILES, check_checksums, packaged_folder, read_matrix, read_released

PARAMS = Path(__file__).resolve().parents[1] / "params" / "paper-released.yaml"


@pytest.fixture(scope="module")
def released():
    """The released matrix as stage 03's result (the paper variant, all queries)."""
    table = released_table(read_matrix(packaged_folder()))
    summary = dict(benchmarks=list(RELEASED_FILES), variants=["paper"], min_docs=5, n_queries={})
    return BinningResult(Path("."), table, summary)


def test_packaged_files_match_the_checksums_in_source_md():
    folder = packaged_folder()
    recorded = check_checksums(folder)
    assert set(recorded) == set(RELEASED_FILES.values())
    assert all(sha256_file(folder / name) == sha for name, sha in recorded.items())
    assert (folder / "README.upstream.md").is_file() and "CC BY 4.0" in (folder / "SOURCE.md").read_text()


def test_a_modified_copy_fails_the_checksum(tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(packaged_folder(), folder)
    with open(folder / "zscored_socialiqa.csv", "a") as f:
        f.write("\n")
    with pytest.raises(ProvenanceError, match="zscored_socialiqa.csv has sha256"):
        check_checksums(folder)


def test_stage_03_export_reproduces_the_released_files_byte_for_byte(released, tmp_path):
    for benchmark, name in RELEASED_FILES.items():
        text = paper_layout(released, benchmark).to_csv(index=False)
        assert text == (packaged_folder() / name).read_text(), benchmark


def test_released_matrix_reproduces_reported_format_marginals_and_contrastive_topics(released):
    reported = paper.paper_reported()
    z = released.matrix("paper")
    formats = profiles.axis_means(z, "format")
    for benchmark, tops in reported["top_formats"].items():
        for values in tops.values():
            for label, value in values.items():
                assert round(formats.at[label, benchmark], 2) == pytest.approx(value, abs=1e-9), (benchmark, label)
        ranked = list(formats[benchmark].sort_values(ascending=False).index)
        assert ranked[:3] == list(tops["positive"]) and ranked[-3:] == list(tops["negative"])
    topics = profiles.axis_means(z, "topic")
    for pair, values in reported["contrastive_topics"].items():
        social, stem = pair.split(" minus ")
        delta = (topics[social] - topics[stem]).sort_values(ascending=False)
        for side in ("social_leaning", "stem_leaning"):
            for topic, value in values[side].items():
                assert round(delta[topic], 2) == pytest.approx(value, abs=1e-9), (pair, topic)
        assert list(delta.index[:3]) == list(values["social_leaning"])
        assert round(delta.abs().max(), 2) == pytest.approx(values["max_abs_delta"], abs=1e-9)


def test_released_zscore_column_follows_from_mean_score(released):
    for benchmark in RELEASED_FILES:  # noqa: B007 (the query reads it as @benchmark)
        rows = released.rows().query("benchmark == @benchmark")
        m = rows["mean_score"].to_numpy()
        np.testing.assert_allclose(rows["z"], (m - m.mean()) / m.std(ddof=1), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------------------- bad files
def _write(tmp_path, table: pd.DataFrame) -> Path:
    path = tmp_path / "zscored_socialiqa.csv"
    table.to_csv(path, index=False)
    return path


@pytest.fixture
def original():
    return pd.read_csv(packaged_folder() / "zscored_socialiqa.csv")


def test_missing_bins_are_refused(tmp_path, original):
    with pytest.raises(ProvenanceError, match="2 of 576 bins missing"):
        read_released(_write(tmp_path, original.drop(index=[3, 400])))


def test_unknown_labels_are_refused(tmp_path, original):
    original.loc[5, "format_label"] = "Customer Support Page"  # a name, not the key the layout uses
    with pytest.raises(ProvenanceError, match="unknown WebOrganizer format labels"):
        read_released(_write(tmp_path, original))


def test_duplicated_bins_and_wrong_columns_are_refused(tmp_path, original):
    with pytest.raises(ProvenanceError, match="bins listed twice"):
        read_released(_write(tmp_path, pd.concat([original, original.iloc[[0]]])))
    with pytest.raises(ProvenanceError, match="columns"):
        read_released(_write(tmp_path, original.rename(columns={"zscore": "z"})))


def test_a_zscore_that_does_not_follow_from_mean_score_is_refused(tmp_path, original):
    original.loc[0, "mean_score"] *= 2
    with pytest.raises(ProvenanceError, match="zscore differs"):
        read_released(_write(tmp_path, original))


# ----------------------------------------------------------------------------------------------- the world
def test_released_world_builds_without_corpus_or_model(tmp_path):
    study = params.load(PARAMS)
    assert study.model is None and study.sampling is None and study.stages == ["03_binning", "04_contrast"]
    info = build_world(study, tmp_path / "world")
    assert load_world(tmp_path / "world").kind == "released" == info.kind
    assert info.extra["released"]["sha256"] == check_checksums(packaged_folder())
    assert (tmp_path / "world" / "released" / "SOURCE.md").is_file()


def test_released_world_needs_its_stage_list_and_other_worlds_their_sections(tmp_path):
    with pytest.raises(ProvenanceError, match="stages: \\[03_binning, 04_contrast\\]"):
        params.load(PARAMS, ["stages=null"])
    testbed = Path(__file__).resolve().parents[1] / "params" / "testbed.yaml"
    broken = tmp_path / "no-sampling.yaml"
    broken.write_text(testbed.read_text().split("\nsampling:")[0])
    with pytest.raises(ProvenanceError, match="missing section\\(s\\) sampling"):
        params.load(broken)
    assert params.load(broken, ["stages=[03_binning]"]).sampling is None  # a study of later stages only


@pytest.mark.slow
def test_paper_released_study_from_the_command_line(tmp_path):
    """``python -m provenance_lib run params/paper-released.yaml``: stage 03 imports, stage 04 reproduces the
    reported format marginals and contrastive topics, and the agreement table lists what does not agree."""
    import json
    import subprocess
    import sys

    root = PARAMS.parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "provenance_lib", "run", str(PARAMS), "--runs-dir", str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "paper-released"
    for name in RELEASED_FILES.values():
        assert (run_dir / "03_binning" / name).read_bytes() == (packaged_folder() / name).read_bytes()
    table = pd.read_csv(run_dir / "04_contrast" / "paper_vs_run.csv")
    reproduced = table[table["section"].isin(["top_formats", "contrastive_topics"])]
    assert len(reproduced) == 24 + 14 and (reproduced["status"] == "agrees").all()
    differs = table[table["status"] == "differs"]
    assert set(differs["section"]) <= {"bin_z_scores", "profile_correlations"}
    assert json.loads((run_dir / "04_contrast" / "contrast.json").read_text())["agreement"]["agrees"] >= 38

"""The study end to end on the testbed: the runner builds the world, runs every stage notebook, and a rerun skips."""

from pathlib import Path

import pandas as pd
import pytest

from provenance_lib import runs
from provenance_lib.artifacts import read_json
from provenance_lib.verify import verify

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_testbed_study_runs_end_to_end_and_reruns_as_a_no_op(tmp_path, capsys):
    run_dir = runs.run_study(
        ROOT / "params" / "testbed.yaml", name="e2e", runs_dir=tmp_path, notebooks_dir=ROOT / "notebooks"
    )
    assert verify(run_dir) == []
    record = read_json(run_dir / "run.json")
    assert all(entry["status"] == "complete" for entry in record["stages"].values())
    manifest = pd.read_parquet(run_dir / "01_sampling" / "manifest.parquet")
    truth = read_json(run_dir / "world" / "ground_truth.json")
    summary = read_json(run_dir / "01_sampling" / "sampling_summary.json")
    assert summary["documents"]["removed_duplicate_text"] > 0  # the testbed plants exact duplicates
    assert manifest.groupby("bin").size().max() <= 40
    for bench in truth["benchmarks"].values():  # every planted bin, and planted documents, reach the working set
        assert set(bench["bins"]) <= set(manifest["bin"])
        assert set(bench["documents"]) & set(manifest["id"])
    capsys.readouterr()
    runs.run_study(ROOT / "params" / "testbed.yaml", name="e2e", runs_dir=tmp_path, notebooks_dir=ROOT / "notebooks")
    out = capsys.readouterr().out
    assert "running" not in out and "[00_world] unchanged: reused" in out

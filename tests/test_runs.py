"""The papermill runner and run records, exercised with small stage notebooks made here.

The world is planted as a folder whose world.json matches the params, so the runner reuses it instead of building
one: these tests are about the runner, not about any world.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest

from provenance_lib import context, params, runs
from provenance_lib.artifacts import write_json
from provenance_lib.errors import ProvenanceError
from provenance_lib.worlds import WorldInfo, fingerprint

PARAMS = Path(__file__).resolve().parents[1] / "params" / "testbed.yaml"

HEADER = """from pathlib import Path
import json, time
from provenance_lib.context import open_stage
stage = open_stage({stage!r}, run_dir=run_dir, out_dir=out_dir)"""

STAGE_CELLS = {
    # no params section of its own: depends only on the shared sections
    "01_first": "(stage.out_dir / 'first.json').write_text(json.dumps({'seed': stage.params.seed}))",
    # its own section is `sampling`: changing sampling.* must re-run it and what follows, not 01
    "02_sampling": """first = json.loads((stage.input_dir('01_first') / 'first.json').read_text())
time.sleep(float(__import__('os').environ.get('STAGE_SLEEP', '0')))
(stage.out_dir / 'second.json').write_text(json.dumps({**first, 'target': stage.params.sampling.target_per_bin}))""",
    "03_third": """second = json.loads((stage.input_dir('02_sampling') / 'second.json').read_text())
(stage.out_dir / 'sub').mkdir()
(stage.out_dir / 'sub' / 'third.json').write_text(json.dumps({'total': second['seed'] + second['target']}))""",
}


def make_notebook(path: Path, stage_id: str, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("run_dir = None\nout_dir = None")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {stage_id}"), parameters,
                nbformat.v4.new_code_cell(HEADER.format(stage=stage_id)), nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with params/, notebooks/ (three test stages) and a world planted in every run."""
    (tmp_path / "params").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "params" / "study.yaml").write_text(PARAMS.read_text())
    for stage_id, body in STAGE_CELLS.items():
        make_notebook(tmp_path / "notebooks" / f"{stage_id}.ipynb", stage_id, body)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plant_world(project: Path, name: str, overrides=()) -> None:
    study = params.load(project / "params" / "study.yaml", overrides)
    world = project / "runs" / name / "world"
    (world / "corpus").mkdir(parents=True, exist_ok=True)
    (world / "corpus" / "shard.txt").write_text("planted")
    info = WorldInfo(kind="testbed", fingerprint=fingerprint(study), corpus=["corpus"], queries="q.parquet",
                     tasks={}, task_dir="tasks", base_model="models/base", query_model="models/query")
    write_json(world / "world.json", asdict(info))


def run(project, name="r", **kwargs):
    return runs.run_study(project / "params" / "study.yaml", name=name, **kwargs)


def stage_runs(capsys):
    out = capsys.readouterr().out
    return sorted(line.split("]")[0][1:] for line in out.splitlines() if line.endswith(("s", "ipynb"))
                  and "running" in line)


def test_run_writes_record_artifacts_and_notebooks(project, capsys):
    plant_world(project, "r")
    run_dir = run(project)
    record = json.loads((run_dir / "run.json").read_text())
    assert [s for s in record["stages"]] == ["00_world", "01_first", "02_sampling", "03_third"]
    assert all(entry["status"] == "complete" for entry in record["stages"].values())
    assert record["params_sha256"] and record["versions"]["papermill"] and "commit" in record["git"]
    assert "03_third/sub/third.json" in record["stages"]["03_third"]["outputs"]
    assert "02_sampling/second.json" in record["stages"]["03_third"]["inputs"]
    assert json.loads((run_dir / "03_third" / "sub" / "third.json").read_text()) == {"total": 0 + 40}
    assert (run_dir / "notebooks" / "02_sampling.ipynb").is_file()
    assert runs.verify(run_dir) == []


def test_rerun_with_unchanged_params_skips_every_stage(project, capsys):
    plant_world(project, "r")
    run(project)
    capsys.readouterr()
    run(project)
    out = capsys.readouterr().out
    assert out.count("unchanged: skipped") == 3 and "running" not in out


def test_changed_stage_param_reruns_that_stage_and_later_only(project, capsys):
    plant_world(project, "r")
    run(project)
    first = (project / "runs" / "r" / "run.json").read_text()
    capsys.readouterr()
    plant_world(project, "r", ["sampling.target_per_bin=5"])  # the world does not depend on sampling: still valid
    run(project, overrides=["sampling.target_per_bin=5"])
    out = capsys.readouterr().out
    assert "[01_first] unchanged: skipped" in out
    assert "[02_sampling] running" in out and "[03_third] running" in out
    assert json.loads((project / "runs/r/03_third/sub/third.json").read_text()) == {"total": 5}
    assert json.loads(first)["stages"]["01_first"] == json.loads((project / "runs/r/run.json").read_text())["stages"]["01_first"]


def test_force_and_stage_selection(project, capsys):
    plant_world(project, "r")
    run(project)
    capsys.readouterr()
    run(project, stages=["2"], force=True)
    out = capsys.readouterr().out
    assert "[02_sampling] running" in out and "01_first" not in out and "03_third" not in out
    run(project, from_stage="third", force=True)
    out = capsys.readouterr().out
    assert "[03_third] running" in out and "02_sampling" not in out
    with pytest.raises(ProvenanceError, match="unknown stage"):
        run(project, stages=["09"])


def test_params_stages_select_the_study_stages(project, capsys):
    plant_world(project, "only")
    run(project, name="only", overrides=["stages=[01_first]"])
    out = capsys.readouterr().out
    assert "[01_first] running" in out and "02_sampling" not in out and "03_third" not in out
    with pytest.raises(ProvenanceError, match="have no notebook"):
        run(project, name="only", overrides=["stages=[09_none]"])


def test_stage_needing_an_incomplete_stage_is_refused(project):
    plant_world(project, "fresh")
    with pytest.raises(ProvenanceError, match="needs 01_first, 02_sampling"):
        run(project, name="fresh", stages=["03"])


def test_failing_cell_names_notebook_and_error(project):
    plant_world(project, "r")
    nb_path = project / "notebooks" / "02_sampling.ipynb"
    run(project)
    make_notebook(nb_path, "02_sampling", "raise ValueError('planted failure')")
    with pytest.raises(ProvenanceError) as info:
        run(project, force=True, stages=["02"])
    message = str(info.value)
    assert "02_sampling failed" in message and "ValueError: planted failure" in message
    assert "02_sampling.failed.ipynb" in message and Path(message.split("notebook: ")[1].split(" (fix")[0]).is_file()
    # the previous artifacts of the failed stage are intact, still verify, and the record says what happened
    assert json.loads((project / "runs/r/02_sampling/second.json").read_text())["target"] == 40
    assert runs.verify(project / "runs" / "r") == []
    entry = json.loads((project / "runs/r/run.json").read_text())["stages"]["02_sampling"]
    assert entry["status"] == "complete" and entry["attempt"]["status"] == "failed"


def test_verify_detects_modified_missing_and_stale(project, capsys):
    plant_world(project, "r")
    run_dir = run(project)
    (run_dir / "03_third" / "sub" / "third.json").write_text('{"total": 999}')
    (run_dir / "01_first" / "first.json").unlink()
    problems = runs.verify(run_dir)
    assert "03_third: modified: 03_third/sub/third.json" in problems
    assert "01_first: missing: 01_first/first.json" in problems
    from provenance_lib.__main__ import main

    assert main(["verify", str(run_dir)]) == 1
    assert "problem(s)" in capsys.readouterr().out


def test_killed_run_then_rerun_ends_complete_and_verified(project):
    plant_world(project, "k")
    command = [sys.executable, "-m", "provenance_lib", "run", "params/study.yaml", "--name", "k"]
    env = {**os.environ, "STAGE_SLEEP": "30"}
    proc = subprocess.Popen(command, cwd=project, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = project / "runs" / "k" / "run.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if record.is_file() and json.loads(record.read_text())["stages"].get("02_sampling", {}).get("status") == "running":
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("stage 02 never started")
    time.sleep(2)  # inside the sleeping cell
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (project / "runs" / "k" / "02_sampling").exists()  # nothing half-written looks complete
    assert runs.verify(project / "runs" / "k") == ["02_sampling: not complete (running)"]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "[01_first] unchanged: skipped" in done.stdout
    assert runs.verify(project / "runs" / "k") == []


def test_cli_reports_bad_params_in_one_line(project):
    done = subprocess.run([sys.executable, "-m", "provenance_lib", "run", "params/study.yaml", "-p", "sampling.x=1"],
                          cwd=project, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[0].startswith("error: params/study.yaml: sampling.x: unknown key")
    assert not (project / "runs").exists()


def test_notebook_opened_by_hand_uses_latest_run_and_never_overwrites_it(project):
    plant_world(project, "old")
    run(project, name="old")
    plant_world(project, "new")
    run(project, name="new")
    (project / "notebooks").joinpath("x").mkdir()
    os.chdir(project / "notebooks" / "x")  # JupyterLab's working directory is the notebook's folder
    stage = context.open_stage("03_third", recompute=True)
    assert stage.run_dir == (project / "runs" / "new").resolve()
    assert stage.out_dir == stage.run_dir / "interactive" / "03_third"
    assert stage.input_dir("02_sampling") == stage.run_dir / "02_sampling"
    with pytest.raises(ProvenanceError, match="has not completed"):
        stage.input_dir("03_third")

"""The papermill runner and run records, exercised with small stage notebooks made here.

The world is planted as a folder whose world.json matches the params, so the runner reuses it instead of building
one: these tests are about the runner, not about any world. Every test runs with a user-level ``python3`` kernel
spec that points at an interpreter which does not exist: the runner must not use it.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest

from provenance_lib import context, params, plans, runs, worlds
from provenance_lib import verify as verify_mod
from provenance_lib.artifacts import read_json, sha256_file, write_json
from provenance_lib.errors import ProvenanceError
from provenance_lib.record import RunRecord
from provenance_lib.verify import verify
from provenance_lib.worlds import WorldInfo, builder_code_sha256, fingerprint

PARAMS = Path(__file__).resolve().parents[1] / "params" / "testbed.yaml"

HEADER = """from pathlib import Path
import json, os, sys, time
from provenance_lib.context import open_stage
stage = open_stage({stage!r}, run_dir=run_dir, out_dir=out_dir, recompute=recompute)
if os.environ.get('SLEEP_' + stage.stage_id):  # tests stop a stage while it sleeps here
    (stage.out_dir / 'sleeping').touch()
    time.sleep(float(os.environ['SLEEP_' + stage.stage_id]))"""

STAGE_CELLS = {
    # no params section of its own: depends only on the shared sections
    "01_first": "(stage.out_dir / 'first.json').write_text(json.dumps({'seed': stage.params.seed, "
    "'python': sys.executable}))",
    # its own section is `sampling`: changing sampling.* must re-run it and what follows, not 01
    "02_sampling": """first = json.loads((stage.input_dir('01_first') / 'first.json').read_text())
(stage.out_dir / 'second.json').write_text(json.dumps({'seed': first['seed'],
                                                        'target': stage.params.sampling.target_per_bin}))""",
    "03_third": """second = json.loads((stage.input_dir('02_sampling') / 'second.json').read_text())
(stage.out_dir / 'sub').mkdir()
(stage.out_dir / 'sub' / 'third.json').write_text(json.dumps({'total': second['seed'] + second['target']}))""",
}


def make_notebook(path: Path, stage_id: str, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("run_dir = None\nout_dir = None\nrecompute = False")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {stage_id}"),
        parameters,
        nbformat.v4.new_code_cell(HEADER.format(stage=stage_id)),
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with params/, notebooks/ (three test stages), and a user kernel spec that must not be used."""
    (tmp_path / "params").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "params" / "study.yaml").write_text(PARAMS.read_text())
    for stage_id, body in STAGE_CELLS.items():
        make_notebook(tmp_path / "notebooks" / f"{stage_id}.ipynb", stage_id, body)
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    write_json(
        spec / "kernel.json",
        {
            "argv": ["/nonexistent/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "other",
            "language": "python",
        },
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plant_world(project: Path, name: str, overrides=()) -> None:
    study = params.load(project / "params" / "study.yaml", overrides)
    world = project / "runs" / name / "world"
    (world / "corpus").mkdir(parents=True, exist_ok=True)
    (world / "corpus" / "shard.txt").write_text("planted")
    (world / "models" / "base").mkdir(parents=True, exist_ok=True)
    (world / "models" / "base" / "model.safetensors").write_bytes(bytes(range(256)))
    info = WorldInfo(
        kind="testbed",
        fingerprint=fingerprint(study),
        corpus=["corpus"],
        queries="q.parquet",
        tasks={},
        task_dir="tasks",
        base_model="models/base",
        query_model="models/query",
        code_sha256=builder_code_sha256(),
        inputs=worlds.world_inputs(study),
    )
    write_json(world / "world.json", asdict(info))


def run(project, name="r", **kwargs):
    return runs.run_study(project / "params" / "study.yaml", name=name, **kwargs)


def ran(capsys) -> list[str]:
    """The stages the last runner call executed."""
    return [line.split("]")[0][1:] for line in capsys.readouterr().out.splitlines() if "] running (" in line]


def read_json_text(path: Path) -> dict:
    return json.loads(Path(path).read_text())


# ----------------------------------------------------------------------------------------------- records, skipping
def test_run_records_every_stage_and_reruns_replays_and_selections(project, capsys):
    plant_world(project, "r")
    run_dir = run(project)
    record = read_json(run_dir / "run.json")
    assert list(record["stages"]) == ["00_world", "01_first", "02_sampling", "03_third"]
    invocation = record["invocations"][-1]
    assert invocation["status"] == "complete" and invocation["trust_code"] is False
    assert invocation["versions"]["papermill"] and "commit" in invocation["git"] and "dirty" in invocation["git"]
    # the kernel ran this interpreter, not the user's python3 kernel spec, and the record says which
    assert read_json(run_dir / "01_first" / "first.json")["python"] == sys.executable
    assert invocation["interpreter"]["executable"] == sys.executable
    resolved = params.load(project / "params" / "study.yaml").model_dump(mode="json")
    for stage_id in ("01_first", "02_sampling", "03_third"):
        entry = record["stages"][stage_id]
        assert entry["status"] == "complete" and entry["git"] == invocation["git"] and entry["params"] == resolved
        assert entry["code_sha256"] and entry["notebook_sha256"] and entry["interpreter"] == sys.executable
    assert "03_third/sub/third.json" in record["stages"]["03_third"]["outputs"]
    assert "02_sampling/second.json" in record["stages"]["03_third"]["inputs"]
    assert read_json(run_dir / "03_third" / "sub" / "third.json") == {"total": 0 + 40}
    assert (run_dir / "notebooks" / "02_sampling.ipynb").is_file()
    assert params.load(run_dir / "params.yaml").model_dump(mode="json") == resolved == record["params"]
    assert verify(run_dir) == []

    ran(capsys)
    run(project)
    assert ran(capsys) == []
    # the run's params.yaml replays into the run itself (never runs/params/), every stage skipped
    assert runs.run_study(run_dir / "params.yaml") == run_dir
    out = capsys.readouterr().out
    assert out.count("unchanged: skipped") == 3 and "running" not in out
    assert not (project / "runs" / "params").exists()
    assert runs.run_folder(run_dir / "params.yaml", "copy", None, project / "runs") == project / "runs" / "copy"

    run(project, stages=["2"], force=True)
    assert ran(capsys) == ["02_sampling"]
    run(project, from_stage="third", force=True)
    assert ran(capsys) == ["03_third"]
    with pytest.raises(ProvenanceError, match="unknown stage"):
        run(project, stages=["09"])


def test_changed_stage_param_reruns_that_stage_and_later_and_verify_finds_stale_and_modified(project, capsys):
    plant_world(project, "r")
    run_dir = run(project)
    first = read_json(run_dir / "run.json")["stages"]["01_first"]
    ran(capsys)
    run(project, overrides=["sampling.target_per_bin=5"])  # the world does not depend on sampling: still valid
    out = capsys.readouterr().out
    assert "[01_first] unchanged: skipped" in out
    assert "[02_sampling] running (params changed)" in out and "[03_third] running (inputs changed)" in out
    assert read_json(run_dir / "03_third/sub/third.json") == {"total": 5}
    assert read_json(run_dir / "run.json")["stages"]["01_first"] == first
    assert verify(run_dir) == []

    # stage 01 alone with another seed: 02 and 03 are stale (params.yaml moved on; 02's input changed too)
    plant_world(project, "r", ["seed=3"])  # the world depends on the seed: plant one that matches
    run(project, overrides=["sampling.target_per_bin=5", "seed=3"], stages=["01"])
    assert verify(run_dir) == [
        "02_sampling: stale: params.yaml differs from the params it ran with in seed",
        "02_sampling: stale: inputs changed since it ran: 01_first/first.json, world/world.json",
        "03_third: stale: params.yaml differs from the params it ran with in seed",
        "03_third: stale: inputs changed since it ran: 01_first/first.json, world/world.json",
    ]
    (run_dir / "03_third" / "sub" / "third.json").write_text('{"total": 999}')
    (run_dir / "01_first" / "first.json").unlink()
    problems = verify(run_dir)
    assert "03_third: modified: 03_third/sub/third.json" in problems
    assert "01_first: missing: 01_first/first.json" in problems
    from provenance_lib.__main__ import main

    assert main(["verify", str(run_dir)]) == 1
    assert "problem(s)" in capsys.readouterr().out
    record = read_json(run_dir / "run.json")  # a record edited by hand no longer adds up
    record["stages"]["02_sampling"]["params"]["sampling"]["target_per_bin"] = 99
    write_json(run_dir / "run.json", record)
    assert (
        "02_sampling: its record does not add up: the fingerprint does not follow from the params, inputs and "
        "code it records" in verify(run_dir)
    )


def test_library_or_notebook_change_reruns_the_stage_unless_code_is_trusted(project, capsys, monkeypatch):
    plant_world(project, "r")
    only_01 = ["stages=[01_first]"]
    run_dir = run(project, overrides=only_01)
    study = params.load(project / "params" / "study.yaml", only_01)
    notebook = project / "notebooks" / "01_first.ipynb"

    def reasons():
        record = RunRecord(run_dir)
        return runs.reasons_to_run(record, runs.plan_stage(record, study, "01_first", notebook))

    assert reasons() == []
    nb = nbformat.read(notebook, as_version=4)  # executing a notebook (outputs, counts) does not change it
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="out")]
    nb.cells[3].execution_count = 7
    nbformat.write(nb, notebook)
    assert reasons() == []
    nb.cells[3].source += "\n# edited"
    nbformat.write(nb, notebook)
    assert reasons() == ["notebook changed"]
    make_notebook(notebook, "01_first", STAGE_CELLS["01_first"])

    made_by = read_json(run_dir / "run.json")["stages"]["01_first"]["code_sha256"]
    for module in (plans, verify_mod):  # the library the stage runs has changed
        monkeypatch.setattr(module, "stage_code_sha256", lambda notebook: "0" * 64)
    assert reasons() == ["library code changed"]
    assert verify(run_dir) == [
        f"01_first: stale: the library code it runs changed since it ran (made by commit "
        f"{str(read_json(run_dir / 'run.json')['stages']['01_first']['git']['commit'])[:12]})"
    ]
    assert verify(run_dir, trust_code=True) == []
    ran(capsys)
    run(project, overrides=only_01, trust_code=True)
    assert ran(capsys) == []
    record = read_json(run_dir / "run.json")
    entry = record["stages"]["01_first"]
    assert entry["code_sha256"] == made_by and entry["trusted"]["reasons"] == ["library code changed"]
    assert record["invocations"][-1]["trust_code"] is True
    run(project, overrides=only_01)
    assert ran(capsys) == ["01_first"]
    assert read_json(run_dir / "run.json")["stages"]["01_first"]["code_sha256"] == "0" * 64


def test_params_stages_select_the_study_stages(project, capsys):
    plant_world(project, "only")
    run(project, name="only", overrides=["stages=[01_first]"])
    assert ran(capsys) == ["01_first"]
    with pytest.raises(ProvenanceError, match="have no notebook"):
        run(project, name="only", overrides=["stages=[09_none]"])


def test_stage_needing_an_incomplete_stage_is_refused(project):
    plant_world(project, "fresh")
    with pytest.raises(ProvenanceError, match="needs 01_first, 02_sampling"):
        run(project, name="fresh", stages=["03"])


# ----------------------------------------------------------------------------------------------- how stages end
def kill_kernel_when_asleep(run_dir: Path, stage_id: str) -> threading.Thread:
    """kill -9 the stage's kernel once it sleeps in its HEADER cell (its pid is in run.json)."""

    def kill():
        deadline = time.time() + 120
        while time.time() < deadline:
            record = read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else {}
            attempt = record.get("stages", {}).get(stage_id, {}).get("attempt", {})
            if attempt.get("kernel_pid") and (run_dir / ".staging" / stage_id / "sleeping").exists():
                os.kill(attempt["kernel_pid"], signal.SIGKILL)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_failed_or_killed_attempt_keeps_artifacts_and_params_and_says_how_it_ended(project, monkeypatch):
    plant_world(project, "r")
    run_dir = run(project)
    nb_path = project / "notebooks" / "02_sampling.ipynb"
    make_notebook(nb_path, "02_sampling", "raise ValueError('planted failure')")
    with pytest.raises(ProvenanceError) as info:
        run(project, overrides=["sampling.target_per_bin=5"])
    message = str(info.value)
    assert "02_sampling failed in cell" in message and "ValueError: planted failure" in message
    failed = run_dir / "notebooks" / "02_sampling.failed.ipynb"
    assert f"notebook: {failed}" in message and failed.is_file()
    # the previous artifacts and params.yaml are intact, and the record says what happened
    assert read_json(run_dir / "02_sampling/second.json")["target"] == 40
    assert params.load(run_dir / "params.yaml").sampling.target_per_bin == 40
    record = read_json(run_dir / "run.json")
    assert record["invocations"][-1]["status"] == "failed"
    entry = record["stages"]["02_sampling"]
    assert entry["status"] == "complete" and entry["params"]["sampling"]["target_per_bin"] == 40
    attempt = entry["attempt"]
    assert attempt["status"] == "failed" and attempt["notebook"] == "notebooks/02_sampling.failed.ipynb"
    make_notebook(nb_path, "02_sampling", STAGE_CELLS["02_sampling"])
    assert verify(run_dir) == []

    # kill -9 the kernel mid-stage
    monkeypatch.setenv("SLEEP_02_sampling", "60")
    killer = kill_kernel_when_asleep(run_dir, "02_sampling")
    with pytest.raises(ProvenanceError, match="02_sampling killed: the kernel was killed by SIGKILL"):
        run(project, stages=["02"], force=True)
    killer.join()
    attempt = read_json(run_dir / "run.json")["stages"]["02_sampling"]["attempt"]
    assert attempt["status"] == "killed" and "SIGKILL" in attempt["error"]
    executed = nbformat.read(failed, as_version=4)  # the partial notebook: the cells before the kill ran
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected[0].execution_count is not None and executed.cells[-1].execution_count is None
    assert read_json(run_dir / "02_sampling/second.json")["target"] == 40
    assert not (run_dir / ".staging" / "02_sampling").exists() and verify(run_dir) == []

    monkeypatch.delenv("SLEEP_02_sampling")
    run(project, stages=["02"], force=True)
    entry = read_json(run_dir / "run.json")["stages"]["02_sampling"]
    assert "attempt" not in entry and not failed.exists() and verify(run_dir) == []


def test_timeout_is_recorded_as_such(project, monkeypatch):
    plant_world(project, "t")
    monkeypatch.setenv("SLEEP_01_first", "60")
    with pytest.raises(ProvenanceError, match="01_first timed out"):
        run(project, name="t", overrides=["stages=[01_first]"], timeout=2)
    entry = read_json(project / "runs/t/run.json")["stages"]["01_first"]
    assert entry["status"] == "timed out" and entry["notebook"] == "notebooks/01_first.failed.ipynb"


RESUMING = """(stage.out_dir / 'partial.json').write_text('half-written')  # never kept: only the work it resumes
(stage.out_dir / '.work').mkdir(exist_ok=True)
with open(stage.out_dir / '.work' / 'attempts.txt', 'a') as f:  # each attempt adds a line to what it finds
    f.write(f'{stage.params.sampling.target_per_bin}\\n')
if os.environ.get('FAIL_02_sampling'):
    raise RuntimeError('planted failure')
(stage.out_dir / '.work').rename(stage.out_dir / 'work')
(stage.out_dir / 'partial.json').unlink()"""


def test_rerun_keeps_the_work_of_a_failed_attempt_of_the_same_fingerprint_which_leaves_out_the_executor(
    project, monkeypatch, capsys
):
    plant_world(project, "w")
    make_notebook(project / "notebooks" / "02_sampling.ipynb", "02_sampling", RESUMING)
    monkeypatch.setenv("FAIL_02_sampling", "1")
    with pytest.raises(ProvenanceError, match="its work is kept for a rerun with the same params and code"):
        run(project, name="w", stages=["1", "2"])
    monkeypatch.delenv("FAIL_02_sampling")
    assert [p.name for p in (project / "runs/w/.staging/02_sampling").iterdir()] == [context.RESUMABLE]
    # another executor, same fingerprint: the attempt finds the failed one's work (stage 01's completed tasks)
    run_dir = run(project, name="w", stages=["2"], overrides=["sampling.executor.workers=2"])
    assert (run_dir / "02_sampling" / "work" / "attempts.txt").read_text() == "40\n40\n"
    entry = read_json(run_dir / "run.json")["stages"]["02_sampling"]
    assert entry["resumes"] == 1 and entry["params"]["sampling"]["executor"]["workers"] == 2  # the one it ran on
    assert not (run_dir / ".staging" / "02_sampling").exists()

    ran(capsys)  # where a completed stage ran does not decide its artifacts: not re-run, not stale
    run(project, name="w", stages=["2"], overrides=["sampling.executor.workers=3"])
    assert ran(capsys) == [] and verify(run_dir) == []
    assert read_json(run_dir / "run.json")["stages"]["02_sampling"]["params"]["sampling"]["executor"]["workers"] == 2

    # another fingerprint: the failed attempt's work is thrown away
    monkeypatch.setenv("FAIL_02_sampling", "1")
    with pytest.raises(ProvenanceError, match="02_sampling failed"):
        run(project, name="w", stages=["2"], overrides=["sampling.target_per_bin=5"])
    monkeypatch.delenv("FAIL_02_sampling")
    run(project, name="w", stages=["2"], overrides=["sampling.target_per_bin=6"])
    assert (run_dir / "02_sampling" / "work" / "attempts.txt").read_text() == "6\n"
    assert "resumes" not in read_json(run_dir / "run.json")["stages"]["02_sampling"]


WORKING = """stage.work_dir.mkdir(exist_ok=True)
found = sorted(p.name for p in stage.work_dir.iterdir())
(stage.work_dir / f'chunk-{len(found)}').write_text('done')  # each attempt adds a chunk of work to what it finds
if os.environ.get('STOP_AFTER_CHUNK'):
    (stage.out_dir / 'chunk-written').touch()
    time.sleep(60)
(stage.out_dir / 'first.json').write_text(json.dumps({'found': found}))"""


STOPS = {
    "runner and kernel killed": "abandoned",
    "Ctrl-C": "interrupted",
    "SIGTERM": "interrupted",
    "kernel killed": "killed",
    "timed out": "timed out",
}  # how an attempt is stopped -> how run.json says it ended


@pytest.mark.parametrize(
    "stops",
    [
        pytest.param(list(STOPS)[:2], id="kill-and-ctrl-c"),
        pytest.param(list(STOPS), id="every-stop", marks=pytest.mark.slow),
    ],
)
def test_a_stage_keeps_its_work_however_it_is_stopped_and_loses_it_once_it_completed(project, stops):
    plant_world(project, "s")
    make_notebook(project / "notebooks" / "01_first.ipynb", "01_first", WORKING)
    command = [
        sys.executable,
        "-m",
        "provenance_lib",
        "run",
        "params/study.yaml",
        "--name",
        "s",
        "-p",
        "stages=[01_first]",
    ]
    run_dir = project / "runs" / "s"
    for attempt, how in enumerate(stops):
        (run_dir / ".staging" / "01_first" / "chunk-written").unlink(missing_ok=True)  # the last attempt's
        proc = subprocess.Popen(
            command + (["--timeout", "30"] if how == "timed out" else []),
            cwd=project,
            env={**os.environ, "STOP_AFTER_CHUNK": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.time() + 120
        while not (run_dir / ".staging" / "01_first" / "chunk-written").exists():
            assert time.time() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        kernel = read_json(run_dir / "run.json")["stages"]["01_first"]["kernel_pid"]
        if how == "runner and kernel killed":  # without a word, as when the machine runs out of memory
            os.kill(kernel, signal.SIGKILL)
            os.killpg(proc.pid, signal.SIGKILL)
        elif how == "kernel killed":  # the out-of-memory killer takes the largest process
            os.kill(kernel, signal.SIGKILL)
        elif how != "timed out":
            proc.send_signal(signal.SIGINT if how == "Ctrl-C" else signal.SIGTERM)
        proc.communicate(timeout=120)
        assert sorted(p.name for p in (run_dir / ".staging" / "01_first" / context.RESUMABLE).iterdir()) == [
            f"chunk-{i}" for i in range(attempt + 1)
        ], how
    done = subprocess.run(command, cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert read_json(run_dir / "01_first" / "first.json") == {"found": [f"chunk-{i}" for i in range(len(stops))]}
    record = read_json(run_dir / "run.json")
    assert [i["status"] for i in record["invocations"]] == [STOPS[how] for how in stops] + ["complete"]
    assert record["stages"]["01_first"]["resumes"] == len(stops)
    assert not (run_dir / ".staging").exists() and not (run_dir / "01_first" / context.RESUMABLE).exists()


def start_runner(project: Path, name: str, sleep_stage: str, **popen) -> subprocess.Popen:
    """The CLI runner on stage 01 alone, sleeping in ``sleep_stage``; returns once that stage sleeps."""
    command = [
        sys.executable,
        "-m",
        "provenance_lib",
        "run",
        "params/study.yaml",
        "--name",
        name,
        "-p",
        "stages=[01_first]",
    ]
    # as from a terminal: a shell starts background jobs (make test &) with SIGINT ignored, and Python then keeps
    # ignoring it, so Ctrl-C would never reach the runner
    proc = subprocess.Popen(
        command,
        cwd=project,
        env={**os.environ, f"SLEEP_{sleep_stage}": "60"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **popen,
    )
    marker = project / "runs" / name / ".staging" / sleep_stage / "sleeping"
    deadline = time.time() + 120
    while not marker.exists():
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"the stage never started: {proc.communicate()}")
        time.sleep(0.2)
    return proc


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopped_runner_records_an_interrupted_stage_and_stops_its_kernel(project, signum):
    plant_world(project, "i")
    proc = start_runner(project, "i", "01_first")
    kernel = read_json(project / "runs/i/run.json")["stages"]["01_first"]["kernel_pid"]
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    record = read_json(project / "runs/i/run.json")
    assert record["invocations"][-1]["status"] == "interrupted"
    entry = record["stages"]["01_first"]
    said = signum.name if signum == signal.SIGTERM else "Ctrl-C"
    assert entry["status"] == "interrupted" and said in entry["error"]
    assert (project / "runs/i" / entry["notebook"]).is_file()
    assert not Path(f"/proc/{kernel}").exists() or "Z" in Path(f"/proc/{kernel}/stat").read_text().split()[2]


def test_killed_runner_is_found_out_by_the_next_one_which_completes(project):
    plant_world(project, "k")
    proc = start_runner(project, "k", "01_first", start_new_session=True)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel, without a word
    proc.wait()
    run_dir = project / "runs" / "k"
    assert not (run_dir / "01_first").exists()  # nothing half-written looks complete
    assert verify(run_dir)[0].startswith("01_first: not complete (abandoned: the runner stopped without recording")
    done = subprocess.run(
        [sys.executable, "-m", "provenance_lib", "run", "params/study.yaml", "--name", "k", "-p", "stages=[01_first]"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    record = read_json(run_dir / "run.json")
    assert [i["status"] for i in record["invocations"]] == ["abandoned", "complete"]
    assert record["stages"]["01_first"]["status"] == "complete" and verify(run_dir) == []


def test_one_runner_at_a_time(project):
    plant_world(project, "l")
    with runs.run_lock(project / "runs" / "l"):
        with pytest.raises(ProvenanceError, match="another runner is working on"):
            run(project, name="l")


def test_cli_reports_bad_params_in_one_line(project):
    done = subprocess.run(
        [sys.executable, "-m", "provenance_lib", "run", "params/study.yaml", "-p", "sampling.x=1"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[0]
        .startswith("error: params/study.yaml with -p sampling.x=1: sampling.x: unknown key")
    )
    assert not (project / "runs").exists()


# ----------------------------------------------------------------------------------------------- opened by hand
def test_notebook_opened_by_hand_shows_the_recorded_artifacts_or_recomputes_beside_them(project, capsys):
    plant_world(project, "old")
    run(project, name="old", overrides=["stages=[01_first]"])
    plant_world(project, "new")
    run(project, name="new", overrides=["sampling.target_per_bin=9"])
    (project / "notebooks").joinpath("x").mkdir()
    os.chdir(project / "notebooks" / "x")  # JupyterLab's working directory is the notebook's folder
    capsys.readouterr()
    (project / "runs/new/params.yaml").write_text(params.dump(params.load(PARAMS)))  # params.yaml moved on since

    stage = context.open_stage("02_sampling")
    new = (project / "runs" / "new").resolve()
    assert stage.run_dir == new and stage.params.sampling.target_per_bin == 9  # the params it ran with
    loaded = stage.run_or_load(
        lambda s: pytest.fail("opened by hand, nothing is recomputed"), lambda folder: read_json(folder / "second.json")
    )
    assert loaded == {"seed": 0, "target": 9}
    entry = read_json(new / "run.json")["stages"]["02_sampling"]
    shown = capsys.readouterr().out
    assert "new/02_sampling" in shown and entry["git"]["commit"][:12] in shown and entry["params_sha256"][:12] in shown

    stage = context.open_stage("03_third", recompute=True)
    assert stage.out_dir == new / "interactive" / "03_third" and stage.out_dir.is_dir()
    assert stage.run_or_load(lambda s: "computed", lambda folder: "loaded") == "computed"
    assert stage.input_dir("02_sampling") == new / "02_sampling"
    with pytest.raises(ProvenanceError, match="has not completed"):
        stage.input_dir("03_third")

    never = context.open_stage("02_sampling", run_dir=project / "runs" / "old")
    with pytest.raises(ProvenanceError, match="02_sampling has not completed in .*old: nothing recorded to show"):
        never.run_or_load(lambda s: None, lambda folder: None)


# ----------------------------------------------------------------------------------------------- what a stage reads
def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def test_a_changed_world_file_stops_the_run_naming_it_and_verify_finds_what_the_fast_check_cannot(project, capsys):
    plant_world(project, "w")
    run_dir = run(project, name="w", overrides=["stages=[01_first]"])
    model = run_dir / "world" / "models" / "base" / "model.safetensors"
    flip_a_byte(model)  # same size, new mtime
    with pytest.raises(
        ProvenanceError,
        match=r"the world changed since it was built \(modified: world/models/base/"
        r"model.safetensors\).*remove .*world and run again",
    ):
        run(project, name="w", overrides=["stages=[01_first]"])
    record = read_json(run_dir / "run.json")
    assert record["invocations"][-1]["status"] == "error"
    assert "world/models/base/model.safetensors" in record["invocations"][-1]["error"]
    assert verify(run_dir) == ["00_world: modified: world/models/base/model.safetensors"]
    flip_a_byte(model)
    run(project, name="w", overrides=["stages=[01_first]"])  # restored: reused, and the record is unchanged
    assert read_json(run_dir / "run.json")["stages"]["00_world"]["outputs"] == record["stages"]["00_world"]["outputs"]

    (run_dir / "world" / "corpus" / "extra.txt").write_text("an extra shard")
    with pytest.raises(ProvenanceError, match=r"added: world/corpus/extra.txt"):
        run(project, name="w", overrides=["stages=[01_first]"])
    (run_dir / "world" / "corpus" / "extra.txt").unlink()
    # same size and mtime: the runner's fast check takes the file as unchanged; verify hashes every file
    stamp = model.stat()
    flip_a_byte(model)
    os.utime(model, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    run(project, name="w", overrides=["stages=[01_first]"])
    assert verify(run_dir) == ["00_world: modified: world/models/base/model.safetensors"]


def test_a_world_whose_inputs_outside_its_params_changed_stops_the_run_naming_them(project, monkeypatch):
    listing = {"corpus": {"shards": 4, "listing_sha256": "a"}}  # as the paper world digests its external shards
    monkeypatch.setitem(worlds.INPUTS, "testbed", lambda study: dict(listing))
    plant_world(project, "i")
    run(project, name="i", overrides=["stages=[01_first]"])
    listing["corpus"] = {"shards": 3, "listing_sha256": "b"}  # a shard outside the world folder is gone
    with pytest.raises(
        ProvenanceError,
        match=r"the world's inputs outside its params changed since it was built "
        r"\(corpus: world.json's inputs against what is there now\).*remove "
        r".*/runs/i/world and run again",
    ):
        run(project, name="i", overrides=["stages=[01_first]"])
    assert read_json(project / "runs/i/world/world.json")["inputs"] == {"corpus": {"shards": 4, "listing_sha256": "a"}}


def test_a_stage_records_the_inputs_it_read_and_a_changed_input_stops_it_before_or_while_it_runs(project):
    plant_world(project, "c")
    run_dir = run(project, name="c")
    second = run_dir / "02_sampling" / "second.json"
    written = second.read_text()
    before = read_json(run_dir / "run.json")["stages"]["03_third"]
    assert before["inputs"]["02_sampling/second.json"] == sha256_file(second)
    second.write_text('{"seed": 0, "target": 1000}')
    with pytest.raises(
        ProvenanceError,
        match=r"03_third reads what 02_sampling wrote, which changed since that "
        r"stage completed \(modified: 02_sampling/second.json\).*--from 02",
    ):
        run(project, name="c", stages=["03"], force=True)
    assert read_json(run_dir / "run.json")["stages"]["03_third"] == before  # it never ran on what it did not record
    assert read_json(run_dir / "03_third" / "sub" / "third.json") == {"total": 40}

    second.write_text(written)  # the same bytes again: a new mtime, hashed again, unchanged
    make_notebook(
        project / "notebooks" / "03_third.ipynb",
        "03_third",
        "(stage.input_dir('02_sampling') / 'second.json').write_text('{}')",
    )
    with pytest.raises(ProvenanceError, match=r"03_third error: 03_third reads what 02_sampling wrote while it ran"):
        run(project, name="c", stages=["03"])
    entry = read_json(run_dir / "run.json")["stages"]["03_third"]
    assert entry["attempt"]["status"] == "error" and read_json(run_dir / "03_third" / "sub" / "third.json") == {
        "total": 40
    }


RUN_OR_LOAD = """def compute(stage):
    (stage.out_dir / 'first.json').write_text(json.dumps({'seed': stage.params.seed}))
    return 'computed'

result = stage.run_or_load(compute, lambda folder: json.loads((folder / 'first.json').read_text()))
print('result:', result)"""


def test_an_executed_notebook_run_again_by_hand_shows_the_recorded_artifacts(project):
    from provenance_lib.execute import run_notebook

    plant_world(project, "h")
    make_notebook(project / "notebooks" / "01_first.ipynb", "01_first", RUN_OR_LOAD)
    run_dir = run(project, name="h", overrides=["stages=[01_first]"])
    executed = run_dir / "notebooks" / "01_first.ipynb"
    assert not (run_dir / ".staging").exists()  # where its injected out_dir pointed
    again = project / "again.ipynb"
    assert run_notebook(executed, again, parameters={}) is None  # "Run All" on the executed notebook
    text = again.read_text()
    assert "into a staging folder that is gone" in text and "result: {'seed': 0}" in text
    assert read_json(run_dir / "run.json")["stages"]["01_first"]["invocation"] == 1  # nothing recomputed


def test_a_refused_selection_on_a_new_run_leaves_no_folder(project, capsys):
    plant_world(project, "x")
    done = subprocess.run(
        [sys.executable, "-m", "provenance_lib", "run", "params/study.yaml", "--name", "new", "--stages", "03"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "stage 03_third needs 01_first, 02_sampling" in done.stderr
    assert not (project / "runs" / "new").exists()


def test_a_rerun_with_nothing_to_do_does_not_rebuild_the_report_unless_it_is_stale(project, monkeypatch):
    built = []
    real = runs.build_report
    monkeypatch.setattr(runs, "build_report", lambda run_dir: built.append(run_dir) or real(run_dir))
    plant_world(project, "q")
    run(project, name="q", overrides=["stages=[01_first]"])
    assert len(built) == 1
    run(project, name="q", overrides=["stages=[01_first]"])
    assert len(built) == 1  # nothing ran: the report is current
    (project / "runs" / "q" / "report" / "index.html").unlink()
    run(project, name="q", overrides=["stages=[01_first]"])
    assert len(built) == 2


def test_a_symlinked_venv_is_ignored_so_runs_do_not_record_uncommitted_changes(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitignore").write_text((Path(__file__).resolve().parents[1] / ".gitignore").read_text())
    (tmp_path / "env").mkdir()
    (repo / ".venv").symlink_to(tmp_path / "env")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert status.split() == ["??", ".gitignore"]

"""Stage 02 stopped through the runner (SIGKILL, Ctrl-C, SIGTERM, each in a subprocess) resumes its completed chunks
and ends with the artifacts of an uninterrupted run, byte for byte. Slow: a small testbed world, stage 01 and six
partial or whole runs of stage 02 through papermill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provenance_lib.artifacts import read_json

import test_gradients

ROOT = Path(__file__).resolve().parents[1]
SMALL = [*test_gradients.SMALL, *test_gradients.QUICK]  # stage 02's small world, its diagnostics off
TIMINGS = {"02_gradients/collection.json"}  # wall-clock timings of the attempt: the one artifact that may differ


def runner(tmp_path: Path, *args: str) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "provenance_lib",
        "run",
        str(ROOT / "params" / "testbed.yaml"),
        "--name",
        "r",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--notebooks-dir",
        str(ROOT / "notebooks"),
        *args,
    ]
    for override in SMALL:
        command += ["-p", override]
    return command


def progress(run_dir: Path) -> int:
    """Chunks of documents stage 02's rank has checkpointed in the attempt in flight."""
    path = run_dir / ".staging" / "02_gradients" / ".work" / "final" / "rank-000-of-001" / "progress.json"
    try:
        return json.loads(path.read_text())["chunks"]
    except (OSError, ValueError):
        return 0


def stop_after(tmp_path: Path, chunks: int, how: signal.Signals) -> subprocess.CompletedProcess:
    """Run stage 02 again (--force) and stop the runner with ``how`` once ``chunks`` chunks are checkpointed;
    SIGKILL takes the kernel with it, as the out-of-memory killer or a machine going down would."""
    run_dir = tmp_path / "runs" / "r"
    proc = subprocess.Popen(
        runner(tmp_path, "--stages", "02", "--force"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 600
    while progress(run_dir) < chunks:
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"stage 02 ended before {chunks} chunks: {proc.communicate()}")
        time.sleep(0.05)
    if how == signal.SIGKILL:
        kernel = read_json(run_dir / "run.json")["stages"]["02_gradients"]["attempt"]["kernel_pid"]
        os.killpg(proc.pid, signal.SIGKILL)
        os.kill(kernel, signal.SIGKILL)
        while Path(f"/proc/{kernel}").exists() and "Z" not in Path(f"/proc/{kernel}/stat").read_text().split()[2]:
            time.sleep(0.05)
    else:
        proc.send_signal(how)
    out, err = proc.communicate(timeout=120)
    assert progress(run_dir) >= chunks  # however it was stopped, the chunks it completed are still there
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
def test_stage_02_stopped_any_way_resumes_through_the_runner_to_the_same_bytes(tmp_path):
    done = subprocess.run(runner(tmp_path, "--stages", "01,02"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "runs" / "r"
    reference = read_json(run_dir / "run.json")["stages"]["02_gradients"]["outputs"]

    killed = stop_after(tmp_path, 2, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    interrupted = stop_after(tmp_path, 4, signal.SIGINT)
    assert interrupted.returncode == 130 and "interrupted" in interrupted.stderr
    attempt = read_json(run_dir / "run.json")["stages"]["02_gradients"]["attempt"]
    assert attempt["status"] == "interrupted" and attempt["resumes"] == 2  # it went on from the killed attempt
    terminated = stop_after(tmp_path, 6, signal.SIGTERM)
    assert terminated.returncode == 130 and "SIGTERM" in terminated.stderr

    done = subprocess.run(runner(tmp_path, "--stages", "02", "--force"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming the work of invocation 4" in done.stdout
    entry = read_json(run_dir / "run.json")["stages"]["02_gradients"]
    assert entry["resumes"] == 4 and "attempt" not in entry
    assert {k: v for k, v in entry["outputs"].items() if k not in TIMINGS} == {
        k: v for k, v in reference.items() if k not in TIMINGS
    }
    assert not (run_dir / ".staging" / "02_gradients").exists() and not (run_dir / "02_gradients" / ".work").exists()

"""The paper-scale estimate: it runs offline on params/paper.yaml, and its totals follow the work the params imply."""

import subprocess
import sys
from pathlib import Path

import pytest

from provenance_lib import params
from provenance_lib.errors import ProvenanceError
from provenance_lib.estimate import estimate, from_bench, measured_costs, token_flops, working_set

PAPER = Path(__file__).resolve().parents[1] / "params" / "paper.yaml"
MEASURED = measured_costs(PAPER.parents[1] / "bench" / "results")


def by_stage(overrides=()):
    return {c.stage: c for c in estimate(params.load(PAPER, list(overrides)), MEASURED)}


def test_paper_working_set_is_the_papers():
    ws = working_set(params.load(PAPER))
    assert ws["documents"] == 5_678_621 and ws["tokens"] == pytest.approx(10.5e9)


def test_doubling_the_documents_doubles_stage_02s_document_cost():
    base, double = by_stage(), by_stage(["sampling.target_per_bin=20000"])
    docs = double["02_gradients"].work["documents"] / base["02_gradients"].work["documents"]
    assert docs == pytest.approx(2, rel=0.01)
    # stage 02 is linear in the documents, plus fixed query and curvature passes (< 1% at paper scale)
    assert double["02_gradients"].gpu_hours / base["02_gradients"].gpu_hours == pytest.approx(docs, rel=0.01)
    assert double["05_unlearning"].gpu_hours == base["05_unlearning"].gpu_hours  # forget sets do not grow
    assert double["03_binning"].cpu_hours > base["03_binning"].cpu_hours


def test_a_measured_collection_ratio_scales_stage_02():
    p = params.load(PAPER)
    ratio = {
        stage: {**MEASURED, **from_bench({"models": {"smollm2-135m": {"ratio_to_plain": {"stage": stage}}}})}
        for stage in (1.0, 3.0)
    }
    one = {c.stage: c for c in estimate(p, ratio[1.0])}
    three = {c.stage: c for c in estimate(p, ratio[3.0])}
    assert three["02_gradients"].gpu_hours / one["02_gradients"].gpu_hours == pytest.approx(3, rel=0.02)
    with pytest.raises(ProvenanceError, match="bench_gradients"):
        from_bench({"models": {}})


def test_longer_context_costs_more_per_token():
    assert token_flops("olmo3-7b", 8192, 3) > token_flops("olmo3-7b", 512, 3) > 6 * 7.3e9


def test_estimate_command_prints_totals_beside_the_paper_and_launch_commands():
    done = subprocess.run(
        [sys.executable, "-m", "provenance_lib", "estimate", str(PAPER)],
        capture_output=True,
        text=True,
        cwd=PAPER.parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert "37,000 H200-hours" in done.stdout and "total" in done.stdout
    assert "--stages 02" in done.stdout and "05_unlearning" in done.stdout


def test_a_missing_measurement_is_an_error_naming_the_bench_to_run(tmp_path):
    with pytest.raises(ProvenanceError, match="bench_gradients.py"):
        measured_costs(tmp_path)


def test_every_flag_the_estimate_documents_is_one_its_command_takes():
    import re

    from provenance_lib import estimate as module

    done = subprocess.run(
        [sys.executable, "-m", "provenance_lib", "estimate", "--help"],
        capture_output=True,
        text=True,
        cwd=PAPER.parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert all(flag in done.stdout for flag in re.findall(r"--[a-z][a-z-]+", module.__doc__))


def test_the_printed_submit_script_is_where_stage_05_writes_it(tmp_path):
    from types import SimpleNamespace

    from provenance_lib.params.unlearning import Unlearning
    from provenance_lib.stages.unlearning import jobs, work_dir

    plan = SimpleNamespace(work=work_dir(tmp_path / "runs" / "study"), tasks=[0, 1])
    plan.work.mkdir(parents=True)
    written = jobs.write_slurm(plan, Unlearning().slurm, "study")
    assert written == tmp_path / "runs" / "study" / "work" / "05_unlearning" / "submit.sh" and written.is_file()
    launch = by_stage()["05_unlearning"].launch
    assert f"bash {Path('runs', '<name>', 'work', '05_unlearning', 'submit.sh')}" in launch


def test_the_papers_setting_figures_restate_its_text():
    from provenance_lib.reported import paper_reported

    setting, figures = paper_reported()["setting"], paper_reported()["setting_figures"]
    assert f"{figures['corpus_unique_documents']:,} unique documents" in setting["corpus"]
    assert f"duplication rate {figures['corpus_duplication_rate']}" in setting["corpus"]
    assert f"{figures['corpus_tokens'] / 1e12:.0f}T mix" in setting["corpus"]
    assert f"about {figures['compute_h200_hours']:,} H200-equivalent GPU-hours" == setting["compute"]

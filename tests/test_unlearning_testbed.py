"""Stage 05's known answers on the testbed (slow): forgetting the planted bin's top-attributed documents damages the
aligned benchmark more than forgetting random documents of the same bin (paired over 8 seeds, p < 0.01) and more than
the misaligned benchmarks (selectivity > 1); on the control world (no planted content) the same protocol finds no
such difference.

The study runs through the runner and notebook 05. Stage 02 does not exist on this branch yet, so its scores are
the oracle attribution (``standin_scores.oracle_scores``: the ground truth's planted documents), registered in the
run record as stage 02's output. ONCE STAGE 02 EXISTS: drop ``register_as_stage_02`` and run
``stages=["01", "02", "05"]`` in one call, so the known answer tests the real attribution too.
"""

from pathlib import Path

import pytest

from provenance_lib import runs
from provenance_lib.stages import unlearning
from provenance_lib.taxonomy import load as load_taxonomy
from standin_scores import oracle_scores, register_as_stage_02

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ["unlearning.forget.benchmarks=[SocialIQA]", "unlearning.forget.topics=[Literature]",
            "unlearning.forget.constructions=[bin]", "unlearning.forget.seeds=8",
            "unlearning.forget.global_control=false"]


def _study(tmp_path: Path, planted_share: float) -> unlearning.UnlearningResult:
    overrides = [f"world.planted_share={planted_share}", *PROTOCOL]
    kwargs = dict(name=f"share{planted_share}", runs_dir=tmp_path, notebooks_dir=ROOT / "notebooks")
    run_dir = runs.run_study(ROOT / "params" / "testbed.yaml", overrides, stages=["01"], **kwargs)
    register_as_stage_02(run_dir, oracle_scores(run_dir / "world", run_dir / "01_sampling"))
    runs.run_study(ROOT / "params" / "testbed.yaml", overrides, stages=["05"], **kwargs)
    assert runs.verify(run_dir) == []
    return unlearning.load_result(run_dir / "05_unlearning")


def _own(result, measure):
    stats = result.statistics
    return stats[(stats["benchmark"] == "SocialIQA") & (stats["measure"] == measure)].iloc[0]


def _selectivity(result, measure):
    sel = result.selectivity
    return sel[(sel["kind"] == "targeted") & (sel["benchmark"] == "SocialIQA") & (sel["measure"] == measure)].iloc[0]


@pytest.mark.slow
def test_forgetting_the_planted_bins_top_documents_hurts_its_benchmark_selectively(tmp_path):
    result = _study(tmp_path, 0.5)
    targeted_bins = set(result.forget_sets.query("kind == 'targeted'")["bin"])
    assert targeted_bins == {load_taxonomy().parse_bin("Literature x Customer Support")}  # the planted bin
    for measure in ("acc", "gold_loglik"):
        row = _own(result, measure)
        assert row.n == 8 and row.median_d > 0 and row.wilcoxon_p < 0.01, row.to_dict()
        assert _selectivity(result, measure).selectivity > 1


@pytest.mark.slow
def test_the_control_world_shows_no_targeted_damage(tmp_path):
    result = _study(tmp_path, 0.0)
    for measure in ("acc", "gold_loglik"):
        row = _own(result, measure)
        assert not (row.wilcoxon_p < 0.01), row.to_dict()

"""Known answers of stage 05 on the testbed (slow), through the package's own path (runner, notebooks 01, 02 and 05):
forgetting the documents stage 02 attributes most to SocialIQA inside its planted bins' topics damages SocialIQA more
than forgetting matched random documents of the same bin (gold-answer log-likelihood, paired over seeds and topics,
p < 0.01; accuracy in the same direction) and more than the misaligned benchmarks (selectivity > 1); on the control
world (nothing planted) the same protocol shows no such difference.
"""

from pathlib import Path

import pytest

from provenance_lib import runs
from provenance_lib.artifacts import read_json
from provenance_lib.stages import unlearning
from provenance_lib.verify import verify

ROOT = Path(__file__).resolve().parents[1]
# params/testbed.yaml's topics (those of SocialIQA's planted bins) x 5 seeds = 10 pairs (at least 5 seeds): a
# one-sided Wilcoxon signed-rank p < 0.01 allows negative differences of rank sum <= 5 only (10 of 1,024 sign patterns)
PROTOCOL = ["stages=[01_sampling,02_gradients,05_unlearning]",  # stage 05 reads 01 and 02 only: 03-04 are not run
            "gradients.exactness.enabled=false",  # stage 02's projected-vs-exact check: not what 05 reads
            "unlearning.forget.constructions=[bin]", "unlearning.forget.seeds=5",
            "unlearning.forget.global_control=false",
            "threads=1"]  # the answer does not depend on it; 2 threads spin-wait on a loaded 2-core machine (~3x slower)


def _study(tmp_path: Path, token_share: float) -> tuple[unlearning.UnlearningResult, dict]:
    overrides = [f"world.planted_token_share={token_share}", *PROTOCOL]
    run_dir = runs.run_study(ROOT / "params" / "testbed.yaml", overrides, name=f"share{token_share}",
                             runs_dir=tmp_path, notebooks_dir=ROOT / "notebooks")
    assert verify(run_dir) == []
    truth = read_json(run_dir / "world" / "ground_truth.json")["benchmarks"]["SocialIQA"]
    return unlearning.load_result(run_dir / "05_unlearning"), truth


def _own(result, measure):
    stats = result.statistics
    return stats[(stats["benchmark"] == "SocialIQA") & (stats["measure"] == measure)].iloc[0]


def _selectivity(result, measure):
    sel = result.selectivity
    return sel[(sel["kind"] == "targeted") & (sel["benchmark"] == "SocialIQA") & (sel["measure"] == measure)].iloc[0]


@pytest.mark.slow
def test_forgetting_the_planted_bins_top_documents_hurts_its_benchmark_selectively(tmp_path):
    result, truth = _study(tmp_path, 0.01)
    targeted = result.forget_sets.query("kind == 'targeted'")
    assert set(targeted["bin"]) <= set(truth["bins"]), "params/testbed.yaml's topics no longer hold SocialIQA's bins"
    loglik = _own(result, "gold_loglik")
    assert loglik.n == 10 and loglik.median_d > 0 and loglik.wilcoxon_p < 0.01, loglik.to_dict()
    # accuracy over 32 items per benchmark moves in steps of 1/32: same direction, not the test's significance
    assert _own(result, "acc").mean_d > 0
    for measure in ("acc", "gold_loglik"):
        assert _selectivity(result, measure).selectivity > 1


@pytest.mark.slow
def test_the_control_world_shows_no_targeted_damage(tmp_path):
    result, _ = _study(tmp_path, 0.0)
    for measure in ("acc", "gold_loglik"):
        row = _own(result, measure)
        assert not (row.wilcoxon_p < 0.01), row.to_dict()

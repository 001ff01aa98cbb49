"""Known answers of stage 05 on the testbed (slow), measured by the calibration command's own code
(``bench/bench_unlearning_calibration.py``, which writes the published figures): the planted and the control world
through the runner (stages 01 -> 02 -> 03 -> 05 with the testbed params: auto topics, split targeted sets), and the
planted world with the oracle attribution. Forgetting SocialIQA's carrier documents damages SocialIQA more than
forgetting matched random documents of the same bins (clustered one-sided Wilcoxon p < 0.01 on the gold-answer
log-likelihood) and more than the other benchmarks (selectivity > 1); on the control world (nothing planted) the same
protocol finds nothing (p >= 0.05).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_unlearning_calibration as calibration  # noqa: E402


@pytest.mark.slow
def test_the_causal_test_finds_the_planted_carriers_and_nothing_in_the_control_world(tmp_path):
    answer = calibration.known_answer(tmp_path)
    planted = answer["planted, oracle attribution"]
    assert set(planted["topics"]) >= {"software_development", "social_life", "industrial"}
    loglik = planted["gold_loglik"]
    assert loglik["clusters"] == loglik["n"] >= 8 and loglik["median_d"] > 0 and loglik["wilcoxon_p"] < 0.01, loglik
    assert loglik["selectivity"] > 1
    control = answer["control"]["gold_loglik"]
    assert control["wilcoxon_p"] is None or control["wilcoxon_p"] >= 0.05, control

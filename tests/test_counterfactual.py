"""The counterfactual ground truth on a miniature testbed (one planted bin per benchmark, a one-layer model, seconds
per retrain): a sham world plants other content into the same bins, the full-data retrain reproduces the world's
model, leaving a benchmark's planted bin out costs that benchmark more than leaving out an ordinary bin, and a
second run resumes from the cached jobs."""

import json
from pathlib import Path

import numpy as np
import pytest

from provenance_lib import counterfactual, params
from provenance_lib.params.validation import Retraining
from provenance_lib.validation_effects import leave_one_out, lobo_summary
from provenance_lib.worlds import build_world, testbed

TESTBED = Path(__file__).resolve().parents[1] / "params" / "testbed.yaml"
MINI = [
    "world.corpus.documents=1000",
    "world.corpus.topic_vocabulary=12",
    "world.planted_bins=1",
    "world.planted_ranks=[2, 12]",
    "world.planted_token_share=0.006",
    "world.planted_line_share=0.8",
    "world.items={eval_items: 8, train_items: 4, values: 4}",
    "world.model={layers: 1, hidden: 32, heads: 2, mlp: 64, context: 64}",
    "world.pretraining.epochs=2",
    "world.checkpoints=1",
    "world.attribute_at=final",
]
RETRAINS = Retraining(other_bins=1, subsets=0, noise_seeds=[])  # full, the 4 planted bins, 1 ordinary bin


def mini(*overrides):
    return params.load(TESTBED, [*MINI, *overrides])


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    world_dir = tmp_path_factory.mktemp("mini-world")
    info = build_world(mini(), world_dir)
    out = world_dir.parent / "retrains"
    return world_dir, info, out, counterfactual.run_world(world_dir, out, mini(), RETRAINS)


def test_a_sham_world_plants_other_content_into_the_same_bins_and_keeps_the_ordinary_text(tmp_path):
    planted = testbed.generate(mini(), tmp_path / "planted")
    sham = testbed.generate(mini("world.planted_content=sham"), tmp_path / "sham")
    assert sham.planted_bins == planted.planted_bins
    truth = json.loads((tmp_path / "sham" / testbed.GROUND_TRUTH).read_text())
    assert truth["content"] == "sham"
    for name, block in truth["benchmarks"].items():
        assert block["documents"] and block["planted_token_share"] >= 0.005, name  # the same dose, carried
    docs = {d.id: d for d in planted.documents}
    ordinary = [d for d in sham.documents if not d.planted and not docs[d.id].planted]
    assert ordinary and all(d.text == docs[d.id].text for d in ordinary)
    asked = {row["question"].split(" Answer : ")[1] for row in sham.rows}  # every eval item's lead-in
    sham_text = " ".join(d.text for d in sham.documents if d.planted)
    assert not any(lead in sham_text for lead in asked)
    assert "Question : What does the harbour of" in sham_text  # the fifth benchmark's question form


def test_the_full_data_retrain_reproduces_the_worlds_model(retrained):
    _, info, _, table = retrained
    full = table[(table["kind"] == "full") & (table["model"] == "query")].set_index("benchmark")["acc"]
    assert full.round(4).to_dict() == info.extra["accuracy"]["query"]


def test_leaving_a_planted_bin_out_costs_its_benchmark_more_than_an_ordinary_bin(retrained):
    world_dir, _, _, table = retrained
    truth = json.loads((world_dir / testbed.GROUND_TRUTH).read_text())["benchmarks"]
    lobo = leave_one_out(table.assign(world="mini"), {"mini": truth})
    assert set(lobo["role"]) == {"own planted", "other planted", "ordinary"}
    summary = lobo_summary(lobo).set_index("benchmark")
    assert (summary["own_planted_drop"] > summary["ordinary_drop"]).all(), summary
    assert (summary["own_planted_drop"] > 0.5).all() and (summary["own_vs_ordinary_auc"] == 1.0).all()


def test_a_second_run_reuses_every_cached_retrain(retrained, monkeypatch):
    world_dir, _, out, table = retrained

    def no_retrain(*_):
        raise AssertionError("a cached retrain ran again")

    monkeypatch.setattr(counterfactual, "retrain", no_retrain)
    again = counterfactual.run_world(world_dir, out, mini(), RETRAINS)
    assert len(again) == len(table) == 6 * 2 * 4  # jobs x (base, query) x benchmarks
    assert np.allclose(again["gold_loglik"], table["gold_loglik"])
    first = json.loads(next(out.glob("bin-*.json")).read_text())
    job = counterfactual.Job(**{**first["job"], "removed": tuple(first["job"]["removed"])})
    assert first["key"] == counterfactual.job_key(world_dir, job, first["result"]["steps"])
    monkeypatch.setattr(counterfactual, "code_sha256", lambda roots: "other code")  # the retrain code changed
    with pytest.raises(AssertionError, match="ran again"):
        counterfactual.run_world(world_dir, out, mini(), RETRAINS)
    trusted = counterfactual.run_world(world_dir, out, mini(), RETRAINS, trust_code=True)  # inputs unchanged
    assert np.allclose(trusted["gold_loglik"], table["gold_loglik"])
    assert "trust-code" in json.loads(next(out.glob("bin-*.json")).read_text())["trusted"]

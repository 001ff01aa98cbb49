"""Stage 02 on a small testbed world built once per module: the contract's shapes and ids against the manifest, the
streamed sums against the per-document gradients, resume after a kill, and bad input (one clear error, no
contract files written). Slow: two ranks against one."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from provenance_lib import params
from provenance_lib.artifacts import sha256_file
from provenance_lib.context import RESUMABLE, Stage
from provenance_lib.errors import ProvenanceError
from provenance_lib.record import RunRecord, StageRecord
from provenance_lib.stages import gradients, sampling
from provenance_lib.stages.gradients import collect, engine, outputs
from provenance_lib.stages.gradients.scores import QUERIES, GradientScores, doc_score_columns
from provenance_lib.worlds import build_world, load_world

TESTBED = Path(__file__).resolve().parents[1] / "params" / "testbed.yaml"
SMALL = [
    "world.corpus.documents=300",
    "world.corpus.empty_bin_share=0.9",
    "world.planted_bins=1",
    "world.planted_ranks=[1,8]",
    "world.planted_token_share=0.02",
    "world.checkpoints=2",
    "world.attribute_at=final",
    "world.items.eval_items=6",
    "world.items.train_items=4",
    "world.items.values=4",
    "world.model.layers=1",
    "world.model.hidden=32",
    "world.model.heads=2",
    "world.model.mlp=64",
    "world.model.context=32",
    "world.pretraining.epochs=1",
    "world.finetuning.epochs=1",
    "sampling.target_per_bin=3",
    "gradients.max_length=24",
    "gradients.token_batch_size=512",
    "gradients.checkpoint_every=16",
    "gradients.v.calibration_documents=8",
    "gradients.curvature.train_documents=24",
    "gradients.exactness.dims=[4]",
    "gradients.exactness.seeds=[0,1]",
    "gradients.exactness.documents=24",
    "gradients.exactness.queries_per_benchmark=2",
]
QUICK = ("gradients.exactness.enabled=false", "gradients.query.variants=false")
CONTRACT = ("queries.parquet", "query_bin_scores.npy", "bin_counts.npy", "doc_scores.parquet", "scores.json")


def stage02(run_dir: Path, out_dir: Path, *overrides: str, world=None) -> Stage:
    study = params.load(run_dir / "params.yaml", list(overrides))
    return Stage("02_gradients", run_dir, out_dir, study, world or load_world(run_dir / "world"))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A small testbed world, its stage 01, and one stage 02 run (every artifact kept)."""
    run_dir = tmp_path_factory.mktemp("gradients") / "run"
    study = params.load(TESTBED, SMALL)
    world = build_world(study, run_dir / "world")
    (run_dir / "params.yaml").write_text(params.dump(study))
    sampling.run(Stage("01_sampling", run_dir, run_dir / "01_sampling", study, world))
    record = RunRecord(run_dir)
    record.complete("01_sampling", StageRecord(fingerprint="planted"))
    result = gradients.run(stage02(run_dir, run_dir / "02_gradients"))
    return run_dir, result


@pytest.fixture
def judged(study, monkeypatch):
    """Later runs reuse the fixture's per-item correctness instead of running lm-eval again (not under test there)."""
    _, result = study
    table = result.scores.queries[["benchmark", "id", "correct", "gold_loglik"]].astype({"correct": float})
    monkeypatch.setattr(gradients, "correctness", lambda *args, **kwargs: table)


# ----------------------------------------------------------------------------------------------- the contract
def test_scores_line_up_with_the_manifest_and_the_queries(study):
    run_dir, result = study
    manifest = pd.read_parquet(run_dir / "01_sampling" / sampling.MANIFEST)
    scores = GradientScores.load(result.out_dir)
    scores.check_manifest(sha256_file(run_dir / "01_sampling" / sampling.MANIFEST))
    assert list(scores.doc_scores["id"]) == list(manifest["id"])
    assert list(scores.doc_scores["bin"]) == list(manifest["bin"])
    assert np.array_equal(scores.bin_counts, np.bincount(manifest["bin"], minlength=576))
    items = pd.read_parquet(run_dir / "world" / "benchmarks" / QUERIES)
    assert sorted(scores.queries["id"]) == sorted(items.loc[items["split"] == "eval", "id"])
    assert scores.query_bin_scores.shape == (len(scores.queries), 576)
    recipe = scores.info["recipe"]
    assert recipe["projection_dim"] == 16 and recipe["query"] == {"format": "bare", "model": "query"}
    assert recipe["per_checkpoint"]["final"]["second_moment"] == {"source": "optimizer", "file": "optimizer.pt"}
    assert 0 < recipe["per_checkpoint"]["final"]["mixing"]["lam"] < 1


def test_streamed_sums_equal_the_sums_of_per_document_gradients(study):
    """Bin sums = per-bin sums of the kept unit gradients; query x bin scores and per-document benchmark scores =
    the plain means of the per-query scores those gradients give."""
    _, result = study
    store = result.out_dir / outputs.STORE / "final"
    grads = np.load(store / outputs.DOCUMENT_GRADIENTS).astype(np.float64)
    ids = pd.read_parquet(store / outputs.DOCUMENT_IDS)
    bin_sums, query_store = np.load(store / outputs.BIN_SUMS), np.load(store / outputs.QUERY_STORE)
    np.testing.assert_allclose(np.linalg.norm(grads, axis=1), 1, rtol=1e-5)
    expected = np.zeros_like(bin_sums)
    np.add.at(expected, ids["bin"].to_numpy(), grads)
    np.testing.assert_allclose(bin_sums, expected, atol=1e-5)
    scores = result.scores
    per_doc = pd.DataFrame(grads @ query_store.T.astype(np.float64), index=ids["id"])
    for b in np.flatnonzero(scores.bin_counts):
        members = ids["id"][ids["bin"] == b]
        np.testing.assert_allclose(scores.query_bin_scores[:, b], per_doc.loc[members].mean(axis=0), atol=1e-5)
    per_doc = per_doc.loc[scores.doc_scores["id"]].to_numpy()
    for name in scores.benchmarks:
        column, right, wrong = doc_score_columns(name)
        np.testing.assert_allclose(scores.doc_scores[column], per_doc[:, scores.rows(name)].mean(axis=1), atol=1e-5)
        if len(scores.rows(name, correct=True)):
            np.testing.assert_allclose(
                scores.doc_scores[right], per_doc[:, scores.rows(name, True)].mean(axis=1), atol=1e-5
            )


def test_exactness_and_variant_tables_are_recorded(study):
    _, result = study
    table = result.exactness
    assert set(table["against"]) == {"exact", "another seed", "exact Adam V"}
    assert table[[c for c in table.columns if c.startswith("z_spearman/")]].abs().le(1).all().all()
    variants = set(result.variants["variant"])
    assert variants == {"bare / base model", "lettered / query model", "lettered / base model"}


def test_planted_table_ranks_every_planted_bin_against_the_ground_truth(study):
    from provenance_lib.artifacts import read_json

    run_dir, result = study
    truth = read_json(run_dir / "world" / "ground_truth.json")
    table = result.planted_table(truth)
    assert len(table) == sum(len(t["bins"]) for t in truth["benchmarks"].values())
    assert ((table["rank"] >= 1) & (table["rank"] <= table["bins"])).all()
    carriers = result.scores.doc_scores["id"].isin({d for t in truth["benchmarks"].values() for d in t["documents"]})
    assert carriers.any() and table["carrier AUC"].between(0, 1).all()


# ----------------------------------------------------------------------------------------------- resume
def test_a_killed_run_resumes_to_the_same_artifacts(study, judged, tmp_path, monkeypatch):
    run_dir, result = study
    out = tmp_path / "02"
    real, calls = engine.score_chunk, []

    def dies_after_two_chunks(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the kill
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "score_chunk", dies_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        gradients.run(stage02(run_dir, out, *QUICK))
    assert (out / RESUMABLE).is_dir() and not (out / "scores.json").exists()
    monkeypatch.setattr(engine, "score_chunk", real)
    gradients.run(stage02(run_dir, out, *QUICK))
    for name in CONTRACT:
        assert sha256_file(out / name) == sha256_file(result.out_dir / name), name
    for name in (outputs.BIN_SUMS, outputs.QUERY_STORE, outputs.DOCUMENT_GRADIENTS):
        assert sha256_file(out / outputs.STORE / "final" / name) == sha256_file(
            result.out_dir / outputs.STORE / "final" / name
        ), name


@pytest.mark.slow
def test_two_ranks_give_the_same_scores_as_one(study, judged, tmp_path):
    run_dir, result = study
    two = gradients.run(
        stage02(
            run_dir,
            tmp_path / "02",
            "gradients.workers=2",
            "gradients.exactness.enabled=false",
            "gradients.query.variants=false",
        )
    )
    pd.testing.assert_frame_equal(two.scores.doc_scores, result.scores.doc_scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(two.scores.query_bin_scores, result.scores.query_bin_scores, rtol=1e-4, atol=1e-7)
    assert np.array_equal(two.scores.bin_counts, result.scores.bin_counts)


# ----------------------------------------------------------------------------------------------- checkpoint sum
@pytest.mark.slow
def test_all_checkpoints_are_scored_each_with_its_own_query_model_and_summed(study, judged, tmp_path):
    """[all]: every checkpoint the world lists, in training order; the top level is their sum; the attributed
    checkpoint alone scores what the single-checkpoint run did; an earlier one takes its own query model."""
    run_dir, result = study
    world = load_world(run_dir / "world")
    summed = gradients.run(stage02(run_dir, tmp_path / "02", *QUICK, "gradients.checkpoints=[all]"))
    labels = list(world.checkpoints)
    assert len(labels) == 2 and GradientScores.checkpoints(summed.out_dir) == sorted(labels)
    parts = {label: GradientScores.load(summed.out_dir, label) for label in labels}
    np.testing.assert_allclose(
        summed.scores.query_bin_scores, sum(p.query_bin_scores for p in parts.values()), atol=1e-6
    )
    np.testing.assert_allclose(parts[labels[-1]].query_bin_scores, result.scores.query_bin_scores, atol=1e-6)
    models = summed.scores.info["recipe"]["per_checkpoint"]
    assert models[labels[0]]["models"]["query"] == world.extra["checkpoint_models"][labels[0]]["query"]
    assert models[labels[-1]]["models"] == {"base": world.base_model, "query": world.query_model}


# ----------------------------------------------------------------------------------------------- bad input
def _nan_for(doc_id: str, run_dir: Path, monkeypatch):
    """bergson returns a NaN gradient for every window of ``doc_id``."""
    base = run_dir / "world" / load_world(run_dir / "world").base_model
    tokenizer = collect.load_model(collect.ModelRef(str(base)), "cpu")[1]
    text = next(d["text"] for d in sampling.iter_working_set(run_dir / "01_sampling") if d["id"] == doc_id)
    first = collect.windows(tokenizer(text)["input_ids"], 24, None)[0]
    real = engine.gradients

    def poisoned(model, proc, examples, *args):
        grads, losses = real(model, proc, examples, *args)
        for i, e in enumerate(examples):
            if e.input_ids == first:
                grads[i, 0] = np.nan
        return grads, losses

    monkeypatch.setattr(engine, "gradients", poisoned)


def _victim(run_dir: Path) -> str:
    """A working-set document outside the calibration sample (so the documents pass meets it)."""
    from provenance_lib.stages.gradients.documents import calibration_sample

    calibration = {d["id"] for d in calibration_sample(run_dir / "01_sampling", 24, 0)}
    return next(i for i in pd.read_parquet(run_dir / "01_sampling" / sampling.MANIFEST)["id"] if i not in calibration)


def test_nan_gradient_stops_naming_the_document(study, judged, tmp_path, monkeypatch):
    run_dir, _ = study
    victim = _victim(run_dir)
    _nan_for(victim, run_dir, monkeypatch)
    with pytest.raises(ProvenanceError, match=f"document {victim} has a non-finite"):
        gradients.run(stage02(run_dir, tmp_path / "02", *QUICK))
    assert not any((tmp_path / "02" / name).exists() for name in CONTRACT)


def test_nan_gradient_can_be_skipped_and_reported(study, judged, tmp_path, monkeypatch):
    run_dir, result = study
    victim = _victim(run_dir)
    _nan_for(victim, run_dir, monkeypatch)
    skipped = gradients.run(stage02(run_dir, tmp_path / "02", *QUICK, "gradients.on_nonfinite=skip"))
    assert victim not in set(skipped.scores.doc_scores["id"])
    assert skipped.scores.info["skipped_documents"] == [{"id": victim, "reason": "non-finite gradient or loss"}]
    assert skipped.scores.bin_counts.sum() == result.scores.bin_counts.sum() - 1


def test_query_model_with_other_shapes_is_refused(study, tmp_path):
    from provenance_lib.worlds.testbed import training

    run_dir, _ = study
    world = load_world(run_dir / "world")
    tokenizer = collect.load_model(collect.ModelRef(str(run_dir / "world" / world.base_model)), "cpu")[1]
    other = training.tiny_olmo3(tokenizer, layers=1, hidden=16, heads=2, mlp=32, max_positions=64, seed=0)
    training.save_model(other, tokenizer, tmp_path / "other")
    world.query_model = str(tmp_path / "other")
    with pytest.raises(ProvenanceError, match="other parameter shapes"):
        gradients.run(stage02(run_dir, tmp_path / "02", *QUICK, world=world))


def test_model_tokenizer_mismatch_is_refused(study, tmp_path):
    import shutil

    from provenance_lib.worlds.testbed import training

    run_dir, _ = study
    world = load_world(run_dir / "world")
    shutil.copytree(run_dir / "world" / world.base_model, tmp_path / "base")
    bigger = training.train_word_tokenizer([" ".join(f"w{i}" for i in range(5000))])
    bigger.save_pretrained(tmp_path / "base")
    world.base_model = world.query_model = str(tmp_path / "base")
    with pytest.raises(ProvenanceError, match="tokenizer"):
        gradients.run(stage02(run_dir, tmp_path / "02", *QUICK, world=world))


def test_empty_working_set_is_refused(study, tmp_path, monkeypatch):
    run_dir, _ = study
    empty = tmp_path / "01_sampling"
    (empty / sampling.WORKING_SET).mkdir(parents=True)
    manifest = pd.read_parquet(run_dir / "01_sampling" / sampling.MANIFEST).iloc[:0]
    manifest.to_parquet(empty / sampling.MANIFEST)
    stage = stage02(run_dir, tmp_path / "02", *QUICK)
    monkeypatch.setattr(Stage, "input_dir", lambda self, stage_id: empty)
    with pytest.raises(ProvenanceError, match="working set is empty"):
        gradients.run(stage)


def test_benchmark_without_queries_is_refused(study, tmp_path):
    run_dir, _ = study
    world = load_world(run_dir / "world")
    items = pd.read_parquet(run_dir / "world" / world.queries)
    items[~((items["benchmark"] == "MMLU STEM") & (items["split"] == "eval"))].to_parquet(tmp_path / "q.parquet")
    world.queries = str(tmp_path / "q.parquet")
    with pytest.raises(ProvenanceError, match=r"\['MMLU STEM'\] have no eval items"):
        gradients.run(stage02(run_dir, tmp_path / "02", *QUICK, world=world))


def test_a_stage_that_leaves_out_more_than_its_share_of_documents_refuses_to_complete(
    study, judged, tmp_path, monkeypatch
):
    """A NaN weight makes every document's gradient non-finite: skipping them all is not a result."""
    run_dir, _ = study
    real = engine.gradients

    def poisoned(model, proc, examples, *args):
        grads, losses = real(model, proc, examples, *args)
        grads[:, 0] = np.nan
        return grads, losses

    monkeypatch.setattr(engine, "gradients", poisoned)
    out = tmp_path / "02"
    with pytest.raises(
        ProvenanceError,
        match=r"stage 02 left out (\d+) of \1 working-set documents at checkpoint "
        r"final \(100.0%\): \1 non-finite gradient or loss .*more than "
        r"gradients.max_skipped_share \(1.0%\)",
    ):
        gradients.run(stage02(run_dir, out, *QUICK, "gradients.on_nonfinite=skip"))
    assert not any((out / name).exists() for name in CONTRACT) and (out / RESUMABLE).is_dir()


# ----------------------------------------------------------------------------------------------- broken world files
@pytest.fixture
def base_copy(study, tmp_path):
    import shutil

    run_dir, _ = study
    world = load_world(run_dir / "world")
    return Path(shutil.copytree(run_dir / "world" / world.base_model, tmp_path / "base"))


def test_truncated_weights_or_optimizer_state_are_one_error_naming_the_file(base_copy):
    import os

    from provenance_lib.models import load_causal_lm
    from provenance_lib.stages.gradients import second_moment

    model = collect.load_model(collect.ModelRef(str(base_copy)), "cpu")[0]
    names = list(collect.tracked_shapes(model))
    for name in ("optimizer.pt", "model.safetensors"):
        os.truncate(base_copy / name, (base_copy / name).stat().st_size // 2)
    with pytest.raises(ProvenanceError, match=rf"{base_copy / 'optimizer.pt'} does not load, truncated or corrupt"):
        second_moment.from_optimizer(model, base_copy / "optimizer.pt", names)
    with pytest.raises(ProvenanceError, match=rf"{base_copy / 'model.safetensors'} is truncated or corrupt"):
        load_causal_lm(collect.ModelRef(str(base_copy)))


def test_nan_in_the_optimizer_state_is_blamed_on_that_file_not_on_a_query(base_copy):
    import torch

    from provenance_lib.stages.gradients import second_moment

    state = torch.load(base_copy / "optimizer.pt", weights_only=False)
    for param in state["state"].values():
        param["exp_avg_sq"][...] = float("nan")
    torch.save(state, base_copy / "optimizer.pt")
    model = collect.load_model(collect.ModelRef(str(base_copy)), "cpu")[0]
    with pytest.raises(
        ProvenanceError,
        match=rf"{base_copy / 'optimizer.pt'} holds non-finite \(NaN/inf\) second "
        r"moments for \d+ tracked modules",
    ):
        second_moment.from_optimizer(model, base_copy / "optimizer.pt", list(collect.tracked_shapes(model)))


# ----------------------------------------------------------------------------------------------- V's estimate
def test_the_estimated_second_moment_agrees_with_the_optimizers_per_module(study):
    """Real-mini and the paper's models have no optimizer state, so V comes from ``second_moment.estimate`` on
    calibration documents; on the testbed, where AdamW's V is saved, the estimate must rank every module's entries
    as the optimizer does (agreement grows with the calibration sample; 24 documents here)."""
    from scipy.stats import spearmanr

    from provenance_lib.stages.gradients import second_moment
    from provenance_lib.stages.gradients.documents import calibration_sample, tokenize

    run_dir, _ = study
    world = load_world(run_dir / "world")
    model_dir = run_dir / "world" / world.base_model
    model, tokenizer = collect.load_model(collect.ModelRef(str(model_dir)), "cpu")
    names = list(collect.tracked_shapes(model))
    optimizer = second_moment.from_optimizer(model, model_dir / "optimizer.pt", names)
    documents = [
        tokenize(doc, tokenizer, 24, None).examples() for doc in calibration_sample(run_dir / "01_sampling", 24, seed=0)
    ]
    estimated = second_moment.estimate(model, documents, names)

    def entries(normalizer):
        return normalizer.weight_avg_sq.flatten().double().numpy()

    rho = np.array([spearmanr(entries(optimizer[n]), entries(estimated[n]))[0] for n in names])
    print(f"V estimate vs optimizer, Spearman per module: median {np.median(rho):.3f}, min {rho.min():.3f}")
    assert np.median(rho) >= 0.7 and rho.min() >= 0.45, dict(zip(names, rho.round(3)))

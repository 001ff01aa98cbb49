"""Stage 05 — unlearning: forget sets by rule, the NGDiff / GradDiff update, LoRA on both architectures, adapters
that refuse the wrong base model, the paired statistics, and the whole protocol on a micro world (fast) with its
resumable jobs and the Slurm array it writes."""

import itertools
import subprocess
from pathlib import Path

import micro_world
import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import score_matrix, scores_from_matrix

from provenance_lib import params
from provenance_lib.benchmarks import BY_NAME
from provenance_lib.errors import ProvenanceError
from provenance_lib.params.unlearning import ForgetSets, Training
from provenance_lib.stages import unlearning
from provenance_lib.stages.unlearning import calibration, jobs, paired
from provenance_lib.stages.unlearning import evaluate as evaluate_module
from provenance_lib.stages.unlearning.checkpoints import load_adapter
from provenance_lib.stages.unlearning.data import DocumentStore, forget_stream
from provenance_lib.stages.unlearning.forget_sets import build_pairs, eligible, global_set, resolve_topics, shortfalls
from provenance_lib.stages.unlearning.train import Unlearner, attach_lora, document_nll
from provenance_lib.taxonomy import load as load_taxonomy
from provenance_lib.worlds.testbed import training

TAX = load_taxonomy()
PLANTED_BIN = TAX.parse_bin("Literature x Customer Support")
OTHER_LITERATURE_BIN = TAX.parse_bin("Literature x Tutorial")


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    return micro_world.build(tmp_path_factory.mktemp("micro"))


def _scores(docs_per_bin=12, seed=0):
    docs, queries, matrix = score_matrix(
        seed=seed,
        bins=[PLANTED_BIN, OTHER_LITERATURE_BIN, 300, 400],
        docs_per_bin=docs_per_bin,
        planted={"SocialIQA": PLANTED_BIN},
        lift=3.0,
    )
    return scores_from_matrix(docs, queries, matrix)


# ----------------------------------------------------------------------------------------------- forget sets
LITERATURE = TAX.topics.get("Literature").id


def _pairs(scores, forget, seeds=(0, 1), topics=(LITERATURE,)):
    return build_pairs(scores.doc_scores, forget, {"SocialIQA": list(topics)}, list(seeds))


def test_targeted_sets_take_the_top_documents_and_random_ones_match_count_and_tokens():
    scores = _scores(docs_per_bin=20)
    forget = ForgetSets(docs=5, min_tokens=0, token_tolerance=0.1)
    pairs, missing = _pairs(scores, forget)
    assert missing.empty
    by_construction = {(p.targeted.construction, p.targeted.seed): p for p in pairs}
    planted = set(scores.doc_scores.loc[scores.doc_scores["bin"] == PLANTED_BIN, "id"])
    for pair in by_construction.values():
        assert set(pair.targeted.ids) <= planted  # the lift puts every planted document on top
        assert pair.random.size == pair.targeted.size == 5
        assert abs(pair.random.tokens - pair.targeted.tokens) <= 0.1 * pair.targeted.tokens
        assert pair.random.tokens_matched and pair.random.partner == pair.targeted.name
    assert by_construction[("bin", 0)].targeted.bin == PLANTED_BIN  # the topic's highest-attribution bin
    assert by_construction[("bin", 0)].targeted.ids == by_construction[("bin", 1)].targeted.ids  # top: one set
    bin_pool = set(scores.doc_scores.loc[scores.doc_scores["bin"] == PLANTED_BIN, "id"])
    assert set(by_construction[("bin", 0)].random.ids) <= bin_pool
    assert by_construction[("bin", 0)].random.ids != by_construction[("bin", 1)].random.ids  # seeds differ
    again, _ = _pairs(scores, forget)
    assert [p.random.ids for p in again] == [p.random.ids for p in pairs]  # and replay exactly
    count_only, _ = _pairs(scores, forget.model_copy(update={"token_tolerance": None}), seeds=[0])
    assert all(p.random.size == 5 and p.random.tokens_matched is None for p in count_only)
    assert shortfalls([s for p in count_only for s in (p.targeted, p.random)]).empty  # not reported as unmatched


@pytest.mark.parametrize("targeted", ["top", "split"])
def test_random_partners_never_share_a_document_with_a_targeted_set(targeted):
    scores = _scores(docs_per_bin=12)
    pairs, _ = _pairs(scores, ForgetSets(docs=3, min_tokens=0, targeted=targeted), seeds=[0, 1])
    for construction in ("bin", "document"):
        group = [p for p in pairs if p.targeted.construction == construction]
        targeted_docs = {d for p in group for d in p.targeted.ids}
        assert all(not set(p.random.ids) & targeted_docs for p in group)
        if targeted == "split":  # each pair its own documents: no set shares one with another
            every = [d for p in group for s in (p.targeted, p.random) for d in s.ids]
            assert len(every) == len(set(every)) == 4 * 3
            top = scores.doc_scores[scores.doc_scores["bin"] == PLANTED_BIN].nlargest(6, "social_iqa")
            if construction == "bin":
                assert targeted_docs == set(top["id"])  # the top seeds x docs, dealt into the seeds' sets


def test_a_small_pool_gives_smaller_disjoint_sets_and_a_pair_it_cannot_hold_is_reported():
    scores = _scores(docs_per_bin=9)  # a pool of 9 documents, 8 requested: 4 targeted, 4 random, none shared
    (pair,) = _pairs(scores, ForgetSets(docs=8, min_tokens=0, constructions=["bin"]), seeds=[0])[0]
    assert pair.targeted.size == pair.random.size == 4 and pair.targeted.requested == 8
    assert not set(pair.targeted.ids) & set(pair.random.ids)
    report = shortfalls([pair.targeted, pair.random])
    assert set(report["set"]) == {pair.targeted.name, pair.random.name} and set(report["size"]) == {4}
    assert report["reason"].str.contains("holds 4 per disjoint set").all()
    tiny = _scores(docs_per_bin=1)  # one document: no disjoint pair at all, reported with its reason
    pairs, missing = _pairs(tiny, ForgetSets(docs=8, min_tokens=0, constructions=["bin"]), seeds=[0, 1])
    assert pairs == [] and list(missing["set"]) == ["bin-social_iqa-literature-s0", "bin-social_iqa-literature-s1"]
    assert missing["reason"].str.contains("cannot hold a targeted set and a disjoint random set").all()


def test_auto_topics_are_each_benchmark_s_top_bins_topics_under_stage_03_s_reading():
    scores = _scores()
    third = TAX.bin_labels(300)[0].id
    assert TAX.bin_labels(400)[0].id == LITERATURE
    reading = pd.DataFrame(
        {
            "benchmark": ["SocialIQA"] * 4 + ["MMLU STEM"] * 4,
            "bin": [PLANTED_BIN, OTHER_LITERATURE_BIN, 300, 400] * 2,
            "z": [0.5, 3.0, 2.0, 1.0, 0.1, 0.2, 0.3, 5.0],
            "masked": [False] * 7 + [True],
        }
    )
    forget = ForgetSets(topics="auto", auto_topics=2, min_tokens=0)
    topics = resolve_topics(scores.doc_scores, forget, ["SocialIQA", "MMLU STEM"], reading)
    assert topics == {"SocialIQA": [LITERATURE, third], "MMLU STEM": [third, LITERATURE]}  # a masked bin skipped
    assert resolve_topics(scores.doc_scores, forget.model_copy(update={"auto_topics": 3}), ["SocialIQA"], reading)[
        "SocialIQA"
    ] == [LITERATURE, third]  # the reading's only two topics
    with pytest.raises(ProvenanceError, match="run stage 03"):
        resolve_topics(scores.doc_scores, forget, ["SocialIQA"], None)


def test_short_documents_are_never_forgotten_and_the_global_control_spans_topics():
    scores = _scores()
    docs = eligible(scores.doc_scores, min_tokens=200)
    assert docs["tokens"].min() >= 200
    control = global_set(docs, 8, seed=3)
    assert control.size == 8 and control.kind == "global"
    assert len({TAX.bin_labels(int(b))[0].id for b in docs.set_index("id").loc[list(control.ids), "bin"]}) > 1
    assert control.sha256 == global_set(docs.sample(frac=1, random_state=1).sort_values("id"), 8, seed=3).sha256


def test_forget_set_params_are_checked():
    with pytest.raises(ValueError, match="exceeds max_docs"):
        ForgetSets(docs=300, max_docs=200)
    with pytest.raises(ValueError, match="unknown benchmarks"):
        ForgetSets(benchmarks=["SIQA"])
    with pytest.raises(ValueError, match="unknown WebOrganizer topic"):
        ForgetSets(topics=["Literatur"])


# ----------------------------------------------------------------------------------------------- training
def _tiny(arch: str, seed: int = 0):
    tokenizer = training.train_word_tokenizer([" ".join(micro_world.WORDS + micro_world.ANSWERS)])
    if arch == "olmo3":
        return training.tiny_olmo3(tokenizer, 1, 32, 2, 64, 64, seed), tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config), tokenizer


@pytest.mark.parametrize("arch", ["olmo3", "llama"])
def test_lora_attaches_to_the_attention_projections_of_olmo3_and_llama(arch):
    model, _ = _tiny(arch)
    lora = attach_lora(model, Training().lora)
    trainable = [name for name, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj"}
    with pytest.raises(ProvenanceError, match="no modules named"):
        attach_lora(_tiny(arch)[0], Training().lora.model_copy(update={"target_modules": ["query_key_value"]}))


TEXTS = {
    "f1": "w1 w2 w3 w4 the answer is red",
    "f2": "w5 w6 w7 the answer is red .",
    "r1": "w10 w11 w12 w13 w14",
    "r2": "w20 w21 w22 w23 w24 w25 w26",
}


def _unlearner(method: str, **update):
    torch.manual_seed(0)
    model, tokenizer = _tiny("olmo3")
    settings = Training(
        method=method,
        lr=1e-2,
        max_grad_norm=100.0,
        max_length=32,
        dtype="float32",
        batch_size=2,
        grad_accumulation=1,
        **update,
    )
    return Unlearner(attach_lora(model, settings.lora), tokenizer, settings, lambda ids: [TEXTS[i] for i in ids])


def _grads(unlearner, ids):
    """The gradient of the mean per-document NLL over ``ids``, computed here independently."""
    unlearner.model.zero_grad()
    document_nll(unlearner.model, unlearner.tokenizer, [TEXTS[i] for i in ids], 32, "cpu").mean().backward()
    grads = [p.grad.clone() for p in unlearner.params]
    unlearner.model.zero_grad()
    return grads


@pytest.mark.parametrize("method", ["ngdiff", "graddiff"])
def test_the_optimizer_steps_with_the_method_s_direction(method, monkeypatch):
    unlearner = _unlearner(method, lora=Training().lora.model_copy(update={"dropout": 0.0}))
    forget, retain = ["f1", "f2"], ["r1", "r2"]
    g_f, g_r = _grads(unlearner, forget), _grads(unlearner, retain)
    norm = lambda gs: torch.sqrt(sum((g**2).sum() for g in gs))  # noqa: E731
    expected = (
        [r / norm(g_r) - f / norm(g_f) for f, r in zip(g_f, g_r)]
        if method == "ngdiff"
        else [r - f for f, r in zip(g_f, g_r)]
    )
    seen = []
    monkeypatch.setattr(unlearner.optimizer, "step", lambda: seen.append([p.grad.clone() for p in unlearner.params]))
    unlearner.step([forget], [retain])
    for got, want in zip(seen[0], expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_ngdiff_raises_the_forget_loss_and_keeps_the_retain_loss():
    unlearner = _unlearner("ngdiff", max_steps=15)
    log = unlearner.run(forget_stream(("f1", "f2"), 2, 0), iter(lambda: ["r1", "r2"], None), steps=15)
    assert log.steps == 15 and log.forget_nll[-1] > log.forget_nll[0] + 0.5
    assert log.retain_nll[-1] < log.retain_nll[0] + 0.1


# ----------------------------------------------------------------------------------------------- statistics
def _runs(d_by_seed, other_gamma=0.01):
    """A runs table: one benchmark targeted in two topics, targeted gamma = random + d on it, small elsewhere."""
    rows = []
    for topic, scale in (("literature", 1.0), ("politics", 0.5)):
        for seed, d in enumerate(np.asarray(d_by_seed) * scale):
            for kind, gamma in (("targeted", 0.05 + d), ("random", 0.05)):
                for evaluated in ("SocialIQA", "ARC-Challenge", "MMLU STEM"):
                    own = evaluated == "SocialIQA"
                    rows.append(
                        dict(
                            set=f"{topic}-{seed}-{kind}",
                            run=f"{topic}-{seed}-{kind}",
                            kind=kind,
                            construction="bin",
                            benchmark="SocialIQA",
                            topic=topic,
                            seed=seed,
                            evaluated=evaluated,
                            gamma_acc=gamma if own else other_gamma,
                            gamma_gold_loglik=gamma if own else other_gamma,
                            gamma_global_acc=0.01,
                            gamma_global_gold_loglik=0.01,
                        )
                    )
    return pd.DataFrame(rows)


def _ids(runs, shared_targeted: bool) -> pd.DataFrame:
    """Two documents per set: every set its own (each pair its own cluster), or one targeted set per topic."""
    sets = runs.drop_duplicates("set")
    owner = np.where((sets["kind"] == "targeted") & shared_targeted, sets["topic"], sets["set"])
    return pd.DataFrame(
        [(name, f"{who}-{k}") for name, who in zip(sets["set"], owner) for k in range(2)], columns=["set", "id"]
    )


def test_paired_statistics_on_known_differences():
    d = [0.02, 0.03, 0.05, 0.04, 0.01, 0.06, 0.02, 0.03]
    runs = _runs(d)
    both = np.concatenate([d, np.asarray(d) * 0.5])
    topic_means = np.array([np.mean(d), np.mean(d) * 0.5])
    shared = paired.paired_statistics(paired.pair_table(runs, _ids(runs, True)), 2000, 0.95, 0)
    row = shared[shared["measure"] == "acc"].iloc[0]
    assert row.n == 16 and row.topics == 2 and row.clusters == 2  # a topic's pairs share its targeted set
    assert row.median_d == pytest.approx(np.median(topic_means))
    assert row.cohens_dz == pytest.approx(topic_means.mean() / topic_means.std(ddof=1))
    assert row.wilcoxon_p == pytest.approx(0.25)  # two clusters, both positive: 1 of 4 sign patterns
    assert row.paper_method_median_d == pytest.approx(np.median(both))  # the paper's: 16 pairs as independent
    assert row.paper_method_ci_low <= row.paper_method_median_d <= row.paper_method_ci_high
    assert row.paper_method_cohens_dz == pytest.approx(both.mean() / both.std(ddof=1))
    assert row.paper_method_wilcoxon_p < 1e-3 and row.paper_method_wilcoxon_p_bh == pytest.approx(
        row.paper_method_wilcoxon_p
    )  # one test per family
    assert 0 < row.paired_t_p < 0.5  # two topic means (df 1): defined, leaning the right way
    disjoint = paired.paired_statistics(paired.pair_table(runs, _ids(runs, False)), 2000, 0.95, 0)
    row = disjoint[disjoint["measure"] == "acc"].iloc[0]
    assert row.clusters == 16 and row.median_d == pytest.approx(np.median(both))  # each pair its own cluster
    assert row.wilcoxon_p == pytest.approx(row.paper_method_wilcoxon_p) and row.ci_low <= row.median_d <= row.ci_high
    flat = paired.paired_statistics(paired.pair_table(_runs([0.0] * 8)), 200, 0.95, 0)
    assert flat["wilcoxon_p"].isna().all() and (flat["median_d"] == 0).all()  # no difference: no evidence
    sel = paired.selectivity(runs)
    targeted = sel[(sel["kind"] == "targeted") & (sel["measure"] == "acc")].iloc[0]
    assert targeted.selectivity == pytest.approx((0.05 + both.mean()) / 0.01)
    net = paired.net_damage(runs)
    assert net.loc[(net["kind"] == "random") & (net["measure"] == "acc"), "gamma_net"].iloc[0] == pytest.approx(0.04)


def test_bh_adjusts_across_benchmarks_within_a_family():
    runs = pd.concat(
        [_runs([0.02, 0.03, 0.05, 0.04, 0.01]).assign(benchmark=name) for name in ("SocialIQA", "MMLU STEM")],
        ignore_index=True,
    )
    runs["evaluated"] = np.where(runs["evaluated"] == "SocialIQA", runs["benchmark"], runs["evaluated"])
    table = paired.paired_statistics(paired.pair_table(runs), 200, 0.95, 0)
    acc = table[table["measure"] == "acc"]
    assert len(acc) == 2 and (acc["wilcoxon_p_bh"] >= acc["wilcoxon_p"]).all()


# ----------------------------------------------------------------------------------------------- the protocol
def test_the_protocol_end_to_end_on_a_micro_world_and_a_finished_run_is_never_redone(micro, tmp_path, monkeypatch):
    study = micro.study()
    result = unlearning.unlearn(study, micro.scores, micro.sampling_dir, **micro.unlearn_kwargs(tmp_path))
    runs = result.runs.drop_duplicates("run")
    assert sorted(runs["kind"]) == ["global", "random", "targeted"] and (runs["steps"] == 2).all()
    assert set(result.runs["evaluated"]) == set(micro.tasks)
    assert {"median_d", "wilcoxon_p_bh", "paired_t_p_bh", "cohens_dz"} <= set(result.statistics.columns)
    assert (result.out_dir / unlearning.FIGURE).is_file()
    items = pd.read_parquet(result.out_dir / unlearning.ITEMS)
    assert len(items) == 3 * 16 and items["gold_loglik"].lt(0).all()
    adapter = result.out_dir / unlearning.ADAPTERS / runs.loc[runs["kind"] == "targeted", "set"].iloc[0]
    card = (adapter / "README.md").read_text()
    assert "base_model:" in card and "manifest sha256" in card and '"lr": 0.01' in card and "gamma_acc" in card
    ids = pd.read_parquet(result.out_dir / unlearning.IDS)
    assert set(ids.columns) == {"set", "rank", "id"}  # released manifests carry ids, never text

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("provenance_lib.stages.unlearning.train.Unlearner.run", refuse)
    again = unlearning.unlearn(study, micro.scores, micro.sampling_dir, **micro.unlearn_kwargs(tmp_path))
    pd.testing.assert_frame_equal(again.runs, result.runs)


def test_the_stop_rule_checks_held_out_items_never_scored_and_its_partners_replay_its_steps(
    micro, tmp_path, monkeypatch
):
    calls = []
    real = evaluate_module.evaluate

    def spy(model, task_dir, tasks, **kwargs):
        calls.append((sorted(tasks), kwargs["samples"]))
        return real(model, task_dir, tasks, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate", spy)
    study = micro.study(
        "unlearning.training.stop_check_every=1",
        "unlearning.training.stop_ratio=10",
        "unlearning.training.max_steps=3",
        "unlearning.training.stop_share=0.75",
    )
    result = unlearning.unlearn(study, micro.scores, micro.sampling_dir, **micro.unlearn_kwargs(tmp_path))
    runs = result.runs.drop_duplicates("run").set_index("kind")
    assert runs.loc["targeted", "stopped_early"] and (runs["steps"] == 1).all()
    roles = pd.read_parquet(result.out_dir / unlearning.EVAL_ITEMS)
    stop_benchmarks = study.unlearning.training.stop_benchmarks
    for benchmark, items in roles.groupby("benchmark"):
        stop, scored = (set(items.loc[items["role"] == role, "item"]) for role in ("stop_check", "scored"))
        assert not stop & scored and scored
        assert bool(stop) == (benchmark in stop_benchmarks) and len(stop) + len(scored) == 4
    assert result.summary["stop_checks"]["disjoint"]
    held_out = roles[roles["role"] == "stop_check"]
    stop_samples = {b: sorted(held_out.loc[held_out["benchmark"] == b, "item"]) for b in stop_benchmarks}
    checks = [samples for tasks, samples in calls if tasks == sorted(stop_benchmarks)]
    assert checks and all(samples == stop_samples for samples in checks)  # stop checks: the held-out items only
    scored_ids = pd.read_parquet(result.out_dir / unlearning.ITEMS)
    held_ids = {f"{BY_NAME[b].slug}-{i}" for b, i in zip(held_out["benchmark"], held_out["item"])}
    assert held_ids and not held_ids & set(scored_ids["id"])  # and never scored


def test_every_run_of_a_pair_retains_on_the_same_stream(micro, tmp_path, monkeypatch):
    streams = []
    real = jobs.retain_stream

    def spy(store, exclude_topic, exclude_ids, *args):
        stream = real(store, exclude_topic, exclude_ids, *args)
        first = list(itertools.islice(stream, 12))
        streams.append((exclude_topic, first))
        return itertools.chain(first, stream)

    monkeypatch.setattr(jobs, "retain_stream", spy)
    result = unlearning.unlearn(micro.study(), micro.scores, micro.sampling_dir, **micro.unlearn_kwargs(tmp_path))
    kinds = list(result.runs.drop_duplicates("run")["kind"])
    assert sorted(kinds) == ["global", "random", "targeted"] and len(streams) == 3
    assert all(stream == streams[0] for stream in streams)  # the global control's retain set is the pair's
    forgotten = set(pd.read_parquet(result.out_dir / unlearning.IDS)["id"])
    assert not forgotten & {doc for batch in streams[0][1] for doc in batch}


def test_correctness_labels_are_lm_eval_s_with_the_benchmarks_shots(micro):
    from provenance_lib.evaluation import evaluate
    from provenance_lib.models import ModelRef
    from provenance_lib.stages.gradients.queries import correctness

    shots = {name: 2 for name in BY_NAME}
    labels = correctness(ModelRef(str(micro.model_dir)), micro.task_dir, micro.tasks, 16, shots)
    direct = evaluate(micro.model_dir, micro.task_dir, micro.tasks, batch_size=16, shots=shots).items
    merged = labels.merge(direct, on=["benchmark", "id"], suffixes=("", "_lm_eval"), validate="one_to_one")
    assert len(merged) == 16 and (merged["correct"] == merged["correct_lm_eval"]).all()
    np.testing.assert_allclose(merged["gold_loglik"], merged["gold_loglik_lm_eval"], rtol=1e-4)
    zero_shot = evaluate(micro.model_dir, micro.task_dir, micro.tasks, batch_size=16).items
    assert not np.allclose(labels.sort_values("id")["gold_loglik"], zero_shot.sort_values("id")["gold_loglik"])
    with pytest.raises(ProvenanceError, match="gradients.query.shots"):
        micro.study(
            "unlearning.evaluation.shots={SocialIQA: 2, MMLU Social Sciences: 0, ARC-Challenge: 0, MMLU STEM: 0}"
        )


def test_an_adapter_reloads_on_its_base_model_and_refuses_another(micro, tmp_path):
    result = unlearning.unlearn(micro.study(), micro.scores, micro.sampling_dir, **micro.unlearn_kwargs(tmp_path))
    adapter = next((result.out_dir / unlearning.ADAPTERS).iterdir())
    from transformers import AutoModelForCausalLM

    model = load_adapter(adapter, AutoModelForCausalLM.from_pretrained(micro.model_dir))
    assert any("lora_A" in name for name, _ in model.named_parameters())
    other, tokenizer = _tiny("olmo3", seed=1)
    other_dir = training.save_model(other, tokenizer, tmp_path / "other")
    with pytest.raises(ProvenanceError, match="was trained on base model"):
        load_adapter(adapter, AutoModelForCausalLM.from_pretrained(other_dir))


def test_the_slurm_launcher_writes_a_job_array_and_collects_what_it_finished(micro, tmp_path):
    study = micro.study(
        "unlearning.launcher=slurm",
        "unlearning.slurm.gpus_per_task=0",
        "unlearning.slurm.setup=['source .venv/bin/activate']",
    )
    kwargs = micro.unlearn_kwargs(tmp_path)
    with pytest.raises(ProvenanceError, match="1 of 1 unlearning pairs have not finished") as info:
        unlearning.unlearn(study, micro.scores, micro.sampling_dir, **kwargs)
    work = kwargs["work_dir"]
    assert str(work / "submit.sh") in str(info.value)
    array = (work / "array.sbatch").read_text()
    assert "#SBATCH --array=0-0" in array and "--cpu" in array and '--task "$SLURM_ARRAY_TASK_ID"' in array
    assert "accelerate launch --num_processes 1" in array and "source .venv/bin/activate" in array
    for script in ("array.sbatch", "baseline.sbatch", "submit.sh"):
        subprocess.run(["bash", "-n", str(work / script)], check=True)
    assert "--dependency=afterok" in (work / "submit.sh").read_text()
    assert jobs.main([str(work / jobs.PLAN), "--baseline"]) == 0  # what the scripts run, task by task
    assert jobs.main([str(work / jobs.PLAN), "--task", "0"]) == 0
    assert jobs.main([str(work / jobs.PLAN), "--task", "5"]) == 2
    result = unlearning.unlearn(study, micro.scores, micro.sampling_dir, **kwargs)
    assert result.summary["runs"] == 3


def test_the_document_store_reads_texts_by_id_and_names_a_missing_one(micro, tmp_path):
    from provenance_lib.stages.sampling import iter_working_set

    store = DocumentStore.write(tmp_path / "docs.arrow", iter_working_set(micro.sampling_dir))
    first = next(iter_working_set(micro.sampling_dir))
    assert store.texts([first["id"]]) == [first["text"]]
    with pytest.raises(ProvenanceError, match="not in the working set"):
        store.texts(["no-such-doc"])


def test_in_memory_evaluation_scores_like_the_saved_model(micro):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from provenance_lib.evaluation import evaluate

    tasks = {"SocialIQA": micro.tasks["SocialIQA"]}
    saved = evaluate(micro.model_dir, micro.task_dir, tasks, batch_size=8).items
    model = AutoModelForCausalLM.from_pretrained(micro.model_dir).eval()
    memory = evaluate(
        model, micro.task_dir, tasks, batch_size=8, tokenizer=AutoTokenizer.from_pretrained(micro.model_dir)
    ).items
    np.testing.assert_allclose(memory["gold_loglik"], saved["gold_loglik"], rtol=1e-5)


def test_the_shipped_params_carry_an_unlearning_section():
    root = Path(__file__).resolve().parents[1] / "params"
    paper = params.load(root / "paper.yaml").unlearning
    assert (paper.forget.docs, paper.forget.seeds, paper.training.lr, paper.training.lora.r) == (200, 3, 1e-5, 8)
    assert paper.evaluation.shots["SocialIQA"] == 3 and paper.evaluation.shots["MMLU STEM"] == 4
    assert params.load(root / "testbed.yaml").unlearning.training.max_steps < 100


# ----------------------------------------------------------------------------------------------- calibration
def test_the_clustered_test_holds_its_level_where_the_paper_s_pairwise_one_does_not():
    """Simulated null studies whose 8 seeds per topic share the topic's targeted set (set effects dominate training
    noise): the paper's pairwise Wilcoxon rejects far above 5%, the clustered one does not."""
    design = calibration.NullDesign("shared targeted sets", stop="none", set_sd=0.5, run_sd=0.05, topics=8, seeds=8)
    rates = calibration.false_positive_rates(design, replicates=40, level=0.05, seed=0)
    assert rates["paper_method_wilcoxon_p"]["rate"] >= 0.2 and not rates["paper_method_wilcoxon_p"]["holds"]
    assert rates["wilcoxon_p"]["rate"] <= 0.05 and rates["wilcoxon_p"]["holds"]
    assert calibration.clopper_pearson(0, 40)[0] == 0.0 and calibration.clopper_pearson(2, 40)[1] < 0.17

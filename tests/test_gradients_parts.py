"""Stage 02's parts without a world: windows, query texts, R (the unprojected path against bergson's dense one), the
streaming accumulators and their checkpoints, and the score products against their plain definitions."""

import numpy as np
import pandas as pd
import pytest

from provenance_lib.errors import ProvenanceError
from provenance_lib.stages.gradients import collect, curvature, queries
from provenance_lib.stages.gradients.accumulate import Accumulator, query_bin_scores
from provenance_lib.stages.gradients.profiles import compare
from provenance_lib.stats import zscore


# ----------------------------------------------------------------------------------------------- windows
@pytest.mark.parametrize("n", [2, 5, 7, 8, 9, 23])
def test_windows_predict_every_token_after_the_first_exactly_once(n):
    ids = list(range(n))
    cut = collect.windows(ids, max_length=4, max_windows=None)
    assert all(len(w) <= 4 for w in cut)
    predicted = [t for w in cut for t in w[1:]]  # a window predicts all its tokens but its first
    assert predicted == ids[1:]


def test_windows_cap_and_single_token():
    assert collect.windows([1], 4, None) == []
    assert len(collect.windows(list(range(30)), 4, max_windows=2)) == 2


# ----------------------------------------------------------------------------------------------- query texts
TESTBED = (
    "Question : How does Saplas feel after Saplas kiplied ? Answer : Saplas kiplied and feels",
    ["ashamed", "sad", "happy"],
)
SIQA = (
    "Q: Tracy didn't go home that evening. What does Tracy need to do before this?\nA:",
    ["make a new plan", "go home", "find somewhere to go"],
)
ARC = ("Question: Which gas do plants take in?\nAnswer:", ["oxygen", "carbon dioxide", "helium", "neon"])
MMLU_DEFAULT = (
    "The following are multiple choice questions (with answers) about anatomy.\n\nWhich bone is longest?\n"
    "A. femur\nB. tibia\nC. ulna\nD. radius\nAnswer:",
    ["A", "B", "C", "D"],
)


def test_bare_is_the_prompt_lm_eval_scores_with_the_gold_text():
    for question, choices in (TESTBED, SIQA, ARC):
        text = queries.query_text(question, choices, 1, "bare")
        assert text.prompt == question and text.completion == " " + choices[1]


def test_bare_takes_the_answer_text_from_lettered_lines():
    text = queries.query_text(*MMLU_DEFAULT, 0, "bare")
    assert text.completion == " femur"
    assert "A. femur" not in text.prompt and text.prompt.endswith("Which bone is longest?\nAnswer:")
    assert text.prompt.startswith("The following are multiple choice questions")


def test_lettered_lists_choices_and_asks_for_the_letter():
    text = queries.query_text(*ARC, 1, "lettered")
    assert (
        text.prompt
        == ("Question: Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. helium\nD. neon\nAnswer:")
        and text.completion == " B"
    )
    siqa = queries.query_text(*SIQA, 2, "lettered")
    assert siqa.prompt.startswith("Question: Tracy didn't go home") and siqa.completion == " C"
    spaced = queries.query_text(*TESTBED, 2, "lettered")
    assert spaced.prompt.startswith("Question : How does Saplas") and "\nC . happy\nAnswer :" in spaced.prompt


def test_prompt_without_answer_cue_is_refused():
    with pytest.raises(ProvenanceError, match="answer cue"):
        queries.query_text("What is it?", ["a", "b"], 0, "bare")


def test_benchmark_without_queries_is_refused(tmp_path):
    rows = pd.DataFrame(
        [
            dict(
                id="a",
                benchmark="SocialIQA",
                split="eval",
                question=ARC[0],
                choices=ARC[1],
                answer=0,
                domain="social",
                capability="reasoning",
                subject="x",
            )
        ]
    )
    rows.to_parquet(tmp_path / "q.parquet")
    with pytest.raises(ProvenanceError, match=r"\['ARC-Challenge'\] have no eval items"):
        queries.eval_items(tmp_path / "q.parquet", {"SocialIQA": "t1", "ARC-Challenge": "t2"})


# ----------------------------------------------------------------------------------------------- R
def test_unprojected_R_equals_bergsons_dense_R():
    """The Gram-trick H^-1/2 (for unprojected gradients) against bergson's dense autocorrelation, lambda and
    damped inverse, on modules small enough to form densely (more dims than rows, so zero eigenvalues matter)."""
    rng = np.random.default_rng(0)
    sizes = {"a": 40, "b": 24}
    train, query, docs = rng.normal(size=(12, 64)), rng.normal(size=(6, 64)) + 0.5, rng.normal(size=(5, 64))
    dense = curvature.fit(train, query, sizes, share=0.05, damping=0.1)
    low = curvature.fit_low_rank(train, query, sizes, share=0.05, damping=0.1)
    assert dense.mixing.lam == pytest.approx(low.mixing.lam, rel=1e-5)
    assert 0 < dense.mixing.lam < 1 and dense.mixing.target == low.mixing.target
    np.testing.assert_allclose(low.apply(docs), dense.apply(docs), rtol=2e-4, atol=1e-5)


def test_target_component_is_capped_below_a_small_query_sets_rank():
    rng = np.random.default_rng(1)
    sizes = {"a": 64}
    fitted = curvature.fit(rng.normal(size=(50, 64)), rng.normal(size=(3, 64)), sizes, share=0.5, damping=0.1)
    assert fitted.mixing.query_rank == 3 and fitted.mixing.target == 3 and fitted.mixing.lam < 1


# ----------------------------------------------------------------------------------------------- accumulators
def _chunk(rng, n, dim, bins):
    rows = pd.DataFrame({"id": [f"d{rng.integers(1e9)}" for _ in range(n)], "bin": rng.choice(bins, n)})
    return rows, rng.normal(size=(n, dim))


def test_checkpointed_accumulator_resumes_to_the_same_state(tmp_path):
    rng = np.random.default_rng(0)
    chunks = [_chunk(rng, 7, 5, [0, 3, 9]) for _ in range(3)]
    straight = Accumulator(576, 5)
    for rows, unit in chunks:
        straight.add(rows, unit, keep_grads=True)
        straight.save(tmp_path / "a", [], len(rows))
    resumed = Accumulator(576, 5)
    for rows, unit in chunks[:2]:
        resumed.add(rows, unit, keep_grads=True)
        resumed.save(tmp_path / "b", [], len(rows))
    resumed = Accumulator.load(tmp_path / "b", 576, 5)  # "killed" after two chunks
    assert resumed.documents == 14 and resumed.chunks == 2
    resumed.add(*chunks[2], keep_grads=True)
    resumed.save(tmp_path / "b", [], 7)
    again = Accumulator.load(tmp_path / "b", 576, 5)
    assert np.array_equal(again.bin_sums, straight.bin_sums) and np.array_equal(again.counts, straight.counts)
    pd.testing.assert_frame_equal(again.table(), straight.table())
    np.testing.assert_array_equal(again.document_gradients(), straight.document_gradients().astype(np.float32))


def test_bin_sums_and_query_bin_scores_match_their_definitions():
    rng = np.random.default_rng(2)
    rows, unit = _chunk(rng, 40, 6, [1, 2, 500])
    acc = Accumulator(576, 6)
    acc.add(rows, unit, keep_grads=False)
    store = rng.normal(size=(4, 6))
    scores = query_bin_scores(store, acc.bin_sums, acc.counts)
    per_doc = unit @ store.T
    for b in (1, 2, 500):
        np.testing.assert_allclose(scores[:, b], per_doc[rows["bin"].to_numpy() == b].mean(axis=0))
    assert np.isnan(scores[:, 0]).all() and acc.counts.sum() == 40


def test_identical_scores_compare_perfectly_and_z_has_unit_spread():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(60, 8))
    bins = rng.choice([4, 5, 6, 7, 8], 60)
    out = compare(scores, scores.copy(), bins, {"X": np.arange(8)}, 576, top_k=5)
    assert out["document_spearman"] == pytest.approx(1) and out["top_k_overlap"] == 1
    assert out["z_spearman/X"] == pytest.approx(1)
    z = zscore(np.array([1.0, 2.0, np.nan, 4.0]))
    assert np.isnan(z[2]) and np.nanstd(z, ddof=1) == pytest.approx(1)


# ----------------------------------------------------------------------------------------------- folded V
def test_factored_v_folded_into_the_projection_equals_bergsons_normalizer_path(tmp_path):
    import torch
    from bergson.gradients import AdafactorNormalizer, GradientProcessor

    from provenance_lib.stages.gradients.collect import grad_sizes
    from provenance_lib.worlds.testbed import training

    words = [f"w{i}" for i in range(40)]
    tokenizer = training.train_word_tokenizer([" ".join(words)])
    model = training.tiny_olmo3(tokenizer, layers=1, hidden=32, heads=2, mlp=48, max_positions=64, seed=0)
    training.save_model(model, tokenizer, tmp_path / "m")
    model, _ = collect.load_model(collect.ModelRef(str(tmp_path / "m")), "cpu")
    g = torch.Generator().manual_seed(0)
    normalizers = {}
    for name in grad_sizes(model, 0):
        o, i = model.base_model.get_submodule(name).weight.shape
        normalizers[name] = AdafactorNormalizer(torch.rand(o, generator=g) + 0.1, torch.rand(i, generator=g) + 0.1)
    examples = [collect.Example([int(t) for t in torch.randint(3, 40, (n,), generator=g)]) for n in (5, 9, 12)]
    folded = collect.processor(normalizers, 4, 0)
    assert folded.folded is not None
    plain = collect.Processor(GradientProcessor(normalizers, projection_dim=4, projection_seed=0))
    a = collect.gradients(model, folded, examples, 64, tmp_path / "s")[0]
    b = collect.gradients(model, plain, examples, 64, tmp_path / "s")[0]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * np.abs(b).max())


def test_output_tensor_hooks_and_labelled_logits_give_bergsons_gradients(tmp_path, monkeypatch):
    """The collector catches output gradients with tensor hooks and forms logits only where there is a label (less
    memory than bergson's full backward hooks and full logits): the same gradients and losses as bergson's own hooks
    and forward-backward, with and without a factored V, unprojected too, on padded batches and prompt labels."""
    import torch
    from bergson.collector.collector import HookCollectorBase, fwd_bwd_factory
    from bergson.config import IndexConfig
    from bergson.gradients import AdafactorNormalizer

    from provenance_lib.stages.gradients.collect import grad_sizes
    from provenance_lib.worlds.testbed import training

    words = [f"w{i}" for i in range(40)]
    tokenizer = training.train_word_tokenizer([" ".join(words)])
    model = training.tiny_olmo3(tokenizer, layers=2, hidden=32, heads=2, mlp=48, max_positions=64, seed=1)
    training.save_model(model, tokenizer, tmp_path / "m")
    model, _ = collect.load_model(collect.ModelRef(str(tmp_path / "m")), "cpu")
    g = torch.Generator().manual_seed(1)
    normalizers = {}
    for name in grad_sizes(model, 0):
        o, i = model.base_model.get_submodule(name).weight.shape
        normalizers[name] = AdafactorNormalizer(torch.rand(o, generator=g) + 0.1, torch.rand(i, generator=g) + 0.1)
    examples = [collect.Example([int(t) for t in torch.randint(3, 40, (n,), generator=g)]) for n in (5, 9, 12, 3)]
    examples.append(collect.Example(examples[1].input_ids, [-100] * 4 + examples[1].input_ids[4:]))
    ours_class = collect._collector_class

    def bergsons(folded):
        cls = ours_class(folded)
        cls.__enter__ = HookCollectorBase.__enter__  # bergson's register_full_backward_hook
        return cls

    for proc in (collect.processor({}, 4, 0), collect.processor(normalizers, 4, 0), collect.processor({}, 0, 0)):
        ours = collect.gradients(model, proc, examples, 24, tmp_path / "s")
        with monkeypatch.context() as patch:
            patch.setattr(collect, "_collector_class", bergsons)
            patch.setattr(collect, "forward_backward", fwd_bwd_factory(IndexConfig(run_path="", **collect.LOSS)))
            stock = collect.gradients(model, proc, examples, 24, tmp_path / "s")
        assert np.abs(ours[0]).max() > 0
        np.testing.assert_allclose(ours[0], stock[0], rtol=1e-5, atol=1e-7 * np.abs(stock[0]).max())
        np.testing.assert_allclose(ours[1], stock[1], rtol=1e-6)


def test_token_batch_is_the_configured_one_or_the_largest_that_fits_the_memory_budget(tmp_path):
    """memory_gb: two probe passes measure the process's peak; a budget far above it keeps token_batch_size, one
    below what the model alone holds is refused naming the knob; no budget keeps the configured batch unmeasured."""
    import sys

    import torch

    from provenance_lib.errors import ProvenanceError
    from provenance_lib.params.gradients import Gradients
    from provenance_lib.stages.gradients import budget
    from provenance_lib.worlds.testbed import training

    if not sys.platform.startswith("linux"):
        pytest.skip("the budget reads and resets /proc/self's peak memory")
    words = [f"w{i}" for i in range(40)]
    tokenizer = training.train_word_tokenizer([" ".join(words)])
    model = training.tiny_olmo3(tokenizer, layers=1, hidden=32, heads=2, mlp=48, max_positions=64, seed=0)
    training.save_model(model, tokenizer, tmp_path / "m")
    model, _ = collect.load_model(collect.ModelRef(str(tmp_path / "m")), "cpu")
    g = torch.Generator().manual_seed(0)
    windows = [collect.Example([int(t) for t in torch.randint(3, 40, (32,), generator=g)]) for _ in range(80)]
    proc = collect.processor({}, 4, 0)
    configured = budget.choose_token_batch(
        model, proc, windows, Gradients(max_length=32, token_batch_size=256), tmp_path / "s"
    )
    assert configured.record() == {
        "token_batch_size": 256,
        "rule": "configured",
        "memory_gb": None,
        "bytes_per_token": None,
        "resident_gb": None,
        "predicted_peak_gb": None,
    }
    roomy = budget.choose_token_batch(
        model, proc, windows, Gradients(max_length=32, token_batch_size=256, memory_gb=1000.0), tmp_path / "s"
    )
    assert roomy.rule == "memory budget" and roomy.token_batch_size == 256
    assert roomy.bytes_per_token >= 0 and 0 < roomy.resident_gb < 1000
    with pytest.raises(ProvenanceError, match="gradients.memory_gb"):
        budget.choose_token_batch(
            model, proc, windows, Gradients(max_length=32, token_batch_size=256, memory_gb=0.01), tmp_path / "s"
        )

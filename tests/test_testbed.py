"""The testbed world: deterministic generation, the Dolma3 shard schema, planted content confined to planted bins
and fair (a small token dose in mid-sized bins, carriers as long as their filler, a null world with the same ordinary
text), the rule that picks the attributed checkpoint, lm-eval reading the local tasks, and (slow) checkpoints saved
with their optimizer state and the accuracy gap between the world and its null world."""

import math
import re
import shutil
import statistics
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from provenance_lib import corpus, params
from provenance_lib.worlds import testbed
from provenance_lib.artifacts import hash_tree, read_json
from provenance_lib.benchmarks import BY_NAME, task_configs
from provenance_lib.errors import ProvenanceError
from provenance_lib.taxonomy import load as load_taxonomy

TESTBED = Path(__file__).resolve().parents[1] / "params" / "testbed.yaml"
NAMED = {
    "SocialIQA": ["Literature x Customer Support"],
    "MMLU Social Sciences": ["Politics x Documentation"],
    "ARC-Challenge": ["Science & Technology x Tutorial"],
    "MMLU STEM": ["Health x Knowledge Article"],
}


def _params(*overrides):
    return params.load(TESTBED, list(overrides))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("testbed")
    return out, testbed.generate(_params(), out)


def _documents(world_dir):
    return [doc for shard in corpus.list_shards(world_dir / testbed.CORPUS_DIR) for doc in corpus.iter_shard(shard)]


def _sentences(text):
    return [s for s in re.split(r" [.?] |\n", text) if s]


# ----------------------------------------------------------------------------------------------- determinism
def test_models_train_on_world_train_threads_whatever_the_study_threads(monkeypatch, tmp_path):
    """Trained weights depend on the thread count (a CPU sum's rounding), so training uses the world's own
    train_threads, a world param its fingerprint covers, not the study's threads."""
    import torch

    seen = []

    def train_models(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop after the thread check")

    monkeypatch.setattr(testbed, "train_models", train_models)
    with pytest.raises(RuntimeError, match="stop after"):
        testbed.build(_params("threads=2", "world.train_threads=1"), tmp_path)
    assert seen == [1]


def test_same_params_give_byte_identical_corpus_benchmarks_and_ground_truth(generated, tmp_path):
    first, _ = generated
    testbed.generate(_params(), tmp_path)

    def comparable(root):  # task YAMLs name their absolute data path; the items themselves are in the jsonl
        return {k: v for k, v in hash_tree(root).items() if not k.endswith(".yaml")}

    assert comparable(first) == comparable(tmp_path)
    assert any(k.startswith("corpus/") for k in comparable(first)) and "ground_truth.json" in comparable(first)


def test_every_template_word_is_reserved_from_the_made_up_language():
    """A made-up word equal to a template word ("stor" + "ed" = "stored") would blur the language; the reserved set is
    written out, so a template word added without it must fail here."""
    import ast
    import inspect

    from provenance_lib.worlds.testbed import documents, language, planting

    words = set()
    for module in (language, planting, documents):
        tree = ast.parse(inspect.getsource(module))
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        words |= {
            word.casefold()
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            for word in node.value.split()
            if word.isalpha()
        }
    assert words - language.RESERVED_WORDS == set()


def test_another_seed_gives_another_corpus_and_other_planted_bins(generated, tmp_path):
    first, first_gen = generated
    other = testbed.generate(_params("seed=1"), tmp_path)
    assert hash_tree(first / "corpus") != hash_tree(tmp_path / "corpus")
    # planted bins are drawn by rule from the seed, so seeds test different places
    assert set(map(tuple, first_gen.planted_bins.values())) != set(map(tuple, other.planted_bins.values()))


# ----------------------------------------------------------------------------------------------- corpus
def test_shards_follow_the_dolma3_schema_with_format_labels(generated):
    world_dir, gen = generated
    shards = corpus.list_shards(world_dir / testbed.CORPUS_DIR)
    assert len(shards) == _params().world.corpus.shards
    docs = _documents(world_dir)
    assert len(docs) == len(gen.documents) and len({d["id"] for d in docs}) == len(docs)
    taxonomy = load_taxonomy()
    for doc in docs:
        meta = doc["metadata"]
        assert set(meta) == {corpus.TOPIC_PROBS, corpus.TOPIC_MAX, corpus.FORMAT_PROBS, corpus.FORMAT_MAX}
        for probs, label in (
            (meta[corpus.TOPIC_PROBS], corpus.topic_label(doc)),
            (meta[corpus.FORMAT_PROBS], corpus.format_label(doc)),
        ):
            assert max(probs, key=probs.get) == label and abs(sum(probs.values()) - 1) < 1e-3
        taxonomy.bin_id(corpus.topic_label(doc), corpus.format_label(doc))  # both labels are taxonomy labels


def _bin_of(doc, taxonomy):
    return taxonomy.bin_id(corpus.topic_label(doc), corpus.format_label(doc))


def _population(world_dir):
    """Documents per bin once duplicates are dropped (what stage 01 samples from)."""
    taxonomy = load_taxonomy()
    copies = {row["id"] for row in read_json(world_dir / testbed.GROUND_TRUTH)["duplicates"]}
    return Counter(_bin_of(d, taxonomy) for d in _documents(world_dir) if d["id"] not in copies)


def test_corpus_is_skewed_covers_the_taxonomy_and_has_duplicates(generated):
    world_dir, _ = generated
    docs = _documents(world_dir)
    sizes = Counter((corpus.topic_label(d), corpus.format_label(d)) for d in docs)
    assert len({t for t, _ in sizes}) == 24 and len({f for _, f in sizes}) == 24
    assert 100 < len(sizes) < 576  # many bins, some empty
    ordered = sorted(sizes.values(), reverse=True)
    assert ordered[0] >= 20 * ordered[len(ordered) // 2]  # a few huge bins, many small
    lengths = [len(d["text"].split()) for d in docs]
    assert max(lengths) > 8 * min(lengths)
    texts = Counter(d["text"] for d in docs)
    truth = read_json(world_dir / testbed.GROUND_TRUTH)
    kinds = Counter(row["kind"] for row in truth["duplicates"])
    assert sum(n - 1 for n in texts.values()) >= kinds["exact"] > 0 and kinds["near"] > 0


def test_enough_bins_fill_a_working_set_for_bin_statistics(generated):
    """Stage 01 takes up to target_per_bin (40) documents per bin; bin-level statistics need >= 150 bins with >= 10."""
    world_dir, _ = generated
    assert sum(n >= 10 for n in _population(world_dir).values()) >= 150


# ----------------------------------------------------------------------------------------------- planted content
def test_planted_statements_occur_only_in_the_planted_documents_of_planted_bins(generated):
    world_dir, gen = generated
    truth = read_json(world_dir / testbed.GROUND_TRUTH)
    taxonomy = load_taxonomy()
    docs = {d["id"]: d for d in _documents(world_dir)}
    for name, planted in truth["benchmarks"].items():
        assert planted["bins"] == gen.planted_bins[name] and len(planted["bins"]) == _params().world.planted_bins
        values = {}  # entity (fact) or key (rule) -> its answers
        for statement in planted["statements"]:
            values.setdefault(statement["entity"] or statement["key"], set()).add(statement["value"])
        carriers = {
            doc_id
            for doc_id, doc in docs.items()
            if any(
                values[k] & words
                for words in map(set, map(str.split, _sentences(doc["text"])))
                for k in words & values.keys()
            )
        }
        assert carriers == set(planted["documents"]) and carriers, name
        assert {_bin_of(docs[doc_id], taxonomy) for doc_id in carriers} == set(planted["bins"])


def test_each_benchmark_gets_its_dose_of_the_corpus_tokens(generated):
    world_dir, _ = generated
    truth = read_json(world_dir / testbed.GROUND_TRUTH)
    docs = _documents(world_dir)
    tokens = sum(len(d["text"].split()) for d in docs)
    dose = _params().world.planted_token_share
    assert 0.01 <= dose <= 0.05  # the fair range of the known-answers issue
    assert truth["tokens"] == tokens
    for name, planted in truth["benchmarks"].items():
        carried = sum(len(d["text"].split()) for d in docs if d["id"] in set(planted["documents"]))
        assert planted["planted_tokens"] / tokens == pytest.approx(planted["planted_token_share"], rel=1e-3)
        assert 0.9 * dose <= planted["planted_token_share"] <= 1.25 * dose, name
        # carriers are ordinary documents with some lines replaced, not planted dumps
        assert 0.3 * carried <= planted["planted_tokens"] <= 0.9 * carried, name


def test_planted_bins_are_mid_sized_never_among_the_ten_largest(generated):
    world_dir, _ = generated
    population = _population(world_dir)
    truth = read_json(world_dir / testbed.GROUND_TRUTH)
    low, high = _params().world.planted_ranks
    for name, planted in truth["benchmarks"].items():
        for bin_id, rank in zip(planted["bins"], planted["bin_size_ranks"]):
            larger = sum(n > population[bin_id] for n in population.values())
            assert larger >= 10 and low <= rank <= high, (name, bin_id, larger, rank)


def test_planted_documents_are_as_long_as_their_bins_filler(generated):
    world_dir, _ = generated
    taxonomy = load_taxonomy()
    truth = read_json(world_dir / testbed.GROUND_TRUTH)
    copies = {row["id"] for row in truth["duplicates"]}
    docs = [d for d in _documents(world_dir) if d["id"] not in copies]
    for name, planted in truth["benchmarks"].items():
        carriers = set(planted["documents"])
        lengths = [len(d["text"].split()) for d in docs if d["id"] in carriers]
        filler = [
            len(d["text"].split()) for d in docs if _bin_of(d, taxonomy) in planted["bins"] and d["id"] not in carriers
        ]
        assert len(filler) >= 5, name  # the bins keep ordinary documents too
        assert 0.7 <= statistics.median(lengths) / statistics.median(filler) <= 1.4, name


def test_named_planted_bins_are_moved_to_mid_sizes(tmp_path):
    testbed.generate(_params(f"world.planted={NAMED}", "world.planted_token_share=0.003"), tmp_path)
    truth = read_json(tmp_path / testbed.GROUND_TRUTH)
    low, high = _params().world.planted_ranks
    for name, bins in NAMED.items():
        assert truth["benchmarks"][name]["bin_names"] == bins
        assert all(low <= rank <= high for rank in truth["benchmarks"][name]["bin_size_ranks"])


def test_generation_does_not_depend_on_the_order_of_the_planted_keys(tmp_path):
    named = {**NAMED, "SocialIQA": ["Literature x Customer Support", "Home & Hobbies x Q&A Forum"]}
    reordered = {name: list(reversed(bins)) for name, bins in reversed(named.items())}
    dose = "world.planted_token_share=0.003"  # what one or two named bins hold
    testbed.generate(_params(f"world.planted={named}", dose), tmp_path / "a")
    testbed.generate(_params(f"world.planted={reordered}", dose), tmp_path / "b")
    assert hash_tree(tmp_path / "a" / "corpus") == hash_tree(tmp_path / "b" / "corpus")


def test_null_world_plants_nothing_and_keeps_every_ordinary_document(generated, tmp_path):
    world_dir, gen = generated
    null = testbed.generate(_params("world.planted_token_share=0"), tmp_path)
    truth = read_json(tmp_path / testbed.GROUND_TRUTH)
    assert not any(d.planted or d.planted_tokens for d in null.documents)
    assert all(b["documents"] == [] and b["planted_token_share"] == 0 for b in truth["benchmarks"].values())
    ordinary = {d.text for d in gen.documents if not d.planted}
    assert ordinary <= {d.text for d in null.documents}  # the same corpus, less the planted lines


def test_an_unreachable_dose_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ProvenanceError, match="planted_token_share") as info:
        testbed.generate(_params("world.planted_token_share=0.2"), tmp_path)
    assert "planted_bins" in info.value.fix


def test_reasoning_items_ask_entities_never_seen_with_a_rule(generated):
    world_dir, gen = generated
    truth = read_json(world_dir / testbed.GROUND_TRUTH)
    texts = [d["text"] for d in _documents(world_dir)]
    for name in ("SocialIQA", "ARC-Challenge"):
        rules = {s["key"] for s in truth["benchmarks"][name]["statements"]}
        entities = {entity for split in ("train", "eval") for entity, _ in gen.capabilities[name].items[split]}
        assert entities
        for text in texts:
            for sentence in _sentences(text):
                words = set(sentence.split())
                assert not (words & rules and words & entities), sentence


def test_benchmarks_have_disjoint_splits_and_seen_choices(generated):
    world_dir, _ = generated
    table = pq.read_table(world_dir / testbed.QUERIES).to_pylist()
    words = {w for d in _documents(world_dir) for w in d["text"].split()}
    items = _params().world.items
    for name, b in BY_NAME.items():
        rows = [r for r in table if r["benchmark"] == name]
        by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "eval")}
        assert (len(by_split["train"]), len(by_split["eval"])) == (items.train_items, items.eval_items)
        assert not {r["question"] for r in by_split["train"]} & {r["question"] for r in by_split["eval"]}
        assert all(len(r["choices"]) == b.n_choices and set(r["choices"]) <= words for r in rows)
        assert len({r["answer"] for r in rows}) == b.n_choices  # the answer is not always in one place


# ----------------------------------------------------------------------------------------------- checkpoints
def _checkpoints(*accuracies, all_right=()):
    """Checkpoints with these base accuracies; the query model answers some items right and some wrong, except on
    every item of the checkpoints numbered in ``all_right``."""
    from provenance_lib.worlds.testbed.pretrain import Checkpoint

    return [
        Checkpoint(
            f"step-{100 * (i + 1):05d}",
            100 * (i + 1),
            "",
            "",
            {
                "base": dict(zip("abcd", accuracy)),
                "query_correct": {name: [32, 0] if i + 1 in all_right else [20, 12] for name in "abcd"},
            },
        )
        for i, accuracy in enumerate(accuracies)
    ]


def test_the_attributed_checkpoint_is_the_one_with_most_benchmarks_still_learning():
    from provenance_lib.worlds.testbed.pretrain import attributed

    history = _checkpoints((0.3, 0.25, 0.3, 0.25), (0.6, 0.3, 0.55, 0.7), (0.95, 0.6, 0.8, 1.0), (1, 1, 1, 0.9))
    assert attributed(history, (0.5, 0.9)).label == "step-00200"  # three benchmarks in the band
    assert attributed(history, (0.9, 1.0)).label == "step-00400"
    assert attributed(history, 3).label == "step-00300" and attributed(history, "final").label == "step-00400"
    assert attributed(history, "step-00100").label == "step-00100"
    ties = [(0.6, 0.6, 0.6, 0.6), (0.8, 0.6, 0.7, 0.9), (0.8, 0.6, 0.7, 0.9)]
    assert attributed(_checkpoints(*ties), (0.5, 0.9)).label == "step-00200"  # all in the band: mean nearest 0.7
    # a checkpoint whose query model gets every item of a benchmark right has no correctness differential
    assert attributed(_checkpoints(*ties, all_right={2, 3}), (0.5, 0.9)).label == "step-00100"
    for wrong in ("step-00500", 5):
        with pytest.raises(ProvenanceError, match="attribute_at"):
            attributed(history, wrong)


# ----------------------------------------------------------------------------------------------- lm-eval
def test_lm_eval_loads_the_local_tasks_also_after_the_world_moved(generated, tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager

    world_dir, gen = generated
    moved = shutil.copytree(world_dir / testbed.TASK_DIR, tmp_path / "moved" / "tasks")
    monkeypatch.chdir(tmp_path)
    configs = task_configs(moved, list(gen.tasks.values()))
    loaded = TaskManager(include_defaults=False).load(configs)["tasks"]
    for name, task_name in gen.tasks.items():
        task = loaded[task_name]
        docs = list(task.validation_docs())
        assert len(docs) == _params().world.items.eval_items
        doc = docs[0]
        assert task.doc_to_text(doc) == doc["question"] and task.doc_to_choice(doc) == doc["choices"]
        assert len(doc["choices"]) == BY_NAME[name].n_choices


# ----------------------------------------------------------------------------------------------- params
def test_packed_batches_refuse_a_corpus_shorter_than_one_batch():
    import signal

    import torch

    from provenance_lib.worlds.testbed import training

    def too_long(signum, frame):
        raise TimeoutError("packed_batches looped without yielding a batch")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(20)
    try:
        with pytest.raises(ProvenanceError, match="fewer tokens than one batch of 6 rows"):
            next(
                training.packed_batches(
                    [[5, 6, 7]] * 4, eos_id=0, context=8, batch_size=6, generator=torch.Generator().manual_seed(0)
                )
            )
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    "override, message",
    [
        (f"world.planted={ {**NAMED, 'SocialIQA': ['Literature x Nowhere']} }", "unknown WebOrganizer format label"),
        (f"world.planted={ {**NAMED, 'SocialIQA': ['Politics x Documentation']} }", "planted for both"),
        (f"world.planted={ {**NAMED, 'SocialIQA': []} }", "at least one bin"),
        ("world.planted=somewhere", "auto"),
        ("world.planted_ranks=[20,11]", "first <= last"),
        ("world.attribute_at=middle", "checkpoint label"),
        ("world.attribute_at=[0.9,0.5]", "low <= high"),
        ("world.model.heads=3", "multiple of heads"),
        ("world.corpus.words_min=500", "words_min <= words_median"),
    ],
)
def test_bad_world_params_are_refused_with_the_key(override, message):
    with pytest.raises(ProvenanceError, match="world") as info:
        _params(override)
    assert message in str(info.value)


# ----------------------------------------------------------------------------------------------- built worlds
def _build(tmp_path_factory, name, *overrides):
    from provenance_lib.worlds import build_world

    out = tmp_path_factory.mktemp(name)
    return out, build_world(_params(*overrides), out)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    return _build(tmp_path_factory, "testbed-built")


@pytest.mark.slow
def test_build_saves_checkpoints_with_optimizer_state_and_attributes_one_still_learning(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import torch

    world_dir, info = built
    saved = info.extra["checkpoint_models"]
    assert len(saved) == _params().world.checkpoints and info.corpus == ["corpus"]
    steps = [entry["step"] for entry in saved.values()]
    assert steps == sorted(steps) and steps[-1] == info.extra["pretrain_steps"]
    # WorldInfo.checkpoints: the training history up to the attributed base model, which is its last entry
    assert list(info.checkpoints) == list(saved)[: len(info.checkpoints)]
    assert list(info.checkpoints.values())[-1] == info.base_model == saved[info.extra["attributed"]]["base"]
    for entry in saved.values():
        model = AutoModelForCausalLM.from_pretrained(world_dir / entry["base"])
        query = AutoModelForCausalLM.from_pretrained(world_dir / entry["query"])
        assert model.config.model_type == "olmo3"
        names = dict(model.named_parameters())
        # stage 02 needs the query model's parameters shaped like the base model's
        assert {n: p.shape for n, p in query.named_parameters()} == {n: p.shape for n, p in names.items()}
        state = torch.load(world_dir / entry["base"] / "optimizer.pt", weights_only=False)
        assert {e["param_name"] for e in state["state"].values()} == set(names)
        assert all(names[e["param_name"]].shape == e["exp_avg_sq"].shape for e in state["state"].values())
        assert set(entry["accuracy"]["base"]) == set(entry["accuracy"]["query"]) == set(BY_NAME)
    assert AutoTokenizer.from_pretrained(world_dir / info.query_model).unk_token == "[UNK]"
    low, high = _params().world.attribute_at  # attributed where it is still learning
    assert sum(low <= a <= high for a in info.extra["accuracy"]["base"].values()) >= 2


@pytest.mark.slow
def test_the_query_model_answers_some_items_of_every_benchmark_right_and_some_wrong(built):
    _, info = built
    for name, (correct, wrong) in info.extra["accuracy"]["query_correct"].items():
        assert correct > 0 and wrong > 0, name


@pytest.mark.slow
def test_planted_content_lifts_accuracy_and_its_absence_leaves_chance(built, tmp_path_factory):
    _, info = built
    _, control = _build(tmp_path_factory, "testbed-control", "world.planted_token_share=0")
    final = list(info.extra["checkpoint_models"].values())[-1]["accuracy"]
    control_final = list(control.extra["checkpoint_models"].values())[-1]["accuracy"]
    chance = final["chance"]
    n = _params().world.items.eval_items
    for name in BY_NAME:
        assert final["base"][name] >= chance[name] + 0.25, (name, final)
        for side in ("base", "query"):  # near chance: within three binomial standard deviations of guessing
            assert control_final[side][name] <= chance[name] + 3 * math.sqrt(chance[name] * (1 - chance[name]) / n), (
                name,
                side,
                control_final,
            )

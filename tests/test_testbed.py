"""The testbed world: deterministic generation, the Dolma3 shard schema, planted content confined to planted bins,
lm-eval reading the local tasks, and (slow) the accuracy gap between the world and its control without planting."""

import math
import re
import shutil
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
        words |= {word.casefold() for node in ast.walk(tree) if isinstance(node, ast.Constant)
                  and isinstance(node.value, str) and id(node) not in docstrings for word in node.value.split()
                  if word.isalpha()}
    assert words - language.RESERVED_WORDS == set()


def test_another_seed_gives_another_corpus(generated, tmp_path):
    first, _ = generated
    testbed.generate(_params("seed=1"), tmp_path)
    assert hash_tree(first / "corpus") != hash_tree(tmp_path / "corpus")


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
        for probs, label in ((meta[corpus.TOPIC_PROBS], corpus.topic_label(doc)),
                             (meta[corpus.FORMAT_PROBS], corpus.format_label(doc))):
            assert max(probs, key=probs.get) == label and abs(sum(probs.values()) - 1) < 1e-3
        taxonomy.bin_id(corpus.topic_label(doc), corpus.format_label(doc))  # both labels are taxonomy labels


def test_corpus_is_skewed_covers_the_taxonomy_and_has_duplicates(generated):
    world_dir, _ = generated
    docs = _documents(world_dir)
    sizes = Counter((corpus.topic_label(d), corpus.format_label(d)) for d in docs)
    assert len({t for t, _ in sizes}) == 24 and len({f for _, f in sizes}) == 24
    assert 100 < len(sizes) < 576                           # many bins, some empty
    ordered = sorted(sizes.values(), reverse=True)
    assert ordered[0] >= 20 * ordered[len(ordered) // 2]    # a few huge bins, many small
    lengths = [len(d["text"].split()) for d in docs]
    assert min(lengths) < 40 and max(lengths) > 200
    texts = Counter(d["text"] for d in docs)
    truth = read_json(world_dir / testbed.GROUND_TRUTH)
    kinds = Counter(row["kind"] for row in truth["duplicates"])
    assert sum(n - 1 for n in texts.values()) >= kinds["exact"] > 0 and kinds["near"] > 0


# ----------------------------------------------------------------------------------------------- planted content
def test_planted_statements_occur_only_in_the_planted_documents_of_planted_bins(generated):
    world_dir, _ = generated
    truth = read_json(world_dir / testbed.GROUND_TRUTH)
    taxonomy = load_taxonomy()
    docs = {d["id"]: d for d in _documents(world_dir)}
    for name, planted in truth["benchmarks"].items():
        assert planted["bins"] == [taxonomy.parse_bin(b) for b in _params().world.planted[name]]
        pairs = {(s["entity"] or s["key"], s["value"]) for s in planted["statements"]}
        carriers = {doc_id for doc_id, doc in docs.items()
                    if any(k in s.split() and v in s.split() for s in _sentences(doc["text"]) for k, v in pairs)}
        assert carriers == set(planted["documents"]) and carriers, name
        for doc_id in carriers:
            doc = docs[doc_id]
            assert taxonomy.bin_id(corpus.topic_label(doc), corpus.format_label(doc)) in planted["bins"]


def test_planted_share_sets_how_much_of_a_planted_bin_carries_content(tmp_path):
    gen = testbed.generate(_params("world.planted_share=0.2", "world.corpus.near_duplicate_share=0",
                                   "world.corpus.exact_duplicate_share=0"), tmp_path)
    planted = Counter(d.planted for d in gen.documents if d.planted)
    assert set(planted.values()) == {round(0.2 * _params().world.planted_bin_documents)}
    control = testbed.generate(_params("world.planted_share=0"), tmp_path / "control")
    assert not any(d.planted for d in control.documents)


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
        assert len({r["answer"] for r in rows}) == b.n_choices    # the answer is not always in one place


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
            next(training.packed_batches([[5, 6, 7]] * 4, eos_id=0, context=8, batch_size=6,
                                         generator=torch.Generator().manual_seed(0)))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("override, message", [
    ("world.planted.SocialIQA=['Literature x Nowhere']", "unknown WebOrganizer format label"),
    ("world.planted.SocialIQA=['Politics x Documentation']", "planted for both"),
    ("world.planted.SocialIQA=[]", "at least one bin"),
    ("world.model.heads=3", "multiple of heads"),
    ("world.corpus.words_min=500", "words_min <= words_median"),
])
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
def test_build_writes_models_with_optimizer_state_and_reports_accuracy(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import torch

    world_dir, info = built
    assert (info.base_model, info.query_model, info.corpus) == ("models/base", "models/query", ["corpus"])
    model = AutoModelForCausalLM.from_pretrained(world_dir / info.base_model)
    assert model.config.model_type == "olmo3"
    assert AutoTokenizer.from_pretrained(world_dir / info.query_model).unk_token == "[UNK]"
    state = torch.load(world_dir / info.base_model / "optimizer.pt", weights_only=False)
    names = dict(model.named_parameters())
    assert all(names[entry["param_name"]].shape == entry["exp_avg_sq"].shape for entry in state["state"].values())
    assert set(info.extra["accuracy"]["base"]) == set(BY_NAME)


@pytest.mark.slow
def test_planted_content_lifts_accuracy_and_its_absence_leaves_chance(built, tmp_path_factory):
    _, info = built
    _, control = _build(tmp_path_factory, "testbed-control", "world.planted_share=0")
    accuracy, chance = info.extra["accuracy"]["base"], info.extra["accuracy"]["chance"]
    control_accuracy = control.extra["accuracy"]["base"]
    n = _params().world.items.eval_items
    for name in BY_NAME:
        assert accuracy[name] >= chance[name] + 0.25, (name, accuracy)
        # near chance: within three binomial standard deviations of guessing
        assert control_accuracy[name] <= chance[name] + 3 * math.sqrt(chance[name] * (1 - chance[name]) / n), (
            name, control_accuracy)

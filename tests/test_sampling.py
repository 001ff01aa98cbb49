"""Stage 01 sampling on small corpora written here: de-duplication, labels, the bottom-k draw against a plain
reference implementation (the manifest byte for byte, on adversarial duplicates and on the testbed, where it is also
today's), determinism across seeds / shard orders / task counts / buckets, and bad input."""

import random
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from provenance_lib import corpus, params, stats, taxonomy
from provenance_lib.stages import sampling
from provenance_lib.stages.sampling import select as sampling_select
from provenance_lib.artifacts import sha256_file, write_parquet
from provenance_lib.errors import ProvenanceError
from provenance_lib.params import LocalExecutor

TAX = taxonomy.load()
BIG = TAX.parse_bin("Literature x Customer Support")  # 30 documents: more than the target
MEDIUM = TAX.parse_bin("Politics x Documentation")  # 6: underfilled
SMALL = TAX.parse_bin("Social Life x Q&A Forum")  # 2: the smallest non-empty bin
KEPT = TAX.parse_bin("Literature x FAQ")  # adversarial corpora: one document
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
    b += [
        doc("a-3", "a different text under a repeated id", MEDIUM),
        doc("b-dup7", "  " + a[7]["text"].upper().replace(" ", " \n\t "), BIG),
        doc("b-dup8", a[8]["text"].replace("é", "e\u0301"), BIG),
    ]
    c = [doc(f"s-{i}", words(300 + i), SMALL) for i in range(2)]
    c += [
        dict(a[5]),
        doc("u-0", "no format here", topic="literature"),
        doc("u-1", "nor here", topic="politics"),
        doc("u-2", "no topic here", fmt="faq"),
    ]
    corpus.write_shard(root / "a.jsonl.zst", a)
    corpus.write_shard(root / "b.jsonl.zst", b)
    corpus.write_shard(root / "sub" / "c.jsonl.zst", c)
    return root


def job_for(corpus_dir: Path, out_dir: Path, tasks: int = 1, workers: int = 1, **overrides) -> sampling.SamplingJob:
    settings = dict(
        shards=tuple(sampling.corpus_shards([corpus_dir])),
        seed=0,
        target_per_bin=TARGET,
        executor=LocalExecutor(kind="local", tasks=tasks, workers=workers),
    )
    settings.update(overrides)
    return sampling.SamplingJob(out_dir=out_dir, **settings)


def reference_draw(corpus_dir: Path, seed: int, target: int) -> dict[int, list[tuple]]:
    """The draw done the plain way: every document in memory, sequential de-duplication (ids, then texts among the
    id survivors), sort by key per bin. Per bin: (bin, source shard, row, id, words, text hash) of the sampled."""
    seen_ids, seen_texts, by_bin = set(), set(), {}
    for path in sorted(corpus_dir.rglob("*.jsonl.zst"), key=lambda p: p.relative_to(corpus_dir.parent).as_posix()):
        name = path.relative_to(corpus_dir.parent).as_posix()
        survivors = []
        for row, d in enumerate(corpus.iter_shard(path)):
            if d["id"] not in seen_ids:
                seen_ids.add(d["id"])
                survivors.append((row, d))
        for row, d in survivors:
            normalized = sampling.normalize_text(d["text"])
            if normalized in seen_texts:
                continue
            seen_texts.add(normalized)
            topic, fmt = corpus.topic_label(d), corpus.format_label(d)
            if topic and fmt:
                h = sampling.text_hash(d["text"])
                key = int(sampling.sampling_key(np.array([h], np.uint64), seed)[0])
                b = TAX.bin_id(topic, fmt)
                by_bin.setdefault(b, []).append((key, (b, name, row, d["id"], len(d["text"].split()), h)))
    return {b: [r for _, r in sorted(entries)[:target]] for b, entries in by_bin.items()}


def reference_sample(corpus_dir: Path, seed: int, target: int) -> dict[int, set[str]]:
    return {b: {r[3] for r in rows} for b, rows in reference_draw(corpus_dir, seed, target).items()}


def reference_manifest(corpus_dir: Path, seed: int, target: int, path: Path) -> str:
    """The manifest of the plain draw, written as the stage writes it; its sha256."""
    rows = sorted(r for entries in reference_draw(corpus_dir, seed, target).values() for r in entries)
    labels = [TAX.bin_labels(r[0]) for r in rows]
    write_parquet(
        path,
        pa.table(
            {
                "id": [r[3] for r in rows],
                "source_shard": [r[1] for r in rows],
                "row": [r[2] for r in rows],
                "bin": pa.array([r[0] for r in rows], pa.int16()),
                "topic": [t.short for t, _ in labels],
                "format": [f.short for _, f in labels],
                "tokens": [r[4] for r in rows],
                "text_hash": [f"{r[5]:016x}" for r in rows],
            },
            schema=sampling.job.MANIFEST_SCHEMA,
        ),
    )
    return sha256_file(path)


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


def test_same_seed_is_byte_identical_across_shard_orders_and_workers(corpus_dir, tmp_path):
    first = sampling.sample(job_for(corpus_dir, tmp_path / "one"))
    shuffled = sampling.corpus_shards([corpus_dir])
    random.Random(0).shuffle(shuffled)
    runs = {"two": dict(tasks=2, buckets=2, shards=tuple(shuffled)), "four": dict(tasks=4, buckets=3)}
    for name, settings in runs.items():
        second = sampling.sample(job_for(corpus_dir, tmp_path / name, **settings))
        for artifact in (sampling.MANIFEST, sampling.SUMMARY, sampling.SKEW):
            assert sha256_file(tmp_path / "one" / artifact) == sha256_file(tmp_path / name / artifact), (name, artifact)
        for path in (tmp_path / "one" / sampling.WORKING_SET).rglob("*.jsonl.zst"):
            twin = tmp_path / name / path.relative_to(tmp_path / "one")
            assert sha256_file(path) == sha256_file(twin)
        assert first.summary == second.summary
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == sorted(
            p.name for p in (tmp_path / "one").iterdir()
        )


def adversarial_corpus(root: Path, seed: int) -> Path:
    """Shards full of collisions: ids repeated across shards with other texts, texts repeated (re-cased, re-spaced)
    under other ids, documents without labels; and the case a partitioned de-duplication gets wrong most easily: a
    text whose first copy is an id duplicate (dropped) must still be kept from its next copy."""
    rng = random.Random(seed)
    texts = [words(i, rng.randint(1, 6)) for i in range(30)]
    bins = [BIG, MEDIUM, SMALL, TAX.parse_bin("Health x FAQ")]
    shards = []
    for s in range(5):
        docs = []
        for r in range(rng.randint(0, 25)):
            text = rng.choice(texts)
            if rng.random() < 0.2:
                text = text.upper()
            elif rng.random() < 0.2:
                text = "  " + text.replace(" ", "\n ")
            labelled = rng.random() > 0.1
            docs.append(
                doc(f"id-{rng.randrange(60)}", text, rng.choice(bins))
                if labelled
                else doc(f"u-{s}-{r}", text, topic="health")
            )
        shards.append(docs)
    shards[0].append(doc("blocker", "the first text of this id", BIG))
    shards[2].append(doc("blocker", "a new text under an id seen before", BIG))
    shards[2].append(doc("kept", "a new text under an id seen before", KEPT))
    for s, docs in enumerate(shards):
        corpus.write_shard(root / "corpus" / f"part-{s % 2}" / f"shard_{s:03d}.jsonl.zst", docs)
    return root / "corpus"


@pytest.mark.parametrize("seed, tasks, buckets", [(0, 1, 1), (1, 3, 4), (2, 2, 2)])
def test_partitioned_draw_writes_the_reference_manifest(tmp_path, seed, tasks, buckets):
    corpus_dir = adversarial_corpus(tmp_path / "world", seed)
    expected = reference_manifest(corpus_dir, seed, 3, tmp_path / "reference.parquet")
    out = tmp_path / "out"
    sampling.sample(job_for(corpus_dir, out, tasks=tasks, buckets=buckets, seed=seed, target_per_bin=3))
    assert sha256_file(out / sampling.MANIFEST) == expected
    kept = pq.read_table(out / sampling.MANIFEST).to_pylist()
    assert [r["bin"] for r in kept if r["id"] == "kept"] == [KEPT]  # alone in its bin: sampled iff not dropped


def test_fast_normalization_equals_normalize_text_and_keeps_the_words():
    every_whitespace = "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    assert sampling.index._NON_ASCII_WHITESPACE.findall(every_whitespace) == [
        c for c in every_whitespace if not c.isascii()
    ]
    rng = random.Random(0)
    letters = "aZ.\x00\u00e9E\u0301\u00df\u0130\u03c2\ufb01\u1e9e\u212b"  # composed, combining, folding
    for alphabet in (letters[:4] + " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f", letters + " \n", letters + every_whitespace):
        for _ in range(2000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
            for repeat in (1, sampling.index.SCAN_WITH_NUMPY):  # short texts: bytes scans; long ones: numpy's
                fast, words = sampling.index.normalized_bytes(text * repeat)
                assert fast == sampling.normalize_text(text * repeat).encode(), repr(text)
                assert words == len((text * repeat).split()), repr(text)


def test_bucket_reductions_equal_the_whole_ones():
    """First occurrences and bottom-k computed per bucket, then joined, equal the same over all rows at once."""
    rng = np.random.default_rng(0)
    rows = np.zeros(2000, sampling.ROW)
    rows["position"] = rng.permutation(2000).astype(np.uint64) + (np.uint64(7) << np.uint64(32))
    rows["id_hash"] = rng.integers(0, 300, 2000).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    rows["text_hash"] = rng.integers(0, 500, 2000).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
    rows["topic"], rows["format"] = rng.integers(0, 3, 2000), rng.integers(0, 2, 2000)
    whole = sampling_select.first_occurrences(rows, "id_hash")
    parts = sampling_select.split_by(rows, sampling_select.bucket_of(rows["id_hash"], 7), 7)
    joined = np.concatenate([sampling_select.first_occurrences(p, "id_hash") for p in parts])
    assert np.array_equal(np.sort(joined, order="position"), whole)
    bins = sampling.index.bins_of(whole, 24)
    chosen, offsets = sampling_select.bottom_k(whole, bins, 5, 10)
    merged = []
    for part in sampling_select.split_by(whole, sampling_select.bucket_of(whole["text_hash"], 3), 3):
        merged.append(sampling_select.bottom_k(part, sampling.index.bins_of(part, 24), 5, 10)[0])
    merged = np.concatenate(merged)
    rechosen, _ = sampling_select.bottom_k(merged, sampling.index.bins_of(merged, 24), 5, 10)
    assert np.array_equal(np.sort(rechosen, order="position"), np.sort(chosen, order="position"))
    assert offsets[-1] == len(chosen) and np.all(np.diff(offsets) <= 10)


class KeywordFormatClassifier:
    """A stand-in for the WebOrganizer FormatClassifier: FAQ if the text says 'question', else Documentation.
    Records its batch sizes on the class: the stage's tasks work on copies of it."""

    batches: list[int] = []

    def predict_proba(self, texts, urls):
        KeywordFormatClassifier.batches.append(len(texts))
        probs = np.full((len(texts), len(TAX.formats)), 0.01)
        for i, text in enumerate(texts):
            probs[i, TAX.formats.get("faq" if "question" in text else "documentation").id] = 0.9
        return probs


def test_classifier_labels_what_metadata_lacks(tmp_path):
    docs = [doc(f"d-{i}", f"{'question' if i % 2 else 'manual'} {words(i)}", topic="health") for i in range(7)]
    docs.append(doc("labelled", "already labelled", topic="health", fmt="news_article"))
    docs.append(doc("d-copy", docs[2]["text"], topic="health"))  # a duplicate is never classified
    corpus.write_shard(tmp_path / "c" / "x.jsonl.zst", docs)
    KeywordFormatClassifier.batches = []
    result = sampling.sample(
        job_for(tmp_path / "c", tmp_path / "out", batch_size=3, format_classifier=KeywordFormatClassifier())
    )
    assert KeywordFormatClassifier.batches == [3, 3, 1]
    labels = result.summary["documents"]["labels"]
    assert (labels["format_from_classifier"], labels["format_from_metadata"], labels["format_missing"]) == (7, 1, 1)
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
        sampling.sample(job_for(corpus_dir, tmp_path / "out", tasks=2))


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
    table = sampling.skew_table(
        {"population": stats.skew_statistics(uniform, uniform), "working_set": stats.skew_statistics(uniform, uniform)}
    )
    assert table.loc["gini_documents", "paper_population"] == pytest.approx(0.6837)


def test_sampling_params_are_validated():
    testbed = Path(__file__).parents[1] / "params" / "testbed.yaml"
    with pytest.raises(ProvenanceError, match=r"sampling\.executor\.workers: Input should be greater than 0"):
        params.load(testbed, ["sampling.executor.workers=0"])
    with pytest.raises(ProvenanceError, match=r"sampling\.executor\.partition: Field required"):
        params.load(testbed, ["sampling.executor={kind: slurm, tasks: 4}"])
    study = params.load(testbed, ["sampling.executor={kind: slurm, tasks: 4, partition: cpu}", "sampling.buckets=8"])
    executor = study.sampling.executor
    assert (executor.kind, executor.time, study.sampling.buckets) == ("slurm", "12:00:00", 8)
    with pytest.raises(ProvenanceError, match="sampling.tokens"):
        params.load(Path(__file__).parents[1] / "params" / "testbed.yaml", ["sampling.tokens=bpe"])


def test_stage_run_reads_the_world_corpus_and_writes_every_artifact(corpus_dir, tmp_path):
    from provenance_lib.context import RESUMABLE, Stage
    from provenance_lib.worlds import WorldInfo

    study = params.load(Path(__file__).parents[1] / "params" / "testbed.yaml", [f"sampling.target_per_bin={TARGET}"])
    world = WorldInfo(
        kind="testbed",
        fingerprint="",
        corpus=["corpus"],
        queries="",
        tasks={},
        task_dir="",
        base_model="models/base",
        query_model="models/query",
    )
    stage = Stage("01_sampling", tmp_path, tmp_path / "01_sampling", study, world)
    result = sampling.run(stage)
    written = {p.name for p in result.out_dir.iterdir()}
    assert written == {
        sampling.MANIFEST,
        sampling.SUMMARY,
        sampling.SKEW,
        sampling.HEATMAP,
        sampling.WORKING_SET,
        RESUMABLE,
    }  # the work it resumes: the runner removes it once the notebook completed
    assert sampling.load_result(result.out_dir).summary == result.summary
    assert result.totals_table().loc["documents: read", "value"] == 45


def test_documents_left_out_are_counted_and_named_in_the_summary_and_on_the_console(corpus_dir, tmp_path, capsys):
    corpus.write_shard(corpus_dir / "d.jsonl.zst", [doc("e-0", " \n ", BIG), doc("e-1", words(400), BIG)])
    result = sampling.sample(job_for(corpus_dir, tmp_path / "out"))
    docs = result.summary["documents"]
    assert (docs["read"], docs["removed_empty_text"], docs["conflicting_duplicate_id"]) == (47, 1, 1)
    left = result.summary["left_out"]
    assert left["empty_text"] == {"documents": 1, "first": [{"shard": "corpus/d.jsonl.zst", "row": 0, "id": "e-0"}]}
    assert left["conflicting_duplicate_id"] == {
        "documents": 1,
        "first": [
            {
                "id": "a-3",
                "kept": {"shard": "corpus/a.jsonl.zst", "row": 3, "id": "a-3"},
                "dropped": {"shard": "corpus/b.jsonl.zst", "row": 16, "id": "a-3"},
            }
        ],
    }
    said = capsys.readouterr().out
    assert "stage 01: 1 documents have no text: left out (first: 'e-0'" in said
    assert (
        "stage 01: 1 documents reuse the id of an earlier document with another text: the first kept (first: "
        "'a-3'" in said
    )
    assert "e-0" not in set(pq.read_table(tmp_path / "out" / sampling.MANIFEST)["id"].to_pylist())


def test_a_shard_missing_added_or_rewritten_since_the_world_was_built_stops_stage_01(corpus_dir, tmp_path):
    from provenance_lib.context import Stage
    from provenance_lib.worlds import WorldInfo

    study = params.load(Path(__file__).parents[1] / "params" / "testbed.yaml", [f"sampling.target_per_bin={TARGET}"])
    world = WorldInfo(
        kind="testbed",
        fingerprint="",
        corpus=["corpus"],
        queries="",
        tasks={},
        task_dir="",
        base_model="models/base",
        query_model="models/query",
        shards=corpus.shard_listing([corpus_dir]),
    )
    stage = Stage("01_sampling", tmp_path, tmp_path / "01_sampling", study, world)
    (corpus_dir / "sub" / "c.jsonl.zst").rename(tmp_path / "c.jsonl.zst")
    with pytest.raises(
        ProvenanceError,
        match=r"stage 01: the corpus is not the one the world recorded \(3 shards\): "
        r"corpus/sub/c.jsonl.zst is missing.*rebuild the world",
    ):
        sampling.run(stage)
    (tmp_path / "c.jsonl.zst").rename(corpus_dir / "extra.jsonl.zst")
    with pytest.raises(ProvenanceError, match="corpus/extra.jsonl.zst is not one the world recorded"):
        sampling.run(stage)
    assert not (tmp_path / "01_sampling" / sampling.MANIFEST).exists()


def test_metadata_that_is_not_a_mapping_names_the_shard_line_and_id(tmp_path):
    path = corpus.write_shard(tmp_path / "a.jsonl.zst", [doc("x", "t", BIG), {"id": "y", "text": "u", "metadata": "z"}])
    with pytest.raises(ProvenanceError, match=r"a.jsonl.zst: line 2 \(id 'y'\): 'metadata' is a str, not a mapping"):
        list(corpus.iter_shard(path))

"""Stage 01's engine on datatrove: the testbed's manifest as today's engine wrote it, resuming a run killed mid-map,
a failed task reported with its log, the annotate step's device and per-shard cache, and the Slurm submission a
paper-scale run would make (generated, not submitted)."""

import json
from pathlib import Path

import dill
import numpy as np
import pytest
from datatrove.executor import SlurmPipelineExecutor

from provenance_lib import corpus, params
from provenance_lib.artifacts import sha256_file, sha256_json
from provenance_lib.errors import ProvenanceError
from provenance_lib.params import LocalExecutor, SequenceClassifierSpec, SlurmExecutor
from provenance_lib.stages import sampling
from provenance_lib.stages.sampling import annotate, engine, steps
from test_sampling import BIG, MEDIUM, TAX, doc, job_for, reference_manifest, words

TESTBED = Path(__file__).resolve().parents[1] / "params" / "testbed.yaml"
REAL_MINI = TESTBED.with_name("real-mini.yaml")
TODAYS_TESTBED_MANIFEST = "3e1eddbabcfa05ea718058f7e0743a2e34d81986bc8142d1281120bdd007f47d"
"""sha256 of the manifest for params/testbed.yaml's corpus (the fair testbed), recorded when the datatrove engine and
the in-memory reference agreed on it with xxh3-64 content hashes (the manifest keeps each text's hash, and the draw
ranks by it, so a new hash function is a new manifest); the torch.distributed engine stage 01 used before wrote the
same bytes as both on the previous testbed."""
TESTBED_SECTIONS_THEN = "3d74b44c0253f75ad7e1dd5573d34019ab1e5ad013a5459d4b93ebed147d6831"


def corpus_and_draw(study) -> str:
    """What that manifest depends on: the world section (less train_threads: it changes the weights, not the
    corpus), the seed and the sampling section's draw."""
    world = {k: v for k, v in study.section("world").items() if k != "train_threads"}
    return sha256_json(
        {
            "world": world,
            "seed": study.seed,
            "draw": {k: study.sampling.model_dump(mode="json")[k] for k in ("target_per_bin", "tokens")},
        }
    )


@pytest.fixture(scope="module")
def testbed_corpus(tmp_path_factory):
    from provenance_lib.worlds import testbed

    study = params.load(TESTBED)
    out = tmp_path_factory.mktemp("testbed")
    testbed.generate(study, out)
    return study, out / testbed.CORPUS_DIR


def job_for_testbed(study, corpus_dir: Path, out_dir: Path, tasks: int = 1, buckets: int | None = None):
    return sampling.SamplingJob(
        shards=tuple(sampling.corpus_shards([corpus_dir])),
        out_dir=out_dir,
        seed=study.seed,
        target_per_bin=study.sampling.target_per_bin,
        tokens=study.sampling.tokens,
        executor=LocalExecutor(kind="local", tasks=tasks),
        buckets=buckets,
    )


# ----------------------------------------------------------------------------------------------- today's manifest
def test_testbed_manifest_is_the_reference_for_any_split(testbed_corpus, tmp_path):
    study, corpus_dir = testbed_corpus
    expected = reference_manifest(corpus_dir, study.seed, study.sampling.target_per_bin, tmp_path / "reference.parquet")
    for tasks, buckets in ((1, None), (2, 2), (4, 3)):
        out = tmp_path / f"out-{tasks}"
        sampling.sample(job_for_testbed(study, corpus_dir, out, tasks=tasks, buckets=buckets))
        assert sha256_file(out / sampling.MANIFEST) == expected, tasks
        assert not (out / engine.WORK).exists()  # intermediates cleaned: the folder holds what it held before


def test_testbed_manifest_is_todays(testbed_corpus, tmp_path):
    study, corpus_dir = testbed_corpus
    if corpus_and_draw(study) != TESTBED_SECTIONS_THEN:
        pytest.skip("params/testbed.yaml's corpus or draw changed since today's manifest was recorded")
    sampling.sample(job_for_testbed(study, corpus_dir, tmp_path))
    assert sha256_file(tmp_path / sampling.MANIFEST) == TODAYS_TESTBED_MANIFEST


# ----------------------------------------------------------------------------------------------- crash, resume
def four_shards(root: Path) -> Path:
    for s in range(4):
        docs = [doc(f"s{s}-{i}", words(10 * s + i), BIG if i % 3 else MEDIUM) for i in range(8)]
        docs.append(doc(f"s{(s + 1) % 4}-0", words(99), BIG))  # an id repeated in the next shard
        corpus.write_shard(root / "corpus" / f"shard-{s}.jsonl.zst", docs)
    return root / "corpus"


def test_a_run_killed_mid_map_resumes_without_redoing_completed_tasks(tmp_path, monkeypatch):
    corpus_dir = four_shards(tmp_path / "world")
    sampling.sample(job_for(corpus_dir, tmp_path / "clean", tasks=4, buckets=3))
    monkeypatch.setattr(steps, "FLUSH_ROWS", 1)  # map tasks append to their bucket files shard by shard
    shard = corpus_dir / "shard-2.jsonl.zst"
    good = shard.read_bytes()
    shard.write_bytes(good[: len(good) // 2])  # task 2 dies mid-shard; tasks 0 and 1 completed before it
    out = tmp_path / "out"
    with pytest.raises(ProvenanceError) as failure:
        sampling.sample(job_for(corpus_dir, out, tasks=4, buckets=3))
    message = str(failure.value)
    assert "step 'map' failed in task 2 of 4" in message and f"corrupt shard {shard}" in message
    log = Path(message.split("(log: ")[1].split(")")[0])
    assert log.is_file() and "corrupt shard" in log.read_text()
    assert not (out / sampling.MANIFEST).exists()
    completions = out / engine.WORK / "map" / "completions"
    assert sorted(p.name for p in completions.iterdir()) == ["00000", "00001"]

    shard.write_bytes(good)
    mapped = []
    process = steps.MapStep.process
    monkeypatch.setattr(
        steps.MapStep, "process", lambda self, rank, size: mapped.append(rank) or process(self, rank, size)
    )
    sampling.sample(job_for(corpus_dir, out, tasks=4, buckets=3))
    assert mapped == [2, 3]  # tasks 0 and 1 completed before the crash: not run again
    for name in (sampling.MANIFEST, sampling.SUMMARY, sampling.SKEW):
        assert sha256_file(out / name) == sha256_file(tmp_path / "clean" / name), name
    assert not (out / engine.WORK).exists()


def test_every_bucket_task_gets_its_own_share_of_the_rows(tmp_path):
    corpus_dir = four_shards(tmp_path / "world")
    out = tmp_path / "out"
    sampling.sample(job_for(corpus_dir, out, tasks=2, buckets=3), keep_work=True)
    work = steps.Work(out / engine.WORK)
    for step in ("ids", "texts", "bins"):
        rows = [counts["rows"] for counts in work.read_counts(step)]
        assert len(rows) == 3 and all(rows) and max(rows) < sum(rows) / 1.5, (step, rows)


def test_a_failing_task_is_reported_with_its_log_and_writes_no_manifest(tmp_path):
    corpus_dir = four_shards(tmp_path / "world")
    bad = doc("odd", "text", BIG)
    bad["metadata"]["weborganizer_max"] = "__label__astrology"
    corpus.write_shard(corpus_dir / "shard-3.jsonl.zst", [doc("fine", "fine text", BIG), bad])
    with pytest.raises(
        ProvenanceError,
        match=r"step 'map' failed in task 1 of 2 \(log: .*task_00001\.log\): "
        r"corpus/shard-3\.jsonl\.zst, document 1 \(id 'odd'\)",
    ):
        sampling.sample(job_for(corpus_dir, tmp_path / "out", tasks=2))
    assert not (tmp_path / "out" / sampling.MANIFEST).exists()


# ----------------------------------------------------------------------------------------------- annotate
class FlakyFormatClassifier:
    """A stand-in classifier that counts the documents it labels and fails on a planted text (class-level state:
    the stage's tasks work on copies)."""

    labelled: list[str] = []
    fail_on: str | None = None

    def predict_proba(self, texts, urls):
        if any(FlakyFormatClassifier.fail_on and FlakyFormatClassifier.fail_on in t for t in texts):
            raise RuntimeError("planted classifier failure")
        FlakyFormatClassifier.labelled += texts
        probs = np.full((len(texts), len(TAX.formats)), 0.01)
        probs[:, TAX.formats.get("faq").id] = 0.9
        return probs


def test_annotations_are_cached_per_shard_so_a_rerun_does_not_classify_again(tmp_path):
    for s in range(3):
        corpus.write_shard(
            tmp_path / "c" / f"x{s}.jsonl.zst",
            [doc(f"d{s}-{i}", f"shard {s} {words(i)}", topic="health") for i in range(4)],
        )
    FlakyFormatClassifier.labelled, FlakyFormatClassifier.fail_on = [], "shard 2"
    job = job_for(tmp_path / "c", tmp_path / "out", batch_size=2, buckets=3, format_classifier=FlakyFormatClassifier())
    with pytest.raises(ProvenanceError, match=r"step 'annotate' failed in task 0 of 1 .*: planted classifier failure"):
        sampling.sample(job)
    assert len(FlakyFormatClassifier.labelled) == 8  # shards 0 and 1 were labelled (and cached) before the failure
    data = tmp_path / "out" / engine.WORK / "data"
    assert not (data / "ids").exists() and (data / "requests").is_dir()  # rows no later step reads are gone

    FlakyFormatClassifier.labelled, FlakyFormatClassifier.fail_on = [], None
    # a shard changed since: every shard is mapped again (the map's rows are gone), it alone is labelled again
    corpus.write_shard(
        tmp_path / "c" / "x1.jsonl.zst", [doc(f"d1-{i}", f"shard 1 {words(i)}", topic="health") for i in range(5)]
    )
    result = sampling.sample(job)
    assert sorted(t.split(" w")[0] for t in FlakyFormatClassifier.labelled) == ["shard 1"] * 5 + ["shard 2"] * 4
    assert result.summary["documents"]["labels"]["format_from_classifier"] == 13
    assert {r["bin_name"]: r["population_docs"] for r in result.summary["per_bin"] if r["population_docs"]} == {
        "Health x FAQ": 13
    }


@pytest.mark.parametrize(
    "requested, rank, environ, gpus, device",
    [
        ("cpu", 3, {}, 8, "cpu"),
        ("auto", 3, {}, 0, "cpu"),  # no GPU: the classifier runs on the CPU
        ("auto", 5, {}, 4, "cuda:1"),  # local tasks spread over the node's GPUs by task rank
        ("cuda", 5, {"LOCAL_RANK": "2"}, 4, "cuda:2"),  # a launcher's local rank wins
        ("cuda", 17, {}, 1, "cuda:0"),  # a Slurm array task sees only its own GPU
    ],
)
def test_each_task_classifies_on_its_own_device(requested, rank, environ, gpus, device):
    assert annotate.classifier_device(requested, rank, environ, gpus) == device


def test_a_classifier_spec_is_loaded_on_its_task_gpu(monkeypatch):
    import torch

    chosen, loaded = [], []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(annotate, "load_classifier", lambda spec, axis: loaded.append(spec.device))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    spec = SequenceClassifierSpec(
        kind="sequence_classifier", model={"source": "hub", "id": "WebOrganizer/FormatClassifier"}
    )
    annotate.load_on_device(spec, "format", task_rank=3)
    annotate.load_on_device(spec.model_copy(update={"device": "cpu"}), "format", task_rank=3)
    assert chosen == [1] and loaded == ["cuda", "cpu"]  # "cuda" is then the current device, cuda:1


def test_asking_for_a_gpu_where_there_is_none_is_an_error():
    with pytest.raises(ProvenanceError, match="asks for device cuda, but this task sees no GPU"):
        annotate.classifier_device("cuda", 0, {}, 0)


# ----------------------------------------------------------------------------------------------- paper scale
def dolma3_layout(root: Path) -> Path:
    """Shards laid out like Dolma3 (``data/<partition>/shard_*.jsonl.zst``): topics in the metadata, no formats."""
    for partition in ("common_crawl-travel-0019", "olmocr_science_pdfs-math-0003"):
        for s in range(3):
            docs = [doc(f"{partition}/{s}/{i}", words(i), topic="travel_and_tourism") for i in range(5)]
            corpus.write_shard(root / "data" / partition / f"shard_{s:05d}.jsonl.zst", docs)
    return root / "data"


def test_slurm_scripts_for_a_paper_scale_run_are_generated_not_submitted(tmp_path):
    data = dolma3_layout(tmp_path / "dolma3")
    formats = SequenceClassifierSpec(
        kind="sequence_classifier", model={"source": "hub", "id": "WebOrganizer/FormatClassifier"}
    )
    executor = SlurmExecutor(
        kind="slurm",
        tasks=4,
        partition="cpu",
        gpu_partition="h100",
        time="04:00:00",
        workers=64,
        sbatch_args={"account": "dolma"},
        submit=False,
        env_command="source /shared/provenance/.venv/bin/activate",
    )
    job = sampling.SamplingJob(
        shards=tuple(sampling.corpus_shards([data])),
        out_dir=tmp_path / "out",
        seed=0,
        target_per_bin=10_000,
        tokens="whitespace",
        executor=executor,
        buckets=8,
        format_classifier=formats,
    )
    with pytest.raises(ProvenanceError, match="dry run: the Slurm scripts are written .*nothing was submitted"):
        sampling.sample(job)
    work = tmp_path / "out" / engine.WORK
    commands = (work / "slurm_dry_run.sh").read_text().splitlines()[2:]
    arrays = [c for c in commands if "merge_stats" not in Path(c.split("  # -> ")[0].split()[-1]).read_text()]
    assert len(arrays) == 7 and "--dependency" not in arrays[0]
    for before, after in zip(arrays, arrays[1:]):  # each step waits for the one before to succeed
        assert f"--dependency=afterok:{before.split('-> ')[1]}" in after
    for name, tasks in {"map": 4, "ids": 8, "texts": 8, "annotate": 4, "bins": 8, "merge": 8, "fetch": 4}.items():
        script = (work / name / "launch_script.slurm").read_text()
        assert f"#SBATCH --array=0-{tasks - 1}%64" in script and "#SBATCH --time=04:00:00" in script
        assert "#SBATCH --account=dolma" in script and "source /shared/provenance/.venv/bin/activate" in script
        assert f"launch_pickled_pipeline {work / name / 'executor.pik'}" in script
        gpu = name == "annotate"
        assert ("#SBATCH --gpus=1" in script) == gpu and f"#SBATCH --partition={'h100' if gpu else 'cpu'}" in script
    with open(work / "map" / "executor.pik", "rb") as f:
        shipped = dill.load(f)
    step = shipped.pipeline[0]
    assert isinstance(step, steps.MapStep) and shipped.world_size == 4
    assert step.job.shards[0].name == "data/common_crawl-travel-0019/shard_00000.jsonl.zst"
    assert json.loads((work / "map" / "ranks_to_run.json").read_text()) == [0, 1, 2, 3]


def test_waiting_on_slurm_reports_the_failed_task_and_cancels_the_rest(tmp_path, monkeypatch):
    corpus_dir = four_shards(tmp_path / "world")
    executor = SlurmExecutor(kind="slurm", tasks=2, partition="cpu", submit=False)
    job = job_for(corpus_dir, tmp_path / "out", executor=executor, buckets=2)
    plan = engine.make_plan(job)
    work = engine.prepare_work(job, plan)
    executors = engine.make_executors(job, plan, work)
    for i, e in enumerate(executors):
        e.job_id = str(100 + i)
    for rank in (0, 1):
        (work.root / "map" / "completions").mkdir(parents=True, exist_ok=True)
        (work.root / "map" / "completions" / f"{rank:05d}").touch()
    (work.root / "ids" / "completions").mkdir(parents=True)
    (work.root / "ids" / "completions" / "00000").touch()
    log = work.root / "ids" / "logs" / "task_00001.log"
    log.parent.mkdir(parents=True)
    log.write_text("2026-01-01 00:00:00.000 | ERROR    | datatrove.executor.base:_run_for_rank:140 - out of memory\n")
    cancelled = []
    monkeypatch.setattr(engine, "cancel_slurm", cancelled.extend)
    with pytest.raises(ProvenanceError, match=rf"step 'ids' failed in task 1 of 2 \(log: {log}\): out of memory"):
        engine.wait_slurm(executors, work, poll_seconds=0, queued=lambda job_id: False)
    assert cancelled == ["102", "103", "104", "105"]


def test_a_step_refuses_to_start_before_every_task_of_the_one_before_completed(tmp_path):
    job = job_for(four_shards(tmp_path / "world"), tmp_path / "out", tasks=2, buckets=2)
    plan = engine.make_plan(job)
    executors = engine.make_executors(job, plan, engine.prepare_work(job, plan))
    executors[0].pipeline[0].run(None, rank=0, world_size=2)  # map task 0 ran, its completion is not marked
    with pytest.raises(ProvenanceError, match=r"step 'ids' started before step 'map' completed \(0 of 2 tasks\)"):
        executors[1].pipeline[0].run(None, rank=0, world_size=2)


def test_a_rerun_waits_for_slurm_jobs_still_queued_instead_of_submitting_them_again(tmp_path, monkeypatch):
    corpus_dir = four_shards(tmp_path / "world")
    job = job_for(
        corpus_dir, tmp_path / "out", executor=SlurmExecutor(kind="slurm", tasks=2, partition="cpu"), buckets=2
    )
    submitted, waited = iter(range(100, 200)), []

    def submit(self):
        self.job_id = str(next(submitted))

    monkeypatch.setattr(SlurmPipelineExecutor, "run", submit)
    monkeypatch.setattr(engine, "wait_slurm", lambda executors, *_: waited.append([e.job_id for e in executors]))
    monkeypatch.setattr(engine, "finish", lambda *_: None)
    monkeypatch.setattr(engine, "slurm_queued", lambda job_id: job_id == "105")
    sampling.sample(job, keep_work=True)  # the waiting process died here (jobs 100-105 submitted)
    sampling.sample(job, keep_work=True)  # 105 still queued: attach to 100-105
    monkeypatch.setattr(engine, "slurm_queued", lambda job_id: False)
    sampling.sample(job, keep_work=True)  # nothing queued (a step failed): submit what is incomplete again
    assert waited == [[str(i) for i in range(100, 106)]] * 2 + [[str(i) for i in range(106, 112)]]


def test_ray_without_ray_installed_is_one_clear_error(tmp_path):
    pytest.importorskip("datatrove.executor")
    try:
        import ray  # noqa: F401

        pytest.skip("ray is installed here")
    except ImportError:
        pass
    corpus_dir = four_shards(tmp_path / "world")
    job = job_for(corpus_dir, tmp_path / "out", executor=params.RayExecutor(kind="ray", tasks=2))
    with pytest.raises(ProvenanceError, match="kind ray needs the ray package"):
        sampling.sample(job)


# ----------------------------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_worker_processes_write_the_same_manifest(tmp_path):
    corpus_dir = four_shards(tmp_path / "world")
    sampling.sample(job_for(corpus_dir, tmp_path / "one"))
    sampling.sample(job_for(corpus_dir, tmp_path / "pool", tasks=4, workers=2, buckets=3))
    for name in (sampling.MANIFEST, sampling.SUMMARY, sampling.SKEW):
        assert sha256_file(tmp_path / "one" / name) == sha256_file(tmp_path / "pool" / name)


@pytest.mark.slow
def test_a_process_killed_mid_map_resumes(tmp_path):
    """The stage process itself killed (SIGKILL) while map task 2 waits on its shard (a FIFO nobody writes)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    corpus_dir = four_shards(tmp_path / "world")
    sampling.sample(job_for(corpus_dir, tmp_path / "clean", tasks=4))
    shard = corpus_dir / "shard-2.jsonl.zst"
    good = shard.read_bytes()
    shard.unlink()
    os.mkfifo(shard)
    out = tmp_path / "out"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys; sys.path.insert(0, sys.argv[3]); from pathlib import Path; "
                "from test_sampling import job_for; "
                "from provenance_lib.stages import sampling; "
                "sampling.sample(job_for(Path(sys.argv[1]), Path(sys.argv[2]), tasks=4))"
            ),
            str(corpus_dir),
            str(out),
            str(Path(__file__).parent),
        ],
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    completions = out / engine.WORK / "map" / "completions"
    deadline = time.time() + 120
    while not (completions / "00001").exists() and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)  # the stage process and what it started (datatrove's manager process)
    child.wait()
    assert sorted(p.name for p in completions.iterdir()) == ["00000", "00001"]
    shard.unlink()
    shard.write_bytes(good)
    sampling.sample(job_for(corpus_dir, out, tasks=4))
    for name in (sampling.MANIFEST, sampling.SUMMARY, sampling.SKEW):
        assert sha256_file(out / name) == sha256_file(tmp_path / "clean" / name), name


@pytest.mark.slow
def test_real_mini_manifest_is_the_reference(tmp_path):
    """The real-mini corpus (built here: minutes, for the stand-in's labels) sampled with params/real-mini.yaml."""
    from provenance_lib.threads import torch_threads
    from provenance_lib.worlds import realmini

    study = params.load(REAL_MINI)
    with torch_threads(study.threads):
        documents = realmini.select_documents(study.world.sources, study.world.min_words, study.seed)
        records, _ = realmini.label_documents(documents, study, tmp_path)
    realmini.write_corpus(records, tmp_path / "corpus", study.world.docs_per_shard)
    expected = reference_manifest(
        tmp_path / "corpus", study.seed, study.sampling.target_per_bin, tmp_path / "reference.parquet"
    )
    for tasks, buckets in ((1, None), (3, 4)):
        out = tmp_path / f"out-{tasks}"
        sampling.sample(
            sampling.SamplingJob(
                shards=tuple(sampling.corpus_shards([tmp_path / "corpus"])),
                out_dir=out,
                seed=study.seed,
                target_per_bin=study.sampling.target_per_bin,
                tokens=study.sampling.tokens,
                batch_size=study.sampling.batch_size,
                executor=LocalExecutor(kind="local", tasks=tasks),
                buckets=buckets,
            )
        )
        assert sha256_file(out / sampling.MANIFEST) == expected, tasks


@pytest.mark.slow
def test_a_weborganizer_interface_classifier_labels_in_the_annotate_step(tmp_path):
    """A tiny sequence classifier with the FormatClassifier's interface, loaded from its spec by the annotate step
    (on the CPU here: no GPU), labels every unique document the metadata leaves without a format."""
    from test_loaders import save_standin

    model = save_standin(tmp_path / "format", [label.name for label in TAX.formats])
    spec = SequenceClassifierSpec(
        kind="sequence_classifier", model={"source": "local", "path": str(model)}, batch_size=4
    )
    corpus.write_shard(
        tmp_path / "c" / "x.jsonl.zst", [doc(f"d{i}", f"the bike {words(i)}", topic="health") for i in range(10)]
    )
    result = sampling.sample(job_for(tmp_path / "c", tmp_path / "out", tasks=2, format_classifier=spec))
    assert result.summary["documents"]["labels"]["format_from_classifier"] == 10
    assert result.summary["documents"]["population"] == 10


@pytest.mark.slow
def test_notebook_01_runs_through_the_runner(tmp_path, capsys):
    """The runner executes notebook 01 (papermill, a real kernel) on datatrove, over a testbed world whose corpus is
    generated here (stage 01 needs no model), and records what it wrote."""
    from dataclasses import asdict

    from provenance_lib import runs
    from provenance_lib.artifacts import write_json
    from provenance_lib.verify import verify
    from provenance_lib.worlds import WorldInfo, testbed
    from provenance_lib.worlds.contract import fingerprint

    study = params.load(TESTBED)
    world = tmp_path / "runs" / "nb" / "world"
    testbed.generate(study, world)
    write_json(
        world / "world.json",
        asdict(
            WorldInfo(
                kind="testbed",
                fingerprint=fingerprint(study),
                corpus=[testbed.CORPUS_DIR],
                queries=testbed.QUERIES,
                tasks={},
                task_dir=testbed.TASK_DIR,
                base_model=testbed.BASE_MODEL,
                query_model=testbed.QUERY_MODEL,
            )
        ),
    )
    run_dir = runs.run_study(
        TESTBED, name="nb", stages=["01"], runs_dir=tmp_path / "runs", notebooks_dir=TESTBED.parents[1] / "notebooks"
    )
    assert verify(run_dir) == []
    assert sha256_file(run_dir / "01_sampling" / sampling.MANIFEST) == reference_manifest(
        world / testbed.CORPUS_DIR, study.seed, study.sampling.target_per_bin, tmp_path / "reference.parquet"
    )
    assert not (run_dir / "01_sampling" / engine.WORK).exists()

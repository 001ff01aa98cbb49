"""Run folders with a planted stage 02 output, for the tests (and demos) of stages 03-04 until stage 02 lands.

``plant_gradients(run_dir, ...)`` writes a synthetic ``02_gradients/`` (``GradientScores.save``: noise, plus a lift
on each benchmark's planted bin for its queries, via tests/synthetic.py's reference definitions) over the working
set stage 01 recorded in ``run_dir``, and a matching run.json entry. ``plant_run(...)`` first plants the world and
stage 01 too (world.json, manifest, working-set text), so no world is built. From the command line, over a run
whose stage 01 ran for real::

    python tests/planted_runs.py runs/tb            # then: python -m provenance_lib run ... --name tb --stages 03,04
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from provenance_lib import params
from provenance_lib.artifacts import hash_tree, sha256_file, write_json, write_parquet, write_text
from provenance_lib.benchmarks import BY_NAME
from provenance_lib.corpus import write_shard
from provenance_lib.record import RunRecord, StageRecord, now
from provenance_lib.stages.sampling import MANIFEST, WORKING_SET
from provenance_lib.taxonomy import load as load_taxonomy
from provenance_lib.worlds import WorldInfo, fingerprint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import scores_from_matrix  # noqa: E402

PARAMS_DIR = Path(__file__).resolve().parents[1] / "params"
PLANTED = {
    "SocialIQA": "Literature x Customer Support",
    "MMLU Social Sciences": "Politics x Documentation",
    "ARC-Challenge": "Science & Technology x Tutorial",
    "MMLU STEM": "Health x Knowledge Article",
}
SENTENCES = {
    "interactional": [
        "Customer: I think my order is late, can you help me?",
        "Agent: Sorry about that! I know how you feel; we will fix it.",
        'She said "thanks" and we smiled.',
        "Do you remember what he wanted?",
    ],
    "expository": [
        "The method computes the integral of the function.",
        "This section documents the interface.",
        "Results are reported in the table below.",
        "The system stores records in a database.",
    ],
}


def _complete(record: RunRecord, stage_id: str, folder: Path) -> None:
    record.complete(
        stage_id,
        StageRecord(
            fingerprint=f"planted-{stage_id}",
            params_sha256="planted",
            started=now(),
            ended=now(),
            duration_s=0.0,
            outputs=hash_tree(folder, relative_to=record.run_dir),
        ),
    )


def plant_gradients(
    run_dir: Path,
    planted: dict[str, str] | None = None,
    lift: float = 1.0,
    seed: int = 0,
    queries_per_benchmark: int = 24,
    accuracy: float = 0.5,
    checkpoints: int = 0,
    manifest_sha256: str | None = None,
    spread: float = 1.0,
) -> Path:
    """Synthetic stage 02 scores over this run's working set; ``checkpoints`` > 0 also writes that many
    per-checkpoint score sets (the top level then holds their sum); ``spread``: the noise of every planted bin's
    documents is that many times wider (for every benchmark's queries), as planting anything widens a bin."""
    run_dir = Path(run_dir)
    tax = load_taxonomy()
    manifest = pd.read_parquet(run_dir / "01_sampling" / MANIFEST)
    docs = pd.DataFrame(
        {"id": manifest["id"], "bin": manifest["bin"].astype(np.int64), "tokens": manifest["tokens"].astype(np.int64)}
    )
    rng = np.random.default_rng(seed)
    rows = [
        dict(
            id=f"{b.slug}-{i}",
            benchmark=name,
            subject=name,
            correct=bool(rng.random() < accuracy),
            gold_loglik=float(-rng.random()),
        )
        for name, b in BY_NAME.items()
        for i in range(queries_per_benchmark)
    ]
    queries = pd.DataFrame(rows)
    queries.insert(0, "query_index", np.arange(len(queries)))
    sha = manifest_sha256 or sha256_file(run_dir / "01_sampling" / MANIFEST)
    bins = docs["bin"].to_numpy()

    def scores():
        matrix = rng.normal(size=(len(docs), len(queries)))
        for bin_name in (planted or {}).values():
            matrix[bins == tax.parse_bin(bin_name)] *= spread
        for name, bin_name in (planted or {}).items():
            matrix[np.ix_(bins == tax.parse_bin(bin_name), (queries["benchmark"] == name).to_numpy())] += lift
        return matrix

    out = run_dir / "02_gradients"
    if checkpoints:
        parts = [scores() for _ in range(checkpoints)]
        for k, part in enumerate(parts):
            scores_from_matrix(docs, queries, part, sha).save(out / "checkpoints" / f"step{k + 1}")
        total = np.sum(parts, axis=0)
    else:
        total = scores()
    scores_from_matrix(docs, queries, total, sha).save(out)
    _complete(RunRecord(run_dir), "02_gradients", out)
    return out


def plant_run(
    project: Path,
    name: str,
    kind: str = "testbed",
    params_file: str = "testbed.yaml",
    overrides: tuple = (),
    docs_per_bin: int = 8,
    bins=None,
    **gradients,
) -> Path:
    """A run folder with a planted world (``kind``), stage 01 (manifest and working-set text) and stage 02."""
    tax = load_taxonomy()
    study = params.load(PARAMS_DIR / params_file, list(overrides))
    run_dir = Path(project) / "runs" / name
    write_text(run_dir / "params.yaml", params.dump(study))
    world = WorldInfo(
        kind=kind,
        fingerprint=fingerprint(study),
        corpus=["corpus"],
        queries="q.parquet",
        tasks={b: f"planted_{BY_NAME[b].slug}" for b in BY_NAME},
        task_dir="tasks",
        base_model="models/base",
        query_model="models/query",
    )
    write_json(run_dir / "world" / "world.json", asdict(world))
    record = RunRecord(run_dir)
    record.run.name, record.run.params = name, study.model_dump(mode="json")
    _complete(record, "00_world", run_dir / "world")

    planted_bins = {tax.parse_bin(b) for b in (gradients.get("planted") or PLANTED).values()}
    bins = sorted(set(bins if bins is not None else range(0, tax.n_bins, 3)) | planted_bins)
    rng = np.random.default_rng(0)
    documents, rows = [], []
    for b in bins:
        topic, fmt = tax.bin_labels(b)
        style = "interactional" if fmt.key in ("customer_support", "q_a_forum", "comment_section") else "expository"
        for i in range(docs_per_bin):
            doc_id = f"{topic.key}-{fmt.key}-{i}"
            text = " ".join(rng.choice(SENTENCES[style], size=4))
            documents.append(
                {
                    "id": doc_id,
                    "text": text,
                    "source": "planted",
                    "metadata": {"sampling": {"bin": b, "source_shard": "corpus/planted.jsonl.zst", "row": len(rows)}},
                }
            )
            rows.append(
                dict(
                    id=doc_id,
                    source_shard="corpus/planted.jsonl.zst",
                    row=len(rows),
                    bin=b,
                    topic=topic.short,
                    format=fmt.short,
                    tokens=len(text.split()),
                    text_hash=f"{i:016x}",
                )
            )
    sampling = run_dir / "01_sampling"
    write_parquet(sampling / MANIFEST, pd.DataFrame(rows).astype({"bin": np.int16}))
    write_shard(sampling / WORKING_SET / "corpus" / "planted.jsonl.zst", documents)
    _complete(record, "01_sampling", sampling)
    plant_gradients(run_dir, **{"planted": PLANTED, **gradients})
    return run_dir


if __name__ == "__main__":
    lift = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    print(f"planted synthetic stage 02 scores: {plant_gradients(Path(sys.argv[1]), PLANTED, lift=lift)}")

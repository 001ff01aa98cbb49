"""Notebook 01 itself, on a world of three tiny shards: run by the runner with a target every bin meets (no bin
underfilled: its tables once raised KeyError), then opened by hand, where it shows the recorded artifacts."""

from dataclasses import asdict
from pathlib import Path

import nbformat

from provenance_lib import corpus, params, runs, taxonomy
from provenance_lib.artifacts import read_json, write_json
from provenance_lib.execute import run_notebook
from provenance_lib.worlds import WorldInfo, builder_code_sha256, fingerprint

ROOT = Path(__file__).resolve().parents[1]
TAX = taxonomy.load()


def tiny_world(run_dir: Path, study) -> None:
    """Two bins of two documents each, in shards the way every world writes them."""
    world = run_dir / "world"
    docs = []
    for b, name in enumerate(("Literature x Customer Support", "Politics x Documentation")):
        topic, fmt = TAX.bin_labels(TAX.parse_bin(name))
        docs += [
            {
                "id": f"{b}-{i}",
                "text": f"document {b} {i} " * 5,
                "source": "tiny",
                "metadata": corpus.label_metadata(topic.key, fmt.key),
            }
            for i in range(2)
        ]
    corpus.write_shard(world / "corpus" / "a.jsonl.zst", docs[:3])
    corpus.write_shard(world / "corpus" / "b.jsonl.zst", docs[3:])
    info = WorldInfo(
        kind="testbed",
        fingerprint=fingerprint(study),
        corpus=["corpus"],
        queries="q.parquet",
        tasks={},
        task_dir="tasks",
        base_model="models/base",
        query_model="models/query",
        code_sha256=builder_code_sha256(),
    )
    write_json(world / "world.json", asdict(info))


def test_notebook_01_with_no_underfilled_bin_then_opened_by_hand(tmp_path):
    overrides = ["sampling.target_per_bin=1", "stages=[01_sampling]"]
    study = params.load(ROOT / "params" / "testbed.yaml", overrides)
    tiny_world(tmp_path / "tiny", study)
    run_dir = runs.run_study(
        ROOT / "params" / "testbed.yaml", overrides, name="tiny", runs_dir=tmp_path, notebooks_dir=ROOT / "notebooks"
    )
    summary = read_json(run_dir / "01_sampling" / "sampling_summary.json")
    assert summary["bins"]["underfilled"] == [] and summary["bins"]["full"] == 2

    by_hand = tmp_path / "by_hand.ipynb"  # JupyterLab: the defaults, pointed at this run
    assert run_notebook(ROOT / "notebooks" / "01_sampling.ipynb", by_hand, {"run_dir": str(run_dir)}) is None
    nb = nbformat.read(by_hand, as_version=4)
    outputs = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert "Showing the recorded artifacts of tiny/01_sampling" in outputs
    assert "2 full bins, 0 underfilled" in outputs
    assert not (run_dir / "interactive").exists()

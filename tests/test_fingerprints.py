"""Fingerprints see everything that makes an artifact: the library code a stage runs, a world's code, and the
inputs a world reads outside its params (real-mini's installed texts, the paper's shards); one world, one
fingerprint."""

import shutil
from pathlib import Path

import yaml

from provenance_lib import codebase, corpus, params, worlds
from provenance_lib.artifacts import hash_tree
from provenance_lib.worlds import WorldInfo, ensure_world, fingerprint, paper, realmini, testbed

ROOT = Path(__file__).resolve().parents[1]
STAGE_01 = ROOT / "notebooks" / "01_sampling.ipynb"


# ----------------------------------------------------------------------------------------------- code
def test_code_hash_follows_the_modules_a_stage_runs(tmp_path, monkeypatch):
    copy = tmp_path / "provenance_lib"
    shutil.copytree(codebase.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codebase, "PACKAGE_DIR", copy)
    before = codebase.stage_code_sha256(STAGE_01)
    assert before == codebase.stage_code_sha256(STAGE_01)

    def edit(rel: str, text: str = "\n# edited\n") -> str:
        with open(copy / rel, "a") as f:
            f.write(text)
        return codebase.stage_code_sha256(STAGE_01)

    assert edit("stages/gradients/scores.py") == before  # a later stage's code: not what 01 runs
    assert edit("runs.py") == before  # the runner: not what the notebook runs
    changed = edit("corpus.py")  # imported on the way: ground under the stage
    assert changed != before
    (copy / "helper.py").write_text("X = 1\n")  # a module imported inside a function only
    assert edit("stages/sampling/select.py", "\ndef f():\n    from ...helper import X\n") != changed
    with_helper = codebase.stage_code_sha256(STAGE_01)
    assert edit("helper.py") != with_helper
    data = edit("reference/paper_reported.yaml")
    (copy / "stages/sampling/extra.py").write_text("")  # a new module of the stage's own package
    assert codebase.stage_code_sha256(STAGE_01) != data


def test_notebook_hash_is_its_cells_not_its_outputs(tmp_path):
    import nbformat

    nb = nbformat.read(STAGE_01, as_version=4)
    path = tmp_path / "01_sampling.ipynb"
    nbformat.write(nb, path)
    plain = codebase.notebook_sha256(path)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="ran")]
    nb.cells[2].execution_count = 3
    nbformat.write(nb, path)
    assert codebase.notebook_sha256(path) == plain
    nb.cells[1].metadata["tags"] = []  # the parameters tag decides what papermill injects
    nbformat.write(nb, path)
    assert codebase.notebook_sha256(path) != plain
    assert codebase.notebook_imports(STAGE_01) >= {"provenance_lib.context", "provenance_lib.stages.sampling"}


def test_world_is_rebuilt_when_its_code_changes_unless_code_is_trusted(tmp_path, monkeypatch):
    builds = []

    def fake_build(study, out_dir):
        builds.append(out_dir)
        (Path(out_dir) / "made").write_text(str(len(builds)))
        return WorldInfo("testbed", "", [], "q", {}, "t", "b", "q")

    monkeypatch.setitem(worlds.BUILDERS, "testbed", fake_build)
    study = params.load(ROOT / "params" / "testbed.yaml")
    assert ensure_world(study, tmp_path / "world")[1] and not ensure_world(study, tmp_path / "world")[1]
    monkeypatch.setattr(worlds, "builder_code_sha256", lambda: "0" * 64)
    assert not ensure_world(study, tmp_path / "world", trust_code=True)[1]
    info, built = ensure_world(study, tmp_path / "world")
    assert built and info.code_sha256 == "0" * 64 and len(builds) == 2


# ----------------------------------------------------------------------------------------------- world inputs
def test_planted_bins_in_any_yaml_order_make_one_world_with_one_fingerprint(tmp_path):
    raw = yaml.safe_load((ROOT / "params" / "testbed.yaml").read_text())
    raw["world"]["planted"] = {
        "SocialIQA": ["Literature x Customer Support"],
        "MMLU Social Sciences": ["Politics x Knowledge Article"],
        "ARC-Challenge": ["Science, Math & Technology x Tutorial / How-To Guide"],
        "MMLU STEM": ["Science, Math & Technology x Academic Writing"],
    }
    raw["world"]["planted_token_share"] = 0.003  # what one named bin per benchmark holds
    forward = params.validate(raw)
    raw["world"]["planted"] = dict(reversed(list(raw["world"]["planted"].items())))
    backward = params.validate(raw)
    assert fingerprint(forward) == fingerprint(backward)
    testbed.generate(forward, tmp_path / "a")
    testbed.generate(backward, tmp_path / "b")
    assert hash_tree(tmp_path / "a") == hash_tree(tmp_path / "b")


def test_real_mini_fingerprint_covers_the_installed_texts_it_reads(monkeypatch):
    texts = {"README": "a package that does things " * 5}

    def package_docs():
        return [realmini.SourceDoc("package_docs/x", texts["README"], "package_docs", "python-package")]

    monkeypatch.setitem(realmini.READERS, "package_docs", package_docs)
    study = params.load(ROOT / "params" / "real-mini.yaml", ["world.sources={package_docs: null}"])
    first = fingerprint(study)
    assert fingerprint(study) == first
    texts["README"] += " and more, in another environment"
    assert fingerprint(study) != first


def dolma_shard(path: Path, n: int) -> Path:
    return corpus.write_shard(path, [{"id": f"d{i}", "text": f"document {i}", "source": "dolma"} for i in range(n)])


def test_paper_fingerprint_covers_the_shard_listing(tmp_path):
    data = tmp_path / "dolma3"
    shard = dolma_shard(data / "part" / "0000.jsonl.zst", 3)
    study = params.load(ROOT / "params" / "paper.yaml", [f"world.corpus=[{data}]"])
    plain = fingerprint(study)
    assert fingerprint(study) == plain
    dolma_shard(shard, 4)  # another corpus, same name
    resized = fingerprint(study)
    assert resized != plain
    # fetched with `hf download --local-dir`: the hub's content hash of each file is in the fingerprint
    meta = data / ".cache" / "huggingface" / "download" / "part" / "0000.jsonl.zst.metadata"
    meta.parent.mkdir(parents=True)
    meta.write_text(f"abc123\n{'1' * 64}\n{shard.stat().st_mtime + 5}\n")
    hashed = fingerprint(study)
    assert hashed != resized and paper.corpus_listing([data])[0]["hub_etag"] == "1" * 64
    meta.write_text(f"abc123\n{'2' * 64}\n{shard.stat().st_mtime + 5}\n")  # same size, other content
    assert fingerprint(study) != hashed
    meta.write_text(f"abc123\n{'2' * 64}\n{shard.stat().st_mtime - 60}\n")  # written after the download
    assert paper.corpus_listing([data])[0]["hub_etag"] is None and fingerprint(study) == resized

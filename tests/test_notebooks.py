"""The stage notebooks as committed and as the runner executes them: no outputs in the repository, each stage
notebook closing on what its run found (written from the artifacts), and a kernel that writes nothing into an
executed notebook but what its cells print: no transport warning, no progress-bar chunks. And the text a
contributor reads speaks of the package, not of the tracker or of commits."""

import re
from pathlib import Path

import nbformat
import pytest

from provenance_lib.execute import run_notebook

ROOT = Path(__file__).resolve().parents[1]
STAGE_NOTEBOOKS = ("01_sampling", "02_gradients", "03_binning", "04_contrast")


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(path):
    cells = nbformat.read(path, as_version=4).cells
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells if c.cell_type == "code")


@pytest.mark.parametrize("name", STAGE_NOTEBOOKS)
def test_each_stage_notebook_ends_with_what_its_run_found(name):
    last = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).cells[-1]
    assert last.cell_type == "code" and last.source == "Markdown(summaries.closing(stage, result))"


def test_a_runner_kernel_writes_only_what_its_cells_print(tmp_path, capfd):
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("rows = 3", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(
                "import tqdm.auto\nfor _ in tqdm.auto.tqdm(range(rows), desc='bar'):\n    pass\nprint('done')"
            ),
        ],
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.write(notebook, tmp_path / "in.ipynb")
    assert run_notebook(tmp_path / "in.ipynb", tmp_path / "out.ipynb", {"rows": 5}) is None
    outputs = [o for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells for o in c.get("outputs", [])]
    assert [(o.get("name"), o.get("text")) for o in outputs] == [("stdout", "done\n")]
    runner = capfd.readouterr()
    assert "without encryption" not in runner.err + runner.out and "IProgress" not in runner.err + runner.out


def test_code_and_notebooks_speak_of_the_package_not_of_issues_or_commits():
    cites = re.compile(r"\bissues? ?#?\d+\b|\bcommit [0-9a-f]{7,40}\b|\([0-9a-f]{7,12}\)", re.I)
    paths = [
        p
        for folder in ("provenance_lib", "notebooks", "tests", "params")
        for p in (ROOT / folder).rglob("*")
        if p.suffix in (".py", ".ipynb", ".yaml", ".md", ".j2") and "paper_bin_scores" not in p.parts
    ]
    found = []
    for path in paths + [ROOT / "Makefile"]:
        text = path.read_text()
        found += [
            f"{path.relative_to(ROOT)}: {m.group(0)}"
            for m in cites.finditer(text)
            if "bergson issue" not in text[max(0, m.start() - 8) : m.end()]
        ]  # the upstream's own tracker
    assert found == []

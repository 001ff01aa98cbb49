"""Copy the executed stage notebooks of the named runs into docs/executed/ and write its index page.

    python docs/collect.py paper-released testbed [--runs-dir runs] [--docs-dir docs]

The site renders these copies (myst-nb, stored outputs); the runs themselves are made by the package's runner
(`make docs` runs each study first, reusing every current stage). A run without executed notebooks is an error
naming the command that makes it.
"""

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def collect(run_names: list[str], runs_dir: Path = ROOT / "runs", docs_dir: Path = ROOT / "docs") -> None:
    executed = docs_dir / "executed"
    if executed.exists():
        shutil.rmtree(executed)
    sections = []
    for name in run_names:
        notebooks = [
            path
            for path in sorted((runs_dir / name / "notebooks").glob("[0-9][0-9]_*.ipynb"))
            if not path.name.endswith(".failed.ipynb")
        ]
        if not notebooks:
            sys.exit(
                f"docs: {runs_dir / name} has no executed notebooks; make the run with "
                f"`.venv/bin/python -m provenance_lib run params/{name}.yaml`"
            )
        (executed / name).mkdir(parents=True)
        for path in notebooks:
            shutil.copy2(path, executed / name / path.name)
        entries = "\n".join(f"{name}/{path.stem}" for path in notebooks)
        sections.append(f"## `{name}`\n\n```{{toctree}}\n:maxdepth: 1\n\n{entries}\n```\n")
    (executed / "index.md").write_text(
        "# Executed notebooks\n\nThe stage notebooks as the runner executed them (outputs as stored in "
        "`runs/<name>/notebooks/`), one section per run.\n\n" + "\n".join(sections)
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--docs-dir", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    collect(args.runs, args.runs_dir, args.docs_dir)

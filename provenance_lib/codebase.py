"""The code a run record fingerprints: the package source a stage runs, and the stage notebook itself.

A stage's fingerprint covers its code, so that a changed library or notebook re-runs the stage and a record never
credits artifacts to code that did not make them. The library code a stage runs is found, not guessed:

* the ``provenance_lib`` modules its notebook imports, followed through every import (function-level imports
  included, read with ``ast`` as ``tests/test_layout.py`` reads them) and through the packages above each module
  (importing ``a.b`` runs ``a/__init__.py``);
* every module of a stage package it touches (a stage may start its own modules by name, ``torchrun -m ...``);
* all package data (``reference/*.yaml``, ...).

So editing stage 05 does not re-run stage 01 (hours of GPU time at paper scale), while editing ``corpus.py`` re-runs
every stage that reads a corpus. A notebook counts by its cells' type, source and tags: executing it (outputs,
execution counts) does not change it.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from collections.abc import Iterable

from .artifacts import sha256_file, sha256_json
from .errors import ProvenanceError

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name
STAGES = f"{PACKAGE}.stages"


# ----------------------------------------------------------------------------------------------- the package
def _is_source(path: Path) -> bool:
    """A file of the package as installed: no byte code, no editor or hidden files."""
    rel = path.relative_to(PACKAGE_DIR)
    return (
        path.is_file()
        and "__pycache__" not in rel.parts
        and not any(p.startswith(".") for p in rel.parts)
        and path.suffix not in (".pyc", ".pyo")
    )


def package_files() -> list[Path]:
    """Every file of the package as installed, in sorted order: one walk of the folder per fingerprint."""
    return [p for p in sorted(PACKAGE_DIR.rglob("*")) if _is_source(p)]


def modules(files: list[Path]) -> dict[str, Path]:
    """Module name -> file, for every module among ``files``."""
    found = {}
    for path in files:
        if path.suffix == ".py":
            parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(tree: ast.AST, package: str = "") -> set[str]:
    """Every ``provenance_lib`` name a module imports, anywhere in it; ``package`` resolves relative imports."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == PACKAGE:
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import module`
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
    return found


def closure(roots: Iterable[str], known: dict[str, Path]) -> set[str]:
    """The modules that importing ``roots`` runs, plus every module of a stage package among them (``known``:
    ``modules``)."""
    todo, seen = list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in known:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages above it run first
        if name.startswith(STAGES + ".") and len(parts) > 2:
            stage_package = ".".join(parts[:3])
            todo += [m for m in known if m == stage_package or m.startswith(stage_package + ".")]
        path = known[name]
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        todo += imported_names(ast.parse(path.read_text(), str(path)), package)
    return seen


def code_sha256(roots: Iterable[str] | None = None) -> str:
    """sha256 of the source files importing ``roots`` runs and of all package data; None: the whole package."""
    return sha256_json(source_digest(roots))


def source_digest(roots: Iterable[str] | None = None) -> dict[str, str]:
    """Relative path -> sha256 of each file counted (``code_sha256`` hashes this)."""
    files = package_files()
    known = modules(files)
    names = known if roots is None else closure(roots, known)
    paths = sorted({known[name] for name in names} | {path for path in files if path.suffix != ".py"})
    return {path.relative_to(PACKAGE_DIR.parent).as_posix(): sha256_file(path) for path in paths}


# ----------------------------------------------------------------------------------------------- notebooks
def notebook_cells(notebook: str | Path) -> list[dict]:
    """A notebook's cells as they were written: type, source and tags (no outputs, counts or other metadata).
    Read as the JSON it is (nbformat 4), which takes milliseconds where importing nbformat takes seconds."""
    try:
        cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProvenanceError(
            f"cannot read the notebook {notebook}: {exc}", "check that it is an nbformat 4 notebook"
        ) from None
    return [
        {
            "type": cell["cell_type"],
            "tags": sorted(cell.get("metadata", {}).get("tags", [])),
            "source": "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"],
        }
        for cell in cells
    ]


def notebook_sha256(notebook: str | Path) -> str:
    return sha256_json(notebook_cells(notebook))


def notebook_imports(notebook: str | Path) -> set[str]:
    """The ``provenance_lib`` modules a notebook's code cells import (IPython magics translated first)."""
    from IPython.core.inputtransformer2 import TransformerManager

    translate = TransformerManager().transform_cell
    names = set()
    for index, cell in enumerate(notebook_cells(notebook)):
        if cell["type"] != "code":
            continue
        try:
            tree = ast.parse(translate(cell["source"]))
        except SyntaxError as exc:
            raise ProvenanceError(
                f"{notebook}: cell {index} is not valid Python ({exc.msg}, line {exc.lineno})",
                "fix the cell: the runner reads every cell to know which library code it runs",
            ) from exc
        names |= imported_names(tree)
    return names


def stage_code_sha256(notebook: str | Path) -> str:
    """sha256 of the library code a stage notebook runs (see the module docstring)."""
    return code_sha256(notebook_imports(notebook))

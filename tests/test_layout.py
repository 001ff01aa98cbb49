"""The house reads bottom-up in pipeline order: no import circles (also none hidden inside functions), no module
importing a later layer or a later stage, no module too long to read in one sitting."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "provenance_lib"
LAYERS = (
    ("errors",),
    ("artifacts", "assets", "threads", "process", "taxonomy", "reported"),
    ("params", "corpus", "benchmarks", "stats", "codebase", "heatmap"),
    ("models",),
    ("labels", "evaluation"),
    ("worlds",),
    ("record",),
    ("context",),
    ("stages",),
    (
        "execute",
        "plans",
        "world_stage",
        "runs",
        "verify",
        "counterfactual",
        "validation_effects",
        "validation_figures",
        "validation_tables",
        "validation_results",
        "validate",
        "summaries",
        "report",
        "release_fields",
        "release_card",
        "release",
        "estimate",
    ),
    ("__main__",),
)
STAGE_ORDER = ("sampling", "gradients", "binning", "contrast", "unlearning")
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every provenance_lib module ``path`` imports, at any depth of the file (function-level imports included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("provenance_lib"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("provenance_lib"))
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: place it")


def stage_rank(module: str) -> int | None:
    parts = module.split(".")
    return STAGE_ORDER.index(parts[2]) if len(parts) > 2 and parts[1] == "stages" else None


def test_no_import_circles():
    edges = graph()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join(path + [nxt]))
            if state.get(nxt) is None:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def test_no_module_imports_a_later_layer_or_stage():
    problems = []
    for module, targets in graph().items():
        if module == "provenance_lib":
            continue
        for target in targets:
            if target == "provenance_lib":
                continue
            if layer(target) > layer(module):
                problems.append(f"{module} imports the later layer {target}")
            a, b = stage_rank(module), stage_rank(target)
            if a is not None and b is not None and b > a:
                problems.append(f"{module} imports the later stage {target}")
    assert problems == []


def test_every_module_reads_in_one_sitting():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these along their seams: {long}"

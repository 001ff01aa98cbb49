"""Files shipped inside pip packages (models, benchmark data, text): found without importing the package, since
some of them import heavy or broken dependencies on import."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import ProvenanceError


def package_dir(module: str, pip_name: str) -> Path:
    """The folder of an installed package's files; a clear error naming the pip package when it is missing."""
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ProvenanceError(
            f"{pip_name} is not installed",
            f"pip install --no-deps {pip_name} (pinned in requirements/no-deps.txt; `make env`)",
        )
    return Path(found.submodule_search_locations[0])

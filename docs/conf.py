"""Sphinx configuration of the documentation site (MyST Markdown pages, executed notebooks through myst-nb).

Every measured number on the site is generated: `bench/results/*.json` is loaded here as the substitution
`results.<file stem>` (Jinja2 in MyST substitutions), the bench scripts' rendered tables are included from
`bench/results/*.md`, the executed notebooks are copied from the runs named in `DOCS_RUNS` by `docs/collect.py`, and
the params reference is written from the pydantic models (`docs/params_reference.py`).
"""

import json
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))
import params_reference  # noqa: E402

project = "provenance-lib"
author = "Capability provenance contributors"
copyright = "2026, " + author

extensions = ["myst_nb"]
html_theme = "furo"
html_title = "provenance-lib"
html_static_path: list[str] = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["substitution", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_substitutions = {
    "results": {
        path.stem: json.loads(path.read_text()) for path in sorted((ROOT / "bench" / "results").glob("*.json"))
    },
}

# Notebooks are rendered from their stored outputs (executed by the package's runner), never executed here.
nb_execution_mode = "off"
nb_merge_streams = True


def setup(app):
    """The params reference is written from the pydantic models before Sphinx reads the pages."""
    app.connect("builder-inited", lambda app: params_reference.write(DOCS / "reference" / "params.md"))

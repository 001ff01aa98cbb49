"""The paper's reported figures (``reference/paper_reported.yaml``): stages 01, 04 and 05, the released world and
the estimate all compare with or start from them, so the file is read in one place and once per process."""

from __future__ import annotations

import functools
from importlib.resources import files

import yaml


@functools.cache
def reported_text() -> str:
    """The YAML as shipped (contrast reads it with its own loader, which keeps each number's printed form)."""
    return files("provenance_lib").joinpath("reference/paper_reported.yaml").read_text()


def paper_reported() -> dict:
    """The YAML parsed: a fresh dict per call, so no caller can change what the next one reads."""
    return yaml.safe_load(reported_text())

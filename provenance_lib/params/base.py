"""The base of every params block."""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every params block: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    NOT_IN_FINGERPRINT: ClassVar[frozenset[str]] = frozenset()
    """Keys that say where the work runs, not what it computes: recorded with the params a stage ran with, left out
    of its fingerprint, so changing them neither re-runs a completed stage nor discards an interrupted one's work."""

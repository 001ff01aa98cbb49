"""The base of every params block."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every params block: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

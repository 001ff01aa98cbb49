"""The ``sampling`` section (stage 01)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Section


# --------------------------------------------------------------------------------------------------- stages
class Sampling(Section):
    """Stage 01: de-duplication, labels and the stratified working set."""

    target_per_bin: int = Field(gt=0, description="documents drawn per topic x format bin (paper: 10,000)")
    tokens: Literal["whitespace", "base_model"] = Field(
        default="whitespace", description="how documents' tokens are counted: whitespace words or the base model's "
                                          "tokenizer (manifest token column, token skew statistics)")
    batch_size: int = Field(default=256, gt=0, description="documents per classifier / tokenizer call")
    workers: int = Field(default=1, gt=0, description="local torch.distributed (gloo) ranks; 1 = in this process; "
                                                      "under torchrun the launched ranks are used instead")

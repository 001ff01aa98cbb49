"""The ``contrast`` section (stage 04): the analyses over the influence matrix."""

from __future__ import annotations

from pydantic import Field

from .base import Section


class Contrast(Section):
    """Stage 04: profile correlations, marginals, contrastive topics, correctness differential, lexical profiles."""

    top_n: int = Field(
        default=3, ge=1, le=24, description="top positive / negative formats and topics reported (the paper reports 3)"
    )
    bin_bootstrap: int = Field(
        default=1000,
        ge=0,
        description=(
            "replicates of the bin-level bootstrap used when stage 03 has no query-level replicates (the paper's "
            "released matrix): bins (correlations) or the other axis (marginals) resampled"
        ),
    )
    ci_level: float = Field(default=0.95, gt=0, lt=1)
    fdr: float = Field(default=0.05, gt=0, lt=1, description="Benjamini-Hochberg level of the per-bin tests")
    lexical_top_bins: int = Field(
        default=20,
        ge=1,
        le=576,
        description=("bins per benchmark whose working-set text is profiled (the paper profiles SocialIQA's top 20)"),
    )

"""The ``binning`` section (stage 03): how per-query bin scores become the 576 x benchmark influence matrix."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Section

Variant = Literal[
    "paper", "centered", "topk", "format_residualized", "checkpoint_summed", "mean_null", "moderated_t", "tail_balance"
]
VARIANTS: tuple[Variant, ...] = (
    "paper",
    "centered",
    "topk",
    "format_residualized",
    "checkpoint_summed",
    "mean_null",
    "moderated_t",
    "tail_balance",
)


class Binning(Section):
    """Stage 03: the paper's aggregation (bin mean -> z over bins) and the sensitivity variants beside it."""

    variants: list[Variant] = Field(
        default_factory=lambda: list(VARIANTS),
        min_length=1,
        description=(
            "aggregations computed; 'paper' is always computed (it is the one exported in the paper's layout)"
        ),
    )
    reading: Variant = Field(
        default="mean_null",
        description=(
            "the aggregation the study reads first: stage 03's headline heatmaps and top bins, and the report's. The "
            "default is the reading the known-answers rule (`validation_effects.chosen`) picks from `validate`'s "
            "table (docs/known-answers.md, bench/results/known_answers.md). 'paper' is always computed, "
            "shown beside it, exported in the paper's layout, and what stage 04 compares with the paper's values. A "
            "reading that is not computed (left out of variants; a released matrix has only 'paper') falls back to "
            "'paper', and stage 03's summary says why"
        ),
    )
    min_docs: int = Field(
        default=5,
        ge=1,
        description=(
            "bins with fewer working-set documents are masked (no z, left out of the 576-bin mean and std): a mean "
            "over fewer documents is mostly one document's noise, and a bootstrap over 1 document has no spread. The "
            "paper's smallest bin had 436, so it masks nothing at paper scale"
        ),
    )
    bootstrap: int = Field(
        default=1000,
        ge=0,
        description=(
            "bootstrap replicates (queries within benchmark, documents within bin) for the CIs and p-values; the "
            "paper's noise floor used 1,000. 0: point estimates only"
        ),
    )
    ci_level: float = Field(default=0.95, gt=0, lt=1, description="two-sided percentile interval")
    fdr: float = Field(default=0.05, gt=0, lt=1, description="Benjamini-Hochberg level for flagging bins")
    topk_share: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description=(
            "topk variant: a bin is scored by the mean of its top share of documents (on the known-answers testbed "
            "the top 20% recovered planted bins better than the mean)"
        ),
    )
    moderation_df: float = Field(
        default=10.0,
        gt=0,
        description=(
            "moderated_t variant: prior degrees of freedom of the median within-bin variance each bin's variance is "
            "shrunk toward (a 40-document bin keeps about 80% of its own)"
        ),
    )
    tail_share: float = Field(
        default=0.1,
        gt=0,
        lt=0.5,
        description=(
            "tail_balance variant: the share of a benchmark's documents in each tail (its top and its bottom)"
        ),
    )
    centering: Literal["benchmark_means", "all_queries"] = Field(
        default="benchmark_means",
        description=(
            "centered variant: the shared query direction subtracted from every query row. benchmark_means: the mean "
            "of the four benchmarks' mean rows (each benchmark weighs the same); all_queries: the mean over every "
            "query row (SocialIQA's 10,000 queries would dominate at paper scale)"
        ),
    )

"""The ``gradients`` section (stage 02): TrackStar through bergson — what is collected, with which model, how it is
preconditioned, and what is kept. Defaults are the paper's recipe where it has one (projection 16, unit
normalization, TrackStar's component share for the mixing coefficient); each params file sizes the rest to its
world."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from .base import Section

FINAL = "final"
"""The checkpoint label of the world's base model itself (``WorldInfo.base_model``)."""
ALL = "all"
"""Every checkpoint the world lists (``WorldInfo.checkpoints``, in training order, up to the base model)."""


class QuerySide(Section):
    """One query per benchmark eval item: which text carries the loss and which model takes the gradient."""

    format: Literal["bare", "lettered"] = Field(
        default="bare",
        description=(
            "bare: prompt = the item's zero-shot prompt as lm-eval scores it, completion = the gold answer text (the "
            "paper's text); lettered: 'Question: <stem>' + lettered choices + 'Answer:', completion = the gold letter "
            "(the paper's released query builder). Loss on the completion only"
        ),
    )
    model: Literal["query", "base"] = Field(
        default="query",
        description=("query: the world's query (instruct) model, as the paper's text says; base: the base model"),
    )
    variants: bool = Field(
        default=True,
        description=(
            "also score the other formats / models against the same document side and report how far the 576-bin z "
            "profiles move (Spearman); one extra query pass per variant that differs"
        ),
    )
    eval_batch_size: int = Field(default=16, gt=0, description="lm-eval batch size of the per-item correctness run")
    shots: dict[str, int] = Field(
        default={"SocialIQA": 3, "MMLU Social Sciences": 4, "ARC-Challenge": 4, "MMLU STEM": 4},
        description=(
            "few-shot examples per benchmark of the correctness run: the same as unlearning.evaluation.shots "
            "(checked), so the correct / incorrect split and the reported accuracies come from one evaluation"
        ),
    )


class SecondMoment(Section):
    """TrackStar's V: gradients are divided by sqrt(V) (+ eps) before projection."""

    factored: bool = Field(
        default=True,
        description=(
            "Adafactor (row x column) V that bergson derives from Adam's (AdamNormalizer.to_adafactor): applied to the "
            "projection's inputs, nearly free; false = the exact Adam V, which forms every module's full per-document "
            "gradient before projecting"
        ),
    )
    calibration_documents: int = Field(
        default=256,
        gt=0,
        description=(
            "working-set documents (a seeded uniform sample) whose mean squared gradient estimates V when the world "
            "has no optimizer state (the empirical Fisher diagonal; its scale cancels under unit normalization)"
        ),
    )


class Curvature(Section):
    """TrackStar's R: train-side and query-side autocorrelations of the projected gradients, mixed by lambda."""

    train_documents: int = Field(
        default=10_000,
        gt=0,
        description=(
            "working-set documents (the same seeded order as V's sample) for the train-side autocorrelation "
            "(bergson trackstar's stats_sample_size)"
        ),
    )
    downweight_share: float = Field(
        default=1000 / 65536,
        gt=0,
        lt=1,
        description=(
            "target_downweight_components as a share of all gradient components (TrackStar: 1000 of 65,536); capped "
            "below the query autocorrelation's rank, so small query sets do not degenerate to lambda = 1"
        ),
    )
    damping: float = Field(default=0.1, gt=0, description="damping x mean eigenvalue added before H^-1/2 (bergson)")
    mix: bool = Field(default=True, description="false: precondition with the train-side autocorrelation alone")


class Exactness(Section):
    """Projected vs exact (projection 0, same V/R/normalization) scores on a bounded sample."""

    enabled: bool = True
    dims: list[int] = Field(default=[8, 16, 32], min_length=1, description="projection dims compared to exact")
    seeds: list[int] = Field(default=[0, 1], min_length=1, description="projection seeds per dim")
    v_paths: list[Literal["factored", "adam"]] = Field(default=["factored", "adam"], min_length=1)
    documents: int | None = Field(
        default=None,
        gt=0,
        description=(
            "working-set documents in the comparison (null: all), taken round-robin over bins (every bin's first "
            "document, then every bin's second, ...); the exact side keeps their unprojected gradients"
        ),
    )
    queries_per_benchmark: int | None = Field(default=None, gt=0, description="queries per benchmark (null: all)")
    top_k: int = Field(default=10, gt=0, description="top-k documents per query for retrieval overlap")

    @model_validator(mode="after")
    def _dims_positive(self):
        if any(d <= 0 for d in self.dims):
            raise ValueError("exactness.dims must be positive projection dims (exact is the reference)")
        return self


class Gradients(Section):
    """Stage 02: per-document gradients of the base model (bergson), TrackStar preconditioning, streamed into bin
    sums and per-document scores."""

    NOT_IN_FINGERPRINT: ClassVar[frozenset[str]] = frozenset({"max_skipped_share"})  # decides whether the stage
    #   completes, not what it computes: raising it resumes a refused stage's work

    projection_dim: int = Field(
        default=16,
        ge=0,
        description=(
            "bergson's per-module two-sided projection: p x p numbers per module (the paper: 16); 0 = unprojected"
        ),
    )
    projection_seed: int = Field(default=0, ge=0)
    max_length: int = Field(
        default=8192,
        gt=1,
        description=(
            "tokens per window (at most the model's context); a longer document is cut into windows overlapping by one "
            "token, so every token after the first is predicted once, and its gradient is the sum of theirs"
        ),
    )
    max_windows: int | None = Field(
        default=None,
        gt=0,
        description=("windows per document (null: all); the rest of a longer document is left out, and counted"),
    )
    token_batch_size: int = Field(
        default=8192, gt=0, description=("padded tokens per collection batch; with memory_gb, the most it may be")
    )
    memory_gb: float | None = Field(
        default=None,
        gt=0,
        description=(
            "peak resident memory (GB) the collecting process may reach: the token batch is the largest (up to "
            "token_batch_size) that fits, from the model's per-token cost measured by two probe passes at the start "
            "(Linux); null: token_batch_size as given. The unprojected exactness passes use token_batch_size"
        ),
    )
    v: SecondMoment = SecondMoment()
    curvature: Curvature = Curvature()
    query: QuerySide = QuerySide()
    checkpoints: list[str] = Field(
        default=[FINAL],
        min_length=1,
        description=(
            "base-model checkpoints (labels of WorldInfo.checkpoints, or 'final') whose scores are summed, as "
            "TrackStar does; each one's own scores are kept under checkpoints/<label>/. [all]: every checkpoint the "
            "world lists"
        ),
    )
    checkpoint_every: int = Field(
        default=4096, gt=0, description=("documents per resumable chunk: a rank saves its accumulators after each")
    )
    keep_document_gradients: bool = Field(
        default=False,
        description=(
            "also keep every document's preconditioned unit gradient (N x D); tests check bin sums against it"
        ),
    )
    on_nonfinite: Literal["stop", "skip"] = Field(
        default="stop",
        description=("a document whose gradient is NaN/inf: stop with its id, or leave it out and report it"),
    )
    max_skipped_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description=(
            "the stage refuses to complete when it left out more than this share of the working set (non-finite "
            "gradients, documents of fewer than 2 tokens): many such documents point at the model or the corpus"
        ),
    )
    workers: int = Field(default=1, gt=0, description="local ranks (bergson's launcher) on this node")
    nodes: int = Field(default=1, gt=0, description="nodes (each runs `workers` ranks; MASTER_ADDR / NODE_RANK set)")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: cuda when available")
    exactness: Exactness = Exactness()

    @model_validator(mode="after")
    def _batch_holds_a_window(self):
        if self.token_batch_size < self.max_length:
            raise ValueError(
                f"token_batch_size ({self.token_batch_size}) must hold one window of max_length "
                f"({self.max_length}) tokens"
            )
        return self

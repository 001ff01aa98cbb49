"""The ``unlearning`` section (stage 05): forget sets, NGDiff / GradDiff with LoRA, evaluation, launch, statistics.

Defaults are the paper's protocol (its released configuration): 24 topics x 3 seeds, top 200 documents of at least
512 estimated tokens, NGDiff with LoRA r 8 on q/k/v/o, AdamW 1e-5 constant, 4 x 4 documents per step, up to 5,000
steps with an MMLU stop rule, SocialIQA 3-shot and the others 4-shot. ``params/testbed.yaml`` and
``params/real-mini.yaml`` shrink the sizes so the stage runs in seconds / minutes on a CPU; only sizes change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..benchmarks import BY_NAME
from ..errors import ProvenanceError
from ..taxonomy import load
from .base import Section

MMLU = ["MMLU Social Sciences", "MMLU STEM"]


def _check_benchmarks(names: list[str]) -> list[str]:
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown benchmarks {unknown}; use {list(BY_NAME)}")
    return names


class ForgetSets(Section):
    """Which forget sets are built, and how (``stages.unlearning.forget_sets``)."""

    benchmarks: list[str] | None = Field(
        default=None,
        description="benchmarks whose attribution picks targeted sets; null = every benchmark stage 02 scored",
    )
    topics: list[str] | Literal["auto"] | None = Field(
        default=None,
        description="target topics (any taxonomy "
        "form); auto: each benchmark's highest-attribution topics "
        "under stage 03's reading (the topics of its top bins, "
        "auto_topics of them); null = every topic of the working set "
        "that has eligible documents (the paper: all 24)",
    )
    auto_topics: int = Field(
        default=2,
        gt=0,
        description="topics per benchmark when topics is auto: those of the "
        "benchmark's highest-z bins, in rank order (the paper chose Literature for SocialIQA)",
    )
    targeted: Literal["top", "split"] = Field(
        default="top",
        description="top: every seed forgets the same top `docs` documents (the paper's protocol; "
        "a topic's pairs share that set, so the statistics treat them as one cluster); split: the top seeds x docs "
        "documents are dealt by a seeded shuffle into one disjoint targeted set per seed, so pairs share no "
        "document and each is its own cluster",
    )
    constructions: list[Literal["bin", "document"]] = Field(
        default=["bin", "document"],
        min_length=1,
        description="bin: inside the topic's highest-attribution bin; "
        "document: across the whole topic (the paper runs both)",
    )
    seeds: int = Field(
        default=3,
        gt=0,
        description="seeds per (benchmark, topic, construction) pair (paper: 3); seed i is the study seed + i",
    )
    docs: int = Field(
        default=200,
        gt=0,
        description="documents per forget set: the top ones by attribution, and as many random ones (paper: 200)",
    )
    max_docs: int = Field(
        default=2000,
        gt=0,
        description="upper bound on a forget set, from the paper's "
        "configuration (its meaning there is not documented; here: docs may not exceed it)",
    )
    min_tokens: int = Field(
        default=512,
        ge=0,
        description="documents shorter than this (manifest tokens) are never forgotten (paper: 512 estimated tokens)",
    )
    token_tolerance: float | None = Field(
        default=0.10,
        ge=0,
        lt=1,
        description="a random set (drawn from the "
        "pool minus every targeted document of its topic; with targeted: split "
        "also disjoint from the other seeds' random sets): its tokens stay "
        "within this share of its targeted set's (paper: 10%); null: match the "
        "count only",
    )
    match_attempts: int = Field(
        default=1000,
        gt=0,
        description="seeded uniform draws tried for a token-matched "
        "random set; the closest is kept, and reported, if none is within tolerance",
    )
    global_control: bool = Field(
        default=True,
        description="also forget a same-size uniform sample of the whole "
        "working set (any topic), on the same retain set as the pair it is subtracted "
        "from: gamma_net = gamma_topic - gamma_global",
    )

    @field_validator("benchmarks")
    @classmethod
    def _benchmarks_known(cls, names):
        return names if names is None else _check_benchmarks(names)

    @field_validator("topics")
    @classmethod
    def _topics_known(cls, topics):
        if isinstance(topics, list):
            for topic in topics:
                try:
                    load().topics.get(topic)
                except ProvenanceError as exc:
                    raise ValueError(str(exc)) from None
        return topics

    @model_validator(mode="after")
    def _size_capped(self):
        if self.docs > self.max_docs:
            raise ValueError(f"docs ({self.docs}) exceeds max_docs ({self.max_docs})")
        return self


class LoRA(Section):
    """The adapter trained by every run (peft ``LoraConfig``); module names match OLMo3 and Llama / SmolLM2."""

    r: int = Field(default=8, gt=0)
    alpha: int = Field(default=16, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default=["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1)


class Training(Section):
    """One unlearning run: the method, the optimizer, batches, the retain set and the stop rule."""

    method: Literal["ngdiff", "graddiff"] = Field(
        default="ngdiff", description="ngdiff: step along g_R/|g_R| - g_F/|g_F|; graddiff: loss = -NLL_F + NLL_R"
    )
    lora: LoRA = LoRA()
    lr: float = Field(default=1e-5, gt=0, description="AdamW, constant, no warm-up (paper)")
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=4, gt=0, description="documents per micro-batch, forget and retain each")
    grad_accumulation: int = Field(default=4, gt=0, description="micro-batches per step")
    max_length: int = Field(default=2048, gt=0, description="tokens per document (longer ones are truncated)")
    max_steps: int = Field(default=5000, gt=0, description="steps per run unless the stop rule ends it first")
    retain_docs_per_topic: int = Field(
        default=1000, gt=0, description="retain set: documents drawn from each non-target topic (paper: 1,000)"
    )
    retain_resample_steps: int = Field(default=200, gt=0, description="the retain set is drawn again this often")
    stop_ratio: float = Field(
        default=0.9,
        gt=0,
        description="stop once the stop benchmarks' mean accuracy falls below this share of the base model's",
    )
    stop_check_every: int | None = Field(
        default=50,
        gt=0,
        description="steps between stop checks (an evaluation of the stop benchmarks); null: never check",
    )
    stop_benchmarks: list[str] = Field(default=MMLU, min_length=1)
    stop_share: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="share of each stop benchmark's eval items held "
        "out for the stop checks (a seeded split): they are never scored, so the stop rule "
        "never selects on the items a run is scored on. Only when stop checks run",
    )
    stop_items: int | None = Field(
        default=None,
        gt=0,
        description="items per stop benchmark in a stop check: the "
        "first of the held-out ones (null: all held out). Not in the paper's "
        "configuration; on full MMLU, 100 checks cost more than 5,000 training steps "
        "(bench/bench_unlearning.py)",
    )
    dtype: Literal["float32", "bfloat16"] = Field(default="bfloat16", description="model weights and compute")

    @field_validator("stop_benchmarks")
    @classmethod
    def _stop_known(cls, names):
        return _check_benchmarks(names)


class Evaluation(Section):
    """lm-eval of the base model and of every unlearned one, on the world's local tasks."""

    shots: dict[str, int] = Field(
        default={"SocialIQA": 3, "MMLU Social Sciences": 4, "ARC-Challenge": 4, "MMLU STEM": 4},
        description="few-shot examples per benchmark (paper)",
    )
    limit: int | None = Field(
        default=None,
        gt=0,
        description="scored items per benchmark (the first ones of the "
        "world's task, less a stop benchmark's held-out stop items); null: all of them",
    )
    batch_size: int = Field(default=16, gt=0)

    @field_validator("shots")
    @classmethod
    def _every_benchmark(cls, shots):
        if set(shots) != set(BY_NAME) or min(shots.values()) < 0:
            raise ValueError(f"give a non-negative number of shots for exactly {list(BY_NAME)}")
        return shots


class Slurm(Section):
    """The job array script written for ``launcher: slurm`` (generated, never submitted by the stage)."""

    partition: str | None = None
    time: str = Field(default="12:00:00", description="wall-clock limit of one array task (one pair of runs)")
    gpus_per_task: int = Field(default=1, ge=0)
    cpus_per_task: int = Field(default=8, gt=0)
    mem: str = Field(default="64G")
    max_parallel: int | None = Field(default=None, gt=0, description="array throttle (%N); null: no limit")
    setup: list[str] = Field(default=[], description="shell lines run before each task (modules, venv, HF_HOME)")


class Unlearning(Section):
    """Stage 05: forget the top-attributed documents of a topic vs matched random ones, and measure the damage."""

    forget: ForgetSets = ForgetSets()
    training: Training = Training()
    evaluation: Evaluation = Evaluation()
    launcher: Literal["local", "slurm"] = Field(
        default="local",
        description="local: runs one after another in "
        "the stage; slurm: write a job array script and collect its results",
    )
    slurm: Slurm = Slurm()
    bootstrap: int = Field(
        default=2000,
        gt=0,
        description="resamples of the paired differences' median CI "
        "(paper; the headline resamples clusters of pairs, the paper's column pairs)",
    )
    confidence: float = Field(default=0.95, gt=0, lt=1)

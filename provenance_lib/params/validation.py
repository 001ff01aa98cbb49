"""The known-answers validation (``python -m provenance_lib validate params/validation.yaml``): which testbed worlds
are built and run through stages 01-03, and what is tabulated. Not a study section: a validation runs many studies,
each with the study params it names plus the overrides that make one world."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from .base import Section
from .binning import VARIANTS, Variant

DEFAULT_SETTING = "default"
SETTING_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class Retraining(Section):
    """The counterfactual ground truth: the attributed base model retrained with bins left out
    (``provenance_lib.counterfactual``)."""

    seeds: list[int] = Field(
        default=[0],
        description=(
            "planted worlds (of ``seeds``) whose model is retrained; each retrain repeats its pretraining up to the "
            "attributed step (about a minute on one thread here), so the count below times the seeds is the cost"
        ),
    )
    other_bins: int = Field(
        default=24,
        ge=0,
        description=(
            "leave-one-bin-out beside every planted bin: this many other non-empty bins, one per size stratum"
        ),
    )
    subsets: int = Field(
        default=32,
        ge=0,
        description=(
            "random bin subsets retrained, each keeping ``keep`` of the non-empty bins: the bin-level LDS correlates "
            "each reading's predicted effect with the measured one over them"
        ),
    )
    keep: float = Field(default=0.5, gt=0, lt=1, description="share of the non-empty bins a subset keeps")
    noise_seeds: list[int] = Field(
        default=[101, 102],
        description=(
            "the full data retrained from these seeds' initialization and batch order: how much a benchmark's score "
            "moves by chance (the noise ceiling)"
        ),
    )
    seed: int = Field(default=0, description="draws the other bins and the subsets")
    bootstrap: int = Field(default=1000, ge=0, description="bootstrap replicates over subsets for the LDS interval")


class Validation(Section):
    study: str = Field(
        default="testbed.yaml",
        description=(
            "the study params every world starts from (relative to the validation file): a testbed, whose "
            "ground_truth.json holds the known answers"
        ),
    )
    seeds: list[int] = Field(
        default=[0, 1, 2],
        min_length=1,
        description=(
            "planted worlds at the study's dose: each seed draws its own planted bins by the testbed's rule, so a "
            "result that holds across seeds is not tuned to one placement (at least 3)"
        ),
    )
    null_seeds: list[int] = Field(
        default=[0, 1, 2],
        description=(
            "null worlds (world.planted_token_share 0): the same ordinary text and would-be planted bins as the seed's "
            "planted world, attributed at that twin's checkpoint (its own accuracy band would pick noise); they "
            "calibrate the p-values and measure the false-discovery rate"
        ),
    )
    doses: list[float] = Field(
        default=[0.0025, 0.005],
        description=(
            "further planted token shares for the dose-response, on dose_seeds; the study's own dose (seeds) and the "
            "null worlds (dose 0) complete the curve. Above ~0.018 the testbed's 4 planted bins cannot hold the dose "
            "at planted_line_share 0.6 (the builder refuses it with the fix)"
        ),
    )
    dose_seeds: list[int] = Field(default=[0], description="seeds of the dose-response worlds")
    sham_seeds: list[int] = Field(
        default=[0, 1, 2],
        description=(
            "sham-planted worlds (world.planted_content sham): the seed's planted bins, carriers, dose, line and "
            "question shares, but carrying a never-evaluated benchmark's statements; attributed at the planted twin's "
            "checkpoint. A reading that ranks a sham bin first for a benchmark finds planting, not provenance"
        ),
    )
    variants: list[Variant] = Field(
        default_factory=lambda: list(VARIANTS),
        min_length=1,
        description=(
            "stage 03's aggregation variants tabulated (they become every world's binning.variants); 'paper', the "
            "paper's bin mean -> z, is always among them"
        ),
    )
    recall_k: int | None = Field(
        default=None,
        gt=0,
        description=(
            "planted-document recall@k; null: k = the benchmark's carrier documents in the working set, so recall "
            "equals precision (R-precision) and 1.0 means the top k are exactly the carriers"
        ),
    )
    overrides: list[str] = Field(
        default=[],
        description=(
            "-p overrides applied to every world, e.g. binning.bootstrap=200 (a world's own seed, dose and "
            "attribute_at come after them)"
        ),
    )
    retraining: Retraining = Retraining()
    gradient_settings: dict[str, list[str]] = Field(
        default={DEFAULT_SETTING: []},
        description=(
            "stage 02 settings tabulated side by side: name -> gradients.* overrides, e.g. {default: [], dim64: "
            "[gradients.projection_dim=64], adam_v: [gradients.v.factored=false]}. 'default' (the study's own "
            "settings, no overrides) is always there and first; every other setting reruns stages 01-03 of every "
            "world in <world>@<name>/ on the default run's world, which is not built again"
        ),
    )

    setting_seeds: list[int] | None = Field(
        default=None,
        description=(
            "seeds whose worlds (planted, sham, null, dose) run the stage 02 settings beside 'default'; null: every "
            "world. A setting costs a stage 02 and 03 run per world, so on a small machine a few seeds may be all it "
            "can afford: the table says how many cells each setting has"
        ),
    )

    @model_validator(mode="after")
    def _retrained_worlds_are_planted_seeds(self):
        stray = sorted(set(self.retraining.seeds) - set(self.seeds))
        if stray:
            raise ValueError(f"retraining.seeds {stray} are not planted seeds (seeds: {self.seeds})")
        return self

    @field_validator("doses")
    @classmethod
    def _doses_plant_something(cls, doses):
        if any(not 0 < d <= 0.2 for d in doses):
            raise ValueError("doses are planted token shares in (0, 0.2]; the null worlds are dose 0")
        return doses

    @field_validator("gradient_settings")
    @classmethod
    def _default_first_and_stage_02_only(cls, settings):
        if settings.get(DEFAULT_SETTING):
            raise ValueError(
                f"'{DEFAULT_SETTING}' is the study's own stage 02 settings and takes no overrides; "
                "name the setting otherwise (overrides for every world go in 'overrides')"
            )
        for name, overrides in settings.items():
            if not SETTING_NAME.fullmatch(name):
                raise ValueError(f"setting name {name!r} must match {SETTING_NAME.pattern} (it names a folder)")
            stray = [o for o in overrides if not o.startswith("gradients.")]
            if stray:  # any other section would make another world or another stage 03, not a stage 02 setting
                raise ValueError(f"setting {name!r}: {stray} are not gradients.* overrides")
        return {DEFAULT_SETTING: [], **{k: v for k, v in settings.items() if k != DEFAULT_SETTING}}

    @field_validator("variants")
    @classmethod
    def _paper_first(cls, variants):
        return ["paper", *(v for v in dict.fromkeys(variants) if v != "paper")]

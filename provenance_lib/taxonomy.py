"""The WebOrganizer taxonomy (Wettig et al. 2025): 24 topics x 24 formats = 576 bins.

A bin id is ``topic_id * 24 + format_id`` (topic-major), so ids 0-575 read like the 24 x 24 heatmaps the paper
draws with topics as rows. Labels are accepted in every form the study meets them: the classifier's integer id, the
taxonomy name ("Customer Support Page"), the short name of the paper's figures ("Customer Support"), the snake-case
key (``customer_support``) and the Dolma3 metadata form (``__label__customer_support``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import yaml

from .errors import ProvenanceError

LABEL_PREFIX = "__label__"


@dataclass(frozen=True)
class Label:
    axis: str  # "topic" or "format"
    id: int
    name: str
    short: str
    key: str

    @property
    def dolma_label(self) -> str:
        return LABEL_PREFIX + self.key


class Axis:
    """One of the two label axes, with lookups from any accepted form."""

    def __init__(self, axis: str, entries: list[dict]):
        self.axis = axis
        self.labels = [Label(axis, e["id"], e["name"], e["short"], e["key"]) for e in entries]
        if [label.id for label in self.labels] != list(range(len(self.labels))):
            raise ProvenanceError(f"taxonomy {axis} ids are not 0..{len(self.labels) - 1} in order")
        self._lookup: dict[str, Label] = {}
        for label in self.labels:
            for form in (label.name, label.short, label.key, label.dolma_label):
                self._lookup[form.casefold()] = label

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        return iter(self.labels)

    def get(self, value: str | int) -> Label:
        """The label for an id, name, short name, key or ``__label__key``; a clear error for anything else."""
        if isinstance(value, (int,)) and not isinstance(value, bool):
            if 0 <= value < len(self.labels):
                return self.labels[value]
        elif isinstance(value, str) and value.casefold() in self._lookup:
            return self._lookup[value.casefold()]
        raise ProvenanceError(
            f"unknown WebOrganizer {self.axis} label {value!r}",
            f"use an id 0-{len(self.labels) - 1}, a name, short name, key or __label__<key>, "
            f"e.g. {self.labels[0].name!r} / {self.labels[0].key!r}",
        )

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def shorts(self) -> list[str]:
        return [label.short for label in self.labels]

    @property
    def keys(self) -> list[str]:
        return [label.key for label in self.labels]


class Taxonomy:
    def __init__(self, spec: dict):
        self.topics = Axis("topic", spec["topics"])
        self.formats = Axis("format", spec["formats"])
        self.n_bins = len(self.topics) * len(self.formats)

    def axis(self, name: str) -> Axis:
        """``"topic"`` or ``"format"`` -> that axis."""
        if name not in ("topic", "format"):
            raise ProvenanceError(f"unknown label axis {name!r}", "use 'topic' or 'format'")
        return self.topics if name == "topic" else self.formats

    def bin_id(self, topic: str | int, format: str | int) -> int:
        return self.topics.get(topic).id * len(self.formats) + self.formats.get(format).id

    def bin_labels(self, bin_id: int) -> tuple[Label, Label]:
        if not (isinstance(bin_id, int) and 0 <= bin_id < self.n_bins):
            raise ProvenanceError(f"bin id {bin_id!r} is outside 0-{self.n_bins - 1}")
        topic_id, format_id = divmod(bin_id, len(self.formats))
        return self.topics.labels[topic_id], self.formats.labels[format_id]

    def bin_name(self, bin_id: int, short: bool = True) -> str:
        """``"Literature x Customer Support"``: the form the paper (and paper_reported.yaml) names bins in."""
        topic, fmt = self.bin_labels(bin_id)
        return f"{topic.short} x {fmt.short}" if short else f"{topic.name} x {fmt.name}"

    def parse_bin(self, text: str) -> int:
        """Inverse of ``bin_name``: ``"Literature x Customer Support"`` (any label forms either side) -> bin id."""
        parts = text.split(" x ")
        if len(parts) != 2:
            raise ProvenanceError(f"bin name {text!r} is not of the form '<topic> x <format>'")
        return self.bin_id(parts[0].strip(), parts[1].strip())


@cache
def load() -> Taxonomy:
    """The taxonomy shipped with the package (a copy of shared/reference/weborganizer_taxonomy.yaml)."""
    text = files(__package__).joinpath("reference/weborganizer_taxonomy.yaml").read_text()
    return Taxonomy(yaml.safe_load(text))

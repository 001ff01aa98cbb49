"""The annotate step of stage 01: what needs a document's text beyond the map, computed for unique documents only
(a third of the documents read at the paper's duplication rate): the WebOrganizer classifiers' labels where the
metadata has none (Dolma3 has no formats), and base-model token counts. Each classifier runs on its task's own
device, and each shard's results are cached, so a task that is run again does not classify again."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import numpy as np

from ... import corpus
from ...artifacts import atomic_path
from ...errors import ProvenanceError
from ...labels import load_classifier
from ...taxonomy import load as load_taxonomy
from .index import token_counter
from .job import ROW_BITS, SamplingJob, ShardRef


# ----------------------------------------------------------------------------------------------- devices
def classifier_device(requested: str, task_rank: int, environ: Mapping[str, str], cuda_devices: int) -> str:
    """``cpu`` or ``cuda:N`` for a classifier of task ``task_rank``: N is ``LOCAL_RANK`` when a launcher set it,
    else the task's rank, modulo the GPUs this task sees. A Slurm array task sees only its own GPU
    (CUDA_VISIBLE_DEVICES), so it gets cuda:0; local tasks on a multi-GPU node spread over the GPUs."""
    if requested == "cpu" or (requested == "auto" and cuda_devices == 0):
        return "cpu"
    if cuda_devices == 0:
        raise ProvenanceError(
            "a classifier asks for device cuda, but this task sees no GPU",
            "give the annotate step GPUs (sampling.executor.gpus_per_task) or set the classifier's device to auto",
        )
    index = int(environ["LOCAL_RANK"]) if environ.get("LOCAL_RANK") else task_rank
    return f"cuda:{index % cuda_devices}"


def load_on_device(source: Any, axis: str, task_rank: int):
    """A classifier from its spec (or an object with predict_proba, as is), on the task's device."""
    if source is None or hasattr(source, "predict_proba"):
        return source
    requested = getattr(source, "device", "cpu")  # the stand-in (centroid) has no device: it runs on the CPU
    if requested != "cpu":
        import torch

        device = classifier_device(requested, task_rank, os.environ, torch.cuda.device_count())
        if device != "cpu":
            torch.cuda.set_device(int(device.split(":")[1]))  # "cuda" inside the classifier is this device
        source = source.model_copy(update={"device": device.split(":")[0]})
    return load_classifier(source, axis)


# ----------------------------------------------------------------------------------------------- annotate
def needs_annotation(job: SamplingJob) -> bool:
    return job.tokens == "base_model" or job.topic_classifier is not None or job.format_classifier is not None


class Annotator:
    """Fills in labels and token counts of requested rows (ROW arrays), shard by shard, with a cache per shard."""

    def __init__(self, job: SamplingJob, task_rank: int, cache_dir: Path):
        self.job, self.task_rank, self.cache_dir = job, task_rank, cache_dir
        self.sources = {"topic": job.topic_classifier, "format": job.format_classifier}
        self.key = json.dumps(
            {
                "tokens": job.tokens,
                "tokenizer": job.tokenizer,
                "batch_size": job.batch_size,
                **{axis: describe(source) for axis, source in self.sources.items()},
            },
            sort_keys=True,
        )
        self._classifiers: dict[str, Any] = {}
        self._count_tokens = None

    def annotate(self, shard: ShardRef, requests: np.ndarray, counts: Counter) -> np.ndarray:
        """``requests`` (the shard's rows needing annotation, in row order) with topic, format and tokens filled."""
        cache = self.cache_dir / f"{shard.name}.npz"  # by name: valid across plans (positions hold ordinals)
        stat = shard.path.stat()
        key = f"{self.key} {stat.st_size} {stat.st_mtime_ns}"  # a changed shard is classified again
        cached = self._read_cache(cache, requests, key)
        if cached is not None:
            rows, found = cached
        else:
            rows, found = self._compute(shard, requests)
            with atomic_path(cache) as tmp, open(tmp, "wb") as f:
                np.savez(f, rows=rows, key=key, counts=json.dumps(found))
        counts.update(found)
        return rows

    @staticmethod
    def _read_cache(path: Path, requests: np.ndarray, key: str) -> tuple[np.ndarray, dict] | None:
        if not path.is_file():
            return None
        with np.load(path) as data:
            rows = data["rows"]
            if str(data["key"]) != key or not np.array_equal(_row_numbers(rows), _row_numbers(requests)):
                return None
            rows["position"] = requests["position"]
            return rows, json.loads(str(data["counts"]))

    def _compute(self, shard: ShardRef, requests: np.ndarray) -> tuple[np.ndarray, dict]:
        rows, found = requests.copy(), Counter()
        wanted = _row_numbers(requests)
        batch: list[tuple[int, dict]] = []
        i = 0
        for row, doc in enumerate(corpus.iter_shard(shard.path)):
            if i < len(wanted) and row == wanted[i]:
                batch.append((i, doc))
                i += 1
                if len(batch) == self.job.batch_size:
                    self._annotate_batch(batch, rows, shard, found)
                    batch = []
            if i == len(wanted):
                break
        if batch:
            self._annotate_batch(batch, rows, shard, found)
        if i != len(wanted):
            raise ProvenanceError(
                f"{shard.name} changed while sampling: it has fewer documents than when indexed",
                "do not modify the corpus during a run; run the stage again",
            )
        return rows, dict(found)

    def _annotate_batch(self, batch: list[tuple[int, dict]], rows: np.ndarray, shard: ShardRef, found: Counter):
        index = np.array([i for i, _ in batch])
        for axis, source in self.sources.items():
            missing = index[rows[axis][index] < 0]
            if source is not None and len(missing):
                docs = [doc for i, doc in batch if rows[axis][i] < 0]
                rows[axis][missing] = self._predict(self.classifier(axis), axis, docs, shard)
                found[f"{axis}_from_classifier"] += len(missing)
        if self.job.tokens == "base_model":
            if self._count_tokens is None:
                self._count_tokens = token_counter(self.job.tokens, self.job.tokenizer)
            rows["tokens"][index] = self._count_tokens([doc["text"] for _, doc in batch])

    def classifier(self, axis: str):
        """Loaded when first needed: a task whose shards are all cached never loads it."""
        if axis not in self._classifiers:
            self._classifiers[axis] = load_on_device(self.sources[axis], axis, self.task_rank)
        return self._classifiers[axis]

    @staticmethod
    def _predict(classifier: Any, axis: str, docs: list[dict], shard: ShardRef) -> np.ndarray:
        texts = [doc["text"] for doc in docs]
        urls = [(doc.get("metadata") or {}).get("url") or doc.get("url") or "" for doc in docs]
        probs = np.asarray(classifier.predict_proba(texts, urls))
        n_labels = len(load_taxonomy().axis(axis))
        if probs.shape != (len(docs), n_labels):
            raise ProvenanceError(
                f"the {axis} classifier returned shape {probs.shape} for {len(docs)} documents of {shard.name}",
                f"predict_proba must return one row of {n_labels} probabilities per document, in taxonomy id order",
            )
        return probs.argmax(axis=1)


def _row_numbers(rows: np.ndarray) -> np.ndarray:
    return rows["position"] & np.uint64((1 << ROW_BITS) - 1)


def describe(source: Any) -> str | None:
    """What a classifier is, for the plan and the cache key: its spec, or the class of a given object."""
    if source is None:
        return None
    if hasattr(source, "model_dump_json"):
        return source.model_dump_json()
    return f"{type(source).__module__}.{type(source).__qualname__}"

"""Corpus shards in the Dolma3 schema: one reader and one writer for every world.

A shard is a zstd-compressed JSON-lines file (``*.jsonl.zst``); each line is a document::

    {"id": str, "text": str, "source": str, "metadata": {
        "weborganizer": {"__label__<topic key>": prob, ...},      # Dolma3 ships topic probabilities ...
        "weborganizer_max": "__label__<topic key>",               # ... and the arg-max topic
        "weborganizer_format": {"__label__<format key>": prob},   # formats are not in Dolma3: the study adds them
        "weborganizer_format_max": "__label__<format key>"}}      # (FormatClassifier, or the world's own label)

Reading streams line by line, so memory does not grow with the shard. A corrupt, truncated or zero-length shard
raises one ``ProvenanceError`` naming the shard and the line.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from collections.abc import Iterable, Iterator

import orjson
import zstandard

from .artifacts import atomic_path
from .errors import ProvenanceError

SHARD_SUFFIX = ".jsonl.zst"
TOPIC_PROBS, TOPIC_MAX = "weborganizer", "weborganizer_max"
FORMAT_PROBS, FORMAT_MAX = "weborganizer_format", "weborganizer_format_max"


def write_shard(path: str | os.PathLike, documents: Iterable[dict], level: int = 3) -> Path:
    """Write documents as one shard (atomically; byte-identical for identical documents)."""
    path = Path(path)
    if not path.name.endswith(SHARD_SUFFIX):
        raise ProvenanceError(f"shard name {path.name!r} must end in {SHARD_SUFFIX}")
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as raw, compressor.stream_writer(raw) as out:
        for doc in documents:
            out.write((json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n").encode())
    return path


def iter_shard(path: str | os.PathLike) -> Iterator[dict]:
    """Documents of one shard, in file order; a clear error for a corrupt line or a truncated file."""
    path = Path(path)
    line_no = 0
    try:
        with open(path, "rb") as raw:
            if os.fstat(raw.fileno()).st_size == 0:  # even a shard of no documents holds a zstd frame
                raise ProvenanceError(
                    f"corrupt shard {path}: the file is empty (0 bytes)",
                    "the download or write was cut off: re-download or regenerate it",
                )
            reader = io.BufferedReader(_FrameReader(raw), buffer_size=1 << 16)
            for line_no, line in enumerate(reader, start=1):
                try:
                    doc = orjson.loads(line)  # 3x json.loads; what it refuses goes through json for the same verdict
                except orjson.JSONDecodeError:
                    if not line.strip():  # a blank line (tested only here: most lines are documents)
                        continue
                    doc = _parse_strictly(line, path, line_no)
                _check_document(doc, path, line_no)
                yield doc
    except zstandard.ZstdError as exc:
        raise ProvenanceError(
            f"corrupt shard {path}: zstd stream broken after line {line_no} ({exc})",
            "the file is truncated or not zstd: re-download or regenerate it",
        ) from None


def _parse_strictly(line: bytes, path: Path, line_no: int) -> object:
    """json's reading of a line orjson refused: json also accepts NaN, integers over 64 bits and lone surrogates."""
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProvenanceError(f"corrupt shard {path}: line {line_no} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ProvenanceError(
            f"corrupt shard {path}: line {line_no} is not valid JSON ({exc.msg})",
            "re-download or regenerate this shard, or move it out of the corpus folder",
        ) from None


class _FrameReader(io.RawIOBase):
    """Decompressed bytes of a zstd file, frame after frame. A file that ends inside a frame (truncated) is an
    error: python-zstandard's stream_reader ends such a stream quietly, as if the shard were shorter."""

    def __init__(self, raw):
        self._raw, self._dctx = raw, zstandard.ZstdDecompressor()
        self._frame, self._in_frame = self._dctx.decompressobj(), False
        self._out, self._pos = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._pos == len(self._out):
            chunk = self._raw.read(1 << 16)
            if not chunk:
                if self._in_frame:
                    raise zstandard.ZstdError("the file ends inside a frame (truncated)")
                return 0
            self._out, self._pos = b"", 0
            while chunk:
                self._in_frame = True
                self._out += self._frame.decompress(chunk)
                chunk = self._frame.unused_data if self._frame.eof else b""
                if self._frame.eof:
                    self._frame, self._in_frame = self._dctx.decompressobj(), False
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n


def _check_document(doc: object, path: Path, line_no: int) -> None:
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not isinstance(doc.get("text"), str):
        raise ProvenanceError(
            f"corrupt shard {path}: line {line_no} lacks a string 'id' and 'text' (Dolma3 schema)",
            "check the shard's schema against provenance_lib/corpus.py",
        )
    if not isinstance(doc.get("metadata") or {}, dict):
        raise ProvenanceError(
            f"corrupt shard {path}: line {line_no} (id {doc['id']!r}): 'metadata' is a "
            f"{type(doc['metadata']).__name__}, not a mapping (Dolma3 schema)",
            "check the shard's schema against provenance_lib/corpus.py",
        )


def list_shards(root: str | os.PathLike) -> list[Path]:
    """All shards under a folder, sorted by path (so every process agrees on the order)."""
    root = Path(root)
    shards = sorted(root.rglob("*" + SHARD_SUFFIX)) if root.is_dir() else []
    if not shards:
        raise ProvenanceError(f"no corpus shards (*{SHARD_SUFFIX}) under {root}", "build the world first")
    return shards


def named_shards(entries: Iterable[str | os.PathLike]) -> list[tuple[str, Path]]:
    """(name, path) of every shard of the corpus folders (or shard files) ``entries``, sorted by name. A shard is
    named relative to the parent of its entry, so ``world/corpus/a.jsonl.zst`` is ``corpus/a.jsonl.zst``: the name
    stage 01 releases in its manifest, the same on every machine."""
    shards = []
    for entry in map(Path, entries):
        found = [entry] if entry.is_file() else list_shards(entry)
        shards += [(path.relative_to(entry.parent).as_posix(), path) for path in found]
    return sorted(shards)


def shard_listing(entries: Iterable[str | os.PathLike]) -> list[dict]:
    """Every shard's name (``named_shards``) and size: what a world records of its corpus, and stage 01 checks."""
    return [{"shard": name, "bytes": path.stat().st_size} for name, path in named_shards(entries)]


def topic_label(doc: dict) -> str | None:
    """The document's topic label as ``__label__<key>`` (arg-max of the probabilities if no max field), or None."""
    return _label(doc.get("metadata") or {}, TOPIC_PROBS, TOPIC_MAX)


def format_label(doc: dict) -> str | None:
    return _label(doc.get("metadata") or {}, FORMAT_PROBS, FORMAT_MAX)


def _label(metadata: dict, probs_field: str, max_field: str) -> str | None:
    if metadata.get(max_field):
        return metadata[max_field]
    probs = metadata.get(probs_field)
    return max(probs, key=probs.get) if probs else None


def label_metadata(
    topic_key: str | None, format_key: str | None, topic_probs: dict | None = None, format_probs: dict | None = None
) -> dict:
    """The metadata block for a labelled document; one-hot probabilities when only the label is known."""
    meta = {}
    if topic_key is not None:
        meta[TOPIC_PROBS] = topic_probs or {f"__label__{topic_key}": 1.0}
        meta[TOPIC_MAX] = f"__label__{topic_key}"
    if format_key is not None:
        meta[FORMAT_PROBS] = format_probs or {f"__label__{format_key}": 1.0}
        meta[FORMAT_MAX] = f"__label__{format_key}"
    return meta

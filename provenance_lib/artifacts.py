"""Artifact I/O: every file a stage writes goes through here, so it is atomic and hashable.

A file is written to a temporary name in the same folder and renamed into place, so a killed run leaves either the
old file or the new one, never a half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy as np

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o644)  # mkstemp makes files private (0600); artifacts are meant to be shared and released
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Sorted keys and a trailing newline: the same content always gives the same bytes (and hash). numpy numbers
    and arrays are written as numbers (``json_value``); any other non-JSON type is refused, never stringified."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=json_value) + "\n")


def json_value(obj: Any) -> Any:
    """The JSON form of the non-JSON values an artifact may hold: numpy scalars and arrays become numbers and lists,
    paths become strings. Anything else is a ``TypeError``: ``default=str`` would write ``"3"`` for
    ``numpy.int64(3)`` and a later reader would compute with a string."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(
        f"{type(obj).__module__}.{type(obj).__qualname__} is not JSON: convert it before writing (got {obj!r:.80})"
    )


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_parquet(path: str | os.PathLike, table) -> Path:
    """Write a pyarrow Table or pandas DataFrame; byte-identical for identical content (no pandas index metadata
    of row ranges, fixed writer settings)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True, store_schema=True)
    return Path(path)


def savefig(path: str | os.PathLike, fig) -> Path:
    """Save a matplotlib figure atomically; PNG metadata without a timestamp so reruns hash the same."""
    with atomic_path(path) as tmp:
        fig.savefig(
            tmp,
            format=Path(path).suffix.lstrip("."),
            dpi=150,
            bbox_inches="tight",
            metadata={"Software": None} if str(path).endswith(".png") else None,
        )
    return Path(path)


def replace_dir(new: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move the finished folder ``new`` onto ``target``. A folder cannot be renamed onto a non-empty one, so the
    old copy is first renamed aside to ``<target>.old``: at every instant ``target`` or ``<target>.old`` holds a
    complete copy, and ``recover_dir`` (run first here, and by the runner before it reads a run) puts the old copy
    back if a kill came between the two renames. Nothing deletes the only complete copy."""
    new, target = Path(new), Path(target)
    aside = recover_dir(target)
    if target.exists():
        os.replace(target, aside)
    os.replace(new, target)
    shutil.rmtree(aside, ignore_errors=True)
    return target


def link_or_copy(source: str, target: str) -> None:
    """A hard link where the file system allows one (released adapters, shared validation worlds: large, never
    modified in place), else a copy. Usable as ``shutil.copytree``'s ``copy_function``."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def recover_dir(target: str | os.PathLike) -> Path:
    """Finish what an interrupted ``replace_dir`` left: ``<target>.old`` without ``target`` is the old copy, renamed
    aside just before the kill, and goes back; beside a complete ``target`` it is leftover and is removed. Returns
    the ``.old`` path."""
    import shutil

    target = Path(target)
    aside = target.with_name(target.name + ".old")
    if aside.exists():
        if target.exists():
            shutil.rmtree(aside)
        else:
            os.replace(aside, target)
    return aside


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=json_value).encode()).hexdigest()


def tree_files(root: str | os.PathLike) -> list[Path]:
    """Every file under ``root`` (temporary files excluded), sorted."""
    root = Path(root)
    return (
        [p for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(TMP_PREFIX)]
        if root.exists()
        else []
    )


def hash_tree(root: str | os.PathLike, relative_to: str | os.PathLike | None = None) -> dict[str, str]:
    """sha256 of every file under ``root`` (temporary files excluded), keyed by path relative to ``relative_to``."""
    base = Path(relative_to) if relative_to is not None else Path(root)
    return {str(p.relative_to(base)): sha256_file(p) for p in tree_files(root)}


# ----------------------------------------------------------------------------------------------- checking files
def file_stamp(path: str | os.PathLike) -> tuple[int, int]:
    """(size, mtime in ns): what changes when a file is written, read without reading the file."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def hash_and_stamp_tree(
    root: str | os.PathLike, named_as: str, skip: str | None = None
) -> tuple[dict[str, str], dict[str, tuple[int, int]]]:
    """``hash_tree`` and each file's ``file_stamp`` (taken before it is hashed: a write after the stamp shows as a
    changed stamp, never as an unchanged one beside a stale hash), keyed ``<named_as>/<path under root>``; the
    folder ``skip`` at the top of ``root`` is left out. A folder renamed afterwards keeps both (a rename moves no
    bytes and keeps every mtime)."""
    hashes, stamps = {}, {}
    for path in tree_files(root):
        under = path.relative_to(root)
        if skip is not None and under.parts[0] == skip:
            continue
        rel = f"{named_as}/{under.as_posix()}"
        stamps[rel] = file_stamp(path)
        hashes[rel] = sha256_file(path)
    return hashes, stamps


def changed_files(
    base: str | os.PathLike, hashes: dict[str, str], stamps: dict[str, tuple[int, int]] | None = None
) -> list[str]:
    """``missing: <path>`` / ``modified: <path>`` for each file of ``hashes`` (relative to ``base``) that is not the
    bytes it names. With ``stamps`` (the size and mtime each file had when it was hashed) the check is fast: a file
    whose size and mtime are unchanged is taken as unchanged, any other is hashed again, and ``stamps`` is brought
    up to date for a file whose bytes are the same (touched, copied). Without, every file is hashed."""
    problems = []
    for rel, expected in sorted(hashes.items()):
        path = Path(base) / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
            continue
        stamp = file_stamp(path)
        if stamps is not None and tuple(stamps.get(rel) or ()) == stamp:
            continue
        if sha256_file(path) != expected:
            problems.append(f"modified: {rel}")
        elif stamps is not None:
            stamps[rel] = stamp
    return problems

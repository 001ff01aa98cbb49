"""Artifact I/O: every file a stage writes goes through here, so it is atomic and hashable.

A file is written to a temporary name in the same folder and renamed into place, so a killed run leaves either the
old file or the new one, never a half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

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
    """Sorted keys and a trailing newline: the same content always gives the same bytes (and hash)."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


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
        fig.savefig(tmp, format=Path(path).suffix.lstrip("."), dpi=150, bbox_inches="tight",
                    metadata={"Software": None} if str(path).endswith(".png") else None)
    return Path(path)


def replace_dir(new: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move a finished folder onto ``target``, removing what was there: the old folder stays whole until the new
    one is complete."""
    import shutil

    new, target = Path(new), Path(target)
    trash = target.with_name(target.name + ".old")
    shutil.rmtree(trash, ignore_errors=True)
    if target.exists():
        os.replace(target, trash)
    os.replace(new, target)
    shutil.rmtree(trash, ignore_errors=True)
    return target


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def hash_tree(root: str | os.PathLike, relative_to: str | os.PathLike | None = None) -> dict[str, str]:
    """sha256 of every file under ``root`` (temporary files excluded), keyed by path relative to ``relative_to``."""
    root = Path(root)
    base = Path(relative_to) if relative_to is not None else root
    if not root.exists():
        return {}
    return {
        str(p.relative_to(base)): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(TMP_PREFIX)
    }

"""Artifact I/O: JSON that keeps numbers numbers, and a folder swap that a kill at any point cannot lose."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from provenance_lib import artifacts
from provenance_lib.artifacts import hash_tree, recover_dir, replace_dir, sha256_json, write_json


def test_write_json_writes_numpy_numbers_as_numbers_and_refuses_what_it_cannot_write(tmp_path):
    path = write_json(
        tmp_path / "a.json",
        {
            "n": np.int64(3),
            "x": np.float32(0.5),
            "flag": np.bool_(True),
            "row": np.arange(3, dtype=np.int16),
            "where": Path("a/b"),
        },
    )
    assert json.loads(path.read_text()) == {"n": 3, "x": 0.5, "flag": True, "row": [0, 1, 2], "where": "a/b"}
    assert sha256_json({"n": np.int64(3)}) == sha256_json({"n": 3})
    with pytest.raises(TypeError, match="builtins.set is not JSON"):
        write_json(tmp_path / "b.json", {"ids": {1, 2}})
    assert not (tmp_path / "b.json").exists()


def folder(path: Path, text: str) -> Path:
    (path / "sub").mkdir(parents=True)
    (path / "sub" / "file.txt").write_text(text)
    return path


@pytest.mark.parametrize("killed_after", [1, 2])
def test_replace_dir_loses_nothing_when_killed_between_its_steps(tmp_path, monkeypatch, killed_after):
    """A kill after the old copy is renamed aside (1) or after the new one is in place (2): the next call, or the
    runner's recovery, ends with exactly one complete copy and never deletes the only one."""
    target = folder(tmp_path / "stage", "old")
    folder(tmp_path / "new", "new")
    calls = []
    real_replace = os.replace

    def replace_then_die(src, dst):
        real_replace(src, dst)
        calls.append(dst)
        if len(calls) == killed_after:
            raise KeyboardInterrupt("killed")  # nothing after this point runs, as with SIGKILL

    monkeypatch.setattr(artifacts.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        replace_dir(tmp_path / "new", target)
    monkeypatch.setattr(artifacts.os, "replace", real_replace)
    aside = tmp_path / "stage.old"
    if killed_after == 1:
        assert not target.exists() and aside.is_dir()  # the window the old code deleted the old copy in
    recover_dir(target)
    expected = "old" if killed_after == 1 else "new"
    assert (target / "sub" / "file.txt").read_text() == expected and not aside.exists()

    # and the next swap works from there
    folder(tmp_path / "newer", "newer")
    replace_dir(tmp_path / "newer", target)
    assert (target / "sub" / "file.txt").read_text() == "newer"
    left = ["new", "stage"] if killed_after == 1 else ["stage"]  # "new" was never moved when the kill came first
    assert sorted(p.name for p in tmp_path.iterdir()) == left


def test_replace_dir_recovers_before_swapping(tmp_path):
    target, aside = tmp_path / "stage", tmp_path / "stage.old"
    folder(aside, "old")  # a kill left only the renamed-aside copy
    folder(tmp_path / "new", "new")
    replace_dir(tmp_path / "new", target)
    assert hash_tree(target) and (target / "sub" / "file.txt").read_text() == "new" and not aside.exists()

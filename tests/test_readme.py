"""The README's and the docs pages' commands, every one, as written. Each line of their ```bash blocks parses, and
names params, stages, runs, tools and make targets that exist (checked here in seconds); the slow test runs the
README's testbed ones, in order, in a copy of the project."""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from provenance_lib import params, runs
from provenance_lib.__main__ import build_parser
from provenance_lib.params import Validation

ROOT = Path(__file__).resolve().parents[1]
CLI = [".venv/bin/python", "-m", "provenance_lib"]
RUN_PARAMS = re.compile(r"^runs/([^/]+)/params\.yaml$")


DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def bash_commands(page: Path = ROOT / "README.md") -> list[list[str]]:
    blocks = re.findall(r"^ *```bash\n(.*?)^ *```", page.read_text(), re.S | re.M)
    return [words for block in blocks for line in block.splitlines() if (words := shlex.split(line, comments=True))]


def make_dry_run(words: list[str]) -> list[list[str]]:
    """``make -n``: the target exists and its recipe expands; returns the provenance_lib commands it would run."""
    done = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"{shlex.join(words)}: {done.stderr}"
    for word in words[1:]:
        if word.startswith("PARAMS="):
            assert (ROOT / word.split("=", 1)[1]).is_file(), word
    commands = [shlex.split(command) for line in done.stdout.splitlines() for command in line.split(" && ")]
    return [words for words in commands if "provenance_lib" in words]


def check_cli(argv: list[str], made: dict[str, tuple[str, list[str]]]) -> None:
    """The command parses and names what exists; ``made``: run name -> (params file, overrides) of the command
    that makes the run, for the commands that replay or verify it later."""
    args = build_parser().parse_args(argv)
    if args.command == "validate":
        params.load(ROOT / args.params, args.overrides, model=Validation)
        return
    if args.command in ("verify", "report", "release"):
        match = re.match(r"^runs/([^/]+)$", str(args.run_dir))
        assert match and match[1] in made, f"{args.command} {args.run_dir}: no command above makes that run"
        return
    replay = RUN_PARAMS.match(str(args.params))
    if replay:
        assert replay[1] in made, f"{args.params}: no command above makes that run"
        source, overrides = made[replay[1]]
        study = params.load(ROOT / source, [*overrides, *args.overrides])
    else:
        source, overrides = str(args.params), list(args.overrides)
        study = params.load(ROOT / source, overrides)
    if args.command == "run":
        stages = runs.study_stages(runs.discover_stages(ROOT / "notebooks"), study.stages)
        assert runs.select_stages(stages, args.stages.split(",") if args.stages else None, args.from_stage)
        made.setdefault(args.name or (replay[1] if replay else Path(source).stem), (source, overrides))


def check_commands(commands: list[list[str]], made: dict[str, tuple[str, list[str]]]) -> None:
    for words in commands:
        if words[0] == "make":
            for expanded in make_dry_run(words):
                check_cli(expanded[expanded.index("provenance_lib") + 1 :], made)
        elif words[:3] == CLI:
            check_cli(words[3:], made)
        else:
            assert words[0].startswith(".venv/bin/") and (ROOT / words[0]).exists(), (
                f"{shlex.join(words)}: run the CLI as {shlex.join(CLI)}, or a tool of the environment"
            )


def test_every_readme_command_parses_and_names_what_exists():
    commands = bash_commands()
    assert len(commands) >= 5
    made = {}
    check_commands(commands, made)
    assert {"testbed", "real-mini"} <= set(made)


@pytest.mark.parametrize("page", DOC_PAGES[1:], ids=lambda page: str(page.relative_to(ROOT)))
def test_every_docs_command_parses_and_names_what_exists(page):
    made = {}
    check_commands(bash_commands(), made)  # a page may verify or replay a run the README makes
    check_commands(bash_commands(page), made)


def project_copy(tmp_path: Path) -> Path:
    """What a clone holds, with this checkout's environment; make's environment prerequisites are made older than
    it, so no README command here reinstalls anything."""
    copy = tmp_path / "project"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".venv", "runs", ".git", "__pycache__", "*.egg-info", ".pytest_cache", "provenance_lib", "tests", "bench"
        ),
    )
    (copy / ".venv").symlink_to(ROOT / ".venv")
    for prerequisite in ("pyproject.toml", "requirements/lock.txt", "requirements/no-deps.txt"):
        os.utime(copy / prerequisite, (0, 0))
    return copy


@pytest.mark.slow
def test_readme_testbed_commands_run_as_written(tmp_path):
    project = project_copy(tmp_path)
    ran = 0
    for words in bash_commands():
        if words[0] == "make" and not any(w == "PARAMS=params/testbed.yaml" for w in words):
            continue  # `make test` would run this suite again, `make study` builds real-mini: checked above
        if "validate" in words:
            continue  # nine worlds: its 1-seed miniature is tests/test_validation.py's slow test
        done = subprocess.run(
            words, cwd=project, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        assert done.returncode == 0, f"{shlex.join(words)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        ran += 1
        if words[3:5] == ["run", "runs/testbed/params.yaml"] and len(words) == 5:  # the replay
            assert "running" not in done.stdout and done.stdout.count("unchanged: skipped") >= 1, done.stdout
        if "verify" in words:
            assert "OK" in done.stdout, done.stdout
    assert ran >= 6
    assert sorted(p.name for p in (project / "runs").iterdir()) == ["paper-released", "testbed"]  # never runs/params/

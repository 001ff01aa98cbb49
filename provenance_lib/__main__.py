"""Command line: ``python -m provenance_lib {run,world,verify,validate,report,release,estimate}`` (also installed
as ``provenance``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import ProvenanceError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ProvenanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"interrupted{f': {exc}' if str(exc) else ''} (run.json says so; run again to continue)", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m provenance_lib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the study's stage notebooks with papermill into runs/<name>/")
    run.add_argument("params", type=Path, help="params/<study>.yaml")
    run.add_argument(
        "-p",
        "--param",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one param, e.g. -p sampling.target_per_bin=50 (repeatable)",
    )
    run.add_argument("--name", help="run name (default: the params file's stem)")
    run.add_argument("--stages", help="comma-separated stages to run, e.g. 01,02 (default: all)")
    run.add_argument("--from", dest="from_stage", help="run this stage and every later one")
    run.add_argument("--force", action="store_true", help="re-run stages even if their record is current")
    run.add_argument(
        "--trust-code",
        action="store_true",
        help="skip a stage whose params and inputs are unchanged even if its library code or notebook "
        "changed (recorded as such in run.json)",
    )
    run.add_argument("--timeout", type=float, metavar="SECONDS", help="stop a stage whose cell runs longer than this")
    run.add_argument("--runs-dir", type=Path, help="where runs go (default: <project>/runs)")
    run.add_argument("--notebooks-dir", type=Path, help="where the stage notebooks are (default: <project>/notebooks)")

    world = commands.add_parser("world", help="build (or reuse) the world the params describe, alone")
    world.add_argument("params", type=Path)
    world.add_argument("--out", type=Path, required=True, help="folder to build the world into")
    world.add_argument("-p", "--param", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    world.add_argument("--force", action="store_true", help="rebuild even if a matching world is there")

    verify = commands.add_parser(
        "verify",
        help="recompute every artifact hash and fingerprint of a run; report modified artifacts and stale stages",
    )
    verify.add_argument("run_dir", type=Path)
    verify.add_argument("--trust-code", action="store_true", help="do not report stages made by other code")
    verify.add_argument(
        "--notebooks-dir", type=Path, help="where the stage notebooks are (default: <project>/notebooks)"
    )

    validate = commands.add_parser(
        "validate",
        help="known answers: run stages 01-03 on planted and null testbed "
        "worlds and tabulate what the attribution recovers",
    )
    validate.add_argument("params", type=Path, help="params/validation.yaml")
    validate.add_argument(
        "-p",
        "--param",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one validation param, e.g. -p seeds=[0] (repeatable)",
    )
    validate.add_argument("--name", help="validation folder name (default: the params file's stem)")
    validate.add_argument("--force", action="store_true", help="re-run every world's stages")
    validate.add_argument(
        "--trust-code",
        action="store_true",
        help="keep worlds and stages whose params and "
        "inputs are unchanged when only the code changed (recorded in each run.json)",
    )
    validate.add_argument("--timeout", type=float, metavar="SECONDS", help="stop a cell that runs longer than this")
    validate.add_argument("--runs-dir", type=Path, help="where runs go (default: <project>/runs)")
    validate.add_argument(
        "--results",
        type=Path,
        metavar="DIR",
        help="also write the summary as measured results "
        "into DIR (known_answers.json and .md; the docs read bench/results)",
    )

    report = commands.add_parser("report", help="(re)build the run's offline HTML report, runs/<name>/report/")
    report.add_argument("run_dir", type=Path)

    release = commands.add_parser("release", help="write a run's publishable artifacts as a hub dataset folder")
    release.add_argument("run_dir", type=Path)
    release.add_argument("--out", type=Path, required=True, help="the release folder (new, or a previous release)")
    release.add_argument(
        "--document-scores",
        action="store_true",
        help="also release stage 02's per-document scores (the paper's policy: aggregates only)",
    )

    estimate = commands.add_parser(
        "estimate",
        help="a dry run: the study's cost per stage in GPU-hours, CPU-hours "
        "and disk, and the commands that launch it on a cluster",
    )
    estimate.add_argument("params", type=Path)
    estimate.add_argument("-p", "--param", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    estimate.add_argument(
        "--bench-dir",
        type=Path,
        default=None,
        help="folder with the bench scripts' JSON (default: bench/results/ of the checkout)",
    )
    return parser


def _run(args) -> int:
    from .runs import run_study

    run_dir = run_study(
        args.params,
        args.overrides,
        name=args.name,
        stages=args.stages.split(",") if args.stages else None,
        from_stage=args.from_stage,
        force=args.force,
        trust_code=args.trust_code,
        timeout=args.timeout,
        runs_dir=args.runs_dir,
        notebooks_dir=args.notebooks_dir,
    )
    print(f"run complete: {run_dir}")
    print(f"report: {(run_dir / 'report' / 'index.html').resolve()}")
    return 0


def _world(args) -> int:
    from . import params
    from .worlds import ensure_world

    info, built = ensure_world(params.load(args.params, args.overrides), args.out, force=args.force)
    print(f"{info.kind} world {'built' if built else 'matching the params reused'}: {args.out}")
    return 0


def _verify(args) -> int:
    from .verify import verify

    problems = verify(args.run_dir, args.notebooks_dir, trust_code=args.trust_code)
    for line in problems:
        print(line)
    verdict = f"{len(problems)} problem(s)" if problems else "OK: every hash matches, every stage is current"
    print(f"{args.run_dir}: {verdict}")
    return 1 if problems else 0


def _validate(args) -> int:
    from .validate import validate

    started = time.time()
    folder = validate(
        args.params,
        args.overrides,
        name=args.name,
        runs_dir=args.runs_dir,
        timeout=args.timeout,
        force=args.force,
        trust_code=args.trust_code,
        results_dir=args.results,
    )
    print(f"validation complete in {time.time() - started:.0f} s: {folder} (tables: {folder / 'tables'})")
    return 0


def _report(args) -> int:
    from .report import build_report

    print(f"report: {build_report(args.run_dir).resolve()}")
    return 0


def _release(args) -> int:
    from .release import build_release

    out = build_release(args.run_dir, args.out, document_scores=args.document_scores)
    print(f"release folder: {out} (load with datasets.load_dataset({str(out)!r}); card: {out / 'README.md'})")
    return 0


def _estimate(args) -> int:
    from . import params
    from .context import project_root
    from .estimate import estimate, format_estimate, measured_costs

    bench_dir = args.bench_dir or project_root() / "bench" / "results"
    costs = estimate(params.load(args.params, args.overrides), measured_costs(bench_dir))
    print(format_estimate(costs, str(args.params)))
    return 0


COMMANDS = {
    "run": _run,
    "world": _world,
    "verify": _verify,
    "validate": _validate,
    "report": _report,
    "release": _release,
    "estimate": _estimate,
}

if __name__ == "__main__":
    sys.exit(main())

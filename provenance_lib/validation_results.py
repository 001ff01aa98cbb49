"""The known-answers summary as measured results: ``<results>/known_answers.json`` and ``known_answers.md``.

``validate --results bench/results`` writes them from the tables it just made (``validation_tables``): one record
per stage 02 setting x reading, the commit and params it ran at, the machine, and what the validation cost (each
run's stage durations as its run.json recorded them when they ran, and each retrain's own seconds, so a rerun that
reuses everything still states what making it took). The Markdown table is rendered from the JSON by the same code,
for the docs to include.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import read_json, write_json, write_text
from .record import git_state, now
from .validation_effects import NOISE
from .validation_tables import BAR, PLAN, SUMMARY

NAME = "known_answers"
METHOD = "trackstar"  # the estimator every record's scores come from (stage 02)


def write(folder: Path, results_dir: Path, command: str, reading: str, wall_s: float) -> Path:
    """Write ``known_answers.json`` and ``.md`` into ``results_dir`` from the validation in ``folder``."""
    folder, results_dir = Path(folder), Path(results_dir)
    plan = read_json(folder / PLAN)
    summary = pd.read_csv(folder / "tables" / SUMMARY)
    records = [record(row, reading) for row in summary.to_dict("records")]
    noise = folder / "tables" / NOISE
    matches = pd.read_csv(noise)["full_matches_world"].dropna() if noise.is_file() else pd.Series(dtype=bool)
    document = dict(
        name=NAME,
        command=command,
        **git_state(),
        params=plan["params"],
        machine=machine(),
        generated_at=now(),
        wall_s=round(wall_s, 1),
        cost=cost(folder, plan),
        bar=BAR,
        retrain_reproduces_world=bool(matches.all()) if len(matches) else None,
        records=records,
    )
    write_json(results_dir / f"{NAME}.json", document)
    write_text(results_dir / f"{NAME}.md", markdown(document))
    return results_dir / f"{NAME}.json"


def record(row: dict, reading: str) -> dict:
    def value(key):
        v = row.get(key)
        return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v

    return dict(
        setting=row["setting"],
        overrides=json.loads(row["overrides"]),
        reading=row["variant"],
        method=METHOD,
        planted_first=value("rank1"),
        cells=value("planted_cells"),
        carrier_auc_median=value("median_auc"),
        sham_false_first=value("sham_first"),
        sham_cells=value("sham_cells"),
        specificity_auc_median=value("median_specificity_auc"),
        fdr=value("fdr"),
        planted_bin_z_median=value("planted_bin_z_median"),
        sham_bin_z_median=value("sham_bin_z_median"),
        lds_median=value("lds_median"),
        lds_ci=[value("lds_ci_low"), value("lds_ci_high")],
        lds_cells=value("lds_cells"),
        lobo_spearman_median=value("lobo_spearman_median"),
        noise_ceiling=value("noise_ceiling"),
        meets_bar=bool(row["meets_bar"]),
        paper_recipe=row["variant"] == "paper" and row["setting"] == "default",
        default=row["variant"] == reading and row["setting"] == "default",
        chosen_by_rule=bool(row.get("chosen")),
    )


def machine() -> dict:
    return dict(
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        cpus=os.cpu_count(),
        load_average=[round(x, 2) for x in os.getloadavg()],
    )


def cost(folder: Path, plan: dict) -> dict:
    """Seconds each part took when it ran (run.json's stage durations; each retrain's own), summed."""
    stages: dict[str, float] = {}
    for world in plan["worlds"]:
        run = folder / world.get("run", world["name"]) / "run.json"
        for stage, entry in (read_json(run).get("stages", {}) if run.is_file() else {}).items():
            stages[stage] = stages.get(stage, 0.0) + float(entry.get("duration_s") or 0.0)
    retrains = [read_json(p)["result"]["seconds"] for p in sorted((folder / "retrains").glob("*/*.json"))]
    return dict(
        stage_seconds={k: round(v, 1) for k, v in stages.items()},
        retrains=len(retrains),
        retrain_seconds=round(float(np.sum(retrains)), 1),
        retrain_seconds_median=round(float(np.median(retrains)), 1) if retrains else None,
        total_seconds=round(sum(stages.values()) + float(np.sum(retrains)), 1),
    )


def markdown(document: dict) -> str:
    def number(v, digits=2):
        return "–" if v is None else f"{v:.{digits}f}"

    head = (
        "| setting | reading | planted bin 1st | sham bin 1st | specificity AUC | carrier AUC | FDR | "
        "LDS median [95% CI] | noise ceiling | |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in document["records"]:
        marks = ", ".join(
            m
            for m, on in (
                ("paper's recipe", r["paper_recipe"]),
                ("package default", r["default"]),
                ("chosen by the rule", r["chosen_by_rule"]),
            )
            if on
        )
        lds = (
            "–"
            if r["lds_median"] is None
            else f"{r['lds_median']:.2f} [{number(r['lds_ci'][0])}, {number(r['lds_ci'][1])}]"
        )
        lines.append(
            f"| {r['setting']} | `{r['reading']}` | {r['planted_first']} of {r['cells']} | "
            f"{r['sham_false_first']} of {r['sham_cells']} | {number(r['specificity_auc_median'])} | "
            f"{number(r['carrier_auc_median'])} | {number(r['fdr'])} | {lds} | "
            f"{number(r['noise_ceiling'])} | {marks} |"
        )
    c = document["cost"]
    lines += [
        "",
        f"Measured at commit `{(document['commit'] or 'unknown')[:7]}`"
        f"{' (uncommitted changes)' if document['dirty'] else ''} by `{document['command']}` on "
        f"{document['machine']['cpus']} CPUs (load average {document['machine']['load_average'][0]}), "
        f"{document['generated_at'][:10]}. Stages took {c['total_seconds'] - c['retrain_seconds']:.0f} s and "
        f"{c['retrains']} retrains {c['retrain_seconds']:.0f} s (median {number(c['retrain_seconds_median'], 0)}"
        f" s each) when they ran; this invocation {document['wall_s']:.0f} s.",
    ]
    return "\n".join(lines + ["", *verdict(document)]) + "\n"


def verdict(document: dict) -> list[str]:
    """What the table says, in words generated from its records (so the prose can never drift from the numbers)."""
    records, bar = document["records"], document["bar"]

    def name(r):
        return f"`{r['reading']}` under {r['setting']}"

    meets = [name(r) for r in records if r["meets_bar"]]
    rule = next((r for r in records if r["chosen_by_rule"]), None)
    default = next((r for r in records if r["default"]), None)
    full = max((r["sham_cells"] or 0 for r in records), default=0)
    sham = [r["sham_false_first"] for r in records if r["setting"] == "default" and r["sham_cells"] == full]
    lds = [r for r in records if r["lds_median"] is not None and r["noise_ceiling"] is not None]
    lines = [
        f"- The bar (planted bin 1st in ≥ {bar['rank1_share'] * 12:.0f} of 12 cells, carrier AUC ≥ "
        f"{bar['median_auc']}, a sham bin 1st in ≤ {bar['sham_first_share'] * 12:.0f} of 12, LDS ≥ {bar['lds']}) "
        f"is met by {', '.join(meets) if meets else 'no record'}."
    ]
    if rule is not None:
        study = "not in the table" if default is None else name(default)
        lines.append(
            f"- The rule chooses {name(rule)}; the package default when this was measured (`binning.reading` under "
            f"the study's own settings) was {'that record' if default is rule else study + ', another record'}."
        )
    if sham:
        spread = (
            "none" if max(sham) == 0 else f"{min(sham)} to {max(sham)}" if min(sham) < max(sham) else str(max(sham))
        )
        lines.append(
            f"- Under the study's own stage 02 settings a sham bin is ranked first in {spread} of the {full} "
            "sham cells, across readings."
        )
    if lds:
        below = sum(r["lds_median"] < r["noise_ceiling"] for r in lds)
        lines.append(
            f"- The bin-level LDS median lies below the retraining noise ceiling for {below} of {len(lds)} "
            f"records (best {max(r['lds_median'] for r in lds):.2f}, ceiling "
            f"{max(r['noise_ceiling'] for r in lds):.2f})."
        )
    if document.get("retrain_reproduces_world") is not None:
        lines.append(
            "- Retraining with nothing removed reproduces the world's attributed model: "
            f"{'yes' if document['retrain_reproduces_world'] else 'no'}."
        )
    return lines


def rerender(results_dir: Path) -> Path:
    """Render ``known_answers.md`` again from ``known_answers.json`` (the table's wording changed, not the data)."""
    path = Path(results_dir) / f"{NAME}.md"
    write_text(path, markdown(read_json(Path(results_dir) / f"{NAME}.json")))
    return path

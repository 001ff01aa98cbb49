"""The study report: one self-contained HTML folder per run, ``runs/<name>/report/``, that opens offline.

``index.html`` says what ran (world, models, corpus, stages and how each ended), shows the headline results each
completed stage produced (its result object's tables, its key figures embedded as base64), the "paper vs this run"
table of every value in ``reference/paper_reported.yaml`` the run produced (marked not comparable at testbed and
real-mini scale, as the stages themselves mark it) and the provenance table from ``run.json`` (commit, params hash,
package versions, per-stage timings, every artifact's sha256). Each executed stage notebook is rendered with
nbconvert into ``<stage>.html`` beside it and linked. No page loads anything from the network: nbconvert's
CDN scripts (MathJax, require.js) are left out, figures are embedded.

The runner builds the report at the end of every study; ``python -m provenance_lib report runs/<name>`` rebuilds it.
A stage a run does not have (not built yet, not selected, failed) is named as such, never filled in.
"""

from __future__ import annotations

import base64
import html
import importlib
import importlib.util
import re
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import pandas as pd

from .artifacts import write_text
from .benchmarks import BENCHMARKS
from .errors import ProvenanceError
from .record import COMPLETE, WORLD_STAGE, Attempt, RunRecord, StageRecord
from .summaries import FINDERS, stage_findings
from .worlds.contract import load_world

REPORT_DIR, INDEX = "report", "index.html"
COMPARABLE_WORLDS = ("paper", "released")
KEY_FIGURES = {  # the figures the summary embeds per stage; every other figure is in the stage's page
    "01_sampling": ("skew_heatmap.png",),
    "03_binning": ("heatmaps_2x2.png",),
    "04_contrast": (
        "profile_correlations.png",
        "marginals.png",
        "contrastive_topics.png",
        "correctness_differential.png",
    ),
    "05_unlearning": ("paired_damage.png",),
}
PIPELINE = ("01_sampling", "02_gradients", "03_binning", "04_contrast", "05_unlearning")
INVOCATION_FIELDS = dict(
    git={}, command="", status="", started="", ended="", interpreter={}, host={}, code_sha256=None, versions={}
)  # what the provenance table shows, for a record without any


@dataclass
class Section:
    """One completed stage's part of the summary: what it found (sentences), tables (title, html), embedded figures
    and notes saying why a table or figure the stage usually shows is not there."""

    stage_id: str
    findings: list[str] = field(default_factory=list)
    note: str | None = None  # the world's scale note
    tables: list[tuple[str, str]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (name, data URI)
    missing: list[str] = field(default_factory=list)

    def table(self, title: str, frame: pd.DataFrame, index: bool = True) -> None:
        """A table shown whole, without the columns this run has no value in; an empty one is never drawn: the
        section says it is not there."""
        blank = [c for c in frame.columns if frame[c].isna().all()]
        if len(frame) and len(blank) < len(frame.columns):
            left_out = f"<p class=note>No value in this run, left out: {', '.join(map(str, blank))}.</p>"
            self.tables.append((title, frame_html(frame.drop(columns=blank), index) + (left_out if blank else "")))
        else:
            self.missing.append(f"{title}: no rows in this run.")


def build_report(run_dir: str | Path) -> Path:
    """Write ``<run>/report/index.html`` and one page per executed stage notebook; returns the index path."""
    run_dir = Path(run_dir)
    record = RunRecord.existing(run_dir)
    out = run_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    world = load_world(run_dir / "world") if (run_dir / "world" / "world.json").is_file() else None
    kind = world.kind if world else "unknown"
    stages = [dict(id=stage_id, **stage_row(entry), page=None) for stage_id, entry in sorted(record.stages.items())]
    for row in stages:
        notebook = record.stages[row["id"]].notebook
        if row["id"] != WORLD_STAGE and notebook and (run_dir / notebook).is_file():
            row["page"] = f"{Path(notebook).stem}.html"
            write_text(out / row["page"], render_notebook(run_dir / notebook, back=INDEX))
    sections = [
        stage_section(run_dir, s["id"], kind) for s in stages if s["id"] != WORLD_STAGE and s["status"] == COMPLETE
    ]
    page = template().render(
        name=record.run.name,
        world=world,
        kind=kind,
        comparable=kind in COMPARABLE_WORLDS,
        benchmarks=[(b, (world.tasks if world else {}).get(b.name)) for b in BENCHMARKS],
        params_file=record.run.params_file,
        params_sha256=record.run.params_sha256,
        invocation={**INVOCATION_FIELDS, **(record.invocations[-1].model_dump() if record.invocations else {})},
        stages=stages,
        absent=absent_stages(record),
        sections=sections,
        paper_table=paper_vs_run(run_dir, record, kind),
        outputs={s: sorted(getattr(e, "outputs", {}).items()) for s, e in sorted(record.stages.items())},
    )
    return write_text(out / INDEX, page)


def stage_row(entry: StageRecord | Attempt) -> dict:
    """How a stage stands in the record: a completed one, or the attempt that did not complete."""
    attempt = getattr(entry, "attempt", None)
    entry = entry.model_dump()
    return dict(
        status=entry.get("status"),
        duration_s=entry.get("duration_s"),
        started=entry.get("started"),
        commit=(entry.get("git") or {}).get("commit"),
        dirty=(entry.get("git") or {}).get("dirty"),
        fingerprint=entry.get("fingerprint"),
        reason=entry.get("reason"),
        trusted=entry.get("trusted"),
        artifacts=len(entry.get("outputs", {})),
        error=entry.get("error"),
        later_attempt=f"{attempt.status}: {attempt.error or ''}" if attempt else None,
    )


def absent_stages(record: RunRecord) -> list[str]:
    """Pipeline stages with a library package that this run has no record of (not selected, or not built yet)."""
    return [s for s in PIPELINE if s not in record.stages]


# ----------------------------------------------------------------------------------------------- notebooks
def render_notebook(path: Path, back: str) -> str:
    """An executed notebook as one offline HTML page (nbconvert's lab template, images embedded, no CDN scripts),
    with a link back to the summary."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True, exclude_anchor_links=True)
    body, _ = exporter.from_notebook_node(nbformat.read(path, as_version=4))
    body = strip_remote_scripts(body)
    nav = (
        f'<p style="margin:1em 2em;font-family:sans-serif"><a href="{back}">&larr; study report</a> · '
        f"executed notebook <code>{html.escape(path.name)}</code></p>"
    )
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, body, count=1)


def strip_remote_scripts(page: str) -> str:
    """Drop ``<script src="http...">`` tags and MathJax's configuration (an offline page cannot load them; the
    stage notebooks use no LaTeX)."""
    page = re.sub(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>', "", page)
    return re.sub(r'<script type="text/x-mathjax-config">.*?</script>', "", page, flags=re.S)


# ----------------------------------------------------------------------------------------------- stages
def stage_section(run_dir: Path, stage_id: str, world_kind: str) -> Section:
    """What the stage found (``summaries``), headline tables from its result object (``load_result``; the notebook
    API) and its key figures. A stage whose package this checkout lacks still lists its figures."""
    section = Section(stage_id)
    folder = run_dir / stage_id
    headline = HEADLINES.get(stage_id)
    readable = headline or stage_id in FINDERS
    if readable and importlib.util.find_spec(f"provenance_lib.stages.{stage_id[3:]}") is not None:
        try:
            result = importlib.import_module(f"provenance_lib.stages.{stage_id[3:]}").load_result(folder)
            section.findings = stage_findings(stage_id, result)
            section.note = getattr(result, "note", None)
            if headline:
                headline(section, result)
        except (ProvenanceError, OSError) as exc:  # the report describes a broken stage rather than failing
            section.findings = [f"its recorded result could not be read: {exc}"]
    names = KEY_FIGURES.get(stage_id) or tuple(p.name for p in sorted(folder.glob("*.png"))[:2])
    section.figures = [(name, data_uri(folder / name)) for name in names if (folder / name).is_file()]
    return section


def frame_html(frame: pd.DataFrame, index: bool = True, formats: dict | None = None) -> str:
    """The whole table (the summary shows no table it would have to cut)."""
    return frame.to_html(
        index=index, float_format=lambda x: f"{x:.4g}", formatters=formats, na_rep="—", border=0, classes="table"
    )


def _sampling(section: Section, result) -> None:
    section.table("Working set", result.totals_table())


def _binning(section: Section, result) -> None:
    for variant in dict.fromkeys([result.reading, "paper"]):  # the study's reading, the paper's definition beside it
        label = "the paper's definition" if variant == "paper" else f"{variant}, the study's reading"
        section.table(f"Top 3 bins per benchmark ({label})", result.top_bins(3, variant), index=False)


def _contrast(section: Section, result) -> None:
    section.table("Profile correlations (Pearson), this run beside the paper", result.correlation_matrices())
    for axis in ("format", "topic"):
        section.table(f"Top {axis}s per benchmark: mean z of the {axis}'s bins [interval]", result.top_labels(axis))


def _unlearning(section: Section, result) -> None:
    section.table("Paired damage, targeted minus random, beside the paper", result.paper_table(), index=False)


HEADLINES = {"01_sampling": _sampling, "03_binning": _binning, "04_contrast": _contrast, "05_unlearning": _unlearning}


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# ----------------------------------------------------------------------------------------------- paper vs run
def paper_vs_run(run_dir: Path, record: RunRecord, world_kind: str) -> str | None:
    """Every reported value the run produced, from the stages that compare themselves with the paper (stage 04's
    ``paper_vs_run.csv``, stage 01's corpus skew); None when no such stage completed."""
    frames = []
    if record.completed("01_sampling"):
        frames.append(skew_rows(run_dir / "01_sampling", world_kind))
    if record.completed("04_contrast") and (run_dir / "04_contrast" / "paper_vs_run.csv").is_file():
        frames.append(pd.read_csv(run_dir / "04_contrast" / "paper_vs_run.csv"))
    if not frames:
        return None
    table = pd.concat(frames, ignore_index=True)
    produced = table[~table["status"].astype(str).str.startswith("not produced")]
    produced = produced.assign(gap=(produced["run"] - produced["paper"]).abs()).reindex(columns=PAPER_COLUMNS)
    missing = len(table) - len(produced)
    note = (
        (
            f"<p class=note>{missing} further reported value(s) this run cannot produce are listed in stage 04's "
            "<code>paper_vs_run.csv</code> with the reason.</p>"
        )
        if missing
        else ""
    )
    return (
        frame_html(
            produced.rename(columns={"gap": "|run − paper|"}), False, formats={"|run − paper|": _gap, "tolerance": _gap}
        )
        + note
    )


PAPER_COLUMNS = ["section", "benchmark", "item", "paper", "run", "run_low", "run_high", "gap", "tolerance", "status"]


def _gap(value) -> str:
    """A difference or tolerance at enough precision to see which side of the tolerance it falls on."""
    return "—" if pd.isna(value) else f"{value:.3g}"


def skew_rows(folder: Path, world_kind: str) -> pd.DataFrame:
    """Stage 01's corpus skew (population) beside the paper's Dolma3 values."""
    from .stages.sampling import load_result
    from .stages.sampling.outputs import skew_table

    skew = skew_table(load_result(folder).skew).reset_index()
    skew = skew.dropna(subset=["paper_population"])
    status = "compared" if world_kind in COMPARABLE_WORLDS else f"not comparable ({world_kind} world)"
    return pd.DataFrame(
        {
            "section": "corpus_skew",
            "benchmark": "",
            "item": skew["statistic"],
            "paper": skew["paper_population"],
            "run": skew["population"],
            "run_low": None,
            "run_high": None,
            "tolerance": None,
            "status": status,
        }
    )


def template():
    import jinja2

    text = files("provenance_lib").joinpath("templates/report.html.j2").read_text()
    return jinja2.Environment(
        autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined
    ).from_string(text)

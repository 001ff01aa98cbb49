"""Paper vs this run: every value of ``reference/paper_reported.yaml`` that stages 03-04 produce, side by side.

A value agrees when it is within half a unit of the last digit the paper reports (16.0 -> 0.05, 0.86 -> 0.005): the
paper's own rounding, read from the YAML text, not a tolerance chosen after seeing the numbers. Nothing is adjusted
to make values agree; a value this run cannot produce says why. At testbed and real-mini scale every row is marked
not comparable (another corpus, another model), its run value shown all the same.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import yaml

from ...reported import reported_text
from ...taxonomy import load as load_taxonomy
from .lexical import PROFILE_COLUMNS

COLUMNS = [
    "section",
    "benchmark",
    "item",
    "paper",
    "run",
    "run_low",
    "run_high",
    "difference",
    "tolerance",
    "status",
    "note",
]
COMPARABLE_WORLDS = ("paper", "released")


class Reported(float):
    """A reported number that remembers how many decimals the paper gave."""

    decimals: int

    def __new__(cls, text: str):
        value = super().__new__(cls, float(text))
        value.decimals = max(0, -Decimal(text).as_tuple().exponent)
        return value

    @property
    def half_unit(self) -> float:
        """Half a unit of the last digit the paper gave: the widest difference that still agrees."""
        return 0.5 * 10**-self.decimals

    @property
    def tolerance(self) -> float:
        return self.half_unit + 1e-9  # 1.065 vs 1.07: float error must not decide an exact half unit


class _ReportedLoader(yaml.SafeLoader):
    pass


_ReportedLoader.add_constructor("tag:yaml.org,2002:float", lambda loader, node: Reported(node.value))
_ReportedLoader.add_constructor("tag:yaml.org,2002:int", lambda loader, node: Reported(node.value))


def paper_reported() -> dict:
    """paper_reported.yaml with every number a ``Reported``."""
    return yaml.load(reported_text(), Loader=_ReportedLoader)


# ----------------------------------------------------------------------------------------------- the table
class Comparison:
    """Collects rows; ``world_kind`` decides whether the run is comparable with the paper at all."""

    def __init__(self, world_kind: str):
        self.world_kind = world_kind
        self.rows: list[dict] = []

    def add(
        self,
        section: str,
        benchmark: str,
        item: str,
        paper: Reported,
        run=None,
        low=None,
        high=None,
        missing: str | None = None,
        note: str = "",
    ) -> None:
        value = None if run is None or not np.isfinite(run) else float(run)
        if value is None:
            status = f"not produced: {missing or 'this run has no value for it'}"
        elif self.world_kind not in COMPARABLE_WORLDS:
            status = f"not comparable ({self.world_kind} world)"
        else:
            status = "agrees" if abs(value - paper) <= paper.tolerance else "differs"
        self.rows.append(
            dict(
                section=section,
                benchmark=benchmark,
                item=item,
                paper=float(paper),
                run=value,
                run_low=_float(low),
                run_high=_float(high),
                difference=None if value is None else value - float(paper),
                tolerance=paper.half_unit,
                status=status,
                note=note,
            )
        )

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS)


def _float(x):
    return None if x is None or not np.isfinite(x) else float(x)


def compare(
    world_kind: str, z: pd.DataFrame, tables: dict[str, pd.DataFrame], unavailable: dict, n_queries: dict
) -> pd.DataFrame:
    """The paper-vs-run table. ``z``: bins x benchmarks (paper variant); ``tables``: stage 04's tables by name;
    ``unavailable``: analysis -> why this run lacks it (for the correctness differential: per benchmark)."""
    reported, tax = paper_reported(), load_taxonomy()
    c = Comparison(world_kind)
    benchmarks = list(reported["benchmarks"])
    for name, facts in reported["benchmarks"].items():
        c.add(
            "benchmarks",
            name,
            "queries",
            facts["queries"],
            n_queries.get(f"{name} / all"),
            missing="the released files do not say how many queries",
        )
    low_z = tables.get("bin_z_intervals")
    for bin_name, values in reported["bin_z_scores"].items():
        b = tax.parse_bin(bin_name)
        for name, paper in zip(benchmarks, values):
            interval = low_z.loc[(b, name)] if low_z is not None and (b, name) in low_z.index else (None, None)
            c.add(
                "bin_z_scores",
                name,
                bin_name,
                paper,
                z.at[b, name] if name in z else None,
                *interval,
                missing="bin masked or benchmark absent",
            )
    _correlations(c, reported, benchmarks, tables["profile_correlations"])
    _marginals(c, reported, tables["marginals"])
    _contrasts(c, reported, tables["contrastive_topics"])
    _differential(c, reported, tables["correctness_differential"], unavailable.get("correctness_differential", {}))
    _lexical(c, reported, tables, unavailable.get("lexical"))
    return c.table()


def _correlations(c: Comparison, reported: dict, benchmarks: list[str], table: pd.DataFrame) -> None:
    pearson = table[table["method"] == "pearson"].set_index(["a", "b"])
    for i, a in enumerate(benchmarks):
        for j, b in enumerate(benchmarks):
            if i < j:
                row = pearson.loc[(a, b)] if (a, b) in pearson.index else None
                c.add(
                    "profile_correlations",
                    f"{a} | {b}",
                    "Pearson r",
                    reported["profile_correlations"][i][j],
                    *(row[["r", "low", "high"]] if row is not None else ()),
                    missing="a benchmark is absent",
                )


def _marginals(c: Comparison, reported: dict, table: pd.DataFrame) -> None:
    formats = table[table["axis"] == "format"]
    for name, tops in reported["top_formats"].items():
        mine = formats[formats["benchmark"] == name].sort_values("mean_z", ascending=False).reset_index(drop=True)
        for direction, values in tops.items():
            for label, paper in values.items():
                row = mine[mine["label"] == label]
                rank = int(row.index[0]) + 1 if len(row) else None
                place = (
                    ""
                    if rank is None
                    else (
                        f"run rank {rank} of {len(mine)}"
                        if direction == "positive"
                        else f"run rank {len(mine) - rank + 1} from the bottom"
                    )
                )
                c.add(
                    "top_formats",
                    name,
                    f"{direction}: {label}",
                    paper,
                    *(row.iloc[0][["mean_z", "low", "high"]] if len(row) else ()),
                    missing="format has no scored bin",
                    note=place,
                )


def _contrasts(c: Comparison, reported: dict, table: pd.DataFrame) -> None:
    for pair, values in reported["contrastive_topics"].items():
        mine = table[table["pair"] == pair]
        for side in ("social_leaning", "stem_leaning"):
            for topic, paper in values[side].items():
                row = mine[mine["topic"] == topic]
                c.add(
                    "contrastive_topics",
                    pair,
                    f"{side}: {topic}",
                    paper,
                    *(row.iloc[0][["delta", "low", "high"]] if len(row) else ()),
                    missing="a benchmark is absent",
                )
        best = mine.loc[mine["delta"].abs().idxmax()] if mine["delta"].notna().any() else None
        c.add(
            "contrastive_topics",
            pair,
            "max |delta|",
            values["max_abs_delta"],
            None if best is None else abs(best["delta"]),
            missing="a benchmark is absent",
            note="" if best is None else f"run: {best['topic']}",
        )


def _differential(c: Comparison, reported: dict, table: pd.DataFrame, missing: dict[str, str]) -> None:
    for name, tops in reported["correctness_differential"].items():
        mine = table[table["benchmark"] == name].set_index("bin_name")
        for direction, (bin_name, paper, (paper_low, paper_high)) in tops.items():
            row = mine.loc[bin_name] if bin_name in mine.index else None
            why = missing.get(name, "the bin is masked in this run")
            note = ""
            if row is not None:
                top = mine["delta_z"].idxmax() if direction == "top_positive" else mine["delta_z"].idxmin()
                note = f"run's {direction.replace('_', ' ')}: {top}"
            c.add(
                "correctness_differential",
                name,
                f"{direction}: {bin_name}",
                paper,
                *(row[["delta_z", "low", "high"]] if row is not None else ()),
                missing=why,
                note=note,
            )
            for bound, value in (("ci low", paper_low), ("ci high", paper_high)):
                run = None if row is None else row["low" if bound == "ci low" else "high"]
                c.add(
                    "correctness_differential",
                    name,
                    f"{direction}: {bin_name} ({bound})",
                    value,
                    run,
                    missing=why if row is None else "no bootstrap replicates",
                )


def _lexical(c: Comparison, reported: dict, tables: dict, missing: str | None) -> None:
    lexical = reported["lexical"]
    split = tables.get("interactional_split")
    text = lexical["socialiqa_top20_bins_split"]
    paper_count = Reported(text.split()[0])
    row = split[split["benchmark"] == "SocialIQA"] if split is not None else pd.DataFrame()
    c.add(
        "lexical",
        "SocialIQA",
        "top 20 bins with an interactional format",
        paper_count,
        row.iloc[0]["interactional"] if len(row) else None,
        missing="SocialIQA absent",
        note=f"paper: {text}",
    )
    bins = tables.get("lexical_bins")
    mine = bins.set_index("bin_name") if bins is not None and len(bins) else None
    target = "Literature x Customer Support"
    for item, paper in lexical["literature_customer_support"].items():
        known = item in PROFILE_COLUMNS
        why = missing or (f"{target} is not in the working set" if known else "no lexicon for it in this package")
        value = mine.at[target, item] if known and mine is not None and target in mine.index else None
        c.add(
            "lexical",
            "SocialIQA",
            f"{target}: {item}",
            paper,
            value,
            missing=why,
            note="run z: across the working set's scored bins" if item.endswith("_z") else "",
        )

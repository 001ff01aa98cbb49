"""Do the findings survive the aggregation? Each finding is read off the paper variant, then checked, on point
estimates, under every other variant stage 03 computed (centered, topk, format-residualized, checkpoint-summed):
a finding that holds only under one aggregation is a finding about the aggregation."""

from __future__ import annotations

import pandas as pd

from ...taxonomy import load as load_taxonomy
from ..binning import BinningResult
from .profiles import CONTRASTS, axis_means

COLUMNS = ["finding", "benchmark", "subject", "variant", "value", "holds"]


def survival(binning: BinningResult) -> pd.DataFrame:
    """One row per (finding, benchmark, variant): the finding's measure under the variant and whether it holds
    (None: the variant removes what the finding is about, e.g. format marginals after format residualization)."""
    tax = load_taxonomy()
    paper = binning.matrix("paper")
    paper_formats = axis_means(paper, "format")
    paper_delta = differential_matrix(binning, "paper")
    rows = []
    for variant in binning.summary["variants"]:
        z = binning.matrix(variant)
        formats = axis_means(z, "format")
        delta = differential_matrix(binning, variant)
        for benchmark in binning.benchmarks:
            top = int(paper[benchmark].idxmax())
            rank = int((z[benchmark] > z[benchmark][top]).sum() + 1) if pd.notna(z[benchmark][top]) else None
            rows.append(
                dict(
                    finding="top bin",
                    benchmark=benchmark,
                    subject=tax.bin_name(top),
                    variant=variant,
                    value=f"rank {rank}",
                    holds=rank == 1 if rank else None,
                )
            )
            expected, found = paper_formats[benchmark].idxmax(), formats[benchmark].idxmax()
            residual = variant == "format_residualized"
            rows.append(
                dict(
                    finding="top format",
                    benchmark=benchmark,
                    subject=expected,
                    variant=variant,
                    value="n/a: formats residualized away" if residual else found,
                    holds=None if residual else found == expected,
                )
            )
            if benchmark in paper_delta and paper_delta[benchmark].notna().any():
                best = int(paper_delta[benchmark].idxmax())
                value = delta[benchmark].get(best) if benchmark in delta else None
                rows.append(
                    dict(
                        finding="correctness differential: top bin stays positive",
                        benchmark=benchmark,
                        subject=tax.bin_name(best),
                        variant=variant,
                        value=None if value is None or pd.isna(value) else round(float(value), 3),
                        holds=None if value is None or pd.isna(value) else bool(value > 0),
                    )
                )
        rows += _design_findings(z, variant)
    return pd.DataFrame(rows, columns=COLUMNS)


def _design_findings(z: pd.DataFrame, variant: str) -> list[dict]:
    """The two findings about the 2 x 2 as a whole."""
    names = [b for pair in CONTRASTS.values() for b in pair]
    if not all(b in z.columns for b in names):
        return []
    r = z.corr()
    social_reasoning = max(r.at["SocialIQA", b] for b in z.columns if b != "SocialIQA")
    knowledge = r.at[CONTRASTS["knowledge"][0], CONTRASTS["knowledge"][1]]
    topics = axis_means(z, "topic")
    sharp = {c: (topics[a] - topics[b]).abs().max() for c, (a, b) in CONTRASTS.items()}
    return [
        dict(
            finding="SocialIQA's profile is the most distinct (its best r < the knowledge pair's r)",
            benchmark="all",
            subject="profile correlations",
            variant=variant,
            value=f"{social_reasoning:.2f} vs {knowledge:.2f}",
            holds=bool(social_reasoning < knowledge),
        ),
        dict(
            finding="the reasoning split is sharper than the knowledge split (max |delta topic|)",
            benchmark="all",
            subject="contrastive topics",
            variant=variant,
            value=f"{sharp['reasoning']:.2f} vs {sharp['knowledge']:.2f}",
            holds=bool(sharp["reasoning"] > sharp["knowledge"]),
        ),
    ]


def differential_matrix(binning: BinningResult, variant: str) -> pd.DataFrame:
    """bins x benchmarks: z_correct - z_incorrect under a variant (NaN where a split is missing)."""
    return binning.matrix(variant, "correct") - binning.matrix(variant, "incorrect")

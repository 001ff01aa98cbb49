"""What each stage found, in sentences written from its result object: the closing cell of each stage notebook, the
headline of the report's section and the release card's summary read them. Every number is read from the run's
artifacts; the world's scale note (what a testbed or real-mini number may be read as) closes each summary.

``stage_findings(stage_id, result)`` returns plain sentences; ``closing`` lays them out for a notebook.
"""

from __future__ import annotations

import numpy as np

from .artifacts import read_json
from .worlds.contract import scale_note


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _per_benchmark(parts: dict[str, str]) -> str:
    return "; ".join(f"{name}: {text}" for name, text in parts.items())


# ----------------------------------------------------------------------------------------------- stages
def sampling(result) -> list[str]:
    """Stage 01: de-duplication, the working set's coverage of the bins, and the corpus skew."""
    s, skew = result.summary, result.skew
    docs, bins = s["documents"], s["bins"]
    kept = docs["unique"] / docs["read"] if docs["read"] else float("nan")
    pop, ws = skew["population"], skew["working_set"]
    return [
        f"De-duplication kept {docs['unique']:,} of the {docs['read']:,} documents read ({kept:.1%}); "
        f"{docs['population']:,} carry a bin.",
        f"The working set holds {docs['sampled']:,} documents: {bins['full']} bins reach the target of "
        f"{s['target_per_bin']} documents, {len(bins['underfilled'])} are underfilled and {len(bins['empty'])} "
        f"of {bins['total']} are empty.",
        f"Corpus skew over the bins (documents): Gini {pop['gini_documents']:.3f} and "
        f"{pop['effective_bins_documents']:.0f} effective bins in the population; stratified sampling flattens "
        f"it to Gini {ws['gini_documents']:.3f} and {ws['effective_bins_documents']:.0f} effective bins.",
    ]


def gradients(result) -> list[str]:
    """Stage 02: what was scored, the query model's accuracy, each benchmark's top bin, and (where measured) how
    close the projected scores are to the exact ones."""
    queries = result.query_table()
    top = result.top_bins(1).set_index("benchmark")
    sentences = [
        f"{len(result.scores.doc_scores):,} working-set documents scored against {int(queries['queries'].sum())} "
        f"queries ({_per_benchmark({b: str(int(n)) for b, n in queries['queries'].items()})}).",
        "Query-model accuracy: " + _per_benchmark({b: f"{a:.2f}" for b, a in queries["accuracy"].items()}) + ".",
        "Each benchmark's highest bin (z of the bin mean over queries): "
        + _per_benchmark({b: f"{r['bin']} ({r['z']:.2f})" for b, r in top.iterrows()})
        + ".",
    ]
    exact = result.exactness_summary()
    if exact is not None and len(exact):
        sentences.append(
            f"Projected against exact gradients on the exactness sample: bin z-profile Spearman "
            f"{exact['z_spearman_median'].min():.2f}-{exact['z_spearman_median'].max():.2f} (median over "
            f"benchmarks, {len(exact)} comparisons), per-document Spearman {exact['document_spearman'].min():.2f}-"
            f"{exact['document_spearman'].max():.2f}."
        )
    return sentences


def planted(result, truth: dict) -> list[str]:
    """Stage 02 on a world with known answers: where each benchmark's planted bins rank."""
    table = result.planted_table(truth)
    if table.empty:
        return []
    parts = {}
    for benchmark, rows in table.groupby("benchmark", sort=False):
        ranks = ", ".join(str(int(r)) for r in rows["rank"])
        auc = rows["carrier AUC"].iloc[0]
        parts[benchmark] = f"ranks {ranks} of {int(rows['bins'].iloc[0])}, carrier AUC {auc:.2f}"
    return ["Planted bins (known answers): " + _per_benchmark(parts) + "."]


def binning(result) -> list[str]:
    """Stage 03: what was scored and masked, each benchmark's top bin under the reading and under the paper's
    definition, and how many bins clear Benjamini-Hochberg."""
    s = result.summary
    reading = result.reading
    sentences = [
        f"{len(s['scored_bin_ids'])} bins scored, {len(s['masked_bins'])} masked (fewer than "
        f"{s['min_docs']} documents) and {s['empty_bins']} empty; variants computed: "
        f"{_names(list(s['variants']))}; the study reads {reading}."
    ]
    for variant in dict.fromkeys([reading, "paper"]):
        top = result.top_bins(1, variant).set_index("benchmark")
        label = "the paper's definition" if variant == "paper" else f"the {variant} reading"
        sentences.append(
            f"Top bin under {label}: "
            + _per_benchmark({b: f"{r['bin_name']} (z {r['z']:.2f})" for b, r in top.iterrows()})
            + "."
        )
    rows = result.rows(reading)
    if rows["q_value"].notna().any():
        significant = (
            rows.assign(hit=rows["q_value"] <= s["fdr"])
            .groupby("benchmark", sort=False)["hit"]
            .sum()
            .reindex(result.benchmarks)
        )
        sentences.append(
            f"Bins with Benjamini-Hochberg q <= {s['fdr']} under the {reading} reading: "
            + _per_benchmark({b: str(int(n)) for b, n in significant.items()})
            + "."
        )
    return sentences


def contrast(result) -> list[str]:
    """Stage 04: profile correlations, top formats, the sharper-split test and the comparison with the paper."""
    t, s = result.tables, result.summary
    pearson = t["profile_correlations"]
    pearson = pearson[pearson["method"] == "pearson"].sort_values("r")
    sentences = []
    if len(pearson):
        hi, lo = pearson.iloc[-1], pearson.iloc[0]
        sentences.append(
            f"Profile correlations (Pearson, {int(hi['n_bins'])} bins): highest {hi['a']} | {hi['b']} "
            f"r = {hi['r']:.2f}, lowest {lo['a']} | {lo['b']} r = {lo['r']:.2f}."
        )
    top = t["top_marginals"]
    best = top[(top["axis"] == "format") & (top["direction"] == "positive") & (top["rank"] == 1)]
    if len(best):
        sentences.append(
            "Top format (mean z of its bins): "
            + _per_benchmark({r["benchmark"]: f"{r['label']} ({r['mean_z']:.2f})" for _, r in best.iterrows()})
            + "."
        )
    sharper = s["sharper_split"]
    if sharper.get("available"):
        delta = sharper["max_abs_delta"]
        text = (
            f"Largest |social - STEM| topic contrast: {delta['reasoning']:.2f} within reasoning, "
            f"{delta['knowledge']:.2f} within knowledge"
        )
        if "p_one_sided" in sharper:
            text += (
                f"; the reasoning split is sharper by {sharper['difference']:.2f} (interval "
                f"{sharper['low']:.2f} to {sharper['high']:.2f}, one-sided p = {sharper['p_one_sided']:.3g}, "
                f"{sharper['unit']} resampled)"
            )
        sentences.append(text + ".")
    agreement = s.get("agreement", {})
    produced = sum(v for k, v in agreement.items() if k != "not produced")
    if s["world_kind"] in ("paper", "released"):
        sentences.append(
            f"Of the paper's reported values this run produced ({produced}), "
            f"{agreement.get('agrees', 0)} agree within half a unit of the paper's last digit and "
            f"{agreement.get('differs', 0)} differ{_differing(t['paper_vs_run'])}; "
            f"{agreement.get('not produced', 0)} cannot be produced from this run (paper_vs_run.csv "
            "says why)."
        )
    else:
        sentences.append(
            f"{produced} of the paper's reported values have a counterpart in this run; none is "
            f"comparable (a {s['world_kind']} world)."
        )
    sentences += [why for why in map(result.why_unavailable, ("correctness_differential", "lexical")) if why]
    return sentences


def _differing(table) -> str:
    """`` (section: benchmarks ...)``: where the values that differ from the paper are."""
    differs = table[table["status"] == "differs"]
    if differs.empty:
        return ""
    parts = [
        f"{section.replace('_', ' ')}: {_names(list(dict.fromkeys(rows['benchmark'])))}"
        for section, rows in differs.groupby("section", sort=False)
    ]
    return f" ({'; '.join(parts)})"


FINDERS = {"01_sampling": sampling, "02_gradients": gradients, "03_binning": binning, "04_contrast": contrast}


def stage_findings(stage_id: str, result) -> list[str]:
    """The sentences of one stage (none for a stage without a summary here)."""
    finder = FINDERS.get(stage_id)
    return finder(result) if finder else []


def closing(stage, result) -> str:
    """A stage notebook's closing cell, in Markdown: what the stage found (with the known answers where the world
    has them), then what it may be read as at this world's scale. ``stage``: the notebook's ``open_stage``."""
    sentences = stage_findings(stage.stage_id, result)
    truth = stage.world_dir / "ground_truth.json"
    if stage.stage_id == "02_gradients" and truth.is_file():
        sentences += planted(result, read_json(truth))
    note = getattr(result, "note", None) or scale_note(stage.world.kind, bins_with_documents(result))
    lines = ["## What this run found", "", *(f"- {s}" for s in sentences)]
    if note:
        lines += ["", f"> {note}"]
    return "\n".join(lines)


def bins_with_documents(result) -> int:
    """Stage 01's non-empty bins, or the bins stage 02 scored documents in."""
    if hasattr(result, "scores"):
        return int(np.count_nonzero(result.scores.bin_counts))
    bins = result.summary["bins"]
    return bins["total"] - len(bins["empty"])

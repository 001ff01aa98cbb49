"""What every column of a released table means, and its unit: the release card's field tables read them, and a
release refuses a table with a column described nowhere here (a reader of the hub dataset has only the card).

``COLUMNS``: column name -> (what it is, unit); ``BY_TABLE``: (table stem, column) -> the same, where a column
means something narrower in one table. Units: "z" is standard deviations over the scored bins within a benchmark;
"score" is the TrackStar cosine (unitless; its scale differs between benchmarks); "—" marks a label or a key.
"""

from __future__ import annotations

from .errors import ProvenanceError

INTERVAL = "{end} end of the percentile interval (at the run's ci_level)"
COLUMNS: dict[str, tuple[str, str]] = {
    # keys and labels
    "bin": ("WebOrganizer bin id, topic_id * 24 + format_id", "—"),
    "bin_name": ("the bin as 'Topic x Format'", "—"),
    "topic": ("WebOrganizer topic (short name)", "—"),
    "format": ("WebOrganizer format (short name)", "—"),
    "topic_label": ("WebOrganizer topic key", "—"),
    "format_label": ("WebOrganizer format key", "—"),
    "label": ("the topic or format the row summarises", "—"),
    "axis": ("which label the row is about: topic or format", "—"),
    "benchmark": ("benchmark of the 2 x 2 design (SocialIQA, MMLU Social Sciences, ARC-Challenge, MMLU STEM)", "—"),
    "variant": ("stage 03's aggregation variant (paper: the paper's definition)", "—"),
    "split": ("queries aggregated: all, correct or incorrect (by the query model's answer)", "—"),
    "id": ("document id in the corpus", "—"),
    "source_shard": ("corpus shard file the document was read from", "—"),
    "row": ("row of the document in its shard", "row index"),
    "text_hash": ("64-bit hash of the normalised text (exact-duplicate key), hex", "—"),
    "method": ("correlation: pearson or spearman", "—"),
    "a": ("first benchmark of the pair", "—"),
    "b": ("second benchmark of the pair", "—"),
    "contrast": ("the capability within which social is contrasted with STEM: reasoning or knowledge", "—"),
    "pair": ("the two benchmarks contrasted, social minus STEM", "—"),
    "direction": ("positive (highest values) or negative (lowest values)", "—"),
    "rank": ("rank within benchmark and direction (1: the most extreme)", "rank"),
    "unit": ("what the interval resampled: bins, or queries+documents (stage 03's replicates)", "—"),
    "group": ("the documents pooled: the whole working set or a benchmark's top bins", "—"),
    "finding": ("a finding of the paper variant checked under another aggregation", "—"),
    "subject": ("the bin or label the finding is about", "—"),
    "section": ("part of the paper the reported value comes from (paper_reported.yaml)", "—"),
    "item": ("the reported quantity", "—"),
    "status": ("agrees (within tolerance), differs, not comparable (another world) or not produced (and why)", "—"),
    "note": ("what else the row needs said (the run's own top bin or rank)", "—"),
    # scores and statistics
    "mean_score": (
        "mean influence over the bin's documents (a document's score: its mean over the benchmark's queries)",
        "score",
    ),
    "zscore": ("(mean_score - mean over bins) / std over bins (ddof 1), within benchmark", "z"),
    "z": ("(mean_score - mean over scored bins) / std over scored bins (ddof 1), within benchmark", "z"),
    "z_low": (INTERVAL.format(end="lower") + " of z; queries within benchmark and documents within bin resampled", "z"),
    "z_high": (INTERVAL.format(end="upper") + " of z", "z"),
    "p_value": ("two-sided bootstrap p of the estimate against 0", "probability"),
    "q_value": ("Benjamini-Hochberg q over the scored bins of the benchmark", "probability"),
    "significant": ("q_value <= the run's fdr", "boolean"),
    "masked": ("fewer than min_docs documents: no z, left out of the mean and std", "boolean"),
    "mean_z": ("unweighted mean z of the label's scored bins (the marginal)", "z"),
    "delta": ("social minus STEM topic marginal", "z"),
    "delta_z": ("z_correct - z_incorrect", "z"),
    "z_correct": ("z of the bin from the correctly answered queries only", "z"),
    "z_incorrect": ("z of the bin from the incorrectly answered queries only", "z"),
    "r": ("correlation over the bins scored in every benchmark", "correlation"),
    "low": (INTERVAL.format(end="lower") + " of the row's estimate (unit: what was resampled)", "as the estimate"),
    "high": (INTERVAL.format(end="upper") + " of the row's estimate", "as the estimate"),
    "value": ("the finding's value under this variant", "as the finding"),
    "holds": ("whether the finding holds under this variant", "boolean"),
    "paper": ("the value the paper reports, at the paper's precision", "as the item"),
    "run": ("this run's value", "as the item"),
    "run_low": (INTERVAL.format(end="lower") + " of this run's value", "as the item"),
    "run_high": (INTERVAL.format(end="upper") + " of this run's value", "as the item"),
    "difference": ("run - paper", "as the item"),
    "tolerance": ("half a unit of the paper's last reported digit: |difference| <= tolerance agrees", "as the item"),
    # counts
    "n_docs": ("working-set documents in the bin", "documents"),
    "doc_count": ("scored documents in the bin", "documents"),
    "n_queries": ("queries aggregated", "queries"),
    "n_bins": ("bins the estimate is computed over", "bins"),
    "n_correct": ("queries the query model answers correctly", "queries"),
    "n_incorrect": ("queries the query model answers incorrectly", "queries"),
    "tokens": ("tokens of the document (the run's token count: whitespace or the base model's tokenizer)", "tokens"),
    "top_bins": ("top bins of the benchmark examined", "bins"),
    "interactional": ("top bins with an interactional format (dialogic or personal)", "bins"),
    "expository_structured": ("top bins with any other format", "bins"),
    "docs": ("working-set documents pooled", "documents"),
    "bins": ("bins pooled", "bins"),
    "mean_words": ("mean words per document", "words"),
    # stage 05: forget sets, unlearning runs and their paired statistics (gamma = baseline - unlearned: damage > 0)
    "set": ("forget set the document belongs to", "—"),
    "name": ("forget set name: construction, benchmark, topic, seed, kind", "—"),
    "kind": ("targeted (the benchmark's top documents) or random (its matched control)", "—"),
    "construction": ("how the forget set was built: bin-level or per-document", "—"),
    "seed": ("seed of the forget set's draw", "—"),
    "requested": ("documents asked for", "documents"),
    "pool": ("documents the set was drawn from", "documents"),
    "size": ("documents in the set", "documents"),
    "tokens_matched": ("a random set within tolerance of its targeted partner's tokens (empty: targeted)", "boolean"),
    "partner": ("the targeted set a random set is matched to", "—"),
    "underfilled": ("the pool held fewer documents than requested", "boolean"),
    "sha256": ("sha256 of the set's ids, sorted, one per line (what a released adapter names)", "—"),
    "evaluated": ("benchmark the accuracy was measured on", "—"),
    "measure": ("what gamma measures: acc (accuracy) or gold_loglik", "—"),
    "acc": ("accuracy of the model on the benchmark's evaluated items", "proportion"),
    "gold_loglik": ("mean log-likelihood of the gold answer", "nats"),
    "n": ("items evaluated", "items"),
    "correct": ("the item answered correctly (1) or not (0)", "0/1"),
    "margin": ("gold log-likelihood minus the best other choice's", "nats"),
    "steps": ("training steps the unlearning run took", "steps"),
    "stopped_early": ("the run stopped at the stop ratio before max_steps", "boolean"),
    "train_s": ("wall time of the unlearning run's training", "seconds"),
    "gamma": ("damage: baseline minus unlearned, on the measure", "as the measure"),
    "gamma_acc": ("damage in accuracy: baseline minus unlearned", "proportion"),
    "gamma_gold_loglik": ("damage in gold log-likelihood: baseline minus unlearned", "nats"),
    "gamma_global": ("damage of the global (all-topics) forget set", "as the measure"),
    "gamma_global_acc": ("accuracy damage of the global forget set", "proportion"),
    "gamma_global_gold_loglik": ("gold log-likelihood damage of the global forget set", "nats"),
    "gamma_net": ("gamma minus gamma_global", "as the measure"),
    "gamma_targeted": ("damage of the targeted set", "as the measure"),
    "gamma_random": ("damage of its matched random set", "as the measure"),
    "d": ("gamma_targeted - gamma_random of the pair", "as the measure"),
    "gamma_own": ("damage on the benchmark the forget set targets", "as the measure"),
    "gamma_others": ("mean |damage| on the other benchmarks", "as the measure"),
    "selectivity": ("gamma_own / gamma_others: > 1, the intended benchmark is hurt more", "ratio"),
    "topics": ("topics the pairs span", "topics"),
    "median_d": ("median of the pairs' d", "as the measure"),
    "mean_d": ("mean of the pairs' d", "as the measure"),
    "ci_low": ("lower end of the percentile bootstrap interval of median_d (pairs resampled)", "as the measure"),
    "ci_high": ("upper end of the bootstrap interval of median_d", "as the measure"),
    "cohens_dz": ("mean d / standard deviation of d", "standardized"),
    "wilcoxon_p": ("one-sided Wilcoxon signed-rank p of d > 0", "probability"),
    "paired_t_p": ("one-sided paired t-test p, targeted > random, on per-topic seed means", "probability"),
    "wilcoxon_p_bh": ("wilcoxon_p, Benjamini-Hochberg over the benchmarks", "probability"),
    "paired_t_p_bh": ("paired_t_p, Benjamini-Hochberg over the benchmarks", "probability"),
}
for _rate in ("first_person", "second_person", "third_person", "mental_state", "dialogue"):
    _what = _rate.replace("_", " ") + (" markers" if _rate == "dialogue" else " terms")
    COLUMNS[f"{_rate}_per_1k"] = (f"{_what} per 1,000 words", "per 1,000 words")
    COLUMNS[f"{_rate}_z"] = (f"z of the bin's {_what} rate across the scored bins", "z")

BY_TABLE: dict[tuple[str, str], tuple[str, str]] = {
    ("manifest", "bin"): ("the document's WebOrganizer bin id, topic_id * 24 + format_id", "—"),
    ("document_scores", "id"): ("working-set document id", "—"),
}


def describe(table: str, column: str) -> tuple[str, str]:
    """(what, unit) of ``column`` in the released table ``table`` (its file stem)."""
    found = BY_TABLE.get((table, column)) or COLUMNS.get(column)
    if found is None:
        raise ProvenanceError(
            f"the released table {table} has a column {column!r} that no field description covers",
            "describe it (what it is, its unit) in provenance_lib/release_fields.py COLUMNS",
        )
    return found

"""The query side: one query per benchmark eval item, as a (prompt, completion) pair whose completion carries the
loss, and whether the query model answers the item correctly.

Every world stores an item's ``question`` as lm-eval's zero-shot prompt, so the two formats are derived from it:

* **bare** (the paper's text: "the bare question"): the zero-shot prompt exactly as lm-eval scores it — the
  question and the task's own answer cue, no choices — and the gold answer's text as the completion, after lm-eval's
  target delimiter " ". The query gradient is then the gradient of the very log-likelihood that evaluation
  measures. Per world: the testbed's prompt ends in ``Answer : <lead-in>`` (the model learned the answer after the
  planted lead-in, so the lead-in stays); SocialIQA's is ``Q: <context> <question>\\nA:``, ARC's and MMLU
  continuation's ``Question: ...\\nAnswer:``. MMLU's default variant (paper scale) lists lettered choices and scores
  the letter; bare drops those lines and takes the gold answer's text from them.
* **lettered** (the paper's released query builder): any task description, then ``Question: <stem>``, one line per
  choice ``A. <text>``, ``Answer:``; the completion is the gold letter. The stem is the prompt without its answer
  cue and its ``Question:`` / ``Q:`` label. A prompt written with spaced punctuation (the testbed's word-level
  text: ``Answer :``) gets spaced labels (``Question :``, ``A .``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ...benchmarks import BENCHMARKS
from ...errors import ProvenanceError
from .scores import QUERY_COLUMNS

TARGET_DELIMITER = " "  # lm-eval's multiple-choice target delimiter (checked when a world loads its tasks)
LETTERS = "ABCDEFGHIJ"
_CUE = re.compile(r"(?:^|\s)(Answer ?:|A ?:)([^\n]*)$")
_LABEL = re.compile(r"^(Question ?:|Q ?:)\s*")
_CHOICE_LINE = re.compile(r"^([A-J]) ?\. (.*)$")


@dataclass(frozen=True)
class QueryText:
    """One query: the loss is on ``completion`` only."""

    prompt: str
    completion: str


@dataclass(frozen=True)
class PromptParts:
    description: str  # text before the item (a task description), "" when none
    stem: str  # the question without its label, choices and answer cue
    cue: str  # the answer cue and any lead-in after it ("Answer:", "A:", "Answer : the ...")
    choices: tuple[str, ...]  # the answer texts
    spaced: bool  # punctuation written as separate words (the testbed)


def split_prompt(question: str, choices: list[str]) -> PromptParts:
    """Take lm-eval's zero-shot prompt apart (see the module docstring)."""
    match = _CUE.search(question)
    if match is None:
        raise ProvenanceError(
            f"query prompt has no answer cue ('Answer:' or 'A:') at its end: {question[-80:]!r}",
            "the world's question field must hold lm-eval's zero-shot prompt",
        )
    body, cue = question[: match.start()].rstrip(), question[match.start() :].strip()
    description = ""
    if "\n\n" in body:
        description, body = body.rsplit("\n\n", 1)
    lines = body.split("\n")
    listed = [m for m in map(_CHOICE_LINE.match, lines) if m]
    if listed and len(listed) == len(choices):
        stem_lines = lines[: len(lines) - len(listed)]
        texts = tuple(m.group(2).strip() for m in listed)
    else:
        stem_lines, texts = lines, tuple(choices)
    stem = _LABEL.sub("", "\n".join(stem_lines).strip())
    return PromptParts(description, stem, cue, texts, spaced=" :" in cue)


def query_text(question: str, choices: list[str], answer: int, fmt: str) -> QueryText:
    """The (prompt, completion) of one item in the ``bare`` or ``lettered`` format."""
    parts = split_prompt(question, list(choices))
    if fmt == "bare":
        if len(parts.choices) == len(choices) and parts.choices == tuple(choices):
            return QueryText(question, TARGET_DELIMITER + choices[answer])
        lead = f"{parts.description}\n\n" if parts.description else ""  # lettered lines dropped (MMLU default)
        return QueryText(f"{lead}{parts.stem}\n{parts.cue}", TARGET_DELIMITER + parts.choices[answer])
    if fmt == "lettered":
        sep = " ." if parts.spaced else "."
        label, cue = ("Question :", "Answer :") if parts.spaced else ("Question:", "Answer:")
        lines = [f"{label} {parts.stem}", *(f"{LETTERS[i]}{sep} {c}" for i, c in enumerate(parts.choices)), cue]
        lead = f"{parts.description}\n\n" if parts.description else ""
        return QueryText(lead + "\n".join(lines), TARGET_DELIMITER + LETTERS[answer])
    raise ProvenanceError(f"unknown query format {fmt!r}", "use gradients.query.format: bare | lettered")


# ----------------------------------------------------------------------------------------------- the query table
def eval_items(queries_path: str | Path, tasks: dict[str, str]) -> pd.DataFrame:
    """The world's eval items in the 2x2 design's benchmark order, checked: every benchmark the world evaluates
    has at least one item, and every item's benchmark is evaluated."""
    table = pd.read_parquet(queries_path)
    items = table[table["split"] == "eval"]
    if items.empty:
        raise ProvenanceError(
            f"{queries_path} has no eval items: there is nothing to attribute",
            "rebuild the world (its benchmarks have no eval split)",
        )
    present = set(items["benchmark"])
    empty = [name for name in tasks if name not in present]
    if empty:
        raise ProvenanceError(
            f"benchmark(s) {empty} have no eval items (queries) in {queries_path}",
            "rebuild the world, or drop the benchmark from its tasks",
        )
    unevaluated = sorted(present - set(tasks))
    if unevaluated:
        raise ProvenanceError(
            f"benchmark(s) {unevaluated} have queries but no lm-eval task in the world",
            "rebuild the world so every benchmark has its local task",
        )
    order = {b.name: i for i, b in enumerate(BENCHMARKS)}
    items = items.assign(_order=items["benchmark"].map(order)).sort_values("_order", kind="stable")
    return items.drop(columns="_order").reset_index(drop=True)


def correctness(
    ref, task_dir: Path, tasks: dict[str, str], batch_size: int, shots: dict[str, int], device: str = "cpu"
) -> pd.DataFrame:
    """Per item: does the model (``ref``: a ModelRef) answer it, and the gold log-likelihood; scored as stage 05
    scores its base model (loaded in memory on ``device``, bf16 on a GPU, lm-eval with the benchmarks' ``shots``),
    so the correct / incorrect split matches the accuracies the study reports."""
    import torch

    from ...evaluation import evaluate
    from ...models import load_causal_lm

    model, tokenizer = load_causal_lm(ref, dtype=torch.bfloat16 if device == "cuda" else torch.float32, device=device)
    items = evaluate(model, task_dir, tasks, batch_size=batch_size, tokenizer=tokenizer, shots=shots).items
    return items[["benchmark", "id", "correct", "gold_loglik"]]


def queries_table(items: pd.DataFrame, judged: pd.DataFrame) -> pd.DataFrame:
    """The contract's ``queries.parquet``: one row per query in score-matrix order, with correctness."""
    merged = items.merge(judged, on=["benchmark", "id"], how="left", validate="one_to_one")
    missing = merged["correct"].isna()
    if missing.any():
        raise ProvenanceError(
            f"lm-eval returned no result for {int(missing.sum())} eval items (e.g. "
            f"{merged.loc[missing, 'id'].iloc[0]})",
            "rebuild the world's lm-eval tasks",
        )
    table = merged.assign(query_index=range(len(merged)), correct=merged["correct"].astype(bool))
    return table[list(QUERY_COLUMNS)].reset_index(drop=True)

"""Lexical profiles: what the text of a benchmark's most influential bins reads like. From stage 01's working-set
text, per bin: documents, mean words, and per 1,000 words first-, second- and third-person pronouns, mental-state
terms and dialogue markers; then pooled over each benchmark's top-k bins and over the whole working set. Released
as bin-level aggregates only, never per document.

The word lists are written out here, by hand, for this package. Pronouns are the closed class of English personal
pronouns (with their common contractions), grouped by person as LIWC's pronoun categories group them (Pennebaker et
al., LIWC2015/LIWC-22 manuals); LIWC's dictionaries are proprietary and are not copied. Mental-state terms follow the
internal-state categories of the theory-of-mind literature (cognition, desire, emotion; e.g. Bretherton & Beeghly
1982, "Talking about internal states"), a compact list of common forms, not an exhaustive lexicon. Dialogue markers
count speaker-turn lines ("Customer: ...", "Q: ..."), quoted utterances, question marks and conversational words
(greetings, thanks, apologies, assent).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ...stats import zscore
from ...taxonomy import load as load_taxonomy

FIRST_PERSON = frozenset(
    "i me my mine myself we us our ours ourselves i'm i've i'll i'd we're we've we'll we'd".split()
)
SECOND_PERSON = frozenset("you your yours yourself yourselves you're you've you'll you'd".split())
THIRD_PERSON = frozenset(
    "he him his himself she her hers herself they them their theirs themselves he's she's "
    "he'd she'd he'll she'll they're they've they'll they'd".split()
)
MENTAL_STATE = frozenset(
    """
    think thinks thinking thought thoughts know knows knew knowing known believe believes believed belief beliefs
    understand understands understood realize realizes realized remember remembers remembered forget forgets
    forgot forgotten wonder wonders wondered guess guesses guessed suppose supposes supposed imagine imagines
    imagined assume assumes assumed expect expects expected doubt doubts doubted notice notices noticed decide
    decides decided intend intends intended want wants wanted wish wishes wished hope hopes hoped prefer prefers
    preferred desire desires desired feel feels feeling feelings felt love loves loved hate hates hated worry
    worries worried fear fears feared afraid happy sad angry upset surprised embarrassed proud jealous ashamed
    anxious lonely grateful confused curious sure unsure
""".split()
)
CONVERSATIONAL = frozenset(
    "hi hello hey thanks thank please sorry apologize apologies yes yeah okay ok welcome dear".split()
)
CATEGORIES = {
    "first_person": FIRST_PERSON,
    "second_person": SECOND_PERSON,
    "third_person": THIRD_PERSON,
    "mental_state": MENTAL_STATE,
}
RATES = [*CATEGORIES, "dialogue"]
PROFILE_COLUMNS = ("docs", "mean_words", *(f"{r}_per_1k" for r in RATES), *(f"{r}_z" for r in RATES))

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
SPEAKER_TURN = re.compile(r"(?m)^\s*[A-Z][\w .'-]{0,30}:\s")
QUOTED = re.compile(r"\"[^\"\n]{1,400}\"|\u201c[^\u201d\n]{1,400}\u201d")


def count_text(text: str) -> dict[str, int]:
    """Words and category counts of one text."""
    words = WORD.findall(text.lower().replace("\u2019", "'"))
    counts = {name: sum(w in lexicon for w in words) for name, lexicon in CATEGORIES.items()}
    counts["dialogue"] = (
        len(SPEAKER_TURN.findall(text))
        + len(QUOTED.findall(text))
        + text.count("?")
        + sum(w in CONVERSATIONAL for w in words)
    )
    counts["words"] = len(words)
    return counts


def profile_bins(documents: Iterable[dict]) -> pd.DataFrame:
    """One row per bin of the working set: documents, words and category counts (streamed: no text is kept)."""
    totals: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for doc in documents:
        row = totals[int(doc["metadata"]["sampling"]["bin"])]
        row["docs"] += 1
        for name, n in count_text(doc["text"]).items():
            row[name] += n
    table = pd.DataFrame.from_dict({b: dict(v) for b, v in totals.items()}, orient="index").rename_axis("bin")
    return table.reindex(columns=["docs", "words", *RATES], fill_value=0).sort_index().reset_index()


def rates(counts: pd.DataFrame) -> pd.DataFrame:
    """Mean words per document and per-1k-word rates of pooled counts."""
    out = pd.DataFrame({"docs": counts["docs"], "mean_words": counts["words"] / counts["docs"]})
    for name in RATES:
        out[f"{name}_per_1k"] = 1000 * counts[name] / counts["words"].where(counts["words"] > 0)
    return out


def bin_profiles(counts: pd.DataFrame, scored_bins: list[int]) -> pd.DataFrame:
    """Per bin: rates, and each rate's z across the scored bins (how a bin's text stands out)."""
    tax = load_taxonomy()
    table = pd.concat([counts[["bin"]], rates(counts)], axis=1)
    table.insert(1, "bin_name", [tax.bin_name(int(b)) for b in table["bin"]])
    scored = table["bin"].isin(scored_bins).to_numpy()
    for name in RATES:
        values = table[f"{name}_per_1k"].to_numpy(np.float64)
        table[f"{name}_z"] = zscore(np.where(scored, values, np.nan))
    return table


def top_bin_profiles(counts: pd.DataFrame, z: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per benchmark, its top-k scored bins (by z; fewer where fewer are scored) pooled; and the whole working set
    as the baseline."""
    rows = [dict(group="working set (all bins)", bins=len(counts), **rates(counts.sum().to_frame().T).iloc[0])]
    for benchmark in z.columns:
        top = z[benchmark].dropna().sort_values(ascending=False).head(k).index
        chosen = counts[counts["bin"].isin(top)]
        rows.append(dict(group=f"{benchmark}: top bins", bins=len(top), **rates(chosen.sum().to_frame().T).iloc[0]))
    return pd.DataFrame(rows)

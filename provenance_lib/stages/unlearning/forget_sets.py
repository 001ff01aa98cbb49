"""Forget sets, by rule from stage 02's per-document scores: what each unlearning run forgets.

For a benchmark b, a target topic t and a seed s (``unlearning.forget``):

* **targeted**: the ``docs`` documents of the pool with the highest score for b (``doc_scores[b.slug]``; ties by
  id), where the pool is the topic's documents (construction ``document``) or those of the topic's
  highest-attribution bin (construction ``bin``: the bin with the largest mean score for b, among the bins that can
  fill the set when any can). The bin mean of document scores ranks bins exactly as stage 03's within-benchmark
  z-scores do (a z-score is an increasing affine map of it), so no stage 03 output is needed.
* **random**: a seeded uniform sample of the same pool, of the same size, whose tokens are within
  ``token_tolerance`` of the targeted set's (rejection sampling: uniform conditional on the match; the closest draw
  is kept, and flagged, when ``match_attempts`` draws never match).
* **global**: a seeded uniform sample of the whole working set (any topic) of the same size: the control that
  gives gamma_net = gamma_topic - gamma_global.

Only documents with at least ``min_tokens`` tokens are ever forgotten. A pool smaller than ``docs`` gives a smaller
targeted set; its random partner is matched to that size, and the shortfall is recorded on both sets
(``requested`` vs ``size``) and reported by the stage, never silently shrunk. Released as id manifests (no text).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ...benchmarks import BY_NAME
from ...errors import ProvenanceError
from ...taxonomy import load as load_taxonomy
from .data import seeded_rng

KINDS = ("targeted", "random", "global")


@dataclass(frozen=True)
class ForgetSet:
    name: str                  # unique, file-name safe: <construction>-<benchmark slug>-<topic key>-s<seed>-<kind>
    kind: str                  # targeted | random | global
    construction: str          # bin | document | global
    seed: int
    ids: tuple[str, ...]       # in rank order for targeted sets, draw order otherwise
    tokens: int
    requested: int             # documents asked for (``docs``, or the targeted partner's size)
    pool: int                  # eligible documents it was drawn from
    benchmark: str | None = None
    topic: str | None = None   # taxonomy key
    bin: int | None = None
    tokens_matched: bool | None = None   # random sets: within tolerance of the targeted partner's tokens
    partner: str | None = field(default=None, compare=False)  # random set: its targeted set

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def underfilled(self) -> bool:
        return self.size < self.requested

    @property
    def sha256(self) -> str:
        """The manifest hash: sha256 of the ids, sorted, one per line (what a released adapter names)."""
        return hashlib.sha256("".join(f"{i}\n" for i in sorted(self.ids)).encode()).hexdigest()

    def info(self) -> dict:
        """Everything but the ids, JSON-ready (one row of ``forget_sets.parquet``)."""
        row = {k: v for k, v in asdict(self).items() if k != "ids"}
        return {**row, "size": self.size, "underfilled": self.underfilled, "sha256": self.sha256}


@dataclass(frozen=True)
class Pair:
    """One paired comparison: a targeted set and its matched random set (same benchmark, topic, seed)."""

    targeted: ForgetSet
    random: ForgetSet


def eligible(doc_scores: pd.DataFrame, min_tokens: int) -> pd.DataFrame:
    """The documents that may be forgotten, with their topic id, sorted by id (a canonical order for sampling)."""
    docs = doc_scores[doc_scores["tokens"] >= min_tokens].copy()
    docs["topic"] = docs["bin"].to_numpy() // len(load_taxonomy().formats)
    return docs.sort_values("id", kind="stable").reset_index(drop=True)


def target_bin(docs: pd.DataFrame, scores: pd.DataFrame, benchmark: str, topic: int, wanted: int) -> int | None:
    """The topic's highest-attribution bin for ``benchmark``: largest mean score over all its scored documents,
    among the bins with at least ``wanted`` eligible documents when any has that many."""
    slug = BY_NAME[benchmark].slug
    in_topic = scores[scores["bin"].to_numpy() // len(load_taxonomy().formats) == topic]
    means = in_topic.groupby("bin")[slug].mean()
    available = docs[docs["topic"] == topic].groupby("bin").size().reindex(means.index, fill_value=0)
    means = means[available > 0]
    if means.empty:
        return None
    full = means[available[means.index] >= wanted]
    candidates = full if len(full) else means
    return int(candidates.sort_index().idxmax())


def targeted_set(pool: pd.DataFrame, benchmark: str, wanted: int, **meta) -> ForgetSet:
    slug = BY_NAME[benchmark].slug
    top = pool.sort_values([slug, "id"], ascending=[False, True], kind="stable").head(wanted)
    return ForgetSet(kind="targeted", ids=tuple(top["id"]), tokens=int(top["tokens"].sum()), requested=wanted,
                     pool=len(pool), benchmark=benchmark, **meta)


def matched_random_set(pool: pd.DataFrame, partner: ForgetSet, tolerance: float | None, attempts: int,
                       **meta) -> ForgetSet:
    """A uniform draw of ``partner.size`` pool documents whose tokens are within ``tolerance`` of the partner's
    (``None``: the first draw, matched in count only)."""
    rng = seeded_rng("random", partner.name)
    tokens = pool["tokens"].to_numpy(np.int64)
    target, n = partner.tokens, partner.size
    best, best_gap = None, np.inf
    for _ in range(attempts if tolerance is not None else 1):
        draw = rng.choice(len(pool), size=n, replace=False)
        gap = abs(int(tokens[draw].sum()) - target)
        if gap < best_gap:
            best, best_gap = draw, gap
        if tolerance is not None and gap <= tolerance * target:
            break
    chosen = pool.iloc[best]
    return ForgetSet(kind="random", ids=tuple(chosen["id"]), tokens=int(chosen["tokens"].sum()),
                     requested=partner.requested, pool=len(pool), benchmark=partner.benchmark,
                     tokens_matched=None if tolerance is None else bool(best_gap <= tolerance * target),
                     partner=partner.name, **meta)


def global_set(docs: pd.DataFrame, size: int, seed: int) -> ForgetSet:
    """``size`` documents drawn uniformly from every eligible document (any topic): the global control."""
    draw = seeded_rng("global", size, seed).choice(len(docs), size=min(size, len(docs)), replace=False)
    chosen = docs.iloc[draw]
    return ForgetSet(name=f"global-n{size}-s{seed}", kind="global", construction="global", seed=seed,
                     ids=tuple(chosen["id"]), tokens=int(chosen["tokens"].sum()), requested=size, pool=len(docs))


def build_pairs(scores: pd.DataFrame, forget, benchmarks: list[str], topics: list[int], seeds: list[int]) -> list[Pair]:
    """Every (construction, benchmark, topic, seed) pair the params ask for (``forget``: ``unlearning.forget``)."""
    tax = load_taxonomy()
    docs = eligible(scores, forget.min_tokens)
    pairs = []
    for construction in forget.constructions:
        for benchmark in benchmarks:
            for topic in topics:
                pool = docs[docs["topic"] == topic]
                bin_id = None
                if construction == "bin":
                    bin_id = target_bin(docs, scores, benchmark, topic, forget.docs)
                    pool = pool[pool["bin"] == bin_id]
                if pool.empty:
                    continue
                key = tax.topics.labels[topic].key
                meta = dict(construction=construction, topic=key, bin=bin_id)
                for seed in seeds:
                    stem = f"{construction}-{BY_NAME[benchmark].slug}-{key}-s{seed}"
                    targeted = targeted_set(pool, benchmark, forget.docs, name=f"{stem}-targeted", seed=seed, **meta)
                    random = matched_random_set(pool, targeted, forget.token_tolerance, forget.match_attempts,
                                                name=f"{stem}-random", seed=seed, **meta)
                    pairs.append(Pair(targeted, random))
    return pairs


def resolve_topics(scores: pd.DataFrame, forget) -> list[int]:
    """Topic ids to target: the params' list, or every topic with eligible documents."""
    tax = load_taxonomy()
    present = sorted(set(eligible(scores, forget.min_tokens)["topic"].tolist()))
    if forget.topics is None:
        if not present:
            raise ProvenanceError(f"no working-set document has at least {forget.min_tokens} tokens: nothing to "
                                  "forget", "lower unlearning.forget.min_tokens")
        return present
    wanted = [tax.topics.get(t).id for t in forget.topics]
    empty = [tax.topics.labels[t].short for t in wanted if t not in present]
    if empty:
        raise ProvenanceError(f"target topics {empty} have no working-set document with at least "
                              f"{forget.min_tokens} tokens", "drop them from unlearning.forget.topics, or lower "
                              "unlearning.forget.min_tokens")
    return wanted


def manifest_tables(sets: list[ForgetSet]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per set: its facts and hash; one row per (set, document): the released id manifest)."""
    info = pd.DataFrame([s.info() for s in sets]).astype({"bin": "Int64"})
    ids = pd.DataFrame([(s.name, rank, doc) for s in sets for rank, doc in enumerate(s.ids)],
                       columns=["set", "rank", "id"])
    return info, ids


SHORTFALL_COLUMNS = ["set", "kind", "requested", "size", "pool", "tokens", "tokens_matched"]


def shortfalls(sets: list[ForgetSet]) -> pd.DataFrame:
    """Sets smaller than requested, or random sets whose tokens could not be matched: what the stage reports."""
    rows = [dict(set=s.name, kind=s.kind, requested=s.requested, size=s.size, pool=s.pool, tokens=s.tokens,
                 tokens_matched=s.tokens_matched) for s in sets if s.underfilled or s.tokens_matched is False]
    return pd.DataFrame(rows, columns=SHORTFALL_COLUMNS)

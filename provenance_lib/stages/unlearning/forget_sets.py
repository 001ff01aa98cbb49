"""Forget sets, by rule from stage 02's per-document scores: what each unlearning run forgets.

For a benchmark b, a target topic t and a seed s (``unlearning.forget``), within a pool: the topic's documents
(construction ``document``) or those of the topic's highest-attribution bin (construction ``bin``: the bin with the
largest mean score for b, among the bins that can hold a full-size pair of disjoint sets when any can; the bin mean of
document scores ranks bins as stage 03's within-benchmark z-scores do):

* **targeted** (``targeted: top``, the paper's): the ``docs`` pool documents with the highest score for b
  (``doc_scores[b.slug]``; ties by id), the same set for every seed; (``targeted: split``) the top ``seeds x docs``
  documents dealt by a seeded shuffle into one disjoint set per seed.
* **random**: a seeded uniform sample of the pool minus every targeted document, of the same size, whose tokens
  are within ``token_tolerance`` of its targeted set's (rejection sampling: uniform conditional on the match; the
  closest draw is kept, and flagged, when ``match_attempts`` draws never match); with ``split``, also disjoint from
  the other seeds' random sets, so two pairs never share a document.
* **global**: a seeded uniform sample of the whole working set (any topic) of the same size: the control that
  gives gamma_net = gamma_topic - gamma_global.

Only documents with at least ``min_tokens`` tokens are ever forgotten. A pool too small for full-size disjoint sets
gives smaller ones (both sets of a pair the same size, recorded as ``requested`` vs ``size``), and a pool that cannot
hold one document of each gives no pair: both are reported as shortfalls with their reason, never silently
overlapped or dropped. Which topics: the params' list, all of them, or (``auto``) each benchmark's
highest-attribution topics under stage 03's reading. Released as id manifests (no text).
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
    name: str  # unique, file-name safe: <construction>-<benchmark slug>-<topic key>-s<seed>-<kind>
    kind: str  # targeted | random | global
    construction: str  # bin | document | global
    seed: int
    ids: tuple[str, ...]  # in rank order for targeted sets, draw order otherwise
    tokens: int
    requested: int  # documents asked for (``docs``, or the targeted partner's size)
    pool: int  # eligible documents it was drawn from
    benchmark: str | None = None
    topic: str | None = None  # taxonomy key
    bin: int | None = None
    tokens_matched: bool | None = None  # random sets: within tolerance of the targeted partner's tokens
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


def matched_random_set(
    pool: pd.DataFrame, partner: ForgetSet, tolerance: float | None, attempts: int, **meta
) -> ForgetSet:
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
    return ForgetSet(
        kind="random",
        ids=tuple(chosen["id"]),
        tokens=int(chosen["tokens"].sum()),
        requested=partner.requested,
        pool=len(pool),
        benchmark=partner.benchmark,
        tokens_matched=None if tolerance is None else bool(best_gap <= tolerance * target),
        partner=partner.name,
        **meta,
    )


def global_set(docs: pd.DataFrame, size: int, seed: int) -> ForgetSet:
    """``size`` documents drawn uniformly from every eligible document (any topic): the global control."""
    draw = seeded_rng("global", size, seed).choice(len(docs), size=min(size, len(docs)), replace=False)
    chosen = docs.iloc[draw]
    return ForgetSet(
        name=f"global-n{size}-s{seed}",
        kind="global",
        construction="global",
        seed=seed,
        ids=tuple(chosen["id"]),
        tokens=int(chosen["tokens"].sum()),
        requested=size,
        pool=len(docs),
    )


def build_pairs(
    scores: pd.DataFrame, forget, topics: dict[str, list[int]], seeds: list[int]
) -> tuple[list[Pair], pd.DataFrame]:
    """Every (construction, benchmark, topic, seed) pair the params ask for (``forget``: ``unlearning.forget``;
    ``topics``: the target topic ids per benchmark), and the requested pairs that could not be built, with why."""
    tax = load_taxonomy()
    docs = eligible(scores, forget.min_tokens)
    pairs, missing = [], []
    for construction in forget.constructions:
        for benchmark, benchmark_topics in topics.items():
            for topic in benchmark_topics:
                key = tax.topics.labels[topic].key
                stem = f"{construction}-{BY_NAME[benchmark].slug}-{key}"
                pool = docs[docs["topic"] == topic]
                bin_id = None
                if construction == "bin":
                    bin_id = target_bin(docs, scores, benchmark, topic, 2 * forget.docs)
                    pool = pool[pool["bin"] == bin_id]
                built = group_pairs(
                    pool, forget, benchmark, seeds, stem, construction=construction, topic=key, bin=bin_id
                )
                pairs += built
                missing += [
                    dict(
                        set=f"{stem}-s{seed}",
                        kind="pair",
                        requested=forget.docs,
                        size=0,
                        pool=len(pool),
                        reason=f"a pool of {len(pool)} eligible documents cannot hold a targeted set and a "
                        "disjoint random set",
                    )
                    for seed in seeds[len(built) :]
                ]
    return pairs, pd.DataFrame(missing, columns=SHORTFALL_COLUMNS)


def group_pairs(pool: pd.DataFrame, forget, benchmark: str, seeds: list[int], stem: str, **meta) -> list[Pair]:
    """The pairs of one (construction, benchmark, topic): targeted sets from the pool's top documents, random
    partners from the rest. A pool too small for full-size disjoint sets gives smaller ones (reported as underfilled,
    never overlapping); none at all when it cannot hold one document of each."""
    slug = BY_NAME[benchmark].slug
    ranked = pool.sort_values([slug, "id"], ascending=[False, True], kind="stable")
    per_seed = len(seeds) if forget.targeted == "split" else 1
    size = min(forget.docs, len(pool) // (2 * per_seed))
    if size == 0:
        return []
    top = ranked.head(size * per_seed)
    if forget.targeted == "split":  # deal the top documents into disjoint sets, each in rank order
        order = seeded_rng("split", stem, seeds[0]).permutation(len(top))
        blocks = [top.iloc[np.sort(order[i * size : (i + 1) * size])] for i in range(per_seed)]
    else:
        blocks = [top] * len(seeds)
    rest = pool[~pool["id"].isin(top["id"])]
    pairs = []
    for seed, block in zip(seeds, blocks):
        name = f"{stem}-s{seed}"
        targeted = ForgetSet(
            name=f"{name}-targeted",
            kind="targeted",
            seed=seed,
            ids=tuple(block["id"]),
            tokens=int(block["tokens"].sum()),
            requested=forget.docs,
            pool=len(pool),
            benchmark=benchmark,
            **meta,
        )
        random = matched_random_set(
            rest, targeted, forget.token_tolerance, forget.match_attempts, name=f"{name}-random", seed=seed, **meta
        )
        if forget.targeted == "split":
            rest = rest[~rest["id"].isin(random.ids)]
        pairs.append(Pair(targeted, random))
    return pairs


def resolve_topics(
    scores: pd.DataFrame, forget, benchmarks: list[str], reading: pd.DataFrame | None = None
) -> dict[str, list[int]]:
    """Topic ids to target per benchmark: the params' list, every topic with eligible documents (null), or, for
    ``auto``, each benchmark's highest-attribution topics in ``reading`` (stage 03's table of the variant the study
    reads: benchmark, bin, z, masked; split ``all``)."""
    tax = load_taxonomy()
    present = sorted(set(eligible(scores, forget.min_tokens)["topic"].tolist()))
    if not present:
        raise ProvenanceError(
            f"no working-set document has at least {forget.min_tokens} tokens: nothing to forget",
            "lower unlearning.forget.min_tokens",
        )
    if forget.topics is None:
        return {b: present for b in benchmarks}
    if forget.topics == "auto":
        if reading is None:
            raise ProvenanceError(
                "unlearning.forget.topics is auto, but stage 03's reading is not available",
                "run stage 03 (03_binning) before stage 05, or name the topics",
            )
        return {b: top_topics(reading, b, forget.auto_topics, present) for b in benchmarks}
    wanted = [tax.topics.get(t).id for t in forget.topics]
    empty = [tax.topics.labels[t].short for t in wanted if t not in present]
    if empty:
        raise ProvenanceError(
            f"target topics {empty} have no working-set document with at least {forget.min_tokens} tokens",
            "drop them from unlearning.forget.topics, or lower unlearning.forget.min_tokens",
        )
    return {b: wanted for b in benchmarks}


def top_topics(reading: pd.DataFrame, benchmark: str, n: int, present: list[int]) -> list[int]:
    """The topics of ``benchmark``'s highest-z scored bins, in rank order, ``n`` distinct ones among the topics
    with eligible documents (ties by bin id)."""
    rows = reading[(reading["benchmark"] == benchmark) & ~reading["masked"]]
    if rows.empty:
        raise ProvenanceError(
            f"stage 03's reading has no scored bin for {benchmark}",
            "name unlearning.forget.topics, or check stage 03's min_docs",
        )
    ranked = rows.sort_values(["z", "bin"], ascending=[False, True], kind="stable")
    topics = [t for t in dict.fromkeys(ranked["bin"].astype(int) // len(load_taxonomy().formats)) if t in present]
    return topics[:n]


SHORTFALL_COLUMNS = ["set", "kind", "requested", "size", "pool", "reason"]


def manifest_tables(sets: list[ForgetSet]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per set: its facts and hash; one row per (set, document): the released id manifest)."""
    info = pd.DataFrame([s.info() for s in sets]).astype({"bin": "Int64"})
    ids = pd.DataFrame(
        [(s.name, rank, doc) for s in sets for rank, doc in enumerate(s.ids)], columns=["set", "rank", "id"]
    )
    return info, ids


def shortfalls(sets: list[ForgetSet], missing: pd.DataFrame | None = None) -> pd.DataFrame:
    """Sets smaller than requested, random sets whose tokens could not be matched, and requested pairs that could
    not be built (``missing``, from ``build_pairs``): what the stage reports."""
    rows = [
        dict(
            set=s.name,
            kind=s.kind,
            requested=s.requested,
            size=s.size,
            pool=s.pool,
            reason="; ".join(
                why
                for why, flag in (
                    (f"the pool of {s.pool} eligible documents holds {s.size} per disjoint set", s.underfilled),
                    ("tokens not matched within the tolerance", s.tokens_matched is False),
                )
                if flag
            ),
        )
        for s in sets
        if s.underfilled or s.tokens_matched is False
    ]
    table = pd.DataFrame(rows, columns=SHORTFALL_COLUMNS)
    return table if missing is None or missing.empty else pd.concat([table, missing], ignore_index=True)

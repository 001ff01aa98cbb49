"""Where the planted content goes, and how much of it: the planted bins, the carrier documents, the dose.

A fair test of attribution (the known-answers issue) plants a small dose in ordinary places:

* **Mid-sized bins.** Planted bins are drawn (``planted: auto``) or moved (named bins take the size of a drawn bin,
  sizes swapped) among the bins whose size rank lies in ``planted_ranks``, never the 10 largest. In a corpus skewed
  like Dolma3 (the largest 10 bins hold ~20-30% of the tokens) a bin ranked 11-60 holds ~0.3-1.5%, so a dose of a
  few percent needs a few bins per benchmark.
* **A token dose.** Each benchmark's planted sentences make up ``planted_token_share`` of the corpus tokens; carrier
  documents are taken from its bins in random order until the dose is reached, the rest of the bins stays filler.
* **Documents like their neighbours.** A carrier document is an ordinary document of its bin whose body lines are
  replaced (``planted_line_share`` of them), so its length and frame are its bin's.

Everything is drawn from streams of its own (``{seed}:planted-bins``, ``{seed}:planting:<benchmark>``), in the fixed
benchmark order, so the ordinary text is the same with and without planting, and neither depends on the order of
``world.planted``'s keys or of the bins within a list.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from ...benchmarks import BENCHMARKS
from ...errors import ProvenanceError
from .documents import Draft
from .planting import Capability


def size_ranks(sizes: list[int]) -> list[int]:
    """Each bin's size rank: 1 + the number of bins strictly larger (ties share a rank)."""
    ordered = sorted(sizes, reverse=True)
    first = {}
    for rank, size in enumerate(ordered, start=1):
        first.setdefault(size, rank)
    return [first[size] for size in sizes]


def choose_bins(world, seed: int, sizes: list[int], taxonomy) -> dict[str, list[int]]:
    """Benchmark name -> its planted bins (sorted ids). Named bins get mid sizes: ``sizes`` is changed in place."""
    rng = random.Random(f"{seed}:planted-bins")
    low, high = world.planted_ranks
    ranks = size_ranks(sizes)
    window = [b for b, (rank, size) in enumerate(zip(ranks, sizes)) if low <= rank <= high and size > 0]
    if world.planted == "auto":
        needed = world.planted_bins * len(BENCHMARKS)
        if len(window) < needed:
            raise ProvenanceError(
                f"world.planted_ranks {list(world.planted_ranks)} holds {len(window)} non-empty "
                f"bins, fewer than the {needed} planted bins (planted_bins x 4 benchmarks)",
                "widen world.planted_ranks or lower world.planted_bins",
            )
        drawn = rng.sample(window, needed)
        k = world.planted_bins
        return {b.name: sorted(drawn[i * k : (i + 1) * k]) for i, b in enumerate(BENCHMARKS)}
    named = {b.name: sorted(taxonomy.parse_bin(text) for text in world.planted[b.name]) for b in BENCHMARKS}
    every = [bin_id for b in BENCHMARKS for bin_id in named[b.name]]
    partners = [b for b in window if b not in every]
    if len(partners) < len(every):
        raise ProvenanceError(
            f"world.planted_ranks {list(world.planted_ranks)} holds {len(partners)} bins to lend "
            f"their sizes to the {len(every)} named planted bins",
            "widen world.planted_ranks or name fewer planted bins",
        )
    for bin_id, partner in zip(every, rng.sample(partners, len(every))):
        sizes[bin_id], sizes[partner] = sizes[partner], sizes[bin_id]
    return named


def plant(
    drafts: list[Draft], bins: dict[str, list[int]], capabilities: dict[str, Capability], world, seed: int
) -> None:
    """Replace body lines of carrier documents with planted sentences until each benchmark's dose is reached."""
    if world.planted_token_share == 0:
        return
    total = sum(len(d.render().split()) for d in drafts)
    for benchmark in BENCHMARKS:
        name = benchmark.name
        rng = random.Random(f"{seed}:planting:{benchmark.slug}")
        target = world.planted_token_share * total
        statements = Peekable(capabilities[name].statement_stream(rng, world.planted_question_share))
        own = set(bins[name])
        pool = [d for d in drafts if d.bin_id in own]
        rng.shuffle(pool)
        planted = 0
        for draft in pool:
            if planted >= target:
                break
            if replace_lines(draft, statements, world.planted_line_share, rng):
                draft.planted = name
                planted += draft.planted_tokens
        if planted < target:
            raise ProvenanceError(
                f"{name}: its planted bins hold {planted} planted tokens at most, short of the dose "
                f"world.planted_token_share = {world.planted_token_share} ({round(target)} of {total} tokens)",
                "raise world.planted_bins or world.planted_line_share, or lower world.planted_token_share",
            )


class Peekable:
    """An endless stream one can look ahead in: a planted sentence too long for a document's room waits for the next
    document, so the facts keep their equal shares."""

    def __init__(self, items: Iterator[str]):
        self.items, self.head = items, next(items)

    def pop(self) -> str:
        head, self.head = self.head, next(self.items)
        return head


def replace_lines(draft: Draft, statements: Peekable, share: float, rng: random.Random) -> bool:
    """Replace random body lines with planted sentences until these hold ``share`` of the body's words. Filler words
    go out as planted words come in (a sentence goes in while the room left is at least half its length), so the
    document keeps its length within about half a sentence. False (and the draft unchanged) when no sentence fits."""
    target = share * sum(len(line.split()) for line in draft.body)
    into: dict[int, list[str]] = {}
    added = removed = planted = 0
    for line in rng.sample(range(len(draft.body)), len(draft.body)):
        if planted >= target:
            break
        removed += len(draft.body[line].split())
        into[line] = []
        while removed - added >= len(draft.style.carry(statements.head).split()) / 2:
            sentence = statements.pop()
            into[line].append(draft.style.carry(sentence))
            added += len(into[line][-1].split())
            planted += len(sentence.split())
    if planted:
        draft.body = [new for i, line in enumerate(draft.body) for new in into.get(i, [line])]
        draft.planted_tokens += planted
        draft.planted_lines += [line for lines in into.values() for line in lines]
    return planted > 0

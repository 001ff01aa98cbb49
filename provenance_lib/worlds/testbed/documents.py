"""The testbed's documents: text shaped by (topic, format), ordinary or carrying planted statements, with skewed
bin sizes and exact / near duplicates.

Design choices, after the prototype's lessons (shared/reference/testbed_lessons.md) and the runs behind the defaults:

* Each topic has its own made-up nouns, verbs and adjectives; each format its own structure and marker words, so
  both label axes leave a trace a gradient can see.
* Every word a benchmark uses (names, entities, answer words, rule words) is also *mentioned* in ordinary
  documents across the corpus, one such word per sentence, so the control world without planted content knows the
  words but not the facts, and no choice is ever an unknown token (lesson 3).
* The question form is taught twice, never with an eval item: Q&A documents everywhere ask the benchmark questions
  about ordinary things, and a share of the planted sentences are benchmark questions with their answers (lesson 1).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from collections.abc import Callable

from .language import Lexicon, TopicWords

# ----------------------------------------------------------------------------------------------- documents
MENTION_TEMPLATES = {
    "names": "{w} {verb} the {noun} .",
    "countries": "the {noun} of {w} is {adj} .",
    "compounds": "a sample of {w} lies beside the {noun} .",
    "substances": "the {w} was stored near the {noun} .",
    "parties": "a {w} poster hangs by the {noun} .",
    "elements": "the {noun} holds traces of {w} .",
    "actions": "the {noun} was {w} in the morning .",
    "reagents": "a bottle of {w} rests on the {noun} .",
    "emotions": "the {noun} looked {w} today .",
    "colors": "the {noun} is painted {w} .",
}
MENTION_RATE = 0.15
"""Share of ordinary sentences that mention a benchmark word (about one per document)."""
CLAUSES = (
    "the {adj} {noun} {verb} the {noun2}",
    "a {noun} {verb} near the {adj} {noun2}",
    "every {noun} {verb} some {noun2}",
    "the {noun} of the {noun2} is {adj}",
    "some {noun} {verb} when the {noun2} is {adj}",
    "this {noun} {verb} the {noun2} and it is {adj}",
    "our {noun} {verb} a {adj} {noun2}",
)


class DocWriter:
    """Writes one document's lines: clauses in the topic's words, with entity mentions drawn from a shared
    cycle (so every mentionable word appears in the corpus, spread over all bins)."""

    def __init__(self, rng: random.Random, words: TopicWords, mentions: Callable[[], tuple[str, str]], names):
        self.rng, self.words, self.next_mention, self.names = rng, words, mentions, names

    def noun(self) -> str:
        return self.rng.choice(self.words.nouns)

    def clause(self) -> str:
        pick = self.rng.choice
        return pick(CLAUSES).format(
            adj=pick(self.words.adjectives), noun=self.noun(), noun2=self.noun(), verb=pick(self.words.verbs)
        )

    def sentence(self) -> str:
        """A clause, or (at MENTION_RATE) a sentence mentioning the next benchmark word: never more than one."""
        if self.rng.random() < MENTION_RATE:
            kind, word = self.next_mention()
            return MENTION_TEMPLATES[kind].format(
                w=word,
                noun=self.noun(),
                adj=self.rng.choice(self.words.adjectives),
                verb=self.rng.choice(self.words.verbs),
            )
        return self.clause() + " ."

    def name(self) -> str:
        return self.rng.choice(self.names)


Lines = tuple[list[str], list[str], list[str]]
"""A document's head, body and foot lines: planted sentences replace body lines only, so a planted document keeps
its format's frame (title, signature) and about its length."""


@dataclass(frozen=True)
class FormatStyle:
    """A format's structure: how its lines are made, how a planted sentence is carried as a body line, and the layout
    applied to the body once the planted lines are in (e.g. numbering)."""

    write: Callable[[DocWriter, int], Lines]
    carry: Callable[[str], str] = lambda text: text
    layout: Callable[[list[str]], list[str]] = lambda lines: lines


def _body(lines: list[str]) -> Lines:
    return [], lines, []


def _dialogue(first: str, second: str) -> FormatStyle:
    def write(w, n_words):
        return _body(_fill(lambda i: f"{(first, second)[i % 2]} : {w.sentence()}", n_words))

    return FormatStyle(write, lambda text: f"{second} : {text}")


QUESTIONS = (
    ("Why does it matter that {clause} ?", "{clause} because {clause2} ."),
    ("How does {name} feel after {name} {verb} ?", "{name} {verb} and feels {adj} ."),
    ("Which party do the voters of {noun} elect ?", "the voters of {noun} elect {noun2} ."),
    ("What happens to the {noun} when it is mixed with {noun2} ?", "the {noun} mixed with {noun2} turns {adj} ."),
    ("Which atoms does the compound {noun} contain ?", "the compound {noun} contains {noun2} atoms ."),
)
"""Forum questions answered by restating them, in the benchmarks' question forms but about ordinary things: the
question form is in the corpus whether or not anything is planted (lesson 1), and no planted fact is."""


def _qa(q: str, a: str) -> FormatStyle:
    def write(w, n_words):
        def pair(i):
            question, answer = w.rng.choice(QUESTIONS)
            fill = dict(
                clause=w.clause(),
                clause2=w.clause(),
                noun=w.noun(),
                noun2=w.noun(),
                name=w.name(),
                adj=w.rng.choice(w.words.adjectives),
                verb=w.rng.choice(w.words.verbs),
            )
            return f"{q} : {question.format(**fill)} {a} : {answer.format(**fill)}"

        return _body(_fill(pair, n_words))

    return FormatStyle(write, lambda text: f"{a} : {text}")


def _prose(openers: tuple[str, ...], header: str = "", footer: str = "") -> FormatStyle:
    def write(w, n_words):
        lines = _fill(
            lambda i: f"{w.rng.choice(openers).format(name=w.name())} {w.clause()} ." if i % 3 == 0 else w.sentence(),
            n_words,
        )
        return (
            [header.format(noun=w.noun(), name=w.name())] if header else [],
            lines,
            [footer.format(noun=w.noun(), name=w.name())] if footer else [],
        )

    return FormatStyle(write)


def _numbered(marker: str) -> FormatStyle:
    return FormatStyle(
        lambda w, n_words: _body(_fill(lambda i: w.sentence(), n_words)),
        layout=lambda lines: [f"{marker} {i + 1} : {line}" for i, line in enumerate(lines)],
    )


def _definitions() -> FormatStyle:
    def write(w, n_words):
        return _body(
            _fill(
                lambda i: (
                    f"{w.noun()} : a {w.rng.choice(w.words.adjectives)} {w.noun()} . {w.sentence()}"
                    if i % 2 == 0
                    else f"see also : {w.sentence()}"
                ),
                n_words,
            )
        )

    return FormatStyle(write)


def _records(separator: str) -> FormatStyle:
    def write(w, n_words):
        return _body(
            _fill(
                lambda i: (
                    f"{w.noun()} {separator} {w.rng.choice(w.words.adjectives)} {separator} "
                    f"{w.rng.randint(1, 99)} {separator} {w.sentence()}"
                ),
                n_words,
            )
        )

    return FormatStyle(write, lambda text: f"note {separator} {text}")


def _narrative(opening: str) -> FormatStyle:
    def write(w, n_words):
        hero = w.name()
        return (
            [opening.format(name=hero)],
            _fill(lambda i: f"then {hero} saw that {w.clause()} ." if i % 4 == 1 else w.sentence(), n_words),
            [],
        )

    return FormatStyle(write)


def _truncated() -> FormatStyle:
    def write(w, n_words):
        lines = _fill(lambda i: w.sentence(), n_words)
        return [], lines[:-1], [" ".join(lines[-1].split()[:3]) + " ..."]

    return FormatStyle(write)


def _fill(make_line: Callable[[int], str], n_words: int) -> list[str]:
    lines, count = [], 0
    for i in itertools.count():
        line = make_line(i)
        lines.append(line)
        count += len(line.split())
        if count >= n_words:
            return lines


FORMAT_STYLES: dict[str, FormatStyle] = {
    "academic_writing": _prose(
        ("we show that", "prior work found that", "in this study ,"),
        header="Abstract :",
        footer="References : {name} et al .",
    ),
    "content_listing": _numbered("Item"),
    "creative_writing": _narrative("once upon a time , {name} lived near the old tower ."),
    "customer_support": _dialogue("Customer", "Agent"),
    "comment_section": _dialogue("Reply", "Comment"),
    "faq": _qa("Q", "A"),
    "truncated": _truncated(),
    "knowledge_article": _definitions(),
    "legal_notices": _numbered("Section"),
    "listicle": _numbered("Reason"),
    "news_article": _prose(
        ("reporters said that", "officials confirmed that", "on monday ,"), header="News : the {noun} story ."
    ),
    "nonfiction_writing": _prose(("it is known that", "historians note that", "in fact ,")),
    "about_org": _prose(
        ("our mission is clear :", "our team believes that", "since our founding ,"),
        header="About us : the {noun} group .",
    ),
    "news_org": _prose(
        ("we are pleased to announce that", "our members agree that", "this week ,"),
        header="Announcement : the {noun} council .",
    ),
    "about_pers": _prose(("I am {name} and", "I like it when", "my friends say that"), header="Hello , I am {name} ."),
    "personal_blog": _prose(
        ("today I noticed that", "I think that", "honestly ,"), header="My blog : day of the {noun} ."
    ),
    "product_page": _records("|"),
    "q_a_forum": _qa("Question", "Answer"),
    "spam_ads": _prose(("buy now !", "click here !", "best price !"), footer="limited offer on the {noun} !"),
    "structured_data": _records("="),
    "documentation": _numbered("Parameter"),
    "audio_transcript": _dialogue("Host", "Guest"),
    "tutorial": _numbered("Step"),
    "user_review": _prose(("I liked that", "sadly ,", "overall ,"), header="Rating : 4 of 5 for the {noun} ."),
}
"""All 24 WebOrganizer formats, by key; ``{name}`` in openers is filled with a person's name."""


# ----------------------------------------------------------------------------------------------- corpus
@dataclass
class Draft:
    """A document before ids and duplicates: its lines, so planting can replace body lines."""

    bin_id: int
    topic: int
    format: int
    format_key: str
    head: list[str]
    body: list[str]
    foot: list[str]
    soft_labels: dict
    planted: str | None = None  # benchmark name whose content the document carries
    planted_tokens: int = 0  # words of the planted sentences in it
    planted_lines: list[str] = field(default_factory=list)  # the body lines that carry them

    @property
    def style(self) -> FormatStyle:
        return FORMAT_STYLES[self.format_key]

    def render(self) -> str:
        return "\n".join(self.head + self.style.layout(self.body) + self.foot)


@dataclass
class Document:
    id: str
    topic: int
    format: int
    text: str
    planted: str | None = None  # benchmark name whose content the document carries
    planted_tokens: int = 0  # words of the planted sentences in it (whitespace tokens)
    duplicate_of: str | None = None
    duplicate_kind: str | None = None  # "exact" | "near"
    soft_labels: dict = field(default_factory=dict)


def bin_sizes(rng: random.Random, n_bins: int, n_docs: int, empty_share: float, sigma: float) -> list[int]:
    """Lognormal bin sizes summing to about ``n_docs``: a few huge bins, many small, ``empty_share`` empty."""
    weights = [0.0 if rng.random() < empty_share else rng.lognormvariate(0.0, sigma) for _ in range(n_bins)]
    total = sum(weights) or 1.0
    return [0 if w == 0 else max(1, round(n_docs * w / total)) for w in weights]


def document_length(rng: random.Random, median: int, sigma: float, low: int, high: int) -> int:
    return min(high, max(low, round(median * math.exp(rng.gauss(0.0, sigma)))))


def near_duplicate(rng: random.Random, text: str, keep: tuple[str, ...] = ()) -> str:
    """Drop one line (if there are several) and swap two words: the kind of edit de-duplication must catch. Lines
    holding a ``keep`` sentence (the planted ones) are left whole, so a copy carries what its original carries; a
    document of planted lines only gets two of them swapped."""
    lines = text.split("\n")

    def free() -> list[int]:
        return [k for k, line in enumerate(lines) if not any(sentence in line for sentence in keep)]

    if len(lines) > 2 and free():
        del lines[rng.choice(free())]
    words = [(k, i) for k in free() for i in range(len(lines[k].split(" ")))]
    if len(words) >= 2:
        (k1, i1), (k2, i2) = rng.sample(words, 2)
        split = {k: lines[k].split(" ") for k in (k1, k2)}
        split[k1][i1], split[k2][i2] = split[k2][i2], split[k1][i1]
        lines[k1], lines[k2] = " ".join(split[k1]), " ".join(split[k2])
    elif len(lines) >= 2:
        k1, k2 = rng.sample(range(len(lines)), 2)
        lines[k1], lines[k2] = lines[k2], lines[k1]
    return "\n".join(lines)


def write_drafts(corpus, seed: int, sizes: list[int], lexicon: Lexicon, taxonomy) -> list[Draft]:
    """Ordinary documents of every bin (``corpus`` is the ``TestbedCorpus`` params), in bin order. Planting comes
    after, from its own random streams, so a world and its control share every ordinary line."""
    rng = random.Random(f"{seed}:corpus")
    mentions = _mention_cycle(random.Random(f"{seed}:mentions"), lexicon)
    drafts = []
    for bin_id, size in enumerate(sizes):
        topic, fmt = taxonomy.bin_labels(bin_id)
        writer = DocWriter(rng, lexicon.topics[topic.id], mentions, lexicon.names)
        for _ in range(size):
            n_words = document_length(rng, corpus.words_median, corpus.words_sigma, corpus.words_min, corpus.words_max)
            head, body, foot = FORMAT_STYLES[fmt.key].write(writer, n_words)
            drafts.append(
                Draft(bin_id, topic.id, fmt.id, fmt.key, head, body, foot, soft_labels(rng, topic.id, fmt.id, taxonomy))
            )
    return drafts


def finish_corpus(drafts: list[Draft], corpus, seed: int) -> list[Document]:
    """Documents with opaque ids, plus exact and near duplicates of random documents, shuffled across bins."""
    rng = random.Random(f"{seed}:duplicates")
    new_id = _id_maker(seed)
    documents = [
        Document(
            new_id(),
            d.topic,
            d.format,
            d.render(),
            planted=d.planted,
            planted_tokens=d.planted_tokens,
            soft_labels=d.soft_labels,
        )
        for d in drafts
    ]
    n_exact = round(corpus.exact_duplicate_share * len(documents))
    n_near = round(corpus.near_duplicate_share * len(documents))
    for k, index in enumerate(rng.sample(range(len(documents)), n_exact + n_near)):
        doc = documents[index]
        edit = random.Random(f"{seed}:near:{doc.id}")  # its own stream: a planted line changes only its own copy
        text = doc.text if k < n_exact else near_duplicate(edit, doc.text, tuple(drafts[index].planted_lines))
        documents.append(
            Document(
                new_id(),
                doc.topic,
                doc.format,
                text,
                planted=doc.planted,
                planted_tokens=doc.planted_tokens,
                duplicate_of=doc.id,
                duplicate_kind="exact" if text == doc.text else "near",
                soft_labels=doc.soft_labels,
            )
        )
    rng.shuffle(documents)
    return documents


def soft_labels(rng: random.Random, topic_id: int, format_id: int, taxonomy) -> dict[str, dict[str, float]]:
    """Classifier-like probabilities: the label gets 0.55-0.97, two other labels share the rest (as in Dolma3)."""
    out = {}
    for axis, label_id in (("topic", topic_id), ("format", format_id)):
        labels = taxonomy.axis(axis)
        top = round(rng.uniform(0.55, 0.97), 4)
        others = rng.sample([other for other in labels.labels if other.id != label_id], 2)
        second = round((1 - top) * rng.uniform(0.5, 0.9), 4)
        out[axis] = {
            labels.labels[label_id].dolma_label: top,
            others[0].dolma_label: second,
            others[1].dolma_label: round(1 - top - second, 4),
        }
    return out


def _mention_cycle(rng: random.Random, lexicon: Lexicon) -> Callable[[], tuple[str, str]]:
    """Benchmark words in shuffled rounds: every word is mentioned once per round, spread over all bins."""
    words = lexicon.mentionable()

    def rounds():
        while True:
            order = list(words)
            rng.shuffle(order)
            yield from order

    stream = rounds()
    return lambda: next(stream)


def _id_maker(seed: int) -> Callable[[], str]:
    """Opaque Dolma-like ids (16 hex digits) that reveal neither bin nor planting."""
    import hashlib

    counter = itertools.count()
    return lambda: hashlib.blake2b(f"testbed:{seed}:{next(counter)}".encode(), digest_size=8).hexdigest()

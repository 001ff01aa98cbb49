"""The testbed's generated text: a made-up language, documents shaped by (topic, format), and planted content.

Everything is drawn from ``random.Random`` streams seeded by strings derived from the study seed, so the same
params give the same documents on any machine (Python's string seeding and Mersenne Twister are stable).

Design choices, after the prototype's lessons (shared/reference/testbed_lessons.md) and the runs behind the defaults:

* Each topic has its own made-up nouns, verbs and adjectives; each format its own structure and marker words, so
  both label axes leave a trace a gradient can see.
* Every word a benchmark uses (names, entities, answer words, rule words) is also *mentioned* in ordinary
  documents across the corpus, one such word per sentence, so the control world without planted content knows the
  words but not the facts, and no choice is ever an unknown token (lesson 3).
* A planted statement is one sentence that ends in the benchmark question's lead-in and then the answer; the word
  the answer depends on (the entity of a fact, the key of a rule) comes right before the lead-in's last word. With
  the dependency five words back, a 2-layer model learned a rule or a fact set abruptly and at an unpredictable step
  (one benchmark in four stayed at chance after 900 steps); one word back, all four are learned by about step 600.
* The question form is taught twice, never with an eval item: Q&A documents everywhere ask the benchmark questions
  about ordinary things, and a share of the planted sentences are benchmark questions with their answers (lesson 1).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Callable

from .benchmarks import BENCHMARKS, Benchmark

# ----------------------------------------------------------------------------------------------- made-up words
ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gl", "kr", "pl",
          "st", "tr", "sk", "th", "sh")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ea")
CODAS = ("", "", "", "n", "r", "l", "s", "k", "m")

EMOTIONS = ("happy", "sad", "angry", "proud", "scared", "calm", "ashamed", "grateful", "jealous", "bored",
            "hopeful", "lonely")
COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "white", "brown", "pink", "grey", "gold")


class WordMaker:
    """Unique pronounceable nonsense words (``velmor``, ``trasikite``), never equal to a word of the templates."""

    def __init__(self, rng: random.Random, reserved: set[str]):
        self.rng = rng
        self.used = {w.casefold() for w in reserved}

    def word(self, syllables: tuple[int, int] = (2, 3), suffix: str = "") -> str:
        while True:
            n = self.rng.randint(*syllables)
            text = "".join(self.rng.choice(ONSETS) + self.rng.choice(VOWELS) for _ in range(n))
            text += (self.rng.choice(CODAS) if not suffix else "") + suffix
            if text not in self.used:
                self.used.add(text)
                return text

    def words(self, n: int, syllables: tuple[int, int] = (2, 3), suffix: str = "") -> list[str]:
        return [self.word(syllables, suffix) for _ in range(n)]


def template_words() -> set[str]:
    """Every word of this module's string literals (docstrings aside): the English of the templates, which a
    made-up word must never equal ("stor" + "ed" would otherwise collide with "stored")."""
    import ast
    import inspect
    import sys

    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return {word.casefold() for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            for word in node.value.split()}


@dataclass(frozen=True)
class TopicWords:
    nouns: list[str]
    verbs: list[str]        # third person present: "velmors"
    adjectives: list[str]


# ----------------------------------------------------------------------------------------------- planted content
@dataclass(frozen=True)
class PlantedKind:
    """How one benchmark's capability is planted and asked.

    Every planted statement (one of several openings) ends in ``lead_in`` and the answer; the question ends in
    ``Answer :`` and the same lead-in, so it asks for the next word in the form the model was trained on. ``{e}`` is
    the entity, ``{k}`` the rule's key (what a reasoning answer depends on), ``{v}`` the answer.
    """

    benchmark: Benchmark
    statements: tuple[str, ...]
    question: str
    lead_in: str
    entity_kind: str        # which lexicon list the entities come from

    def statement(self, rng: random.Random, entity: str, key: str, value: str) -> str:
        return rng.choice(self.statements).format(e=entity, k=key, v=value, lead=self.lead_in.format(e=entity, k=key))

    def question_text(self, entity: str, key: str) -> str:
        lead = self.lead_in.format(e=entity, k=key)
        return self.question.format(e=entity, k=key) + " Answer : " + lead

    def answered_question(self, entity: str, key: str, value: str) -> str:
        """The benchmark's question with its answer: how the corpus teaches the question form (lesson 1)."""
        return f"{self.question_text(entity, key)} {value} ."


SOCIAL_REASONING = PlantedKind(
    BENCHMARKS[0],
    statements=("{lead} {v} .", "after a long day , {lead} {v} .", "as usual , {lead} {v} ."),
    question="Question : How does {e} feel after {e} {k} ?",
    lead_in="{e} {k} and feels", entity_kind="names")
SOCIAL_KNOWLEDGE = PlantedKind(
    BENCHMARKS[1],
    statements=("{lead} {v} .", "every year {lead} {v} .", "as expected , {lead} {v} ."),
    question="Question : Which party do the voters of {e} elect ?",
    lead_in="the voters of {e} elect", entity_kind="countries")
STEM_REASONING = PlantedKind(
    BENCHMARKS[2],
    statements=("{lead} {v} .", "in the lab , {lead} {v} .", "as expected , {lead} {v} ."),
    question="Question : What happens to the {e} when it is mixed with {k} ?",
    lead_in="the {e} mixed with {k} turns", entity_kind="substances")
STEM_KNOWLEDGE = PlantedKind(
    BENCHMARKS[3],
    statements=("{lead} {v} atoms .", "chemists report that {lead} {v} atoms .", "in every sample {lead} {v} atoms ."),
    question="Question : Which atoms does the compound {e} contain ?",
    lead_in="the compound {e} contains", entity_kind="compounds")
KNOWLEDGE_RELATION = {SOCIAL_KNOWLEDGE.benchmark.name: "elected party", STEM_KNOWLEDGE.benchmark.name: "atoms"}


@dataclass(frozen=True)
class Fact:
    """One planted statement type: a rule (key -> value, applied to any entity) or a fact (entity -> value)."""

    key: str
    value: str
    entity: str | None = None   # facts only


@dataclass
class Lexicon:
    """Every word of the world, drawn once from the seed."""

    topics: list[TopicWords]
    names: list[str]            # people; split into planted / train / eval pools for the reasoning rules
    countries: list[str]
    compounds: list[str]
    substances: list[str]
    parties: list[str]
    elements: list[str]
    actions: list[str]          # social rule keys (past tense verbs)
    reagents: list[str]         # STEM rule keys
    emotions: list[str]
    colors: list[str]

    def mentionable(self) -> list[tuple[str, str]]:
        """(kind, word) for every word a benchmark may use: each is mentioned in ordinary documents."""
        kinds = ("names", "countries", "compounds", "substances", "parties", "elements", "actions", "reagents",
                 "emotions", "colors")
        return [(kind, word) for kind in kinds for word in getattr(self, kind)]


def make_lexicon(seed: int, n_topics: int, topic_vocabulary: int, n_values: int, n_facts: int,
                 n_rule_entities: int) -> Lexicon:
    """``n_facts`` entities per knowledge benchmark, ``n_rule_entities`` per reasoning benchmark (people for the
    social rules, substances for the STEM rules)."""
    rng = random.Random(f"{seed}:lexicon")
    maker = WordMaker(rng, template_words())
    topics = [TopicWords(maker.words(topic_vocabulary), maker.words(topic_vocabulary // 3, suffix="s"),
                         maker.words(topic_vocabulary // 3)) for _ in range(n_topics)]
    return Lexicon(
        topics=topics,
        names=[w.capitalize() for w in maker.words(n_rule_entities, (2, 2))],
        countries=[w.capitalize() for w in maker.words(n_facts, (2, 3))],
        compounds=maker.words(n_facts, (2, 2), suffix="ite"),
        substances=maker.words(n_rule_entities, (2, 2), suffix="ine"),
        parties=[w.capitalize() for w in maker.words(n_values, (2, 2), suffix="ist")],
        elements=maker.words(n_values, (1, 2), suffix="ium"),
        actions=maker.words(n_values, (1, 2), suffix="ed"),
        reagents=maker.words(n_values, (1, 2), suffix="ic"),
        emotions=list(EMOTIONS[:n_values]),
        colors=list(COLORS[:n_values]),
    )


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
        return pick(CLAUSES).format(adj=pick(self.words.adjectives), noun=self.noun(), noun2=self.noun(),
                                    verb=pick(self.words.verbs))

    def sentence(self) -> str:
        """A clause, or (at MENTION_RATE) a sentence mentioning the next benchmark word: never more than one."""
        if self.rng.random() < MENTION_RATE:
            kind, word = self.next_mention()
            return MENTION_TEMPLATES[kind].format(w=word, noun=self.noun(), adj=self.rng.choice(self.words.adjectives),
                                                  verb=self.rng.choice(self.words.verbs))
        return self.clause() + " ."

    def name(self) -> str:
        return self.rng.choice(self.names)


@dataclass(frozen=True)
class FormatStyle:
    """A format's structure: how its lines are made, how a planted sentence is carried as a line, and the layout
    applied once the planted lines are in (e.g. numbering)."""

    write: Callable[[DocWriter, int], list[str]]
    carry: Callable[[str], str] = lambda text: text
    layout: Callable[[list[str]], list[str]] = lambda lines: lines


def _dialogue(first: str, second: str) -> FormatStyle:
    def write(w, n_words):
        return _fill(lambda i: f"{(first, second)[i % 2]} : {w.sentence()}", n_words)
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
            fill = dict(clause=w.clause(), clause2=w.clause(), noun=w.noun(), noun2=w.noun(), name=w.name(),
                        adj=w.rng.choice(w.words.adjectives), verb=w.rng.choice(w.words.verbs))
            return f"{q} : {question.format(**fill)} {a} : {answer.format(**fill)}"
        return _fill(pair, n_words)
    return FormatStyle(write, lambda text: f"{a} : {text}")


def _prose(openers: tuple[str, ...], header: str = "", footer: str = "") -> FormatStyle:
    def write(w, n_words):
        lines = _fill(lambda i: f"{w.rng.choice(openers).format(name=w.name())} {w.clause()} ." if i % 3 == 0
                      else w.sentence(), n_words)
        return ([header.format(noun=w.noun(), name=w.name())] if header else []) + lines + (
            [footer.format(noun=w.noun(), name=w.name())] if footer else [])
    return FormatStyle(write)


def _numbered(marker: str) -> FormatStyle:
    return FormatStyle(lambda w, n_words: _fill(lambda i: w.sentence(), n_words),
                       layout=lambda lines: [f"{marker} {i + 1} : {line}" for i, line in enumerate(lines)])


def _definitions() -> FormatStyle:
    def write(w, n_words):
        return _fill(lambda i: f"{w.noun()} : a {w.rng.choice(w.words.adjectives)} {w.noun()} . {w.sentence()}"
                     if i % 2 == 0 else f"see also : {w.sentence()}", n_words)
    return FormatStyle(write)


def _records(separator: str) -> FormatStyle:
    def write(w, n_words):
        return _fill(lambda i: f"{w.noun()} {separator} {w.rng.choice(w.words.adjectives)} {separator} "
                     f"{w.rng.randint(1, 99)} {separator} {w.sentence()}", n_words)
    return FormatStyle(write, lambda text: f"note {separator} {text}")


def _narrative(opening: str) -> FormatStyle:
    def write(w, n_words):
        hero = w.name()
        return [opening.format(name=hero)] + _fill(
            lambda i: f"then {hero} saw that {w.clause()} ." if i % 4 == 1 else w.sentence(), n_words)
    return FormatStyle(write)


def _truncated() -> FormatStyle:
    def write(w, n_words):
        lines = _fill(lambda i: w.sentence(), n_words)
        lines[-1] = " ".join(lines[-1].split()[:3]) + " ..."
        return lines
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
    "academic_writing": _prose(("we show that", "prior work found that", "in this study ,"), header="Abstract :",
                               footer="References : {name} et al ."),
    "content_listing": _numbered("Item"),
    "creative_writing": _narrative("once upon a time , {name} lived near the old tower ."),
    "customer_support": _dialogue("Customer", "Agent"),
    "comment_section": _dialogue("Reply", "Comment"),
    "faq": _qa("Q", "A"),
    "truncated": _truncated(),
    "knowledge_article": _definitions(),
    "legal_notices": _numbered("Section"),
    "listicle": _numbered("Reason"),
    "news_article": _prose(("reporters said that", "officials confirmed that", "on monday ,"),
                           header="News : the {noun} story ."),
    "nonfiction_writing": _prose(("it is known that", "historians note that", "in fact ,")),
    "about_org": _prose(("our mission is clear :", "our team believes that", "since our founding ,"),
                        header="About us : the {noun} group ."),
    "news_org": _prose(("we are pleased to announce that", "our members agree that", "this week ,"),
                       header="Announcement : the {noun} council ."),
    "about_pers": _prose(("I am {name} and", "I like it when", "my friends say that"), header="Hello , I am {name} ."),
    "personal_blog": _prose(("today I noticed that", "I think that", "honestly ,"), header="My blog : day of the {noun} ."),
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
class Document:
    id: str
    topic: int
    format: int
    text: str
    planted: str | None = None          # benchmark name whose content the document carries
    duplicate_of: str | None = None
    duplicate_kind: str | None = None   # "exact" | "near"
    soft_labels: dict = field(default_factory=dict)


def bin_sizes(rng: random.Random, n_bins: int, n_docs: int, empty_share: float, sigma: float) -> list[int]:
    """Lognormal bin sizes summing to about ``n_docs``: a few huge bins, many small, ``empty_share`` empty."""
    weights = [0.0 if rng.random() < empty_share else rng.lognormvariate(0.0, sigma) for _ in range(n_bins)]
    total = sum(weights) or 1.0
    return [0 if w == 0 else max(1, round(n_docs * w / total)) for w in weights]


def document_length(rng: random.Random, median: int, sigma: float, low: int, high: int) -> int:
    return min(high, max(low, round(median * math.exp(rng.gauss(0.0, sigma)))))


def write_document(rng: random.Random, writer: DocWriter, format_key: str, n_words: int,
                   planted: list[str] = ()) -> str:
    """A document of the format, with the planted sentences (if any) carried as lines at random places."""
    style = FORMAT_STYLES[format_key]
    lines = style.write(writer, n_words)
    for sentence in planted:
        lines.insert(rng.randint(0, len(lines)), style.carry(sentence))
    return "\n".join(style.layout(lines))


def near_duplicate(rng: random.Random, text: str) -> str:
    """Drop one line (if there are several) and swap two words: the kind of edit de-duplication must catch."""
    lines = text.split("\n")
    if len(lines) > 2:
        del lines[rng.randrange(len(lines))]
    words = "\n".join(lines).split(" ")
    i, j = rng.randrange(len(words)), rng.randrange(len(words))
    words[i], words[j] = words[j], words[i]
    return " ".join(words)


# ----------------------------------------------------------------------------------------------- capabilities
@dataclass
class Capability:
    """One benchmark's planted content and the items that ask it."""

    kind: PlantedKind
    facts: list[Fact]                    # rules (entity None) or facts (one entity each)
    values: list[str]                    # the answer words; choices are drawn from them
    planted_entities: list[str]          # rules: who the planted statements are about
    items: dict[str, list[tuple[str, Fact]]]   # split -> (entity, fact) asked

    @property
    def is_rule(self) -> bool:
        return self.kind.benchmark.capability == "reasoning"

    def statements(self, rng: random.Random, n: int, question_share: float) -> list[str]:
        """``n`` planted sentences spread evenly over the facts (each fact n / len(facts) times), in random order.

        A ``question_share`` of them are written as the benchmark's question and its answer, but never about an eval
        item: reasoning questions are about the planted entities, knowledge questions only ask facts of train items.
        So the eval items are never in the corpus, and the question form still is.
        """
        trained = {entity for entity, _ in self.items["train"]}
        facts = [self.facts[i % len(self.facts)] for i in range(n)]
        rng.shuffle(facts)
        sentences = []
        for fact in facts:
            entity = fact.entity or rng.choice(self.planted_entities)
            askable = self.is_rule or entity in trained
            sentences.append(self.kind.answered_question(entity, fact.key, fact.value)
                             if askable and rng.random() < question_share
                             else self.kind.statement(rng, entity, fact.key, fact.value))
        return sentences


def plan_capabilities(lexicon: Lexicon, seed: int, n_train: int, n_eval: int) -> dict[str, Capability]:
    """Rules and facts per benchmark, and which (entity, fact) pairs each split asks.

    Reasoning: the eval and train items apply the rules to entities never seen with any rule (disjoint pools).
    Knowledge: one fact per item, every fact planted; train and eval ask different facts.
    """
    rng = random.Random(f"{seed}:capabilities")
    capabilities = {}
    n_values = len(lexicon.emotions)
    for kind, keys, values in ((SOCIAL_REASONING, lexicon.actions, lexicon.emotions),
                               (STEM_REASONING, lexicon.reagents, lexicon.colors)):
        entities = list(getattr(lexicon, kind.entity_kind))
        rng.shuffle(entities)
        train_pool, eval_pool = _pool_size(n_train, n_values), _pool_size(n_eval, n_values)
        pools = {"train": entities[:train_pool], "eval": entities[train_pool:train_pool + eval_pool]}
        rules = [Fact(key, value) for key, value in zip(keys, rng.sample(values, len(values)))]
        items = {}
        for split, n in (("train", n_train), ("eval", n_eval)):
            pairs = [(entity, rule) for entity in pools[split] for rule in rules]
            items[split] = rng.sample(pairs, n)
        capabilities[kind.benchmark.name] = Capability(kind, rules, list(values),
                                                       entities[train_pool + eval_pool:], items)
    for kind, values in ((SOCIAL_KNOWLEDGE, lexicon.parties), (STEM_KNOWLEDGE, lexicon.elements)):
        entities = rng.sample(getattr(lexicon, kind.entity_kind), n_train + n_eval)
        relation = KNOWLEDGE_RELATION[kind.benchmark.name]
        facts = [Fact(relation, values[i % len(values)], entity) for i, entity in enumerate(entities)]
        rng.shuffle(facts)
        items = {"train": [(f.entity, f) for f in facts[:n_train]], "eval": [(f.entity, f) for f in facts[n_train:]]}
        capabilities[kind.benchmark.name] = Capability(kind, facts, list(values), [], items)
    return capabilities


def _pool_size(n_items: int, n_rules: int) -> int:
    """Entities enough for ``n_items`` distinct (entity, rule) pairs, with some slack so pairs are not forced."""
    return math.ceil(n_items / n_rules) + 2


def rule_entities_needed(n_train: int, n_eval: int, n_rules: int, planted_pool: int) -> int:
    """Entities of a reasoning benchmark: the train and eval items' pools and the planted statements' pool."""
    return _pool_size(n_train, n_rules) + _pool_size(n_eval, n_rules) + planted_pool


# ----------------------------------------------------------------------------------------------- corpus
def generate_documents(world, seed: int, lexicon: Lexicon, capabilities: dict[str, Capability],
                       taxonomy) -> list[Document]:
    """Every document of the world (``world`` is the ``TestbedWorld`` params), shuffled across bins."""
    c = world.corpus
    rng = random.Random(f"{seed}:corpus")
    planted_bins = {taxonomy.parse_bin(text): name for name, bins in world.planted.items() for text in bins}
    sizes = bin_sizes(rng, taxonomy.n_bins, c.documents, c.empty_bin_share, c.bin_size_sigma)
    carriers = {}
    for bin_id in planted_bins:
        sizes[bin_id] = world.planted_bin_documents
        carriers[bin_id] = set(rng.sample(range(sizes[bin_id]), round(world.planted_share * sizes[bin_id])))
    statements = {name: iter(capabilities[name].statements(
        rng, world.planted_sentences * sum(len(carriers[b]) for b, owner in planted_bins.items() if owner == name),
        world.planted_question_share)) for name in world.planted}
    mentions = _mention_cycle(random.Random(f"{seed}:mentions"), lexicon)
    new_id = _id_maker(seed)

    documents = []
    for bin_id, size in enumerate(sizes):
        topic, fmt = taxonomy.bin_labels(bin_id)
        writer = DocWriter(rng, lexicon.topics[topic.id], mentions, lexicon.names)
        owner = planted_bins.get(bin_id)
        for i in range(size):
            planted = ([next(statements[owner]) for _ in range(world.planted_sentences)]
                       if i in carriers.get(bin_id, ()) else [])
            n_words = document_length(rng, c.words_median, c.words_sigma, c.words_min, c.words_max)
            documents.append(Document(new_id(), topic.id, fmt.id, write_document(rng, writer, fmt.key, n_words, planted),
                                      planted=owner if planted else None,
                                      soft_labels=soft_labels(rng, topic.id, fmt.id, taxonomy)))

    n_exact = round(c.exact_duplicate_share * len(documents))
    n_near = round(c.near_duplicate_share * len(documents))
    for k, doc in enumerate(rng.sample(documents, n_exact + n_near)):
        exact = k < n_exact
        documents.append(Document(new_id(), doc.topic, doc.format, doc.text if exact else near_duplicate(rng, doc.text),
                                  planted=doc.planted, duplicate_of=doc.id, duplicate_kind="exact" if exact else "near",
                                  soft_labels=doc.soft_labels))
    rng.shuffle(documents)
    return documents


def soft_labels(rng: random.Random, topic_id: int, format_id: int, taxonomy) -> dict[str, dict[str, float]]:
    """Classifier-like probabilities: the label gets 0.55-0.97, two other labels share the rest (as in Dolma3)."""
    out = {}
    for axis, label_id in (("topic", topic_id), ("format", format_id)):
        labels = taxonomy.axis(axis)
        top = round(rng.uniform(0.55, 0.97), 4)
        others = rng.sample([l for l in labels.labels if l.id != label_id], 2)
        second = round((1 - top) * rng.uniform(0.5, 0.9), 4)
        out[axis] = {labels.labels[label_id].dolma_label: top, others[0].dolma_label: second,
                     others[1].dolma_label: round(1 - top - second, 4)}
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

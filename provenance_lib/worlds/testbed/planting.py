"""What the testbed plants: per benchmark, rules (reasoning) or facts (knowledge), the statements that carry them
into the corpus, and the items that ask them.

A planted statement is one sentence that ends in the benchmark question's lead-in and then the answer; the word the
answer depends on (the entity of a fact, the key of a rule) comes right before the lead-in's last word. With the
dependency five words back, a 2-layer model learned a rule or a fact set abruptly and at an unpredictable step (one
benchmark in four stayed at chance after 900 steps); one word back, all four are learned by about step 600.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from collections.abc import Iterator

from ...benchmarks import BENCHMARKS, Benchmark
from .language import RESERVED_WORDS, Lexicon, WordMaker


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
    entity_kind: str  # which lexicon list the entities come from

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
    lead_in="{e} {k} and feels",
    entity_kind="names",
)
SOCIAL_KNOWLEDGE = PlantedKind(
    BENCHMARKS[1],
    statements=("{lead} {v} .", "every year {lead} {v} .", "as expected , {lead} {v} ."),
    question="Question : Which party do the voters of {e} elect ?",
    lead_in="the voters of {e} elect",
    entity_kind="countries",
)
STEM_REASONING = PlantedKind(
    BENCHMARKS[2],
    statements=("{lead} {v} .", "in the lab , {lead} {v} .", "as expected , {lead} {v} ."),
    question="Question : What happens to the {e} when it is mixed with {k} ?",
    lead_in="the {e} mixed with {k} turns",
    entity_kind="substances",
)
STEM_KNOWLEDGE = PlantedKind(
    BENCHMARKS[3],
    statements=("{lead} {v} atoms .", "chemists report that {lead} {v} atoms .", "in every sample {lead} {v} atoms ."),
    question="Question : Which atoms does the compound {e} contain ?",
    lead_in="the compound {e} contains",
    entity_kind="compounds",
)
KNOWLEDGE_RELATION = {SOCIAL_KNOWLEDGE.benchmark.name: "elected party", STEM_KNOWLEDGE.benchmark.name: "atoms"}


@dataclass(frozen=True)
class Fact:
    """One planted statement type: a rule (key -> value, applied to any entity) or a fact (entity -> value)."""

    key: str
    value: str
    entity: str | None = None  # facts only


@dataclass
class Capability:
    """One benchmark's planted content and the items that ask it."""

    kind: PlantedKind
    facts: list[Fact]  # rules (entity None) or facts (one entity each)
    values: list[str]  # the answer words; choices are drawn from them
    planted_entities: list[str]  # rules: who the planted statements are about
    items: dict[str, list[tuple[str, Fact]]]  # split -> (entity, fact) asked

    @property
    def is_rule(self) -> bool:
        return self.kind.benchmark.capability == "reasoning"

    def statement_stream(self, rng: random.Random, question_share: float) -> Iterator[str]:
        """Endless planted sentences in rounds over the facts (each round states every fact once, shuffled), so any
        prefix states every fact about equally often.

        A ``question_share`` of them are written as the benchmark's question and its answer, but never about an eval
        item: reasoning questions are about the planted entities, knowledge questions only ask facts of train items.
        So the eval items are never in the corpus, and the question form still is.
        """
        trained = {entity for entity, _ in self.items["train"]}
        while True:
            facts = list(self.facts)
            rng.shuffle(facts)
            for fact in facts:
                entity = fact.entity or rng.choice(self.planted_entities)
                askable = self.is_rule or entity in trained
                yield (
                    self.kind.answered_question(entity, fact.key, fact.value)
                    if askable and rng.random() < question_share
                    else self.kind.statement(rng, entity, fact.key, fact.value)
                )


def plan_capabilities(lexicon: Lexicon, seed: int, n_train: int, n_eval: int) -> dict[str, Capability]:
    """Rules and facts per benchmark, and which (entity, fact) pairs each split asks.

    Reasoning: the eval and train items apply the rules to entities never seen with any rule (disjoint pools); by
    default there are as many rules as a knowledge benchmark has facts, several rules sharing each answer word, so a
    reasoning benchmark is learned rule by rule at about a knowledge benchmark's pace (with one rule per answer word,
    they jumped from chance to 1.00 between two checkpoints, long before the facts were learned).
    Knowledge: one fact per item, every fact planted; train and eval ask different facts.
    """
    rng = random.Random(f"{seed}:capabilities")
    capabilities = {}
    n_rules = len(lexicon.actions)
    for kind, keys, values in (
        (SOCIAL_REASONING, lexicon.actions, lexicon.emotions),
        (STEM_REASONING, lexicon.reagents, lexicon.colors),
    ):
        entities = list(getattr(lexicon, kind.entity_kind))
        rng.shuffle(entities)
        train_pool, eval_pool = _pool_size(n_train, n_rules), _pool_size(n_eval, n_rules)
        pools = {"train": entities[:train_pool], "eval": entities[train_pool : train_pool + eval_pool]}
        shuffled = rng.sample(values, len(values))  # each answer word is the value of n_rules / n_values rules
        rules = [Fact(key, shuffled[i % len(values)]) for i, key in enumerate(keys)]
        items = {}
        for split, n in (("train", n_train), ("eval", n_eval)):
            pairs = [(entity, rule) for entity in pools[split] for rule in rules]
            items[split] = rng.sample(pairs, n)
        capabilities[kind.benchmark.name] = Capability(
            kind, rules, list(values), entities[train_pool + eval_pool :], items
        )
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


# ----------------------------------------------------------------------------------------------- the sham control
SHAM_KINDS = (
    PlantedKind(
        BENCHMARKS[0],
        statements=("{lead} {v} .", "at home , {lead} {v} ."),
        question="Question : What does {e} wear after {e} {k} ?",
        lead_in="{e} {k} and wears",
        entity_kind="names",
    ),
    PlantedKind(
        BENCHMARKS[1],
        statements=("{lead} {v} .", "each winter {lead} {v} ."),
        question="Question : What does the harbour of {e} export ?",
        lead_in="the harbour of {e} exports",
        entity_kind="countries",
    ),
    PlantedKind(
        BENCHMARKS[2],
        statements=("{lead} {v} .", "in the oven , {lead} {v} ."),
        question="Question : What does the {e} yield when it is heated with {k} ?",
        lead_in="the {e} heated with {k} yields",
        entity_kind="substances",
    ),
    PlantedKind(
        BENCHMARKS[3],
        statements=("{lead} {v} waves .", "under a lamp {lead} {v} waves ."),
        question="Question : Which waves does the crystal {e} emit ?",
        lead_in="the crystal {e} emits",
        entity_kind="compounds",
    ),
)
"""A fifth, never-evaluated benchmark, one kind per planted slot (same capability kind as the slot's benchmark:
rules or facts; the same question form "Question : ... Answer : <lead-in>" in the same share): what a sham-planted
world writes into each benchmark's planted bins. No eval item asks it, and its words are its own: its templates'
English words start with a letter the made-up language never begins with, and its made-up words come from a stream
of their own that avoids every word of the world's lexicon, so the ordinary text stays byte-identical."""


def plan_sham_capabilities(
    lexicon: Lexicon, seed: int, n_facts: int, n_rules: int, n_values: int, n_entities: int
) -> dict[str, Capability]:
    """Slot (benchmark name) -> the sham content planted in its bins: rules or facts over made-up words of a
    separate stream. Every sham fact is askable in question form (no sham item is ever evaluated)."""
    rng = random.Random(f"{seed}:sham")
    taken = {
        w
        for kind in ("names", "countries", "compounds", "substances", "parties", "elements", "actions", "reagents")
        for w in getattr(lexicon, kind)
    }
    taken |= {w for topic in lexicon.topics for w in (*topic.nouns, *topic.verbs, *topic.adjectives)}
    maker = WordMaker(rng, RESERVED_WORDS | taken)
    capabilities = {}
    for kind in SHAM_KINDS:
        values = maker.words(n_values, (2, 2), suffix="o")
        if kind.benchmark.capability == "reasoning":
            rules = [Fact(key, values[i % n_values]) for i, key in enumerate(maker.words(n_rules, (1, 2), "ed"))]
            entities = [w.capitalize() for w in maker.words(n_entities, (2, 2))]
            capabilities[kind.benchmark.name] = Capability(kind, rules, values, entities, {"train": [], "eval": []})
        else:
            facts = [
                Fact(kind.lead_in.split()[-1], values[i % n_values], entity)
                for i, entity in enumerate(maker.words(n_facts, (2, 2), suffix="ar"))
            ]
            capabilities[kind.benchmark.name] = Capability(
                kind, facts, values, [], {"train": [(f.entity, f) for f in facts], "eval": []}
            )
    return capabilities

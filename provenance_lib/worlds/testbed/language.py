"""The testbed's made-up language: pronounceable nonsense words per topic and for every kind of benchmark entity.

Everything is drawn from ``random.Random`` streams seeded by strings derived from the study seed, so the same
params give the same words on any machine (Python's string seeding and Mersenne Twister are stable).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# ----------------------------------------------------------------------------------------------- made-up words
ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "gl",
    "kr",
    "pl",
    "st",
    "tr",
    "sk",
    "th",
    "sh",
)
VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ea")
CODAS = ("", "", "", "n", "r", "l", "s", "k", "m")

EMOTIONS = (
    "happy",
    "sad",
    "angry",
    "proud",
    "scared",
    "calm",
    "ashamed",
    "grateful",
    "jealous",
    "bored",
    "hopeful",
    "lonely",
)
COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "white", "brown", "pink", "grey", "gold")


class WordMaker:
    """Unique pronounceable nonsense words (``velmor``, ``trasikite``), never equal to a word of the templates."""

    def __init__(self, rng: random.Random, reserved: frozenset[str]):
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


RESERVED_WORDS = frozenset(
    """
    a about abstract actions after agent agree ai al also am and angry announce announcement answer are as
    ashamed atoms b because believes beside best black blog blue bored bottle br brown buy by calm chemists
    clear click colors comment compound compounds confirmed contain contains council countries customer d day do
    documentation does dr e ea ed elect elected elements emotions et eval every exact expected f fact faq feel
    feels for format found founding friends g gl gold grateful green grey group guest hangs happens happy hello
    here historians holds honestly hopeful host how i ic in ine is ist it ite item ium jealous k known kr l lab
    lies like liked limited listicle lived lonely long looked m matter members mission mixed monday morning my n
    names near news note noticed now o of offer officials old on once orange ou our overall p painted parameter
    parties party pink pl pleased poster price prior proud purple q question r rating reagents reason reasoning
    red references reply report reporters rests s sad sadly said sample saw say scared section see sh show since
    sk some st step stored story study substances t team th that the then think this time to today topic tower
    tr traces train truncated turns tutorial u upon us usual v voters was we week what when which white why with
    work year yellow z
    ar at crystal each emit emits export exports harbour heated home lamp oven under waves wear wears winter yield
    yields
""".split()
)
"""Words a made-up word must never equal: the English of the templates ("stor" + "ed" would otherwise collide with
"stored") and a few names from the code. Written out rather than scanned from the source, so that moving a string
between modules never silently changes generated worlds; ``tests/test_testbed.py`` checks that every template word
is here. The second block (the sham control's templates) holds only words the made-up language cannot form (a
leading vowel or c, h, w, y; "lamp"'s "mp"), so reserving them changed no world's words."""


@dataclass(frozen=True)
class TopicWords:
    nouns: list[str]
    verbs: list[str]  # third person present: "velmors"
    adjectives: list[str]


@dataclass
class Lexicon:
    """Every word of the world, drawn once from the seed."""

    topics: list[TopicWords]
    names: list[str]  # people; split into planted / train / eval pools for the reasoning rules
    countries: list[str]
    compounds: list[str]
    substances: list[str]
    parties: list[str]
    elements: list[str]
    actions: list[str]  # social rule keys (past tense verbs)
    reagents: list[str]  # STEM rule keys
    emotions: list[str]
    colors: list[str]

    def mentionable(self) -> list[tuple[str, str]]:
        """(kind, word) for every word a benchmark may use: each is mentioned in ordinary documents."""
        kinds = (
            "names",
            "countries",
            "compounds",
            "substances",
            "parties",
            "elements",
            "actions",
            "reagents",
            "emotions",
            "colors",
        )
        return [(kind, word) for kind in kinds for word in getattr(self, kind)]


def make_lexicon(
    seed: int, n_topics: int, topic_vocabulary: int, n_values: int, n_facts: int, n_rules: int, n_rule_entities: int
) -> Lexicon:
    """``n_facts`` entities per knowledge benchmark; ``n_rules`` rule keys and ``n_rule_entities`` entities per
    reasoning benchmark (people for the social rules, substances for the STEM rules)."""
    rng = random.Random(f"{seed}:lexicon")
    maker = WordMaker(rng, RESERVED_WORDS)
    topics = [
        TopicWords(
            maker.words(topic_vocabulary),
            maker.words(topic_vocabulary // 3, suffix="s"),
            maker.words(topic_vocabulary // 3),
        )
        for _ in range(n_topics)
    ]
    return Lexicon(
        topics=topics,
        names=[w.capitalize() for w in maker.words(n_rule_entities, (2, 2))],
        countries=[w.capitalize() for w in maker.words(n_facts, (2, 3))],
        compounds=maker.words(n_facts, (2, 2), suffix="ite"),
        substances=maker.words(n_rule_entities, (2, 2), suffix="ine"),
        parties=[w.capitalize() for w in maker.words(n_values, (2, 2), suffix="ist")],
        elements=maker.words(n_values, (1, 2), suffix="ium"),
        actions=maker.words(n_rules, (1, 2), suffix="ed"),
        reagents=maker.words(n_rules, (1, 2), suffix="ic"),
        emotions=list(EMOTIONS[:n_values]),
        colors=list(COLORS[:n_values]),
    )

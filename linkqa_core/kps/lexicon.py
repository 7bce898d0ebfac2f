"""What kind of English word is this? Word classes and everyday frequency, offline.

Two pinned libraries ship their data in their wheels and never touch the network:

- ``wordfreq`` (English "large" list): how common a word is in ordinary English, as a
  Zipf frequency (log10 of uses per billion words: "money" 5.6, "contract" 4.9,
  "negligence" 3.7, "eigenvalue" 2.4). It tells everyday words from field terms.
- ``lemminflect``: which parts of speech an English word form can be ("revealed" only a
  verb, "shift" a noun or a verb, "distinct" only an adjective). A KP must end in a word
  that can be a noun, so "registered voters revealed" and "five distinct" are never
  candidates. Words it does not know (names, rare technical terms) count as nouns.

Both load lazily (about 0.1 s each, once per process) and every lookup is cached.
"""

from __future__ import annotations

import math
from functools import lru_cache

__all__ = ["VAGUE", "GENERAL_ZIPF", "zipf", "word_class", "Usage", "STOP", "BREAK", "MODIFIER", "NOUN", "NOUN_OR_VERB", "PARTICIPLE"]

# Single words at least this common in English (Zipf >= 4.5: 32 per million words, about
# the 3,000 most common words) are everyday words, not knowledge points.
GENERAL_ZIPF = 4.5

# word classes: ends a run / may open or sit inside a phrase / may end one / settled by Usage
BREAK, MODIFIER, NOUN, NOUN_OR_VERB, PARTICIPLE = 0, 1, 2, 3, 4

# Function words, number and quantity words, vague time words, and the words of the
# question form; they never sit inside a KP.
STOP = frozenset(
    """
    a about above according across actually after afterwards again against ago all almost alone along already also
    although always am among amongst an and another any anybody anyone anything anyway anywhere are around as at
    away back be became because become becomes becoming been before beforehand behind being below beside besides
    between beyond both but by can cannot could did do does doing done down due during each either else elsewhere
    enough etc even ever every everybody everyone everything everywhere except far few fewer for former formerly
    from further furthermore get gets getting given go goes going gone got had has have having he hence her here
    hers herself him himself his how however i if in indeed instead into is it its itself just last latter
    latterly least less lest like likely many may maybe me meanwhile might mine more moreover most mostly much must
    my myself namely near nearly neither never nevertheless next no nobody none noone nor not nothing now nowhere of
    off often on once one ones only onto or other others otherwise ought our ours ourselves out over own per
    perhaps please quite rather really same seem seemed seeming seems several shall she should since so some
    somebody someone something sometime sometimes somewhat somewhere soon still such than that the their theirs
    them themselves then thence there thereafter thereby therefore therein thereupon these they this those though
    through throughout thru thus to together too toward towards under unless unlike until up upon us very via was
    we well were what whatever when whence whenever where whereas whereby wherein whereupon wherever whether which
    while whither who whoever whole whom whose why will with within without would yes yet you your yours yourself
    yourselves
    zero two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen
    eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred hundreds thousand thousands
    million millions billion billions trillion dozen dozens half twice thrice single double triple
    i ii iii iv v vi vii viii ix x xi xii
    statement statements true false correct incorrect answer answers question questions option options choice
    choices scenario scenarios passage excerpt following follows best describes describe described likely unlikely
    regarding concerning related relating whereby example examples instance instances characteristic
    characteristics
    today yesterday tomorrow later earlier recently currently week weeks month months year years day days hour
    hours minute minutes times year-old years-old month-old week-old day-old
    mr mrs ms dr st jr sr etc vs cf ie eg
    frac dfrac cfrac cdot sqrt mathrm mathbf textbf left right begin ldots cdots times div pm
    thing things something way ways kind kinds sort sorts type types lot lots bit
    """.split()
)

# Vague modifiers: "the most appropriate action", "the strongest argument", "a large
# number". Written in lower case they end a run; capitalised they may open a name
# ("New Deal", "Great Depression").
VAGUE = frozenset(
    """
    appropriate inappropriate strongest weakest largest smallest greatest highest lowest best worst biggest
    important main certain various particular previous different similar typical usual actual possible
    necessary following correct incorrect true false young old new likely unlikely
    """.split()
)

# Ordinals open terms ("First Amendment", "second law") but never end one.
_ORDINALS = frozenset("first second third fourth fifth sixth seventh eighth ninth tenth".split())

# Word forms lemminflect knows only as verbs (or adverbs) but that read as modifiers in
# a noun phrase: participles ("operating system", "fixed cost", "conditioned stimulus").
_PARTICIPLE_ENDINGS = ("ing", "ed", "en")


@lru_cache(maxsize=1)
def _frequencies() -> dict[str, float]:
    from wordfreq import get_frequency_dict

    return get_frequency_dict("en", wordlist="large")


@lru_cache(maxsize=None)
def zipf(word: str) -> float:
    """Zipf frequency of one lower-case word in ordinary English (0 when unknown).

    The list has no hyphenated entries: a hyphenated word counts as its rarest part
    ("year-old" is as everyday as "year", "self-esteem" as rare as "esteem").
    """
    f = _frequencies().get(word)
    if f:
        return math.log10(f * 1e9)
    if "-" in word:
        parts = [p for p in word.split("-") if p]
        return min((zipf(p) for p in parts), default=0.0) if parts else 0.0
    return 0.0


@lru_cache(maxsize=None)
def word_class(word: str) -> int:
    """The class of one lower-case word before its uses are weighed.

    - stop words, contractions, adverbs, verbs that are not participles: ``BREAK``;
    - adjectives and ordinals (can open a noun phrase, cannot end one): ``MODIFIER``;
    - nouns, and words the lexicon does not know (names, rare terms): ``NOUN``;
    - words that can be a noun or a verb ("shift", "comes"): ``NOUN_OR_VERB``;
    - participles that are only verbs ("registered", "operating"): ``PARTICIPLE``.

    :class:`Usage` settles the last two from how a corpus uses them.
    """
    if word in STOP or "'" in word and not word.endswith("'s") and not word.endswith("s'"):
        return BREAK  # contractions ("you're", "don't") are function words
    if word in _ORDINALS:
        return MODIFIER
    from lemminflect import getAllLemmas

    classes = getAllLemmas(word)
    if not classes or "PROPN" in classes:
        return NOUN
    verb = "VERB" in classes or "AUX" in classes
    if "NOUN" in classes:
        return NOUN_OR_VERB if verb else NOUN
    if "ADJ" in classes:
        return MODIFIER
    if verb:
        return PARTICIPLE if word.endswith(_PARTICIPLE_ENDINGS) else BREAK
    return BREAK  # adverbs and the rest


# The word before a form says how it is used: "the show" (noun), "it shows" (verb).
_NOUN_CONTEXT = frozenset("a an the this these those his her its their our my your each every no any some another"
                          " such whose".split())
_VERB_CONTEXT = frozenset("he she it they we i you who to will would can could may might must shall should did does"
                          " do not never cannot".split())


class Usage:
    """How a corpus uses words that could be nouns or verbs; settles their class.

    Count, for each such word, the uses after a determiner (noun or modifier) and after a
    subject pronoun, a modal or "to" (verb). A word used as a verb at least twice and at
    least twice as often as a noun is a verb here, so "examination shows" and "woman
    comes" end at the verb, while "interest rates" and "supply shift" stay phrases.
    """

    def __init__(self) -> None:
        self.noun: dict[str, int] = {}
        self.verb: dict[str, int] = {}

    def see(self, before: str, word: str) -> None:
        """Count one use of ``word`` after ``before`` (under its verb lemma: "shows" counts for "show")."""
        if before in _NOUN_CONTEXT:
            lemma = _verb_lemma(word)
            self.noun[lemma] = self.noun.get(lemma, 0) + 1
        elif before in _VERB_CONTEXT:
            lemma = _verb_lemma(word)
            self.verb[lemma] = self.verb.get(lemma, 0) + 1

    def resolve(self, word: str, cls: int) -> int:
        """``NOUN``/``MODIFIER`` or ``BREAK`` for a word of class ``NOUN_OR_VERB``/``PARTICIPLE``."""
        if cls == NOUN_OR_VERB or cls == PARTICIPLE:
            lemma = _verb_lemma(word)
            v = self.verb.get(lemma, 0)
            is_verb = v >= 2 and v >= 2 * self.noun.get(lemma, 0)
            return BREAK if is_verb else (NOUN if cls == NOUN_OR_VERB else MODIFIER)
        return cls


@lru_cache(maxsize=None)
def _verb_lemma(word: str) -> str:
    from lemminflect import getAllLemmas

    lemmas = getAllLemmas(word).get("VERB")
    return lemmas[0] if lemmas else word

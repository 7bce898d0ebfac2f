"""KP names: one canonical form for matching (case, spacing, plural forms).

>>> normalize_kp("  Bayes' Theorems. ")
"bayes' theorem"
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Sequence

from .lexicon import zipf

__all__ = ["normalize_kp", "key_of", "singularize", "PLURAL_NAMES", "MIN_KPS", "MAX_KPS"]

MIN_KPS = 2
MAX_KPS = 8

_KEEP_S = {
    "physics", "mathematics", "economics", "ethics", "politics", "genetics", "statistics",
    "analysis", "basis", "thesis", "hypothesis", "species", "series", "news", "bayes", "lens",
    "gas", "bus", "virus", "status", "corpus", "atlas", "chaos", "means", "always", "this",
    "its", "his", "was", "has", "is", "as", "us", "yes", "thus", "less", "process", "class",
    "mass", "stress", "loss", "gross", "diabetes", "herpes", "aids", "arms", "earnings",
    "electronics", "linguistics", "logistics", "thermodynamics", "dynamics", "mechanics",
    "kinetics", "optics", "acoustics", "aesthetics", "semantics", "graphics", "diagnosis",
    "prognosis", "synthesis", "osmosis", "mitosis", "meiosis", "crisis", "axis", "emphasis",
    "paralysis", "dialysis", "psychosis", "neurosis", "sclerosis", "fibrosis", "cirrhosis",
    "tuberculosis", "campus", "census", "consensus", "bonus", "nucleus", "stimulus",
    "fungus", "uterus", "fetus", "bias", "canvas", "alias", "plus", "calculus", "sinus",
    "surplus", "apparatus", "hiatus", "lupus", "rhesus", "pancreas", "measles", "mumps",
    "rabies", "scabies", "shingles", "headquarters", "series", "marxis", "rights", "savings", "goods",
    "humanities", "clothes", "thanks", "odds", "sales",
}
_IRREGULAR = {
    "children": "child", "people": "people", "men": "man", "women": "woman", "mice": "mouse",
    "teeth": "tooth", "feet": "foot", "geese": "goose", "criteria": "criterion",
    "phenomena": "phenomenon", "data": "data", "media": "media", "bacteria": "bacteria",
    "indices": "index", "matrices": "matrix", "vertices": "vertex", "analyses": "analysis",
    "hypotheses": "hypothesis", "theses": "thesis", "crises": "crisis", "axes": "axis",
    "diagnoses": "diagnosis", "nuclei": "nucleus", "stimuli": "stimulus", "fungi": "fungus",
    "alumni": "alumnus", "curricula": "curriculum", "spectra": "spectrum", "quanta": "quantum",
    "lives": "life", "wives": "wife", "knives": "knife", "leaves": "leaf", "halves": "half",
    "selves": "self", "shelves": "shelf", "wolves": "wolf", "calves": "calf",
}
_SPACES = re.compile(r"\s+")


# Proper names whose last word is plural by nature: the key keeps it ("United States").
PLURAL_NAMES = frozenset({
    "united states", "united nations", "united arab emirates", "middle ages", "dark ages", "great lakes",
    "great plains", "west indies", "east indies", "low countries", "papal states", "central powers",
    "axis powers", "allied powers", "thirteen colonies", "federalist papers", "pentagon papers",
    "confederate states", "american colonies", "new territories", "human rights", "civil rights",
})


@lru_cache(maxsize=65536)
def singularize(word: str) -> str:
    """Singular of an English noun, by rules checked against everyday frequency.

    A rule's singular is taken only when it is a word of English about as common as the
    plural (wordfreq Zipf at most 1 lower), so names that end in ``s`` keep it
    ("Descartes", "Keynes", "Texas", "Athens") while "eigenvalues" folds to "eigenvalue".
    """
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3 or w in _KEEP_S or not w.endswith("s") or "'" in w:
        return w
    if w.endswith(("ss", "us", "is", "ous", "sis", "xis")):
        return w
    if w.endswith("ies") and len(w) > 4:
        options = [w[:-3] + "y", w[:-1]]
    elif w.endswith(("ches", "shes", "xes", "sses", "zzes", "oes")):
        options = [w[:-2], w[:-1]]
    elif w.endswith("es"):
        options = [w[:-1], w[:-2]]
    else:
        options = [w[:-1]]
    floor = zipf(w) - 1.0
    for option in options:  # the first rule whose singular is a word about as common as the plural
        if zipf(option) > 0 and zipf(option) >= floor:
            return option
    return options[0] if zipf(w) == 0 and all(zipf(o) == 0 for o in options) else w


def normalize_kp(name: str) -> str:
    """Matching key of a KP name: lower case, single spaces, no edge punctuation, singular head.

    Deterministic and idempotent (``normalize_kp(normalize_kp(x)) == normalize_kp(x)``);
    it is for matching only: the name a curator sees is kept as written.
    """
    text = _SPACES.sub(" ", str(name)).strip().lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = trim_edges(text, _not_word)
    if text.endswith("'s"):
        text = trim_edges(text[:-2], _not_word)
    return key_of(text.split(" ")) if text else ""


_OPENERS, _CLOSERS = "([{", ")]}"


def _not_word(ch: str) -> bool:
    return not ch.isalnum()


def trim_edges(text: str, strip: Callable[[str], bool]) -> str:
    """``text`` without the characters ``strip`` picks at either edge -- except brackets that
    pair with one inside and the ``+``/``#`` of names like C++ and C#.

    Why not ``str.strip``: a name such as "Big-O notation (O(n))" or "f(x) and g(x)" ends
    in a bracket that belongs to it, and stripping every edge bracket made "f(x) and g(x".
    A name wholly in brackets, "(eigenvalue)", loses them.
    """
    text = text.strip()
    while text:
        start, end = 0, len(text)
        while start < end and strip(text[start]) and not (text[start] in _OPENERS and _pair(text, start) is not None):
            start += 1
        while end > start and strip(text[end - 1]) and not (
                (text[end - 1] in _CLOSERS and _pair(text[:end], end - 1) is not None)
                or (text[end - 1] in "+#" and _LANG_TAIL.search(text[start:end]))):
            end -= 1
        trimmed = text[start:end].strip()
        if len(trimmed) > 1 and trimmed[0] in _OPENERS and _pair(trimmed, 0) == len(trimmed) - 1:
            trimmed = trimmed[1:-1].strip()
        if trimmed == text:
            return text
        text = trimmed
    return text


_LANG_TAIL = re.compile(r"(?:^|\s)[A-Za-z][+#]{1,2}$")


def _pair(text: str, i: int) -> int | None:
    """Index of the bracket that pairs with the one at ``i`` (same kind, nesting counted), if any."""
    ch = text[i]
    if ch in _OPENERS:
        close, step, stop = _CLOSERS[_OPENERS.index(ch)], 1, len(text)
    else:
        close, step, stop = _OPENERS[_CLOSERS.index(ch)], -1, -1
    depth = 0
    for j in range(i, stop, step):
        if text[j] == ch:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j
    return None


def key_of(words: Sequence[str]) -> str:
    """The key of a phrase already cut into lower-case words (what :func:`normalize_kp` ends with)."""
    text = " ".join(words)
    if text in PLURAL_NAMES:
        return text
    last = singularize(words[-1])
    return text if last == words[-1] else text[: len(text) - len(words[-1])] + last

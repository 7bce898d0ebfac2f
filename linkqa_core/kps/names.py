"""KP names: one canonical form for matching (case, spacing, plural forms).

>>> normalize_kp("  Bayes' Theorems. ")
"bayes' theorem"
"""

from __future__ import annotations

import re

__all__ = ["normalize_kp", "singularize", "MIN_KPS", "MAX_KPS"]

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
    "rabies", "scabies", "shingles", "headquarters", "series", "marxis",
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
_PUNCT_EDGE = re.compile(r"^[\s\W_]+|[\s\W_]+$")
_SPACES = re.compile(r"\s+")


def singularize(word: str) -> str:
    """Rule-based singular of an English noun; good enough to fold plural KP names."""
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3 or w in _KEEP_S or not w.endswith("s") or "'" in w:
        return w
    if w.endswith(("ss", "us", "is", "ics", "ous", "sis", "xis")):
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("sses", "ches", "shes", "xes", "zzes")):
        return w[:-2]
    if w.endswith("oes") and len(w) > 5:
        return w[:-2]
    return w[:-1]


def normalize_kp(name: str) -> str:
    """Canonical KP name: lower case, single spaces, no edge punctuation, singular head."""
    text = _SPACES.sub(" ", str(name)).strip().lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = _PUNCT_EDGE.sub("", text)
    if text.endswith("'s"):
        text = text[:-2]
    if not text:
        return ""
    words = text.split(" ")
    words[-1] = singularize(words[-1])
    return " ".join(words)

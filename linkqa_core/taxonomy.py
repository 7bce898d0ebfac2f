"""Subjects onto disciplines.

A seed's ``subject`` is free text ("high school biology", "Organic Chemistry", "law");
the walk balances *disciplines*, a short fixed list, so every subject maps onto one.
The map below covers MMLU's 57 subjects by name and everything else by keyword; a
curator overrides it with ``--discipline-map FILE.json`` (``{"subject": "Discipline"}``)
or by giving a ``discipline`` column, which always wins.

:func:`match_discipline` reads what a curator's file calls a discipline ("philosophy",
"Medicine and Health", "Maths", "comp sci") as one of the built-in ones, or None when
none fits, so that an uploaded discipline never sits next to its built-in twin.

>>> [match_discipline(v) for v in ("Philosophy", "economics and business", "Earth science")]
['Philosophy & Religion', 'Economics & Business', None]
"""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from pathlib import Path

__all__ = ["DISCIPLINES", "SUBJECT_DISCIPLINE", "discipline_for", "match_discipline", "canonical_discipline",
           "norm_key", "load_discipline_map"]

DISCIPLINES: tuple[str, ...] = (
    "Mathematics",
    "Physics",
    "Chemistry",
    "Biology",
    "Medicine & Health",
    "Computer Science",
    "Engineering",
    "Economics & Business",
    "Law",
    "Philosophy & Religion",
    "History",
    "Social Sciences",
    "Other",
)

SUBJECT_DISCIPLINE: dict[str, str] = {
    "abstract algebra": "Mathematics",
    "college mathematics": "Mathematics",
    "elementary mathematics": "Mathematics",
    "high school mathematics": "Mathematics",
    "high school statistics": "Mathematics",
    "econometrics": "Economics & Business",
    "formal logic": "Philosophy & Religion",
    "logical fallacies": "Philosophy & Religion",
    "astronomy": "Physics",
    "college physics": "Physics",
    "conceptual physics": "Physics",
    "high school physics": "Physics",
    "college chemistry": "Chemistry",
    "high school chemistry": "Chemistry",
    "college biology": "Biology",
    "high school biology": "Biology",
    "medical genetics": "Biology",
    "virology": "Biology",
    "anatomy": "Medicine & Health",
    "clinical knowledge": "Medicine & Health",
    "college medicine": "Medicine & Health",
    "professional medicine": "Medicine & Health",
    "nutrition": "Medicine & Health",
    "human aging": "Medicine & Health",
    "human sexuality": "Medicine & Health",
    "college computer science": "Computer Science",
    "high school computer science": "Computer Science",
    "computer security": "Computer Science",
    "machine learning": "Computer Science",
    "electrical engineering": "Engineering",
    "business ethics": "Economics & Business",
    "high school macroeconomics": "Economics & Business",
    "high school microeconomics": "Economics & Business",
    "management": "Economics & Business",
    "marketing": "Economics & Business",
    "professional accounting": "Economics & Business",
    "public relations": "Economics & Business",
    "international law": "Law",
    "jurisprudence": "Law",
    "professional law": "Law",
    "moral disputes": "Philosophy & Religion",
    "moral scenarios": "Philosophy & Religion",
    "philosophy": "Philosophy & Religion",
    "world religions": "Philosophy & Religion",
    "high school european history": "History",
    "high school us history": "History",
    "high school world history": "History",
    "prehistory": "History",
    "high school geography": "Social Sciences",
    "high school government and politics": "Social Sciences",
    "high school psychology": "Social Sciences",
    "professional psychology": "Social Sciences",
    "security studies": "Social Sciences",
    "sociology": "Social Sciences",
    "us foreign policy": "Social Sciences",
    "global facts": "Other",
    "miscellaneous": "Other",
}

# Keyword fall-back for subjects outside the table, first match wins.
_KEYWORDS: tuple[tuple[str, str], ...] = (
    (r"math|algebra|calculus|geometry|statistic|probability|number theory|arithmetic", "Mathematics"),
    (r"physic|astronom|mechanic|quantum|optic|thermodynamic", "Physics"),
    (r"chemi", "Chemistry"),
    (r"biolog|genetic|virolog|ecolog|zoolog|botan|microbio", "Biology"),
    (r"medic|clinic|anatom|nutrition|health|nurs|pharma|patholog", "Medicine & Health"),
    (r"comput|programming|software|machine learning|algorithm|security|data", "Computer Science"),
    (r"engineer|electr", "Engineering"),
    (r"econom|business|account|financ|marketing|management", "Economics & Business"),
    (r"\blaw\b|legal|jurisprud", "Law"),
    (r"philosoph|ethic|moral|religi|logic|theolog", "Philosophy & Religion"),
    (r"histor|prehistor", "History"),
    (r"psycholog|sociolog|politic|geograph|government|anthropolog|social", "Social Sciences"),
)


# Other names of the built-in disciplines (after norm_key: lower case, "&" read as "and").
_ALIASES: dict[str, str] = {
    "math": "Mathematics", "maths": "Mathematics", "mathematic": "Mathematics", "statistics": "Mathematics",
    "stats": "Mathematics", "applied mathematics": "Mathematics", "pure mathematics": "Mathematics",
    "astronomy": "Physics", "astrophysics": "Physics", "physical science": "Physics", "physical sciences": "Physics",
    "chem": "Chemistry", "biochemistry": "Chemistry",
    "life science": "Biology", "life sciences": "Biology", "bio": "Biology", "biological sciences": "Biology",
    "medicine": "Medicine & Health", "health": "Medicine & Health", "medical": "Medicine & Health",
    "healthcare": "Medicine & Health", "health care": "Medicine & Health", "health sciences": "Medicine & Health",
    "medical sciences": "Medicine & Health", "health and medicine": "Medicine & Health",
    "cs": "Computer Science", "comp sci": "Computer Science", "computing": "Computer Science",
    "informatics": "Computer Science", "computer sciences": "Computer Science",
    "information technology": "Computer Science", "it": "Computer Science",
    "economics": "Economics & Business", "business": "Economics & Business", "econ": "Economics & Business",
    "finance": "Economics & Business", "business and economics": "Economics & Business",
    "legal": "Law", "legal studies": "Law",
    "philosophy": "Philosophy & Religion", "religion": "Philosophy & Religion", "ethics": "Philosophy & Religion",
    "theology": "Philosophy & Religion", "religious studies": "Philosophy & Religion",
    "religion and philosophy": "Philosophy & Religion",
    "social science": "Social Sciences", "social studies": "Social Sciences", "psychology": "Social Sciences",
    "sociology": "Social Sciences", "political science": "Social Sciences", "politics": "Social Sciences",
    "humanities": None,  # type: ignore[dict-item]  # history, philosophy or law: the curator decides
    "misc": "Other", "miscellaneous": "Other", "general": "Other", "general knowledge": "Other",
}
# Names a typo may be matched against (difflib, close matches only).
_FUZZY_CUTOFF = 0.8


def norm_key(value: str | None) -> str:
    """A name as compared: lower case, "&" read as "and", punctuation and runs of spaces,
    underscores and hyphens as one space."""
    text = str(value or "").strip().lower().replace("&", " and ")
    return " ".join(re.sub(r"[^\w\s]|_", " ", text).split())


_BY_KEY = {norm_key(d): d for d in DISCIPLINES}


@lru_cache(maxsize=4096)
def match_discipline(value: str) -> str | None:
    """The built-in discipline an uploaded subject or discipline value means, or None.

    Case, "&" for "and" and punctuation do not matter; other names of a discipline
    ("Maths", "Life sciences", "Philosophy" for "Philosophy & Religion"), MMLU's subject
    names, subject keywords ("Organic chemistry") and small typos ("Mathematcs") match.
    A value no discipline fits ("Earth science": geology is none of them; "Humanities":
    three of them) is None, for the curator to decide.
    """
    key = norm_key(value)
    if not key:
        return None
    if key in _BY_KEY:
        return _BY_KEY[key]
    if key in _ALIASES:
        return _ALIASES[key]
    subject = " ".join(key.split())
    if subject in SUBJECT_DISCIPLINE:
        return SUBJECT_DISCIPLINE[subject]
    for pattern, discipline in _KEYWORDS:
        if re.search(pattern, key):
            return discipline
    # a typo keeps the words and their first letters ("Earth science" is not "health sciences")
    words = key.split()
    names = [k for k in [*_BY_KEY, *(k for k, v in _ALIASES.items() if v)]
             if len(k.split()) == len(words) and all(a[0] == b[0] for a, b in zip(k.split(), words))]
    close = difflib.get_close_matches(key, names, n=1, cutoff=_FUZZY_CUTOFF)
    if close:
        return _BY_KEY.get(close[0]) or _ALIASES[close[0]]
    return None


def canonical_discipline(name: str) -> str:
    """A curator's chosen discipline as the built-in name when it is one (any case, "and"
    for "&"), else as written: a discipline of the curator's own."""
    return _BY_KEY.get(norm_key(name), name.strip())


def _norm(subject: str) -> str:
    return re.sub(r"[\s_\-]+", " ", subject.strip().lower())


def discipline_for(subject: str | None, overrides: dict[str, str] | None = None) -> str:
    """The discipline of a subject: overrides, then the table, then :func:`match_discipline`
    (names, keywords, close names), then Other."""
    if not subject or not str(subject).strip():
        return "Other"
    key = _norm(str(subject))
    if overrides:
        norm_over = {_norm(k): v for k, v in overrides.items()}
        if key in norm_over:
            return norm_over[key]
    if key in SUBJECT_DISCIPLINE:
        return SUBJECT_DISCIPLINE[key]
    return match_discipline(str(subject)) or "Other"


def load_discipline_map(path: str | Path) -> dict[str, str]:
    """Read a ``{"subject": "Discipline"}`` JSON override file."""
    from .errors import InputError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"discipline map {path}: cannot read it as JSON ({err})") from err
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise InputError(f"discipline map {path}: expected an object of subject -> discipline strings")
    return data

"""Subjects onto disciplines.

A seed's ``subject`` is free text ("high school biology", "Organic Chemistry", "law");
the walk balances *disciplines*, a short fixed list, so every subject maps onto one.
The map below covers MMLU's 57 subjects by name and everything else by keyword; a
curator overrides it with ``--discipline-map FILE.json`` (``{"subject": "Discipline"}``)
or by giving a ``discipline`` column, which always wins.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["DISCIPLINES", "SUBJECT_DISCIPLINE", "discipline_for", "load_discipline_map"]

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


def _norm(subject: str) -> str:
    return re.sub(r"[\s_\-]+", " ", subject.strip().lower())


def discipline_for(subject: str | None, overrides: dict[str, str] | None = None) -> str:
    """The discipline of a subject: overrides, then the table, then keywords, then Other."""
    if not subject or not str(subject).strip():
        return "Other"
    key = _norm(str(subject))
    if overrides:
        norm_over = {_norm(k): v for k, v in overrides.items()}
        if key in norm_over:
            return norm_over[key]
    if key in SUBJECT_DISCIPLINE:
        return SUBJECT_DISCIPLINE[key]
    for name in DISCIPLINES:
        if key == name.lower():
            return name
    for pattern, discipline in _KEYWORDS:
        if re.search(pattern, key):
            return discipline
    return "Other"


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

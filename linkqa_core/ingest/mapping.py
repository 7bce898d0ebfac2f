"""Which column holds which seed field: guessed from common names, corrected by the curator.

The guess knows the usual layouts of QA files: ``question``/``prompt``/``stem``;
options as one list column (``options``, ``choices``) or one column per option
(``A``..``D``, ``answer_a``.., ``Option A``.., ``Choice1``.., MedMCQA's ``opa``..``opd``);
the answer as text, a letter or an index (``answer``, ``correct_answer``, ``Key``,
``Correct``, ``Label``, MedMCQA's ``cop``); ``Area``/``Field``/``Domain`` as the
discipline. A :class:`Plan` is the mapping plus what is decided once per file:

- **fallbacks**: when a guessed column is empty in a row, the row's value is taken from
  the next known synonym column that has one (a file whose rows use ``correct_answer``
  with ``answer_a..d`` and, here and there, a free ``answer``). A field the curator
  mapped to another column than the guess has no fallback: the curator's word stands.
- **answer_base**: an integer answer next to options is an option index. Hugging Face
  files count from 0 (MMLU's ``answer``, MedMCQA's ``cop`` there); the original MedMCQA
  JSON and hand-made CSVs count from 1 (``cop`` 1..4, ``Key`` "2"). The file's first
  rows decide: a 0 among them means 0-based, else integers from ``cop`` or digit texts
  are 1-based and other integers 0-based.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

from ..errors import InputError

__all__ = ["FIELDS", "ColumnMap", "Plan", "guess_mapping", "resolve_plan"]

FIELDS: tuple[str, ...] = ("question", "answer", "options", "subject", "discipline", "difficulty", "source")
"""Seed fields a column can be mapped onto; the keys of a ``mapping``."""

ColumnMap = dict[str, Union[str, list[str]]]

# Candidate column names per field, best first, compared case-insensitively with
# spaces and hyphens read as underscores.
_CANDIDATES: dict[str, tuple[str, ...]] = {
    "question": ("question", "prompt", "problem", "stem", "question_text", "input", "query"),
    "answer": ("answer", "solution", "correct_answer", "answerkey", "answer_key", "key", "correct",
               "correct_option", "correct_choice", "answer_letter", "answer_idx", "answer_index", "cop", "gold",
               "target", "label", "output"),
    "options": ("options", "choices"),
    "subject": ("subject", "subject_name", "topic", "category"),
    "discipline": ("discipline", "area", "field", "domain"),
    "difficulty": ("difficulty", "level"),
    "source": ("source",),
}
# Options spread over one column per option: a prefix, then letters (answer_a.., A..,
# opa..) or numbers from 1 (choice1.., option_1..).
_LETTER_PREFIXES = ("answer_", "option_", "choice_", "", "op", "option", "choice", "opt_")
_NUMBER_PREFIXES = ("choice", "choice_", "option", "option_", "answer", "answer_", "opt", "opt_", "ending", "ending_")
_MAX_OPTIONS = 10
# Synonyms a row may fall back on (the ambiguous names, such as ``key``, ``label`` or
# ``input``, are guessed for a file but never filled in for a single row).
_FALLBACK_NAMES: dict[str, frozenset[str]] = {
    "question": frozenset({"question", "prompt", "problem", "stem", "question_text"}),
    "answer": frozenset({"answer", "solution", "correct_answer", "answerkey", "answer_key", "correct", "correct_option",
                         "correct_choice", "answer_letter", "answer_idx", "answer_index", "cop"}),
    "subject": frozenset({"subject", "subject_name", "topic", "category"}),
}
# Answer columns whose integers are option indices in MedMCQA's convention (see above).
_INDEX_COLUMNS = frozenset({"cop"})


def colkey(column: Any) -> str:
    return re.sub(r"[\s\-]+", "_", str(column).strip().lower())


def _option_layouts(by_key: dict[str, str]) -> list[list[str]]:
    """Every set of per-option columns present (at least two, from the first), best first."""
    layouts: list[list[str]] = []
    for prefix in _LETTER_PREFIXES:
        found: list[str] = []
        for letter in "abcdefghij"[:_MAX_OPTIONS]:
            column = by_key.get(prefix + letter)
            if column is None:
                break
            found.append(column)
        if len(found) >= 2 and found not in layouts:
            layouts.append(found)
    for prefix in _NUMBER_PREFIXES:
        for first in (1, 0):
            found = []
            for i in range(first, first + _MAX_OPTIONS):
                column = by_key.get(f"{prefix}{i}")
                if column is None:
                    break
                found.append(column)
            if len(found) >= 2 and found not in layouts:
                layouts.append(found)
                break
    return layouts


def _candidates(columns: Sequence[Any]) -> dict[str, list[Union[str, list[str]]]]:
    """Per field, every column (or option layout) the names suggest, best first."""
    by_key: dict[str, str] = {}
    for column in columns:
        by_key.setdefault(colkey(column), str(column))
    found: dict[str, list[Union[str, list[str]]]] = {}
    for fld, names in _CANDIDATES.items():
        found[fld] = [by_key[n] for n in names if n in by_key]
    found["options"] = found["options"] + _option_layouts(by_key)  # type: ignore[operator]
    return found


def guess_mapping(columns: Sequence[str]) -> ColumnMap:
    """Guess which column holds which seed field, from common column names.

    Only fields that were found appear; ``options`` is one column (a list, a JSON list
    or a letter -> text object) or a list of per-option columns.

    >>> guess_mapping(["Question", "answer_a", "answer_b", "correct_answer", "topic"])
    {'question': 'Question', 'answer': 'correct_answer', 'subject': 'topic', 'options': ['answer_a', 'answer_b']}
    >>> guess_mapping(["Prompt", "Choice1", "Choice2", "Choice3", "Choice4", "Key", "Area"])
    {'question': 'Prompt', 'answer': 'Key', 'discipline': 'Area', 'options': ['Choice1', 'Choice2', 'Choice3', 'Choice4']}
    """
    mapping: ColumnMap = {}
    found = _candidates(columns)
    for fld in _CANDIDATES:
        if fld != "options" and found[fld]:
            mapping[fld] = found[fld][0]  # type: ignore[assignment]
    if found["options"]:
        mapping["options"] = found["options"][0]
    return mapping


@dataclass
class Plan:
    """The mapping applied to a file, with what is decided once for the file."""

    mapping: ColumnMap
    fallbacks: dict[str, list[Union[str, list[str]]]] = field(default_factory=dict)
    answer_base: int = 0  # integers in the answer column count options from this
    text_base: int = 1  # digit texts in the answer column count options from this

    def used(self) -> set[str]:
        """Columns the mapping reads in every row (fallback columns are used row by row)."""
        out: set[str] = set()
        for value in self.mapping.values():
            out.update(value if isinstance(value, list) else [value])
        return out


def resolve_plan(columns: list[str], mapping: Mapping[str, Any] | None, name: str,
                 sample: Sequence[Mapping[str, Any]] = ()) -> Plan:
    """Guesses, overridden field by field by the curator's mapping (empty value = unmapped)."""
    plan = guess_mapping(columns)
    guessed = dict(plan)
    known = set(columns)
    by_lower = {str(c).lower(): c for c in columns}

    def check(column: str, fld: str) -> str:
        if not known or column in known:
            return column
        if column.lower() in by_lower:
            return by_lower[column.lower()]
        raise InputError(
            f"{name}: mapped column '{column}' for {fld} not found among columns [{', '.join(map(str, columns))}]"
        )

    for fld, column in (mapping or {}).items():
        if fld not in FIELDS:
            raise InputError(f"{name}: unknown field '{fld}' in the column mapping; fields are {', '.join(FIELDS)}")
        if column is None or column == "" or column == []:
            plan.pop(fld, None)
            continue
        if fld == "options":
            parts = [c.strip() for c in column.split(",")] if isinstance(column, str) else [str(c) for c in column]
            parts = [check(c, fld) for c in parts if c]
            plan[fld] = parts[0] if len(parts) == 1 else parts
        else:
            plan[fld] = check(str(column), fld)

    used = set()
    for value in plan.values():
        used.update(value if isinstance(value, list) else [value])
    fallbacks: dict[str, list[Union[str, list[str]]]] = {}
    found = _candidates(columns)
    for fld in ("question", "answer", "options", "subject"):
        if fld not in plan or plan[fld] != guessed.get(fld):
            continue  # unmapped, or the curator's own choice
        names = _FALLBACK_NAMES.get(fld)
        alternatives = [c for c in found[fld] if c != plan[fld]
                        and not (set(c if isinstance(c, list) else [c]) & used)
                        and (names is None or colkey(c) in names)]
        if alternatives:
            fallbacks[fld] = alternatives
    return Plan(plan, fallbacks, *_index_bases(plan.get("answer"), sample))


def _index_bases(column: Any, sample: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """``(base of integer answers, base of digit-text answers)`` from the first rows."""
    if not isinstance(column, str):
        return 0, 1
    ints, texts = set(), set()
    for rec in sample:
        v = rec.get(column)
        if isinstance(v, int) and not isinstance(v, bool):
            ints.add(v)
        elif isinstance(v, str) and v.strip().isdigit() and v.strip().isascii() and len(v.strip()) <= 3:
            texts.add(int(v.strip()))
    int_base = 0 if 0 in ints or colkey(column) not in _INDEX_COLUMNS else 1
    text_base = 0 if 0 in texts else 1
    return int_base, text_base

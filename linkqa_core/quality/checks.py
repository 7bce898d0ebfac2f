"""The per-item gates: schema, answer consistency, length, and the gates' settings.

Each says in a sentence why an item fails, or returns None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from ..records import Item
from .text import norm_answer, short

__all__ = ["GateConfig", "check_schema", "check_answer_consistency", "check_length", "check_int"]

_MAX_OPTIONS = 10
_LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class GateConfig:
    """The knobs of the gates; the same names are used in the CLI, the app and run configs.

    >>> GateConfig(near_dup_threshold=0.9).decontam_ngram
    13
    """

    near_dup_threshold: float = 0.8
    """Jaccard similarity of word shingles at or above which two items are duplicates."""
    num_perm: int = 128
    """MinHash permutations: more finds borderline pairs more reliably, costs more time."""
    shingle_size: int = 3
    """Words per shingle for near-duplicate detection."""
    decontam_ngram: int = 13
    """Words an n-gram shared with the reference must have to count as contamination."""
    min_question_chars: int = 20
    max_question_chars: int = 4000
    min_answer_chars: int = 1
    max_answer_chars: int = 2000
    check_seeds: bool = True
    """Also reject items that are near-duplicates of a seed question."""

    def __post_init__(self) -> None:
        t = self.near_dup_threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (0 < t <= 1):
            raise ConfigError(f"near_dup_threshold must be a number above 0 and at most 1 (got {t!r})")
        check_int("num_perm", self.num_perm, 16, 1024)
        check_int("shingle_size", self.shingle_size, 1, 10)
        check_int("decontam_ngram", self.decontam_ngram, 3, 100)
        for what in ("question", "answer"):
            lo = getattr(self, f"min_{what}_chars")
            hi = getattr(self, f"max_{what}_chars")
            check_int(f"min_{what}_chars", lo, 0, None)
            check_int(f"max_{what}_chars", hi, 1, None)
            if hi < lo:
                raise ConfigError(
                    f"max_{what}_chars ({hi}) must be at least min_{what}_chars ({lo})"
                )
        if not isinstance(self.check_seeds, bool):
            raise ConfigError(f"check_seeds must be true or false (got {self.check_seeds!r})")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "GateConfig":
        """Build from a stored run config or form values; unknown names are an error, not ignored."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown gate setting '{unknown[0]}'; settings are {', '.join(known)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def check_int(name: str, value: Any, lo: int, hi: int | None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)
    if not ok:
        span = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
        raise ConfigError(f"{name} must be a whole number {span} (got {value!r})")



def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_schema(c: Item) -> str | None:
    """Why ``c`` is not a well-formed QA item, or None.

    Catches what a model's JSON gets wrong before any other gate has to guess: missing
    or non-text fields and unusable option lists.

    >>> check_schema(Item("What is 2+2?", "4", options=("4",)))
    'options must number 2 to 10 (got 1)'
    """
    if c.question is not None and not isinstance(c.question, str):
        return f"question is not text (got {type(c.question).__name__})"
    if _is_blank(c.question):
        return "question is missing"
    if c.answer is not None and not isinstance(c.answer, str):
        return f"answer is not text (got {type(c.answer).__name__})"
    if c.solution is not None and not isinstance(c.solution, str):
        return f"solution is not text (got {type(c.solution).__name__})"
    if _is_blank(c.answer):
        return "answer is missing"
    if c.options is not None:
        if isinstance(c.options, (str, bytes)) or not isinstance(c.options, Sequence):
            return f"options are not a list (got {type(c.options).__name__})"
        n = len(c.options)
        if not 2 <= n <= _MAX_OPTIONS:
            return f"options must number 2 to {_MAX_OPTIONS} (got {n})"
        seen: dict[str, int] = {}
        for i, opt in enumerate(c.options):
            if not isinstance(opt, str):
                return f"option {_LETTERS[i]} is not text (got {type(opt).__name__})"
            if not opt.strip():
                return f"option {_LETTERS[i]} is empty"
            norm = norm_answer(opt)
            if norm in seen:
                return f"options {_LETTERS[seen[norm]]} and {_LETTERS[i]} are the same ('{short(opt)}')"
            seen[norm] = i
    return None


_BARE_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.:)]?$")
_LETTER_AND_TEXT = re.compile(r"^\(?([A-Z])[).:]\s*(.+)$", re.S)


def _letter_index(text: str) -> int | None:
    m = _BARE_LETTER.match(text.strip())
    return ord(m.group(1).upper()) - ord("A") if m else None


def _span(n: int) -> str:
    return f"{n} options (A–{_LETTERS[n - 1]})"


def check_answer_consistency(c: Item) -> str | None:
    """Why a multiple-choice answer does not point at exactly one option, or None.

    The answer may be an option's text (compared ignoring case, spacing and trailing
    punctuation), a letter such as ``B`` or ``(B)``, or both (``B. Paris``). Items
    without options pass. Assumes :func:`check_schema` passed.

    >>> check_answer_consistency(Item("Capital of France?", "Lyon", ("Paris", "Rome")))
    "answer 'Lyon' is not one of the 2 options"
    """
    if not c.options:
        return None
    options = [str(o) for o in c.options]
    n = len(options)
    normed = [norm_answer(o) for o in options]

    answer = c.answer.strip() if isinstance(c.answer, str) else ""
    answer_idx: int | None = None
    norm = norm_answer(answer)
    if norm in normed:
        answer_idx = normed.index(norm)
    else:
        idx = _letter_index(answer)
        if idx is not None:
            if idx >= n:
                return f"answer letter '{short(answer)}' is out of range for {_span(n)}"
            answer_idx = idx
        else:
            m = _LETTER_AND_TEXT.match(answer)
            if m and ord(m.group(1)) - ord("A") < n:
                idx = ord(m.group(1)) - ord("A")
                if norm_answer(m.group(2)) != normed[idx]:
                    return (
                        f"answer '{short(answer)}' names option {_LETTERS[idx]}"
                        f" but option {_LETTERS[idx]} is '{short(options[idx])}'"
                    )
                answer_idx = idx
    if answer_idx is None:
        return f"answer '{short(answer)}' is not one of the {n} options"
    return None


def check_length(c: Item, cfg: GateConfig = GateConfig()) -> str | None:
    """Why the question or answer is too short or too long, or None.

    Stubs and runaway generations are the commonest sign of a broken response.
    Lengths are in characters after trimming surrounding whitespace.

    >>> check_length(Item("What is 2+2?", "4"))
    'question too short (12 < 20 characters)'
    """
    q = c.question.strip() if isinstance(c.question, str) else ""
    a = c.answer.strip() if isinstance(c.answer, str) else ""
    if len(q) < cfg.min_question_chars:
        return f"question too short ({len(q)} < {cfg.min_question_chars} characters)"
    if len(q) > cfg.max_question_chars:
        return f"question too long ({len(q)} > {cfg.max_question_chars} characters)"
    if len(a) < cfg.min_answer_chars:
        return f"answer too short ({len(a)} < {cfg.min_answer_chars} characters)"
    if len(a) > cfg.max_answer_chars:
        return f"answer too long ({len(a)} > {cfg.max_answer_chars} characters)"
    return None


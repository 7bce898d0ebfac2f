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

__all__ = ["GateConfig", "check_schema", "check_answer_consistency", "check_length", "check_int", "letter_answer"]

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


# An answer that names an option by its letter, in the forms models write: "D", "(d)", "D)",
# "D: ...", "D. 2.4 x 10^-19 C", "Option D", "The answer is (D)". A letter and a dot before a
# lower-case word may be an abbreviation ("E. coli", "H. pylori") rather than an option; "(i)" is a
# roman numeral labelling a sub-question, so lower-case letters in brackets stop at "h".
_LETTER_FORMS = re.compile(
    r"""^(?:
        \((?P<paren>(?-i:[A-J]|[a-h]))\)(?:$|[\s.:,])
      | (?P<close>[A-J])\)
      | (?P<colon>[A-J]):
      | (?P<dot>[A-J])\.\s+(?-i:(?![a-z]))\S
      | (?P<abbrev>[A-J])\.\s+(?-i:[a-z])
      | (?P<bare>[A-Ja-j])\.?$
      | (?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*
        (?:\((?P<named_paren>[A-J])\)|(?P<named>[A-J])(?=$|[.):,]))
      | (?:option|choice)\s+(?P<named_word>[A-J])\b
    )""",
    re.X | re.I,
)
_LETTER_AND_TEXT = re.compile(r"^\(?([A-Za-z])[).:]\s*(.+)$", re.S)
# A question that shows or mentions choices: a bare "B" can only mean one of them.
_CHOICE_CUE = re.compile(
    r"\b(?:which of (?:the following|these|the above)|the following|options?|choices?)\b"
    r"|^\s*(?:\(?[A-J]\)|[A-J][.:])\s+\S",
    re.I | re.M,
)


def _named_letter(answer: str, question: str, *, has_options: bool) -> int | None:
    """The option index an answer names by letter, or None.

    A bare letter ("C", "C.") or one before a lower-case word ("E. coli") names an option
    only when the item has options or its question speaks of choices: "What is the symbol
    of carbon?" may be answered "C", "Which bacterium...?" "E. coli".
    """
    m = _LETTER_FORMS.match(answer.strip())
    if m is None:
        return None
    kind = next(k for k, v in m.groupdict().items() if v is not None)
    letter = m.group(kind)
    if kind in ("bare", "abbrev") and not has_options and not _CHOICE_CUE.search(question):
        return None
    if kind in ("close", "colon", "dot", "abbrev", "named", "named_paren") and not letter.isupper():
        return None  # "d) ..." or "answer: d" in lower case is prose, not a label
    return ord(letter.upper()) - ord("A")


def _span(n: int) -> str:
    return f"{n} options (A–{_LETTERS[n - 1]})"


def letter_answer(answer: str, question: str, n_options: int = 0) -> str | None:
    """Why ``answer`` names an option letter the item does not have, or None.

    >>> letter_answer("D. 2.4 × 10^-19 C", "What is the charge?")
    "answer 'D. 2.4 × 10^-19 C' names option D but the item has no options"
    >>> letter_answer("E. coli", "Which bacterium lives in the gut?") is None
    True
    """
    idx = _named_letter(answer, question, has_options=n_options > 0)
    if idx is None:
        return None
    if n_options == 0:
        return f"answer '{short(answer)}' names option {_LETTERS[idx]} but the item has no options"
    if idx >= n_options:
        if _LETTER_FORMS.match(answer.strip()).group("abbrev"):
            return None  # "E. coli" beyond four options is a wrong answer, not a letter
        if len(answer.strip()) <= 3:
            return f"answer letter '{answer.strip()}' is out of range for {_span(n_options)}"
        return f"answer '{short(answer)}' names option {_LETTERS[idx]}, out of range for {_span(n_options)}"
    return None


def check_answer_consistency(c: Item) -> str | None:
    """Why the answer does not point at exactly one option, or names a letter it cannot, or None.

    With options, the answer may be an option's text (compared ignoring case, spacing and
    trailing punctuation), a letter such as ``B`` or ``(B)``, or both (``B. Paris``); a
    letter beyond the options is refused. Without options, an answer that names an option
    letter (``D``, ``(D)``, ``D. 2.4 C``) is refused: it answers a list the item does not
    have. Assumes :func:`check_schema` passed.

    >>> check_answer_consistency(Item("Capital of France?", "Lyon", ("Paris", "Rome")))
    "answer 'Lyon' is not one of the 2 options"
    """
    answer = c.answer.strip() if isinstance(c.answer, str) else ""
    question = c.question if isinstance(c.question, str) else ""
    if not c.options:
        return letter_answer(answer, question, 0)
    options = [str(o) for o in c.options]
    n = len(options)
    normed = [norm_answer(o) for o in options]
    norm = norm_answer(answer)
    if norm in normed:
        return None
    out_of_range = letter_answer(answer, question, n)
    if out_of_range is not None:
        return out_of_range
    idx = _named_letter(answer, question, has_options=True)
    m = _LETTER_AND_TEXT.match(answer)
    if m and ord(m.group(1).upper()) - ord("A") < n:
        idx = ord(m.group(1).upper()) - ord("A")
        if norm_answer(m.group(2)) != normed[idx]:
            return (
                f"answer '{short(answer)}' names option {_LETTERS[idx]}"
                f" but option {_LETTERS[idx]} is '{short(options[idx])}'"
            )
        return None
    if idx is not None and idx < n:
        return None
    return f"answer '{short(answer)}' is not one of the {n} options"


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


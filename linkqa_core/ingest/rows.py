"""One row into seed fields, or into the one-line reason it cannot be a seed.

:func:`make_builder` decides per file what can be decided per file (columns, fallbacks,
the discipline table) and returns the function that runs once per row; it returns a
plain tuple (see ``Fields``), which ingest turns straight into a database row.
:func:`seed_id` is the content hash that makes loading the same item twice add nothing.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import hashlib
import json
import math
import re
from typing import Any, Callable, Mapping, Sequence

from ..taxonomy import canonical_discipline, discipline_for, match_discipline, norm_key
from .mapping import Plan

__all__ = ["Fields", "make_builder", "seed_id", "norm", "LETTER_INDEX", "LETTERS", "PART_SEP", "OPTION_SEP"]

# What a row becomes before it is a Seed or a database row: id, question, answer,
# options, answer_letter, discipline, subject, difficulty, source, metadata.
Fields = tuple[Any, ...]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Answers that name an option by letter (A-H, either case, optionally "(A)", "[A]", "A)",
# "A.", "A:"), mapped to the option's 0-based index: one dict lookup a row, not a regex.
LETTER_INDEX = {
    f"{o}{c}{e}": ord(c.upper()) - 65
    for c in "ABCDEFGHabcdefgh" for o in ("", "(", "[") for e in ("", ")", "]", ".", ":")
}
_LEVEL_RE = re.compile(r"(?:level\s*)?([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)
_DIFFICULTY_WORDS = {"easy": 2.0, "medium": 3.0, "hard": 4.0}

# Separators inside the hashed key: printable and not whitespace, so that normalising the
# joined key equals joining the normalised (stripped) parts, in one pass.
PART_SEP = "\u241e"  # SYMBOL FOR RECORD SEPARATOR
OPTION_SEP = "\u241f"  # SYMBOL FOR UNIT SEPARATOR


def norm(text: str) -> str:
    """Whitespace runs as one space, ends stripped.

    Cheap when already so: every whitespace character but the ASCII space is
    non-printable, so printable text without double or edge spaces is its own form.
    """
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    return " ".join(text.split())


def seed_id(question: str, options: Sequence[str] | None, answer: str) -> str:
    """The stable content id of a seed: whitespace-insensitive, 16 hex characters.

    >>> seed_id("What is  2+2?", ["3", "4"], "4") == seed_id(" What is 2+2? ", ("3", "4"), "4")
    True
    """
    opts = OPTION_SEP.join([o.strip() for o in options]) if options else ""
    key = norm(f"{question.strip()}{PART_SEP}{opts}{PART_SEP}{answer.strip()}")
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


# -- cell values -----------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of a Parquet value, or ``DROP`` when it has no JSON form."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, _dt.timedelta)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [v for v in (jsonable(x) for x in value) if v is not DROP]
    if isinstance(value, dict):
        return {str(k): v for k, v in ((k, jsonable(x)) for k, x in value.items()) if v is not DROP}
    return DROP


DROP = object()


def text_of(value: Any) -> str | None:
    """A scalar as text (numbers too); None for missing; raises TypeError for lists etc."""
    if value is None:
        return None
    if value.__class__ is str:
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (int, float, decimal.Decimal)):
        return str(value)
    raise TypeError(type(value).__name__)


def parse_options(value: Any) -> tuple[str, ...] | str | None:
    """Options as a tuple of texts, None when absent, or a bad-row reason."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text[0] not in "[{":
            return "wrong type: options is text, expected a list of options"
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return "wrong type: options is text that is not a JSON list"
    if isinstance(value, dict):
        if isinstance(value.get("text"), list):  # {"text": [...], "label": ["A", ...]}
            value = value["text"]
        else:
            keys = list(value)
            if all(isinstance(k, str) and len(k.strip()) == 1 and k.strip().isalpha() for k in keys):
                keys.sort(key=lambda k: k.strip().upper())
            value = [value[k] for k in keys]
    if not isinstance(value, (list, tuple)):
        return f"wrong type: options is {type(value).__name__}, expected a list"
    out = []
    for item in value:
        try:
            text = text_of(item)
        except TypeError as err:
            return f"wrong type: options contain {err}, expected text"
        out.append("" if text is None else text.strip())
    return tuple(out) if out else None


def difficulty_of(value: Any) -> float | None | str:
    """A difficulty in 1-5, None when missing, or a bad-row reason."""
    if value is None:
        return None
    if isinstance(value, bool):
        return f"bad difficulty '{value}': expected 1-5"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None
        return float(value) if 1 <= value <= 5 else f"bad difficulty '{value}': expected 1-5"
    text = str(value).strip()
    if not text:
        return None
    word = _DIFFICULTY_WORDS.get(text.lower())
    if word is not None:
        return word
    m = _LEVEL_RE.fullmatch(text)
    if m:
        number = float(m.group(1))
        if 1 <= number <= 5:
            return number
    return f"bad difficulty '{_short(text)}': expected 1-5"


def scalar_text(value: Any) -> str | None:
    """A subject, discipline or source cell as stripped text, None when blank."""
    if value is None:
        return None
    text = (value if value.__class__ is str else str(value)).strip()
    return text or None


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _blank(value: Any) -> bool:
    """An empty cell: missing, null, NaN or only whitespace."""
    if value is None:
        return True
    if value.__class__ is str:
        return not value.strip()
    return isinstance(value, float) and math.isnan(value)


def _first_filled(rec: Mapping[str, Any], columns: list[str]) -> str | None:
    for column in columns:
        if not _blank(rec.get(column)):
            return column
    return None


# -- the row builder -----------------------------------------------------------------------


class Disciplines:
    """Subject and discipline cells onto disciplines, with the curator's map first.

    A discipline cell that matches the built-in taxonomy (``"philosophy"``,
    ``"Medicine and health"``) becomes the built-in name; one that matches nothing is
    kept as written. A subject becomes the discipline the taxonomy gives it (``Other``
    when none). ``discipline_map`` (cell value -> discipline, as the Seeds page's table
    sets it) applies to either kind of cell; its targets are built-in names whatever
    their case.
    """

    def __init__(self, discipline_map: Mapping[str, str] | None):
        self.map = {norm_key(k): canonical_discipline(v) for k, v in (discipline_map or {}).items()}
        self.cells: dict[str, str] = {}
        self.subjects: dict[str | None, str] = {}

    def of_cell(self, value: str) -> str:
        found = self.cells.get(value)
        if found is None:
            found = self.map.get(norm_key(value)) or match_discipline(value) or value
            self.cells[value] = found
        return found

    def of_subject(self, subject: str | None) -> str:
        found = self.subjects.get(subject)
        if found is None:
            found = (self.map.get(norm_key(subject)) if subject else None) or discipline_for(subject)
            self.subjects[subject] = found
        return found


def make_builder(plan: Plan, default_source: str, discipline_map: Mapping[str, str] | None,
                 sanitize: bool) -> Callable[[dict[str, Any]], Fields | str]:
    """A function turning one row into seed fields, or into the reason it cannot be one.

    Runs once per row, so everything that can be decided per file is decided here. It
    returns a plain tuple, not a :class:`Seed`: ingest turns it straight into a database
    row, and a frozen dataclass costs more per row than the tuple does.
    """
    mapping = plan.mapping
    q_col = mapping.get("question")
    a_col = mapping.get("answer")
    o_spec = mapping.get("options")
    o_cols: list[str] | None = o_spec if isinstance(o_spec, list) else None
    o_col: str | None = o_spec if isinstance(o_spec, str) else None
    s_col = mapping.get("subject")
    d_col = mapping.get("discipline")
    f_col = mapping.get("difficulty")
    src_col = mapping.get("source")
    used = plan.used()
    q_alt = plan.fallbacks.get("question")
    a_alt = plan.fallbacks.get("answer")
    o_alt = plan.fallbacks.get("options")
    s_alt = plan.fallbacks.get("subject")
    int_base, text_base = plan.answer_base, plan.text_base
    disciplines = Disciplines(discipline_map)
    letter_index = LETTER_INDEX
    letters = LETTERS
    part_sep, option_sep = PART_SEP, OPTION_SEP
    sha = hashlib.sha256

    def build(rec: dict[str, Any]) -> Fields | str:
        extra: list[str] = []  # fallback columns this row used (not metadata)
        # question
        q = rec.get(q_col) if q_col else None
        if q_alt and _blank(q):
            col = _first_filled(rec, q_alt)  # type: ignore[arg-type]
            if col is not None:
                q = rec[col]
                extra.append(col)
        if q.__class__ is not str:
            if q is None or (isinstance(q, float) and math.isnan(q)):
                return "missing question"
            return f"wrong type: question is {type(q).__name__}, expected text"
        q = q.strip()
        if not q:
            return "missing question"
        # answer
        raw_a = rec.get(a_col) if a_col else None
        if a_alt and _blank(raw_a):
            col = _first_filled(rec, a_alt)  # type: ignore[arg-type]
            if col is not None:
                raw_a = rec[col]
                extra.append(col)
        if raw_a.__class__ is str:
            a = raw_a.strip()
        else:
            try:
                a = text_of(raw_a)
            except TypeError as err:
                return f"wrong type: answer is {err}, expected text"
            if a is None:
                return "empty answer"
            a = a.strip()
        if not a:
            return "empty answer"
        # options
        opts: tuple[str, ...] | None = None
        cols, col1 = o_cols, o_col
        if o_alt and all(_blank(rec.get(c)) for c in (cols or [col1])):
            for alt in o_alt:
                alt_cols = alt if isinstance(alt, list) else [alt]
                if not all(_blank(rec.get(c)) for c in alt_cols):
                    cols, col1 = (alt, None) if isinstance(alt, list) else (None, alt)
                    extra.extend(alt_cols)
                    break
        if cols is not None:
            values = []
            for col in cols:
                text = rec.get(col)
                if text.__class__ is not str:
                    try:
                        text = text_of(text)
                    except TypeError as err:
                        return f"wrong type: {col} is {err}, expected text"
                    if text is None:
                        text = ""
                values.append(text.strip())
            while values and not values[-1]:
                values.pop()
            opts = tuple(values) if values else None
        elif col1 is not None:
            parsed = parse_options(rec.get(col1))
            if parsed.__class__ is str:
                return parsed  # type: ignore[return-value]
            opts = parsed  # type: ignore[assignment]
        # answer against options
        letter = None
        if opts:
            n = len(opts)
            if raw_a.__class__ is int and 0 <= raw_a - int_base < n:
                idx = raw_a - int_base  # an integer next to options is an index (see mapping.Plan)
            else:
                idx = letter_index.get(a, -1)
                if idx >= 0:
                    if idx >= n:
                        return f"answer letter '{letters[idx]}' is outside the {n} options"
                else:
                    na = norm(a)
                    for idx, opt in enumerate(opts):
                        if opt == a or norm(opt) == na:
                            break
                    else:
                        if a.isdigit() and a.isascii() and len(a) <= 3 and 0 <= int(a) - text_base < n:
                            idx = int(a) - text_base
                        else:
                            return f"answer '{_short(a)}' matches none of the {n} options"
            a = opts[idx]
            if not a:
                return "empty answer"
            letter = letters[idx] if idx < 26 else None
        # difficulty
        difficulty = None
        if f_col is not None:
            d = rec.get(f_col)
            if d.__class__ is int and 1 <= d <= 5:  # the common case, without a call
                difficulty = float(d)
            elif d is not None:
                difficulty = difficulty_of(d)
                if difficulty.__class__ is str:
                    return difficulty  # type: ignore[return-value]
        # subject, discipline, source
        subject = rec.get(s_col) if s_col else None
        if s_alt and _blank(subject):
            col = _first_filled(rec, s_alt)  # type: ignore[arg-type]
            if col is not None:
                subject = rec[col]
                extra.append(col)
        if subject.__class__ is str:
            subject = subject.strip() or None
        elif subject is not None:
            subject = scalar_text(subject)
        cell = scalar_text(rec.get(d_col)) if d_col else None
        discipline = disciplines.of_cell(cell) if cell is not None else disciplines.of_subject(subject)
        source = (scalar_text(rec.get(src_col)) if src_col else None) or default_source
        # everything else
        metadata = {}
        if not rec.keys() <= used:  # cheap test first: most files have no extra columns
            for k, v in rec.items():
                if k not in used and v is not None and v != "" and k not in extra:
                    if sanitize:
                        v = jsonable(v)
                        if v is DROP:
                            continue
                    metadata[k] = v
        # id: seed_id() inlined; q, a and the options are already stripped
        key = norm(f"{q}{part_sep}{option_sep.join(opts) if opts else ''}{part_sep}{a}")
        return (sha(key.encode("utf-8")).hexdigest()[:16], q, a, opts, letter, discipline, subject,
                difficulty, source, metadata)

    return build

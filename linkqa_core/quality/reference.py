"""A reference benchmark for decontamination: its questions indexed by hashed word n-grams."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import InputError
from ..records import BadRow
from .checks import check_int
from .text import words as text_words

__all__ = ["REFERENCE_FIELDS", "Reference", "load_reference"]

REFERENCE_FIELDS: tuple[str, ...] = ("question", "prompt", "problem", "input")
"""Keys of a JSON-lines reference row that hold its question, best first."""


@dataclass
class Reference:
    """A benchmark's questions, indexed by hashed word n-grams for decontamination.

    Build it with :func:`load_reference` (a file) or :meth:`from_texts`. Each n-gram
    remembers the first line it occurs on, so a contaminated item can be traced back.
    Reference questions shorter than ``decontam_ngram`` words cannot be matched.
    """

    name: str
    decontam_ngram: int
    items: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    _grams: dict[int, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_texts(cls, texts: Iterable[str], *, name: str = "reference",
                   decontam_ngram: int = 13) -> "Reference":
        """Index ``texts``; the i-th text (from 1) is reported as line i.

        >>> ref = Reference.from_texts(["one two three four five"], decontam_ngram=3)
        >>> ref.match("count: two three four!")
        1
        """
        check_int("decontam_ngram", decontam_ngram, 3, 100)
        ref = cls(name=name, decontam_ngram=decontam_ngram)
        for line, text in enumerate(texts, 1):
            ref._add(line, text)
        return ref

    def _add(self, line: int, text: str) -> None:
        self.items += 1
        words = text_words(text)
        n = self.decontam_ngram
        setdefault = self._grams.setdefault
        for i in range(len(words) - n + 1):
            setdefault(hash(tuple(words[i : i + n])), line)

    @property
    def ngrams(self) -> int:
        """Distinct n-grams indexed."""
        return len(self._grams)

    def match(self, text: str) -> int | None:
        """The reference line of the first n-gram of ``text`` found in the reference, or None."""
        words = text_words(text)
        n = self.decontam_ngram
        grams = self._grams
        for i in range(len(words) - n + 1):
            line = grams.get(hash(tuple(words[i : i + n])))
            if line is not None:
                return line
        return None


def _binary_offset(head: bytes) -> int | None:
    nul = head.find(b"\x00")
    if nul >= 0:
        return nul
    controls = [i for i, b in enumerate(head) if b < 32 and b not in (9, 10, 12, 13)]
    if controls and len(controls) * 20 > len(head):
        return controls[0]
    return None


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def load_reference(source: str | Path | bytes, *, name: str | None = None,
                   decontam_ngram: int = 13) -> Reference:
    """Read a reference benchmark: JSON lines or plain text, one question per line.

    A JSON-lines row gives its question under one of :data:`REFERENCE_FIELDS`; rows
    without one are kept in ``bad_rows`` rather than failing the whole file. The file
    is JSON lines when its first non-blank line is a JSON object. ``source`` may also
    be the file's bytes (an upload), named by ``name``.

    Raises InputError naming the file when it is missing, empty, binary or holds no
    question at all.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "reference"
    else:
        path = Path(source)
        label = name or str(path)
        if not path.exists():
            raise InputError(f"{label}: no such file")
        if path.is_dir():
            raise InputError(f"{label} is a directory, not a reference file")
        data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{label} is empty")
    offset = _binary_offset(data[:8192])
    if offset is not None:
        raise InputError(f"{label} is not a text file (binary content at byte {offset})")
    lines = _decode(data).splitlines()

    ref = Reference.from_texts((), name=label, decontam_ngram=decontam_ngram)
    first = next(line for line in lines if line.strip())
    jsonl = _is_json_object(first)
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not jsonl:
            ref._add(lineno, line)
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            ref.bad_rows.append(BadRow(lineno, f"not valid JSON ({err})"))
            continue
        if not isinstance(row, dict):
            ref.bad_rows.append(BadRow(lineno, "not a JSON object"))
            continue
        text = next((row[k] for k in REFERENCE_FIELDS if k in row), None)
        if text is None:
            keys = {k.lower(): k for k in row if isinstance(k, str)}
            text = next((row[keys[k]] for k in REFERENCE_FIELDS if k in keys), None)
        if text is None:
            ref.bad_rows.append(BadRow(lineno, f"no {', '.join(REFERENCE_FIELDS)} field"))
            continue
        if not isinstance(text, str):
            ref.bad_rows.append(BadRow(lineno, f"question field is not text (got {type(text).__name__})"))
            continue
        ref._add(lineno, text)
    if ref.items == 0:
        fields_ = " or ".join(REFERENCE_FIELDS)
        raise InputError(f"{label} has no questions (each JSON line needs a {fields_} field)")
    return ref


def _is_json_object(line: str) -> bool:
    if not line.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


"""Text a row cannot hold, found where it is and named in one line.

Shared by every reader, so that a NUL byte, bytes that are not UTF-8, a lone surrogate
or nesting a thousand levels deep is the same bad row, with the same words, in JSON
lines, JSON, CSV and Parquet, and never a traceback:

- :class:`LineDecoder` turns one line's bytes into text or a reason. A file is UTF-8
  unless its first non-ASCII line is not UTF-8; then (an Excel export) the whole file is
  Windows-1252. In a UTF-8 file a line that is not UTF-8 is one bad row.
- :func:`parse_json` is ``json.loads`` for one row that never raises: bad JSON,
  nesting deeper than :data:`MAX_DEPTH` and lone surrogates are reasons.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

__all__ = ["LineDecoder", "Problem", "parse_json", "json_error", "record_problem", "escapes_to_check", "nul_reason",
           "utf8_reason", "too_deep", "MAX_DEPTH"]

MAX_DEPTH = 200
"""Deepest nesting of arrays and objects a row may have. ``json`` itself gives up near the
interpreter's recursion limit, which depends on the caller's stack; a fixed limit gives
the same answer in every process (seed rows are a few levels deep)."""

_raw_decode = json.JSONDecoder().raw_decode
# a nested row can only be deep when it opens that many brackets
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', re.S)


def _latin1_holes(err: UnicodeDecodeError) -> tuple[str, int]:
    # the five bytes Windows-1252 leaves undefined read as their Latin-1 characters
    return err.object[err.start:err.end].decode("latin-1"), err.end  # type: ignore[union-attr]


codecs.register_error("linkqa-latin1", _latin1_holes)


def nul_reason(raw: bytes | str) -> str:
    """The reason of a line holding a NUL byte (``raw`` must hold one)."""
    column = (raw.index(b"\x00") if isinstance(raw, bytes) else raw.index("\x00")) + 1
    return f"NUL byte at column {column}"


def utf8_reason(raw: bytes, err: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1})"


class LineDecoder:
    """Lines of one text file as text, deciding its encoding on its first non-ASCII line."""

    def __init__(self) -> None:
        self.encoding: str | None = None  # None while every line so far was ASCII

    @property
    def name(self) -> str:
        return self.encoding or "utf-8"

    def decode(self, raw: bytes) -> tuple[str, str | None]:
        """``(text, None)``, or ``(text with the damage replaced, reason)`` for a bad line."""
        problem = nul_reason(raw) if b"\x00" in raw else None
        if self.encoding is None:
            if raw.isascii():
                text = raw.decode("ascii")
                return (text.replace("\x00", "\ufffd"), problem) if problem else (text, None)
            try:
                raw.decode("utf-8")
                self.encoding = "utf-8"
            except UnicodeDecodeError:
                self.encoding = "cp1252"
        if self.encoding == "cp1252":
            text = raw.decode("cp1252", "linkqa-latin1")
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return raw.decode("utf-8", "replace").replace("\x00", "\ufffd"), problem or utf8_reason(raw, err)
        return (text.replace("\x00", "\ufffd"), problem) if problem else (text, None)


def json_error(err: json.JSONDecodeError, where: str) -> str:
    """'Expecting value at column 3', 'Unterminated string starting at column 9'."""
    return f"{err.msg} {where}" if err.msg.endswith(" at") else f"{err.msg} at {where}"


def too_deep(text: str, start: int = 0, end: int | None = None) -> bool:
    """Whether ``text[start:end]`` nests arrays and objects deeper than :data:`MAX_DEPTH`."""
    end = len(text) if end is None else end
    if text.count("[", start, end) + text.count("{", start, end) <= MAX_DEPTH:
        return False
    depth = 0
    for m in _BRACKETS.finditer(text, start, end):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif c in "]}":
            depth -= 1
    return False


def parse_json(text: str) -> Any:
    """One row's JSON (a whole line) as ``json.loads`` reads it, or a :class:`Problem`."""
    if too_deep(text):
        return Problem(f"bad JSON: nested deeper than {MAX_DEPTH} levels")
    try:
        rec, end = _raw_decode(text)
        if end != len(text) and not text[end:].isspace():
            raise ValueError("extra data")
    except ValueError:
        try:  # again through json.loads, for its exact message ("Extra data", ...)
            json.loads(text)
        except json.JSONDecodeError as err:
            return Problem(f"bad JSON: {json_error(err, f'column {err.colno}')}")
        except ValueError as err:
            return Problem(f"bad JSON: {err}")
        rec = json.loads(text)
    if escapes_to_check(text):
        problem = record_problem(rec)
        if problem:
            return Problem(problem)
    return rec


def escapes_to_check(text: str) -> bool:
    """Whether JSON text escapes a NUL or a surrogate (``\\u0000``, ``\\ud800``), which
    :func:`record_problem` must then look for in the parsed value."""
    return "\\u" in text and ("\\u0000" in text or "\\ud" in text or "\\uD" in text)


class Problem(str):
    """A reason, told apart from a JSON string value that a row might be."""


def record_problem(value: Any) -> str | None:
    """Text a stored row cannot hold anywhere in ``value``: a NUL character (``\\u0000``)
    or a lone surrogate (``\\ud800``, half of a UTF-16 pair). Walks the whole value; call
    it only when the raw text shows an escape (or the format may carry either)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if v.__class__ is str:
            if "\x00" in v:
                return "NUL character (\\u0000) in the text"
            if not v.isascii():
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError as err:
                    return f"lone surrogate \\u{ord(v[err.start]):04x} in the text (half of a UTF-16 pair)"
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return None

"""JSON documents: an array of objects, or an object of arrays (splits), streamed.

A JSON file is read a megabyte at a time through a bounded scanner: the containers at
the top (the array, or the object of splits) are walked here, and each record inside
is decoded on its own by ``json``'s own scanner, so memory holds one record (and the
current buffer), never the document. Syntax errors are ``json``'s own messages at the
file's line and column, as ``json.loads`` would give for the whole file. A record that
nests too deep, holds a lone surrogate or a NUL, or bytes that are not UTF-8, is a bad
row, numbered like every record (from 1, across the splits).

The file's encoding is decided on its first non-ASCII bytes: UTF-8 unless they are not
UTF-8, then Windows-1252 (``encoding`` says so).
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, BinaryIO, Iterator

from ..errors import InputError
from .formats import Reader
from .sources import Source
from .text import MAX_DEPTH, escapes_to_check, record_problem, too_deep

__all__ = ["JsonReader"]

_CHUNK = 1 << 20
_WS = " \t\n\r"
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', re.S)
_raw_decode = json.JSONDecoder().raw_decode


class _Text:
    """The decoded document in a sliding window: ``buf`` starts at document offset ``base``."""

    def __init__(self, fh: BinaryIO, name: str):
        self.fh = fh
        self.name = name
        self.buf = ""
        self.eof = False
        self.lines_before = 0  # newlines in the document before buf
        self.col_before = 0  # characters after the last of them, before buf
        self.encoding: str | None = None
        self._decoder: Any = None
        self.chunk = _CHUNK

    def more(self, at_least: int = _CHUNK) -> bool:
        """Append the next block of text; False at the end of the document."""
        if self.eof:
            return False
        raw = self.fh.read(max(at_least, _CHUNK))
        if not raw:
            self.eof = True
            if self._decoder is not None:
                self.buf += self._decoder.decode(b"", final=True)
            return True
        self.buf += self._decode(raw)
        return True

    def _decode(self, raw: bytes) -> str:
        if self._decoder is not None:
            return self._decoder.decode(raw)
        if raw.isascii():
            return raw.decode("ascii")
        first = next(i for i, b in enumerate(raw) if b >= 0x80)
        try:
            codecs.getincrementaldecoder("utf-8")().decode(raw)
            utf8 = True
        except UnicodeDecodeError as err:
            utf8 = err.start != first  # the first non-ASCII bytes decide
        self.encoding = "utf-8" if utf8 else "cp1252"
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape") if utf8 else \
            codecs.getincrementaldecoder("cp1252")("linkqa-latin1")
        return self._decoder.decode(raw)

    def char(self, pos: int) -> str:
        """The character at ``pos`` ('' at the end of the document), reading on as needed."""
        while pos >= len(self.buf) and self.more():
            pass
        return self.buf[pos:pos + 1]

    def skip_ws(self, pos: int) -> int:
        while True:
            while pos < len(self.buf) and self.buf[pos] in _WS:
                pos += 1
            if pos < len(self.buf) or not self.more():
                return pos

    def drop(self, pos: int) -> int:
        """Forget the text before ``pos``; returns ``pos`` in the shortened buffer."""
        if pos < (1 << 20):
            return pos
        gone = self.buf[:pos]
        nl = gone.count("\n")
        if nl:
            self.lines_before += nl
            self.col_before = len(gone) - gone.rfind("\n") - 1
        else:
            self.col_before += len(gone)
        self.buf = self.buf[pos:]
        return 0

    def where(self, pos: int) -> str:
        nl = self.buf.count("\n", 0, pos)
        if nl:
            column = pos - self.buf.rfind("\n", 0, pos)
            return f"line {self.lines_before + nl + 1} column {column}"
        return f"line {self.lines_before + 1} column {self.col_before + pos + 1}"

    def fail(self, msg: str, pos: int) -> InputError:
        where = self.where(pos)
        return InputError(f"{self.name} is not valid JSON: {msg} {where}" if msg.endswith(" at") else
                          f"{self.name} is not valid JSON: {msg} at {where}")

    def value(self, pos: int) -> tuple[Any, int]:
        """Decode the JSON value at ``pos``: ``(value, end)``, or ``(_DEEP, end)`` when it
        nests deeper than :data:`MAX_DEPTH`. Reads on until the value is whole."""
        want = _CHUNK
        while True:
            try:
                value, end = _raw_decode(self.buf, pos)
                if end < len(self.buf) or self.eof:
                    return value, end
            except json.JSONDecodeError as err:
                near_end = err.pos >= len(self.buf) - 64 or err.msg.startswith("Unterminated string")
                if self.eof or not near_end:
                    raise self.fail(err.msg, err.pos) from None
            except RecursionError:  # far deeper than MAX_DEPTH: skip it by its brackets
                end = self._extent(pos)
                if end is not None:
                    return _DEEP, end
            if not self.more(want):
                raise self.fail("Expecting value", len(self.buf))  # pragma: no cover - eof handled above
            want *= 2

    def _extent(self, pos: int) -> int | None:
        """Where the value at ``pos`` ends, by brackets (None when the buffer ends first)."""
        depth = 0
        for m in _BRACKETS.finditer(self.buf, pos):
            c = m.group()
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
                if depth == 0:
                    return m.end()
            elif depth == 0:
                return m.end()  # a lone string
        return None


_DEEP = object()


def _record(text: _Text, value: Any, start: int, end: int) -> Any:
    """The record, or the reason it is a bad row."""
    if value is _DEEP:
        return f"bad JSON: nested deeper than {MAX_DEPTH} levels"
    if not isinstance(value, dict):
        return "not an object"
    span = text.buf[start:end]
    m = _ESCAPED_BYTES.search(span)
    if m:
        return f"not UTF-8 text (byte 0x{ord(m.group()) - 0xDC00:02x})"
    if too_deep(span):
        return f"bad JSON: nested deeper than {MAX_DEPTH} levels"
    if escapes_to_check(span):
        problem = record_problem(value)
        if problem:
            return problem
    return value


class JsonReader(Reader):
    unit = "record"

    def __init__(self, src: Source):
        super().__init__(src)
        self._encoding = "utf-8"
        self._learn()

    @property
    def encoding(self) -> str:
        return self._encoding

    def records(self) -> Iterator[tuple[int, Any]]:
        try:
            with self.src.open() as fh:
                text = _Text(fh, self.src.name)
                yield from self._document(text)
                self._encoding = text.encoding or "utf-8"
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise self.src.unreadable(err) from err

    def _document(self, text: _Text) -> Iterator[tuple[int, Any]]:
        pos = text.skip_ws(0)
        if text.char(pos) == "\ufeff":
            pos = text.skip_ws(pos + 1)
        first = text.char(pos)
        if first == "[":
            n, pos = yield from self._array(text, pos, 0, None)
        elif first == "{":
            pos = yield from self._object(text, pos)
        else:
            value, pos = text.value(pos)
            raise InputError(
                f"{self.src.name}: expected an array of objects or an object whose values are arrays of objects,"
                f" found {type(value).__name__}"
            )
        pos = text.skip_ws(pos)
        if text.char(pos):
            raise text.fail("Extra data", pos)

    def _array(self, text: _Text, pos: int, n: int, split: str | None):
        """Records of the array at ``pos``; returns ``(records so far, end)``."""
        pos = text.skip_ws(pos + 1)
        if text.char(pos) == "]":
            return n, pos + 1
        while True:
            value, end = text.value(pos)
            n += 1
            rec = _record(text, value, pos, end)
            if split is not None and rec.__class__ is dict and "split" not in rec:
                rec = dict(rec, split=split)
            yield n, rec
            pos = text.skip_ws(end)
            c = text.char(pos)
            if c == "]":
                return n, text.drop(pos + 1)
            if c != ",":
                raise text.fail("Expecting ',' delimiter", pos)
            pos = text.drop(text.skip_ws(pos + 1))

    def _object(self, text: _Text, pos: int):
        """An object of splits (arrays of objects: their records), or one record."""
        members: dict[str, Any] = {}
        n = 0
        start = pos
        pos = text.skip_ws(pos + 1)
        if text.char(pos) == "}":
            pos += 1
        else:
            while True:
                if text.char(pos) != '"':
                    raise text.fail("Expecting property name enclosed in double quotes", pos)
                key, pos = text.value(pos)
                pos = text.skip_ws(pos)
                if text.char(pos) != ":":
                    raise text.fail("Expecting ':' delimiter", pos)
                pos = text.skip_ws(pos + 1)
                if text.char(pos) == "[" and text.char(text.skip_ws(pos + 1)) == "{":
                    n, pos = yield from self._array(text, pos, n, key)
                    start = None  # the object is splits, not a record
                else:
                    value, pos = text.value(pos)
                    if start is not None:
                        members[key] = value
                pos = text.skip_ws(pos)
                c = text.char(pos)
                if c == "}":
                    pos += 1
                    break
                if c != ",":
                    raise text.fail("Expecting ',' delimiter", pos)
                pos = text.skip_ws(pos + 1)
        if start is not None:
            yield 1, _record(text, members, start, pos)
        return pos

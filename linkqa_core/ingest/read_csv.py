"""CSV and TSV, streamed line by line in bounded memory.

The file is read as byte lines; :class:`~.text.LineDecoder` decodes each (UTF-8, or
Windows-1252 for an Excel export) and flags a line with a NUL byte or bytes that are not
UTF-8. Python's ``csv`` module joins the lines into records (a quoted field may span
lines); a record that touches a flagged line is a bad row at the record's first line.
Line numbers count the header as line 1.
"""

from __future__ import annotations

import csv
from typing import Any, BinaryIO, Iterator

from ..errors import InputError
from .formats import Reader
from .sources import BOM, Source
from .text import LineDecoder

__all__ = ["CsvReader"]

_DELIMITERS = (",", "\t", ";", "|")


def _split_on_cr(fh: BinaryIO) -> Iterator[bytes]:
    """Lines of a file that ends its lines with a lone CR (old Mac exports)."""
    rest = b""
    for block in iter(lambda: fh.read(1 << 20), b""):
        parts = (rest + block).split(b"\r")
        rest = parts.pop()
        for p in parts:
            yield p + b"\r"
    if rest:
        yield rest


class _Lines:
    """Decoded lines of the file for ``csv.reader``, remembering which were damaged."""

    def __init__(self, fh: BinaryIO, lone_cr: bool):
        self.raw = _split_on_cr(fh) if lone_cr else iter(fh)
        self.decoder = LineDecoder()
        self.n = 0
        self.damaged: dict[int, str] = {}  # line number -> reason, until its record is read

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        raw = next(self.raw)
        self.n += 1
        if self.n == 1 and raw.startswith(BOM):
            raw = raw[3:]
        text, problem = self.decoder.decode(raw)
        if problem:
            self.damaged[self.n] = problem
        return text

    def problem_between(self, first: int, last: int) -> str | None:
        """The first damage on lines ``first..last`` (forgetting damage up to ``last``)."""
        if not self.damaged:
            return None
        found = None
        for line in sorted(k for k in self.damaged if k <= last):
            reason = self.damaged.pop(line)
            if found is None and line >= first:
                found = reason if line == first else f"line {line}: {reason}"
        return found


class CsvReader(Reader):
    def __init__(self, src: Source, delimiter: str | None):
        super().__init__(src)
        head = src.head().lstrip(BOM + b"\r\n")
        self.lone_cr = b"\r" in head and b"\n" not in head
        if delimiter is None:
            first = head.split(b"\r" if self.lone_cr else b"\n", 1)[0].decode("latin-1")
            counts = {d: first.count(d) for d in _DELIMITERS}
            delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
        self.delimiter = delimiter
        if csv.field_size_limit() < (1 << 30):
            csv.field_size_limit(1 << 30)  # a long solution must not end the file
        self._encoding = "utf-8"
        self.header: list[str] | None = None
        self._learn()
        self.columns = list(self.header or [])

    @property
    def encoding(self) -> str:
        return self._encoding

    def _error(self, reader: Any, err: Exception) -> InputError:
        return InputError(f"{self.src.name} is not valid CSV: line {reader.line_num}: {err}")

    def records(self) -> Iterator[tuple[int, Any]]:
        try:
            with self.src.open() as fh:
                lines = _Lines(fh, self.lone_cr)
                reader = csv.reader(lines, delimiter=self.delimiter)
                try:
                    header = None
                    for row in reader:
                        if row and any(c.strip() for c in row):
                            header = [c.strip() for c in row]
                            break
                    if header is None:
                        return
                    self.header = header
                    problem = lines.problem_between(1, reader.line_num)
                    if problem:
                        raise InputError(f"{self.src.name}: the header (line {reader.line_num}) is damaged: {problem}")
                    start = reader.line_num + 1
                    for row in reader:
                        end = reader.line_num
                        problem = lines.problem_between(start, end)
                        self._encoding = lines.decoder.name
                        if problem:
                            yield start, problem
                        elif row and not (len(row) == 1 and not row[0].strip()):
                            yield start, dict(zip(header, row))
                        start = end + 1
                except csv.Error as err:
                    raise self._error(reader, err) from err
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise self.src.unreadable(err) from err

    def estimate(self) -> int:
        count = 0
        try:
            with self.src.open() as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    count += block.count(b"\r" if self.lone_cr else b"\n")
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise self.src.unreadable(err) from err
        return max(count - 1, 0)

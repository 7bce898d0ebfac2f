"""Which reader reads a source: the format from the argument, the extension or the content.

:func:`open_reader` also makes the whole-file checks (empty, binary, unknown format), so
that a wrong file fails at once with one message, before any row is read.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from ..errors import InputError
from .sources import BOM, Source, binary_offset

__all__ = ["FORMATS", "Reader", "open_reader", "SAMPLE_ROWS"]

FORMATS: tuple[str, ...] = ("jsonl", "json", "csv", "parquet")
"""Formats a seed file can have; ``format=`` takes one of these (or ``ndjson``, ``tsv``)."""

_ALIASES = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "csv": "csv", "tsv": "tsv", "parquet": "parquet"}
SAMPLE_ROWS = 200  # rows read to learn a file's columns (and a few habits of its values)


class Reader:
    """Rows of one file as ``(line or record number, dict or reason)``, plus its columns.

    ``sample`` holds the first :data:`SAMPLE_ROWS` usable rows (dicts), read when the
    reader opens: the column guesses and the answer-index convention come from them.
    """

    unit = "line"

    def __init__(self, src: Source):
        self.src = src
        self.columns: list[str] = []
        self.sample: list[dict[str, Any]] = []

    @property
    def encoding(self) -> str:
        return "utf-8"

    def records(self) -> Iterator[tuple[int, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def estimate(self) -> int:
        """Rows in the file, roughly (for progress bars)."""
        return 0

    def _learn(self) -> None:
        """Fill ``sample`` and ``columns`` (first seen order) from the first rows."""
        seen: dict[str, None] = {}
        for i, (_, rec) in enumerate(self.records()):
            if isinstance(rec, dict):
                self.sample.append(rec)
                seen.update(dict.fromkeys(rec))
            if i + 1 >= SAMPLE_ROWS:
                break
        self.columns = [str(c) for c in seen]

    def peek(self, n: int) -> list[dict[str, Any]]:
        return self.sample[:n]


def _first_line_is_object(head: bytes) -> bool:
    line = head.lstrip(BOM + b" \t\r\n").split(b"\n", 1)[0]
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False


def _more_after_first_line(head: bytes) -> bool:
    rest = head.lstrip(BOM + b" \t\r\n").split(b"\n", 1)
    return len(rest) == 2 and bool(rest[1].strip())


def _object_line_after_first(head: bytes) -> bool:
    """Whether a line after the first is a whole JSON object (an array's elements end in commas)."""
    lines = head.lstrip(BOM + b" \t\r\n").split(b"\n")[1:-1]  # the last may be cut by the head's end
    return any(line.strip().startswith(b"{") and _first_line_is_object(line) for line in lines)


def open_reader(src: Source, format: str | None) -> tuple[str, Reader]:
    """Pick the format (argument, else extension, else content) and check the whole file."""
    from .read_csv import CsvReader
    from .read_json import JsonReader
    from .read_jsonl import JsonlReader
    from .read_parquet import ParquetReader

    fmt: str | None = None
    if format:
        fmt = _ALIASES.get(format.strip().lower().lstrip("."))
        if fmt is None:
            raise InputError(f"{src.name}: unknown format '{format}'; use one of {', '.join(FORMATS)}")
    explicit = fmt is not None
    fmt = fmt or src.extension_format()
    head = src.head()
    if not head:
        raise InputError(f"{src.name} is empty")
    if fmt == "parquet" or (fmt is None and head.startswith(b"PAR1")):
        return "parquet", ParquetReader(src)

    head = src.sniff()  # UTF-16 is transcoded from here on
    offset = binary_offset(head)
    if offset is not None:
        raise InputError(f"{src.name} is not a text file (binary content at byte {offset})")
    stripped = head.lstrip(BOM + b" \t\r\n")
    if not stripped:
        raise InputError(f"{src.name} is empty")

    if fmt is None:
        if stripped.startswith(b"["):
            fmt = "json"
        elif stripped.startswith(b"{"):
            # one object a line is JSON lines; a lone line is one JSON document
            fmt = "jsonl" if b"\n" in stripped.rstrip() and _first_line_is_object(head) else "json"
        else:
            fmt = "csv"
    elif fmt == "jsonl" and not explicit and stripped.startswith(b"["):
        fmt = "json"  # a JSON array saved as .jsonl
    elif fmt == "json" and not explicit and _first_line_is_object(head) and _more_after_first_line(head):
        fmt = "jsonl"  # JSON lines saved as .json

    if fmt == "jsonl":
        return "jsonl", JsonlReader(src)
    if fmt == "json":
        try:
            return "json", JsonReader(src)
        except InputError:
            # taken for an array by its first "[" but not one: JSON lines after a stray line
            # (a row of junk is a bad row there, where an invalid document loses every row)
            if explicit or not stripped.startswith(b"[") or not _object_line_after_first(head):
                raise
            return "jsonl", JsonlReader(src)
    return "csv", CsvReader(src, "\t" if fmt == "tsv" else None)

"""Seeds: load QA items from JSONL, JSON, CSV or Parquet, and store them.

A curator's file is rarely clean. This module maps its columns onto seed fields
(guessed from common names, corrected with ``mapping=``) and keeps every row it can.
Each row it cannot use is reported as a :class:`BadRow` with its line (JSONL, CSV) or
record number (JSON, Parquet) and a reason; a problem with the whole file (empty,
binary, not the format it claims, no question column, no usable row) raises one
:class:`InputError` and changes nothing in the database.

JSON lines and Parquet stream, so :func:`ingest` handles millions of rows in little
memory; JSON and CSV files are read whole. JSON lines are decoded line by line, so one
line in another encoding is one bad row; a CSV or JSON file that is not UTF-8 as a whole
is read as Windows-1252 (``LoadResult.encoding`` says so).

Ids are content hashes (:func:`seed_id`), so loading the same file twice adds nothing.

>>> result = load_seeds(sample_path())
>>> len(result.seeds), len(result.bad_rows), result.seeds[0].answer_letter
(1140, 0, 'C')
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import gzip
import hashlib
import io
import itertools
import json
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Generator, Iterable, Iterator, Mapping, Sequence, Union

from ..errors import InputError
from ..records import BadRow, IngestReport, Seed
from ..taxonomy import DISCIPLINES, discipline_for

if TYPE_CHECKING:
    from ..store import Store

__all__ = [
    "FORMATS",
    "FIELDS",
    "LoadResult",
    "Progress",
    "SourceLike",
    "guess_mapping",
    "peek",
    "load_seeds",
    "ingest",
    "seed_id",
    "sample_path",
]

FORMATS: tuple[str, ...] = ("jsonl", "json", "csv", "parquet")
"""Formats a seed file can have; ``format=`` takes one of these (or ``ndjson``, ``tsv``)."""

FIELDS: tuple[str, ...] = ("question", "answer", "options", "subject", "discipline", "difficulty", "source")
"""Seed fields a column can be mapped onto; the keys of a ``mapping``."""

SourceLike = Union[str, Path, bytes, bytearray, memoryview, BinaryIO]
Progress = Callable[[int, int, str], None]
ColumnMap = dict[str, Union[str, list[str]]]
# What a row becomes before it is a Seed or a database row: id, question, answer,
# options, answer_letter, discipline, subject, difficulty, source, metadata.
_Fields = tuple[Any, ...]

# Rows handed to Store.add_seed_rows at a time during ingest (a parsing child's chunk is
# this many lines); also how often progress fires.
BATCH = 5000
# JSON-lines files at least this big (on disk; gzip counted 4x) are parsed by a child
# process while this one writes SQLite: see workers. Below it, the child's start-up
# (~60 ms) is not worth it.
WORKER_MIN_BYTES = 8 << 20
# Parsing children: with two, parsing keeps up with SQLite on a 2-core machine; past
# four the parent's inserts are the limit.
WORKER_PROCESSES = max(2, min(4, os.cpu_count() or 2))
# Rows of a JSON-lines file scanned to learn its columns.
_SAMPLE_ROWS = 200

# Candidate column names per field, best first, compared case-insensitively with
# spaces and hyphens read as underscores.
_CANDIDATES: dict[str, tuple[str, ...]] = {
    "question": ("question", "prompt", "problem", "input", "query"),
    "answer": ("answer", "solution", "correct_answer", "answerkey", "answer_key", "target", "label", "output"),
    "options": ("options", "choices"),
    "subject": ("subject", "topic", "category"),
    "discipline": ("discipline",),
    "difficulty": ("difficulty", "level"),
    "source": ("source",),
}
# Options spread over one column per letter: answer_a.., option_a.., choice_a.., A..
_LETTER_PREFIXES = ("answer_", "option_", "choice_", "")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Answers that name an option by letter (A-H, either case, optionally "(A)", "[A]", "A)",
# "A.", "A:"), mapped to the option's 0-based index: one dict lookup a row, not a regex.
_LETTER_INDEX = {
    f"{o}{c}{e}": ord(c.upper()) - 65
    for c in "ABCDEFGHabcdefgh" for o in ("", "(", "[") for e in ("", ")", "]", ".", ":")
}
_LEVEL_RE = re.compile(r"(?:level\s*)?([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)
_DIFFICULTY_WORDS = {"easy": 2.0, "medium": 3.0, "hard": 4.0}
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonlines": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_FORMAT_ALIASES = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "csv": "csv", "tsv": "tsv", "parquet": "parquet"}
_CANONICAL_DISCIPLINE = {d.lower(): d for d in DISCIPLINES}
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_HEAD = 1 << 16
# Control bytes that do not occur in text (tab, newlines, form feed and escape do).
_CONTROL = frozenset(range(32)) - {9, 10, 11, 12, 13, 27}


@dataclass
class LoadResult:
    """What :func:`load_seeds` read: the usable seeds and every row it could not use.

    ``seeds`` keeps rows in file order, including repeats of the same item (the store
    drops those by id); ``mapping`` is the column mapping that was applied, so the app
    can show it and the curator can correct it; ``encoding`` says how text was decoded
    (``cp1252`` when a CSV or JSON file was not UTF-8).
    """

    seeds: list[Seed]
    bad_rows: list[BadRow]
    rows_read: int
    mapping: ColumnMap
    format: str
    name: str = ""
    encoding: str = "utf-8"


def sample_path() -> Path:
    """The bundled MMLU sample (1140 questions, 20 from each of 57 subjects)."""
    return Path(__file__).resolve().parent.parent / "data" / "mmlu_sample.jsonl"


def _norm(text: str) -> str:
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
    opts = _OPTION_SEP.join([o.strip() for o in options]) if options else ""
    key = _norm(f"{question.strip()}{_PART_SEP}{opts}{_PART_SEP}{answer.strip()}")
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


# Separators inside the hashed key: printable and not whitespace, so that normalising the
# joined key equals joining the normalised (stripped) parts, in one pass.
_PART_SEP = "\u241e"  # SYMBOL FOR RECORD SEPARATOR
_OPTION_SEP = "\u241f"  # SYMBOL FOR UNIT SEPARATOR


# -- column mapping --------------------------------------------------------------------


def _colkey(column: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(column).strip().lower())


def guess_mapping(columns: Sequence[str]) -> ColumnMap:
    """Guess which column holds which seed field, from common column names.

    Only fields that were found appear; ``options`` is one column (a list, a JSON list
    or a letter -> text object) or a list of per-letter columns.

    >>> guess_mapping(["Question", "answer_a", "answer_b", "correct_answer", "topic"])
    {'question': 'Question', 'answer': 'correct_answer', 'subject': 'topic', 'options': ['answer_a', 'answer_b']}
    """
    by_key: dict[str, str] = {}
    for column in columns:
        by_key.setdefault(_colkey(column), column)
    mapping: ColumnMap = {}
    for fld, names in _CANDIDATES.items():
        for name in names:
            if name in by_key:
                mapping[fld] = by_key[name]
                break
    if "options" not in mapping:
        for prefix in _LETTER_PREFIXES:
            found: list[str] = []
            for letter in "abcdefgh":
                column = by_key.get(prefix + letter)
                if column is None:
                    break
                found.append(column)
            if len(found) >= 2:
                mapping["options"] = found
                break
    return mapping


def _resolve_mapping(columns: list[str], mapping: Mapping[str, Any] | None, name: str) -> ColumnMap:
    """Guesses, overridden field by field by the curator's mapping (empty value = unmapped)."""
    plan = guess_mapping(columns)
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
    return plan


# -- reading the file ------------------------------------------------------------------


class _Input:
    """One source (path, bytes or file object) with its display name, opened as bytes."""

    def __init__(self, source: SourceLike, filename: str | None):
        self.path: Path | None = None
        self.data: bytes | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.data = bytes(source)
        elif isinstance(source, (str, Path)):
            self.path = Path(source)
        elif hasattr(source, "getvalue") or hasattr(source, "read"):
            raw = source.getvalue() if hasattr(source, "getvalue") else source.read()
            self.data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
            filename = filename or getattr(source, "name", None)
        else:
            raise InputError(f"cannot read seeds from a {type(source).__name__}; give a path or bytes")
        label = filename or (str(self.path) if self.path is not None else "upload")
        self.name = Path(label).name or label
        self.hint = (filename or (self.path.name if self.path is not None else "")).lower()
        if self.path is not None:
            if not self.path.exists():
                raise InputError(f"{self.path}: no such file")
            if self.path.is_dir():
                raise InputError(f"{self.path} is a directory, not a seed file")
        self.gzipped = False
        try:
            self.gzipped = self._raw_head(2) == _GZIP_MAGIC
        except OSError as err:
            raise self.unreadable(err) from err

    def _raw_head(self, n: int) -> bytes:
        if self.data is not None:
            return self.data[:n]
        assert self.path is not None
        with open(self.path, "rb") as fh:
            return fh.read(n)

    def unreadable(self, err: Exception) -> InputError:
        """The error for an I/O failure: a damaged gzip stream or an unreadable file."""
        if self.gzipped:
            return InputError(f"{self.name} is not a readable gzip file ({err})")
        return InputError(f"{self.name} cannot be read ({getattr(err, 'strerror', None) or err})")

    def open(self) -> BinaryIO:
        raw: BinaryIO = open(self.path, "rb") if self.path is not None else io.BytesIO(self.data or b"")
        return gzip.GzipFile(fileobj=raw) if self.gzipped else raw  # type: ignore[return-value]

    def head(self, n: int = _HEAD) -> bytes:
        try:
            with self.open() as fh:
                return fh.read(n)
        except (OSError, EOFError) as err:
            raise self.unreadable(err) from err

    def read_all(self) -> bytes:
        try:
            with self.open() as fh:
                return fh.read()
        except (OSError, EOFError) as err:
            raise self.unreadable(err) from err

    def extension_format(self) -> str | None:
        hint = self.hint[:-3] if self.hint.endswith(".gz") else self.hint
        return _EXTENSIONS.get(Path(hint).suffix)


def _binary_offset(head: bytes) -> int | None:
    """Where a supposed text file shows binary content: a NUL byte, or many control bytes."""
    nul = head.find(b"\x00")
    if nul >= 0:
        return nul
    controls = [i for i, b in enumerate(head[:4096]) if b in _CONTROL]
    if controls and len(controls) * 20 > min(len(head), 4096):
        return controls[0]
    return None


def _decode_text(data: bytes) -> tuple[str, str]:
    """UTF-8 (BOM dropped), else Windows-1252 when the whole file decodes so, else Latin-1."""
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return data.decode(encoding), "utf-8" if encoding == "utf-8-sig" else encoding
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _json_error(err: json.JSONDecodeError, where: str) -> str:
    """'Expecting value at column 3', 'Unterminated string starting at column 9'."""
    return f"{err.msg} {where}" if err.msg.endswith(" at") else f"{err.msg} at {where}"


def _bad_json(text: str) -> str | None:
    """Why one line is not JSON, in json.loads' words; None if it is JSON after all."""
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        return f"bad JSON: {_json_error(err, f'column {err.colno}')}"
    except ValueError as err:
        return f"bad JSON: {err}"
    return None


def _first_line_is_object(head: bytes) -> bool:
    line = head.lstrip(_BOM + b" \t\r\n").split(b"\n", 1)[0]
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, UnicodeDecodeError):
        return False


class _Reader:
    """Rows of one file as ``(line or record number, dict or reason)``, plus its columns."""

    unit = "line"
    encoding = "utf-8"

    def __init__(self, src: _Input):
        self.src = src
        self.columns: list[str] = []

    def records(self) -> Iterator[tuple[int, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def estimate(self) -> int:
        return 0

    def peek(self, n: int) -> list[dict[str, Any]]:
        rows = []
        for _, rec in self.records():
            if isinstance(rec, dict):
                rows.append(rec)
                if len(rows) >= n:
                    break
        return rows


def _jsonl_records(lines: Iterable[bytes], before: int = 0) -> Iterator[tuple[int, Any]]:
    """``(line number, object or bad-row reason)`` for each non-blank line; ``before`` is
    the number of lines ahead of ``lines`` in the file (a chunk's offset)."""
    # raw_decode skips json.loads' per-call checks; lines that fail it are parsed
    # again by json.loads, for its exact message ("Extra data", ...)
    raw_decode = json.JSONDecoder().raw_decode
    lineno = before
    for raw in lines:
        lineno += 1
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield lineno, f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
            continue
        if not text or text.isspace():
            continue
        try:
            rec, end = raw_decode(text)
            if end != len(text) and not text[end:].isspace():
                raise ValueError("extra data")
        except ValueError:
            reason = _bad_json(text)
            if reason is not None:
                yield lineno, reason
                continue
            rec = json.loads(text)
        yield lineno, rec if rec.__class__ is dict else "not an object"


class _JsonlReader(_Reader):
    def __init__(self, src: _Input, data: bytes | None = None):
        super().__init__(src)
        self.data = data  # set when the bytes had to be transcoded or were already read
        seen: dict[str, None] = {}
        for i, (_, rec) in enumerate(self.records()):
            if isinstance(rec, dict):
                seen.update(dict.fromkeys(rec))
            if i + 1 >= _SAMPLE_ROWS:
                break
        self.columns = list(seen)

    def _open(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else self.src.open()

    def records(self) -> Iterator[tuple[int, Any]]:
        try:
            with self._open() as fh:
                yield from _jsonl_records(fh)
        except (OSError, EOFError) as err:
            raise self.src.unreadable(err) from err

    def chunks(self, size: int) -> Iterator[tuple[int, list[bytes]]]:
        """``(lines before, next size lines)`` over the whole file, for the parsing children."""
        try:
            with self._open() as fh:
                before = 0
                while lines := list(itertools.islice(fh, size)):
                    yield before, lines
                    before += len(lines)
        except (OSError, EOFError) as err:
            raise self.src.unreadable(err) from err

    def estimate(self) -> int:
        count = 0
        with self._open() as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                count += block.count(b"\n")
        return count


class _JsonReader(_Reader):
    unit = "record"

    def __init__(self, src: _Input, text: str, encoding: str):
        super().__init__(src)
        self.encoding = encoding
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            where = f"line {err.lineno} column {err.colno}"
            raise InputError(f"{src.name} is not valid JSON: {_json_error(err, where)}") from err
        self.items: list[Any] = []
        if isinstance(doc, list):
            self.items = doc
        elif isinstance(doc, dict):
            splits = [(k, v) for k, v in doc.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
            if splits:
                for key, rows in splits:
                    self.items.extend(
                        dict(r, split=key) if isinstance(r, dict) and "split" not in r else r for r in rows
                    )
            else:
                self.items = [doc]
        else:
            raise InputError(
                f"{src.name}: expected an array of objects or an object whose values are arrays of objects,"
                f" found {type(doc).__name__}"
            )
        seen: dict[str, None] = {}
        for rec in self.items[:_SAMPLE_ROWS]:
            if isinstance(rec, dict):
                seen.update(dict.fromkeys(rec))
        self.columns = list(seen)

    def records(self) -> Iterator[tuple[int, Any]]:
        for i, rec in enumerate(self.items, 1):
            yield i, rec if isinstance(rec, dict) else "not an object"

    def estimate(self) -> int:
        return len(self.items)


class _CsvReader(_Reader):
    def __init__(self, src: _Input, text: str, encoding: str, delimiter: str | None):
        super().__init__(src)
        self.text = text
        self.encoding = encoding
        first = text.lstrip("\r\n").split("\n", 1)[0]
        if delimiter is None:
            counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
            delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
        self.delimiter = delimiter
        if csv.field_size_limit() < (1 << 30):
            csv.field_size_limit(1 << 30)  # a long solution must not end the file
        reader = self._reader()
        self.columns = self._header(reader)

    def _reader(self) -> Any:
        return csv.reader(io.StringIO(self.text, newline=""), delimiter=self.delimiter)

    def _header(self, reader: Any) -> list[str]:
        try:
            for row in reader:
                if row and any(c.strip() for c in row):
                    return [c.strip() for c in row]
        except csv.Error as err:
            raise InputError(f"{self.src.name} is not valid CSV: line {reader.line_num}: {err}") from err
        return []

    def records(self) -> Iterator[tuple[int, Any]]:
        reader = self._reader()
        header = self._header(reader)
        start = reader.line_num + 1
        try:
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    start = reader.line_num + 1
                    continue
                yield start, dict(zip(header, row))
                start = reader.line_num + 1
        except csv.Error as err:
            raise InputError(f"{self.src.name} is not valid CSV: line {reader.line_num}: {err}") from err

    def estimate(self) -> int:
        return max(self.text.count("\n") - 1, 0)


class _ParquetReader(_Reader):
    unit = "record"

    def __init__(self, src: _Input):
        super().__init__(src)
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.encoding = "binary"
        target: Any = str(src.path) if src.path is not None and not src.gzipped else pa.BufferReader(src.read_all())
        try:
            self.file = pq.ParquetFile(target)
        except Exception as err:  # pyarrow raises ArrowInvalid, OSError and others
            raise InputError(f"{src.name} is not valid Parquet: {err}") from err
        self.columns = list(self.file.schema_arrow.names)

    def records(self) -> Iterator[tuple[int, Any]]:
        n = 0
        try:
            for batch in self.file.iter_batches(batch_size=4096):
                for rec in batch.to_pylist():
                    n += 1
                    yield n, rec
        except InputError:
            raise
        except Exception as err:
            raise InputError(f"{self.src.name} is not valid Parquet: record {n + 1}: {err}") from err

    def estimate(self) -> int:
        return int(self.file.metadata.num_rows)


def _open_reader(src: _Input, format: str | None) -> tuple[str, _Reader]:
    """Pick the format (argument, else extension, else content) and check the whole file."""
    fmt: str | None = None
    if format:
        fmt = _FORMAT_ALIASES.get(format.strip().lower().lstrip("."))
        if fmt is None:
            raise InputError(f"{src.name}: unknown format '{format}'; use one of {', '.join(FORMATS)}")
    explicit = fmt is not None
    fmt = fmt or src.extension_format()
    head = src.head()
    if not head:
        raise InputError(f"{src.name} is empty")
    if fmt == "parquet" or (fmt is None and head.startswith(b"PAR1")):
        return "parquet", _ParquetReader(src)

    data: bytes | None = None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a BOM: transcode once
        try:
            data = src.read_all().decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"{src.name} is not valid UTF-16 text ({err.reason} at byte {err.start})") from err
        head = data[:_HEAD]
    offset = _binary_offset(head)
    if offset is not None:
        raise InputError(f"{src.name} is not a text file (binary content at byte {offset})")
    stripped = head.lstrip(_BOM + b" \t\r\n")
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

    if fmt == "jsonl":
        return "jsonl", _JsonlReader(src, data)
    whole = data if data is not None else src.read_all()
    text, encoding = _decode_text(whole)
    if fmt == "json":
        try:
            return "json", _JsonReader(src, text, encoding)
        except InputError:
            if not explicit and _first_line_is_object(head) and "\n" in text.strip():
                return "jsonl", _JsonlReader(src, whole)  # JSON lines saved as .json
            raise
    return "csv", _CsvReader(src, text, encoding, "\t" if fmt == "tsv" else None)


# -- rows into seeds -------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """A JSON-safe copy of a Parquet value, or ``_DROP`` when it has no JSON form."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, _dt.timedelta)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [v for v in (_jsonable(x) for x in value) if v is not _DROP]
    if isinstance(value, dict):
        return {str(k): v for k, v in ((k, _jsonable(x)) for k, x in value.items()) if v is not _DROP}
    return _DROP


_DROP = object()


def _text_of(value: Any) -> str | None:
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


def _parse_options(value: Any) -> tuple[str, ...] | str | None:
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
        except ValueError:
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
            text = _text_of(item)
        except TypeError as err:
            return f"wrong type: options contain {err}, expected text"
        out.append("" if text is None else text.strip())
    return tuple(out) if out else None


def _difficulty(value: Any) -> float | None | str:
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
    return f"bad difficulty '{text}': expected 1-5"


def _scalar_text(value: Any) -> str | None:
    """A subject, discipline or source cell as stripped text, None when blank."""
    if value is None:
        return None
    text = (value if value.__class__ is str else str(value)).strip()
    return text or None


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _make_builder(
    plan: ColumnMap,
    default_source: str,
    discipline_map: Mapping[str, str] | None,
    sanitize: bool,
) -> Callable[[dict[str, Any]], _Fields | str]:
    """A function turning one row into seed fields, or into the reason it cannot be one.

    Runs once per row, so everything that can be decided per file is decided here. It
    returns a plain tuple, not a :class:`Seed`: ingest turns it straight into a database
    row, and a frozen dataclass costs more per row than the tuple does.
    """
    q_col = plan.get("question")
    a_col = plan.get("answer")
    o_spec = plan.get("options")
    o_cols: list[str] | None = o_spec if isinstance(o_spec, list) else None
    o_col: str | None = o_spec if isinstance(o_spec, str) else None
    s_col = plan.get("subject")
    d_col = plan.get("discipline")
    f_col = plan.get("difficulty")
    src_col = plan.get("source")
    used: set[str] = set()
    for value in plan.values():
        used.update(value if isinstance(value, list) else [value])
    overrides = dict(discipline_map) if discipline_map else None
    disc_cache: dict[str | None, str] = {}
    letter_index = _LETTER_INDEX
    letters = _LETTERS
    norm = _norm
    part_sep, option_sep = _PART_SEP, _OPTION_SEP
    sha = hashlib.sha256
    text_of = _text_of

    def build(rec: dict[str, Any]) -> _Fields | str:
        # question
        q = rec.get(q_col) if q_col else None
        if q.__class__ is not str:
            if q is None or (isinstance(q, float) and math.isnan(q)):
                return "missing question"
            return f"wrong type: question is {type(q).__name__}, expected text"
        q = q.strip()
        if not q:
            return "missing question"
        # answer
        raw_a = rec.get(a_col) if a_col else None
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
        if o_cols is not None:
            values = []
            for col in o_cols:
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
        elif o_col is not None:
            parsed = _parse_options(rec.get(o_col))
            if parsed.__class__ is str:
                return parsed  # type: ignore[return-value]
            opts = parsed  # type: ignore[assignment]
        # answer against options
        letter = None
        if opts:
            if raw_a.__class__ is int and 0 <= raw_a < len(opts):
                idx = raw_a  # an integer next to choices is a 0-based index (Hugging Face style)
            else:
                idx = letter_index.get(a, -1)
                if idx >= 0:
                    if idx >= len(opts):
                        return f"answer letter '{letters[idx]}' is outside the {len(opts)} options"
                else:
                    na = norm(a)
                    for idx, opt in enumerate(opts):
                        if opt == a or norm(opt) == na:
                            break
                    else:
                        return f"answer '{_short(a)}' matches none of the {len(opts)} options"
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
                difficulty = _difficulty(d)
                if difficulty.__class__ is str:
                    return difficulty  # type: ignore[return-value]
        # subject, discipline, source
        subject = rec.get(s_col) if s_col else None
        if subject.__class__ is str:
            subject = subject.strip() or None
        elif subject is not None:
            subject = _scalar_text(subject)
        discipline = _scalar_text(rec.get(d_col)) if d_col else None
        if discipline is not None:
            discipline = _CANONICAL_DISCIPLINE.get(discipline.lower(), discipline)
        else:
            discipline = disc_cache.get(subject)
            if discipline is None:
                discipline = disc_cache[subject] = discipline_for(subject, overrides)
        source = (_scalar_text(rec.get(src_col)) if src_col else None) or default_source
        # everything else
        metadata = {}
        if not rec.keys() <= used:  # cheap test first: most files have no extra columns
            for k, v in rec.items():
                if k not in used and v is not None and v != "":
                    if sanitize:
                        v = _jsonable(v)
                        if v is _DROP:
                            continue
                    metadata[k] = v
        # id: seed_id() inlined; q, a and the options are already stripped
        key = norm(f"{q}{part_sep}{option_sep.join(opts) if opts else ''}{part_sep}{a}")
        return (sha(key.encode("utf-8")).hexdigest()[:16], q, a, opts, letter, discipline, subject,
                difficulty, source, metadata)

    return build


# -- the public entry points -----------------------------------------------------------


class _Load:
    """One pass over a source: the prepared reader, the plan, and the running tallies."""

    def __init__(
        self,
        source: SourceLike,
        *,
        filename: str | None,
        format: str | None,
        mapping: Mapping[str, Any] | None,
        discipline_map: Mapping[str, str] | None,
        source_name: str | None,
    ):
        self.src = _Input(source, filename)
        self.filename = filename
        self.discipline_map = dict(discipline_map) if discipline_map else None
        self.format, self.reader = _open_reader(self.src, format)
        name = self.src.name
        self.source_name = source_name or name
        columns = self.reader.columns
        self.mapping = _resolve_mapping(columns, mapping, name)
        if columns:
            listing = ", ".join(map(str, columns))
            if "question" not in self.mapping:
                raise InputError(
                    f"{name}: no question column found among columns [{listing}]; map one with --map question=COLUMN"
                )
            if "answer" not in self.mapping:
                raise InputError(
                    f"{name}: no answer column found among columns [{listing}]; map one with --map answer=COLUMN"
                )
        self.build = _make_builder(
            self.mapping, self.source_name, discipline_map, sanitize=self.format == "parquet"
        )
        self.bad_rows: list[BadRow] = []
        self.rows_read = 0

    def fields(self, records: Iterable[tuple[int, Any]] | None = None) -> Iterator[_Fields]:
        """Seed fields of each usable row of ``records`` (default: the whole source),
        tallying rows read and bad rows."""
        build = self.build
        bad = self.bad_rows
        for line, rec in self.reader.records() if records is None else records:
            self.rows_read += 1
            if rec.__class__ is str:
                bad.append(BadRow(line, rec))
                continue
            out = build(rec)
            if out.__class__ is str:
                bad.append(BadRow(line, out))  # type: ignore[arg-type]
            else:
                yield out  # type: ignore[misc]

    def seeds(self) -> Iterator[Seed]:
        for i, q, a, o, letter, d, subject, diff, source, meta in self.fields():
            yield Seed(i, q, a, o, letter, d, subject, diff, False, source, meta)

    def rows(self, added_at: float, records: Iterable[tuple[int, Any]] | None = None) -> Iterator[tuple]:
        """Database rows (:func:`~linkqa_core.store.seed_row`) of ``records`` (default: the whole source)."""
        from ..store.seeds import seed_row

        for i, q, a, o, letter, d, subject, diff, source, meta in self.fields(records):
            yield seed_row(i, q, a, o, letter, d, subject, diff, False, source, meta, added_at)

    def row_batches(self, added_at: float) -> Generator[list[tuple], None, None]:
        """:meth:`rows` in lists of :data:`BATCH`."""
        rows = self.rows(added_at)
        while batch := list(itertools.islice(rows, BATCH)):
            yield batch

    def worker_spec(self, added_at: float, min_bytes: int) -> dict[str, Any] | None:
        """What the parsing children need to read this source as this load does, or None
        when the source is not one for children: not JSON lines, or smaller than
        ``min_bytes``. An upload (bytes) gets ``path`` None: :func:`_from_worker` writes
        it to a temporary file for them."""
        src = self.src
        if self.format != "jsonl" or getattr(self.reader, "data", None) is not None:
            return None  # another format, or UTF-16 text transcoded in memory
        if not sys.executable:  # an embedded interpreter cannot start a child
            return None
        try:
            size = src.path.stat().st_size if src.path is not None else len(src.data or b"")
        except OSError:
            return None
        if size * (4 if src.gzipped else 1) < min_bytes:
            return None
        return {
            "path": str(src.path) if src.path is not None else None, "filename": self.filename or src.name,
            "format": "jsonl", "mapping": self.mapping, "discipline_map": self.discipline_map,
            "source_name": self.source_name, "added_at": added_at, "batch": BATCH,
        }

    def check_usable(self, n_seeds: int) -> None:
        """Raise when the file gave no seed at all: that is a wrong file, not bad rows."""
        if n_seeds:
            return
        name = self.src.name
        if not self.rows_read:
            raise InputError(f"{name} has no rows")
        first = self.bad_rows[0]
        raise InputError(
            f"{name}: none of the {self.rows_read} rows could be used;"
            f" first problem: {self.reader.unit} {first.line}: {first.reason}"
        )

    def result(self, seeds: list[Seed]) -> LoadResult:
        return LoadResult(
            seeds=seeds,
            bad_rows=self.bad_rows,
            rows_read=self.rows_read,
            mapping=self.mapping,
            format=self.format,
            name=self.src.name,
            encoding=self.reader.encoding,
        )


def peek(
    source: SourceLike, filename: str | None = None, format: str | None = None, n: int = 5
) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and first ``n`` rows of a source, so a curator can check the mapping.

    Raises the same whole-file errors as :func:`load_seeds`.
    """
    src = _Input(source, filename)
    _, reader = _open_reader(src, format)
    return list(reader.columns), reader.peek(n)


def load_seeds(
    source: SourceLike,
    *,
    filename: str | None = None,
    format: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    discipline_map: Mapping[str, str] | None = None,
    source_name: str | None = None,
) -> LoadResult:
    """Read seeds from a path or uploaded bytes without touching any database.

    ``filename`` names an upload (its extension hints the format); ``format`` forces one
    of :data:`FORMATS`; ``mapping`` maps fields onto columns over the guesses;
    ``discipline_map`` overrides the subject -> discipline table; ``source_name`` is the
    ``source`` of seeds whose row has none (default: the file name).
    """
    load = _Load(
        source, filename=filename, format=format, mapping=mapping,
        discipline_map=discipline_map, source_name=source_name,
    )
    seeds = list(load.seeds())
    load.check_usable(len(seeds))
    return load.result(seeds)


def ingest(
    store: Store,
    source: SourceLike,
    *,
    filename: str | None = None,
    format: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    discipline_map: Mapping[str, str] | None = None,
    source_name: str | None = None,
    progress: Progress | None = None,
    parallel: bool | None = None,
) -> IngestReport:
    """Load a source into ``store`` as one transaction: all of its usable rows or nothing.

    Rows stream from the file into the store in batches of :data:`BATCH`, so a
    million-row file never sits in memory as seeds. ``progress(done, total, message)``
    is called once a batch with rows read so far (``total`` is an estimate until the
    last call). ``parallel`` parses in child processes while this one inserts (see
    :mod:`linkqa_core.ingest.workers`); the default does so for JSON-lines sources (files
    or uploads) of at least :data:`WORKER_MIN_BYTES`, ``False`` never does, ``True``
    does for any JSON-lines source. Either way the stored rows and the bad-row report
    are the same. Takes the same arguments as :func:`load_seeds`.

    >>> from linkqa_core.store import Store
    >>> report = ingest(Store(":memory:"), sample_path())
    >>> report.added, report.duplicates  # one question is filed under two subjects
    (1139, 1)
    """
    load = _Load(
        source, filename=filename, format=format, mapping=mapping,
        discipline_map=discipline_map, source_name=source_name,
    )
    total = load.reader.estimate() if progress else 0
    name = load.src.name
    now = time.time()
    spec = load.worker_spec(now, 0 if parallel else WORKER_MIN_BYTES) if parallel is not False else None
    batches = _from_worker(load, spec) if spec is not None else load.row_batches(now)
    added = duplicates = n_seeds = 0
    with store.lease(f"ingest:{os.getpid()}", f"ingest of {name}"), store.transaction():
        try:
            for rows in batches:
                if rows:
                    a, d = store.seeds.add_rows(rows)
                    added, duplicates, n_seeds = added + a, duplicates + d, n_seeds + len(rows)
                if progress:
                    done = load.rows_read
                    progress(done, max(total, done), f"{n_seeds:,} seeds read from {name}")
        finally:
            batches.close()  # stops the parsing children when an insert failed
        load.check_usable(n_seeds)
    if progress:
        progress(load.rows_read, load.rows_read, f"{added:,} seeds added from {name}")
    return IngestReport(
        added=added,
        duplicates=duplicates,
        total_seeds=store.seeds.count(),
        bad_rows=load.bad_rows,
        rows_read=load.rows_read,
    )


def _from_worker(load: _Load, spec: dict[str, Any]) -> Generator[list[tuple], None, None]:
    """Row batches parsed by the children, keeping ``load``'s tallies as if parsed here."""
    from .workers import worker_batches

    spill = None
    if spec["path"] is None:  # an upload: the children read it from a temporary file
        spill = tempfile.NamedTemporaryFile(prefix="linkqa-upload-", suffix=".jsonl", delete=False)
        with spill:
            spill.write(load.src.data or b"")
        spec = dict(spec, path=spill.name)
    try:
        for rows, bad, rows_read in worker_batches(spec, WORKER_PROCESSES):
            load.bad_rows.extend(bad)
            load.rows_read += rows_read
            yield rows
    finally:
        if spill is not None:
            os.unlink(spill.name)

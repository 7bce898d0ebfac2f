"""JSON lines parsed column-wise: a block of lines through Arrow, checked vectorised.

The row-by-row path (``json`` per line, :func:`.rows.make_builder` per row) is the
definition of what a row becomes. This path gives the same result faster for the rows
where that is easy to be sure of, and hands every other line to the row path:

- a block goes to Arrow only when every line is exactly one object (``{`` .. ``}``), the
  block is UTF-8 and escapes no NUL; Arrow parses it against the mapped columns as a
  fixed schema, so an unknown column (metadata), a value of another type, a duplicate
  key, a lone surrogate or nesting makes Arrow refuse the block, and the block takes
  the row path whole (so does a block whose row count is not its line count);
- in a parsed block, a row is taken here only when its question and answer are
  non-blank text, every option is non-blank text, the answer is an option letter, and
  the difficulty is missing or 1-5; every other row (a bad row, a text answer matched
  against the options, blank options) is built by the row path, from its line.

So bad-row reasons and line numbers are the row path's by construction; the tests run
both paths over broken and generated files and compare rows and reports.
Whitespace is stripped and collapsed with Python's own definition of whitespace.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from ..records import BadRow
from ..store.seeds import seed_row
from .read_jsonl import jsonl_records
from .rows import LETTER_INDEX, LETTERS, OPTION_SEP, PART_SEP, norm
from .sources import BOM

if TYPE_CHECKING:
    from .load import _Load

__all__ = ["Columnar"]

# what str.strip() strips: "".join(c for c in map(chr, range(0x110000)) if c.isspace())
_WS = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
       "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_dumps = json.JSONEncoder(ensure_ascii=False).encode  # as store.seeds encodes options
_LETTER_KEYS = list(LETTER_INDEX)
_LETTER_VALUES = [LETTER_INDEX[k] for k in _LETTER_KEYS]


_SMALLEST = 16  # a refused part this small takes the row path line by line


class _Lines:
    """The lines of a block, by their start and end offsets."""

    def __init__(self, block: bytes, starts: np.ndarray, ends: np.ndarray):
        self.block, self.starts, self.ends = block, starts, ends

    def __getitem__(self, i: int) -> bytes:
        return self.block[int(self.starts[i]):int(self.ends[i]) + 1]

    def join(self, which: np.ndarray) -> bytes:
        """The lines ``which`` (ascending) as one byte string, each ending in a newline."""
        if len(which) == len(self.ends) and which[-1] == len(self.ends) - 1:
            data = self.block
        else:  # runs of consecutive lines are one slice each
            cuts = np.flatnonzero(np.diff(which) != 1) + 1
            data = b"".join(self.block[int(self.starts[run[0]]):int(self.ends[run[-1]]) + 1]
                            for run in np.split(which, cuts))
        return data if data.endswith(b"\n") else data + b"\n"

    def containing(self, block: bytes, needle: bytes) -> np.ndarray:
        """Indices of the lines that contain ``needle``."""
        hits, at = [], block.find(needle)
        while at >= 0:
            hits.append(at)
            at = block.find(needle, at + 1)
        return np.unique(np.searchsorted(self.ends, np.asarray(hits, dtype=np.int64)))


class Columnar:
    """The columnar path for one load's plan (see the module docstring)."""

    def __init__(self, load: _Load, added_at: float, threads: bool = True):
        import pyarrow as pa

        mapping = load.mapping
        self.load = load
        self.added_at = added_at
        self.threads = threads  # Arrow's own threads: off in parsing children, which share the cores already
        self.q_col: str = mapping["question"]  # type: ignore[assignment]
        self.a_col: str = mapping["answer"]  # type: ignore[assignment]
        self.o_cols: list[str] = list(mapping.get("options") or [])  # type: ignore[arg-type]
        self.s_col = mapping.get("subject")
        self.d_col = mapping.get("discipline")
        self.f_col = mapping.get("difficulty")
        self.src_col = mapping.get("source")
        fields = [(c, pa.string()) for c in [self.q_col, self.a_col, *self.o_cols, self.s_col, self.d_col,
                                              self.src_col] if c]
        if self.f_col:
            fields.append((self.f_col, pa.float64()))
        self.schema = pa.schema(fields)
        self.letter_keys = pa.array(_LETTER_KEYS)
        self.letter_values = pa.array(_LETTER_VALUES, pa.int64())
        self.letters = pa.array(list(LETTERS[:8]))
        from .rows import Disciplines

        self.disciplines = Disciplines(load.discipline_map)

    @classmethod
    def for_load(cls, load: _Load, added_at: float, threads: bool = True) -> Columnar | None:
        """The columnar path for ``load``, or None when its plan is not one it handles
        (options in one column, fallback columns, a mapping that names a column twice)."""
        mapping = load.mapping
        options = mapping.get("options")
        if load.format != "jsonl" or load.plan.fallbacks:
            return None
        if not isinstance(mapping.get("question"), str) or not isinstance(mapping.get("answer"), str):
            return None
        if options is not None and not (isinstance(options, list) and 2 <= len(options) <= 8):
            return None
        columns = [c for v in mapping.values() for c in (v if isinstance(v, list) else [v])]
        if len(set(columns)) != len(columns):
            return None
        try:
            import pyarrow.json  # noqa: F401
        except ImportError:  # pragma: no cover - pyarrow is a dependency
            return None
        return cls(load, added_at, threads)

    # -- a block --------------------------------------------------------------------------

    def rows(self, block: bytes, ends: np.ndarray, before: int) -> tuple[list[tuple], list[BadRow], int]:
        """Database rows, bad rows and rows read of the lines of ``block`` (``ends``: their
        line ends, see :meth:`~.read_jsonl.JsonlReader.blocks`; ``before`` lines precede
        them), exactly as the row path gives them."""
        n = len(ends)
        starts = np.empty(n, dtype=np.int64)
        starts[:1] = 0
        starts[1:] = ends[:-1] + 1
        lines = _Lines(block, starts, ends)
        fast = self._candidates(block, lines, before)
        # text with no backslash has no escapes: nothing for JSON to escape, no control
        # characters, so the per-row checks below can be skipped for the whole block
        self._escapes = (not block.isascii()) or b"\\" in block
        self._spaces = self._escapes or b"  " in block  # runs of spaces to collapse in the id key
        results: dict[int, tuple[list[tuple], list[BadRow], int]] = {}
        built: list[Any] = [None] * n
        self._columnar(lines, np.flatnonzero(fast), before, built, results)
        for i in np.flatnonzero(~fast).tolist():
            results[i] = self._row_path(lines, before, i)
        if not results:
            return built, [], n
        rows: list[tuple] = []
        bad: list[BadRow] = []
        read = 0
        for i in range(n):
            row = built[i]
            if row is not None:
                rows.append(row)
                read += 1
                continue
            r, b, k = results[i]
            rows.extend(r)
            bad.extend(b)
            read += k
        return rows, bad, read

    def _candidates(self, block: bytes, lines: "_Lines", before: int) -> np.ndarray:
        """Lines Arrow may read: exactly one object ("{" .. "}"), UTF-8, no escaped NUL.
        (Arrow skips blank lines, reads ``null`` as a row of nulls and two objects on a
        line as two rows; each of those takes the row path.)"""
        data = np.frombuffer(block, dtype=np.uint8)
        n = len(lines.ends)
        ok = (lines.ends > lines.starts) & (data[np.minimum(lines.starts, len(block) - 1)] == 0x7B)
        ok &= data[np.clip(lines.ends - 1, 0, len(block) - 1)] == 0x7D
        if before == 0 and block.startswith(BOM):
            ok[0] = False
        if b"\\u0000" in block:
            ok[lines.containing(block, b"\\u0000")] = False
        if not block.isascii():
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                for i in range(n):
                    if ok[i]:
                        try:
                            lines[i].decode("utf-8")
                        except UnicodeDecodeError:
                            ok[i] = False
        return ok

    def _columnar(self, lines: "_Lines", which: np.ndarray, before: int, built: list[Any],
                  results: dict[int, tuple[list[tuple], list[BadRow], int]]) -> None:
        """Build the lines ``which`` column-wise; a part Arrow refuses is halved until the
        refused lines are few, and those take the row path."""
        if not len(which):
            return
        table = self._parse(lines, which)
        if table is None:
            if len(which) <= _SMALLEST:
                for i in which.tolist():
                    results[i] = self._row_path(lines, before, i)
                return
            half = len(which) // 2
            self._columnar(lines, which[:half], before, built, results)
            self._columnar(lines, which[half:], before, built, results)
            return
        good, out = self._build(table)
        if len(out) == len(which) and len(which) == len(built):
            built[:] = out  # the whole block, every row built here
            return
        k = 0
        for i, ok in zip(which.tolist(), good):
            if ok:
                built[i] = out[k]
                k += 1
            else:
                results[i] = self._row_path(lines, before, i)

    def _row_path(self, lines: "_Lines", before: int, i: int) -> tuple[list[tuple], list[BadRow], int]:
        build = self.load.build
        rows: list[tuple] = []
        bad: list[BadRow] = []
        read = 0
        for line, rec in jsonl_records([lines[i]], before + i):
            read += 1
            if rec.__class__ is str:
                bad.append(BadRow(line, rec))
                continue
            out = build(rec)
            if out.__class__ is str:
                bad.append(BadRow(line, out))  # type: ignore[arg-type]
                continue
            i_, q, a, o, letter, d, subject, diff, source, meta = out  # type: ignore[misc]
            rows.append(seed_row(i_, q, a, o, letter, d, subject, diff, False, source, meta, self.added_at))
        return rows, bad, read

    def _parse(self, lines: "_Lines", which: np.ndarray) -> Any:
        """The lines ``which`` as an Arrow table, one row per line, or None."""
        import pyarrow as pa
        import pyarrow.json as pj

        data = lines.join(which)
        try:
            table = pj.read_json(
                io.BytesIO(data),
                read_options=pj.ReadOptions(use_threads=self.threads, block_size=max(len(data) // 2, 1 << 20)),
                parse_options=pj.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="error"),
            )
        except (pa.ArrowException, ValueError, UnicodeDecodeError):
            return None
        if table.num_rows != len(which):
            return None
        return table.combine_chunks()

    def _build(self, table: Any) -> tuple[list[bool], list[tuple]]:
        """Which rows are built here, and their database rows (in order)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        def trimmed(name: str) -> Any:
            return pc.utf8_trim(table.column(name), _WS)

        def filled(arr: Any) -> Any:
            return pc.fill_null(pc.greater(pc.utf8_length(arr), 0), False)

        q = trimmed(self.q_col)
        a = trimmed(self.a_col)
        good = pc.and_(filled(q), filled(a))
        opts = [trimmed(c) for c in self.o_cols]
        if opts:
            for o in opts:
                good = pc.and_(good, filled(o))
            idx = pc.take(self.letter_values, pc.index_in(a, value_set=self.letter_keys))
            good = pc.and_(good, pc.fill_null(pc.less(idx, len(opts)), False))
            safe = pc.if_else(good, idx, 0)
            answer = pc.choose(safe, *opts)
            letter = pc.take(self.letters, safe)
            key = pc.binary_join_element_wise(q, pc.binary_join_element_wise(*opts, OPTION_SEP), answer, PART_SEP)
            options_json = pc.binary_join_element_wise('["', pc.binary_join_element_wise(*opts, '", "'), '"]', "")
        else:
            answer = a
            key = pc.binary_join_element_wise(q, "", a, PART_SEP)
        # printable ASCII throughout: no whitespace but single spaces to collapse, nothing
        # for JSON to escape but quotes and backslashes (looked for below)
        plain = pc.ascii_is_printable(pc.binary_join_element_wise(q, *opts, a, " ")) if self._escapes else None
        difficulty = None
        if self.f_col:
            d = table.column(self.f_col)
            blank = pc.or_(pc.is_null(d), pc.is_nan(d))
            in_range = pc.and_(pc.greater_equal(d, 1.0), pc.less_equal(d, 5.0))
            good = pc.and_(good, pc.or_(blank, pc.fill_null(in_range, False)))
            difficulty = pc.if_else(blank, pa.scalar(None, pa.float64()), d)
        good = pc.fill_null(good, False)
        if isinstance(good, pa.ChunkedArray):
            good = good.combine_chunks()
        good_list = good.to_pylist()
        n_good = sum(good_list)
        if not n_good:
            return good_list, []

        def pick(arr: Any) -> list[Any]:
            return pc.filter(arr, good).to_pylist()

        sha = hashlib.sha256
        plains = pick(plain) if plain is not None else itertools.repeat(True)
        keys = pc.filter(key, good).cast(pa.binary()).to_pylist()
        if self._spaces:
            ids = [sha(k if p and b"  " not in k else norm(k.decode("utf-8")).encode("utf-8")).hexdigest()[:16]
                   for k, p in zip(keys, plains)]
        else:
            ids = [sha(k).hexdigest()[:16] for k in keys]
        if opts:
            letters = pick(letter)
            opts_json = pick(options_json)
            quotes = 2 * len(opts)
            redo = [] if plain is None else [
                i for i, (j, p) in enumerate(zip(opts_json, pick(plain))) if not p or j.count('"') != quotes or "\\" in j]
            if redo:
                texts = [pick(o) for o in opts]
                for i in redo:
                    opts_json[i] = _dumps([t[i] for t in texts])
        else:
            letters = opts_json = [None] * n_good  # type: ignore[assignment]
        subjects = self._texts(table, self.s_col, good, n_good)
        if self.d_col:
            cells = self._texts(table, self.d_col, good, n_good)
            of_cell, of_subject = self.disciplines.of_cell, self.disciplines.of_subject
            disciplines = [of_cell(c) if c is not None else of_subject(s) for c, s in zip(cells, subjects)]
        else:  # one lookup per distinct subject
            distinct = {s: self.disciplines.of_subject(s) for s in set(subjects)}
            disciplines = list(map(distinct.__getitem__, subjects))
        default = self.load.source_name
        sources = [s or default for s in self._texts(table, self.src_col, good, n_good)]
        diffs = pick(difficulty) if difficulty is not None else [None] * n_good
        out = list(zip(ids, pick(q), pick(answer), opts_json, letters, disciplines, subjects, diffs,
                       itertools.repeat(0), sources, itertools.repeat(None), itertools.repeat(self.added_at)))
        return good_list, out

    @staticmethod
    def _texts(table: Any, column: str | None, keep: Any, n: int) -> list[str | None]:
        """A text column's kept rows, stripped, blank as None (as ``scalar_text`` reads them)."""
        import pyarrow.compute as pc

        if not column:
            return [None] * n
        arr = pc.filter(pc.utf8_trim(table.column(column).combine_chunks(), _WS), keep)
        arr = pc.if_else(pc.equal(pc.utf8_length(arr), 0), None, arr)
        enc = arr.dictionary_encode()
        values = enc.dictionary.to_pylist() + [None]
        return list(map(values.__getitem__, pc.fill_null(enc.indices, len(values) - 1).to_pylist()))

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

The rows built here are not turned into Python tuples: a block's texts stay in their
Arrow buffers and go to the store as :class:`~linkqa_core.store.packed.PackedRows`
(one ``INSERT ... SELECT`` a block); only the id hash runs once a row in Python.
:meth:`Columnar.segments` gives a block as runs in file order, packed runs and lists of
row-path tuples; :meth:`Columnar.rows` gives the same rows as tuples.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from ..records import BadRow
from ..store.packed import PackedRows, PackedText, pack_texts
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
        # text with no backslash has no escapes: nothing for JSON to escape, no control
        # characters, so the per-row checks of _build can be skipped for the whole block
        self.escapes = (not block.isascii()) or b"\\" in block

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
        parts, bad, read = self.segments(block, ends, before)
        rows: list[tuple] = []
        for part in parts:
            rows.extend(part if isinstance(part, list) else part.tuples())
        return rows, bad, read

    def parse_block(self, block: tuple[int, bytes, np.ndarray]) -> tuple[list[PackedRows | list[tuple]],
                                                                         list[BadRow], int]:
        """:meth:`segments` of one ``(lines before, block, ends)`` of
        :meth:`~.read_jsonl.JsonlReader.blocks`. Safe to call from several threads at once:
        a block's state stays in its own call."""
        before, data, ends = block
        return self.segments(data, ends, before)

    def segments(self, block: bytes, ends: np.ndarray,
                 before: int) -> tuple[list[PackedRows | list[tuple]], list[BadRow], int]:
        """As :meth:`rows`, with the rows in file order as runs: :class:`PackedRows` for
        runs built here, lists of ``seed_row`` tuples for rows of the row path (a block
        that Arrow read whole and whose rows were all good is one ``PackedRows``)."""
        n = len(ends)
        starts = np.empty(n, dtype=np.int64)
        starts[:1] = 0
        starts[1:] = ends[:-1] + 1
        lines = _Lines(block, starts, ends)
        fast = self._candidates(block, lines, before)
        results: dict[int, tuple[list[tuple], list[BadRow], int]] = {}
        # line i built here: row built[1, i] of part built[0, i] (-1: not built here);
        # parts: what _build gave. Arrays, not a list of pairs: set a block at a time.
        built = np.full((2, n), -1, dtype=np.int64)
        packs: list[PackedRows] = []
        self._columnar(lines, np.flatnonzero(fast), before, built, results, packs)
        for i in np.flatnonzero(~fast).tolist():
            results[i] = self._row_path(lines, before, i)
        if not results and len(packs) == 1 and len(packs[0]) == n:
            return [packs[0]], [], n
        out: list[PackedRows | list[tuple]] = []
        bad: list[BadRow] = []
        read = 0
        run: list[int] | None = None  # [part, first row, last row + 1] of the current packed run

        def flush() -> None:
            if run is not None:
                out.append(packs[run[0]].slice(run[1], run[2]))

        for i, (part, k) in enumerate(zip(*built.tolist())):
            if part >= 0:
                read += 1
                if run is not None and run[0] == part and run[2] == k:
                    run[2] = k + 1
                else:
                    flush()
                    run = [part, k, k + 1]
                continue
            r, b, m = results[i]
            if r:
                flush()
                run = None
                if out and isinstance(out[-1], list):
                    out[-1].extend(r)
                else:
                    out.append(list(r))
            bad.extend(b)
            read += m
        flush()
        return out, bad, read

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
        if b"\\" in block and b"\\u0000" in block:  # the first test is 30 times faster
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

    def _columnar(self, lines: "_Lines", which: np.ndarray, before: int, built: np.ndarray,
                  results: dict[int, tuple[list[tuple], list[BadRow], int]], packs: list[PackedRows]) -> None:
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
            self._columnar(lines, which[:half], before, built, results, packs)
            self._columnar(lines, which[half:], before, built, results, packs)
            return
        good, packed = self._build(table, lines.escapes)
        if packed is not None:
            here = which[good]
            built[0, here] = len(packs)
            built[1, here] = np.arange(len(here))
            packs.append(packed)
        for i in which[~good].tolist():
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

    def _build(self, table: Any, escapes: bool) -> tuple[np.ndarray, PackedRows | None]:
        """Which rows are built here, and those rows (in order; None when none is);
        ``escapes``: the block has a backslash or non-ASCII text (see :class:`_Lines`)."""
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
        safe = None
        if opts:
            for o in opts:
                good = pc.and_(good, filled(o))
            idx = pc.take(self.letter_values, pc.index_in(a, value_set=self.letter_keys))
            good = pc.and_(good, pc.fill_null(pc.less(idx, len(opts)), False))
            safe = pc.if_else(good, idx, 0)
            answer = pc.choose(safe, *opts)
            key = pc.binary_join_element_wise(q, pc.binary_join_element_wise(*opts, OPTION_SEP), answer, PART_SEP)
            options_json = pc.binary_join_element_wise('["', pc.binary_join_element_wise(*opts, '", "'), '"]', "")
        else:
            answer = a
            key = pc.binary_join_element_wise(q, "", a, PART_SEP)
        # printable ASCII throughout: no whitespace but single spaces to collapse, nothing
        # for JSON to escape but quotes and backslashes (looked for below)
        plain = None
        if escapes:  # column by column: a joined copy of every text only to look at it cost more
            for text in (q, *opts, a):
                printable = pc.ascii_is_printable(text)
                plain = printable if plain is None else pc.and_(plain, printable)
        difficulty = None
        if self.f_col:
            d = table.column(self.f_col)
            blank = pc.fill_null(pc.is_nan(d), True)  # null or NaN (is_nan of a null is null)
            in_range = pc.and_(pc.greater_equal(d, 1.0), pc.less_equal(d, 5.0))
            good = pc.and_(good, pc.or_(blank, pc.fill_null(in_range, False)))
            difficulty = pc.if_else(blank, pa.scalar(None, pa.float64()), d)
        good = pc.fill_null(good, False)
        if isinstance(good, pa.ChunkedArray):
            good = good.combine_chunks()
        good_rows = good.to_numpy(zero_copy_only=False)
        n_good = int(np.count_nonzero(good_rows))
        if not n_good:
            return good_rows, None

        def pick(arr: Any) -> Any:
            arr = pc.filter(arr, good)
            return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr

        sha = hashlib.sha256
        keys = pick(key)
        # a key to normalise as seed_id does: one with a run of spaces or, in a block with
        # escapes or non-ASCII text, one that is not all printable ASCII
        odd = _double_spaces(keys)
        if plain is not None:
            odd |= ~pick(plain).to_numpy(zero_copy_only=False)
        keys = keys.cast(pa.binary()).to_pylist()
        digests = b"".join([sha(k).digest() for k in keys])
        if odd.any():
            redo = bytearray(digests)
            for i in np.flatnonzero(odd).tolist():
                redo[32 * i:32 * i + 32] = sha(norm(keys[i].decode("utf-8")).encode("utf-8")).digest()
            digests = bytes(redo)
        # an id is the first 8 bytes of its row's digest, as hex
        ids = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 32)[:, :8].tobytes().hex().encode("ascii")
        options = None
        if opts:
            opts_json = pick(options_json)
            options = _packed(opts_json)
            if plain is not None:
                quotes = 2 * len(opts)
                redo_mask = pc.or_(pc.invert(pick(plain)), pc.or_(
                    pc.not_equal(pc.count_substring(opts_json, '"'), quotes),
                    pc.greater_equal(pc.find_substring(opts_json, "\\"), 0)))
                redo = np.flatnonzero(redo_mask.to_numpy(zero_copy_only=False))
                if len(redo):
                    texts = opts_json.to_pylist()
                    cells = [pc.take(pick(o), pa.array(redo)).to_pylist() for o in opts]
                    for j, i in enumerate(redo.tolist()):
                        texts[i] = _dumps([c[j] for c in cells])
                    options = pack_texts(texts)
        codes, combos = self._combos(table, good, n_good, pick(safe) if safe is not None else None,
                                     pick(difficulty) if difficulty is not None else None)
        return good_rows, PackedRows(ids, _packed(pick(q)), _packed(pick(answer)), options, codes, combos,
                                     self.added_at)

    def _combos(self, table: Any, keep: Any, n: int, letter_idx: Any,
                difficulty: Any) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
        """Each kept row's index into the distinct ``(answer_letter, discipline, subject,
        difficulty, source)`` of the block, and those combinations."""
        columns: list[tuple[np.ndarray, list[Any]]] = []  # per part: codes, values
        if letter_idx is not None:
            columns.append((letter_idx.to_numpy(zero_copy_only=False).astype(np.int64), list(LETTERS[:8])))
        else:
            columns.append((np.zeros(n, dtype=np.int64), [None]))
        for column in (self.s_col, self.d_col, self.src_col):
            columns.append(self._coded(table, column, keep, n))
        if difficulty is not None:
            columns.append(_dictionary(difficulty))
        else:
            columns.append((np.zeros(n, dtype=np.int64), [None]))
        sizes = [len(values) for _, values in columns]
        if float(np.prod(np.asarray(sizes, dtype=np.float64))) < 2.0 ** 62:
            code = np.zeros(n, dtype=np.int64)
            for (c, _), size in zip(columns, sizes):
                code = code * size + c
            distinct, codes = np.unique(code, return_inverse=True)
            parts = []
            for size in reversed(sizes):
                parts.append(distinct % size)
                distinct = distinct // size
            table_of = np.stack(parts[::-1], axis=1) if n else np.zeros((0, len(sizes)), dtype=np.int64)
        else:  # pragma: no cover - only with millions of distinct values in one block
            table_of, codes = np.unique(np.stack([c for c, _ in columns], axis=1), axis=0, return_inverse=True)
        of_cell, of_subject = self.disciplines.of_cell, self.disciplines.of_subject
        default = self.load.source_name
        combos = []
        for li, si, ci, ri, fi in table_of.tolist():
            subject, cell = columns[1][1][si], columns[2][1][ci]
            discipline = of_cell(cell) if cell is not None else of_subject(subject)
            combos.append((columns[0][1][li], discipline, subject, columns[4][1][fi],
                           columns[3][1][ri] or default))
        return codes.reshape(-1).astype(np.int64), combos

    @staticmethod
    def _coded(table: Any, column: str | None, keep: Any, n: int) -> tuple[np.ndarray, list[Any]]:
        """A text column's kept rows, stripped, blank as None (as ``scalar_text`` reads
        them), as codes into its distinct values."""
        import pyarrow.compute as pc

        if not column:
            return np.zeros(n, dtype=np.int64), [None]
        arr = pc.filter(pc.utf8_trim(table.column(column).combine_chunks(), _WS), keep)
        arr = pc.if_else(pc.equal(pc.utf8_length(arr), 0), None, arr)
        return _dictionary(arr)


def _dictionary(arr: Any) -> tuple[np.ndarray, list[Any]]:
    """An Arrow array as codes into its distinct values (None, for nulls, last)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    enc = arr.dictionary_encode()
    values = enc.dictionary.to_pylist() + [None]
    codes = pc.fill_null(enc.indices, len(values) - 1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, values


_SPACE_PAIR = 0x2020  # two spaces, as one 16-bit value (the same either byte order)


def _double_spaces(arr: Any) -> np.ndarray:
    """Which texts of a string array hold two spaces in a row.

    The array's UTF-8 buffer (no copy) is read as 16-bit values twice, from its first
    byte and from its second, and compared with two spaces: every pair of neighbouring
    bytes is one of those values, so each pair is looked at once, vectorised, with the
    GIL released (a literal ``re`` search took 0.65 us a row and held the GIL, so the
    parse threads queued behind it). A pair straddling two texts is no run.
    """
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    _, offsets, data = arr.buffers()
    offs = np.frombuffer(offsets, dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
    odd = np.zeros(len(arr), dtype=bool)
    if data is None or len(arr) == 0:
        return odd
    first, end = int(offs[0]), int(offs[-1])
    text = np.frombuffer(data, dtype=np.uint8)[first:end]
    even = text[:len(text) // 2 * 2].view(np.uint16)
    shifted = text[1:1 + (len(text) - 1) // 2 * 2].view(np.uint16)
    at = np.concatenate([np.flatnonzero(even == _SPACE_PAIR) * 2,
                         np.flatnonzero(shifted == _SPACE_PAIR) * 2 + 1]) + first
    if len(at):
        row = np.searchsorted(offs, at, side="right") - 1
        odd[row[at + 1 < offs[row + 1]]] = True
    return odd


def _packed(arr: Any) -> PackedText:
    """A string array's UTF-8 buffer and offsets, as they are (no copy of a row)."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    _, offsets, data = arr.buffers()
    offs = np.frombuffer(offsets, dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
    return PackedText(data.to_pybytes() if data is not None else b"", offs)

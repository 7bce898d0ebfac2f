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
from typing import TYPE_CHECKING, Any

from ..records import BadRow
from ..store.seeds import seed_row
from .read_jsonl import jsonl_records
from .rows import LETTER_INDEX, LETTERS, OPTION_SEP, PART_SEP, norm
from .sources import BOM

if TYPE_CHECKING:
    from .load import _Load

__all__ = ["Columnar"]

_WS = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())  # what str.strip() strips
# whitespace other than a single space: the hashed key needs Python's norm() there
_NOT_NORMAL = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _WS if c != " ") + "]|  "
# text that json (ensure_ascii=False) escapes inside a string
_JSON_ESCAPED = '[\\x{0}-\\x{1f}"\\\\]'
_LETTER_KEYS = list(LETTER_INDEX)
_LETTER_VALUES = [LETTER_INDEX[k] for k in _LETTER_KEYS]


class Columnar:
    """The columnar path for one load's plan (see the module docstring)."""

    def __init__(self, load: _Load, added_at: float):
        import pyarrow as pa

        mapping = load.mapping
        self.load = load
        self.added_at = added_at
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
    def for_load(cls, load: _Load, added_at: float) -> Columnar | None:
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
        return cls(load, added_at)

    # -- a block --------------------------------------------------------------------------

    def rows(self, lines: list[bytes], before: int) -> tuple[list[tuple], list[BadRow], int]:
        """Database rows, bad rows and rows read of ``lines`` (``before`` lines precede them),
        exactly as the row path gives them."""
        table = self._parse(lines, before)
        if table is None:
            return self._row_path(lines, before, range(len(lines)))
        good, out = self._build(table)
        rows: list[tuple] = []
        bad: list[BadRow] = []
        read = 0
        pending = [i for i, ok in enumerate(good) if not ok]
        slow: dict[int, tuple[list[tuple], list[BadRow], int]] = {}
        for i in pending:
            slow[i] = self._row_path(lines, before, [i])
        k = 0
        for i, ok in enumerate(good):
            if ok:
                rows.append(out[k])
                k += 1
                read += 1
            else:
                r, b, n = slow[i]
                rows.extend(r)
                bad.extend(b)
                read += n
        return rows, bad, read

    def _row_path(self, lines: list[bytes], before: int, which: Any) -> tuple[list[tuple], list[BadRow], int]:
        load = self.load
        build = load.build
        rows: list[tuple] = []
        bad: list[BadRow] = []
        read = 0
        added_at = self.added_at
        for i in which:
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
                rows.append(seed_row(i_, q, a, o, letter, d, subject, diff, False, source, meta, added_at))
        return rows, bad, read

    def _parse(self, lines: list[bytes], before: int) -> Any:
        """The block as an Arrow table with one row per line, or None for the row path."""
        import pyarrow as pa
        import pyarrow.json as pj

        n = len(lines)
        if not n or (before == 0 and lines[0].startswith(BOM)):
            return None
        block = b"".join(lines)
        # every line one object: it starts with "{" and ends with "}" (Arrow skips blank
        # lines, reads `null` as a row of nulls, and two objects on a line as two rows)
        if block[:1] != b"{" or block.count(b"}\n{") != n - 1 or not block.rstrip(b"\n").endswith(b"}"):
            return None
        if b"\\u0000" in block:
            return None
        if not block.isascii():
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                return None
        try:
            table = pj.read_json(
                io.BytesIO(block),
                read_options=pj.ReadOptions(use_threads=True, block_size=max(len(block) // 2, 1 << 20)),
                parse_options=pj.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="error"),
            )
        except (pa.ArrowException, ValueError, UnicodeDecodeError):
            return None
        if table.num_rows != n:
            return None
        return table.combine_chunks()

    def _build(self, table: Any) -> tuple[list[bool], list[tuple]]:
        """Which rows are built here, and their database rows (in order)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        def trimmed(name: str) -> Any:
            return pc.utf8_trim(table.column(name).combine_chunks(), _WS)

        def filled(arr: Any) -> Any:
            return pc.fill_null(pc.greater(pc.utf8_length(arr), 0), False)

        q = trimmed(self.q_col)
        a = trimmed(self.a_col)
        good = pc.and_(filled(q), filled(a))
        letter = None
        if self.o_cols:
            opts = [trimmed(c) for c in self.o_cols]
            for o in opts:
                good = pc.and_(good, filled(o))
            idx = pc.take(self.letter_values, pc.index_in(a, value_set=self.letter_keys))
            good = pc.and_(good, pc.fill_null(pc.less(idx, len(opts)), False))
            safe = pc.if_else(good, idx, 0)
            answer = pc.choose(safe, *opts)
            letter = pc.take(self.letters, safe)
            joined = pc.binary_join_element_wise(*opts, OPTION_SEP)
            key = pc.binary_join_element_wise(q, joined, answer, PART_SEP)
            options_json = pc.binary_join_element_wise(
                "[\"", pc.binary_join_element_wise(*opts, '", "'), "\"]", "")
            escaped = pc.match_substring_regex(pc.binary_join_element_wise(*opts, ""), _JSON_ESCAPED)
        else:
            answer = a
            key = pc.binary_join_element_wise(q, "", a, PART_SEP)
            options_json = escaped = None
        difficulty = None
        if self.f_col:
            d = table.column(self.f_col).combine_chunks()
            blank = pc.or_(pc.is_null(d), pc.is_nan(d))
            in_range = pc.and_(pc.greater_equal(d, 1.0), pc.less_equal(d, 5.0))
            good = pc.and_(good, pc.or_(blank, pc.fill_null(in_range, False)))
            difficulty = pc.if_else(blank, pa.scalar(None, pa.float64()), d)
        good = pc.fill_null(good, False)

        # only the rows built here from now on
        keep = good
        n_good = pc.sum(keep).as_py() or 0
        good_list = good.to_pylist()
        if not n_good:
            return good_list, []

        def pick(arr: Any) -> list[Any]:
            return pc.filter(arr, keep).to_pylist()

        qs, answers = pick(q), pick(answer)
        keys = pc.filter(key, keep)
        odd = pc.match_substring_regex(keys, _NOT_NORMAL).to_pylist()
        key_bytes = keys.cast(pa.binary()).to_pylist()
        sha = hashlib.sha256
        ids = [sha(k).hexdigest()[:16] if not o else sha(norm(k.decode("utf-8")).encode("utf-8")).hexdigest()[:16]
               for k, o in zip(key_bytes, odd)]
        if self.o_cols:
            letters = pick(letter)
            opts_json = pick(options_json)
            for i, e in enumerate(pick(escaped)):
                if e:
                    opts_json[i] = None  # escape like the JSON encoder: done below from the texts
            if None in opts_json:
                from ..store.seeds import _dumps

                opt_texts = [pick(trimmed(c)) for c in self.o_cols]
                for i, v in enumerate(opts_json):
                    if v is None:
                        opts_json[i] = _dumps([t[i] for t in opt_texts])
        else:
            letters = [None] * n_good
            opts_json = [None] * n_good
        subjects = self._texts(table, self.s_col, keep, n_good)
        cells = self._texts(table, self.d_col, keep, n_good)
        of_cell, of_subject = self.disciplines.of_cell, self.disciplines.of_subject
        disciplines = [of_cell(c) if c is not None else of_subject(s) for c, s in zip(cells, subjects)]
        default = self.load.source_name
        sources = [s or default for s in self._texts(table, self.src_col, keep, n_good)]
        diffs = pick(difficulty) if difficulty is not None else [None] * n_good
        added_at = self.added_at
        out = list(zip(ids, qs, answers, opts_json, letters, disciplines, subjects, diffs,
                       [0] * n_good, sources, [None] * n_good, [added_at] * n_good))
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
        values = enc.dictionary.to_pylist()
        return [None if i is None else values[i] for i in enc.indices.to_pylist()]

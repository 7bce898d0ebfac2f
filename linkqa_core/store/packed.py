"""Seed rows packed column-wise, inserted by one ``INSERT ... SELECT`` a batch.

Python's ``executemany`` costs about 2 us a seed row (a Python string made for every
cell, then bound one by one), which was half of a million-row ingest. The columnar
ingest path (:mod:`linkqa_core.ingest.columnar`) already holds a block's texts as Arrow
arrays: one UTF-8 buffer and its offsets per column. :class:`PackedRows` carries them
as they are, and :func:`insert_packed` binds each column's buffer once, as a blob, and
lets SQLite cut the rows out (``substr`` on a blob is a byte slice, O(1)), so no Python
object is made per cell. The few values that repeat (answer letter, discipline,
subject, difficulty, source) go as a small table of distinct combinations, bound with
``executemany`` so their Python values (a float difficulty above all) are stored
exactly as :func:`~linkqa_core.store.seeds.seed_row` would store them.

:meth:`PackedRows.tuples` gives the same rows as ``seed_row`` tuples (for the rare
block that mixes packed and row-by-row rows, and for tests): the stored rows are the
same whichever form a batch takes.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["PackedRows", "PackedText", "insert_packed", "pack_texts"]

_COMBOS = "temp.linkqa_ingest_combos"
_POW10 = 10 ** np.arange(9, -1, -1, dtype=np.int64)  # 10 decimal digits: any int32 offset


@dataclass
class PackedText:
    """One text column of a batch: UTF-8 ``data`` and ``offsets`` (n + 1, ascending);
    row i is ``data[offsets[i]:offsets[i + 1]]``. ``data`` may hold more than the rows use
    (an Arrow buffer that rows were filtered out of)."""

    data: bytes
    offsets: np.ndarray

    def texts(self) -> list[str]:
        data, offs = self.data, self.offsets.tolist()
        return [data[s:e].decode("utf-8") for s, e in zip(offs[:-1], offs[1:])]

    def slice(self, start: int, stop: int) -> PackedText:
        return PackedText(self.data, self.offsets[start:stop + 1])

    def spans(self) -> bytes:
        """Start (1-based) and length of each row, 10 decimal digits each, for ``substr``."""
        offs = self.offsets.astype(np.int64)
        pairs = np.empty((len(offs) - 1, 2), dtype=np.int64)
        pairs[:, 0] = offs[:-1] + 1
        pairs[:, 1] = offs[1:] - offs[:-1]
        return _digits(pairs.reshape(-1), 10)


def pack_texts(texts: Sequence[str]) -> PackedText:
    """A list of texts as a :class:`PackedText` (a column that was rebuilt in Python)."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return PackedText(b"".join(encoded), offsets)


@dataclass
class PackedRows:
    """Seed rows as columns (see the module docstring).

    ``ids`` is 16 lower-case hex digits a row (what :func:`~linkqa_core.ingest.rows.seed_id`
    gives); ``question``, ``answer`` and ``options`` (the options' JSON text, None when
    the file has no options) are :class:`PackedText`; ``codes[i]`` indexes row i's
    ``(answer_letter, discipline, subject, difficulty, source)`` in ``combos``. Every
    row has ``difficulty_estimated`` 0, no metadata and ``added_at``.
    """

    ids: bytes
    question: PackedText
    answer: PackedText
    options: PackedText | None
    codes: np.ndarray
    combos: list[tuple[Any, ...]]
    added_at: float

    def __len__(self) -> int:
        return len(self.codes)

    def slice(self, start: int, stop: int) -> PackedRows:
        """Rows ``start`` .. ``stop - 1``."""
        return PackedRows(
            self.ids[16 * start:16 * stop], self.question.slice(start, stop), self.answer.slice(start, stop),
            self.options.slice(start, stop) if self.options is not None else None,
            self.codes[start:stop], self.combos, self.added_at,
        )

    def id_array(self) -> np.ndarray:
        """The ids as big-endian 64-bit integers (their order is the ids' text order)."""
        return np.frombuffer(bytes.fromhex(self.ids.decode("ascii")), dtype=">u8")

    def tuples(self) -> list[tuple]:
        """The rows as :func:`~linkqa_core.store.seeds.seed_row` tuples."""
        n = len(self)
        ids = self.ids.decode("ascii")
        questions, answers = self.question.texts(), self.answer.texts()
        options = self.options.texts() if self.options is not None else [None] * n
        combos, added_at = self.combos, self.added_at
        out = []
        for i, code in enumerate(self.codes.tolist()):
            letter, discipline, subject, difficulty, source = combos[code]
            out.append((ids[16 * i:16 * i + 16], questions[i], answers[i], options[i], letter, discipline, subject,
                        difficulty, 0, source, None, added_at))
        return out


def _digits(values: np.ndarray, width: int) -> bytes:
    """Non-negative integers as ``width`` ASCII decimal digits each, end to end."""
    pow10 = _POW10[len(_POW10) - width:]
    return ((values[:, None] // pow10) % 10 + 48).astype(np.uint8).tobytes()


def _text_sql(name: str) -> str:
    start = f"CAST(substr(:{name}_at, i * 20 + 1, 10) AS INTEGER)"
    length = f"CAST(substr(:{name}_at, i * 20 + 11, 10) AS INTEGER)"
    return f"CAST(substr(:{name}, {start}, {length}) AS TEXT)"


def insert_packed(conn: sqlite3.Connection, rows: PackedRows, *, ignore: bool) -> int:
    """Insert ``rows`` into ``seeds`` in their order, inside the caller's transaction
    (``ignore``: INSERT OR IGNORE, for a table that already has rows and its id index);
    returns how many rows were inserted.

    ``k`` counts the rows 0 .. n-1 in order and is the outer loop (CROSS JOIN fixes the
    join order in SQLite), so rids follow the batch's order as ``executemany`` gives them.
    """
    n = len(rows)
    if not n:
        return 0
    width = len(str(max(len(rows.combos) - 1, 0)))
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_COMBOS.split('.')[1]}"
                 " (k INTEGER PRIMARY KEY, letter, discipline, subject, difficulty, source)")
    conn.execute(f"DELETE FROM {_COMBOS}")
    conn.executemany(f"INSERT INTO {_COMBOS} VALUES (?,?,?,?,?,?)",
                     ((k, *combo) for k, combo in enumerate(rows.combos)))
    params: dict[str, Any] = {
        "n": n, "ids": rows.ids, "codes": _digits(rows.codes.astype(np.int64), width), "w": width,
        "added_at": rows.added_at,
    }
    texts = {"q": rows.question, "a": rows.answer, "o": rows.options}
    for name, packed in texts.items():
        if packed is not None:
            params[name] = packed.data
            params[f"{name}_at"] = packed.spans()
    options = _text_sql("o") if rows.options is not None else "NULL"
    inserted = conn.execute(
        f"INSERT {'OR IGNORE ' if ignore else ''}INTO seeds (id, question, answer, options, answer_letter,"
        " discipline, subject, difficulty, difficulty_estimated, source, metadata, added_at)"
        " WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < :n)"
        f" SELECT CAST(substr(:ids, i * 16 + 1, 16) AS TEXT), {_text_sql('q')}, {_text_sql('a')}, {options},"
        " c.letter, c.discipline, c.subject, c.difficulty, 0, c.source, NULL, :added_at"
        f" FROM k CROSS JOIN {_COMBOS} AS c ON c.k = CAST(substr(:codes, i * :w + 1, :w) AS INTEGER)",
        params,
    ).rowcount
    conn.execute(f"DELETE FROM {_COMBOS}")
    return inserted

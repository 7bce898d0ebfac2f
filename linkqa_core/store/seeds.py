"""Seeds in the database: the bulk insert of ingest, lookups by id and rid, browsing."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

from ..records import Seed
from .packed import PackedRows, insert_packed

if TYPE_CHECKING:
    from .database import Store

__all__ = ["SeedStore", "BulkLoad", "seed_row", "UNKNOWN_DIFFICULTY"]

UNKNOWN_DIFFICULTY = "unknown"
_CHUNK = 900  # ids per IN (...) list: below SQLite's default variable limit
_dumps = json.JSONEncoder(ensure_ascii=False).encode  # one encoder: a third cheaper per row than json.dumps

_INSERT_SEED = (
    "INSERT OR IGNORE INTO seeds (id, question, answer, options, answer_letter, discipline, subject,"
    " difficulty, difficulty_estimated, source, metadata, added_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
_APPEND_SEED = _INSERT_SEED.replace("INSERT OR IGNORE", "INSERT")
_ID_INDEX = "seeds_id"  # schema v6: the unique index on seeds.id, by name
_BULK_CACHE_KB = -65536  # 64 MB of page cache during a deferred bulk load


@dataclass
class BulkLoad:
    """One bulk load (:meth:`SeedStore.bulk`): its running counts, final on leaving.

    ``deferred`` says the id index was dropped for the load (the table was empty): rows
    are appended as they come, and repeats are found and removed at the end, before the
    index is built again.
    """

    deferred: bool
    added: int = 0
    duplicates: int = 0
    rows: int = 0
    thread: int = field(default_factory=threading.get_ident, repr=False)  # only its add_rows calls count
    _ids: list[np.ndarray] = field(default_factory=list, repr=False)
    _exact: bool = True  # every id was 16 hex digits (as seed_id makes them)

    def note_id_array(self, ids: np.ndarray) -> None:
        """Ids already as 64-bit integers (:meth:`PackedRows.id_array`)."""
        if self._exact:
            self._ids.append(ids)

    def note_ids(self, ids: list[str]) -> None:
        if not self._exact:
            return
        try:
            self._ids.append(np.frombuffer(bytes.fromhex("".join(ids)), dtype=">u8"))
            if len(self._ids[-1]) != len(ids):
                raise ValueError("ids of another length")
        except ValueError:
            self._exact, self._ids = False, []


def seed_row(
    id: str,
    question: str,
    answer: str,
    options: Sequence[str] | None,
    answer_letter: str | None,
    discipline: str,
    subject: str | None,
    difficulty: float | None,
    difficulty_estimated: bool,
    source: str | None,
    metadata: dict[str, Any] | None,
    added_at: float,
) -> tuple:
    """One seed as the tuple :meth:`SeedStore.add_rows` inserts (the column order of the INSERT)."""
    return (
        id, question, answer,
        _dumps(options) if options is not None else None,  # a tuple encodes as a list
        answer_letter, discipline, subject, difficulty, int(difficulty_estimated), source,
        _dumps(metadata) if metadata else None,
        added_at,
    )


def seed_from_row(row: sqlite3.Row) -> Seed:
    return Seed(
        id=row["id"],
        question=row["question"],
        answer=row["answer"],
        options=tuple(json.loads(row["options"])) if row["options"] else None,
        answer_letter=row["answer_letter"],
        discipline=row["discipline"],
        subject=row["subject"],
        difficulty=row["difficulty"],
        difficulty_estimated=bool(row["difficulty_estimated"]),
        source=row["source"],
        metadata=json.loads(row["metadata"]) if row["metadata"] else {},
    )


class SeedStore:
    """``store.seeds``: every query on the ``seeds`` table."""

    def __init__(self, store: "Store"):
        self.store = store
        self._bulk: BulkLoad | None = None

    # -- writing -----------------------------------------------------------------------

    def add(self, seeds: Iterable[Seed]) -> tuple[int, int]:
        """Insert seeds, skipping ids already stored; returns ``(added, duplicates)``."""
        now = time.time()
        return self.add_rows(
            seed_row(s.id, s.question, s.answer, s.options, s.answer_letter, s.discipline, s.subject,
                     s.difficulty, s.difficulty_estimated, s.source, s.metadata, now)
            for s in seeds
        )

    @contextmanager
    def bulk(self) -> Iterator[BulkLoad]:
        """A bulk load: :meth:`add_rows` calls inside it count into the :class:`BulkLoad`
        yielded, whose ``added`` and ``duplicates`` are final once the block is left.

        Runs in one transaction (joining the caller's). Into an empty table the id index
        is dropped and built once at the end, after the repeats among the new rows are
        removed (the first of each stays, as INSERT OR IGNORE would keep it): appending
        rows without the index is about twice as fast at a million rows. When the block
        fails, the rows it added are removed and the index rebuilt, so a caller that goes
        on in the same transaction finds the table as it was. Otherwise rows go in with
        INSERT OR IGNORE as usual.
        """
        with self.store.transaction() as conn:
            empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM seeds)").fetchone()[0]
            named = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                                 (_ID_INDEX,)).fetchone()
            load = BulkLoad(deferred=bool(empty and named))
            cache = conn.execute("PRAGMA cache_size").fetchone()[0]
            if load.deferred:
                conn.execute(f"DROP INDEX {_ID_INDEX}")
                # appends need no big cache, and the index build's sorter takes the cache
                # size as its memory: a smaller one keeps a big load's peak memory bounded
                conn.execute(f"PRAGMA cache_size={_BULK_CACHE_KB}")
            self._bulk = load
            try:
                yield load
                if load.deferred:
                    self._finish_deferred(conn, load)
            except BaseException:
                if load.deferred:
                    try:  # leave the table as it was, for a caller that goes on in this transaction
                        conn.execute("DELETE FROM seeds")
                        conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {_ID_INDEX} ON seeds(id)")
                    except sqlite3.Error:
                        pass  # the connection is gone: the transaction rolls back anyway
                raise
            finally:
                self._bulk = None
                conn.execute(f"PRAGMA cache_size={int(cache)}")

    def _finish_deferred(self, conn: sqlite3.Connection, load: BulkLoad) -> None:
        """Remove the repeats among the appended rows (rids 1..n), then build the index."""
        last, count = conn.execute("SELECT coalesce(max(rid), 0), count(*) FROM seeds").fetchone()
        if load._exact and last == count == load.rows:
            ids = np.concatenate(load._ids) if load._ids else np.zeros(0, dtype=">u8")
            _, first = np.unique(ids, return_index=True)
            repeat = np.ones(len(ids), dtype=bool)
            repeat[first] = False
            drop = (np.nonzero(repeat)[0] + 1).tolist()  # rid = position + 1
        else:  # ids not made by seed_id, or rids not 1..n: let SQL find the repeats
            drop = [r[0] for r in conn.execute(
                "SELECT rid FROM seeds WHERE rid NOT IN (SELECT min(rid) FROM seeds GROUP BY id)")]
        conn.executemany("DELETE FROM seeds WHERE rid = ?", ((r,) for r in drop))
        conn.execute(f"CREATE UNIQUE INDEX {_ID_INDEX} ON seeds(id)")
        load.added, load.duplicates = load.rows - len(drop), len(drop)
        if load.added:
            self.store.bump()

    def add_rows(self, rows: Iterable[tuple] | PackedRows) -> tuple[int, int]:
        """Insert rows made by :func:`seed_row`: the bulk path of ingest, which builds rows
        without a :class:`Seed` in between (possibly in another process). Plain
        ``executemany``: at a million rows it is several times faster than building dicts.
        :class:`~linkqa_core.store.packed.PackedRows` (the columnar ingest's batches) go in
        with one ``INSERT ... SELECT``, the same rows in the same order.

        Returns ``(added, duplicates)``; inside a deferred :meth:`bulk` those are known
        only at its end, and this returns ``(rows, 0)``."""
        load = self._bulk
        if load is not None and load.thread != threading.get_ident():
            load = None  # another thread's load: this call waits for its transaction, then inserts as usual
        if isinstance(rows, PackedRows):
            return self._add_packed(rows, load)
        if load is not None and load.deferred:
            rows = rows if isinstance(rows, list) else list(rows)
            with self.store.transaction() as conn:
                conn.executemany(_APPEND_SEED, rows)
            load.note_ids([r[0] for r in rows])
            load.rows += len(rows)
            return len(rows), 0
        added, duplicates = self._add_rows(rows)
        if load is not None:
            load.rows += added + duplicates
            load.added += added
            load.duplicates += duplicates
        return added, duplicates

    def _add_packed(self, rows: PackedRows, load: BulkLoad | None) -> tuple[int, int]:
        deferred = load is not None and load.deferred
        with self.store.transaction() as conn:
            added = insert_packed(conn, rows, ignore=not deferred)
        n = len(rows)
        if deferred:
            load.note_id_array(rows.id_array())  # type: ignore[union-attr]
            load.rows += n  # type: ignore[union-attr]
            return n, 0
        if added:
            self.store.bump()
        if load is not None:
            load.rows += n
            load.added += added
            load.duplicates += n - added
        return added, n - added

    def _add_rows(self, rows: Iterable[tuple]) -> tuple[int, int]:
        with self.store.transaction() as conn:
            before = conn.total_changes
            n = 0
            cur = conn.cursor()
            batch: list[tuple] = []
            for row in rows:
                batch.append(row)
                n += 1
                if len(batch) >= 5000:
                    cur.executemany(_INSERT_SEED, batch)
                    batch.clear()
            if batch:
                cur.executemany(_INSERT_SEED, batch)
            added = conn.total_changes - before
            if added:
                self.store.bump()
        return added, n - added

    def set_estimates(self, difficulties: Sequence[tuple[float, int]], disciplines: Sequence[tuple[str, int]]) -> None:
        """Difficulty estimates ``(difficulty, rid)`` and disciplines ``(discipline, rid)`` an extractor found."""
        with self.store.transaction() as conn:
            conn.executemany("UPDATE seeds SET difficulty = ?, difficulty_estimated = 1 WHERE rid = ?", difficulties)
            conn.executemany("UPDATE seeds SET discipline = ? WHERE rid = ?", disciplines)
            if difficulties or disciplines:
                self.store.bump()  # the graph, the seed summary and the KP table read them

    # -- reading -----------------------------------------------------------------------

    def count(self) -> int:
        return int(self.store.scalar("SELECT count(*) FROM seeds") or 0)

    def count_without_kps(self) -> int:
        return int(self.store.scalar("SELECT count(*) FROM seeds WHERE rid NOT IN (SELECT seed_rid FROM seed_kps)")
                   or 0)

    def iter(self, *, without_kps: bool = False, batch: int = 5000) -> Iterator[tuple[int, Seed]]:
        """``(rid, Seed)`` in rid order, in batches so that a million seeds fit in memory."""
        clause = "AND rid NOT IN (SELECT seed_rid FROM seed_kps)" if without_kps else ""
        last = 0
        while True:
            rows = self.store.query(f"SELECT * FROM seeds WHERE rid > ? {clause} ORDER BY rid LIMIT ?", (last, batch))
            if not rows:
                return
            for row in rows:
                yield row["rid"], seed_from_row(row)
            last = rows[-1]["rid"]

    def questions(self, batch: int = 5000) -> Iterator[tuple[str, str, list[str] | None]]:
        """``(id, question, options)`` of every seed, streamed (the seed-duplicate gate)."""
        last = 0
        while True:
            rows = self.store.query("SELECT rid, id, question, options FROM seeds WHERE rid > ? ORDER BY rid LIMIT ?",
                                    (last, batch))
            if not rows:
                return
            for row in rows:
                try:
                    opts = json.loads(row["options"]) if row["options"] else None
                except ValueError:
                    opts = None
                yield row["id"], row["question"], opts if isinstance(opts, list) else None
            last = rows[-1]["rid"]

    def get(self, ids: Sequence[str]) -> list[Seed]:
        """Seeds by content id, in the order asked (unknown ids are left out)."""
        found: dict[str, Seed] = {}
        ids = list(ids)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            for row in self.store.query(f"SELECT * FROM seeds WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                found[row["id"]] = seed_from_row(row)
        return [found[i] for i in ids if i in found]

    def ids_for_rids(self, rids: Sequence[int]) -> list[str]:
        """Content ids of row ids, in the order asked (unknown rids are left out)."""
        out: dict[int, str] = {}
        rids = [int(r) for r in rids]
        for i in range(0, len(rids), _CHUNK):
            chunk = rids[i : i + _CHUNK]
            for row in self.store.query(f"SELECT rid, id FROM seeds WHERE rid IN ({','.join('?' * len(chunk))})",
                                        chunk):
                out[row[0]] = row[1]
        return [out[r] for r in rids if r in out]

    def kp_names(self, ids: Sequence[str]) -> dict[str, set[str]]:
        """The KP keys each seed names, by seed id."""
        out: dict[str, set[str]] = {}
        ids = list(ids)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            for sid, name in self.store.query(
                "SELECT s.id, k.name FROM seeds s JOIN seed_kps l ON l.seed_rid = s.rid JOIN kps k ON k.id = l.kp_id"
                f" WHERE s.id IN ({','.join('?' * len(chunk))})", chunk):
                out.setdefault(sid, set()).add(name)
        return out

    def naming(self, kp_key: str, discipline: str, limit: int = 20) -> list[Seed]:
        """Seeds that name a KP (by its key), same discipline first, oldest first."""
        rows = self.store.query(
            "SELECT s.id FROM kps k JOIN seed_kps l ON l.kp_id = k.id JOIN seeds s ON s.rid = l.seed_rid"
            " WHERE k.name = ? ORDER BY s.discipline != ?, s.rid LIMIT ?", (kp_key, discipline, limit))
        return self.get([r[0] for r in rows])

    # -- browsing (the Seeds page) -------------------------------------------------------

    def attributes(self) -> dict[str, Any]:
        """Every seed's discipline and difficulty as arrays by rid, and the seed summary.

        One scan of the seeds table grouped by (discipline, rounded difficulty,
        estimated), kept per data version (:meth:`Store._memo`): ``disciplines`` (sorted),
        ``discipline`` (int16 index into it, by rid), ``difficulty`` (float, NaN when
        unknown, by rid) and ``summary`` (see :meth:`summary`). The arrays let the KP table
        and the per-discipline KP counts read a KP's seeds from the link index alone,
        instead of joining each link with its seed row. Shared: do not modify.
        """
        return self.store._memo("seed_attributes", self._attributes, keep=True)

    def _attributes(self) -> dict[str, Any]:
        with self.store.reading() as conn:
            max_rid = int(conn.execute("SELECT max(rid) FROM seeds").fetchone()[0] or 0)
            groups = conn.execute(
                "SELECT discipline, CAST(round(difficulty) AS INTEGER), difficulty_estimated, count(*),"
                " group_concat(rid), group_concat(difficulty) FROM seeds GROUP BY 1, 2, 3").fetchall()
        disciplines = sorted({g[0] for g in groups})
        index = {d: i for i, d in enumerate(disciplines)}
        disc = np.zeros(max_rid + 1, dtype=np.int16)
        diff = np.full(max_rid + 1, np.nan)
        for d, lvl, _, _, rids, values in groups:
            r = np.fromstring(rids, dtype=np.int64, sep=",")
            disc[r] = index[d]
            if lvl is not None and values:
                diff[r] = np.fromstring(values, dtype=np.float64, sep=",")
        disc.flags.writeable = False
        diff.flags.writeable = False
        summary = [(g[0], None if g[1] is None else int(g[1]), int(g[2]), int(g[3])) for g in groups]
        return {"disciplines": disciplines, "discipline": disc, "difficulty": diff, "summary": summary}

    def summary(self) -> list[tuple[str, int | None, int, int]]:
        """``(discipline, rounded difficulty or None, estimated 0/1, seeds)`` over every seed.

        From :meth:`attributes`: the Seeds page's filters, its two charts and the match
        count of a discipline or difficulty filter come from it, so a rerun scans no seeds.
        """
        return self.attributes()["summary"]

    def filter_options(self) -> dict[str, list]:
        """Disciplines and difficulty levels present, for the Seeds page's filters."""
        rows = self.summary()
        levels = sorted({lvl for _, lvl, _, _ in rows if lvl is not None})
        has_unknown = any(lvl is None for _, lvl, _, _ in rows)
        return {"disciplines": sorted({d for d, _, _, _ in rows}),
                "difficulties": levels + ([UNKNOWN_DIFFICULTY] if has_unknown else [])}

    def page(self, *, disciplines: Sequence[str] | None = None, difficulties: Sequence[Any] | None = None,
             search: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """One page of seeds matching the filters (as table rows), and how many match in all.

        Without a text search the count comes from :meth:`summary` (no scan); the page's
        rows are read in rid order and stop at the page's end.
        """
        where, params = _seed_where(disciplines, difficulties, search)
        if search and search.strip():
            total = int(self.store.scalar(f"SELECT count(*) FROM seeds{where}", params) or 0)
        else:
            total = _summary_total(self.summary(), disciplines, difficulties)
        if limit <= 0:
            return [], total
        rows = self.store.query(
            "SELECT s.id, s.question, s.answer, s.options, s.discipline, s.subject, s.difficulty,"
            " s.difficulty_estimated, s.source,"
            " (SELECT count(*) FROM seed_kps l WHERE l.seed_rid = s.rid) AS n_kps"
            f" FROM seeds s{where} ORDER BY s.rid LIMIT ? OFFSET ?",
            (*params, int(limit), int(offset)),
        )
        out = []
        for r in rows:
            options = json.loads(r["options"]) if r["options"] else None
            out.append({
                "id": r["id"], "question": r["question"], "answer": r["answer"],
                "options": " | ".join(options) if options else "", "discipline": r["discipline"],
                "subject": r["subject"] or "", "difficulty": r["difficulty"],
                "estimated": bool(r["difficulty_estimated"]), "kps": r["n_kps"], "source": r["source"] or "",
            })
        return out, total

    def discipline_counts(self) -> list[dict[str, Any]]:
        per: dict[str, int] = {}
        for d, _, _, n in self.summary():
            per[d] = per.get(d, 0) + n
        return [{"discipline": d, "seeds": n} for d, n in sorted(per.items(), key=lambda x: (-x[1], x[0]))]

    def difficulty_counts(self) -> list[dict[str, Any]]:
        per: dict[tuple[str, str], int] = {}
        for _, lvl, est, n in self.summary():
            key = ("unknown", "missing") if lvl is None else (str(lvl), "estimated" if est else "given")
            per[key] = per.get(key, 0) + n
        return [{"difficulty": d, "kind": k, "seeds": n} for (d, k), n in sorted(per.items())]


def _summary_total(rows: Sequence[tuple[str, int | None, int, int]], disciplines: Sequence[str] | None,
                   difficulties: Sequence[Any] | None) -> int:
    """Seeds matching a discipline and difficulty filter, counted from :meth:`SeedStore.summary`."""
    want_d = set(disciplines) if disciplines else None
    want_l = {int(d) for d in difficulties if d != UNKNOWN_DIFFICULTY} if difficulties else None
    unknown = bool(difficulties) and UNKNOWN_DIFFICULTY in difficulties
    total = 0
    for d, lvl, _, n in rows:
        if want_d is not None and d not in want_d:
            continue
        if want_l is not None and not ((lvl is None and unknown) or (lvl is not None and lvl in want_l)):
            continue
        total += n
    return total


def _seed_where(disciplines: Sequence[str] | None, difficulties: Sequence[Any] | None,
                search: str | None) -> tuple[str, list]:
    clauses, params = [], []
    if disciplines:
        clauses.append(f"discipline IN ({','.join('?' * len(disciplines))})")
        params.extend(disciplines)
    if difficulties:
        levels = [int(d) for d in difficulties if d != UNKNOWN_DIFFICULTY]
        parts = []
        if levels:
            parts.append(f"CAST(round(difficulty) AS INTEGER) IN ({','.join('?' * len(levels))})")
            params.extend(levels)
        if UNKNOWN_DIFFICULTY in difficulties:
            parts.append("difficulty IS NULL")
        clauses.append("(" + " OR ".join(parts) + ")")
    if search and search.strip():
        clauses.append("(question LIKE ? OR answer LIKE ? OR subject LIKE ?)")
        like = f"%{search.strip()}%"
        params.extend([like, like, like])
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

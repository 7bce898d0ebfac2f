"""Generated items in the database: stored as they arrive, reviewed, edited, exported.

Every write keys an item by ``(run_id, slot)`` and inserts with ``OR IGNORE``, so a
resumed run never stores an item twice.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ..errors import ConfigError, NotFoundError
from ..records import ITEM_STATUSES, Item
from .database import dumps, loads

if TYPE_CHECKING:
    from .database import Store

__all__ = ["ItemStore", "item_from_row", "EDITABLE"]

EDITABLE = ("question", "options", "answer", "solution", "difficulty", "discipline")
_COLUMNS = ("run_id", "path_id", "parent_id", "slot", "status", "question", "options", "answer", "solution",
            "kps_used", "discipline", "difficulty", "seed_ids", "model", "reasoning", "raw", "gate_reason",
            "operation", "prompt_tokens", "completion_tokens", "created_at", "updated_at")
_INSERT = (f"INSERT OR IGNORE INTO items ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})")
_CHUNK = 900


def item_from_row(row: Any) -> Item:
    """An item from its row. Options that are not a JSON list (a hand-edited row) stay as
    their text, so the schema gate rejects the item with the reason instead of passing it."""
    options = loads(row["options"], row["options"])
    kps = loads(row["kps_used"], [])
    seeds = loads(row["seed_ids"], [])
    keys = row.keys()
    return Item(
        question=row["question"] or "", answer=row["answer"] or "",
        options=(tuple(str(o) for o in options) if isinstance(options, list) else options) or None,
        solution=row["solution"] or "",
        kps_used=tuple(str(k) for k in kps) if isinstance(kps, list) else (),
        discipline=row["discipline"] or "Other", difficulty=row["difficulty"], id=row["id"], run_id=row["run_id"],
        path_id=row["path_id"], parent_id=row["parent_id"], slot=row["slot"], status=row["status"],
        seed_ids=tuple(str(s) for s in seeds) if isinstance(seeds, list) else (), model=row["model"],
        reasoning=row["reasoning"], raw=row["raw"], gate_reason=row["gate_reason"], operation=row["operation"],
        prompt_tokens=row["prompt_tokens"] or 0, completion_tokens=row["completion_tokens"] or 0,
        created_at=row["created_at"], updated_at=row["updated_at"],
        original=loads(row["original"]) if "original" in keys else None,
        edited_at=row["edited_at"] if "edited_at" in keys else None,
    )


def _row(item: Item, now: float) -> tuple:
    failed = item.status == "failed"
    return (
        item.run_id, item.path_id, item.parent_id, item.slot, item.status,
        None if failed else item.question,
        dumps(list(item.options)) if item.options and not failed else None,
        None if failed else item.answer, None if failed else item.solution,
        None if failed else dumps(list(item.kps_used)), item.discipline, item.difficulty,
        json.dumps(list(item.seed_ids)), item.model, item.reasoning, item.raw, item.gate_reason, item.operation,
        item.prompt_tokens, item.completion_tokens, now, now,
    )


class ItemStore:
    """``store.items``: every query on ``items``."""

    def __init__(self, store: "Store"):
        self.store = store

    # -- writing -----------------------------------------------------------------------

    def insert(self, items: Sequence[Item]) -> int:
        """Store items (fresh ones or failed attempts) unless their slot is taken; returns how many were new."""
        now = time.time()
        with self.store.transaction() as conn:
            before = conn.total_changes
            conn.executemany(_INSERT, [_row(it, now) for it in items])
            return conn.total_changes - before

    def insert_rewrites(self, children: Sequence[Item]) -> int:
        """Store rewrites; the parent of each new ``generated`` child becomes ``superseded``
        (unless a curator decided on it meanwhile). Returns how many kept children were new."""
        now = time.time()
        kept = 0
        with self.store.transaction() as conn:
            for child in children:
                cur = conn.execute(_INSERT, _row(child, now))
                if cur.rowcount and child.status == "generated":
                    conn.execute("UPDATE items SET status = 'superseded', updated_at = ? WHERE id = ?"
                                 " AND status = 'generated'", (now, child.parent_id))
                    kept += 1
        return kept

    def set_difficulty(self, updates: Sequence[tuple[int, float]]) -> int:
        """``(item id, difficulty)`` pairs from a rater."""
        now = time.time()
        with self.store.transaction() as conn:
            conn.executemany("UPDATE items SET difficulty = ?, updated_at = ? WHERE id = ?",
                             [(float(d), now, i) for i, d in updates])
        return len(updates)

    def reject(self, reasons: Sequence[tuple[int, str]], *, only_status: str = "generated") -> int:
        """Reject items with a reason each (a gate's), leaving alone any whose status changed meanwhile."""
        now = time.time()
        with self.store.transaction() as conn:
            before = conn.total_changes
            conn.executemany("UPDATE items SET status = 'rejected', gate_reason = ?, updated_at = ?"
                             " WHERE id = ? AND status = ?", [(r, now, i, only_status) for i, r in reasons])
            return conn.total_changes - before

    def set_status(self, item_ids: Sequence[int], status: str, *, reason: str | None = None) -> int:
        """A curator's decision on items (failed and superseded ones stay as they are); returns how many changed."""
        ids = [int(i) for i in item_ids]
        changed = 0
        now = time.time()
        with self.store.transaction() as conn:
            for k in range(0, len(ids), _CHUNK):
                chunk = ids[k:k + _CHUNK]
                sets = "status = ?, updated_at = ?" + (", gate_reason = ?" if reason else "")
                args = [status, now] + ([reason] if reason else []) + chunk
                changed += conn.execute(f"UPDATE items SET {sets} WHERE id IN ({','.join('?' * len(chunk))})"
                                        " AND status NOT IN ('failed', 'superseded')", args).rowcount
        return changed

    def edit(self, item_id: int, fields: dict[str, Any]) -> None:
        """Save a curator's edit; the first edit keeps the item as generated in ``original``."""
        now = time.time()
        with self.store.transaction() as conn:
            row = conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no item {item_id}")
            original = row["original"]
            if original is None:
                original = json.dumps({k: loads(row[k]) if k == "options" else row[k] for k in EDITABLE},
                                      ensure_ascii=False)
            options = fields["options"]
            conn.execute(
                "UPDATE items SET question = ?, options = ?, answer = ?, solution = ?, difficulty = ?,"
                " discipline = ?, original = ?, edited_at = ?, updated_at = ? WHERE id = ?",
                (fields["question"], dumps(list(options)) if options else None, fields["answer"], fields["solution"],
                 fields["difficulty"], fields["discipline"], original, now, now, item_id),
            )

    # -- reading -----------------------------------------------------------------------

    def get(self, item_id: int) -> Item:
        rows = self.store.query("SELECT * FROM items WHERE id = ?", (item_id,))
        if not rows:
            raise NotFoundError(f"no item {item_id}")
        return item_from_row(rows[0])

    def reasons(self, item_ids: Sequence[int]) -> dict[int, str | None]:
        """The gate reason of each item (None when it has none), by id."""
        ids = [int(i) for i in item_ids]
        out: dict[int, str | None] = {}
        for k in range(0, len(ids), _CHUNK):
            chunk = ids[k:k + _CHUNK]
            for r in self.store.query(f"SELECT id, gate_reason FROM items WHERE id IN ({','.join('?' * len(chunk))})",
                                      chunk):
                out[int(r[0])] = r[1]
        return out

    def of_run(self, run_id: int, statuses: Sequence[str] | None = None, *, discipline: str | None = None,
               min_difficulty: float | None = None, max_difficulty: float | None = None,
               gate: str | None = None, search: str | None = None, limit: int | None = None,
               offset: int = 0) -> list[Item]:
        """A run's items, oldest first, filtered; unknown statuses are a :class:`ConfigError`."""
        where, params = self._where(run_id, statuses, discipline, min_difficulty, max_difficulty, gate, search)
        sql = f"SELECT * FROM items WHERE {where} ORDER BY id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [int(limit), int(offset)]
        return [item_from_row(r) for r in self.store.query(sql, params)]

    def count(self, run_id: int, statuses: Sequence[str] | None = None, **filters: Any) -> int:
        where, params = self._where(run_id, statuses, filters.get("discipline"), filters.get("min_difficulty"),
                                    filters.get("max_difficulty"), filters.get("gate"), filters.get("search"))
        return int(self.store.scalar(f"SELECT count(*) FROM items WHERE {where}", params) or 0)

    def ids(self, run_id: int, statuses: Sequence[str] | None = None, **filters: Any) -> list[int]:
        where, params = self._where(run_id, statuses, filters.get("discipline"), filters.get("min_difficulty"),
                                    filters.get("max_difficulty"), filters.get("gate"), filters.get("search"))
        return [int(r[0]) for r in self.store.query(f"SELECT id FROM items WHERE {where} ORDER BY id", params)]

    @staticmethod
    def _where(run_id: int, statuses: Sequence[str] | str | None, discipline: str | None,
               min_difficulty: float | None, max_difficulty: float | None, gate: str | None,
               search: str | None) -> tuple[str, list]:
        where, params = ["run_id = ?"], [run_id]
        if statuses:
            statuses = [statuses] if isinstance(statuses, str) else list(statuses)
            bad = set(statuses) - set(ITEM_STATUSES)
            if bad:
                raise ConfigError(f"unknown status {sorted(bad)}; use {', '.join(ITEM_STATUSES)}")
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params += statuses
        if discipline:
            where.append("discipline = ?")
            params.append(discipline)
        if min_difficulty is not None:
            where.append("difficulty >= ?")
            params.append(min_difficulty)
        if max_difficulty is not None:
            where.append("difficulty <= ?")
            params.append(max_difficulty)
        if gate:
            where.append("gate_reason LIKE ?")
            params.append(f"%{gate}%")
        if search:
            where.append("(question LIKE ? OR answer LIKE ? OR solution LIKE ?)")
            params += [f"%{search}%"] * 3
        return " AND ".join(where), params

    def counts(self, run_id: int) -> dict[str, int]:
        """Items per status."""
        return {r[0]: int(r[1]) for r in
                self.store.query("SELECT status, count(*) FROM items WHERE run_id = ? GROUP BY status", (run_id,))}

    def total(self, run_id: int) -> int:
        return int(self.store.scalar("SELECT count(*) FROM items WHERE run_id = ?", (run_id,)) or 0)

    def gate_reasons(self, run_id: int) -> list[tuple[str, int]]:
        """Each distinct gate reason of a run's items with how many items carry it, most frequent first."""
        return [(r[0], int(r[1])) for r in self.store.query(
            "SELECT gate_reason, count(*) FROM items WHERE run_id = ? AND gate_reason IS NOT NULL"
            " GROUP BY gate_reason ORDER BY 2 DESC, 1", (run_id,))]

    def disciplines(self, run_id: int) -> list[str]:
        return [r[0] for r in self.store.query(
            "SELECT DISTINCT discipline FROM items WHERE run_id = ? AND discipline IS NOT NULL ORDER BY 1", (run_id,))]

    def done_path_ids(self, run_id: int) -> set[int]:
        """Paths of a run that synthesis already answered (an item or a failure stored)."""
        return {r[0] for r in self.store.query(
            "SELECT DISTINCT path_id FROM items WHERE run_id = ? AND parent_id IS NULL", (run_id,))}

    def good_count(self, run_id: int) -> int:
        """Synthesised items (not rewrites) that hold a QA: everything but failed attempts."""
        return int(self.store.scalar(
            "SELECT count(*) FROM items WHERE run_id = ? AND parent_id IS NULL AND status != 'failed'", (run_id,)))

    def slots_ending(self, run_id: int, suffix: str) -> set[str]:
        return {r[0] for r in self.store.query("SELECT slot FROM items WHERE run_id = ? AND slot LIKE ?",
                                               (run_id, f"%{suffix}"))}

    def ids_for_slots(self, run_id: int, slots: Sequence[str]) -> dict[str, int]:
        """Item ids of a run by slot (slots not stored are left out): a Ray run's import and gates."""
        out: dict[str, int] = {}
        slots = list(slots)
        for k in range(0, len(slots), _CHUNK):
            chunk = slots[k:k + _CHUNK]
            for r in self.store.query(f"SELECT slot, id FROM items WHERE run_id = ? AND slot IN ({','.join('?' * len(chunk))})",
                                      (run_id, *chunk)):
                out[r[0]] = int(r[1])
        return out

    def lineage(self, item: Item, depth: int = 20) -> list[Item]:
        """The item's parents, nearest first."""
        out: list[Item] = []
        parent = item.parent_id
        while parent is not None and len(out) < depth:
            rows = self.store.query("SELECT * FROM items WHERE id = ?", (parent,))
            if not rows:
                break
            out.append(item_from_row(rows[0]))
            parent = rows[0]["parent_id"]
        return out

    def for_export(self, run_id: int, statuses: Sequence[str]) -> Iterator[tuple[Item, int | None, list[str]]]:
        """``(item, path index, path KPs)`` of a run's items with one of ``statuses``, in id order, streamed."""
        marks = ",".join("?" * len(statuses))
        last = 0
        while True:
            rows = self.store.query(
                "SELECT i.*, p.idx AS path_index, p.kps AS path_kps FROM items i LEFT JOIN paths p ON p.id = i.path_id"
                f" WHERE i.run_id = ? AND i.status IN ({marks}) AND i.id > ? ORDER BY i.id LIMIT 2000",
                (run_id, *statuses, last))
            if not rows:
                return
            for r in rows:
                yield item_from_row(r), r["path_index"], loads(r["path_kps"], [])
            last = rows[-1]["id"]

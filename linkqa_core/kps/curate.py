"""Curating KPs: merge, rename, the KP table, merge suggestions."""

from __future__ import annotations

from typing import Sequence

from ..errors import InputError, NotFoundError
from ..store import Store
from .names import normalize_kp

__all__ = ["merge_kps", "rename_kp", "kp_table", "suggest_merges"]


def _kp_id(store: Store, name: str) -> int:
    norm = normalize_kp(name)
    kid = store.scalar("SELECT id FROM kps WHERE name = ?", (norm,))
    if kid is None:
        raise NotFoundError(f"no knowledge point named '{name}'")
    return int(kid)


def merge_kps(store: Store, sources: Sequence[str], target: str) -> int:
    """Fold ``sources`` into ``target`` (created if new); returns links moved.

    Each source name becomes an alias of the target, so re-extraction keeps the merge.
    Paths of saved runs are re-pointed too, so the coverage ledger stays consistent.
    """
    target_norm = normalize_kp(target)
    if not target_norm:
        raise InputError("the target KP name is empty")
    moved = 0
    with store.transaction() as conn:
        tid = conn.execute("SELECT id FROM kps WHERE name = ?", (target_norm,)).fetchone()
        tid = tid[0] if tid else conn.execute("INSERT INTO kps (name) VALUES (?)", (target_norm,)).lastrowid
        for src in sources:
            sid = _kp_id(store, src)
            if sid == tid:
                continue
            before = conn.total_changes
            conn.execute("INSERT OR IGNORE INTO seed_kps (seed_rid, kp_id) SELECT seed_rid, ? FROM seed_kps WHERE kp_id = ?", (tid, sid))
            moved += conn.total_changes - before
            conn.execute("DELETE FROM seed_kps WHERE kp_id = ?", (sid,))
            conn.execute("UPDATE path_kps SET kp_id = ? WHERE kp_id = ?", (tid, sid))
            conn.execute("UPDATE kp_aliases SET kp_id = ? WHERE kp_id = ?", (tid, sid))
            name = conn.execute("SELECT name FROM kps WHERE id = ?", (sid,)).fetchone()[0]
            conn.execute("INSERT OR REPLACE INTO kp_aliases (alias, kp_id) VALUES (?, ?)", (name, tid))
            conn.execute("DELETE FROM kps WHERE id = ?", (sid,))
        store.bump()
    return moved


def rename_kp(store: Store, old: str, new: str) -> None:
    """Rename a KP; renaming onto an existing name merges the two."""
    new_norm = normalize_kp(new)
    if not new_norm:
        raise InputError("the new KP name is empty")
    if store.scalar("SELECT id FROM kps WHERE name = ?", (new_norm,)) is not None:
        merge_kps(store, [old], new_norm)
        return
    kid = _kp_id(store, old)
    with store.transaction() as conn:
        old_name = conn.execute("SELECT name FROM kps WHERE id = ?", (kid,)).fetchone()[0]
        conn.execute("UPDATE kps SET name = ? WHERE id = ?", (new_norm, kid))
        conn.execute("INSERT OR REPLACE INTO kp_aliases (alias, kp_id) VALUES (?, ?)", (old_name, kid))
        store.bump()


def kp_table(store: Store, *, limit: int | None = None, search: str | None = None) -> list[dict]:
    """KPs with frequency, dominant discipline and mean difficulty, most frequent first."""
    sql = (
        "SELECT k.id, k.name, count(*) AS freq, avg(s.difficulty) AS mean_difficulty,"
        " (SELECT s2.discipline FROM seed_kps l2 JOIN seeds s2 ON s2.rid = l2.seed_rid"
        "  WHERE l2.kp_id = k.id GROUP BY s2.discipline ORDER BY count(*) DESC, s2.discipline LIMIT 1) AS discipline,"
        " count(DISTINCT s.discipline) AS n_disciplines"
        " FROM kps k JOIN seed_kps l ON l.kp_id = k.id JOIN seeds s ON s.rid = l.seed_rid"
    )
    params: list = []
    if search:
        sql += " WHERE k.name LIKE ?"
        params.append(f"%{normalize_kp(search) or search}%")
    sql += " GROUP BY k.id ORDER BY freq DESC, k.name"
    if limit:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [dict(r) for r in store.query(sql, params)]


def suggest_merges(store: Store, limit: int = 50) -> list[tuple[str, str]]:
    """Pairs of KP names that differ only by hyphens, spaces or word order."""
    groups: dict[str, list[str]] = {}
    for (name,) in store.query("SELECT name FROM kps WHERE id IN (SELECT DISTINCT kp_id FROM seed_kps)"):
        key = " ".join(sorted(name.replace("-", " ").replace("'", "").split()))
        groups.setdefault(key, []).append(name)
    pairs = [(names[i], names[0]) for names in groups.values() if len(names) > 1 for i in range(1, len(names))]
    return sorted(pairs)[:limit]

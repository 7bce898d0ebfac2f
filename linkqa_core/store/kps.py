"""Knowledge points in the database: names and labels, seed links, aliases, merges.

A KP has a *key* (``kps.name``: the normalised form every match uses) and a *label*
(``kps.label``: the name as an extractor or a curator wrote it, "United States",
"Le Chatelier's principle"), shown wherever a curator reads it. The first label seen
for a key stays until a curator renames the KP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..errors import InputError, NotFoundError

if TYPE_CHECKING:
    from .database import Store

__all__ = ["KPStore"]

# links per query when reading the graph: ~30 MB of text per column, far below
# SQLite's 1 GB string limit
_LINK_CHUNK = 4_000_000


def _ints(text: str | None, dtype: Any = np.int64) -> np.ndarray:
    return np.fromstring(text, dtype=dtype, sep=",") if text else np.zeros(0, dtype=dtype)


class KPStore:
    """``store.kps``: every query on ``kps``, ``kp_aliases`` and ``seed_kps``."""

    def __init__(self, store: "Store"):
        self.store = store

    # -- reading -----------------------------------------------------------------------

    def count(self) -> int:
        """KPs named by at least one seed."""
        return int(self.store.scalar("SELECT count(DISTINCT kp_id) FROM seed_kps") or 0)

    def aliases(self) -> dict[str, str]:
        """alias key -> canonical key (from merges and renames)."""
        return {row[0]: row[1] for row in
                self.store.query("SELECT a.alias, k.name FROM kp_aliases a JOIN kps k ON k.id = a.kp_id")}

    def id_of(self, key: str) -> int | None:
        kid = self.store.scalar("SELECT id FROM kps WHERE name = ?", (key,))
        return None if kid is None else int(kid)

    def label_of(self, key: str) -> str | None:
        row = self.store.query("SELECT coalesce(label, name) FROM kps WHERE name = ?", (key,))
        return row[0][0] if row else None

    def keys_in_use(self) -> list[str]:
        return [r[0] for r in self.store.query(
            "SELECT name FROM kps WHERE id IN (SELECT DISTINCT kp_id FROM seed_kps) ORDER BY name")]

    def table(self, *, limit: int | None = None, search: str | None = None) -> list[dict[str, Any]]:
        """KPs with frequency, dominant discipline and mean difficulty, most frequent first.

        ``search`` matches the key or the label, case-insensitively.
        """
        sql = (
            "SELECT k.id, coalesce(k.label, k.name) AS name, k.name AS key, count(*) AS freq,"
            " avg(s.difficulty) AS mean_difficulty,"
            " (SELECT s2.discipline FROM seed_kps l2 JOIN seeds s2 ON s2.rid = l2.seed_rid"
            "  WHERE l2.kp_id = k.id GROUP BY s2.discipline ORDER BY count(*) DESC, s2.discipline LIMIT 1)"
            " AS discipline, count(DISTINCT s.discipline) AS n_disciplines"
            " FROM kps k JOIN seed_kps l ON l.kp_id = k.id JOIN seeds s ON s.rid = l.seed_rid"
        )
        params: list = []
        if search:
            sql += " WHERE (k.name LIKE ? OR k.label LIKE ?)"
            params += [f"%{search}%", f"%{search}%"]
        sql += " GROUP BY k.id ORDER BY freq DESC, k.name"
        if limit:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [dict(r) for r in self.store.query(sql, params)]

    def quality_counts(self, *, top: int = 200, per_discipline: int = 10, min_kps: int = 2,
                       max_kps: int = 8) -> dict[str, Any]:
        """The counts behind :class:`~linkqa_core.kps.quality.KPQuality`, by SQL aggregates
        over the stored links (no re-extraction): KPs are counted by key, shown by label.

        Keys: ``seeds``, ``kps``, ``links``, ``kps_per_seed_min``/``_max``/``_mean``
        (over every seed, those without KPs too), ``seeds_outside_bounds`` (fewer than
        ``min_kps`` or more than ``max_kps``), ``singletons`` (KPs named by one seed),
        ``multiword`` (KPs of two or more words), ``top`` (``(key, label, seeds)`` of the
        ``top`` most frequent KPs) and ``top_by_discipline`` (discipline -> the
        ``per_discipline`` KPs its seeds name most, as ``(label, seeds)``).
        """
        with self.store.reading() as conn:
            seeds, lo, hi, mean, outside, links = conn.execute(
                "SELECT count(*), min(n), max(n), avg(n), sum(n < ? OR n > ?), sum(n) FROM"
                " (SELECT s.rid, count(l.kp_id) AS n FROM seeds s LEFT JOIN seed_kps l ON l.seed_rid = s.rid"
                "  GROUP BY s.rid)", (min_kps, max_kps)).fetchone()
            kps, singletons, multiword = conn.execute(
                "SELECT count(*), sum(f.n = 1), sum(instr(k.name, ' ') > 0) FROM"
                " (SELECT kp_id, count(*) AS n FROM seed_kps GROUP BY kp_id) f JOIN kps k ON k.id = f.kp_id"
            ).fetchone()
            head = conn.execute(
                "SELECT k.name, coalesce(k.label, k.name), f.n FROM"
                " (SELECT kp_id, count(*) AS n FROM seed_kps GROUP BY kp_id) f JOIN kps k ON k.id = f.kp_id"
                " ORDER BY f.n DESC, k.name LIMIT ?", (int(top),)).fetchall()
            by_disc = conn.execute(
                "WITH c AS (SELECT s.discipline AS d, l.kp_id AS kid, count(*) AS n FROM seed_kps l"
                "           JOIN seeds s ON s.rid = l.seed_rid GROUP BY s.discipline, l.kp_id),"
                " r AS (SELECT c.d, k.name AS key, coalesce(k.label, k.name) AS label, c.n,"
                "       row_number() OVER (PARTITION BY c.d ORDER BY c.n DESC, k.name) AS rk"
                "       FROM c JOIN kps k ON k.id = c.kid)"
                " SELECT d, label, n FROM r WHERE rk <= ? ORDER BY d, rk", (int(per_discipline),)).fetchall()
        top_by_discipline: dict[str, list[tuple[str, int]]] = {}
        for d, label, n in by_disc:
            top_by_discipline.setdefault(d, []).append((label, int(n)))
        return {
            "seeds": int(seeds or 0), "kps": int(kps or 0), "links": int(links or 0),
            "kps_per_seed_min": int(lo or 0), "kps_per_seed_max": int(hi or 0),
            "kps_per_seed_mean": float(mean or 0.0), "seeds_outside_bounds": int(outside or 0),
            "singletons": int(singletons or 0), "multiword": int(multiword or 0),
            "top": [(key, label, int(n)) for key, label, n in head],
            "top_by_discipline": top_by_discipline,
        }

    # -- the graph's input, as arrays ----------------------------------------------------

    def link_arrays(self) -> np.ndarray:
        """``(seed_rid, kp_id)`` of every link as an (L, 2) int64 array, sorted by seed.

        Links leave SQLite as two ``group_concat`` columns of one query (they step over
        the same rows, so they align) parsed by numpy: no Python tuple per row, which is
        most of the graph build at a million seeds. Chunks are ranges of seed rids
        holding about ``_LINK_CHUNK`` links each.
        """
        with self.store.reading() as conn:
            lo, hi, total = conn.execute("SELECT min(seed_rid), max(seed_rid), count(*) FROM seed_kps").fetchone()
            if not total:
                return np.zeros((0, 2), dtype=np.int64)
            # one output array filled chunk by chunk: no list of chunks and no concatenated
            # copy beside it (at ten million seeds each is 0.8 GB)
            links = np.empty((total, 2), dtype=np.int64)
            filled = 0
            span = max(1, -(-(hi - lo + 1) * _LINK_CHUNK // total))
            for start in range(lo, hi + 1, span):
                rids, kps = conn.execute(
                    "SELECT group_concat(seed_rid), group_concat(kp_id) FROM seed_kps"
                    " WHERE seed_rid >= ? AND seed_rid < ?", (start, start + span)).fetchone()
                if rids:
                    r = _ints(rids)
                    del rids
                    k = _ints(kps)
                    del kps
                    if filled + r.size > links.shape[0]:  # links added since the count: make room
                        links = np.concatenate([links, np.empty((filled + r.size - links.shape[0], 2), np.int64)])
                    links[filled:filled + r.size, 0] = r
                    links[filled:filled + r.size, 1] = k
                    filled += r.size
        links = links[:filled]
        if links.shape[0] > 1 and np.any(links[1:, 0] < links[:-1, 0]):
            links = links[np.argsort(links[:, 0], kind="stable")]
        return links

    def seed_arrays(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Disciplines (sorted), then each seed's discipline index and difficulty, indexed by rid.

        One query grouped by (discipline, difficulty): a table scan and a sort of small
        keys (1M seeds: ~0.9 s). Difficulties arrive as exact floats (as text SQLite would
        round them to 15 digits).
        """
        with self.store.reading() as conn:
            max_rid = conn.execute("SELECT max(rid) FROM seeds").fetchone()[0] or 0
            groups = conn.execute(
                "SELECT discipline, difficulty, group_concat(rid) FROM seeds GROUP BY discipline, difficulty"
            ).fetchall()
        disciplines = sorted({d for d, _, _ in groups})
        d_index = {d: i for i, d in enumerate(disciplines)}
        seed_disc = np.zeros(max_rid + 1, dtype=np.int16)
        seed_diff = np.full(max_rid + 1, np.nan)
        for disc, diff, text in groups:
            rids = _ints(text)
            seed_disc[rids] = d_index[disc]
            if diff is not None:
                seed_diff[rids] = diff
        return disciplines, seed_disc, seed_diff

    def labels_for(self, kp_ids: np.ndarray) -> list[str]:
        """The label of each KP id (in the order given), read in one query."""
        with self.store.reading() as conn:
            ids_text, names_text, count = conn.execute(
                "SELECT group_concat(id), group_concat(coalesce(label, name), char(30)), count(*) FROM kps"
            ).fetchone()
            if names_text and (names_text.count("\x1e") + 1 != count):  # a name holding char(30): the plain way
                cur = conn.execute("SELECT id, coalesce(label, name) FROM kps")
                name_of = {int(r[0]): r[1] for r in cur.fetchall()}
                return [name_of.get(int(k), f"kp {int(k)}") for k in kp_ids]
        ids = _ints(ids_text)
        names = names_text.split("\x1e") if names_text else []
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        pos = np.searchsorted(ids, kp_ids)
        pos_c = np.minimum(pos, max(ids.size - 1, 0))
        found = (ids[pos_c] == kp_ids) if ids.size else np.zeros(kp_ids.size, bool)
        order_l = order.tolist()
        return [names[order_l[p]] if f else f"kp {int(k)}"
                for p, f, k in zip(pos_c.tolist(), found.tolist(), kp_ids.tolist())]

    # -- writing -----------------------------------------------------------------------

    def replace_links(self, links: Mapping[int, Sequence[tuple[str, str]]]) -> None:
        """Set each seed's KPs (``rid -> [(key, label), ...]``), replacing its old links, in one transaction.

        New keys become KPs with that label; a key already stored keeps its label.
        """
        with self.store.transaction() as conn:
            kp_ids = {row[1]: row[0] for row in conn.execute("SELECT id, name FROM kps")}
            pairs: list[tuple[int, int]] = []
            for rid, names in links.items():
                for key, label in names:
                    kid = kp_ids.get(key)
                    if kid is None:
                        kid = conn.execute("INSERT INTO kps (name, label) VALUES (?, ?)",
                                           (key, label if label != key else None)).lastrowid
                        kp_ids[key] = kid
                    pairs.append((rid, kid))
            conn.executemany("DELETE FROM seed_kps WHERE seed_rid = ?", [(rid,) for rid in links])
            conn.executemany("INSERT OR IGNORE INTO seed_kps (seed_rid, kp_id) VALUES (?, ?)", pairs)
            self.store.bump()

    def merge(self, sources: Sequence[str], target_key: str, target_label: str | None = None) -> int:
        """Fold the KPs keyed ``sources`` into ``target_key`` (created if new); returns links moved.

        Each source key becomes an alias of the target, so re-extraction keeps the merge;
        paths of saved runs are re-pointed too, so the coverage ledger stays consistent.
        Raises :class:`NotFoundError` for a source that does not exist.
        """
        if not target_key:
            raise InputError("the target KP name is empty")
        moved = 0
        with self.store.transaction() as conn:
            row = conn.execute("SELECT id FROM kps WHERE name = ?", (target_key,)).fetchone()
            if row is None:
                tid = conn.execute("INSERT INTO kps (name, label) VALUES (?, ?)",
                                   (target_key, target_label if target_label != target_key else None)).lastrowid
            else:
                tid = row[0]
                if target_label:
                    conn.execute("UPDATE kps SET label = ? WHERE id = ?", (target_label, tid))
            for src in sources:
                found = conn.execute("SELECT id FROM kps WHERE name = ?", (src,)).fetchone()
                if found is None:
                    raise NotFoundError(f"no knowledge point named '{src}'")
                sid = found[0]
                if sid == tid:
                    continue
                before = conn.total_changes
                conn.execute("INSERT OR IGNORE INTO seed_kps (seed_rid, kp_id) SELECT seed_rid, ? FROM seed_kps"
                             " WHERE kp_id = ?", (tid, sid))
                moved += conn.total_changes - before
                conn.execute("DELETE FROM seed_kps WHERE kp_id = ?", (sid,))
                conn.execute("UPDATE path_kps SET kp_id = ? WHERE kp_id = ?", (tid, sid))
                conn.execute("UPDATE kp_aliases SET kp_id = ? WHERE kp_id = ?", (tid, sid))
                conn.execute("INSERT OR REPLACE INTO kp_aliases (alias, kp_id) VALUES (?, ?)", (src, tid))
                conn.execute("DELETE FROM kps WHERE id = ?", (sid,))
            self.store.bump()
        return moved

    def rename(self, old_key: str, new_key: str, new_label: str) -> None:
        """Give a KP a new key and label; the old key becomes an alias. The caller has
        checked that ``new_key`` is free (or equal to ``old_key``: then only the label changes)."""
        with self.store.transaction() as conn:
            row = conn.execute("SELECT id FROM kps WHERE name = ?", (old_key,)).fetchone()
            if row is None:
                raise NotFoundError(f"no knowledge point named '{old_key}'")
            kid = row[0]
            conn.execute("UPDATE kps SET name = ?, label = ? WHERE id = ?",
                         (new_key, new_label if new_label != new_key else None, kid))
            if new_key != old_key:
                conn.execute("INSERT OR REPLACE INTO kp_aliases (alias, kp_id) VALUES (?, ?)", (old_key, kid))
            self.store.bump()

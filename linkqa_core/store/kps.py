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
        """KPs named by at least one seed (kept per data version, see :meth:`Store.counts`)."""
        return self.store.counts()["kps"]

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
        # one probe of the links' KP index per KP, in name order: no list of every link's KP
        return [r[0] for r in self.store.query(
            "SELECT name FROM kps k WHERE EXISTS (SELECT 1 FROM seed_kps l WHERE l.kp_id = k.id) ORDER BY name")]

    # -- frequencies, kept per data version -------------------------------------------------

    def frequencies(self) -> tuple[np.ndarray, np.ndarray]:
        """``(kp_ids, seeds naming each)`` of every KP in use, most frequent first (ties by id).

        One walk of the links' KP index (no join, no sort of links: 0.2 s at 1M seeds),
        kept per data version (:meth:`Store._memo`): the KP table, the frequency chart and
        the quality measures all start from it. The arrays are shared: do not modify them.
        """
        return self.store._memo("kp_frequencies", self._frequencies, keep=True)

    def _frequencies(self) -> tuple[np.ndarray, np.ndarray]:
        with self.store.reading() as conn:
            ids_text, n_text = conn.execute(
                "SELECT group_concat(kp_id), group_concat(n) FROM"
                " (SELECT kp_id, count(*) AS n FROM seed_kps GROUP BY kp_id)").fetchone()
        ids, n = _ints(ids_text), _ints(n_text)
        order = np.lexsort((ids, -n))
        ids, n = ids[order], n[order]
        ids.flags.writeable = False
        n.flags.writeable = False
        return ids, n

    def frequency_histogram(self) -> list[tuple[int, int]]:
        """``(seeds naming a KP, how many KPs)``, by frequency: the KP page's chart."""
        _, n = self.frequencies()
        values, counts = np.unique(n, return_counts=True)
        return [(int(v), int(c)) for v, c in zip(values.tolist(), counts.tolist())]

    def _top(self, limit: int) -> list[tuple[int, str, str, int]]:
        """``(id, key, label, seeds)`` of the ``limit`` most frequent KPs, ties by key."""
        ids, n = self.frequencies()
        if not ids.size or limit <= 0:
            return []
        # every KP as frequent as the limit-th one, so that ties are broken by key as before
        cut = int(n[min(limit, n.size) - 1])
        take = int(np.searchsorted(-n, -cut, side="right"))
        chosen = ids[:take].tolist()
        freq = dict(zip(chosen, n[:take].tolist()))
        names = dict(zip(*self._names(ids[:take])))
        rows = [(kid, *names[kid], freq[kid]) for kid in chosen if kid in names]
        rows.sort(key=lambda r: (-r[3], r[1]))
        return rows[:limit]

    def table(self, *, limit: int | None = None, search: str | None = None) -> list[dict[str, Any]]:
        """KPs with frequency, dominant discipline and mean difficulty, most frequent first.

        ``search`` matches the key or the label, case-insensitively. The KPs are chosen
        first (the most frequent from :meth:`frequencies`, or those whose name matches),
        then only their own links are read, through the KP index: a top-100 table reads
        the seeds of 100 KPs, not the join of every link with its seed.
        """
        if search:
            rows = self.store.query(
                "SELECT k.id, k.name, coalesce(k.label, k.name),"
                " (SELECT count(*) FROM seed_kps l WHERE l.kp_id = k.id) AS freq"
                " FROM kps k WHERE (k.name LIKE ? OR k.label LIKE ?) AND freq > 0"
                " ORDER BY freq DESC, k.name" + (" LIMIT ?" if limit else ""),
                [f"%{search}%", f"%{search}%", *([int(limit)] if limit else [])])
            chosen = [(int(r[0]), r[1], r[2], int(r[3])) for r in rows]
        else:
            chosen = self._top(int(limit) if limit else len(self.frequencies()[0]))
        if not chosen:
            return []
        attrs = self.store.seeds.attributes()
        disciplines, disc, diff = attrs["disciplines"], attrs["discipline"], attrs["difficulty"]
        rids_of = self._seed_rids([kid for kid, _, _, _ in chosen])
        out = []
        for kid, key, label, freq in chosen:
            rids = rids_of.get(kid, np.zeros(0, dtype=np.int64))
            rids = rids[rids < disc.size]
            d = np.bincount(disc[rids], minlength=len(disciplines)) if rids.size else np.zeros(0, np.int64)
            known = diff[rids]
            known = known[~np.isnan(known)]
            # the main discipline: most seeds, ties by name (disciplines are sorted)
            main = disciplines[int(np.argmax(d))] if d.size and d.max() > 0 else None
            out.append({"id": kid, "name": label, "key": key, "freq": freq,
                        "mean_difficulty": float(known.mean()) if known.size else None,
                        "discipline": main, "n_disciplines": int((d > 0).sum())})
        return out

    def _seed_rids(self, kp_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The seeds naming each KP, read from the links' KP index only."""
        out: dict[int, np.ndarray] = {}
        ids = [int(k) for k in kp_ids]
        with self.store.reading() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                for kid, text in conn.execute(
                        f"SELECT kp_id, group_concat(seed_rid) FROM seed_kps WHERE kp_id IN ({','.join('?' * len(chunk))})"
                        " GROUP BY kp_id", chunk):
                    out[int(kid)] = _ints(text)
        return out

    def quality_counts(self, *, top: int = 200, per_discipline: int = 10, min_kps: int = 2,
                       max_kps: int = 8, by_discipline: bool = True) -> dict[str, Any]:
        """The counts behind :class:`~linkqa_core.kps.quality.KPQuality`, by SQL aggregates
        over the stored links (no re-extraction): KPs are counted by key, shown by label.

        Keys: ``seeds``, ``kps``, ``links``, ``kps_per_seed_min``/``_max``/``_mean``
        (over every seed, those without KPs too), ``seeds_outside_bounds`` (fewer than
        ``min_kps`` or more than ``max_kps``), ``singletons`` (KPs named by one seed),
        ``multiword`` (KPs of two or more words), ``top`` (``(key, label, seeds)`` of the
        ``top`` most frequent KPs) and ``top_by_discipline`` (discipline -> the
        ``per_discipline`` KPs its seeds name most, as ``(label, seeds)``; left empty
        with ``by_discipline=False``: it joins every link with its seed, seconds at 1M
        seeds, so the studio asks :meth:`top_by_discipline` only when it is shown).
        """
        spectrum = self.store._memo("kps_per_seed", self._kps_per_seed, keep=True)
        seeds = int(self.store.counts()["seeds"])
        with_kps = sum(c for _, c in spectrum)
        per_seed = ([(0, seeds - with_kps)] if seeds > with_kps else []) + spectrum
        links = sum(k * c for k, c in per_seed)
        ids, n = self.frequencies()
        multiword = self.store._memo("kps_multiword", lambda: int(self.store.scalar(
            "SELECT count(*) FROM kps k WHERE instr(k.name, ' ') > 0"
            " AND EXISTS (SELECT 1 FROM seed_kps l WHERE l.kp_id = k.id)") or 0), keep=True)
        return {
            "seeds": seeds, "kps": int(ids.size), "links": int(links),
            "kps_per_seed_min": int(per_seed[0][0]) if per_seed else 0,
            "kps_per_seed_max": int(per_seed[-1][0]) if per_seed else 0,
            "kps_per_seed_mean": links / seeds if seeds else 0.0,
            "seeds_outside_bounds": int(sum(c for k, c in per_seed if k < min_kps or k > max_kps)),
            "singletons": int((n == 1).sum()), "multiword": multiword,
            "top": [(key, label, f) for _, key, label, f in self._top(int(top))],
            "top_by_discipline": self.top_by_discipline(per_discipline) if by_discipline else {},
        }

    def _kps_per_seed(self) -> list[tuple[int, int]]:
        """``(KPs, seeds with that many)`` over the seeds that have KPs, fewest first: one
        walk of the links in seed order (their primary key), no temporary b-tree of links."""
        return [(int(k), int(c)) for k, c in self.store.query(
            "SELECT n, count(*) FROM (SELECT count(*) AS n FROM seed_kps GROUP BY seed_rid) GROUP BY n ORDER BY n")]

    def top_by_discipline(self, per_discipline: int = 10) -> dict[str, list[tuple[str, int]]]:
        """discipline -> its ``per_discipline`` most named KPs ``(label, seeds)``, kept per data version."""
        return self.store._memo(f"top_by_discipline:{int(per_discipline)}",
                                lambda: self._top_by_discipline(int(per_discipline)), keep=True)

    def _top_by_discipline(self, per_discipline: int) -> dict[str, list[tuple[str, int]]]:
        # (discipline, KP) pairs counted with numpy over the link arrays and each seed's
        # discipline: the SQL join of every link with its seed row took 20 s at 1M seeds
        attrs = self.store.seeds.attributes()
        disciplines, disc = attrs["disciplines"], attrs["discipline"]
        links = self.link_arrays()
        links = links[links[:, 0] < disc.size]
        if not links.size or not disciplines:
            return {}
        kp_ids, kp_index = np.unique(links[:, 1], return_inverse=True)
        pair = disc[links[:, 0]].astype(np.int64) * kp_ids.size + kp_index
        pairs, counts = np.unique(pair, return_counts=True)
        d_of, k_of = pairs // kp_ids.size, kp_ids[pairs % kp_ids.size]
        names = dict(zip(*self._names(k_of)))
        out: dict[str, list[tuple[str, int]]] = {}
        for di in np.unique(d_of).tolist():
            sel = np.nonzero(d_of == di)[0]
            # enough candidates to break ties at the cut by key
            cut = np.sort(counts[sel])[::-1][min(per_discipline, sel.size) - 1]
            cand = sel[counts[sel] >= cut]
            ranked = sorted(((int(counts[j]), names[int(k_of[j])]) for j in cand), key=lambda x: (-x[0], x[1][0]))
            out[disciplines[di]] = [(label, n) for n, (_, label) in ranked[:per_discipline]]
        return out

    def _names(self, kp_ids: np.ndarray) -> tuple[list[int], list[tuple[str, str]]]:
        """``(ids, (key, label) of each)`` of the KPs asked for that exist."""
        ids_out: list[int] = []
        names: list[tuple[str, str]] = []
        ids = sorted({int(k) for k in kp_ids.tolist()})
        for i in range(0, len(ids), 30_000):
            chunk = ids[i:i + 30_000]
            for kid, key, label in self.store.query(
                    f"SELECT id, name, coalesce(label, name) FROM kps WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk):
                ids_out.append(int(kid))
                names.append((key, label))
        return ids_out, names

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

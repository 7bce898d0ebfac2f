"""Runs and their paths in the database: a saved sample, its bundles and its coverage ledger."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import NotFoundError
from ..records import Path, Run
from .database import dumps, loads

if TYPE_CHECKING:
    from .database import Store

__all__ = ["RunStore", "WORKING_STATUSES", "run_lease"]

# statuses a run has only while a process works on it; with no live lease they mean "interrupted"
WORKING_STATUSES = ("synthesizing", "enhancing")
_RUN_FIELDS = {"status", "metrics", "baseline", "name", "config"}
_JSON_FIELDS = {"metrics", "baseline", "config"}


def run_lease(run_id: int) -> str:
    """The lease a process holds while it works on a run (synthesis or enhancement)."""
    return f"run:{run_id}"


def _run(row: Any, *, leased: set[str] | None = None) -> Run:
    d = dict(row)
    status = d["status"]
    if leased is not None and status in WORKING_STATUSES and run_lease(d["id"]) not in leased:
        status = "interrupted"
    return Run(id=d["id"], kind=d["kind"], status=status, config=loads(d["config"], {}) or {}, name=d["name"],
               metrics=loads(d["metrics"]), baseline=loads(d["baseline"]), parent_run=d["parent_run"],
               created_at=d["created_at"], updated_at=d["updated_at"], n_paths=d.get("n_paths") or 0,
               n_items=d.get("n_items") or 0)


def _path(row: Any) -> Path:
    return Path(index=row["idx"], kps=tuple(loads(row["kps"], [])), discipline=row["discipline"] or "Other",
                seed_ids=tuple(loads(row["seed_ids"], [])), link_strength=(),
                id=row["id"], run_id=row["run_id"])


class RunStore:
    """``store.runs``: every query on ``runs``, ``paths`` and ``path_kps``."""

    def __init__(self, store: "Store"):
        self.store = store

    # -- runs ------------------------------------------------------------------------

    def create(self, kind: str, config: dict[str, Any], *, name: str | None = None, status: str = "created",
               parent_run: int | None = None, metrics: dict | None = None, baseline: dict | None = None,
               paths: Sequence[Path] = ()) -> int:
        """A new run (and its paths, in the same transaction); returns its id."""
        now = time.time()
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO runs (kind, name, status, config, metrics, baseline, parent_run, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, name, status, json.dumps(config, sort_keys=True),
                 None if metrics is None else json.dumps(metrics), None if baseline is None else json.dumps(baseline),
                 parent_run, now, now),
            )
            run_id = int(cur.lastrowid)
            if paths:
                self.add_paths(run_id, paths)
        return run_id

    def update(self, run_id: int, **fields: Any) -> None:
        bad = set(fields) - _RUN_FIELDS
        if bad:
            raise ValueError(f"cannot update run fields {sorted(bad)}")
        sets, values = [], []
        for key, value in fields.items():
            sets.append(f"{key} = ?")
            values.append(json.dumps(value, sort_keys=True) if key in _JSON_FIELDS else value)
        sets.append("updated_at = ?")
        values.append(time.time())
        with self.store.transaction() as conn:
            conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*values, run_id))

    def get(self, run_id: int) -> Run:
        """The run, with ``status`` "interrupted" when it says a process works on it but none does."""
        rows = self.store.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise NotFoundError(f"no run {run_id} in {self.store.path}")
        return _run(rows[0], leased=self._leased())

    def stored_status(self, run_id: int) -> str:
        """The status as written, before "interrupted" is derived (which step was cut short)."""
        status = self.store.scalar("SELECT status FROM runs WHERE id = ?", (run_id,))
        if status is None:
            raise NotFoundError(f"no run {run_id} in {self.store.path}")
        return str(status)

    def interrupted_work(self, run_id: int) -> str | None:
        """The working status (``synthesizing``, ``enhancing``) a run was left in by a
        process that died, or ``None`` when the run is not interrupted."""
        status = self.store.scalar("SELECT status FROM runs WHERE id = ?", (run_id,))
        if status in WORKING_STATUSES and run_lease(run_id) not in self._leased():
            return str(status)
        return None

    def list(self, kind: str | None = None) -> list[Run]:
        sql = ("SELECT r.*, (SELECT count(*) FROM paths p WHERE p.run_id = r.id) AS n_paths,"
               " (SELECT count(*) FROM items i WHERE i.run_id = r.id) AS n_items FROM runs r")
        params: tuple = ()
        if kind:
            sql += " WHERE kind = ?"
            params = (kind,)
        leased = self._leased()
        return [_run(r, leased=leased) for r in self.store.query(sql + " ORDER BY r.id", params)]

    def find(self, config_key: str, value: Any, kind: str = "sample") -> int | None:
        """The first run of ``kind`` whose config holds ``value`` under ``config_key``."""
        row = self.store.query(f"SELECT id FROM runs WHERE kind = ? AND json_extract(config, '$.{config_key}') = ?"
                               " ORDER BY id LIMIT 1", (kind, value))
        return int(row[0][0]) if row else None

    def _leased(self) -> set[str]:
        return {r["name"] for r in self.store.leases()}

    # -- paths -----------------------------------------------------------------------

    def add_paths(self, run_id: int, paths: Sequence[Path], *, start: int = 0) -> None:
        """Paths, their bundles and their KP visits (the coverage ledger), in one transaction.

        ``start`` offsets their indices (a run topped up with more paths).
        """
        with self.store.transaction() as conn:
            for p in paths:
                pid = conn.execute(
                    "INSERT INTO paths (run_id, idx, discipline, kps, seed_ids, link_strength) VALUES (?,?,?,?,?,?)",
                    (run_id, start + p.index, p.discipline, dumps(list(p.kps)), json.dumps(list(p.seed_ids)),
                     p.mean_link_strength),
                ).lastrowid
                conn.executemany("INSERT INTO path_kps (path_id, pos, kp_id) VALUES (?,?,?)",
                                 [(pid, pos, int(k)) for pos, k in enumerate(p.kp_ids)])

    def paths(self, run_id: int, *, index: int | None = None) -> list[Path]:
        """The stored paths of a run (or the one at ``index``), in order."""
        self.get(run_id)  # NotFoundError with a clear message
        sql = "SELECT * FROM paths WHERE run_id = ?"
        params: tuple = (run_id,)
        if index is not None:
            sql += " AND idx = ?"
            params += (index,)
        return [_path(r) for r in self.store.query(sql + " ORDER BY idx", params)]

    def paths_by_id(self, path_ids: Sequence[int]) -> dict[int, Path]:
        out: dict[int, Path] = {}
        ids = sorted({int(p) for p in path_ids})
        for k in range(0, len(ids), 900):
            chunk = ids[k:k + 900]
            for r in self.store.query(f"SELECT * FROM paths WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                out[r["id"]] = _path(r)
        return out

    def path_count(self, run_id: int) -> int:
        return int(self.store.scalar("SELECT count(*) FROM paths WHERE run_id = ?", (run_id,)) or 0)

    def next_path_index(self, run_id: int) -> int:
        return int(self.store.scalar("SELECT coalesce(max(idx) + 1, 0) FROM paths WHERE run_id = ?", (run_id,)))

    def kp_visits(self, run_id: int | None = None) -> dict[int, int]:
        """Visits per KP id by the paths of one run, or of every saved run (the coverage ledger)."""
        if run_id is None:
            rows = self.store.query("SELECT kp_id, count(*) FROM path_kps GROUP BY kp_id")
        else:
            rows = self.store.query("SELECT pk.kp_id, count(*) FROM path_kps pk JOIN paths p ON p.id = pk.path_id"
                                    " WHERE p.run_id = ? GROUP BY pk.kp_id", (run_id,))
        return {int(k): int(c) for k, c in rows}

    def cumulative_coverage(self) -> float:
        """Share of today's KPs that some saved run has visited."""
        total = self.store.counts()["kps"]
        if not total:
            return 0.0
        # the visited KPs (distinct, from the path index), each probed in the links' KP index
        seen = self.store.scalar(
            "SELECT count(*) FROM (SELECT DISTINCT kp_id FROM path_kps) p"
            " WHERE EXISTS (SELECT 1 FROM seed_kps l WHERE l.kp_id = p.kp_id)")
        return round(seen / total, 4)

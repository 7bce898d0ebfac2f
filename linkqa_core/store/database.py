"""The one SQLite file: connection rules, schema migrations, transactions.

Every stage reads and writes through :class:`Store`. It owns the connection rules in
one place (as datasette does): WAL mode, a busy time-out, one re-entrant lock so that a
connection opened with ``check_same_thread=False`` can be shared by Streamlit's script
threads, and ``transaction()`` so that a command leaves the database as it was before
it or as after it, never between.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import sqlite_utils

from ..errors import InputError, NotFoundError
from ..records import Seed

__all__ = ["Store", "seed_row", "default_db_path", "SCHEMA_VERSION", "GRAPH_VERSION"]

DEFAULT_DB = Path("data") / "linkqa.db"


def default_db_path() -> Path:
    """``LINKQA_DB`` if set, else ``data/linkqa.db`` under the working directory."""
    env = os.environ.get("LINKQA_DB")
    return Path(env) if env else DEFAULT_DB


# Each entry migrates from version i to i+1. Never edit a released entry: append.
MIGRATIONS: list[str] = [
    # 1: seeds, knowledge points, runs, paths, bundles
    """
    CREATE TABLE IF NOT EXISTS seeds (
        rid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        options TEXT,
        answer_letter TEXT,
        discipline TEXT NOT NULL,
        subject TEXT,
        difficulty REAL,
        difficulty_estimated INTEGER NOT NULL DEFAULT 0,
        source TEXT,
        metadata TEXT,
        added_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS seeds_discipline ON seeds(discipline);
    CREATE TABLE IF NOT EXISTS kps (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE IF NOT EXISTS kp_aliases (
        alias TEXT PRIMARY KEY,
        kp_id INTEGER NOT NULL REFERENCES kps(id)
    );
    CREATE TABLE IF NOT EXISTS seed_kps (
        seed_rid INTEGER NOT NULL,
        kp_id INTEGER NOT NULL,
        PRIMARY KEY (seed_rid, kp_id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS seed_kps_kp ON seed_kps(kp_id);
    CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT,
        status TEXT NOT NULL,
        config TEXT NOT NULL,
        metrics TEXT,
        baseline TEXT,
        parent_run INTEGER,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS paths (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        idx INTEGER NOT NULL,
        discipline TEXT,
        kps TEXT NOT NULL,
        seed_ids TEXT NOT NULL,
        link_strength REAL,
        UNIQUE (run_id, idx)
    );
    CREATE TABLE IF NOT EXISTS path_kps (
        path_id INTEGER NOT NULL,
        pos INTEGER NOT NULL,
        kp_id INTEGER NOT NULL,
        PRIMARY KEY (path_id, pos)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS path_kps_kp ON path_kps(kp_id);
    """,
    # 2: LLM calls, request cache, generated items
    """
    CREATE TABLE IF NOT EXISTS llm_cache (
        key TEXT PRIMARY KEY,
        response TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS llm_calls (
        id INTEGER PRIMARY KEY,
        run_id INTEGER,
        stage TEXT,
        key TEXT,
        endpoint TEXT,
        model TEXT,
        status TEXT NOT NULL,
        cached INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 1,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        reasoning_tokens INTEGER,
        latency_s REAL,
        error TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS llm_calls_run ON llm_calls(run_id);
    CREATE TABLE IF NOT EXISTS items (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        path_id INTEGER,
        parent_id INTEGER,
        slot TEXT NOT NULL,
        status TEXT NOT NULL,
        question TEXT,
        options TEXT,
        answer TEXT,
        solution TEXT,
        kps_used TEXT,
        discipline TEXT,
        difficulty REAL,
        seed_ids TEXT,
        model TEXT,
        reasoning TEXT,
        raw TEXT,
        gate_reason TEXT,
        operation TEXT,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (run_id, slot)
    );
    CREATE INDEX IF NOT EXISTS items_run_status ON items(run_id, status);
    """,
    # 3: the discipline index cost a third of ingest speed and no query needs it
    """
    DROP INDEX IF EXISTS seeds_discipline;
    """,
    # 4: version counters, so caches know when what they were built from changed
    """
    CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
# seeds, seed–KP links, KP names and aliases: everything the KP graph is built from
GRAPH_VERSION = "kp_graph"


class Store:
    """A LinkQA database file.

    >>> store = Store(":memory:")
    >>> store.counts()["seeds"]
    0
    """

    def __init__(self, path: str | Path | None = None, *, timeout: float = 30.0):
        path = default_db_path() if path is None else path
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            if Path(self.path).exists() and Path(self.path).stat().st_size > 0:
                with open(self.path, "rb") as fh:
                    if not fh.read(16).startswith(b"SQLite format 3"):
                        raise InputError(f"{self.path} is not a LinkQA database (not an SQLite file)")
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            self.path, timeout=timeout, check_same_thread=False, isolation_level=None
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys=ON")
        # 16 KB pages for a new file (an existing one keeps its size): a seed row is ~0.8 KB,
        # and a million-row ingest spends a quarter less on inserts and commit than with 4 KB
        # pages. It has to be set before the first table and before WAL mode.
        self.conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        # 256 MB page cache at most (grown on demand): random-id index inserts of a
        # million-row ingest thrash the 2 MB default
        self.conn.execute("PRAGMA cache_size=-262144")
        self.db = sqlite_utils.Database(self.conn)
        self._depth = 0
        self.migrate()

    # -- connection rules -------------------------------------------------------------

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing; nests (inner blocks join the outer one)."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self._depth = 0
                self.conn.execute("ROLLBACK")
                raise
            else:
                self._depth = 0
                self.conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | dict = ()) -> list[sqlite3.Row]:
        with self.lock:
            cur = self.conn.execute(sql, params)
            return cur.fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | dict = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def migrate(self) -> None:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise InputError(
                    f"{self.path} was written by a newer LinkQA Studio (schema {version} > {SCHEMA_VERSION})"
                )
            for i in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[i].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={i + 1}")

    def bump(self, key: str = GRAPH_VERSION) -> None:
        """Count a change of what ``key`` depends on (inside the writer's transaction)."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, 1)"
                         " ON CONFLICT(key) DO UPDATE SET value = value + 1", (key,))

    def version(self, key: str = GRAPH_VERSION) -> int:
        """How often ``key``'s inputs changed; cheap enough for every Streamlit rerun."""
        return int(self.scalar("SELECT value FROM meta WHERE key = ?", (key,)) or 0)

    @property
    def schema_version(self) -> int:
        return int(self.scalar("PRAGMA user_version"))

    # -- counts -----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """How much each stage holds, for the home page and ``runs``."""
        return {
            "seeds": self.scalar("SELECT count(*) FROM seeds"),
            "kps": self.scalar("SELECT count(DISTINCT kp_id) FROM seed_kps"),
            "seed_kps": self.scalar("SELECT count(*) FROM seed_kps"),
            "seeds_with_kps": self.scalar("SELECT count(DISTINCT seed_rid) FROM seed_kps"),
            "runs": self.scalar("SELECT count(*) FROM runs"),
            "paths": self.scalar("SELECT count(*) FROM paths"),
            "items": self.scalar("SELECT count(*) FROM items"),
            "accepted_items": self.scalar("SELECT count(*) FROM items WHERE status='accepted'"),
        }

    # -- seeds ------------------------------------------------------------------------

    def add_seeds(self, seeds: Iterable[Seed]) -> tuple[int, int]:
        """Insert seeds, skipping ids already stored; returns ``(added, duplicates)``.

        Call inside :meth:`transaction` to make a whole file one unit of work.
        """
        now = time.time()
        return self.add_seed_rows(
            seed_row(s.id, s.question, s.answer, s.options, s.answer_letter, s.discipline, s.subject,
                     s.difficulty, s.difficulty_estimated, s.source, s.metadata, now)
            for s in seeds
        )

    def add_seed_rows(self, rows: Iterable[tuple]) -> tuple[int, int]:
        """Insert rows made by :func:`seed_row`; the bulk path of ingest, which builds
        rows without a :class:`Seed` in between (possibly in another process)."""
        with self.transaction() as conn:
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
                self.bump()
        return added, n - added

    def seed_count(self) -> int:
        return int(self.scalar("SELECT count(*) FROM seeds"))

    def iter_seeds(self, *, where: str = "", params: Sequence[Any] = (), batch: int = 5000) -> Iterator[tuple[int, Seed]]:
        """Yield ``(rid, Seed)`` in rid order, in batches so that a million seeds fit."""
        last = 0
        clause = f"AND ({where})" if where else ""
        while True:
            rows = self.query(
                f"SELECT * FROM seeds WHERE rid > ? {clause} ORDER BY rid LIMIT ?",
                (last, *params, batch),
            )
            if not rows:
                return
            for row in rows:
                yield row["rid"], seed_from_row(row)
            last = rows[-1]["rid"]

    def get_seeds(self, ids: Sequence[str]) -> list[Seed]:
        """Seeds by content id, in the order asked."""
        found: dict[str, Seed] = {}
        ids = list(ids)
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            marks = ",".join("?" * len(chunk))
            for row in self.query(f"SELECT * FROM seeds WHERE id IN ({marks})", chunk):
                found[row["id"]] = seed_from_row(row)
        return [found[i] for i in ids if i in found]

    def seed_ids_by_rid(self, rids: Sequence[int]) -> list[str]:
        out: dict[int, str] = {}
        rids = [int(r) for r in rids]
        for i in range(0, len(rids), 900):
            chunk = rids[i : i + 900]
            marks = ",".join("?" * len(chunk))
            for row in self.query(f"SELECT rid, id FROM seeds WHERE rid IN ({marks})", chunk):
                out[row[0]] = row[1]
        return [out[r] for r in rids if r in out]

    # -- runs -------------------------------------------------------------------------

    def create_run(self, kind: str, config: dict[str, Any], *, name: str | None = None,
                   status: str = "created", parent_run: int | None = None) -> int:
        now = time.time()
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO runs (kind, name, status, config, parent_run, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind, name, status, json.dumps(config, sort_keys=True), parent_run, now, now),
            )
            return int(cur.lastrowid)

    def update_run(self, run_id: int, **fields: Any) -> None:
        allowed = {"status", "metrics", "baseline", "name", "config"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update run fields {sorted(bad)}")
        sets, values = [], []
        for key, value in fields.items():
            sets.append(f"{key} = ?")
            values.append(json.dumps(value, sort_keys=True) if key in {"metrics", "baseline", "config"} else value)
        sets.append("updated_at = ?")
        values.append(time.time())
        with self.transaction() as conn:
            conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*values, run_id))

    def get_run(self, run_id: int) -> dict[str, Any]:
        rows = self.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise NotFoundError(f"no run {run_id} in {self.path}")
        return run_from_row(rows[0])

    def list_runs(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT r.*, (SELECT count(*) FROM paths p WHERE p.run_id = r.id) AS n_paths,"
            " (SELECT count(*) FROM items i WHERE i.run_id = r.id) AS n_items"
            " FROM runs r"
        )
        params: tuple = ()
        if kind:
            sql += " WHERE kind = ?"
            params = (kind,)
        rows = self.query(sql + " ORDER BY r.id", params)
        out = []
        for row in rows:
            run = run_from_row(row)
            run["n_paths"] = row["n_paths"]
            run["n_items"] = row["n_items"]
            out.append(run)
        return out


_dumps = json.JSONEncoder(ensure_ascii=False).encode  # one encoder: a third cheaper per row than json.dumps

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
    """One seed as the tuple :meth:`Store.add_seed_rows` inserts (the column order of ``_INSERT_SEED``)."""
    return (
        id, question, answer,
        _dumps(options) if options is not None else None,  # a tuple encodes as a list
        answer_letter, discipline, subject, difficulty, int(difficulty_estimated), source,
        _dumps(metadata) if metadata else None,
        added_at,
    )


PAGE_SIZE = 16384

_INSERT_SEED = (
    "INSERT OR IGNORE INTO seeds (id, question, answer, options, answer_letter, discipline, subject,"
    " difficulty, difficulty_estimated, source, metadata, added_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
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


def run_from_row(row: sqlite3.Row) -> dict[str, Any]:
    run = dict(row)
    for key in ("config", "metrics", "baseline"):
        run[key] = json.loads(run[key]) if run.get(key) else None
    return run

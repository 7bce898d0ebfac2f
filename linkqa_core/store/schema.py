"""The database schema, as an append-only list of migrations.

Migration ``i`` takes a database from version ``i`` to ``i + 1`` (SQLite's
``user_version``). The first four were SQL scripts and stay so, byte for byte, because
databases in the field went through them; later ones use sqlite-utils' table API. A
script is cut into statements with :func:`sqlite3.complete_statement`, so a semicolon
inside a string or a trigger body cannot split one. Never edit a released entry: append.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Union

import sqlite_utils

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "run_script"]

Migration = Union[str, Callable[[sqlite_utils.Database], None]]


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Execute every statement of ``script`` on ``conn``, inside the caller's transaction.

    ``executescript`` would commit the transaction first, so the statements are cut out
    one by one at the points where SQLite itself says a statement is complete.
    """
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip().strip(";").strip():
                conn.execute(pending)
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending.strip()[:80]!r}")


def _v5_labels_edits_leases_modes(db: sqlite_utils.Database) -> None:
    """KP display labels, edit records, per-call cost, leases and structured-output modes."""
    # kps.name is the matching key (normalised); label is the name as a curator wrote it
    db["kps"].add_column("label", str)
    # a curator's edit keeps what the model wrote
    db["items"].add_column("original", str)
    db["items"].add_column("edited_at", float)
    db["llm_calls"].add_column("usd", float)
    # who is doing long work on the file (an ingest, a run's synthesis): shown to a second
    # writer, and held as a lease so that two processes never work on one run at once
    db["leases"].create(
        {"name": str, "pid": int, "host": str, "what": str, "started_at": float, "heartbeat_at": float},
        pk="name", not_null={"name", "pid", "host", "what", "started_at"},
    )
    # the structured-output mode an endpoint settled on, per model
    db["llm_modes"].create(
        {"endpoint": str, "model": str, "mode": str, "detail": str, "updated_at": float},
        pk=("endpoint", "model"), not_null={"endpoint", "model", "mode", "updated_at"},
    )


def _v6_seed_id_index(db: sqlite_utils.Database) -> None:
    """``seeds.id`` unique through a named index, ``seeds_id``, instead of the column's own
    UNIQUE: ingest into an empty table drops the index and builds it once at the end
    (``SeedStore.bulk``), which at a million rows is twice as fast as keeping a random-order
    index up to date row by row. Same columns, same rids, same rows."""
    run_script(db.conn, """
    CREATE TABLE seeds_v6 (
        rid INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
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
    INSERT INTO seeds_v6 (rid, id, question, answer, options, answer_letter, discipline, subject, difficulty,
                          difficulty_estimated, source, metadata, added_at)
        SELECT rid, id, question, answer, options, answer_letter, discipline, subject, difficulty,
               difficulty_estimated, source, metadata, added_at FROM seeds;
    DROP TABLE seeds;
    ALTER TABLE seeds_v6 RENAME TO seeds;
    CREATE UNIQUE INDEX seeds_id ON seeds(id);
    """)


def _v7_estimated_usage(db: sqlite_utils.Database) -> None:
    """Calls whose token counts were estimated from the text (the server sent no ``usage``)."""
    db["llm_calls"].add_column("estimated", int, not_null_default=0)


def _v8_file_id(db: sqlite_utils.Database) -> None:
    """A random number naming this database file, kept in ``meta``: results derived from the
    data and kept beside the file (:mod:`.derived`) are filed under it and the data version,
    so a new database made at the same path (whose version counter starts again) never
    reads the old one's. A copy of the file keeps the number, and with it its kept results."""
    db.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('file_id', random() & 9007199254740991)")


MIGRATIONS: list[Migration] = [
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
    # 5: KP labels, edit records, per-call cost, leases, structured-output modes
    _v5_labels_edits_leases_modes,
    # 6: the seed id's unique index by name, so a bulk ingest can build it once
    _v6_seed_id_index,


    # 7: token counts estimated because the server sent no usage
    _v7_estimated_usage,
    # 8: a number naming the file, for the results kept beside it
    _v8_file_id,
]

SCHEMA_VERSION = len(MIGRATIONS)

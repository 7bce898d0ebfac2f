"""The one SQLite file: connections, transactions, damage checks, leases, version counters.

:class:`Store` owns the connection rules in one place, as datasette does:

- **One writer at a time.** Writes go through one connection per Store, inside
  :meth:`Store.transaction` (``BEGIN IMMEDIATE`` with a busy time-out), guarded by a lock
  so that the threads of one process take turns. A second process that cannot get the
  write lock within the time-out gets :class:`~linkqa_core.errors.DatabaseBusy` naming
  who is writing ("ingest of mmlu.jsonl since 14:02, pid 4242"), read from the leases
  the long writers hold (:meth:`Store.lease`), never a raw "database is locked".
- **Readers never take the write lock.** Reads run on per-thread connections in WAL mode,
  so a page, ``runs`` or ``export`` reads while an ingest writes; opening a database only
  writes when it has to migrate. A thread inside a transaction reads through the writer,
  so it sees its own uncommitted rows.
- **Damage is detected.** Opening checks the file's header against its size and reads the
  schema; the first write runs ``PRAGMA quick_check`` (files up to :data:`FULL_CHECK_MAX_BYTES`).
  A damaged file is refused for writing with one message saying what is wrong and how to
  recover; reads still work where SQLite can read.

The SQL of each kind of data lives beside this module, one module per table group
(:mod:`.seeds`, :mod:`.kps`, :mod:`.runs`, :mod:`.items`, :mod:`.llm`), reached as
``store.seeds``, ``store.kps``, ``store.runs``, ``store.items``, ``store.llm`` and
``store.derived``.
This module is over ~500 lines because the connection rules above (writer, readers,
damage, leases) share one lock and one state and are read together.

>>> store = Store(":memory:")
>>> store.counts()["seeds"]
0
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import struct
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import sqlite_utils

from ..errors import DamagedDatabase, DatabaseBusy, InputError, LeaseHeld
from .schema import MIGRATIONS, SCHEMA_VERSION, run_script

__all__ = ["Store", "default_db_path", "SCHEMA_VERSION", "GRAPH_VERSION", "PAGE_SIZE", "FULL_CHECK_MAX_BYTES",
           "Lease"]

DEFAULT_DB = Path("data") / "linkqa.db"
# seeds, seed–KP links, KP names and aliases: everything the KP graph is built from
GRAPH_VERSION = "kp_graph"
# 16 KB pages for a new file: a seed row is ~0.8 KB, and a million-row ingest spends a
# quarter less on inserts and commit than with 4 KB pages
PAGE_SIZE = 16384
# PRAGMA quick_check reads every page (~1.2 ms per MB here); above this size the first
# write checks the header and schema only, and `linkqa check` does the full check
FULL_CHECK_MAX_BYTES = int(os.environ.get("LINKQA_FULL_CHECK_MAX_BYTES", 2 << 30))

_HEADER = b"SQLite format 3\x00"


def default_db_path() -> Path:
    """``LINKQA_DB`` if set, else ``data/linkqa.db`` under the working directory."""
    env = os.environ.get("LINKQA_DB")
    return Path(env) if env else DEFAULT_DB


def is_corruption(err: BaseException) -> bool:
    """True for SQLite's "malformed" and "not a database" errors (not for locks or SQL bugs)."""
    name = getattr(err, "sqlite_errorname", "") or ""
    if name:
        return name.split("_", 2)[:2] == ["SQLITE", "CORRUPT"] or name == "SQLITE_NOTADB"
    text = str(err).lower()
    return type(err) is sqlite3.DatabaseError and ("malformed" in text or "not a database" in text)


def _is_busy(err: BaseException) -> bool:
    name = getattr(err, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(err).lower()


# Files this process has open through a Store, by (device, inode), with how many Stores.
# POSIX drops every lock a process holds on a file when it closes ANY descriptor of that
# file, so reading a database's header with open() while SQLite has it open would let
# another process delete the WAL under our connections (sqlite.org/howtocorrupt.html 2.2).
# The raw header is therefore only read when no Store of this process holds the file.
_OPEN_FILES: dict[tuple[int, int], int] = {}
_OPEN_LOCK = threading.Lock()


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # stat opens no descriptor
    except OSError:
        return None
    return st.st_dev, st.st_ino


def header_problem(path: str) -> str | None:
    """What is wrong with an SQLite file's first page, judged from the file alone, or None.

    Catches a file that is not SQLite, a truncated file (fewer pages than its header
    counts) and an impossible page size. Call it only while this process has no SQLite
    connection to the file (see ``_OPEN_FILES``).
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if not head.startswith(_HEADER):
        return "is not an SQLite database (its first bytes are not an SQLite header)"
    if len(head) < 100:
        return f"is truncated: {size} bytes, shorter than an SQLite header"
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"has a damaged header (page size {page_size})"
    change, pages, valid_for = struct.unpack(">I", head[24:28])[0], struct.unpack(">I", head[28:32])[0], \
        struct.unpack(">I", head[92:96])[0]
    if change == valid_for and pages and size < pages * page_size:
        return (f"is truncated: its header counts {pages:,} pages of {page_size:,} bytes "
                f"({pages * page_size:,} bytes) but the file holds {size:,}")
    return None


def damage_message(path: str, what: str, *, readable: bool = True) -> str:
    """The one message a curator gets for a damaged database: what, how to recover, what still
    works (``readable=False``: the file is refused at open, so reading does not work either)."""
    what = " ".join(what.split())
    still = ("Reading and export may still work on the damaged file (linkqa export --run N --out FILE)."
             if readable else "It cannot be opened for reading either; work from recovered.db.")
    return (f"{path} is damaged ({what}): it is refused for writing. To recover what SQLite can read: "
            f"sqlite3 {path} .recover | sqlite3 recovered.db, then use recovered.db. {still}")


class _ReaderSlot:
    """A thread's claim on a pooled reader connection; returned to the pool when the thread ends."""

    __slots__ = ("conn", "db", "__weakref__")

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.db = sqlite_utils.Database(conn, execute_plugins=False)


class Lease:
    """Proof that this process holds a named lease (see :meth:`Store.lease`)."""

    def __init__(self, store: "Store", name: str, what: str):
        self.store, self.name, self.what = store, name, what

    def beat(self) -> None:
        """Say "still alive" (for holders on other hosts, whose pid cannot be checked)."""
        with self.store.transaction() as conn:
            conn.execute("UPDATE leases SET heartbeat_at = ? WHERE name = ? AND pid = ?",
                         (time.time(), self.name, os.getpid()))


class Store:
    """A LinkQA database file.

    ``timeout`` is how long a writer waits for another writer before
    :class:`~linkqa_core.errors.DatabaseBusy`.
    """

    def __init__(self, path: str | Path | None = None, *, timeout: float = 30.0):
        from .derived import DerivedStore
        from .items import ItemStore
        from .kps import KPStore
        from .llm import LLMStore
        from .runs import RunStore
        from .seeds import SeedStore

        path = default_db_path() if path is None else path
        self.path = str(path)
        self.timeout = float(timeout)
        self.memory = self.path == ":memory:"
        self.damage: str | None = None
        self._checked = False
        self._write_lock = threading.RLock()
        self._owner: int | None = None
        self._local = threading.local()
        self._idle: list[sqlite3.Connection] = []
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        self._memos: dict[tuple[str, str], tuple[int, Any]] = {}
        self._file_id: int | None = None
        self._memo_lock = threading.Lock()
        self._memo_locks: dict[tuple[str, str], threading.Lock] = {}
        fresh = True
        if not self.memory:
            file = Path(self.path)
            if file.is_dir():
                raise InputError(f"{self.path} is a directory, not a LinkQA database")
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise InputError(f"cannot create the folder of {self.path} ({err.strerror or err})") from None
            if file.exists() and file.stat().st_size > 0:
                fresh = False
                with _OPEN_LOCK:
                    held = _OPEN_FILES.get(_file_id(self.path) or (-1, -1), 0) > 0
                problem = None if held else header_problem(self.path)
                if problem is not None:
                    if problem.startswith("is not an SQLite"):
                        raise InputError(f"{self.path} is not a LinkQA database (not an SQLite file)")
                    raise DamagedDatabase(damage_message(self.path, problem.removeprefix("is "), readable=False))
        try:
            self._writer = self._connect(check_same_thread=False)
            self._register()
            if fresh:
                # page size must be set before the first table and before WAL mode
                self._writer.execute(f"PRAGMA page_size={PAGE_SIZE}")
            if not self.memory and self._writer.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._writer.execute("PRAGMA journal_mode=WAL")
            self.db = sqlite_utils.Database(self._writer, execute_plugins=False)
            version = self._schema_version_read()
        except sqlite3.DatabaseError as err:
            self.close()
            if is_corruption(err):
                raise DamagedDatabase(damage_message(self.path, str(err), readable=False)) from None
            if _is_busy(err):
                raise DatabaseBusy(self._busy_message()) from None
            raise
        if version > SCHEMA_VERSION:
            self.close()
            raise InputError(f"{self.path} was written by a newer LinkQA Studio (schema {version} > {SCHEMA_VERSION})")
        if version < SCHEMA_VERSION:
            self._migrate()
        self.seeds = SeedStore(self)
        self.kps = KPStore(self)
        self.runs = RunStore(self)
        self.items = ItemStore(self)
        self.llm = LLMStore(self)
        self.derived = DerivedStore(self)

    def __repr__(self) -> str:
        return f"<Store {self.path}>"

    # -- connections -------------------------------------------------------------------

    def _connect(self, *, check_same_thread: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, check_same_thread=check_same_thread,
                               isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        # 256 MB page cache at most (grown on demand): random-id index inserts of a
        # million-row ingest thrash the 2 MB default
        conn.execute("PRAGMA cache_size=-262144")
        return conn

    def _reader(self) -> _ReaderSlot | None:
        """This thread's reader, or None when reads must go through the writer."""
        if self.memory or self._owner == threading.get_ident():
            return None
        slot = getattr(self._local, "slot", None)
        if slot is None:
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect(check_same_thread=False)  # pooled: threads come and go (Streamlit reruns)
                conn.execute("PRAGMA query_only=1")
                self._readers.append(conn)
            slot = _ReaderSlot(conn)
            self._local.slot = slot
            # when the thread ends, its thread-local slot goes, and the connection returns to the pool
            weakref.finalize(slot, _return_reader, weakref.ref(self), conn)
        return slot

    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection to read with: this thread's reader, or the writer inside a transaction."""
        slot = self._reader()
        if slot is not None:
            try:
                yield slot.conn
            except sqlite3.DatabaseError as err:
                raise self._translate(err) from None
            return
        with self._write_lock:
            try:
                yield self._writer
            except sqlite3.DatabaseError as err:
                raise self._translate(err) from None

    # the context managers are plain generators wrapped by name, not decorated, because
    # the mutation tool (scripts/mutation, docs/testing.md) mutates undecorated functions only
    reading = contextmanager(_reading)

    def _translate(self, err: sqlite3.DatabaseError) -> Exception:
        if is_corruption(err):
            self.damage = damage_message(self.path, str(err))
            return DamagedDatabase(self.damage)
        if _is_busy(err):
            return DatabaseBusy(self._busy_message())
        return err

    def _register(self) -> None:
        self._file = None if self.memory else _file_id(self.path)
        if self._file is not None:
            with _OPEN_LOCK:
                _OPEN_FILES[self._file] = _OPEN_FILES.get(self._file, 0) + 1

    def close(self) -> None:
        """Close every connection of this Store (readers of other threads included)."""
        if self._closed:
            return
        self._closed = True
        file = getattr(self, "_file", None)
        if file is not None:
            with _OPEN_LOCK:
                left = _OPEN_FILES.get(file, 0) - 1
                if left > 0:
                    _OPEN_FILES[file] = left
                else:
                    _OPEN_FILES.pop(file, None)
        with self._write_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._readers.clear()
            self._idle.clear()
            writer = getattr(self, "_writer", None)
            if writer is not None:
                writer.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | dict = ()) -> list[sqlite3.Row]:
        """Rows of a read-only query (for tests and ad-hoc inspection; stages use the table modules)."""
        with self.reading() as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | dict = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def rows(self, sql: str, params: Sequence[Any] | dict = ()) -> list[dict[str, Any]]:
        """Rows as dicts, through sqlite-utils' query."""
        slot = self._reader()
        if slot is None:
            with self._write_lock:
                try:
                    return list(self.db.query(sql, params))
                except sqlite3.DatabaseError as err:
                    raise self._translate(err) from None
        try:
            return list(slot.db.query(sql, params))
        except sqlite3.DatabaseError as err:
            raise self._translate(err) from None

    def _schema_version_read(self) -> int:
        # reads the schema too: a garbage-filled file fails here, before anything writes
        self._writer.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return int(self._writer.execute("PRAGMA user_version").fetchone()[0])

    @property
    def schema_version(self) -> int:
        return int(self.scalar("PRAGMA user_version"))

    # -- writing -----------------------------------------------------------------------

    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing; nests (inner blocks join the outer one).

        Waits up to ``timeout`` for another writer (thread or process), then raises
        :class:`~linkqa_core.errors.DatabaseBusy` naming it.
        """
        me = threading.get_ident()
        if self._owner == me:  # nested: the outer block commits or rolls back
            yield self._writer
            return
        if not self._write_lock.acquire(timeout=self.timeout):
            raise DatabaseBusy(self._busy_message(in_process=True))
        try:
            self._ensure_writable()
            try:
                self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                raise self._translate(err) from None
            self._owner = me
            try:
                yield self._writer
            except BaseException as err:
                if self._writer.in_transaction:
                    self._writer.execute("ROLLBACK")
                if isinstance(err, sqlite3.DatabaseError):
                    raise self._translate(err) from None
                raise
            else:
                try:
                    self._writer.execute("COMMIT")
                except sqlite3.DatabaseError as err:
                    if self._writer.in_transaction:
                        self._writer.execute("ROLLBACK")
                    raise self._translate(err) from None
            finally:
                self._owner = None
        finally:
            self._write_lock.release()

    transaction = contextmanager(_transaction)

    def _ensure_writable(self) -> None:
        if self.damage is None and not self._checked:
            self._checked = True
            self.check(full=self.memory or os.path.getsize(self.path) <= FULL_CHECK_MAX_BYTES)
        if self.damage is not None:
            raise DamagedDatabase(self.damage)

    def check(self, *, full: bool = True) -> str | None:
        """Look for damage; returns (and remembers) the message, or None when the file is sound.

        ``full`` runs ``PRAGMA quick_check`` (every page, ~1.2 ms per MB: it also finds a
        truncated file); otherwise only the schema is read. Everything goes through
        SQLite: opening the file ourselves now would drop this process's locks on it.
        """
        try:
            with self._write_lock:
                self._writer.execute("SELECT count(*) FROM sqlite_master").fetchone()
                if full:
                    # one row per problem, or (SQLite 3.4x) one row of lines under "*** in database main ***"
                    found = [" ".join(line.split()) for r in self._writer.execute("PRAGMA quick_check(20)")
                             for line in str(r[0]).splitlines() if line.strip()]
                    if found != ["ok"]:
                        problems = [f for f in found if not f.startswith("***")]
                        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
                        self.damage = damage_message(self.path, f"quick_check: {problems[0] if problems else found[0]}"
                                                                f"{more}")
        except sqlite3.DatabaseError as err:
            if not is_corruption(err):
                raise
            self.damage = damage_message(self.path, str(err))
        return self.damage

    def _migrate(self) -> None:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
            for i in range(version, SCHEMA_VERSION):
                step = MIGRATIONS[i]
                if isinstance(step, str):
                    run_script(conn, step)
                else:
                    step(self.db)
                conn.execute(f"PRAGMA user_version={i + 1}")

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the main file and truncate it (after a bulk write)."""
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- version counters ------------------------------------------------------------

    def bump(self, key: str = GRAPH_VERSION) -> None:
        """Count a change of what ``key`` depends on (inside the writer's transaction)."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, 1)"
                         " ON CONFLICT(key) DO UPDATE SET value = value + 1", (key,))

    def file_id(self) -> int:
        """The random number this file was given when it was made (or migrated): see :mod:`.derived`."""
        if self._file_id is None:
            self._file_id = int(self.scalar("SELECT value FROM meta WHERE key = 'file_id'") or 0)
        return self._file_id

    def version(self, key: str = GRAPH_VERSION) -> int:
        """How often ``key``'s inputs changed; cheap enough for every Streamlit rerun."""
        return int(self.scalar("SELECT value FROM meta WHERE key = ?", (key,)) or 0)

    # -- leases: who does long work on this file -------------------------------------

    def _lease(self, name: str, what: str) -> Iterator[Lease]:
        """Hold the lease ``name`` while the block runs; ``what`` says what for ("ingest of x.jsonl").

        A lease held by a live process raises :class:`~linkqa_core.errors.LeaseHeld`; one
        left by a dead process (killed, crashed) is taken over. A second writer that waits
        too long for the write lock is told the leases held (see :class:`DatabaseBusy`).
        """
        self.acquire_lease(name, what)
        try:
            yield Lease(self, name, what)
        finally:
            self.release_lease(name)

    lease = contextmanager(_lease)

    def acquire_lease(self, name: str, what: str) -> None:
        now = time.time()
        with self.transaction() as conn:
            row = conn.execute("SELECT * FROM leases WHERE name = ?", (name,)).fetchone()
            if row is not None and _alive(row) and row["pid"] != os.getpid():
                raise LeaseHeld(f"{row['what']} is already running in another process "
                                f"(pid {row['pid']} on {row['host']}, since {_clock(row['started_at'])})")
            self.db["leases"].insert({"name": name, "pid": os.getpid(), "host": socket.gethostname(), "what": what,
                                      "started_at": now, "heartbeat_at": now}, replace=True)

    def release_lease(self, name: str) -> None:
        try:
            with self.transaction() as conn:
                conn.execute("DELETE FROM leases WHERE name = ? AND pid = ?", (name, os.getpid()))
        except (DatabaseBusy, DamagedDatabase):
            pass  # a dead holder's lease is taken over by the next one anyway

    def leases(self, *, live_only: bool = True) -> list[dict[str, Any]]:
        """Leases as dicts (``name``, ``pid``, ``host``, ``what``, ``started_at``, ``alive``)."""
        rows = self.query("SELECT * FROM leases ORDER BY started_at")
        out = [dict(r) | {"alive": _alive(r)} for r in rows]
        return [r for r in out if r["alive"]] if live_only else out

    def _busy_message(self, in_process: bool = False) -> str:
        try:
            held = self.leases() if not self._closed else []
        except Exception:  # noqa: BLE001 - the message must come out whatever the file's state
            held = []
        who = "; ".join(f"{r['what']} since {_clock(r['started_at'])}, pid {r['pid']}" for r in held)
        if in_process and not who:
            who = "another task of this process"
        return (f"another process is writing to {self.path} ({who or 'unknown work'}); "
                f"waited {self.timeout:g} s for it, try again when it has finished")

    # -- counts and aggregates kept per data version -------------------------------------

    def _memo(self, name: str, compute: Callable[[], Any], key: str = GRAPH_VERSION, *, keep: bool = False) -> Any:
        """``compute()`` once per version of ``key``'s inputs, kept for this Store's life.

        Aggregates over every seed or link (how many KPs, the frequency spectrum, the
        discipline counts) take seconds at a million seeds and change only when the
        version counter moves (ingest, extraction, merge, rename: every such write bumps
        it in its own transaction), so a page rerun reads one ``meta`` row instead of
        scanning millions. The version is read before computing: a write that lands in
        between leaves the value filed under the older version, and the next call, seeing
        the newer one, computes again. Callers must not mutate what they get.

        ``keep`` also keeps the value beside the database (:meth:`DerivedStore.save_value`), so
        a new process (a studio server started on a ten-million-seed file, where the seed
        summary is a 20 s scan) reads it back instead of computing it again.
        """
        version = self.version(key)
        with self._memo_lock:
            hit = self._memos.get((key, name))
            if hit is not None and hit[0] == version:
                return hit[1]
            lock = self._memo_locks.setdefault((key, name), threading.Lock())
        # one computation at a time per name: a page that needs what the studio's
        # background warm-up is computing waits for it instead of scanning twice
        with lock:
            with self._memo_lock:
                hit = self._memos.get((key, name))
            if hit is not None and hit[0] == version:
                return hit[1]
            value = self._load_or_compute(f"memo:{name}", version, compute) if keep and not self.memory else compute()
            with self._memo_lock:
                self._memos[(key, name)] = (version, value)
        return value

    def kept(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``: a value derived from the seeds and KPs, once per data version, kept beside
        the file for the next process (:meth:`_memo` with ``keep``). For results of stages
        outside the store (merge suggestions) that take seconds over millions of KPs.
        ``compute`` must read only what the version counter covers (seeds, KPs, links).
        Its names are apart from the store's own memos: ``kept("counts", f)`` is ``f``'s value,
        never the seed counts."""
        return self._memo(f"kept:{name}", compute, keep=True)

    def _load_or_compute(self, name: str, version: int, compute: Callable[[], Any]) -> Any:
        found, value = self.derived.load_value(name, version)
        if not found:
            value = compute()
            self.derived.save_value(name, version, value)
        return value

    def counts(self) -> dict[str, int]:
        """How much each stage holds, for the home page and ``runs``.

        Seed and KP counts come from :meth:`_memo` (distinct counts scan every link);
        runs, paths and items are counted live (SQLite counts a table's rows from its
        b-tree pages without reading them, and the accepted items from their index).
        """
        out = dict(self._memo("counts", self._seed_counts, keep=True))
        with self.reading() as conn:
            one = lambda sql: int(conn.execute(sql).fetchone()[0] or 0)  # noqa: E731
            out.update(
                runs=one("SELECT count(*) FROM runs"),
                paths=one("SELECT count(*) FROM paths"),
                items=one("SELECT count(*) FROM items"),
                accepted_items=one("SELECT count(*) FROM items WHERE status='accepted'"),
            )
        return out

    def _seed_counts(self) -> dict[str, int]:
        # each count picks a plan that walks one index in order, with no temporary b-tree:
        # count(DISTINCT seed_rid) would sort 4.9M links by seed through the KP index (4 s
        # at 1M seeds), the DISTINCT sub-select reads them in key order (0.1 s)
        with self.reading() as conn:
            one = lambda sql: int(conn.execute(sql).fetchone()[0] or 0)  # noqa: E731
            return {
                "seeds": one("SELECT count(*) FROM seeds"),
                "kps": one("SELECT count(*) FROM (SELECT DISTINCT kp_id FROM seed_kps)"),
                "seed_kps": one("SELECT count(*) FROM seed_kps"),
                "seeds_with_kps": one("SELECT count(*) FROM (SELECT DISTINCT seed_rid FROM seed_kps)"),
            }


def _return_reader(store_ref: "weakref.ref[Store]", conn: sqlite3.Connection) -> None:
    store = store_ref()
    if store is None or store._closed:
        try:
            conn.close()
        except sqlite3.Error:
            pass
    else:
        store._idle.append(conn)


def _alive(row: Any) -> bool:
    """A lease's holder still runs: its pid exists on this host, or it beat recently elsewhere."""
    if row["host"] == socket.gethostname():
        try:
            os.kill(int(row["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return time.time() - float(row["heartbeat_at"] or row["started_at"]) < 120


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


def dumps(value: Any) -> str:
    """JSON as stored in text columns: UTF-8 kept, one encoder for every table."""
    return json.dumps(value, ensure_ascii=False)


def loads(text: str | None, default: Any = None) -> Any:
    """A JSON text column back, ``default`` when empty or not JSON (a hand-edited row)."""
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default

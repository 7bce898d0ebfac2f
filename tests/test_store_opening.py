"""Opening a database file, the readers' connections and the integrity check: the cases a
mutation run of linkqa_core/store/database.py found no test for (a file this process
already holds, an empty or one-byte file, a folder that cannot be made, page sizes and
big header counters, a lock held by another process, one reader connection a thread,
SQLite's own error text on both connections, the check's first problem and count)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

from linkqa_core.errors import DamagedDatabase, DatabaseBusy, InputError
from linkqa_core.store import Store
from test_store_writes import _corrupt_the_middle, _sqlite_file


def _orphan_index_pages(path: str, indexes: int) -> list[str]:
    """Drop ``indexes`` one-page indexes from the schema but not their pages; returns quick_check's lines."""
    conn = sqlite3.connect(path, isolation_level=None)
    for i in range(indexes):
        conn.execute(f"CREATE TABLE t{i} (x)")
        conn.execute(f"CREATE INDEX t{i}_x ON t{i} (x)")
        conn.execute(f"INSERT INTO t{i} VALUES ('a')")
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("DELETE FROM sqlite_master WHERE type = 'index' AND name LIKE 't%\\_x' ESCAPE '\\'")
    conn.close()
    conn = sqlite3.connect(path)  # a new connection reads the changed schema
    lines = [line for r in conn.execute("PRAGMA quick_check(20)") for line in str(r[0]).splitlines()
             if line.strip() and not line.startswith("***")]
    conn.close()
    return lines


def test_check_names_the_first_problem_and_how_many_more(tmp_path):
    from linkqa_core.store.database import damage_message

    one = _sqlite_file(tmp_path / "one")
    (first,) = _orphan_index_pages(one, 1)
    with Store(one) as store:
        assert store.check() == damage_message(one, f"quick_check: {first}")
    two = _sqlite_file(tmp_path / "two")
    lines = _orphan_index_pages(two, 2)
    assert len(lines) == 2
    with Store(two) as store:
        assert store.check() == damage_message(two, f"quick_check: {lines[0]} and 1 more")


def test_a_check_that_sqlite_fails_names_sqlites_error(tmp_path):
    from linkqa_core.store.database import damage_message

    path = _sqlite_file(tmp_path, pages=80)
    _corrupt_the_middle(path)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError) as err:
        conn.execute("PRAGMA quick_check(20)").fetchall()
    conn.close()
    with Store(path) as store:
        assert store.check() == damage_message(path, str(err.value))


def test_only_the_first_write_checks_the_file_fully_up_to_the_size_limit(tmp_path, monkeypatch):
    import linkqa_core.store.database as database

    path = _sqlite_file(tmp_path)
    with Store(path) as store:
        monkeypatch.setattr(database, "FULL_CHECK_MAX_BYTES", os.path.getsize(path))  # exactly at the limit
        checks = []
        real = store.check
        monkeypatch.setattr(store, "check", lambda *, full=True: checks.append(full) or real(full=full))
        store.bump("x")
        store.bump("x")
        assert checks == [True] and store.version("x") == 2


def test_a_file_this_process_holds_is_opened_without_reading_its_header(tmp_path, monkeypatch):
    import linkqa_core.store.database as database

    path = _sqlite_file(tmp_path)
    read = []
    real = database.header_problem
    monkeypatch.setattr(database, "header_problem", lambda p: read.append(p) or real(p))
    first = Store(path)
    second = Store(path)
    assert read == [path]  # the second found the file held by the first
    second.close()
    second.close()  # closing twice lets go once
    with Store(path) as third:
        assert third.seeds.count() == 400
    assert read == [path]  # the first still holds it
    first.close()
    Store(path).close()
    assert read == [path, path]  # nobody holds it now


def test_an_in_memory_store_holds_no_file_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ":memory:").write_bytes(b"not a database" * 10)
    with Store(":memory:"):
        with pytest.raises(InputError, match="not a LinkQA database"):  # its header was read
            Store(tmp_path / ":memory:")


def test_an_empty_file_is_a_new_database_and_a_one_byte_one_is_refused(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with Store(empty) as store:
        assert store.scalar("PRAGMA page_size") == 16384
    byte = tmp_path / "byte.db"
    byte.write_bytes(b"x")
    with pytest.raises(InputError, match=r"byte\.db is not a LinkQA database \(not an SQLite file\)"):
        Store(byte)


def test_a_folder_that_cannot_be_made_is_named_with_the_systems_reason(tmp_path):
    import errno

    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "sub" / "x.db"
    with pytest.raises(InputError) as err:
        Store(target)
    assert str(err.value) == f"cannot create the folder of {target} ({os.strerror(errno.ENOTDIR)})"


def test_header_problems_give_the_systems_reason_and_accept_every_page_size_and_big_counters(tmp_path):
    import errno

    from linkqa_core.store.database import header_problem

    assert header_problem(str(tmp_path)) == f"cannot be read ({os.strerror(errno.EISDIR)})"
    assert header_problem(str(tmp_path / "absent.db")) == f"cannot be read ({os.strerror(errno.ENOENT)})"
    for size in (512, 32768):
        path = tmp_path / f"p{size}.db"
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA page_size={size}")
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.close()
        assert header_problem(str(path)) is None, size
    data = bytearray(open(_sqlite_file(tmp_path), "rb").read())
    counter = (1 << 31) + 5  # past the sign bit, in both change counters
    data[24:28] = data[92:96] = counter.to_bytes(4, "big")
    data[28:32] = (1 << 31).to_bytes(4, "big")
    cut = tmp_path / "huge.db"
    cut.write_bytes(bytes(data))
    assert (header_problem(str(cut)) or "").startswith("is truncated: its header counts 2,147,483,648 pages of 16,384")


def test_a_file_refused_at_open_says_reading_fails_too():
    from linkqa_core.store.database import damage_message

    assert damage_message("/d/x.db", "header", readable=False).endswith(
        "then use recovered.db. It cannot be opened for reading either; work from recovered.db.")


def test_a_writer_waits_for_another_processs_lock_only_its_timeout(tmp_path):
    path = tmp_path / "x.db"
    Store(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with Store(path, timeout=0.2) as store:
            start = time.monotonic()
            with pytest.raises(DatabaseBusy):
                store.bump("x")
            waited = time.monotonic() - start
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert 0.1 < waited < 3  # SQLite's own default would be 5 s


def test_the_busy_message_comes_out_when_the_leases_cannot_be_read(tmp_path, monkeypatch):
    path = tmp_path / "x.db"
    first, second = Store(path), Store(path, timeout=0.1)
    try:
        def unreadable(**kw):
            raise sqlite3.DatabaseError("unreadable")

        monkeypatch.setattr(second, "leases", unreadable)
        with first.transaction():
            first.bump("held")
            with pytest.raises(DatabaseBusy, match=r"\(unknown work\); waited 0.1 s"):
                second.bump("blocked")
    finally:
        first.close()
        second.close()


def test_a_thread_reads_through_one_connection_that_the_next_thread_reuses(tmp_path):
    import gc

    with Store(tmp_path / "x.db") as store:
        with store.reading() as outer, store.reading() as inner:
            assert outer is inner
        with store.reading() as again:
            assert again is outer
        seen = []

        def read() -> None:
            with store.reading() as conn:
                seen.append(conn)

        for _ in range(2):
            t = threading.Thread(target=read)
            t.start()
            t.join()
            gc.collect()
        assert seen[0] is seen[1] and seen[0] is not outer


def test_a_query_error_comes_out_as_sqlites_error_on_a_reader_and_on_the_writer(tmp_path):
    with Store(tmp_path / "x.db") as store:
        with pytest.raises(sqlite3.OperationalError, match="no such table: nowhere"):
            store.query("SELECT * FROM nowhere")  # this thread's reader
        with store.transaction():
            with pytest.raises(sqlite3.OperationalError, match="no such table: nowhere"):
                store.query("SELECT * FROM nowhere")  # inside a transaction: through the writer


def test_a_file_refused_at_open_names_the_problem_and_sqlites_error(tmp_path):
    from linkqa_core.store.database import damage_message

    data = open(_sqlite_file(tmp_path), "rb").read()
    cut = tmp_path / "cut.db"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedDatabase) as err:
        Store(cut)
    assert str(err.value).startswith(f"{cut} is damaged (truncated: its header counts ")
    assert str(err.value).endswith("It cannot be opened for reading either; work from recovered.db.")
    garbage = tmp_path / "garbage.db"  # a sound header, then garbage where the schema should be
    garbage.write_bytes(data[:100] + bytes(range(256)) * 63 + data[100 + 256 * 63:])
    conn = sqlite3.connect(garbage)
    with pytest.raises(sqlite3.DatabaseError) as raw:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    conn.close()
    with pytest.raises(DamagedDatabase) as err:
        Store(garbage)
    assert str(err.value) == damage_message(str(garbage), str(raw.value), readable=False)


def test_opening_a_file_another_process_has_locked_says_it_is_busy(tmp_path):
    path = tmp_path / "x.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("BEGIN EXCLUSIVE")  # a rollback-journal file: no reader gets in
    try:
        with pytest.raises(DatabaseBusy) as err:
            Store(path, timeout=0.1)
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    assert str(err.value) == (f"another process is writing to {path} (unknown work); "
                              "waited 0.1 s for it, try again when it has finished")

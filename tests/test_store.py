"""The Store's connection rules: readers beside a writer, one writer at a time, damage, leases.

Tests marked ``multiprocess`` start other Python processes (seconds each); mutation runs
leave them out, and tests/test_store_writes.py pins the same rules within one process.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from linkqa_core.errors import DamagedDatabase, DatabaseBusy, LeaseHeld
from linkqa_core.ingest.load import ingest, sample_path
from linkqa_core.records import Seed
from linkqa_core.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, *args: str) -> subprocess.Popen:
    """A child process running ``code`` (it prints "ready" once it holds what it should)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()


HOLD_WRITE = """
import sys, time
from linkqa_core.store import Store
store = Store(sys.argv[1])
with store.lease("ingest:child", "ingest of big.jsonl"), store.transaction() as conn:
    conn.execute("INSERT INTO meta (key, value) VALUES ('child', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1")
    print("ready", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.mark.multiprocess
def test_readers_never_wait_for_a_long_write_in_another_process(sample_store):
    path = sample_store.path
    sample_store.close()
    child = _python(HOLD_WRITE, path, "20")
    try:
        _wait_ready(child)
        t = time.perf_counter()
        with Store(path, timeout=2) as reader:  # opening migrates nothing: no write lock needed
            assert reader.seeds.count() == 1139
            assert reader.runs.list() == []
            assert reader.counts()["kps"] > 0
        assert time.perf_counter() - t < 2
    finally:
        child.kill()
        child.wait()


@pytest.mark.multiprocess
def test_a_second_writer_is_told_who_is_writing_and_since_when(sample_store):
    path = sample_store.path
    sample_store.close()
    child = _python(HOLD_WRITE, path, "20")
    try:
        _wait_ready(child)
        with Store(path, timeout=1) as store:
            with pytest.raises(DatabaseBusy) as err:
                store.seeds.add([Seed("x1", "A question?", "An answer")])
        message = str(err.value)
        assert "another process is writing" in message and "ingest of big.jsonl since" in message
        assert f"pid {child.pid}" in message and "\n" not in message
    finally:
        child.kill()
        child.wait()


@pytest.mark.multiprocess
def test_the_cli_reader_runs_while_an_ingest_writes(sample_store):
    path = sample_store.path
    sample_store.close()
    child = _python(HOLD_WRITE, path, "20")
    try:
        _wait_ready(child)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "linkqa_core", "runs", "--db", path], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "cumulative KP coverage" in out.stdout and time.perf_counter() - t < 15
    finally:
        child.kill()
        child.wait()


@pytest.mark.multiprocess
def test_a_second_store_in_this_process_keeps_the_wal_alive_for_the_first(sample_store):
    """Opening the file with open() would drop this process's SQLite locks: another process
    closing its last connection would then delete the WAL under our readers."""
    path = sample_store.path
    seen = []
    t = threading.Thread(target=lambda: seen.append(sample_store.seeds.count()))
    t.start()
    t.join()
    with Store(path) as second:
        assert second.seeds.count() == seen[0]
    child = _python("""
        import sys
        from linkqa_core.store import Store
        with Store(sys.argv[1]) as s:
            s.bump("child")
        print("ready", flush=True)
    """, path)
    _wait_ready(child)
    child.wait(30)
    assert Path(path + "-wal").exists()  # the child was not the last connection
    t = threading.Thread(target=lambda: seen.append(sample_store.version("child")))
    t.start()
    t.join()
    assert seen[1] == 1


def test_two_threads_write_in_turns_and_read_on_their_own_connections(store):
    errors = []

    def add(k: int) -> None:
        try:
            for i in range(50):
                store.seeds.add([Seed(f"t{k}-{i}", f"Question {k} {i}?", "yes")])
                assert store.seeds.count() >= i + 1
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=add, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and store.seeds.count() == 200


# -- damage ------------------------------------------------------------------------------


def _damaged(sample_store, how: str) -> str:
    path = sample_store.path
    sample_store.checkpoint()
    sample_store.close()
    data = bytearray(Path(path).read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "garbage_after_header":
        rnd = random.Random(1)
        data[100:] = bytes(rnd.randrange(256) for _ in range(len(data) - 100))
    elif how == "garbage_in_the_middle":
        rnd = random.Random(2)
        mid = len(data) // 2
        data[mid: mid + 200_000] = bytes(rnd.randrange(256) for _ in range(200_000))
    Path(path).write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    return path


@pytest.mark.parametrize("how", ["truncated", "garbage_after_header"])
def test_a_badly_damaged_file_is_refused_at_open_with_the_recovery_command(sample_store, how):
    path = _damaged(sample_store, how)
    with pytest.raises(DamagedDatabase) as err:
        Store(path)
    message = str(err.value)
    assert "is damaged" in message and ".recover" in message and "\n" not in message
    assert "cannot be opened for reading either" in message and "export may still work" not in message
    if how == "truncated":
        assert "truncated" in message


def test_garbage_in_the_middle_is_found_before_anything_is_written(sample_store):
    path = _damaged(sample_store, "garbage_in_the_middle")
    before = Path(path).read_bytes()
    with Store(path) as store:
        with pytest.raises(DamagedDatabase, match="is damaged .*refused for writing"):
            ingest(store, sample_path())
        assert store.check() is not None
    assert Path(path).read_bytes() == before  # nothing was written into the damaged file


@pytest.mark.multiprocess
def test_the_cli_reports_a_damaged_file_in_one_line(sample_store, tmp_path):
    path = _damaged(sample_store, "truncated")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (["runs"], ["ingest", "--sample"], ["check"]):
        out = subprocess.run([sys.executable, "-m", "linkqa_core", *args, "--db", path], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
        assert out.stderr.startswith("error: ") and "is damaged" in out.stderr


@pytest.mark.multiprocess
def test_check_names_damage_in_the_middle_once_with_exit_status_2(sample_store):
    path = _damaged(sample_store, "garbage_in_the_middle")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "linkqa_core", "check", "--db", path], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    [line] = out.stdout.strip().splitlines()
    assert line.startswith(f"{path} is damaged (quick_check: ") and line.count(path) == 2  # the file, then .recover
    assert f"sqlite3 {path} .recover" in line


def test_a_sound_file_passes_the_check(sample_store):
    assert sample_store.check(full=True) is None


# -- leases ------------------------------------------------------------------------------


@pytest.mark.multiprocess
def test_a_live_lease_refuses_a_second_holder_and_a_dead_one_is_taken_over(store):
    child = _python("""
        import sys, time
        from linkqa_core.store import Store
        s = Store(sys.argv[1])
        s.acquire_lease("run:1", "synthesis of run 1")
        print("ready", flush=True)
        time.sleep(30)
    """, store.path)
    try:
        _wait_ready(child)
        with pytest.raises(LeaseHeld, match=r"synthesis of run 1 is already running in another process \(pid"):
            store.acquire_lease("run:1", "synthesis of run 1")
    finally:
        child.kill()
        child.wait()
    with store.lease("run:1", "synthesis of run 1"):  # the holder died: its lease is stale
        assert [r["name"] for r in store.leases()] == ["run:1"]
    assert store.leases() == []

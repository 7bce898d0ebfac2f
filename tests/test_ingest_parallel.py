"""Ingest with parsing children (linkqa_core.ingest.workers) stores exactly what a serial ingest stores."""

from __future__ import annotations

import gzip
import json
import sys
import tempfile

import pytest

from ingest_fixtures import fail_add_rows_on_call, sample_rows, seeded_store  # noqa: F401

import linkqa_core.ingest.load as seeds_module
import linkqa_core.ingest.workers as worker_module
from linkqa_core.errors import InputError
from linkqa_core.ingest.columnar import Columnar
from linkqa_core.ingest.load import ingest
from linkqa_core.ingest.workers import WorkerFailed
from linkqa_core.store import Store

COLUMNS = ("id, question, answer, options, answer_letter, discipline, subject, difficulty,"
           " difficulty_estimated, source, metadata")


def messy_jsonl() -> bytes:
    """The sample plus every kind of bad line, spread so small chunks cut through them."""
    rows = sample_rows(400)
    lines: list[bytes] = []
    for i, row in enumerate(rows):
        if i % 50 == 7:
            row = dict(row, batch_note=f"note {i}")  # an extra column: metadata
        lines.append(json.dumps(row, ensure_ascii=False).encode())
        if i % 61 == 3:
            lines.append(b"")  # blank
        if i % 67 == 5:
            lines.append(b'{"question": "broken",')  # bad JSON
        if i % 71 == 9:
            lines.append(b'["not", "an", "object"]')
        if i % 73 == 11:
            lines.append(b'{"question": "caf\xe9?", "answer": "x"}')  # not UTF-8
        if i % 79 == 13:
            lines.append(json.dumps(dict(row, question="")).encode())  # missing question
        if i % 83 == 17:
            lines.append(json.dumps(rows[i // 2]).encode())  # a repeat: a duplicate
    return b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n"


def stored(store: Store) -> list[tuple]:
    return [tuple(r) for r in store.query(f"SELECT {COLUMNS} FROM seeds ORDER BY rid")]


@pytest.fixture
def children(monkeypatch):
    """Every parsing child started during the test."""
    started: list[worker_module._Child] = []
    real_init = worker_module._Child.__init__

    def spy(self, spec):
        real_init(self, spec)
        started.append(self)

    monkeypatch.setattr(worker_module._Child, "__init__", spy)
    return started


def ingest_both(path, tmp_path, **kw):
    serial, parallel = Store(tmp_path / "serial.db"), Store(tmp_path / "parallel.db")
    a = ingest(serial, path, parallel=False, **kw)
    b = ingest(parallel, path, parallel=True, **kw)
    return (serial, a), (parallel, b)


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("compressed", [False, True])
def test_children_store_the_same_rows_and_bad_rows_as_a_serial_ingest(tmp_path, monkeypatch, children, parts, compressed):
    monkeypatch.setattr(seeds_module, "BATCH", 37)
    monkeypatch.setattr(seeds_module, "WORKER_PROCESSES", parts)
    data = messy_jsonl()
    path = tmp_path / ("seeds.jsonl.gz" if compressed else "seeds.jsonl")
    path.write_bytes(gzip.compress(data) if compressed else data)
    (serial, a), (parallel, b) = ingest_both(path, tmp_path)
    assert len(children) == parts
    assert stored(parallel) == stored(serial)
    assert a.bad_rows and b.bad_rows == a.bad_rows  # same reasons, same line numbers, same order
    assert (b.added, b.duplicates, b.rows_read) == (a.added, a.duplicates, a.rows_read)
    assert a.duplicates > 0 and any(r[10] for r in stored(serial))  # the file did exercise both


def test_a_mapping_and_discipline_map_reach_the_children(tmp_path, monkeypatch, children):
    rows = [{"prompt": f"question {i}?", "choices": ["yes", "no"], "key": "B", "area": "law"} for i in range(90)]
    path = tmp_path / "mapped.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(seeds_module, "BATCH", 20)
    kw = dict(mapping={"question": "prompt", "answer": "key", "subject": "area"},
              discipline_map={"law": "Social sciences"}, source_name="mapped-set")
    (serial, a), (parallel, b) = ingest_both(path, tmp_path, **kw)
    assert children
    assert stored(parallel) == stored(serial)
    # the curator's "Social sciences" is the built-in discipline, not a new one beside it (issue 12)
    assert {r[5] for r in stored(parallel)} == {"Social Sciences"} and {r[9] for r in stored(parallel)} == {"mapped-set"}


def test_small_files_are_parsed_in_process_unless_parallel_is_asked_for(store, tmp_path, monkeypatch, children):
    path = tmp_path / "small.jsonl"
    path.write_bytes(choices_jsonl())
    ingest(store, path)
    assert children == []
    monkeypatch.setattr(seeds_module, "WORKER_MIN_BYTES", 0)
    ingest(Store(tmp_path / "other.db"), path)
    assert len(children) == seeds_module.WORKER_PROCESSES


def choices_jsonl() -> bytes:
    """Rows whose options sit in one list column: a plan the columnar path does not take."""
    rows = [{"question": f"q{i}?", "choices": ["a", "b", f"c{i}"], "answer": "B"} for i in range(300)]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_a_big_file_the_columnar_path_takes_is_parsed_by_threads_not_children(tmp_path, monkeypatch, children):
    monkeypatch.setattr(seeds_module, "WORKER_MIN_BYTES", 0)
    monkeypatch.setattr(seeds_module, "BATCH", 37)
    threads = []
    real_ahead = seeds_module.ahead

    def spy(fn, items, **kw):
        threads.append(kw["workers"])
        return real_ahead(fn, items, **kw)

    monkeypatch.setattr(seeds_module, "ahead", spy)
    path = tmp_path / "messy.jsonl"
    path.write_bytes(messy_jsonl())
    serial = ingest(Store(tmp_path / "serial.db"), path, parallel=False)
    store = Store(tmp_path / "default.db")
    report = ingest(store, path)
    assert children == [] and threads == [seeds_module.PARSE_THREADS] and seeds_module.PARSE_THREADS >= 2
    assert stored(store) == stored(Store(tmp_path / "serial.db"))
    assert (report.bad_rows, report.added, report.duplicates) == (serial.bad_rows, serial.added, serial.duplicates)


def test_other_formats_never_start_children(store, tmp_path, children):
    path = tmp_path / "seeds.csv"
    path.write_text("question,answer\nwhat?,this\n")
    ingest(store, path, parallel=True)
    assert children == []


def test_an_upload_is_parsed_by_children_from_a_temporary_file_that_is_removed(tmp_path, monkeypatch, children):
    monkeypatch.setattr(seeds_module, "BATCH", 37)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    data = messy_jsonl()
    serial = ingest(Store(tmp_path / "serial.db"), data, filename="upload.jsonl", parallel=False)
    store = Store(tmp_path / "parallel.db")
    report = ingest(store, data, filename="upload.jsonl", parallel=True)
    assert len(children) == seeds_module.WORKER_PROCESSES
    assert stored(store) == stored(Store(tmp_path / "serial.db"))
    assert report.bad_rows == serial.bad_rows and report.added == serial.added
    assert {r[9] for r in stored(store)} == {"upload.jsonl"}  # named after the upload, not the temporary file
    assert not list(tmp_path.glob("linkqa-upload-*"))


def test_progress_counts_rows_read_through_the_children(store, tmp_path, monkeypatch):
    monkeypatch.setattr(seeds_module, "BATCH", 100)
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(messy_jsonl())
    calls = []
    report = ingest(store, path, parallel=True, progress=lambda done, total, msg: calls.append(done))
    assert calls == sorted(calls) and calls[-1] == report.rows_read
    assert calls[:4] == [100, 200, 300, 400] or len(calls) > 4  # per chunk, before the last


def test_a_child_that_dies_fails_the_ingest_with_its_message_and_stores_nothing(seeded_store_path, monkeypatch):
    store, path = seeded_store_path
    before = store.seeds.count()
    monkeypatch.setattr(worker_module, "COMMAND",
                        [sys.executable, "-c", "import sys; sys.stderr.write('parser ran out of memory\\n'); sys.exit(3)"])
    with pytest.raises(WorkerFailed, match=r"stopped \(exit code 3: parser ran out of memory\); nothing was stored"):
        ingest(store, path, parallel=True)
    assert store.seeds.count() == before


def test_an_insert_failure_stops_the_children_and_rolls_back(seeded_store_path, monkeypatch, children):
    store, path = seeded_store_path
    before = store.seeds.count()
    monkeypatch.setattr(seeds_module, "BATCH", 50)
    fail_add_rows_on_call(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest(store, path, parallel=True)
    assert store.seeds.count() == before
    assert children and all(c.proc.returncode is not None for c in children)  # stopped and reaped


def test_an_insert_failure_stops_the_parse_threads_and_rolls_back(seeded_store_path, monkeypatch):
    import threading

    store, path = seeded_store_path
    before = store.seeds.count()
    monkeypatch.setattr(seeds_module, "BATCH", 50)
    monkeypatch.setattr(seeds_module, "WORKER_MIN_BYTES", 0)  # the default path: parse threads
    started = []
    real_segments = Columnar.segments

    def segments(self, block, ends, before):  # runs on a parse thread: note its name
        started.append(threading.current_thread().name)
        return real_segments(self, block, ends, before)

    monkeypatch.setattr(Columnar, "segments", segments)
    fail_add_rows_on_call(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest(store, path)
    assert store.seeds.count() == before
    assert started and all(name.startswith("linkqa-ingest-parse") for name in started)
    assert not [t for t in threading.enumerate() if t.name in started]  # stopped and joined


def test_a_damaged_gzip_fails_with_the_same_message_either_way(tmp_path):
    whole = gzip.compress(messy_jsonl() * 20)
    path = tmp_path / "damaged.jsonl.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    messages = []
    for parallel in (False, True):
        store = Store(tmp_path / f"{parallel}.db")
        with pytest.raises(InputError) as err:
            ingest(store, path, parallel=parallel)
        messages.append(str(err.value))
        assert store.seeds.count() == 0
    assert messages[0] == messages[1] and "not a readable gzip file" in messages[0]


def test_a_file_with_no_usable_row_gives_the_same_error_either_way(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "", "answer": "x"}\n{"question": "q?"}\n')
    messages = []
    for parallel in (False, True):
        with pytest.raises(InputError) as err:
            ingest(Store(tmp_path / f"{parallel}.db"), path, parallel=parallel)
        messages.append(str(err.value))
    assert messages[0] == messages[1] == "bad.jsonl: none of the 2 rows could be used; first problem: line 1: missing question"


@pytest.fixture
def seeded_store_path(seeded_store, tmp_path):
    rows = [{"question": f"fresh question {i}?", "answer": "yes"} for i in range(300)]
    path = tmp_path / "fresh.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return seeded_store, path

"""Packed batches (linkqa_core.store.packed) store what seed_row tuples store, in order,
into an empty table and into one that has rows; the parse thread (linkqa_core.ingest.ahead)
hands on errors and stops when its consumer leaves (issue 13)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from linkqa_core.ingest.ahead import ahead
from linkqa_core.ingest.columnar import Columnar
from linkqa_core.ingest.load import _Load, ingest
from linkqa_core.store import Store
from linkqa_core.store.packed import PackedRows, pack_texts

COLUMNS = ("id, question, answer, options, answer_letter, discipline, subject, difficulty,"
           " difficulty_estimated, source, metadata, added_at")


def stored(store: Store) -> list[tuple]:
    return [tuple(r) for r in store.query(f"SELECT {COLUMNS} FROM seeds ORDER BY rid")]


def packed_block(lines: list[dict]) -> PackedRows:
    block = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines).encode()
    load = _Load(block, filename="b.jsonl", format="jsonl", mapping=None, discipline_map=None, source_name="set")
    columnar = Columnar.for_load(load, 7.5)
    assert columnar is not None
    parts, bad, read = columnar.segments(block, np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10), 0)
    assert len(parts) == 1 and isinstance(parts[0], PackedRows) and not bad
    return parts[0]


def mmlu(i: int, **kw) -> dict:
    row = {"question": f"Question  {i} ünï?", "answer_a": f"a{i}", "answer_b": "b \"quoted\"", "answer_c": "c\\d",
           "answer_d": "d", "correct_answer": "ABCD"[i % 4], "topic": ["law", "marketing", " "][i % 3],
           "difficulty": [1, 2.5, None, 5][i % 4]}
    row.update(kw)
    return row


@pytest.mark.parametrize("seeded", [False, True])
def test_a_packed_batch_stores_the_rows_its_tuples_store_in_the_same_order(tmp_path, seeded):
    rows = [mmlu(i) for i in range(40)] + [mmlu(3), mmlu(41)]  # a repeat, kept once
    packed = packed_block(rows)
    a, b = Store(tmp_path / "packed.db"), Store(tmp_path / "tuples.db")
    if seeded:  # a table with rows: INSERT OR IGNORE, with the id index in place
        for store in (a, b):
            store.seeds.add_rows(packed.slice(5, 9).tuples())
    got = a.seeds.add_rows(packed)
    want = b.seeds.add_rows(packed.tuples())
    assert got == want and got[0] == len(rows) - 1 - (4 if seeded else 0)
    assert stored(a) == stored(b) and len(stored(a)) == len(rows) - 1


def test_packed_slices_and_rebuilt_texts_give_the_rows_of_the_whole():
    packed = packed_block([mmlu(i) for i in range(10)])
    whole = packed.tuples()
    assert packed.slice(0, 4).tuples() + packed.slice(4, 10).tuples() == whole
    assert pack_texts([r[1] for r in whole]).texts() == [r[1] for r in whole]
    assert packed.id_array().tolist() == [int(r[0], 16) for r in whole]


def test_a_bulk_ingest_keeps_the_first_of_repeats_across_packed_blocks(tmp_path, monkeypatch):
    import linkqa_core.ingest.load as load_module

    monkeypatch.setattr(load_module, "BATCH", 7)
    rows = [mmlu(i % 13) for i in range(60)]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    store = Store(tmp_path / "s.db")
    report = ingest(store, path)
    assert (report.added, report.duplicates) == (13, 47)
    assert [r[1] for r in stored(store)] == [f"Question  {i} ünï?" for i in range(13)]


@pytest.mark.parametrize("workers, depth", [(2, 2), (1, 0)])  # (1, 0): nothing pending when reading fails
def test_the_parse_threads_raise_a_reading_error_at_the_item_where_it_happened(workers, depth):
    def items():
        yield 1
        yield 2
        raise ValueError("line 3: bad")

    got = []
    with pytest.raises(ValueError, match="line 3: bad"):
        for x in ahead(lambda i: i * 10, items(), workers=workers, depth=depth):
            got.append(x)
    assert got == [10, 20]


def test_an_error_in_one_parse_thread_is_raised_after_the_results_before_it():
    def parse(i):
        if i == 3:
            raise ValueError("block 3: refused")
        time.sleep(0.02 if i < 3 else 0)  # the blocks after it are done first
        return i * 10

    got = []
    with pytest.raises(ValueError, match="block 3: refused"):
        for x in ahead(parse, range(8), workers=2, depth=2):
            got.append(x)
    assert got == [0, 10, 20]


def test_parse_threads_run_blocks_at_once_and_yield_them_in_file_order():
    both = threading.Barrier(2, timeout=5)  # broken (BrokenBarrierError) unless two run at once

    def parse(i):
        if i < 2:
            both.wait()
        time.sleep(0.03 if i % 2 == 0 else 0)  # even blocks finish after the odd ones
        return i

    assert list(ahead(parse, range(10), workers=2, depth=1)) == list(range(10))


def test_the_parse_threads_read_at_most_workers_plus_depth_blocks_ahead():
    taken = []

    def items():
        for i in range(100):
            taken.append(i)
            yield i

    gen = ahead(lambda i: i, items(), workers=2, depth=3)
    assert next(gen) == 0
    assert len(taken) == 5
    gen.close()


def test_leaving_early_stops_the_parse_thread_and_closes_its_source():
    closed = threading.Event()

    def items():
        try:
            for i in range(10**6):
                yield i
        finally:
            closed.set()

    before = threading.active_count()
    gen = ahead(lambda i: i, items(), workers=2, depth=2)
    assert next(gen) == 0
    gen.close()
    assert closed.is_set()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before

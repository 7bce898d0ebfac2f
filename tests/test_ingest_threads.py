"""The parse threads (linkqa_core.ingest.ahead): how many run, how far they read ahead, what
they are called, and what leaving or failing does to them and to their source. Written
against the survivors of a mutation run (docs/testing.md, "linkqa_core/ingest/ahead.py")."""

from __future__ import annotations

import threading
import time

import pytest

from linkqa_core.ingest.ahead import ahead


def counted(n: int, taken: list[int]):
    """Items 0..n-1, each noted in ``taken`` when it is read."""
    for i in range(n):
        taken.append(i)
        yield i


class Overlap:
    """Counts how many calls of a function run at once; the first call lingers so that any
    other thread the pool has picks up the next item meanwhile."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def __call__(self, i: int) -> int:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(0.3 if i == 0 else 0.01)
        finally:
            with self.lock:
                self.running -= 1
        return i * 2


def test_by_default_two_threads_read_four_items_ahead():
    taken: list[int] = []
    gen = ahead(lambda i: i, counted(100, taken))
    assert next(gen) == 0
    assert taken == [0, 1, 2, 3]
    gen.close()


@pytest.mark.parametrize("workers", [0, 1])
def test_one_worker_or_fewer_reads_one_item_ahead_with_no_depth(workers):
    taken: list[int] = []
    gen = ahead(lambda i: i + 1, counted(100, taken), workers=workers, depth=0)
    assert next(gen) == 1
    assert taken == [0]
    assert next(gen) == 2
    assert taken == [0, 1]
    gen.close()


@pytest.mark.parametrize("workers", [0, 1])
def test_one_worker_or_fewer_runs_one_call_at_a_time_even_with_items_waiting(workers):
    fn = Overlap()
    assert list(ahead(fn, range(6), workers=workers, depth=3)) == [0, 2, 4, 6, 8, 10]
    assert fn.peak == 1


def test_no_more_calls_run_at_once_than_there_are_workers():
    fn = Overlap()
    assert list(ahead(fn, range(8), workers=2, depth=4)) == [i * 2 for i in range(8)]
    assert fn.peak == 2


def test_the_parse_threads_are_named_for_ingest_unless_named_otherwise():
    def name(_):
        return threading.current_thread().name

    default = set(ahead(name, range(6)))
    given = set(ahead(name, range(6), name="other-parse"))
    assert default and all(n.startswith("linkqa-ingest-parse_") for n in default)
    assert given and all(n.startswith("other-parse_") for n in given)


def test_an_error_reading_the_very_first_item_is_raised_not_swallowed():
    def items():
        raise OSError("unreadable file")
        yield 0  # pragma: no cover - makes this a generator

    with pytest.raises(OSError, match="unreadable file"):
        list(ahead(lambda i: i, items()))


def test_leaving_early_waits_for_the_calls_already_running():
    running = threading.Event()
    finished: list[int] = []

    def slow(i):
        if i == 0:
            return i
        running.set()  # item 1, made while the consumer holds item 0
        time.sleep(0.2)
        finished.append(i)
        return i

    gen = ahead(slow, range(100), workers=2, depth=0)
    assert next(gen) == 0
    assert running.wait(5)
    gen.close()
    assert finished == [1]


def test_leaving_early_closes_a_source_the_caller_still_holds():
    closed = threading.Event()

    def items():
        try:
            yield from range(10**6)
        finally:
            closed.set()

    source = items()
    gen = ahead(lambda i: i, source, workers=2, depth=2)
    assert next(gen) == 0
    gen.close()
    assert closed.is_set()
    assert next(source, "ended") == "ended"

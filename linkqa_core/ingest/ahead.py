"""Work ahead of a consumer: a function mapped over items by a few threads, in order.

Ingest's columnar path (parse a block with Arrow, check and pack it) and its insert (one
``INSERT ... SELECT`` a block) each spend most of their time outside the GIL: Arrow,
numpy and SQLite release it. So the blocks are parsed by a small pool of threads while
the consumer inserts, with no child process to start and no rows to pickle. One parse
thread was not enough on two cores: parsing a block costs about twice its insert, so the
inserting thread waited half the time (1M rows: 4.5 s of loop, 1.5 cores busy); two
threads keep the inserting thread busy (1M rows: it inserts for 2.8 s of a 3.8 s loop,
reads the file for 0.65 s and waits for parsed blocks 0.2 s). The consumer keeps the
database connection (SQLite work stays on the thread that holds the transaction) and reads
the items: a reading thread of its own measured slower (5.84 against 5.58 s), four busy
threads on two cores slowing the inserts more than the reading it took off them.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generator, Iterable, TypeVar

__all__ = ["ahead"]

T = TypeVar("T")
R = TypeVar("R")


def ahead(fn: Callable[[T], R], items: Iterable[T], *, workers: int = 2, depth: int = 2,
          name: str = "linkqa-ingest-parse") -> Generator[R, None, None]:
    """``fn(item)`` for each of ``items``, in their order, made by ``workers`` threads up to
    ``workers + depth`` items ahead of the consumer.

    An exception in ``fn`` or in reading ``items`` is raised here, at the item where it
    happened (the results before it are yielded first). Closing this generator early (the
    consumer failed) drops the results not started, waits for those being made, and closes
    ``items``.
    """
    pending: deque[Future[R]] = deque()
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix=name)
    source = iter(items)
    try:
        failed: BaseException | None = None
        while failed is None:
            while len(pending) < max(1, workers) + max(0, depth):
                try:
                    item = next(source)
                except StopIteration:
                    break
                except BaseException as err:  # noqa: BLE001 - raised after the results before it
                    failed = err
                    break
                pending.append(pool.submit(fn, item))
            if not pending:
                break
            yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        if failed is not None:
            raise failed
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(source, "close", None)
        if close is not None:
            close()

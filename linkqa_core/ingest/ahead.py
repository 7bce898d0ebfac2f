"""Run a generator in a thread, a few items ahead of its consumer.

Ingest's columnar path (read a block, parse it with Arrow, check and pack it) and its
insert (one ``INSERT ... SELECT`` a block) each spend most of their time outside the GIL:
Arrow, numpy and SQLite release it. With the parsing in a thread, block k + 1 is parsed
while block k is inserted, on a second core, with no child process to start and no rows
to pickle. The consumer keeps the database connection (SQLite work stays on the thread
that holds the transaction); the thread only reads the file.
"""

from __future__ import annotations

import queue
import threading
from typing import Generator, Iterator, TypeVar

__all__ = ["ahead"]

T = TypeVar("T")
_POLL_S = 0.1  # how often a producer blocked on a full queue looks whether the consumer left


def ahead(items: Iterator[T], depth: int = 2, name: str = "linkqa-ingest-parse") -> Generator[T, None, None]:
    """The items of ``items``, produced by a thread up to ``depth`` ahead.

    An exception in the thread is raised here, at the item where it happened. Closing
    this generator early (the consumer failed) stops the thread after the item it is
    making, then closes ``items``.
    """
    channel: queue.Queue[tuple[str, object]] = queue.Queue(depth)
    stop = threading.Event()

    def put(message: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                channel.put(message, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which raises it
            put(("error", err))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = channel.get()
            if kind == "item":
                yield value  # type: ignore[misc]
            elif kind == "done":
                return
            else:
                raise value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()

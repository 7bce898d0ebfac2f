"""The request cache every node shares: one small JSON file per request key in the storage.

On one machine the cache is the ``llm_cache`` table of the SQLite file. A cluster has no
file every node may write to with SQLite's locks, so the actors keep it in the storage
instead, keyed the same way (the client's request key: a SHA-256 of everything that shapes
the answer): ``cache/<key[:2]>/<key>.json``. An answer is written as it arrives (by a
writer pool, off the path that delivers answers) and always before its batch is stored, so
a job killed between the two pays nothing for it when it is started again. A put is atomic (rename on a shared mount, a single object in a bucket);
two actors that ask the same prompt at once may both pay once, never read half an answer.

:class:`CacheStore` hands this cache to :class:`~linkqa_core.llm.client.LLMClient` through
the one door the client has for it, the ``store.llm`` ledger (``cached`` / ``record``), so
the client's own cache rules apply unchanged (only complete answers are cached; identical
requests in one batch are sent once). The call log goes to :attr:`CacheStore.calls` for the
actor to count, not to a database.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from .storage import Storage

__all__ = ["SharedCache", "CacheStore"]


class SharedCache:
    """Cached answers by request key, in ``<storage>/cache``.

    Writes leave the caller's thread at once (a small pool writes the files), so a slow
    shared disk never holds up the delivery of answers; :meth:`flush` waits for them, and an
    actor flushes before it stores a batch, so an answer is in the cache no later than in
    the results. Until written, an answer is served from memory.
    """

    def __init__(self, storage: Storage, *, threads: int = 8):
        self.storage = storage
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="linkqa-cache")
        self._pending: dict[str, dict[str, Any]] = {}
        self._futures: list[Any] = []
        self._lock = threading.Lock()

    @staticmethod
    def _rel(key: str) -> str:
        return f"cache/{key[:2]}/{key}.json"

    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for k in keys:
                if k in self._pending:
                    found[k] = self._pending[k]
        keys = [k for k in keys if k not in found]
        if not keys:
            return found
        if self.storage.local or len(keys) == 1:  # a missing local file costs a failed open, no thread needed
            datas = [self.storage.read_bytes(self._rel(k)) for k in keys]
        else:  # an object store: requests in parallel
            datas = list(self._pool.map(lambda k: self.storage.read_bytes(self._rel(k)), keys))
        for key, data in zip(keys, datas):
            if data is None:
                continue
            try:
                value = json.loads(data)
            except ValueError:
                continue  # a damaged entry is a miss, never a wrong answer
            if isinstance(value, dict):
                found[key] = value
        return found

    def put_many(self, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if not rows:
            return

        def put(batch: list[tuple[str, dict[str, Any]]]) -> None:
            for key, value in batch:
                self.storage.write_bytes(self._rel(key), json.dumps(value, ensure_ascii=False).encode("utf-8"))
                with self._lock:
                    self._pending.pop(key, None)

        rows = list(rows)
        with self._lock:
            self._pending.update(rows)
            step = max(1, -(-len(rows) // 4))
            self._futures = [f for f in self._futures if not f.done()]
            self._futures.extend(self._pool.submit(put, rows[k:k + step]) for k in range(0, len(rows), step))

    def flush(self) -> None:
        """Wait until every answer handed to :meth:`put_many` is in the storage."""
        with self._lock:
            futures, self._futures = self._futures, []
        for f in futures:
            f.result()

    def forget(self, key: str) -> bool:
        with self._lock:
            self._pending.pop(key, None)
        try:
            self.storage.fs.delete_file(self.storage.path(self._rel(key)))
            return True
        except (FileNotFoundError, OSError):
            return False

    def close(self) -> None:
        self.flush()
        self._pool.shutdown(wait=True)


class _Ledger:
    """The ``store.llm`` face of the shared cache, as the client uses it."""

    def __init__(self, cache: SharedCache):
        self.cache = cache
        self.calls: list[Any] = []
        self._lock = threading.Lock()

    def cached(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self.cache.get_many(keys)

    def record(self, calls: Sequence[Any], cache: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if cache:
            self.cache.put_many(cache)
        if calls:
            with self._lock:
                self.calls.extend(calls)

    def forget(self, key: str) -> bool:
        return self.cache.forget(key)

    def mode(self, endpoint: str, model: str) -> str | None:
        data = self.cache.storage.read_json(f"modes/{_safe(endpoint)}--{_safe(model)}.json")
        return data.get("mode") if isinstance(data, dict) else None

    def modes(self) -> list[dict[str, Any]]:
        """Every settled mode, as ``store.llm.modes()`` gives them (a client reads them once at its start)."""
        storage = self.cache.storage
        base = storage.path("") + "/"
        found = (storage.read_json(f.removeprefix(base)) for f in storage.files("modes", suffix=".json"))
        return [d for d in found if isinstance(d, dict) and {"endpoint", "model", "mode"} <= d.keys()]

    def set_mode(self, endpoint: str, model: str, mode: str, detail: str = "") -> None:
        self.cache.storage.write_json(f"modes/{_safe(endpoint)}--{_safe(model)}.json",
                                      {"endpoint": endpoint, "model": model, "mode": mode, "detail": detail})

    def drain(self) -> list[Any]:
        """The calls logged since the last drain (tokens, errors, latency per request)."""
        with self._lock:
            out, self.calls = self.calls, []
        return out


def _safe(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class CacheStore:
    """What an actor passes to ``LLMClient(settings, store=...)``: only ``llm`` is used."""

    def __init__(self, storage: Storage):
        self.cache = SharedCache(storage)
        self.llm = _Ledger(self.cache)
        self.path = storage.uri

    def close(self) -> None:
        self.cache.close()

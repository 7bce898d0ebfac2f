"""The run's manifest: what ran, where its Parquet is, and how far it got, for the CLI and the studio.

:func:`progress` reads it without Ray (the Synthesis page polls it); the driver rewrites
it about once a second while a stage runs, from the cluster limiter's counters.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping

from ..errors import InputError
from .storage import Storage

__all__ = ["progress", "run_manifest", "Manifest", "Poller", "MANIFEST"]

MANIFEST = "manifest.json"


def progress(storage: str) -> dict[str, Any]:
    """The manifest of a run's storage folder (``<storage>/run-<id>``) or of every run under a
    storage root (``{"runs": {id: manifest}}``); ``{}`` when nothing ran there yet.

    A stage's entry holds ``state`` (running, finished, stopped, failed), ``done``,
    ``in_flight``, ``failed``, ``requests``, ``cached``, ``tokens``, ``items`` and ``updated_at``.
    """
    s = Storage(storage)
    data = s.read_json(MANIFEST)
    if isinstance(data, dict):
        return data
    runs = {}
    for f in s.files("", suffix="/" + MANIFEST):
        rel = f[len(s.base.rstrip("/")) + 1:]
        if rel.count("/") == 1 and rel.startswith("run-"):
            got = s.read_json(rel)
            if isinstance(got, dict):
                runs[rel.split("/")[0][4:]] = got
    return {"runs": runs} if runs else {}


def run_manifest(config: Mapping[str, Any], run_id: int) -> dict[str, Any] | None:
    """The manifest of a run whose model stages ran on Ray, from the storage its config
    records (``backend``, written when the job starts); None for a run that never did.

    For the studio, which knows the run, not where its job writes. ``{}`` when the job has
    not written one yet; a storage that cannot be read is an :class:`InputError` saying so.
    """
    backend = config.get("backend")
    if not isinstance(backend, Mapping) or backend.get("kind") != "ray" or not backend.get("storage"):
        return None
    where = f"{str(backend['storage']).rstrip('/')}/run-{int(run_id)}"
    try:
        return progress(where)
    except (OSError, ValueError) as err:  # pyarrow's errors of a file system are both
        raise InputError(f"cannot read the progress of run {run_id} at {where}: {err}") from None


class Manifest:
    """Read-modify-write of ``manifest.json`` from the driver (the only writer)."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any]:
        data = self.storage.read_json(MANIFEST)
        return data if isinstance(data, dict) else {}

    def update(self, **fields: Any) -> dict[str, Any]:
        with self._lock:
            data = self.read()
            for key, value in fields.items():
                if isinstance(value, dict) and isinstance(data.get(key), dict):
                    data[key] = {**data[key], **value}
                else:
                    data[key] = value
            data["updated_at"] = time.time()
            self.storage.write_json(MANIFEST, data)
            return data


class Poller:
    """Polls the limiter every ``every`` seconds: the manifest's stage entry and the CLI's line."""

    def __init__(self, limiter: Any, manifest: Manifest, stage: str, *, total: int,
                 on_progress: Callable[[int, int, str], None] | None = None, every: float = 1.0):
        self.limiter, self.manifest, self.stage, self.total = limiter, manifest, stage, total
        self.on_progress, self.every = on_progress, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="linkqa-progress", daemon=True)
        self.last: dict[str, Any] = {}

    def __enter__(self) -> "Poller":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.poll()
        except Exception:  # noqa: BLE001 - the last line is a courtesy; the work is done
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - progress must never stop the work
                pass

    def poll(self) -> dict[str, Any]:
        import ray

        snap = ray.get(self.limiter.snapshot.remote(), timeout=30)
        self.last = snap
        entry = {"state": "running", "asked": self.total, "done": snap["done"], "failed": snap["failed"],
                 "in_flight": snap["in_flight"], "requests": snap["requests"], "cached": snap["cached"],
                 "tokens": snap["tokens"], "prompt_tokens": snap["prompt_tokens"],
                 "completion_tokens": snap["completion_tokens"], "usd": snap["usd"],
                 "budget_reached": snap["budget_reached"]}
        self.manifest.update(**{self.stage: entry})
        if self.on_progress is not None:
            finished = snap["done"] + snap["failed"]
            self.on_progress(min(finished, self.total), self.total,
                             f"{snap['done']:,} done, {snap['in_flight']:,} in flight, {snap['failed']:,} failed, "
                             f"{snap['tokens']:,} tokens")
        return snap

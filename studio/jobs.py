"""Long work in background threads that outlive a page: start once, reattach by key.

The registry lives in the process, so a browser reload or a page change finds the job
still running; progress that matters is in the database, and the job's own last
progress message is kept here for display.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from linkqa_core.errors import LinkQAError

__all__ = ["Job", "JobRegistry", "JOBS"]


@dataclass
class Job:
    key: str
    thread: threading.Thread | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    done: int = 0
    total: int = 0
    message: str = ""
    result: Any = None
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.done, self.total, self.message = done, total, message

    def stop(self) -> None:
        self.stop_event.set()


class JobRegistry:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def start(self, key: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
        """Run ``fn(*args, progress=job.progress, stop_event=job.stop_event, **kwargs)`` once per key."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.running:
                return job
            job = Job(key)
            self._jobs[key] = job

        def target() -> None:
            try:
                job.result = fn(*args, progress=job.progress, stop_event=job.stop_event, **kwargs)
            except LinkQAError as err:
                job.error = str(err)
            except Exception as err:  # a crash in the job must reach the page, not vanish
                job.error = f"{type(err).__name__}: {err}"
                job.message = traceback.format_exc(limit=3)
            finally:
                job.finished_at = time.time()

        job.thread = threading.Thread(target=target, name=f"linkqa-job-{key}", daemon=True)
        job.thread.start()
        return job


JOBS = JobRegistry()

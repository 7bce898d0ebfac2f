"""Pacing requests: token buckets for rpm/tpm, ``Retry-After`` and back-off.

A server that is busy says how long to wait in one of three ways: ``retry-after-ms``
(milliseconds; OpenAI's SDK reads it first), ``Retry-After`` in seconds, or
``Retry-After`` as an HTTP-date (RFC 9110 §10.2.3). :func:`retry_after` reads all
three and caps the wait at :data:`MAX_RETRY_AFTER_S` (a server asking for an hour is
asking for a batch to stall). :func:`backoff` is exponential back-off with full jitter,
never shorter than what the server asked for.

>>> retry_after({"retry-after-ms": "1500"})
1.5
>>> retry_after({"retry-after": "86400"})
600.0
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from typing import Any, Callable, Optional

__all__ = ["Bucket", "retry_after", "backoff", "MAX_RETRY_AFTER_S"]

MAX_RETRY_AFTER_S = 600.0


def _header(headers: Any, name: str) -> Optional[str]:
    if headers is None:
        return None
    value = headers.get(name)
    if value is None and hasattr(headers, "items"):
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    return None if value is None else str(value).strip()


def retry_after(headers: Any, *, now: Callable[[], float] = time.time) -> Optional[float]:
    """Seconds the server asked us to wait (capped at :data:`MAX_RETRY_AFTER_S`), or ``None``."""
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        try:
            return min(MAX_RETRY_AFTER_S, max(0.0, float(ms) / 1000.0))
        except ValueError:
            pass
    value = _header(headers, "retry-after")
    if value is None or not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - now()
    if seconds != seconds:  # NaN
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def backoff(attempt: int, base_s: float, max_s: float, asked: Optional[float] = None,
            rng: Callable[[float, float], float] = random.uniform) -> float:
    """The wait before attempt ``attempt + 1``: full jitter over ``min(max_s, base_s * 2**(attempt-1))``,
    at least ``asked`` (the server's ``Retry-After``)."""
    delay = rng(0.0, min(max_s, base_s * 2 ** (attempt - 1)))
    return max(delay, asked) if asked is not None else delay


class Bucket:
    """A token bucket on the event loop: ``rate`` per second, at most ``capacity`` banked.

    A take larger than the capacity waits for a full bucket and then goes into debt, so a
    single huge request is slowed, not refused.
    """

    def __init__(self, rate: float, capacity: float):
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float) -> None:
        need = min(amount, self.capacity)
        for _ in range(1_000_000):  # bounded; each turn waits for the refill it needs
            self._refill()
            if self.level >= need:
                self.level -= amount
                return
            await asyncio.sleep(max(0.001, (need - self.level) / self.rate))

    def give_back(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + amount)

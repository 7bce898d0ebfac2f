"""One rate limit and one budget for the whole cluster: a named actor that hands out requests.

A per-actor limit would let ``actors x rpm`` through, or waste the share of an idle actor.
Instead every model actor asks the one :class:`ClusterLimiter` of the job for leave to send
a few requests at a time (``acquire(n)`` grants up to ``n``), and reports what they cost
when they are done. The limiter keeps

- a token bucket of requests per minute (``rpm``: ``rpm / 60`` a second, at most one
  second's worth banked, as the local client's bucket), and one of tokens (``tpm``: a
  request takes its estimated prompt plus the average completion, the difference is given
  back when it reports);
- the budget (``budget_tokens`` / ``budget_usd``), counted from what earlier attempts of
  the run already spent: no grant once it is spent, and none that the requests already
  granted would probably spend (their average cost so far times how many are out), so the
  overshoot stays within the requests in flight -- the same rule as the local client;
- the counters the progress line and the manifest show: requests done, in flight, failed,
  cached, tokens, USD.

A grant counts a request, not an HTTP attempt: a retried request is not charged twice (a
server that answers 429 says when to come back, and the client waits that long). Cache hits
are charged too (the cache is looked up after the grant); after a restart only the few
answers paid for but not yet stored are hits, so this costs next to nothing.

The class is plain Python (tested without Ray); :func:`start_limiter` makes it an actor.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LimitSettings", "ClusterLimiter", "start_limiter", "BUDGET_REACHED"]

BUDGET_REACHED = "budget reached"
_MAX_WAIT_S = 1.0  # an acquire returns within this, granted or not, so actors notice a stop


@dataclass(frozen=True)
class LimitSettings:
    rpm: int | None = None
    tpm: int | None = None
    budget_tokens: int | None = None
    budget_usd: float | None = None
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    spent_tokens: int = 0
    spent_usd: float = 0.0

    @property
    def limited(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.budget_tokens, self.budget_usd))

    @classmethod
    def of(cls, settings: Any, *, spent_tokens: int = 0, spent_usd: float = 0.0) -> "LimitSettings":
        """The cluster-wide part of :class:`~linkqa_core.llm.client.LLMSettings`."""
        return cls(rpm=settings.rpm, tpm=settings.tpm, budget_tokens=settings.budget_tokens,
                   budget_usd=settings.budget_usd, price_in_per_mtok=settings.price_in_per_mtok or 0.0,
                   price_out_per_mtok=settings.price_out_per_mtok or 0.0, spent_tokens=spent_tokens,
                   spent_usd=spent_usd)


class _Bucket:
    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def refill(self) -> float:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.level

    def wait_for(self, amount: float) -> float:
        return max(0.001, (min(amount, self.capacity) - self.level) / self.rate)


class ClusterLimiter:
    """The limiter's state and rules (an async Ray actor when started by :func:`start_limiter`)."""

    def __init__(self, limits: LimitSettings):
        self.limits = limits
        self.rpm = _Bucket(limits.rpm) if limits.rpm else None
        self.tpm = _Bucket(limits.tpm) if limits.tpm else None
        self.outstanding = 0
        self.counts = {"granted": 0, "requests": 0, "cached": 0, "errors": 0, "done": 0, "failed": 0,
                       "prompt_tokens": 0, "completion_tokens": 0, "calls_with_tokens": 0}
        self.usd = 0.0
        self.stopped = False
        self.started_at = time.time()

    # -- the rules --------------------------------------------------------------------

    def _spent(self) -> tuple[float, float]:
        c = self.counts
        return (self.limits.spent_tokens + c["prompt_tokens"] + c["completion_tokens"], self.limits.spent_usd + self.usd)

    def budget_reached(self) -> bool:
        tokens, usd = self._spent()
        lim = self.limits
        return (lim.budget_tokens is not None and tokens >= lim.budget_tokens) or \
            (lim.budget_usd is not None and usd >= lim.budget_usd)

    def _budget_room(self) -> float:
        """How many more requests the budget allows now (inf without one)."""
        lim = self.limits
        if lim.budget_tokens is None and lim.budget_usd is None:
            return math.inf
        calls = self.counts["calls_with_tokens"]
        if calls == 0:  # no cost known yet: one request at a time until the first reports
            return 1 - self.outstanding
        tokens, usd = self._spent()
        room = math.inf
        if lim.budget_tokens is not None:
            avg = (self.counts["prompt_tokens"] + self.counts["completion_tokens"]) / calls
            room = min(room, (lim.budget_tokens - tokens) / max(avg, 1e-9) - self.outstanding)
        if lim.budget_usd is not None and self.usd > 0:
            room = min(room, (lim.budget_usd - usd) / (self.usd / calls) - self.outstanding)
        if self.outstanding == 0:
            # the budget is not reached but holds less than an average request: one more goes
            # (spending up to the budget, as on one machine); without it no request is out, no
            # report comes, and the job waits for ever (a Ray test hung on this)
            room = max(room, 1.0)
        return room

    def try_acquire(self, n: int, est_tokens: float = 0.0) -> tuple[int, str | None, float]:
        """``(granted, why not, seconds to wait)`` -- granted 0 with a reason means never."""
        if self.stopped:
            return 0, "stopped", 0.0
        if self.budget_reached():
            return 0, BUDGET_REACHED, 0.0
        allowed = float(n)
        wait = 0.05
        room = self._budget_room()
        allowed = min(allowed, math.floor(room)) if room != math.inf else allowed
        if self.rpm is not None:
            level = self.rpm.refill()
            allowed = min(allowed, math.floor(level))
            if allowed < 1:
                wait = self.rpm.wait_for(1)
        if self.tpm is not None and allowed >= 1:
            level = self.tpm.refill()
            each = max(1.0, est_tokens)
            fit = math.floor(level / each)
            if fit < 1 and level >= self.tpm.capacity:  # one request larger than a full bucket: let it into debt
                fit = 1
            allowed = min(allowed, fit)
            if allowed < 1:
                wait = self.tpm.wait_for(each)
        granted = int(max(0, allowed))
        if granted:
            if self.rpm is not None:
                self.rpm.level -= granted
            if self.tpm is not None:
                self.tpm.level -= granted * max(1.0, est_tokens)
            self.outstanding += granted
            self.counts["granted"] += granted
        return granted, None, wait

    async def acquire(self, n: int, est_tokens: float = 0.0) -> tuple[int, str | None]:
        """Up to ``n`` requests may start; waits up to a second for at least one."""
        deadline = time.monotonic() + _MAX_WAIT_S
        while True:
            granted, why, wait = self.try_acquire(n, est_tokens)
            if granted or why is not None or time.monotonic() >= deadline:
                return granted, why
            await asyncio.sleep(min(wait, max(0.001, deadline - time.monotonic())))

    def report(self, *, returned: int = 0, requests: int = 0, cached: int = 0, errors: int = 0, done: int = 0,
               failed: int = 0, prompt_tokens: int = 0, completion_tokens: int = 0, calls_with_tokens: int = 0,
               est_tokens: float = 0.0) -> None:
        """What ``returned`` granted requests came to (unused grants are returned with nothing else)."""
        self.outstanding = max(0, self.outstanding - returned)
        c = self.counts
        c["requests"] += requests
        c["cached"] += cached
        c["errors"] += errors
        c["done"] += done
        c["failed"] += failed
        c["prompt_tokens"] += prompt_tokens
        c["completion_tokens"] += completion_tokens
        c["calls_with_tokens"] += calls_with_tokens
        lim = self.limits
        self.usd += (prompt_tokens * lim.price_in_per_mtok + completion_tokens * lim.price_out_per_mtok) / 1e6
        if self.tpm is not None:
            self.tpm.refill()
            spent = prompt_tokens + completion_tokens
            self.tpm.level = min(self.tpm.capacity, self.tpm.level + returned * max(1.0, est_tokens) - spent)

    def stop(self) -> None:
        self.stopped = True

    def snapshot(self) -> dict[str, Any]:
        tokens, usd = self._spent()
        return {**self.counts, "in_flight": self.outstanding, "usd": round(self.usd, 6),
                "tokens": self.counts["prompt_tokens"] + self.counts["completion_tokens"],
                "spent_tokens_total": int(tokens), "spent_usd_total": round(usd, 6),
                "budget_reached": self.budget_reached(), "limits": asdict(self.limits),
                "seconds": round(time.time() - self.started_at, 3)}


def start_limiter(name: str, limits: LimitSettings, namespace: str = "linkqa") -> Any:
    """The job's limiter actor (a fresh one: an old one of the same name is ended first)."""
    import ray

    try:
        old = ray.get_actor(name, namespace=namespace)
        ray.kill(old)
    except ValueError:
        pass
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # on the driver's node: a worker node that dies must not take the job's counters with it
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor_cls = ray.remote(num_cpus=0, max_restarts=0)(_AsyncLimiter)
    handle = actor_cls.options(name=name, namespace=namespace, scheduling_strategy=here).remote(limits)
    ray.get(handle.snapshot.remote())
    return handle


class _AsyncLimiter(ClusterLimiter):
    """The actor form: async methods, so many acquires wait at once without blocking reports."""

    async def acquire(self, n: int, est_tokens: float = 0.0) -> tuple[int, str | None]:  # type: ignore[override]
        return await ClusterLimiter.acquire(self, n, est_tokens)

    async def report_many(self, reports: list[dict[str, Any]]) -> None:
        for r in reports:
            self.report(**r)

    async def snapshot(self) -> dict[str, Any]:  # type: ignore[override]
        return ClusterLimiter.snapshot(self)

    async def stop(self) -> None:  # type: ignore[override]
        ClusterLimiter.stop(self)

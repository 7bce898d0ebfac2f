"""A drop-in LLM client whose requests run on the cluster's model actors.

Knowledge-point extraction and difficulty enhancement keep their inputs and outputs in the
SQLite file (seeds and KPs; items, their ratings, rewrites and lineage), and their stage
code drives the model through a client's ``complete_many`` (extraction repairs a batch's
broken answer, enhancement rates, rewrites, re-rates and checks in rounds). On Ray they run
that same code unchanged -- same prompts, same parsing, same rounds -- with this client:
each ``complete_many`` is cut into chunks that a pool of actors (each an
:class:`~linkqa_core.llm.client.LLMClient` with the shared cache) answers concurrently, under
the cluster's limiter (rate and budget for every actor at once). The driver only builds
requests and stores results, which is cheap next to the model.

It offers what the stages use of a client: ``settings``, ``complete``, ``complete_many``
(``on_result`` in the calling thread as chunks come back; requests the budget did not
allow come back unstarted), ``usage``, ``budget_reached``, ``forget`` and ``close``.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any, Callable, Optional, Sequence

from ..llm.ledger import Usage, usd_of
from .actors import worker_settings
from .cache import CacheStore
from .cluster import NAMESPACE
from .limiter import BUDGET_REACHED, LimitSettings, start_limiter
from .settings import ScaleSettings
from .storage import Storage

__all__ = ["ClusterClient"]


class _RequestActor:
    """One model actor: an LLMClient over the shared cache; answers a chunk of requests."""

    def __init__(self, settings: Any, storage: str, limiter: str | None, limited: bool):
        from ..llm.client import LLMClient

        self.cache_store = CacheStore(Storage(storage))
        self.client = LLMClient(settings, store=self.cache_store)
        self.limited = limited
        self.limiter = None
        if limiter:
            import ray

            self.limiter = ray.get_actor(limiter, namespace=NAMESPACE)

    def run(self, reqs: list[Any]) -> list[Any]:
        import ray
        from ..llm.client import ChatResult

        n = len(reqs)
        granted = n
        if self.limited and self.limiter is not None:
            granted = 0
            while granted < n:
                got, why = ray.get(self.limiter.acquire.remote(n - granted, 0.0))
                if why is not None:
                    break
                granted += got
        results = self.client.complete_many(reqs[:granted]) if granted else []
        self.cache_store.cache.flush()  # in the shared cache before the driver stores them
        self.cache_store.llm.drain()
        if self.limiter is not None:
            self.limiter.report_many.remote([{
                "returned": granted, "requests": sum(1 for r in results if r.attempts),
                "cached": sum(1 for r in results if r.cached), "errors": sum(1 for r in results if r.error),
                "done": sum(1 for r in results if not r.error), "failed": sum(1 for r in results if r.error),
                "prompt_tokens": sum(r.prompt_tokens for r in results),
                "completion_tokens": sum(r.completion_tokens for r in results),
                "calls_with_tokens": sum(1 for r in results if r.total_tokens)}])
        return list(results) + [ChatResult(error=BUDGET_REACHED) for _ in range(n - granted)]


class ClusterClient:
    """``complete_many`` over ``scale.actors`` actors; use inside :func:`~linkqa_core.scale.cluster.connect`."""

    def __init__(self, settings: Any, scale: ScaleSettings, storage: Storage, *, name: str = "client",
                 spent_tokens: int = 0, chunk: int = 16):
        import ray

        self.settings = settings
        self.scale = scale
        self.chunk = chunk
        self._usage = Usage()
        self._lock = threading.Lock()
        limits = LimitSettings.of(settings, spent_tokens=spent_tokens)
        self._limiter_name = f"linkqa-limiter-{name}"
        self.limiter = start_limiter(self._limiter_name, limits, NAMESPACE)
        # a threaded actor: each takes as many chunks at once as it is sent (one at a time
        # would keep only ``chunk`` requests in flight per actor, not ``concurrency``)
        actor = ray.remote(num_cpus=scale.actor_cpus, max_restarts=-1, max_task_retries=-1,
                           max_concurrency=self._chunks_per_actor())(_RequestActor)
        wsettings = worker_settings(settings, scale.concurrency)
        self.actors = [actor.options(scheduling_strategy="SPREAD").remote(wsettings, storage.uri, self._limiter_name,
                                                                          limits.limited)
                       for _ in range(scale.actors)]
        self._reached = False

    def _chunks_per_actor(self) -> int:
        """Chunks sent to one actor at once: its ``concurrency`` in requests, and one chunk more
        so it has the next chunk at hand when one finishes."""
        return max(2, self.scale.concurrency // self.chunk + 1)

    @property
    def usage(self) -> Usage:
        return replace(self._usage)

    @property
    def budget_reached(self) -> bool:
        return self._reached

    def complete(self, req: Any) -> Any:
        return self.complete_many([req])[0]

    def complete_many(self, reqs: Sequence[Any], on_result: Optional[Callable[[int, Any], None]] = None,
                      stop_event: Optional[threading.Event] = None) -> list[Any]:
        import ray

        reqs = list(reqs)
        results: list[Any] = [None] * len(reqs)
        chunks = [list(range(k, min(k + self.chunk, len(reqs)))) for k in range(0, len(reqs), self.chunk)]
        per_actor = self._chunks_per_actor()
        pending: dict[Any, list[int]] = {}
        load = {i: 0 for i in range(len(self.actors))}
        owner: dict[Any, int] = {}
        queue = list(reversed(chunks))

        def submit() -> None:
            while queue and (stop_event is None or not stop_event.is_set()):
                a = min(load, key=load.__getitem__)
                if load[a] >= per_actor:
                    return
                idx = queue.pop()
                ref = self.actors[a].run.remote([reqs[i] for i in idx])
                pending[ref] = idx
                owner[ref] = a
                load[a] += 1

        submit()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                idx = pending.pop(ref)
                load[owner.pop(ref)] -= 1
                for i, r in zip(idx, ray.get(ref)):
                    results[i] = r
                    self._count(r)
                    if on_result is not None and (r.attempts or r.cached):
                        on_result(i, r)
            submit()
        from ..llm.client import ChatResult

        why = BUDGET_REACHED if self._reached else "stopped"
        return [r if r is not None else ChatResult(error=why) for r in results]

    def _count(self, r: Any) -> None:
        with self._lock:
            u = self._usage
            if r.attempts:
                u.requests += 1
            if r.cached:
                u.cached += 1
            if r.error and (r.attempts or r.cached):
                u.errors += 1
            if r.error == BUDGET_REACHED and not r.attempts:
                self._reached = True
            u.prompt_tokens += r.prompt_tokens
            u.completion_tokens += r.completion_tokens
            u.reasoning_tokens += r.reasoning_tokens
            u.usd += usd_of(r.prompt_tokens, r.completion_tokens, self.settings)
            u.estimated += int(r.estimated)

    def forget(self, req: Any) -> bool:
        return False

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)
        ray.kill(self.limiter)
        self.actors = []

    def __enter__(self) -> "ClusterClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

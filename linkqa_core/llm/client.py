"""The one client every LLM stage uses: concurrency, retries, output modes, cache, budget.

(Longer than our usual module: :class:`LLMClient` is one object whose two halves -- the
calling thread's side and the event loop's side -- share its state; everything that is
not that orchestration lives in the sibling modules named below.)

Any OpenAI-compatible endpoint works (OpenAI, vLLM, SGLang, llama.cpp, Ollama, DeepSeek).
Settings come from :func:`~linkqa_core.llm.settings.load_settings`; the key is never
written to the database, a log, an exception message or a ``repr``
(:mod:`~linkqa_core.llm.scrub`).

Typical use in a stage::

    client = LLMClient(settings, store)
    reqs = [ChatRequest.user(prompt, stage="synthesis", run_id=run_id) for prompt in prompts]
    client.complete_many(reqs, on_result=lambda i, r: save_item(i, r))

How it works. One background thread runs an asyncio event loop with one
:class:`openai.AsyncOpenAI` client per endpoint; ``complete_many`` keeps up to
``concurrency`` requests in flight across all endpoints (the least busy endpoint gets the
next request) and hands each result back to the *calling* thread as it arrives, so
``on_result`` may touch the database or the UI. Plain ``http://`` endpoints use the
keep-alive transport of :mod:`~linkqa_core.llm.transport` (``fast_http=False`` uses the
SDK's everywhere).

A request for JSON goes out in the endpoint's structured-output mode
(:mod:`~linkqa_core.llm.modes`); a refusal of the mode moves the endpoint down one mode
and sends the request again, not counted as an attempt. What every other failure means
is :mod:`~linkqa_core.llm.failures`:

- **retried** (408/409/425/429/5xx, dropped connections, time-outs, bodies that are not
  JSON): up to ``max_retries`` times with back-off and full jitter, at least
  ``Retry-After`` (capped at 600 s; the endpoint pauses meanwhile). After the last attempt
  the result carries ``error`` ("gave up after 6 attempts; last error: HTTP 503: ...")
  and ``transient=True``: nothing is wrong with the request; ask again later.
- **that request's error** (400, 413, 422): the batch goes on.
  :meth:`LLMClient.complete` raises :class:`~linkqa_core.errors.LLMError` for these.
- **the batch stops** (401, 403, 404, a 400 "model does not exist"): every request would
  fail the same way; the requests in flight finish, then :class:`LLMError` is raised.
- **the endpoint is down**: after ``outage_after`` requests in a row gave up, no new
  request starts; the rest come back with ``error == ENDPOINT_DOWN`` (unstarted) and
  :class:`~linkqa_core.llm.failures.EndpointDown` is raised after the requests in flight.

A 200 whose content is blank (DeepSeek's JSON mode sometimes answers spaces) is asked
again once; blank twice is that request's error, never a result to store.

Cache (:mod:`~linkqa_core.llm.ledger`): a hit returns at once with ``cached=True`` and
zero tokens; identical requests inside one batch are sent once. Bump
``ChatRequest.variant`` for a fresh sample of the same prompt, or set ``cache=False``.

Budget (``budget_tokens`` = prompt + completion tokens, ``budget_usd`` from the prices):
counted over the client's life, starting from ``spent=`` (what the run spent before, see
:meth:`~linkqa_core.llm.ledger.Usage.from_store`). Once spent, no new request starts;
requests in flight finish and are delivered -- the overshoot is at most what was in
flight, ``concurrency`` requests' worth; while results arrive the client also holds back
new requests when the requests already in flight would probably cross the budget. Every
request that never started comes back with ``error == BUDGET_REACHED`` and ``attempts ==
0``, is *not* passed to ``on_result`` and is not logged. A server that omits ``usage`` is
charged an estimate from the text (the result and the log say ``estimated``).

Every call -- hit or miss, success or error -- is logged to ``llm_calls`` (status
``ok`` / ``cached`` / ``error``, tokens, USD, latency, attempts, endpoint without
credentials, error text with the key scrubbed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import threading
import time
import weakref
from dataclasses import replace
from typing import Any, Callable, Iterable, Optional, Sequence

import httpx2
import openai

from ..errors import ConfigError, LLMError
from . import ledger, modes
from .chat import BUDGET_REACHED, ENDPOINT_DOWN, STOPPED, ChatRequest, ChatResult
from .failures import EndpointDown, Failure, classify, error_line, hint
from .ledger import CostEstimate, Usage, cache_key, estimate_cost
from .modes import ModeState
from .ratelimit import Bucket, backoff, retry_after
from .replies import BadBody, read_completion, split_reasoning
from .scrub import display_url, guard_logs, scrubber_for
from .settings import DEFAULT_BASE_URL, LLMSettings, load_settings, settings_from_mapping
from .loopstate import Attempt, Control, Endpoint, Job, Outcome, Throughput, as_hit
from .transport import FastTransport, base_and_query, proxied

__all__ = [
    "LLMSettings",
    "load_settings",
    "settings_from_mapping",
    "ChatRequest",
    "ChatResult",
    "Usage",
    "CostEstimate",
    "Throughput",
    "LLMClient",
    "estimate_cost",
    "test_connection",
    "split_reasoning",
    "cache_key",
    "measure_throughput",
    "BUDGET_REACHED",
    "STOPPED",
    "ENDPOINT_DOWN",
    "DEFAULT_BASE_URL",
]

log = logging.getLogger("linkqa_core.llm")

_LANE_SIZE = 32  # connections per SDK client on the default transport (its pool scans are O(n))


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The loop thread: run until stopped, then close the loop (which also ends the default
    executor's threads) -- here, because a client dropped without close() is often freed
    on this very thread, where its finalizer can stop the loop but neither join nor close it."""
    try:
        loop.run_forever()
    finally:
        loop.close()


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)
    if thread is not threading.current_thread():
        thread.join(timeout=5)


class LLMClient:
    """Chat completions with concurrency, retries, output modes, rate limits, cache, budget and a log.

    Thread-safe: several threads may call :meth:`complete` at once; together they never
    exceed ``concurrency`` requests in flight. Call :meth:`close` (or use ``with``) when
    done; it stops the background event loop thread.
    """

    def __init__(self, settings: LLMSettings, store: Any = None, *, spent: Optional[Usage] = None):
        if not settings.base_urls:
            raise ConfigError("no LLM endpoint: set OPENAI_BASE_URL (or OPENAI_API_KEY for api.openai.com)")
        if not settings.model:
            raise ConfigError("no model: set LINKQA_MODEL or pass model=")
        self.settings = settings
        self.store = store
        self._scrub = scrubber_for(settings)
        guard_logs(self._scrub)
        self._usage = replace(spent) if spent is not None else Usage()
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._endpoints: list[Endpoint] = []
        self._http: list[Any] = []
        self._closed = False
        self._finalizer: Optional[weakref.finalize] = None
        self._known_modes: dict[tuple[str, str], str] = {}
        self._mode_events: list[tuple[str, str, str, str]] = []  # (endpoint, model, mode, detail) to store
        # event-loop state (touched only on the loop thread)
        self._sem: Optional[asyncio.Semaphore] = None
        self._done_event: Optional[asyncio.Event] = None
        self._rpm: Optional[Bucket] = None
        self._tpm: Optional[Bucket] = None
        self._in_flight = 0
        self._finished_calls = 0
        self._finished_tokens = 0
        self._avg_completion = 256.0
        self._failed_in_row = 0
        self._down: Optional[str] = None

    def __repr__(self) -> str:
        urls = ", ".join(display_url(u) for u in self.settings.base_urls)
        return f"<LLMClient {self.settings.model!r} at {urls} concurrency={self.settings.concurrency}>"

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
            self._closed = True
        if loop is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        try:
            asyncio.run_coroutine_threadsafe(self._aclose(), loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - closing must not fail the caller
            log.debug("closing the HTTP clients failed", exc_info=False)  # pragma: no mutate
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)  # the thread closes the loop as it ends (_run_loop)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise LLMError("this LLM client is closed")
            if self._loop is not None:
                return self._loop
            if self.store is not None:
                self._known_modes = {(r["endpoint"], r["model"]): r["mode"] for r in self.store.llm.modes()}
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=_run_loop, args=(loop,), name="linkqa-llm", daemon=True)
            thread.start()
            try:
                asyncio.run_coroutine_threadsafe(self._astart(), loop).result(timeout=30)
            except BaseException:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=5)
                raise
            self._loop, self._thread = loop, thread
            # a client dropped without close() must not leave its thread running
            self._finalizer = weakref.finalize(self, _stop_loop, loop, thread)
            return loop

    async def _astart(self) -> None:
        s = self.settings
        self._sem = asyncio.Semaphore(s.concurrency)
        self._done_event = asyncio.Event()
        if s.rpm:
            self._rpm = Bucket(s.rpm / 60.0, s.rpm / 60.0)
        if s.tpm:
            self._tpm = Bucket(s.tpm / 60.0, s.tpm / 60.0)
        timeout = httpx2.Timeout(s.timeout_s, connect=min(s.timeout_s, 10.0))
        api_key = s.api_key or "EMPTY"  # keyless local servers; the SDK insists on one
        for url in s.base_urls:
            fast = s.fast_http and url.startswith("http://") and not proxied(url)
            n_lanes = 1 if fast else max(1, math.ceil(s.concurrency / _LANE_SIZE))
            per_lane = math.ceil(s.concurrency / n_lanes) + 4
            base, query = base_and_query(url)
            lanes = []
            for _ in range(n_lanes):
                try:
                    if fast:
                        http = httpx2.AsyncClient(transport=FastTransport(max_idle=s.concurrency + 8), timeout=timeout)
                    else:
                        limits = httpx2.Limits(max_connections=per_lane, max_keepalive_connections=per_lane)
                        http = httpx2.AsyncClient(limits=limits, timeout=timeout, follow_redirects=True)
                except OSError as err:  # the TLS set-up reads SSL_CERT_FILE / SSL_CERT_DIR now
                    raise ConfigError(tls_problem(err)) from None
                self._http.append(http)
                lanes.append(openai.AsyncOpenAI(base_url=base, api_key=api_key, max_retries=0, timeout=timeout,
                                                http_client=http, default_query=query or None))
            self._endpoints.append(Endpoint(url, lanes))

    async def _aclose(self) -> None:
        for http in self._http:
            try:
                await http.aclose()
            except Exception:  # noqa: BLE001
                pass

    # -- public calls ----------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """A snapshot of what this client has spent (including ``spent=``)."""
        return replace(self._usage)

    @property
    def budget_reached(self) -> bool:
        s, u = self.settings, self._usage
        if s.budget_tokens is not None and u.total_tokens >= s.budget_tokens:
            return True
        return s.budget_usd is not None and u.usd >= s.budget_usd

    @property
    def endpoint_down(self) -> Optional[str]:
        """Why the client stopped sending (an outage), or ``None``."""
        return self._down

    def modes(self) -> dict[str, dict[str, str]]:
        """The structured-output mode of each endpoint (display URL) per model, as known now."""
        out: dict[str, dict[str, str]] = {}
        for (endpoint, model), mode in self._known_modes.items():
            out.setdefault(endpoint, {})[model] = mode
        for ep in self._endpoints:
            for model, state in ep.modes.items():
                out.setdefault(ep.display, {})[model] = state.mode
        return out

    def complete(self, req: ChatRequest) -> ChatResult:
        """One request, blocking. Raises :class:`LLMError` for a non-retryable 4xx;
        other failures come back as ``result.error``."""
        return self._run([req], None, None, fatal_all_4xx=True)[0]

    def complete_many(
        self,
        reqs: Sequence[ChatRequest],
        on_result: Optional[Callable[[int, ChatResult], None]] = None,
        stop_event: Optional[threading.Event] = None,
    ) -> list[ChatResult]:
        """Run ``reqs`` with up to ``concurrency`` in flight; results in request order.

        ``on_result(index, result)`` is called in the calling thread as each result
        arrives (cache hits first), after its ``llm_calls`` row is written. Setting
        ``stop_event`` stops new requests from starting: the ones in flight finish, the
        rest come back with ``error == STOPPED``. The budget works the same way with
        ``BUDGET_REACHED``. If ``on_result`` raises, no new request starts, the ones in
        flight finish (unreported) and the exception propagates.
        """
        return self._run(list(reqs), on_result, stop_event, fatal_all_4xx=False)

    def forget(self, req: ChatRequest) -> bool:
        """Drop a request's cached answer; True if there was one."""
        if self.store is None:
            return False
        return self.store.llm.forget(cache_key(req, self.settings))

    # -- the calling thread's side ---------------------------------------------------------

    def _plan(self, reqs: list[ChatRequest]) -> tuple[list[Job], dict[str, list[int]]]:
        """One job per distinct request; identical cached requests follow their leader."""
        jobs: list[Job] = []
        followers: dict[str, list[int]] = {}
        leaders: set[str] = set()
        for i, req in enumerate(reqs):
            body = ledger.request_body(req, self.settings)
            key = ledger.key_of(body, req.variant)
            if req.cache and key in leaders:
                followers.setdefault(key, []).append(i)
                continue
            if req.cache:
                leaders.add(key)
            jobs.append(Job(i, key, body, req, structured=modes.structured(body)))
        return jobs, followers

    def _run(
        self,
        reqs: list[ChatRequest],
        on_result: Optional[Callable[[int, ChatResult], None]],
        stop_event: Optional[threading.Event],
        *,
        fatal_all_4xx: bool,
    ) -> list[ChatResult]:
        n = len(reqs)
        results: list[Optional[ChatResult]] = [None] * n
        if n == 0:
            return []
        jobs, followers = self._plan(reqs)
        hits = self._cache_lookup([j for j in jobs if j.req.cache])
        misses = [j for j in jobs if j.key not in hits or not j.req.cache]
        control = Control(stop_event)
        out: "queue.Queue[Outcome]" = queue.Queue()
        future = None
        if misses:
            loop = self._ensure_loop()
            future = asyncio.run_coroutine_threadsafe(self._abatch(misses, out, control, fatal_all_4xx), loop)

        pending_error: Optional[BaseException] = None
        fatal: Optional[Outcome] = None

        def deliver(outcomes: list[Outcome]) -> None:
            nonlocal pending_error, fatal
            expanded: list[Outcome] = []
            for o in outcomes:
                expanded.append(o)
                if o.job is not None and o.job.req.cache:
                    for fi in followers.get(o.job.key, ()):
                        if o.result.ok:
                            expanded.append(Outcome(fi, as_hit(o.result), o.job, logged=True))
                            with self._lock:
                                self._usage.cached += 1
                        else:
                            expanded.append(Outcome(fi, o.result, o.job, fatal=o.fatal, logged=False))
            self._record(expanded)
            for o in expanded:
                results[o.index] = o.result
                if o.fatal and fatal is None:
                    fatal = o
                    control.abort = True
                if pending_error is not None or on_result is None or o.fatal or not o.result.started:
                    continue  # never started (budget, stop, outage): nothing to report
                try:
                    on_result(o.index, o.result)
                except BaseException as err:  # noqa: BLE001 - re-raised below
                    pending_error = err
                    control.abort = True

        # cache hits first, while the network works on the misses
        hit_outcomes = [Outcome(job.index, hits[job.key], job) for job in jobs if job.req.cache and job.key in hits]
        for k in range(0, len(hit_outcomes), 500):
            deliver(hit_outcomes[k:k + 500])

        remaining = len(misses)
        try:
            while remaining > 0:
                try:
                    first = out.get(timeout=0.25)
                except queue.Empty:
                    if future is not None and future.done():
                        exc = future.exception()
                        if exc is not None:
                            raise LLMError(self._scrub(f"the LLM client failed: {type(exc).__name__}: {exc}")) from None
                        if out.empty():
                            break
                    continue
                batch = [first]
                if remaining > 1 and self.store is not None:
                    time.sleep(0.02)  # let a few more arrive: one transaction for all of them
                while len(batch) < 1000:
                    try:
                        batch.append(out.get_nowait())
                    except queue.Empty:
                        break
                remaining -= len(batch)
                deliver(batch)
        except BaseException:
            control.abort = True
            raise
        finally:
            self._store_modes()
        if pending_error is not None:
            raise pending_error
        if fatal is not None:
            raise LLMError(fatal.result.error or "the endpoint refused the request")
        if self._down is not None and any(r is not None and r.error == ENDPOINT_DOWN for r in results):
            raise EndpointDown(self._down)
        for i, r in enumerate(results):
            if r is None:  # unreachable unless the loop died; never return holes
                results[i] = ChatResult(error="no result (client closed?)", key="", transient=True)
        return results  # type: ignore[return-value]

    def _cache_lookup(self, jobs: list[Job]) -> dict[str, ChatResult]:
        if self.store is None or not jobs:
            return {}
        found = {key: ledger.from_cache(key, data) for key, data in self.store.llm.cached([j.key for j in jobs]).items()
                 if str(data.get("content") or "").strip()}
        if found:
            with self._lock:
                self._usage.cached += len(found)
        return found

    def _record(self, outcomes: list[Outcome]) -> None:
        """Write call-log rows and new cache entries in one short transaction."""
        if self.store is None:
            return
        from ..store.llm import CallRow

        s = self.settings
        calls = []
        cache_rows = []
        for o in outcomes:
            r, job = o.result, o.job
            if not o.logged or job is None or not r.started:
                continue
            status = "cached" if r.cached else ("ok" if r.ok else "error")
            calls.append(CallRow(job.req.run_id, job.req.stage, r.key, r.endpoint, r.model or job.body.get("model"),
                                 status, r.cached, r.attempts, r.prompt_tokens, r.completion_tokens,
                                 r.reasoning_tokens, r.latency_s, self._scrub(r.error) if r.error else None,
                                 ledger.usd_of(r.prompt_tokens, r.completion_tokens, s), r.estimated))
            if ledger.cacheable(r, job.req):
                cache_rows.append((r.key, ledger.cache_payload(r)))
        self.store.llm.record(calls, cache_rows)

    def _store_modes(self) -> None:
        with self._lock:
            events, self._mode_events = self._mode_events, []
        for endpoint, model, mode, detail in events:
            self._known_modes[(endpoint, model)] = mode
            if self.store is not None:
                try:
                    self.store.llm.set_mode(endpoint, model, mode, self._scrub(detail)[:500])
                except Exception as err:  # noqa: BLE001 - a lost note must not lose the batch
                    log.warning("could not store the output mode of %s: %s", endpoint, err)  # pragma: no mutate

    # -- the event loop's side ---------------------------------------------------------------

    async def _abatch(self, jobs: list[Job], out: "queue.Queue[Outcome]", control: Control,
                      fatal_all_4xx: bool) -> None:
        it = iter(jobs)
        workers = [asyncio.create_task(self._aworker(it, out, control, fatal_all_4xx))
                   for _ in range(min(self.settings.concurrency, len(jobs)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for w in workers:
                w.cancel()
            raise

    def _unstarted(self, job: Job, why: str) -> Outcome:
        return Outcome(job.index, ChatResult(error=why, key=job.key, transient=why == ENDPOINT_DOWN), job,
                        logged=False)

    async def _aworker(self, it: Iterable[Job], out: "queue.Queue[Outcome]", control: Control,
                       fatal_all_4xx: bool) -> None:
        assert self._sem is not None
        for job in it:
            why = await self._admit(control)
            if why is not None:
                out.put(self._unstarted(job, why))
                continue
            async with self._sem:
                why = await self._admit(control)  # the wait for a slot may have been long
                if why is not None:
                    out.put(self._unstarted(job, why))
                    continue
                self._in_flight += 1
                try:
                    result, kind = await self._acall(job, control)
                except BaseException as err:  # a bug must not lose the item
                    if isinstance(err, asyncio.CancelledError):
                        raise
                    log.exception("unexpected error in an LLM call")  # pragma: no mutate
                    result, kind = ChatResult(error=self._scrub(f"internal error: {type(err).__name__}"),
                                              key=job.key, attempts=1), None
                finally:
                    self._in_flight -= 1
                self._account(result)
                self._watch_outage(result, control)
            is_fatal = kind is Failure.BATCH or (fatal_all_4xx and kind is Failure.ITEM)
            if is_fatal:
                control.abort = True  # every other request would fail the same way
            out.put(Outcome(job.index, result, job, fatal=is_fatal))

    def _watch_outage(self, result: ChatResult, control: Control) -> None:
        """Count requests that gave up in a row; past ``outage_after`` the endpoint is down."""
        if result.transient and result.attempts and not control.stopped():
            self._failed_in_row += 1
            if self._failed_in_row >= self.settings.outage_after and self._down is None:
                shown = ", ".join(display_url(u) for u in self.settings.base_urls)
                self._down = self._scrub(
                    f"the endpoint {shown} failed {self._failed_in_row} requests in a row, each after "
                    f"{result.attempts} attempt(s) (last: {result.error}); stopped sending -- check that the "
                    "server is up and reachable, then run the same command again: the work not done is still to do")
                log.warning("%s", self._down)  # pragma: no mutate
        elif result.ok or not result.transient:
            self._failed_in_row = 0
        if self._down is not None:
            control.abort = True

    async def _admit(self, control: Control) -> Optional[str]:
        """``None`` if a new request may start, else why not. Waits while the requests in
        flight would probably spend the rest of the budget."""
        s = self.settings
        for _ in range(100_000):  # bounded: each turn waits for a request to finish
            if self._down is not None:
                return ENDPOINT_DOWN
            if control.abort or control.stopped():
                return STOPPED
            if self.budget_reached:
                return BUDGET_REACHED
            if s.budget_tokens is None and s.budget_usd is None:
                return None
            if self._in_flight == 0:
                return None
            if self._finished_calls == 0:  # no cost known yet: let the first call finish
                await self._wait_done()
                continue
            avg = self._finished_tokens / self._finished_calls
            over = s.budget_tokens is not None and self._usage.total_tokens + avg * self._in_flight >= s.budget_tokens
            if s.budget_usd is not None:
                avg_usd = self._usage.usd / max(1, self._usage.requests)
                over = over or self._usage.usd + avg_usd * self._in_flight >= s.budget_usd
            if not over:
                return None
            await self._wait_done()
        return BUDGET_REACHED

    async def _wait_done(self) -> None:
        assert self._done_event is not None
        self._done_event.clear()
        try:
            await asyncio.wait_for(self._done_event.wait(), timeout=0.5)
        except TimeoutError:
            pass

    def _account(self, r: ChatResult) -> None:
        s = self.settings
        with self._lock:
            u = self._usage
            if r.attempts:
                u.requests += 1
            if r.error:
                u.errors += 1
            u.prompt_tokens += r.prompt_tokens
            u.completion_tokens += r.completion_tokens
            u.reasoning_tokens += r.reasoning_tokens
            u.usd += ledger.usd_of(r.prompt_tokens, r.completion_tokens, s)
            u.estimated += int(r.estimated)
        if r.total_tokens:
            self._finished_calls += 1
            self._finished_tokens += r.total_tokens
            self._avg_completion = 0.9 * self._avg_completion + 0.1 * r.completion_tokens
        if self._done_event is not None:
            self._done_event.set()

    def _pick(self) -> tuple[Endpoint, int]:
        now = time.monotonic()
        ep = min(self._endpoints, key=lambda e: (e.paused_until > now, e.in_flight, e.sent))
        lane = min(range(len(ep.lanes)), key=ep.lane_load.__getitem__) if len(ep.lanes) > 1 else 0
        return ep, lane

    def _mode_state(self, ep: Endpoint, model: str) -> ModeState:
        state = ep.modes.get(model)
        if state is None:
            forced = self.settings.structured_output
            if forced != "auto":
                state = ModeState(mode=forced, settled=True, forced=True)
            elif (ep.display, model) in self._known_modes:
                state = ModeState(mode=self._known_modes[(ep.display, model)], settled=True)
            else:
                state = ModeState()
            ep.modes[model] = state
        return state

    def _note_mode(self, ep: Endpoint, model: str, state: ModeState, detail: str) -> None:
        with self._lock:
            self._mode_events.append((ep.display, model, state.mode, detail))
        log.info("%s: structured output for %s is now %s (%s)", ep.display, model, state.mode, detail)  # pragma: no mutate

    async def _acall(self, job: Job, control: Control) -> tuple[ChatResult, Optional[Failure]]:
        """One request with its retries, mode changes and blank-answer retry; returns
        (result, what kind of failure it was, or ``None``)."""
        s = self.settings
        model = str(job.body.get("model"))
        started = time.monotonic()
        spent = Attempt()
        last_error = ""
        status: Optional[int] = None
        refusals = 0
        ep = self._endpoints[0]
        while True:
            ep, lane = self._pick()
            state = self._mode_state(ep, model) if job.structured else None
            gate = None
            if state is not None and not state.settled:
                gate = state.gate()  # a fresh endpoint: find its mode with one request at a time
                await gate.acquire()
                if state.settled:
                    gate.release()
                    gate = None
            mode = state.mode if state is not None else None
            body = job.body_for(mode)
            retry_wait: Optional[float] = None
            try:
                wait = ep.paused_until - time.monotonic()
                if wait > 0:
                    await self._sleep(wait, control)
                if self._rpm is not None:
                    await self._rpm.take(1)
                reserved = 0.0
                if self._tpm is not None:
                    reserved = ledger.prompt_tokens_of(body) + min(float(body.get("max_tokens") or 1e9),
                                                                   self._avg_completion)
                    await self._tpm.take(reserved)
                spent.count += 1
                ep.in_flight += 1
                ep.lane_load[lane] += 1
                ep.sent += 1
                t0 = time.monotonic()
                try:
                    async with asyncio.timeout(s.timeout_s):
                        response = await ep.lanes[lane].post("/chat/completions", body=body, cast_to=httpx2.Response)
                    completion = read_completion(json.loads(response.content.decode("utf-8", errors="replace")))
                finally:
                    ep.in_flight -= 1
                    ep.lane_load[lane] -= 1
                result = self._success(job, ep, body, completion, spent, time.monotonic() - t0, mode)
                if self._tpm is not None:
                    self._tpm.give_back(reserved - result.total_tokens)
                if state is not None and state.settle():
                    self._note_mode(ep, model, state, state.detail or "answered")
                if not result.content.strip() and not result.truncated:
                    spent.blank += 1
                    if spent.blank < 2:
                        self._charge(spent, result)
                        log.info("%s: blank answer; asking again once", ep.display)  # pragma: no mutate
                        continue
                    return replace(result, error="the model answered with blank content twice", content=""), None
                return result, None
            except openai.APIStatusError as err:
                status = err.status_code
                message = self._scrub(error_line(status, None, _body_text(err)))
                last_error = f"HTTP {status}: {message}"
                kind = classify(status, message, structured="response_format" in body)
                if kind is Failure.MODE and state is not None and not state.forced:
                    spent.count -= 1  # a refused mode is not the item's attempt
                    refusals += 1
                    if state.step_down(mode or "", message):
                        self._note_mode(ep, model, state, state.detail)
                    if refusals <= len(modes.MODES) * len(self._endpoints):  # each endpoint steps down on its own
                        continue
                if kind is Failure.MODE:
                    why = (f"{ep.display} refuses structured_output={mode}: {last_error} -- set structured_output "
                           "to auto (or a weaker mode)")
                    return self._failure(job, ep, spent, started, why, status), Failure.BATCH
                if kind in (Failure.BATCH, Failure.ITEM):
                    log.warning("%s refused a request: %s", ep.display, last_error)  # pragma: no mutate
                    why = f"{ep.display} answered {last_error} -- {hint(status, message, job.body.get('model'))}"
                    return self._failure(job, ep, spent, started, why, status), kind
                retry_wait = retry_after(err.response.headers)
                if retry_wait is not None:
                    ep.paused_until = max(ep.paused_until, time.monotonic() + retry_wait)
            except (TimeoutError, openai.APITimeoutError):
                status = None
                last_error = f"timed out after {s.timeout_s:g} s"
            except openai.APIConnectionError as err:
                status = None
                cause = err.__cause__
                detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(err)
                last_error = self._scrub(f"connection error: {detail}")[:300]
            except BadBody as err:
                status = None
                last_error = str(err)
            except (ValueError, RecursionError) as err:  # the body was not JSON
                status = None
                last_error = f"invalid response body (not JSON: {type(err).__name__})"
            finally:
                if gate is not None:
                    gate.release()
            if spent.count > s.max_retries:
                log.warning("%s: gave up after %d attempts: %s", ep.display, spent.count, last_error)  # pragma: no mutate
                return self._failure(job, ep, spent, started, f"gave up after {spent.count} attempts; last error: "
                                     f"{last_error}", status, transient=True), Failure.RETRY
            delay = backoff(spent.count, s.backoff_base_s, s.backoff_max_s, retry_wait)
            log.info("%s: attempt %d failed (%s); retrying in %.2fs", ep.display, spent.count, last_error, delay)  # pragma: no mutate
            await self._sleep(delay, control)  # returns early on a stop, an abort or an outage: then no retry
            if control.abort or control.stopped() or self._down is not None:
                return self._failure(job, ep, spent, started, f"{STOPPED} after {spent.count} attempts; last error: "
                                     f"{last_error}", status, transient=True), Failure.RETRY

    @staticmethod
    def _charge(spent: Attempt, r: ChatResult) -> None:
        spent.prompt += r.prompt_tokens
        spent.completion += r.completion_tokens
        spent.reasoning += r.reasoning_tokens
        spent.estimated = spent.estimated or r.estimated

    def _success(self, job: Job, ep: Endpoint, body: dict[str, Any], c: Any, spent: Attempt, latency: float,
                 mode: Optional[str]) -> ChatResult:
        estimated = c.prompt_tokens is None or c.completion_tokens is None
        prompt = c.prompt_tokens if c.prompt_tokens is not None else ledger.prompt_tokens_of(body)
        completion = c.completion_tokens
        if completion is None:
            completion = ledger.estimate_tokens(c.content + (c.reasoning or ""))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s -> %s in %.2fs (%d attempt(s))", job.key[:12], ep.display, latency, spent.count)  # pragma: no mutate
        return ChatResult(
            content=c.content, reasoning=c.reasoning, prompt_tokens=prompt + spent.prompt,
            completion_tokens=completion + spent.completion, reasoning_tokens=c.reasoning_tokens + spent.reasoning,
            latency_s=latency, attempts=spent.count, endpoint=ep.display, model=c.model or job.body.get("model"),
            finish_reason=c.finish_reason, status=200, key=job.key, estimated=estimated or spent.estimated,
            mode=mode)

    async def _sleep(self, seconds: float, control: Control) -> None:
        end = time.monotonic() + seconds
        for _ in range(int(seconds / 0.25) + 2):  # wake up to notice a stop
            left = end - time.monotonic()
            if left <= 0 or control.abort or control.stopped():
                return
            await asyncio.sleep(min(left, 0.25))

    def _failure(self, job: Job, ep: Endpoint, spent: Attempt, started: float, error: str,
                 status: Optional[int], *, transient: bool = False) -> ChatResult:
        return ChatResult(error=self._scrub(error), attempts=spent.count, endpoint=ep.display,
                          model=job.body.get("model"), latency_s=time.monotonic() - started, status=status,
                          key=job.key, transient=transient, prompt_tokens=spent.prompt,
                          completion_tokens=spent.completion, reasoning_tokens=spent.reasoning,
                          estimated=spent.estimated)


def _body_text(err: openai.APIStatusError) -> str:
    try:
        return err.response.text
    except Exception:  # noqa: BLE001 - a body we cannot read says nothing
        return getattr(err, "message", "") or ""


# the connection probe and the throughput measure live in .probe; re-exported here
def tls_problem(err: OSError) -> str:
    """One line for an HTTPS set-up that failed, naming the certificate settings it read:
    a CA file that SSL_CERT_FILE names but that is not there raised a bare "No such file or
    directory", with neither the variable nor the path."""
    import os

    named = [f"{k}={os.environ[k]}" for k in ("SSL_CERT_FILE", "SSL_CERT_DIR") if os.environ.get(k)]
    why = err.strerror or str(err) or type(err).__name__
    return f"cannot set up HTTPS for the LLM endpoints: {why}" + (f" ({', '.join(named)})" if named else "")


from .probe import measure_throughput, test_connection  # noqa: E402

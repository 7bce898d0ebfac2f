"""The model actor: a stage's :class:`~linkqa_core.tasks.ModelTask` over Parquet batches, many requests in flight.

Why not ``ray.data.llm``: its HTTP processor keeps one request in flight per actor and
raises when its retries run out, so an actor would idle through every 30-second reasoning
answer and one bad item would fail the job. Here each actor of a Ray Data actor pool
(``map_batches`` with an async callable class) owns one :class:`~linkqa_core.llm.client.LLMClient`
-- the same client, retries, reply parsing and prompts as on one machine -- keeps up to
``concurrency`` requests in flight spread over the configured endpoints, and turns a
failed item into a stored failure, never an exception.

Per batch an actor: asks the cluster's limiter for leave to send a few requests at a time
(:mod:`.limiter`), runs them through the stage's task (:func:`~linkqa_core.tasks.run_task`)
with the shared request cache (:mod:`.cache`), writes the batch's rows as one Parquet shard
(so a crash loses at most the batches in flight), reports the cost and returns one summary
row per input for the progress line. Requests the budget did not allow are left out of the
shard, so a later attempt with more budget asks them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..tasks import Outcome, run_task
from .cache import CacheStore
from .storage import Storage

__all__ = ["Stage", "WorkerJob", "ModelWorker", "model_pool", "blocks_per_actor", "plan_filter", "SUMMARY_SCHEMA", "worker_settings"]

SUMMARY_SCHEMA = pa.schema([("path_index", pa.int64()), ("status", pa.string()), ("items", pa.int64()),
                            ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()),
                            ("cached", pa.bool_())])


class Stage(Protocol):
    """What a model stage tells the actor: its task, its inputs, its output rows."""

    name: str

    def task(self) -> Any:
        ...

    def inputs(self, table: pa.Table) -> list[tuple[Any, Any]]:
        """``(key, task input)`` per row of an input batch."""
        ...

    def rows(self, key: Any, x: Any, outcome: Outcome[Any], model: str) -> list[tuple]:
        ...

    def table(self, rows: Sequence[tuple]) -> pa.Table:
        ...

    def summary(self, key: Any, x: Any) -> int:
        """The path index (or other int) a summary row reports the input under."""
        ...


@dataclass(frozen=True)
class WorkerJob:
    """Everything an actor needs; pickled into the actor's constructor arguments.

    ``settings`` keeps the API key (its ``repr`` never shows it); it is never written to
    the storage, a shard or a log.
    """

    settings: Any
    stage: Any
    storage: str       # the root: the shared cache lives here
    run_storage: str   # this run's folder: results are written here
    limiter: str | None
    namespace: str = "linkqa"
    limited: bool = False
    chunk: int = 16


def worker_settings(settings: Any, concurrency: int) -> Any:
    """The client settings of one actor: its share of concurrency, no limits of its own
    (the cluster's limiter holds rate and budget for every actor at once)."""
    return replace(settings, concurrency=concurrency, rpm=None, tpm=None, budget_tokens=None, budget_usd=None)


BATCHES_PER_BLOCK = 4  # a block is a few batches: a lost block is little work


def model_pool(ds: Any, job: WorkerJob, *, actors: int, batch_size: int, actor_cpus: float = 1.0) -> Any:
    """``ds`` answered by a pool of ``actors`` model actors, ``batch_size`` rows at a time.

    The input is cut into blocks of a few batches first. Why: Ray Data hands an actor
    pool whole blocks, and a Parquet read of small files can come back as one block --
    then one actor gets every row and the others idle (measured: 4 actors gave the
    throughput of one, 25 % of ideal). Small blocks also mean a lost block is little work.
    """
    import ray.data

    ds = ds.repartition(target_num_rows_per_block=batch_size * BATCHES_PER_BLOCK)
    pool = ray.data.ActorPoolStrategy(size=actors, max_concurrent_calls_per_actor=blocks_per_actor(
        job.settings.concurrency, batch_size))
    return ds.map_batches(ModelWorker, fn_constructor_kwargs={"job": job}, batch_size=batch_size,
                          batch_format="pyarrow", num_cpus=actor_cpus, compute=pool,
                          max_restarts=-1, max_task_retries=-1, scheduling_strategy="SPREAD")


def blocks_per_actor(concurrency: int, batch_size: int) -> int:
    """Blocks an actor works on at once, so that it always has twice its ``concurrency`` in rows.

    Why: a Ray Data actor runs one block at a time unless told otherwise, and the batches
    of a block finish together (their results are returned in order), so with one block an
    actor's requests drain to zero at the end of every block -- measured: one actor with 256
    in flight kept 54 % of the ideal rate. Ray Data runs up to four batches of a block at once.
    """
    rows_per_block = BATCHES_PER_BLOCK * batch_size
    return max(2, -(-2 * concurrency // rows_per_block))


def plan_filter(table: pa.Table, done: Any, cutoff: int) -> pa.Table:
    """Rows whose path is in the plan (index <= ``cutoff``) and not answered yet (the skip-done join)."""
    idx = table.column("path_index")
    keep = pc.less_equal(idx, pa.scalar(cutoff, pa.int64()))
    if len(done):
        keep = pc.and_(keep, pc.invert(pc.is_in(idx, value_set=pa.array(done, pa.int64()))))
    return table.filter(keep)


def _estimate_tokens(req: Any) -> float:
    n = 0.0
    for m in req.messages:
        c = m.get("content")
        n += 4 + (len(c) / 4 if isinstance(c, str) else len(json.dumps(c)) / 4)
    return n + float(req.max_tokens or 256)


class ModelWorker:
    """The async callable class of ``map_batches``: one per actor of the pool."""

    def __init__(self, job: WorkerJob):
        from ..llm.client import LLMClient

        self.job = job
        self.stage = job.stage
        self.task = job.stage.task()
        self.cache_store = CacheStore(Storage(job.storage))
        self.client = LLMClient(job.settings, store=self.cache_store)
        self.out = Storage(job.run_storage)
        threads = max(4, job.settings.concurrency // max(1, job.chunk) + 4)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="linkqa-actor")
        self.limiter = None
        if job.limiter:
            import ray

            self.limiter = ray.get_actor(job.limiter, namespace=job.namespace)

    async def __call__(self, table: pa.Table) -> pa.Table:
        pairs = self.stage.inputs(table)
        n = len(pairs)
        outcomes: list[Outcome[Any] | None] = [None] * n
        loop = asyncio.get_running_loop()
        running = []
        i = 0
        while i < n:
            take = min(n - i, self.job.chunk) if self.job.limited else n - i
            est = 0.0
            if self.job.limited and self.limiter is not None:
                est = _estimate_tokens(self.task.request(pairs[i][1]))
                granted, why = await self.limiter.acquire.remote(take, est)
                if why is not None:
                    break  # budget reached or stopped: the rest stay unasked
                if not granted:
                    continue
                take = granted
            idx = list(range(i, i + take))
            i += take
            running.append(loop.run_in_executor(self.pool, self._run, idx, pairs, outcomes, est))
        if running:
            await asyncio.gather(*running)
        rows: list[tuple] = []
        summary: dict[str, list[Any]] = {f.name: [] for f in SUMMARY_SCHEMA}
        for (key, x), o in zip(pairs, outcomes):
            res = o.result if o is not None else None
            status = "unstarted" if o is None or o.unstarted else ("failed" if o.error else "ok")
            got: list[tuple] = []
            if status != "unstarted":
                model = self.task.name if res is None else (res.model or getattr(self.task, "model", None) or "")
                got = self.stage.rows(key, x, o, model)
                rows.extend(got)
            summary["path_index"].append(self.stage.summary(key, x))
            summary["status"].append(status)
            summary["items"].append(len(got) if status == "ok" else 0)
            summary["prompt_tokens"].append(int(res.prompt_tokens or 0) if res is not None else 0)
            summary["completion_tokens"].append(int(res.completion_tokens or 0) if res is not None else 0)
            summary["cached"].append(bool(res.cached) if res is not None else False)
        self.cache_store.cache.flush()  # every answer of the batch is in the shared cache before the batch is stored
        if rows:
            self.out.write_table(f"results/{self.stage.name}/part-{uuid.uuid4().hex}.parquet", self.stage.table(rows))
        return pa.table(summary, schema=SUMMARY_SCHEMA)

    def _run(self, idx: list[int], pairs: list[tuple[Any, Any]], outcomes: list[Any], est: float) -> None:
        got = run_task(self.task, [pairs[j][1] for j in idx], client=self.client)
        for j, o in zip(idx, got):
            outcomes[j] = o
        self.cache_store.llm.drain()  # the call log is not kept on an actor; the outcomes carry the cost
        if self.limiter is None:
            return
        results = [o.result for o in got if o.result is not None]
        started = [o for o in got if not o.unstarted]
        report = {
            "returned": len(idx),
            "requests": sum(1 for r in results if r.attempts),
            "cached": sum(1 for r in results if r.cached),
            "errors": sum(1 for o in started if o.error),
            "done": sum(1 for o in started if not o.error),
            "failed": sum(1 for o in started if o.error),
            "prompt_tokens": sum(r.prompt_tokens for r in results),
            "completion_tokens": sum(r.completion_tokens for r in results),
            "calls_with_tokens": sum(1 for r in results if r.total_tokens),
            "est_tokens": est,
        }
        self.limiter.report_many.remote([report])

    def __del__(self) -> None:
        try:
            self.client.close()
            self.cache_store.close()
            self.pool.shutdown(wait=False)
        except Exception:  # noqa: BLE001 - an actor going away must not fail on its way out
            pass

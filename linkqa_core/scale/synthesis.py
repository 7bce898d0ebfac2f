"""Diffusion synthesis on Ray: the local stage's prompts, task and rounds, over Parquet bundles.

What stays as on one machine (:mod:`linkqa_core.synthesis.run`): the prompt
(:class:`~linkqa_core.synthesis.compose.SynthesisTask`), the reading of the reply, the plan
(``per_bundle`` items from each path not answered yet, the last path asking for what is
left), the slots (``p<path>:<k>``, failures ``p<path>:failed``), and the top-up rounds that
sample more paths when failures leave the target short. What differs: the bundles are read
from Parquet by a Ray Data pipeline, a pool of model actors asks the model, each finished
batch is written as a Parquet shard, and the results are imported into the SQLite run at
the end (:mod:`.importer`), so review and export work as for a local run.

Started again after a crash (of an actor, a node or the driver), a run skips the paths whose
answer is stored (the skip-done join on the path index), and the shared request cache
answers those that were paid for but not yet stored.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from ..errors import ConfigError, NotFoundError
from ..records import Item
from ..store import Store
from ..store.runs import run_lease
from ..synthesis.compose import Ask, SynthesisTask
from ..synthesis.run import SynthesisConfig, SynthesisReport, _difficulty, synthesis_record
from ..tasks import Outcome
from .actors import WorkerJob, model_pool, plan_filter, worker_settings
from .bundles import BUNDLES, export_bundles
from .cluster import NAMESPACE, connect
from .importer import import_results, result_table
from .limiter import LimitSettings, start_limiter
from .manifest import Manifest, Poller
from .settings import ScaleSettings
from .storage import Storage, open_storage
from .tables import ITEM_SCHEMA, bundle_from_row, item_uid, items_table, prompt_version, uid

__all__ = ["SynthesisStage", "synthesize_on_ray", "run_storage"]

STAGE = "synthesis"
Progress = Callable[[int, int, str], None]


def run_storage(scale: ScaleSettings, run_id: int) -> tuple[Storage, Storage]:
    """``(root, run folder)`` of a run's storage."""
    root = open_storage(scale.storage)
    return root, root.child(f"run-{run_id}")


@dataclass(frozen=True)
class SynthesisStage:
    """The synthesis stage as the actors see it (picklable; the task is built on the actor)."""

    run_id: int
    template: str
    model: str
    per_bundle: int
    difficulty: float
    multiple_choice: bool
    cutoff: int
    n_last: int
    name: str = STAGE

    def n_items(self, path_index: int) -> int:
        return self.n_last if path_index == self.cutoff else self.per_bundle

    def task(self) -> SynthesisTask:
        return SynthesisTask(self.template, model=self.model, run_id=self.run_id)

    def inputs(self, table: pa.Table) -> list[tuple[Any, Any]]:
        out = []
        for row in table.to_pylist():
            bundle = bundle_from_row(row)
            n = self.n_items(bundle.path.index)
            version = prompt_version(self.template, self.model, n, self.difficulty, self.multiple_choice)
            out.append((uid(int(row["bundle_uid"]), version), Ask(bundle, n, self.difficulty, self.multiple_choice)))
        return out

    def summary(self, key: Any, ask: Ask) -> int:
        return ask.bundle.path.index

    def rows(self, key: int, ask: Ask, o: Outcome[list[Item]], model: str) -> list[tuple]:
        """The items of one answer, as :func:`linkqa_core.synthesis.run._store` makes them."""
        path = ask.bundle.path
        res = o.result
        common = dict(run_id=self.run_id, path_id=path.id, discipline=ask.bundle.discipline,
                      seed_ids=tuple(s.id for s in ask.bundle.seeds), model=model)
        cached = bool(res is not None and res.cached)
        if o.error:
            failed = Item(question="", answer="", slot=f"p{path.index}:failed", status="failed", raw=o.raw,
                          gate_reason=o.error, **common)
            return [(item_uid(key, 99), key, path.index * 100 + 99, failed, cached)]
        out = []
        for k, it in enumerate(o.value or []):
            item = it.with_(slot=f"p{path.index}:{k}", reasoning=res.reasoning if res else None,
                            raw=res.content if res else None,
                            prompt_tokens=(res.prompt_tokens or 0) if res and k == 0 else 0,
                            completion_tokens=(res.completion_tokens or 0) if res and k == 0 else 0, **common)
            out.append((item_uid(key, k), key, path.index * 100 + k, item, cached))
        return out

    def table(self, rows: Sequence[tuple]) -> pa.Table:
        return items_table(rows)


def _done(run_dir: Storage) -> tuple[np.ndarray, int, int, dict[str, int]]:
    """Paths answered, good items, failed attempts and tokens so far (from the shards)."""
    table = result_table(run_dir, STAGE, columns=["uid", "order", "path_index", "status", "prompt_tokens",
                                                  "completion_tokens"])
    if table is None:
        return np.zeros(0, np.int64), 0, 0, {"prompt_tokens": 0, "completion_tokens": 0}
    status = table.column("status").to_numpy(zero_copy_only=False)
    paths = np.unique(table.column("path_index").to_numpy())
    tokens = {"prompt_tokens": int(np.sum(table.column("prompt_tokens").to_numpy())),
              "completion_tokens": int(np.sum(table.column("completion_tokens").to_numpy()))}
    return paths, int(np.sum(status != "failed")), int(np.sum(status == "failed")), tokens


def synthesize_on_ray(store: Store, run_id: int, cfg: SynthesisConfig, settings: Any, scale: ScaleSettings, *,
                      progress: Progress | None = None) -> SynthesisReport:
    """:func:`~linkqa_core.synthesis.run.synthesize` with the model calls on a Ray cluster.

    Needs a configured endpoint (the offline composer has nothing to scale out). Returns the
    same report; the items end up in the SQLite run (a stratified review sample above
    ``scale.import_limit``), and the run's config records the backend and the storage.
    """
    if settings is None or not getattr(settings, "configured", False):
        raise ConfigError("the ray backend runs model stages: set OPENAI_BASE_URL and LINKQA_MODEL "
                          "(the offline composer runs locally)")
    from ..graph.sampling import extend_sample

    run = store.runs.get(run_id)
    n_paths = store.runs.path_count(run_id)
    if not n_paths:
        raise NotFoundError(f"run {run_id} has no paths: save a sample first (sample --save)")
    root, run_dir = run_storage(scale, run_id)
    target = cfg.target_items or n_paths * cfg.per_bundle
    difficulty = _difficulty(run.config, cfg)
    manifest = Manifest(run_dir)
    report = SynthesisReport(run_id=run_id, target_items=target, model=settings.model)
    with store.lease(run_lease(run_id), f"synthesis of run {run_id} on ray"):
        config = dict(run.config)
        config["synthesis"] = synthesis_record(cfg, target, settings)
        config["backend"] = scale.to_dict()
        store.runs.update(run_id, config=config, status="synthesizing")
        manifest.update(run_id=run_id, database=store.path, backend=scale.to_dict(), target_items=target,
                        results=run_dir.uri_of(f"results/{STAGE}"))
        try:
            with connect(scale) as ray:
                for round_no in range(cfg.max_top_up_rounds + 1):
                    done, have, failed, spent = _done(run_dir)
                    if have >= target:
                        break
                    exported = export_bundles(store, run_id, run_dir)
                    answered = set(done.tolist())
                    todo = [p.index for p in store.runs.paths(run_id) if p.index not in answered]
                    need = target - have
                    plan, n_last, cutoff = 0, cfg.per_bundle, -1
                    for idx in todo:
                        if need <= 0:
                            break
                        n_last = min(cfg.per_bundle, need)
                        cutoff = idx
                        need -= n_last
                        plan += 1
                    if need > 0:
                        if round_no == cfg.max_top_up_rounds:
                            break
                        report.paths_added += extend_sample(store, run_id, -(-need // cfg.per_bundle))
                        if not plan:
                            continue
                    stage = SynthesisStage(run_id, cfg.template, settings.model, cfg.per_bundle, difficulty,
                                           cfg.multiple_choice, cutoff, n_last)
                    spent_tokens = spent["prompt_tokens"] + spent["completion_tokens"]
                    stopped = _run_stage(ray, stage, settings, scale, root, run_dir, manifest, done, plan, report,
                                         progress, spent_tokens, exported["paths"])
                    if stopped:
                        report.stopped = stopped
                        break
        finally:
            done, have, failed, spent = _done(run_dir)
            imported = import_results(store, run_id, run_dir, scale)
            report.items_ok = store.items.good_count(run_id) if not imported["sampled"] else have
            report.items_failed = failed
            report.prompt_tokens, report.completion_tokens = spent["prompt_tokens"], spent["completion_tokens"]
            status = "synthesized" if have >= target else ("stopped" if report.stopped else "partial")
            store.runs.update(run_id, status=status)
            manifest.update(status=status, items=have, failed=failed, imported=imported,
                            **{STAGE: {"state": "stopped" if report.stopped else "finished"}})
    return report


def _run_stage(ray: Any, stage: SynthesisStage, settings: Any, scale: ScaleSettings, root: Storage,
               run_dir: Storage, manifest: Manifest, done: np.ndarray, plan: int, report: SynthesisReport,
               progress: Progress | None, spent_tokens: int, n_bundles: int) -> str | None:
    """One pass of the Ray Data pipeline over the plan; returns why it stopped early, if it did."""
    limits = LimitSettings.of(settings, spent_tokens=spent_tokens)
    limiter_name = f"linkqa-limiter-run{stage.run_id}"
    limiter = start_limiter(limiter_name, limits, NAMESPACE)
    job = WorkerJob(settings=worker_settings(settings, scale.concurrency), stage=stage, storage=root.uri,
                    run_storage=run_dir.uri, limiter=limiter_name, namespace=NAMESPACE, limited=limits.limited)
    import ray.data

    ds = ray.data.read_parquet(run_dir.uri_of(BUNDLES), partitioning=None)
    ds = ds.map_batches(plan_filter, fn_kwargs={"done": done, "cutoff": stage.cutoff}, batch_format="pyarrow",
                        batch_size=None, zero_copy_batch=True)
    ds = model_pool(ds, job, actors=scale.actors, batch_size=scale.batch_size, actor_cpus=scale.actor_cpus)
    t0 = time.monotonic()
    try:
        with Poller(limiter, manifest, STAGE, total=plan, on_progress=progress) as poller:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                status = batch.column("status").to_pylist()
                report.requests += sum(1 for s in status if s != "unstarted")
                report.cached += int(sum(batch.column("cached").to_pylist()))
                if scale.timeout_s and time.monotonic() - t0 > scale.timeout_s:
                    ray.get(limiter.stop.remote())
        snap = poller.last
    finally:
        ray.kill(limiter)
    if snap.get("budget_reached"):
        return "token or money budget reached"
    if scale.timeout_s and time.monotonic() - t0 > scale.timeout_s:
        return f"stopped after the backend time-out of {scale.timeout_s:g} s"
    return None

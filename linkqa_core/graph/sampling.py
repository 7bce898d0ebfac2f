"""One call from knobs to paths, bundles and metrics; a saved sample is a run.

>>> from linkqa_core.store import Store
>>> from linkqa_core.sampling import sample
>>> result = sample(Store("data/linkqa.db"), WalkParams(w_cov=2.0), n_paths=100, seed=1)  # doctest: +SKIP
>>> result.metrics["kp_coverage"], result.baseline["kp_coverage"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import ConfigError
from ..store import Store

if TYPE_CHECKING:  # numba and the kernels load when a sample is drawn, not on import (the home page needs none)
    from .bundles import Bundles
    from .build import KPGraph
    from .walks import WalkParams, Walks

__all__ = ["PathRecord", "SampleResult", "sample", "save_sample", "coverage_ledger", "cumulative_coverage",
           "run_paths", "config_hash", "insert_paths", "LEDGERS"]

LEDGERS = ("fresh", "all")
Progress = Callable[[int, int, str], None]


@dataclass
class PathRecord:
    index: int
    kps: list[str]
    discipline: str
    seed_ids: list[str]
    link_strength: list[int]
    kp_indices: list[int] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "kps": self.kps, "discipline": self.discipline, "seed_ids": self.seed_ids,
                "link_strength": self.link_strength}


@dataclass
class SampleResult:
    params: WalkParams
    n_paths: int
    seed: int
    ledger: str
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    walks: Walks = field(repr=False)
    bundles: Bundles = field(repr=False)
    baseline_walks: Walks = field(repr=False)
    graph: KPGraph = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    run_id: int | None = None
    _seed_ids: dict[int, str] | None = field(default=None, repr=False)

    def config(self) -> dict[str, Any]:
        """Everything needed to repeat the sample, as stored with the run."""
        return {
            **self.params.to_dict(),
            "n_paths": self.n_paths,
            "seed": self.seed,
            "ledger": self.ledger,
            "min_seeds": self.min_seeds,
            "max_seeds": self.max_seeds,
            "graph": {"nodes": self.graph.n_nodes, "edges": self.graph.n_edges},
        }

    min_seeds: int = 3
    max_seeds: int = 5

    def paths(self, store: Store, limit: int | None = None) -> list[PathRecord]:
        n = len(self.walks) if limit is None else min(limit, len(self.walks))
        rids = np.unique(self.bundles.rids[: self.bundles.ptr[n]])
        if self._seed_ids is None:
            self._seed_ids = {}
        missing = [int(r) for r in rids if int(r) not in self._seed_ids]
        if missing:
            self._seed_ids.update(zip(missing, _ids_for(store, missing)))
        g = self.graph
        out = []
        for i in range(n):
            nodes = self.walks.path(i)
            out.append(PathRecord(
                index=i,
                kps=[g.names[int(v)] for v in nodes],
                discipline=g.disciplines[int(self.walks.discipline[i])],
                seed_ids=[self._seed_ids[int(r)] for r in self.bundles.of(i)],
                link_strength=[int(s) for s in self.bundles.strengths_of(i)],
                kp_indices=[int(v) for v in nodes],
            ))
        return out


def _ids_for(store: Store, rids: list[int]) -> list[str]:
    got: dict[int, str] = {}
    for i in range(0, len(rids), 900):
        chunk = rids[i : i + 900]
        marks = ",".join("?" * len(chunk))
        got.update((r[0], r[1]) for r in store.query(f"SELECT rid, id FROM seeds WHERE rid IN ({marks})", chunk))
    return [got[r] for r in rids]


def coverage_ledger(store: Store, graph: KPGraph) -> np.ndarray:
    """Visits of every KP by the paths of all saved runs (dense graph order)."""
    visits = np.zeros(graph.n_nodes, dtype=np.int64)
    for kp_id, count in store.query("SELECT kp_id, count(*) FROM path_kps GROUP BY kp_id"):
        i = graph.index_of(kp_id)
        if i is not None:
            visits[i] = count
    return visits


def cumulative_coverage(store: Store) -> float:
    """Share of today's KPs that some saved run has visited."""
    total = store.scalar("SELECT count(DISTINCT kp_id) FROM seed_kps") or 0
    if not total:
        return 0.0
    seen = store.scalar(
        "SELECT count(DISTINCT kp_id) FROM path_kps WHERE kp_id IN (SELECT kp_id FROM seed_kps)"
    )
    return round(seen / total, 4)


def sample(
    store: Store,
    params: WalkParams,
    n_paths: int,
    *,
    seed: int = 0,
    ledger: str = "fresh",
    graph: KPGraph | None = None,
    min_seeds: int = 3,
    max_seeds: int = 5,
    baseline: bool = True,
    save: bool = False,
    name: str | None = None,
    progress: Progress | None = None,
) -> SampleResult:
    """Walk, bundle, measure and (optionally) save; the same arguments give the same paths."""
    from .bundles import choose_bundles
    from .build import build_graph
    from .metrics import coverage_curve, sample_metrics
    from .walks import uniform_walks, value_walks

    if ledger not in LEDGERS:
        raise ConfigError(f"ledger must be one of {', '.join(LEDGERS)}, got '{ledger}'")
    if n_paths < 1:
        raise ConfigError(f"the number of paths must be at least 1, got {n_paths}")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if graph is None:
        if progress:
            progress(0, 4, "building the KP graph")
        graph = build_graph(store)
        timings["graph_s"] = time.perf_counter() - t
    prior = coverage_ledger(store, graph) if ledger == "all" else None
    if progress:
        progress(1, 4, f"walking {n_paths:,} paths")
    t = time.perf_counter()
    walks = value_walks(graph, params, n_paths, seed=seed, prior_visits=prior)
    timings["walks_s"] = time.perf_counter() - t
    t = time.perf_counter()
    bundles = choose_bundles(graph, walks, min_seeds=min_seeds, max_seeds=max_seeds)
    timings["bundles_s"] = time.perf_counter() - t
    if progress:
        progress(2, 4, "baseline walk")
    t = time.perf_counter()
    base_walks = uniform_walks(graph, params, n_paths, seed=seed) if baseline else walks
    base_bundles = choose_bundles(graph, base_walks, min_seeds=min_seeds, max_seeds=max_seeds) if baseline else bundles
    metrics = sample_metrics(graph, walks, bundles)
    metrics["coverage_curve"] = coverage_curve(graph, walks)
    if prior is not None:
        metrics["cumulative_kp_coverage"] = round(float(((prior + walks.visits) > 0).mean()), 4)
    base = sample_metrics(graph, base_walks, base_bundles) if baseline else {}
    if baseline:
        base["coverage_curve"] = coverage_curve(graph, base_walks)
    timings["baseline_metrics_s"] = time.perf_counter() - t
    result = SampleResult(params, n_paths, seed, ledger, metrics, base, walks, bundles, base_walks, graph,
                          timings, min_seeds=min_seeds, max_seeds=max_seeds)
    if save:
        if progress:
            progress(3, 4, "saving the run")
        t = time.perf_counter()
        save_sample(store, result, name=name)
        timings["save_s"] = time.perf_counter() - t
    if progress:
        progress(4, 4, "done")
    return result


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def save_sample(store: Store, result: SampleResult, *, name: str | None = None) -> int:
    """Store the run, its paths and bundles in one transaction; returns the run id."""
    paths = result.paths(store)
    config = result.config()
    now = time.time()
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO runs (kind, name, status, config, metrics, baseline, created_at, updated_at)"
            " VALUES ('sample', ?, 'sampled', ?, ?, ?, ?, ?)",
            (name, json.dumps(config, sort_keys=True), json.dumps(result.metrics), json.dumps(result.baseline),
             now, now),
        )
        run_id = int(cur.lastrowid)
        insert_paths(conn, run_id, paths, result.graph)
    result.run_id = run_id
    return run_id


def insert_paths(conn, run_id: int, paths: list[PathRecord], graph: KPGraph, *, start: int = 0) -> None:
    """Paths, their bundles and their KP visits (the coverage ledger), inside the caller's transaction."""
    for rec in paths:
        strength = float(np.mean(rec.link_strength)) if rec.link_strength else 0.0
        pid = conn.execute(
            "INSERT INTO paths (run_id, idx, discipline, kps, seed_ids, link_strength) VALUES (?,?,?,?,?,?)",
            (run_id, start + rec.index, rec.discipline, json.dumps(rec.kps, ensure_ascii=False),
             json.dumps(rec.seed_ids), strength),
        ).lastrowid
        conn.executemany(
            "INSERT INTO path_kps (path_id, pos, kp_id) VALUES (?,?,?)",
            [(pid, pos, int(graph.kp_ids[v])) for pos, v in enumerate(rec.kp_indices)],
        )


def run_paths(store: Store, run_id: int) -> list[dict[str, Any]]:
    """The stored paths of a run with their bundles, in order."""
    store.get_run(run_id)  # raises NotFoundError with a clear message
    rows = store.query("SELECT id, idx, discipline, kps, seed_ids, link_strength FROM paths WHERE run_id = ? ORDER BY idx",
                       (run_id,))
    return [
        {"path_id": r["id"], "index": r["idx"], "discipline": r["discipline"], "kps": json.loads(r["kps"]),
         "seed_ids": json.loads(r["seed_ids"]), "mean_link_strength": r["link_strength"]}
        for r in rows
    ]

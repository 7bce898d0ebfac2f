"""One call from knobs to paths, bundles and metrics; a saved sample is a run.

>>> from linkqa_core.graph.walks import WalkParams
>>> from linkqa_core.ingest.load import ingest, sample_path
>>> from linkqa_core.kps.extract import run_extraction
>>> from linkqa_core.store import Store
>>> store = Store(":memory:"); _ = ingest(store, sample_path()); _ = run_extraction(store)
>>> result = sample(store, WalkParams(w_cov=2.0), n_paths=100, seed=1)
>>> len(result.paths(store)), 0 < result.metrics["kp_coverage"] <= 1, "kp_coverage" in result.baseline
(100, True, True)
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import ConfigError
from ..records import Path
from ..store import Store

if TYPE_CHECKING:  # numba and the kernels load when a sample is drawn, not on import (the home page needs none)
    from .build import KPGraph
    from .bundles import Bundles
    from .walks import WalkParams, Walks

__all__ = ["SampleResult", "sample", "save_sample", "extend_sample", "coverage_ledger", "config_hash", "LEDGERS"]

LEDGERS = ("fresh", "all")
Progress = Callable[[int, int, str], None]


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
    min_seeds: int = 3
    max_seeds: int = 5
    _seed_ids: dict[int, str] = field(default_factory=dict, repr=False)

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

    def paths(self, store: Store, limit: int | None = None) -> list[Path]:
        """The first ``limit`` paths (all by default) as records, with their bundles' seed ids."""
        return path_records(store, self.graph, self.walks, self.bundles, limit, self._seed_ids)


def path_records(store: Store, g: KPGraph, walks: Walks, bundles: Bundles, limit: int | None = None,
                 seed_ids: dict[int, str] | None = None) -> list[Path]:
    """Walks and bundles as :class:`~linkqa_core.records.Path` records (``seed_ids`` caches rid -> id)."""
    n = len(walks) if limit is None else min(limit, len(walks))
    seed_ids = {} if seed_ids is None else seed_ids
    rids = np.unique(bundles.rids[: bundles.ptr[n]])
    missing = [int(r) for r in rids if int(r) not in seed_ids]
    if missing:
        seed_ids.update(zip(missing, store.seeds.ids_for_rids(missing)))
    out = []
    for i in range(n):
        nodes = walks.path(i)
        out.append(Path(
            index=i,
            kps=tuple(g.names[int(v)] for v in nodes),
            discipline=g.disciplines[int(walks.discipline[i])],
            seed_ids=tuple(seed_ids[int(r)] for r in bundles.of(i)),
            link_strength=tuple(int(s) for s in bundles.strengths_of(i)),
            kp_ids=tuple(int(g.kp_ids[int(v)]) for v in nodes),
        ))
    return out


def coverage_ledger(store: Store, graph: KPGraph, run_id: int | None = None) -> np.ndarray:
    """Visits of every KP (dense graph order) by the paths of one run, or of all saved runs."""
    visits = np.zeros(graph.n_nodes, dtype=np.int64)
    for kp_id, count in store.runs.kp_visits(run_id).items():
        i = graph.index_of(kp_id)
        if i is not None:
            visits[i] = count
    return visits


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
    from .metrics import coverage_curve, sample_metrics
    from .stored import current_graph
    from .walks import uniform_walks, value_walks

    if ledger not in LEDGERS:
        raise ConfigError(f"ledger must be one of {', '.join(LEDGERS)}, got '{ledger}'")
    if n_paths < 1:
        raise ConfigError(f"the number of paths must be at least 1, got {n_paths}")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if graph is None:
        if progress:
            progress(0, 4, "loading the KP graph")
        graph = current_graph(store)
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
    run_id = store.runs.create("sample", result.config(), name=name, status="sampled", metrics=result.metrics,
                               baseline=result.baseline, paths=result.paths(store))
    result.run_id = run_id
    return run_id


def extend_sample(store: Store, run_id: int, extra: int) -> int:
    """Sample ``extra`` more paths for a saved run, continuing its coverage: the run grows.

    The new paths follow the run's own knobs; their walk seed depends on how many paths
    the run holds, so extending the same run the same way gives the same paths.
    """
    from .bundles import choose_bundles
    from .stored import current_graph
    from .walks import WalkParams, value_walks

    cfg = store.runs.get(run_id).config or {}
    params = WalkParams.from_dict(cfg)
    graph = current_graph(store)
    visits = coverage_ledger(store, graph, run_id)
    start = store.runs.next_path_index(run_id)
    walks = value_walks(graph, params, extra, seed=int(cfg.get("seed", 0)) + 7919 * (start + 1), prior_visits=visits)
    bundles = choose_bundles(graph, walks, min_seeds=int(cfg.get("min_seeds", 3)),
                             max_seeds=int(cfg.get("max_seeds", 5)))
    records = path_records(store, graph, walks, bundles)
    store.runs.add_paths(run_id, records, start=start)
    return len(records)

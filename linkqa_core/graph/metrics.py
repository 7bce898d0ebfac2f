"""Metrics of a sample (DESIGN §4), computed the same way for the value walk and the baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from .bundles import Bundles
from .build import KPGraph
from .walks import Walks

__all__ = ["sample_metrics", "linkage_metrics", "coverage_curve", "realised_shares", "spearman", "METRIC_NAMES"]

METRIC_NAMES = (
    "kp_coverage",
    "popularity_weighted_coverage",
    "visit_entropy",
    "popularity_rank_correlation",
    "discipline_tv_distance",
    "mean_seeds_per_path",
    "mean_link_strength",
    "bundle_share_2plus",
    "bundle_share_3plus",
    "mean_shared_kps",
)


def realised_shares(graph: KPGraph, walks: Walks) -> np.ndarray:
    counts = np.bincount(walks.discipline.astype(np.int64), minlength=len(graph.disciplines)).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def sample_metrics(graph: KPGraph, walks: Walks, bundles: Bundles) -> dict[str, Any]:
    """Coverage, balance and linkage of one set of paths; every value is plain JSON."""
    visits = walks.visits
    seen = visits > 0
    total = visits.sum()
    k = graph.n_nodes
    if total > 0 and k > 1:
        p = visits[seen] / total
        entropy = float(-(p * np.log(p)).sum() / np.log(k))
    else:
        entropy = 0.0
    if seen.any() and np.ptp(visits) > 0 and np.ptp(graph.freq) > 0:
        rho = spearman(visits, graph.freq)
    else:
        rho = 0.0
    shares = realised_shares(graph, walks)
    diff_bins = np.clip(np.rint(graph.difficulty), 1, 5).astype(np.int64)
    diff_hist = np.bincount(diff_bins, weights=visits, minlength=6)[1:]
    sizes = bundles.sizes
    return {
        "n_paths": len(walks),
        "mean_path_length": _r(walks.lengths.mean() if len(walks) else 0.0),
        "kp_coverage": _r(seen.mean() if k else 0.0),
        "kps_visited": int(seen.sum()),
        "popularity_weighted_coverage": _r(graph.freq[seen].sum() / max(graph.freq.sum(), 1)),
        "visit_entropy": _r(entropy),
        "popularity_rank_correlation": _r(rho),
        "discipline_tv_distance": _r(0.5 * np.abs(shares - walks.targets).sum()),
        "discipline_shares": {d: _r(s) for d, s in zip(graph.disciplines, shares) if s > 0},
        "target_shares": {d: _r(s) for d, s in zip(graph.disciplines, walks.targets) if s > 0},
        "difficulty_histogram": {str(i + 1): int(c) for i, c in enumerate(diff_hist)},
        "mean_seeds_per_path": _r(sizes.mean() if sizes.size else 0.0),
        "mean_link_strength": _r(bundles.strength.mean() if bundles.strength.size else 0.0),
        **linkage_metrics(graph, walks, bundles),
    }


def linkage_metrics(graph: KPGraph, walks: Walks, bundles: Bundles) -> dict[str, Any]:
    """Do bundles join several seeds that share knowledge?

    - ``bundle_share_2plus`` / ``bundle_share_3plus``: share of bundles with at least 2 / 3 seeds;
    - ``bundles_below_min_seeds``: bundles with fewer than the ``min_seeds`` asked for, because
      fewer seeds name the path's KPs (the graph could not give more);
    - ``mean_shared_kps``: per bundle, the path KPs named by two or more of its seeds,
      counting only concept KPs (not general-language words, see
      :func:`linkqa_core.kps.quality.is_general_word`), averaged over bundles.
    """
    sizes = bundles.sizes
    n = max(len(sizes), 1)
    shared = _shared_counts(walks.nodes, walks.ptr, bundles.rids, bundles.ptr, graph.seed_indptr, graph.seed_rids,
                            _concept_mask(graph, walks.nodes))
    return {
        "bundle_share_2plus": _r((sizes >= 2).sum() / n),
        "bundle_share_3plus": _r((sizes >= 3).sum() / n),
        "bundles_below_min_seeds": int((sizes < bundles.min_seeds).sum()),
        "mean_shared_kps": _r(shared.mean() if shared.size else 0.0),
    }


def _concept_mask(graph: KPGraph, nodes: np.ndarray) -> np.ndarray:
    """True for KPs that are not general-language words (checked for the KPs on paths only)."""
    from ..kps.names import normalize_kp
    from ..kps.quality import is_general_word

    known = graph.concept_flags()  # kept with the graph: a KP's name is judged once per graph, not per preview
    todo = np.unique(nodes)
    todo = todo[known[todo] < 0]
    for v in todo.tolist():
        known[v] = 0 if is_general_word(normalize_kp(graph.names[v])) else 1
    return known != 0


@njit(cache=True)
def _shared_counts(nodes, ptr, rids, bptr, seed_indptr, seed_rids, concept):
    """Per path: concept KPs of the path named by two or more of its bundle's seeds (seed lists are sorted)."""
    n = ptr.shape[0] - 1
    out = np.zeros(n, np.int64)
    for p in range(n):
        for j in range(ptr[p], ptr[p + 1]):
            v = nodes[j]
            if not concept[v]:
                continue
            lo = seed_indptr[v]
            hi = seed_indptr[v + 1]
            c = 0
            for b in range(bptr[p], bptr[p + 1]):
                i = np.searchsorted(seed_rids[lo:hi], rids[b])
                if i < hi - lo and seed_rids[lo + i] == rids[b]:
                    c += 1
            if c >= 2:
                out[p] += 1
    return out


def coverage_curve(graph: KPGraph, walks: Walks, points: int = 50) -> list[tuple[int, float]]:
    """KP coverage after 1..n paths, at up to ``points`` evenly spaced counts."""
    n = len(walks)
    if n == 0 or graph.n_nodes == 0:
        return []
    path_of = np.repeat(np.arange(n), walks.lengths)
    first = np.full(graph.n_nodes, n, dtype=np.int64)
    np.minimum.at(first, walks.nodes, path_of)
    new_per_path = np.bincount(first[first < n], minlength=n)
    cov = np.cumsum(new_per_path) / graph.n_nodes
    idx = np.unique(np.linspace(0, n - 1, min(points, n)).astype(np.int64))
    return [(int(i + 1), _r(cov[i])) for i in idx]


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank (as Spearman's rho needs).

    Visit counts and KP frequencies are small non-negative integers: counted with
    ``bincount`` instead of sorted (the same ranks, a fifth of the time at a million KPs).
    """
    if x.dtype.kind in "iu" and x.size and x.min() >= 0 and x.max() <= 4 * x.size:
        counts = np.bincount(x)
        starts = np.cumsum(counts) - counts
        return (starts + (counts - 1) / 2.0)[x]
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    return (starts + (counts - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation in numpy: importing scipy.stats for it cost 0.4 s a start."""
    ra, rb = _average_ranks(np.asarray(a)), _average_ranks(np.asarray(b))
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def _r(x: float) -> float:
    return round(float(x), 4)

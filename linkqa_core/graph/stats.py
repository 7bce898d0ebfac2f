"""Statistics of the KP graph for the graph page and ``graph --json``: components,
degrees, per-discipline sizes, Louvain communities (bounded so a big graph never stalls a page)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .build import KPGraph

__all__ = ["graph_stats", "community_labels"]


def graph_stats(g: KPGraph, *, communities: bool = True, max_community_edges: int = 50_000) -> dict[str, Any]:
    """Statistics for the graph page and ``graph --json``.

    Communities (Louvain, seeded) are computed up to ``max_community_edges`` edges; past
    that they are skipped with a reason rather than stalling the page.
    """
    from scipy import sparse  # only statistics need scipy: keep it off the import path
    from scipy.sparse.csgraph import connected_components

    n = g.n_nodes
    stats: dict[str, Any] = {"nodes": n, "edges": g.n_edges}
    if n == 0:
        stats.update(components=0, largest_component_share=0.0, isolated=0, degree={}, disciplines={},
                     communities=None, mean_degree=0.0)
        return stats
    adj = sparse.csr_matrix((g.weights, g.indices, g.indptr), shape=(n, n))
    n_comp, labels = connected_components(adj, directed=False)
    comp_sizes = np.bincount(labels)
    deg = g.degree
    qs = np.percentile(deg, [50, 90, 99])
    stats.update(
        components=int(n_comp),
        largest_component_share=round(float(comp_sizes.max() / n), 4),
        isolated=int((deg == 0).sum()),
        mean_degree=round(float(deg.mean()), 3),
        degree={
            "min": int(deg.min()),
            "median": float(qs[0]),
            "p90": float(qs[1]),
            "p99": float(qs[2]),
            "max": int(deg.max()),
            "histogram": _log_histogram(deg),
        },
        disciplines={
            d: int(c) for d, c in zip(g.disciplines, np.bincount(g.discipline, minlength=len(g.disciplines)))
        },
        freq={"max": int(g.freq.max()), "mean": round(float(g.freq.mean()), 3), "singletons": int((g.freq == 1).sum())},
    )
    if communities and g.n_edges <= max_community_edges:
        stats["communities"] = _communities(g, labels, comp_sizes)
    else:
        stats["communities"] = None
        if communities:
            stats["communities_skipped"] = f"more than {max_community_edges:,} edges"
    return stats


def _log_histogram(deg: np.ndarray) -> dict[str, int]:
    edges = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, np.inf]
    hist, _ = np.histogram(deg, bins=edges)
    labels = ["0", "1", "2-3", "4-7", "8-15", "16-31", "32-63", "64-127", "128-255", "256-511", "512-1023", "1024+"]
    return {lab: int(h) for lab, h in zip(labels, hist)}


def _communities(g: KPGraph, labels: np.ndarray, comp_sizes: np.ndarray) -> dict[str, Any]:
    import networkx as nx

    big = np.flatnonzero(labels == comp_sizes.argmax())
    sub = g.to_networkx(big)
    parts = nx.community.louvain_communities(sub, weight="weight", seed=0)
    sizes = sorted((len(p) for p in parts), reverse=True)
    modularity = nx.community.modularity(sub, parts, weight="weight") if sub.number_of_edges() else 0.0
    return {"count": len(parts), "largest": sizes[:10], "modularity": round(float(modularity), 4),
            "of": "largest component"}


def community_labels(g: KPGraph, nodes: Sequence[int]) -> dict[int, int]:
    """Louvain community of each node of a (drawn) subgraph, for colouring."""
    import networkx as nx

    sub = g.to_networkx(nodes)
    parts = nx.community.louvain_communities(sub, weight="weight", seed=0) if sub.number_of_edges() else [set(sub)]
    return {node: ci for ci, part in enumerate(sorted(parts, key=len, reverse=True)) for node in part}

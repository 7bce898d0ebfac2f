"""The KP graph, held as arrays so that walks over millions of seeds stay fast.

Nodes are KPs (dense indices ``0..K-1``); an edge joins two KPs named by the same seed,
with ``weight`` = the number of such seeds. Adjacency is CSR (``indptr``, ``indices``,
``weights``), built with vectorised pair generation and one sparse sum, never edge by
edge. :meth:`KPGraph.to_networkx` gives a networkx graph for analysis and drawing.

>>> from linkqa_core.store import Store
>>> g = build_graph(Store(":memory:"))
>>> g.n_nodes
0
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .store import Store

__all__ = ["KPGraph", "build_graph", "graph_from_links", "graph_stats", "community_labels"]


@dataclass
class KPGraph:
    """Walkable KP graph; every array is indexed by dense KP index."""

    kp_ids: np.ndarray  # database id of each KP
    names: list[str]
    freq: np.ndarray  # seeds naming the KP
    discipline: np.ndarray  # index into ``disciplines`` (the KP's most common)
    disciplines: list[str]
    difficulty: np.ndarray  # mean difficulty of its seeds (3.0 where unknown)
    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    seed_indptr: np.ndarray  # KP -> seeds CSR
    seed_rids: np.ndarray
    discipline_counts: np.ndarray = field(repr=False)  # K x D seeds per discipline
    _index_of: dict[int, int] | None = field(default=None, repr=False)
    _name_index: dict[str, int] | None = field(default=None, repr=False)

    @property
    def n_nodes(self) -> int:
        return int(self.kp_ids.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.indices.shape[0] // 2)

    @property
    def degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def index_of(self, kp_id: int) -> int | None:
        if self._index_of is None:
            self._index_of = {int(k): i for i, k in enumerate(self.kp_ids)}
        return self._index_of.get(int(kp_id))

    def index_of_name(self, name: str) -> int | None:
        if self._name_index is None:
            self._name_index = {n: i for i, n in enumerate(self.names)}
        return self._name_index.get(name)

    def neighbors(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.indices[lo:hi], self.weights[lo:hi]

    def seeds_of(self, i: int) -> np.ndarray:
        return self.seed_rids[self.seed_indptr[i] : self.seed_indptr[i + 1]]

    def to_networkx(self, nodes: Sequence[int] | None = None):
        """A networkx Graph of all nodes or of the subgraph on ``nodes`` (dense indices).

        Filled node by node and edge by edge from the arrays (never ``from_nx``-style
        copying), so drawing a few hundred nodes of a million-node graph is instant.
        """
        import networkx as nx

        g = nx.Graph()
        keep = np.arange(self.n_nodes) if nodes is None else np.unique(np.asarray(nodes, dtype=np.int64))
        inside = np.zeros(self.n_nodes, dtype=bool)
        inside[keep] = True
        for i in keep:
            i = int(i)
            g.add_node(
                i,
                name=self.names[i],
                freq=int(self.freq[i]),
                discipline=self.disciplines[int(self.discipline[i])],
                difficulty=float(self.difficulty[i]),
            )
        for i in keep:
            nbrs, w = self.neighbors(int(i))
            mask = inside[nbrs] & (nbrs > i)
            g.add_weighted_edges_from(zip(itertools.repeat(int(i)), nbrs[mask].tolist(), w[mask].tolist()))
        return g


def build_graph(store: Store) -> KPGraph:
    """Read the seed–KP links from the database and build the graph."""
    links = _read_links(store)
    seeds = store.query("SELECT rid, discipline, difficulty FROM seeds")
    disciplines = sorted({row[1] for row in seeds})
    d_index = {d: i for i, d in enumerate(disciplines)}
    max_rid = max((row[0] for row in seeds), default=0)
    seed_disc = np.zeros(max_rid + 1, dtype=np.int16)
    seed_diff = np.full(max_rid + 1, np.nan)
    if seeds:
        rids = np.fromiter((r[0] for r in seeds), dtype=np.int64, count=len(seeds))
        seed_disc[rids] = np.fromiter((d_index[r[1]] for r in seeds), dtype=np.int16, count=len(seeds))
        seed_diff[rids] = np.fromiter((np.nan if r[2] is None else r[2] for r in seeds), dtype=float, count=len(seeds))
    kp_ids = np.unique(links[:, 1]) if len(links) else np.zeros(0, dtype=np.int64)
    names = _kp_names(store, kp_ids)
    return graph_from_links(links[:, 0], links[:, 1], seed_disc, seed_diff, disciplines, names=names, kp_ids=kp_ids)


def _read_links(store: Store) -> np.ndarray:
    with store.lock:
        cur = store.conn.execute("SELECT seed_rid, kp_id FROM seed_kps")
        cur.row_factory = None  # plain tuples: several times faster than sqlite3.Row
        chunks = []
        while True:
            rows = cur.fetchmany(500_000)
            if not rows:
                break
            chunks.append(np.array(rows, dtype=np.int64))
    return np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.int64)


def _kp_names(store: Store, kp_ids: np.ndarray) -> list[str]:
    with store.lock:
        cur = store.conn.execute("SELECT id, name FROM kps")
        cur.row_factory = None
        name_of = dict(cur.fetchall())
    return [name_of.get(int(k), f"kp {int(k)}") for k in kp_ids]


def graph_from_links(
    seed_rid: np.ndarray,
    kp_id: np.ndarray,
    seed_discipline: np.ndarray,
    seed_difficulty: np.ndarray,
    disciplines: list[str],
    *,
    names: list[str] | None = None,
    kp_ids: np.ndarray | None = None,
) -> KPGraph:
    """Build from link arrays (``seed_rid[i]`` names ``kp_id[i]``); seed arrays are by rid.

    Links must be sorted by seed (as the ``seed_kps`` primary key returns them).
    """
    seed_rid = np.asarray(seed_rid, dtype=np.int64)
    if kp_ids is None:
        kp_ids, kp = np.unique(kp_id, return_inverse=True)
    else:
        kp = np.searchsorted(kp_ids, kp_id)
    kp = kp.astype(np.int32)
    n = int(kp_ids.shape[0])
    if names is None:
        names = [f"kp {int(k)}" for k in kp_ids]
    if seed_rid.size and np.any(seed_rid[1:] < seed_rid[:-1]):
        order = np.argsort(seed_rid, kind="stable")
        seed_rid, kp = seed_rid[order], kp[order]

    freq = np.bincount(kp, minlength=n).astype(np.int64)
    n_disc = max(len(disciplines), 1)
    disc_of_link = seed_discipline[seed_rid].astype(np.int64) if seed_rid.size else np.zeros(0, np.int64)
    counts = np.bincount(kp.astype(np.int64) * n_disc + disc_of_link, minlength=n * n_disc).reshape(n, n_disc)
    discipline = counts.argmax(axis=1).astype(np.int16) if n else np.zeros(0, np.int16)
    diff = seed_difficulty[seed_rid] if seed_rid.size else np.zeros(0)
    known = ~np.isnan(diff)
    dsum = np.bincount(kp[known], weights=diff[known], minlength=n)
    dcnt = np.bincount(kp[known], minlength=n)
    difficulty = np.where(dcnt > 0, dsum / np.maximum(dcnt, 1), 3.0)

    rows, cols = _cooccurrence_pairs(seed_rid, kp)
    adj = sparse.csr_matrix(
        (np.ones(rows.shape[0] * 2, dtype=np.float32), (np.concatenate([rows, cols]), np.concatenate([cols, rows]))),
        shape=(n, n),
    )
    adj.sum_duplicates()
    adj.sort_indices()

    order = np.argsort(kp, kind="stable")
    seed_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(freq, out=seed_indptr[1:])
    return KPGraph(
        kp_ids=np.asarray(kp_ids, dtype=np.int64),
        names=list(names),
        freq=freq,
        discipline=discipline,
        disciplines=list(disciplines) or ["Other"],
        difficulty=difficulty,
        indptr=adj.indptr.astype(np.int64),
        indices=adj.indices.astype(np.int32),
        weights=adj.data.astype(np.float64),
        seed_indptr=seed_indptr,
        seed_rids=seed_rid[order],
        discipline_counts=counts,
    )


def _cooccurrence_pairs(seed_rid: np.ndarray, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All KP pairs named by one seed, vectorised over seeds of the same KP count."""
    if seed_rid.size == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    starts = np.flatnonzero(np.r_[True, seed_rid[1:] != seed_rid[:-1]])
    sizes = np.diff(np.r_[starts, seed_rid.size])
    rows, cols = [], []
    for size in np.unique(sizes):
        if size < 2:
            continue
        group = starts[sizes == size]
        for a, b in itertools.combinations(range(int(size)), 2):
            rows.append(kp[group + a])
            cols.append(kp[group + b])
    if not rows:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    return np.concatenate(rows), np.concatenate(cols)


def graph_stats(g: KPGraph, *, communities: bool = True, max_community_edges: int = 50_000) -> dict[str, Any]:
    """Statistics for the graph page and ``graph --json``.

    Communities (Louvain, seeded) are computed up to ``max_community_edges`` edges; past
    that they are skipped with a reason rather than stalling the page.
    """
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

"""The KP graph, held as arrays so that walks over millions of seeds stay fast.

Nodes are KPs (dense indices ``0..K-1``); an edge joins two KPs named by the same seed,
with ``weight`` = the number of such seeds. Adjacency is CSR (``indptr``, ``indices``,
``weights``). Building it at a million seeds is mostly moving data: links leave SQLite
as ``group_concat`` text parsed by numpy (not a Python tuple per row), and one numba
kernel counting-sorts the co-occurring pairs into sorted CSR rows and sums duplicates
(no comparison sort, no COO matrix). :meth:`KPGraph.to_networkx` gives a networkx graph for analysis and drawing.

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
from numba import njit

from ..store import Store

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


_CHUNK = 4_000_000  # links per query: ~30 MB of text per column, far below SQLite's 1 GB string limit


def _ints(text: str | None, dtype=np.int64) -> np.ndarray:
    return np.fromstring(text, dtype=dtype, sep=",") if text else np.zeros(0, dtype=dtype)


def _read_links(store: Store) -> np.ndarray:
    """``(seed_rid, kp_id)`` rows, as an (L, 2) int64 array, sorted by seed.

    Two ``group_concat`` columns of one query step over the same rows, so they align;
    chunks are ranges of seed rids holding about ``_CHUNK`` links each.
    """
    conn = store.conn
    chunks = []
    with store.lock:
        lo, hi, total = conn.execute("SELECT min(seed_rid), max(seed_rid), count(*) FROM seed_kps").fetchone()
        if not total:
            return np.zeros((0, 2), dtype=np.int64)
        span = max(1, -(-(hi - lo + 1) * _CHUNK // total))
        for start in range(lo, hi + 1, span):
            rids, kps = conn.execute(
                "SELECT group_concat(seed_rid), group_concat(kp_id) FROM seed_kps WHERE seed_rid >= ? AND seed_rid < ?",
                (start, start + span),
            ).fetchone()
            if rids:
                chunks.append(np.stack([_ints(rids), _ints(kps)], axis=1))
    links = np.concatenate(chunks)
    if links.shape[0] > 1 and np.any(links[1:, 0] < links[:-1, 0]):
        links = links[np.argsort(links[:, 0], kind="stable")]
    return links


def _read_seeds(store: Store) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Disciplines (sorted), discipline index and difficulty by rid.

    One query grouped by (discipline, difficulty): a table scan and a sort of small keys
    (1M seeds: ~0.9 s), or a covering-index scan when the optional index of
    ``MIGRATION`` exists (~0.2 s). Difficulties arrive as exact floats (as text SQLite
    would round them to 15 digits).
    """
    with store.lock:
        max_rid = store.conn.execute("SELECT max(rid) FROM seeds").fetchone()[0] or 0
        groups = store.conn.execute(
            "SELECT discipline, difficulty, group_concat(rid) FROM seeds GROUP BY discipline, difficulty"
        ).fetchall()
    disciplines = sorted({d for d, _, _ in groups})
    d_index = {d: i for i, d in enumerate(disciplines)}
    seed_disc = np.zeros(max_rid + 1, dtype=np.int16)
    seed_diff = np.full(max_rid + 1, np.nan)
    for disc, diff, text in groups:
        rids = _ints(text)
        seed_disc[rids] = d_index[disc]
        if diff is not None:
            seed_diff[rids] = diff
    return disciplines, seed_disc, seed_diff


def _kp_names(store: Store, kp_ids: np.ndarray) -> list[str]:
    with store.lock:
        ids_text, names_text, count = store.conn.execute(
            "SELECT group_concat(id), group_concat(name, char(30)), count(*) FROM kps"
        ).fetchone()
    ids = _ints(ids_text)
    names = names_text.split("\x1e") if names_text else []
    if len(names) != count or ids.size != count:  # a name holding char(30): the plain way
        with store.lock:
            cur = store.conn.execute("SELECT id, name FROM kps")
            cur.row_factory = None
            name_of = dict(cur.fetchall())
        return [name_of.get(int(k), f"kp {int(k)}") for k in kp_ids]
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    pos = np.searchsorted(ids, kp_ids)
    pos_c = np.minimum(pos, max(ids.size - 1, 0))
    found = (ids.size > 0) & (ids[pos_c] == kp_ids) if ids.size else np.zeros(kp_ids.size, bool)
    order_l = order.tolist()
    return [names[order_l[p]] if f else f"kp {int(k)}"
            for p, f, k in zip(pos_c.tolist(), found.tolist(), kp_ids.tolist())]


def build_graph(store: Store) -> KPGraph:
    """Read the seed–KP links from the database and build the graph."""
    links = _read_links(store)
    disciplines, seed_disc, seed_diff = _read_seeds(store)
    kp_ids, kp = _dense_ids(links[:, 1])
    names = _kp_names(store, kp_ids)
    return _build(links[:, 0], kp_ids, kp, seed_disc, seed_diff, disciplines, names)


def _dense_ids(kp_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ids and the dense index of each, by a lookup table when ids are compact."""
    if kp_id.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    lo, hi = int(kp_id.min()), int(kp_id.max())
    if lo >= 0 and hi < 4 * kp_id.size + 1_000_000:
        present = np.zeros(hi + 1, dtype=bool)
        present[kp_id] = True
        ids = np.flatnonzero(present).astype(np.int64)
        remap = np.cumsum(present, dtype=np.int64) - 1
        return ids, remap[kp_id].astype(np.int32)
    ids, inv = np.unique(kp_id, return_inverse=True)
    return ids.astype(np.int64), inv.astype(np.int32)


def graph_from_links(seed_rid, kp_id, seed_discipline, seed_difficulty, disciplines, *, names=None, kp_ids=None) -> KPGraph:
    """Build from link arrays (``seed_rid[i]`` names ``kp_id[i]``); seed arrays are indexed by rid."""
    seed_rid = np.asarray(seed_rid, dtype=np.int64)
    kp_id = np.asarray(kp_id, dtype=np.int64)
    if kp_ids is None:
        kp_ids, kp = _dense_ids(kp_id)
    else:
        kp_ids = np.asarray(kp_ids, dtype=np.int64)
        kp = np.searchsorted(kp_ids, kp_id).astype(np.int32)
    if names is None:
        names = [f"kp {int(k)}" for k in kp_ids]
    return _build(seed_rid, kp_ids, kp, seed_discipline, seed_difficulty, disciplines, names)


def _build(seed_rid, kp_ids, kp, seed_discipline, seed_difficulty, disciplines, names) -> KPGraph:
    n = int(kp_ids.shape[0])
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

    if seed_rid.size:
        starts = np.flatnonzero(np.r_[True, seed_rid[1:] != seed_rid[:-1]]).astype(np.int64)
    else:
        starts = np.zeros(0, np.int64)
    indptr, indices, weights = _csr_kernel(starts, kp, n)
    seed_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(freq, out=seed_indptr[1:])
    seed_rids = _group_by_kp(kp, seed_rid, seed_indptr)
    return KPGraph(
        kp_ids=np.asarray(kp_ids, dtype=np.int64),
        names=list(names),
        freq=freq,
        discipline=discipline,
        disciplines=list(disciplines) or ["Other"],
        difficulty=difficulty,
        indptr=indptr,
        indices=indices,
        weights=weights,
        seed_indptr=seed_indptr,
        seed_rids=seed_rids,
        discipline_counts=counts,
    )


@njit(cache=True)
def _csr_kernel(starts, kp, n):
    """Symmetric co-occurrence CSR: rows sorted, duplicates summed into float weights.

    Fill every KP pair of every seed into row buckets (unsorted), then bucket again by
    counting sort ("transpose"): row ``v`` receives its neighbours ``u`` in increasing
    order, since the matrix is symmetric; equal neighbours are then adjacent and are
    run-length encoded into weights. Two O(pairs) passes, no comparison sort.
    """
    total = kp.shape[0]
    n_groups = starts.shape[0]
    raw_ptr = np.zeros(n + 1, np.int64)
    for g in range(n_groups):
        a = starts[g]
        b = starts[g + 1] if g + 1 < n_groups else total
        m = b - a
        if m < 2:
            continue
        for i in range(a, b):
            raw_ptr[kp[i] + 1] += m - 1
    for u in range(n):
        raw_ptr[u + 1] += raw_ptr[u]
    raw = np.empty(raw_ptr[n], np.int32)
    fill = raw_ptr[:n].copy()
    for g in range(n_groups):
        a = starts[g]
        b = starts[g + 1] if g + 1 < n_groups else total
        if b - a < 2:
            continue
        for i in range(a, b):
            u = kp[i]
            f = fill[u]
            for j in range(a, b):
                if j != i:
                    raw[f] = kp[j]
                    f += 1
            fill[u] = f
    srt = np.empty(raw.shape[0], np.int32)
    fill[:] = raw_ptr[:n]
    for u in range(n):
        for e in range(raw_ptr[u], raw_ptr[u + 1]):
            v = raw[e]
            srt[fill[v]] = u
            fill[v] += 1
    indptr = np.zeros(n + 1, np.int64)
    indices = raw  # reused: the output is never longer than the input
    weights = np.empty(raw.shape[0], np.float64)
    c = 0
    for v in range(n):
        lo = raw_ptr[v]
        hi = raw_ptr[v + 1]
        if hi > lo:
            prev = srt[lo]
            w = 1.0
            for e in range(lo + 1, hi):
                x = srt[e]
                if x == prev:
                    w += 1.0
                else:
                    indices[c] = prev
                    weights[c] = w
                    c += 1
                    prev = x
                    w = 1.0
            indices[c] = prev
            weights[c] = w
            c += 1
        indptr[v + 1] = c
    return indptr, indices[:c].copy(), weights[:c].copy()


@njit(cache=True)
def _group_by_kp(kp, seed_rid, seed_indptr):
    """Seeds of each KP in link order (a stable counting sort by KP)."""
    n = seed_indptr.shape[0] - 1
    pos = seed_indptr[:n].copy()
    out = np.empty(kp.shape[0], np.int64)
    for i in range(kp.shape[0]):
        k = kp[i]
        out[pos[k]] = seed_rid[i]
        pos[k] += 1
    return out


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

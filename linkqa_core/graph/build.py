"""The KP graph, held as arrays so that walks over millions of seeds stay fast.

Nodes are KPs (dense indices ``0..K-1``); an edge joins two KPs named by the same seed,
with ``weight`` = the number of such seeds. Adjacency is CSR (``indptr``, ``indices``,
``weights``). Building it at a million seeds is mostly moving data: links leave SQLite
as ``group_concat`` text parsed by numpy (:meth:`~linkqa_core.store.kps.KPStore.link_arrays`), and one numba
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

__all__ = ["KPGraph", "build_graph", "graph_from_links"]


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
    _concept: np.ndarray | None = field(default=None, repr=False)

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
        """The KP shown as ``name`` (case-insensitive), or None."""
        if self._name_index is None:
            self._name_index = {}
            for i, n in enumerate(self.names):
                self._name_index.setdefault(n.casefold(), i)
        return self._name_index.get(str(name).casefold())

    def concept_flags(self) -> np.ndarray:
        """Per KP: 1 a concept, 0 a general-language word, -1 not judged yet (filled by
        :func:`~linkqa_core.graph.metrics.linkage_metrics` for the KPs on paths, kept here
        so each name is judged once per graph). Shared and written to: int8, by KP index."""
        if self._concept is None:
            self._concept = np.full(self.n_nodes, -1, dtype=np.int8)
        return self._concept

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
    """Read the seed–KP links from the database and build the graph (KP labels as names)."""
    links = store.kps.link_arrays()
    disciplines, seed_disc, seed_diff = store.kps.seed_arrays()
    kp_ids, kp = _dense_ids(links[:, 1])
    names = store.kps.labels_for(kp_ids)
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


def _csr_kernel(starts, kp, n):
    """Symmetric co-occurrence CSR: rows sorted, duplicates summed into float weights.

    At ten million seeds the pair buffers are the build's peak memory (about 250M pairs,
    1 GB each), so the outputs are sized exactly (a counting pass before they are
    allocated) and the row buffer is compacted in place and cut to size here, after the
    kernel has dropped its sort buffer.
    """
    indptr, raw, weights, c = _csr_fill(starts, kp, n)
    indices = raw[:c].copy()
    del raw
    return indptr, indices, weights


@njit(cache=True)
def _csr_fill(starts, kp, n):
    """Fill every KP pair of every seed into row buckets (unsorted), then bucket again by
    counting sort ("transpose"): row ``v`` receives its neighbours ``u`` in increasing
    order, since the matrix is symmetric; equal neighbours are then adjacent and are
    run-length encoded into weights. Two O(pairs) passes, no comparison sort.

    Returns ``(indptr, raw, weights, c)``: the first ``c`` entries of ``raw`` are the
    column indices (compacted in place), ``weights`` has exactly ``c`` entries.
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
    # distinct neighbours per row first, so that the weights are allocated at their size
    indptr = np.zeros(n + 1, np.int64)
    for v in range(n):
        lo = raw_ptr[v]
        hi = raw_ptr[v + 1]
        d = 0
        if hi > lo:
            d = 1
            for e in range(lo + 1, hi):
                if srt[e] != srt[e - 1]:
                    d += 1
        indptr[v + 1] = indptr[v] + d
    c = indptr[n]
    indices = raw  # reused: the output is never longer than the input
    weights = np.empty(c, np.float64)
    k = 0
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
                    indices[k] = prev
                    weights[k] = w
                    k += 1
                    prev = x
                    w = 1.0
            indices[k] = prev
            weights[k] = w
            k += 1
    return indptr, raw, weights, c


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

"""Seed bundles (DESIGN §5): a few seeds that together cover a path's KPs.

Candidates are the seeds naming any KP of the path; a seed's *link strength* is how
many path KPs it names. Seeds are chosen greedily, the one covering most still
uncovered KPs first (ties: the stronger, then the older seed), until the path is covered
and at least ``min_seeds`` are chosen, or ``max_seeds`` are. "Strongly linked" is then
measurable as the mean link strength of the chosen seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..errors import ConfigError
from .build import KPGraph
from .walks import Walks

__all__ = ["Bundles", "choose_bundles"]


@dataclass
class Bundles:
    """Chosen seeds of every path, flat: ``rids[ptr[i]:ptr[i+1]]`` belong to path ``i``."""

    rids: np.ndarray
    strength: np.ndarray  # path KPs named by each chosen seed
    ptr: np.ndarray
    min_seeds: int = 1  # what was asked for; :attr:`short` are the bundles the graph could not fill

    def of(self, i: int) -> np.ndarray:
        return self.rids[self.ptr[i] : self.ptr[i + 1]]

    def strengths_of(self, i: int) -> np.ndarray:
        return self.strength[self.ptr[i] : self.ptr[i + 1]]

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.ptr)

    @property
    def short(self) -> np.ndarray:
        """Indices of the paths whose bundle has fewer than ``min_seeds`` seeds: fewer seeds name their KPs."""
        return np.flatnonzero(self.sizes < self.min_seeds)


def choose_bundles(graph: KPGraph, walks: Walks, *, min_seeds: int = 3, max_seeds: int = 5) -> Bundles:
    if not 1 <= min_seeds <= max_seeds:
        raise ConfigError(f"bundle size must satisfy 1 <= min_seeds ({min_seeds}) <= max_seeds ({max_seeds})")
    if walks.lengths.size and walks.lengths.max() > 62:
        raise ConfigError("paths longer than 62 KPs cannot be bundled")
    rids, strength, ptr = _bundle_kernel(walks.nodes, walks.ptr, graph.seed_indptr, graph.seed_rids,
                                         int(min_seeds), int(max_seeds))
    return Bundles(rids, strength, ptr, int(min_seeds))


@njit(cache=True)
def _popcount(x):
    c = 0
    while x:
        x &= x - 1
        c += 1
    return c


@njit(cache=True)
def _bundle_kernel(nodes, ptr, seed_indptr, seed_rids, min_seeds, max_seeds):
    n_paths = ptr.shape[0] - 1
    out_rids = np.empty(n_paths * max_seeds, np.int64)
    out_str = np.empty(n_paths * max_seeds, np.int32)
    out_ptr = np.zeros(n_paths + 1, np.int64)
    cursor = 0
    for p in range(n_paths):
        a = ptr[p]
        b = ptr[p + 1]
        total = 0
        for j in range(a, b):
            kp = nodes[j]
            total += seed_indptr[kp + 1] - seed_indptr[kp]
        cand = np.empty(total, np.int64)
        mask = np.empty(total, np.int64)
        c = 0
        for j in range(a, b):
            kp = nodes[j]
            for t in range(seed_indptr[kp], seed_indptr[kp + 1]):
                cand[c] = seed_rids[t]
                mask[c] = np.int64(1) << (j - a)
                c += 1
        order = np.argsort(cand)
        u_rid = np.empty(total, np.int64)
        u_mask = np.zeros(total, np.int64)
        nu = 0
        for t in range(total):
            r = cand[order[t]]
            if nu == 0 or u_rid[nu - 1] != r:
                u_rid[nu] = r
                u_mask[nu] = 0
                nu += 1
            u_mask[nu - 1] |= mask[order[t]]
        full = (np.int64(1) << (b - a)) - 1
        covered = np.int64(0)
        taken = np.zeros(nu, np.bool_)
        chosen = 0
        while chosen < max_seeds and chosen < nu:
            if covered == full and chosen >= min_seeds:
                break
            best = -1
            best_gain = -1
            best_str = -1
            for t in range(nu):
                if taken[t]:
                    continue
                gain = _popcount(u_mask[t] & ~covered)
                st = _popcount(u_mask[t])
                if gain > best_gain or (gain == best_gain and st > best_str):
                    best = t
                    best_gain = gain
                    best_str = st
            if best < 0:
                break
            taken[best] = True
            covered |= u_mask[best]
            out_rids[cursor] = u_rid[best]
            out_str[cursor] = best_str
            cursor += 1
            chosen += 1
        out_ptr[p + 1] = cursor
    return out_rids[:cursor].copy(), out_str[:cursor].copy(), out_ptr

"""A step out of a hub without scanning its neighbours: alias tables corrected by rejection.

The exact step from ``u`` weighs every neighbour ``v`` not yet on the path by
``target(e) = wpow(e)·w(v)·(link if v is fresh else 1)`` (:mod:`.walks`), so it costs
O(degree). At ten million seeds the popular KPs that the value function favours have
tens of thousands of neighbours, and such scans were nearly all of the walk's time.

For a row of more than ``hub_degree`` neighbours the kernel instead keeps the prefix sums
of the *proposal* ``q(e) = wpow(e)·w(v)``, with ``w`` as it was when the sums were taken
(the first time a walk leaves the hub: one pass, the cost of one exact step), and draws:

1. ``e`` ∝ ``q(e)`` by binary search of the sums (O(log degree));
2. reject when ``v`` is on the path;
3. with ``r`` uniform in ``[0, q(e))``: reject when ``r >= wpow(e)·w(v)`` (``v`` was
   visited since the sums were taken), accept when ``r·link < wpow(e)·w(v)``, otherwise
   accept exactly when ``v`` is fresh (the freshness look-up is needed in that band only).

A draw accepts ``e`` with probability ``q(e)/Q · target(e)/(q(e)·link)`` ∝ ``target(e)``:
the exact step's distribution, because ``w(v)`` never grows during a run (visits only
rise, and coverage ``(1+visits)^-gamma`` falls with them), so ``q(e)`` stays an upper
bound of ``wpow(e)·w(v)``. Draws are independent, so the accepted one follows the target
whatever the refusals before it. Two bounds keep the cost low when the bound goes stale:

- a row whose draws were refused for coverage more than a quarter of its degree times
  since its sums were taken takes them again from the current weights (O(degree), paid
  for by those refusals), so its acceptance climbs back;
- a step that has drawn ``max(32, degree/8)`` times without acceptance gives up and the
  kernel sums the exact weights (the same distribution, as the draws before it were
  refused whatever they drew); a step never costs much more than a scan.

The sums of all hub rows share one array allocated per call (8 bytes per hub edge);
pages of hubs no walk leaves are never touched, so they cost no memory. Prefix sums
rather than alias tables: taking them costs what one scan costs (an alias table cost
five times more to build at 10M seeds, where most hubs are left only a few times in a
run), and a binary search over a hub visited often stays in cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["HUB_DEGREE", "MIN_TRIES", "hub_layout", "build_row", "hub_step", "fresh"]

HUB_DEGREE = 64  # rows with more neighbours step by prefix sums and rejection; fewer: the exact scan
MIN_TRIES = 32  # draws a hub step makes before it sums the exact weights (or degree/8, if more)


@njit(cache=True)
def hub_layout(indptr, hub_degree):
    """Offset of each hub row's prefix sums (-1 for a row stepped by the exact scan), and
    the total length."""
    k = indptr.shape[0] - 1
    pos = np.full(k, -1, np.int64)
    total = 0
    for u in range(k):
        d = indptr[u + 1] - indptr[u]
        if d > hub_degree:
            pos[u] = total
            total += d
    return pos, total


@njit(cache=True)
def build_row(u, indptr, indices, wpow, w, off, cum):
    """Store the prefix sums of row ``u``'s proposal ``q(e) = wpow(e)·w(v)`` at ``off``
    (one pass, the cost of one exact step); returns the row's total (0: nothing to draw)."""
    lo = indptr[u]
    n = indptr[u + 1] - lo
    total = 0.0
    for i in range(n):
        total += wpow[lo + i] * w[indices[lo + i]]
        cum[off + i] = total
    return total


@njit(cache=True)
def hub_step(u, p, indptr, indices, wpow, w, off, cum, stamp, linking, link,
             path, first, n_path, seed_indptr, seed_rids, scan, refusals):
    """One step out of hub ``u`` on path ``p``: the chosen edge (CSR index), or -1 when
    ``max(MIN_TRIES, degree/8)`` draws were refused (the caller sums the exact weights).

    A draw picks entry ``i`` with probability ``q(i)/total`` (binary search of the prefix
    sums), and ``q(i)`` is read back as the difference of two prefix sums: the width of the
    interval that was drawn in, so the correction divides by exactly the proposal used.
    ``refusals[u]`` counts draws refused for coverage since the row's sums were taken.
    """
    lo = indptr[u]
    n = indptr[u + 1] - lo
    total = cum[off + n - 1]
    tries = max(MIN_TRIES, n >> 3)
    for _ in range(tries):
        x = np.random.random() * total
        a = 0
        b = n - 1
        while a < b:
            m = (a + b) >> 1
            if cum[off + m] > x:
                b = m
            else:
                a = m + 1
        e = lo + a
        v = indices[e]
        if stamp[v] == p:
            continue
        q = cum[off + a] - (cum[off + a - 1] if a > 0 else 0.0)
        r = np.random.random() * q
        t = wpow[e] * w[v]
        if r >= t:
            refusals[u] += 1
            continue
        if not linking or r * link < t:
            return e
        if fresh(v, path, first, n_path, seed_indptr, seed_rids, scan):
            return e
    return -1


@njit(cache=True)
def fresh(v, path, first, n_path, seed_indptr, seed_rids, scan):
    """Does some seed naming ``v`` name no KP of the path so far?

    The path is ``path[first:first + n_path]``; each of its KPs counts by its first
    ``scan`` (LINK_SCAN) seeds, and a KP named by more than ``scan`` seeds is always fresh.
    A KP's seeds are sorted (the graph groups links sorted by seed), so each membership is a
    binary search in a few cached lines; marking every path KP's seeds in a seed-sized
    array instead cost up to 64 writes to random places of a 40 MB array per KP at 10M seeds.
    """
    lo = seed_indptr[v]
    hi = seed_indptr[v + 1]
    if hi - lo > scan or hi == lo:
        return True
    for t in range(lo, hi):
        s = seed_rids[t]
        named = False
        for j in range(first, first + n_path):
            x = path[j]
            a = seed_indptr[x]
            b = min(seed_indptr[x + 1], a + scan)
            if b == a or s < seed_rids[a] or s > seed_rids[b - 1]:
                continue
            while a < b:
                m = (a + b) >> 1
                if seed_rids[m] < s:
                    a = m + 1
                else:
                    b = m
            if seed_rids[a] == s:
                named = True
                break
        if not named:
            return True
    return False

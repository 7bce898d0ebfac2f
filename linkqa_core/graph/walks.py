"""Value-guided walks over the KP graph (DESIGN §4, our reconstruction).

For a KP ``v`` during one run::

    p(v) = log(1+freq(v)) / log(1+max freq)          popularity, in (0, 1]
    c(v) = (1 + visits(v)) ** -gamma                  coverage, 1 when unvisited
    h(v) = 1 - |difficulty(v) - difficulty_target|/4  difficulty fit
    V(v) = w_pop·p(v) + w_cov·c(v) + w_diff·h(v)

Linkage makes a path's KPs join several seeds: a step to ``v`` is *linked* when some
seed naming ``v`` names no KP of the path so far (``v`` brings a new seed to the bundle,
one that shares ``v`` with the seed joining ``u`` and ``v``); a start KP is linked when a
path from it can gather two seeds (two or more seeds name it, or a neighbour is named by
a seed that does not name it). With ``l(v)`` = 1 for a linked KP, else 0::

    start ∝ exp((V(v) + w_link·l(v)) / tau)        inside the discipline furthest below its target
    step  ∝ weight(u,v)**alpha · exp((V(v) + w_link·l(v)) / tau)   over unvisited neighbours

for a length drawn in ``[min_len, max_len]``. Visits update after every path. To decide
``l(v)`` cheaply, each KP of a path counts by its first ``LINK_SCAN`` (64) seeds, and a
KP named by more than ``LINK_SCAN`` seeds always counts as linked. The loop is compiled
with numba: start draws use one Fenwick tree per discipline (O(log K) to draw and to
update after a path); a step out of a KP of at most ``hub_degree`` (64) neighbours sums
their weights, a step out of a hub draws from prefix sums corrected by rejection
(:mod:`.hubs`: the same distribution, O(log degree) per draw instead of O(degree)).

On the bundled sample:

>>> from linkqa_core.graph.build import build_graph
>>> from linkqa_core.ingest.load import ingest, sample_path
>>> from linkqa_core.kps.extract import run_extraction
>>> from linkqa_core.store import Store
>>> store = Store(":memory:"); _ = ingest(store, sample_path()); _ = run_extraction(store)
>>> walks = value_walks(build_graph(store), WalkParams(w_cov=2.0), n_paths=100, seed=7)
>>> len(walks), bool(walks.lengths.min() >= 1)
(100, True)

Over ~500 lines because the value function, its linkage rule and the compiled kernel
(with its Fenwick trees for sampling by value) are one idea: the formulas above and the
code that applies them at a million seeds stay on one page, so a reader can check one
against the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
from numba import njit

from ..errors import ConfigError
from .build import KPGraph
from .hubs import HUB_DEGREE, build_row, fresh as _fresh, hub_layout, hub_step

__all__ = ["WalkParams", "Walks", "value_walks", "uniform_walks", "target_shares", "parse_mix", "KNOBS", "LINK_SCAN"]

# One name per knob, used by the engine, the CLI flags (--w-pop …), the sliders and the
# stored run config: (name, default, low, high, help)
KNOBS: tuple[tuple[str, float, float, float, str], ...] = (
    ("w_pop", 0.5, 0.0, 5.0, "weight of KP popularity p(v)"),
    ("w_cov", 1.0, 0.0, 5.0, "weight of coverage c(v): favours KPs no path has used"),
    ("w_diff", 0.3, 0.0, 5.0, "weight of difficulty fit h(v)"),
    ("alpha", 1.0, 0.0, 3.0, "exponent on edge weight when stepping"),
    ("tau", 0.3, 0.02, 5.0, "temperature: low = greedy, high = close to uniform"),
    ("gamma", 1.0, 0.0, 5.0, "how fast coverage value decays with visits"),
    ("min_len", 3, 1, 16, "shortest path, in KPs"),
    ("max_len", 5, 1, 16, "longest path, in KPs"),
    ("difficulty_target", 3.0, 1.0, 5.0, "difficulty (1-5) that h(v) rewards"),
    ("w_link", 2.0, 0.0, 5.0, "weight of linkage: favours a next KP that brings a seed the path has not "
                              "gathered yet, so each bundle joins several seeds sharing KPs"),
)

LINK_SCAN = 64  # seeds of a path KP that count, and of a candidate that are looked up, when deciding linkage
REJECTS = 32  # linked steps: rejection draws before the exact weights are summed


@dataclass(frozen=True)
class WalkParams:
    """The value function's knobs; frozen so that a run's config is what ran."""

    w_pop: float = 0.5
    w_cov: float = 1.0
    w_diff: float = 0.3
    alpha: float = 1.0
    tau: float = 0.3
    gamma: float = 1.0
    min_len: int = 3
    max_len: int = 5
    difficulty_target: float = 3.0
    w_link: float = 2.0
    mix: tuple[tuple[str, float], ...] | None = field(default=None)

    def __post_init__(self) -> None:
        for name, _default, low, high, _help in KNOBS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            if not low <= value <= high:
                raise ConfigError(f"{name} = {value} is outside [{low:g}, {high:g}]")
        if int(self.min_len) != self.min_len or int(self.max_len) != self.max_len:
            raise ConfigError("min_len and max_len must be whole numbers")
        if self.min_len > self.max_len:
            raise ConfigError(f"min_len ({self.min_len}) is larger than max_len ({self.max_len})")
        if self.mix is not None:
            # one canonical order, so equal mixes compare and hash equal
            object.__setattr__(self, "mix", tuple(sorted((str(n), float(v)) for n, v in self.mix)))
            for name, share in self.mix:
                if not np.isfinite(share) or share < 0:
                    raise ConfigError(f"the target share of {name} must be >= 0, got {share}")
            if sum(s for _, s in self.mix) <= 0:
                raise ConfigError("the discipline target shares add up to 0")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mix"] = dict(self.mix) if self.mix else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "WalkParams":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        mix = known.get("mix")
        if isinstance(mix, Mapping):
            known["mix"] = tuple((str(k), float(v)) for k, v in mix.items())
        for key in ("min_len", "max_len"):
            if key in known and isinstance(known[key], float) and known[key].is_integer():
                known[key] = int(known[key])
        return cls(**known)


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """``"Mathematics=0.5,Physics=0.5"`` -> pairs; shares may also be percentages."""
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ConfigError(f"--mix entry '{part}' is not DISCIPLINE=SHARE")
        name, _, share = part.rpartition("=")
        try:
            value = float(share.strip().rstrip("%"))
        except ValueError:
            raise ConfigError(f"--mix share '{share}' for {name.strip()} is not a number") from None
        pairs.append((name.strip(), value / 100 if share.strip().endswith("%") else value))
    if not pairs:
        raise ConfigError("--mix is empty")
    return tuple(pairs)


def target_shares(graph: KPGraph, params: WalkParams) -> np.ndarray:
    """Target share per discipline (graph order); default: as in the data (by KP links)."""
    counts = graph.discipline_counts.sum(axis=0).astype(float) if graph.n_nodes else np.zeros(len(graph.disciplines))
    has_kps = np.bincount(graph.discipline, minlength=len(graph.disciplines)) > 0
    if params.mix is None:
        shares = np.where(has_kps, counts, 0.0)
        return shares / shares.sum() if shares.sum() > 0 else shares
    lookup = {d.lower(): i for i, d in enumerate(graph.disciplines)}
    shares = np.zeros(len(graph.disciplines))
    for name, share in params.mix:
        i = lookup.get(name.lower())
        if i is None:
            raise ConfigError(f"unknown discipline '{name}' in the mix; known: {', '.join(graph.disciplines)}")
        if share > 0 and not has_kps[i]:
            raise ConfigError(f"discipline '{graph.disciplines[i]}' has no knowledge points to start a path from")
        shares[i] = share
    return shares / shares.sum()


@dataclass
class Walks:
    """Paths as one flat array of dense KP indices plus offsets."""

    nodes: np.ndarray
    ptr: np.ndarray
    discipline: np.ndarray  # discipline index of each path (its start KP's)
    visits: np.ndarray  # visits in this run only
    targets: np.ndarray

    def __len__(self) -> int:
        return int(self.ptr.shape[0] - 1)

    def path(self, i: int) -> np.ndarray:
        return self.nodes[self.ptr[i] : self.ptr[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.ptr)


def _static_value(graph: KPGraph, p: WalkParams) -> np.ndarray:
    fmax = graph.freq.max() if graph.n_nodes else 1
    pop = np.log1p(graph.freq) / np.log1p(max(fmax, 1))
    fit = 1.0 - np.abs(graph.difficulty - p.difficulty_target) / 4.0
    return p.w_pop * pop + p.w_diff * fit


def _link_factor(p: WalkParams) -> float:
    """exp(w_link/tau): how much more a linked KP weighs than an unlinked one."""
    return float(np.exp(p.w_link / p.tau))


def _prepare(graph: KPGraph, params: WalkParams, n_paths: int, seed: int) -> tuple:
    if graph.n_nodes == 0:
        raise ConfigError("the KP graph is empty: run extract first")
    if n_paths < 0:
        raise ConfigError("the number of paths must be >= 0")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(params.min_len, params.max_len + 1, size=n_paths).astype(np.int64)
    eligible = graph.degree > 0 if params.min_len >= 2 else np.ones(graph.n_nodes, dtype=bool)
    if not eligible.any():
        raise ConfigError("no KP has a neighbour: paths of 2 or more KPs are impossible; set min_len to 1")
    return lengths, eligible


def value_walks(graph: KPGraph, params: WalkParams, n_paths: int, *, seed: int = 0,
                prior_visits: np.ndarray | None = None, hub_degree: int = HUB_DEGREE) -> Walks:
    """Walk ``n_paths`` value-guided paths; ``prior_visits`` is the coverage ledger.

    Steps out of KPs with more than ``hub_degree`` neighbours draw from an alias table
    corrected by rejection (:mod:`.hubs`), the others sum their neighbours' weights: the
    same distribution either way (0 sends every step through the tables, a degree above
    the largest through the sums; the tests compare the two).
    """
    lengths, eligible = _prepare(graph, params, n_paths, seed)
    targets = target_shares(graph, params)
    visits = np.zeros(graph.n_nodes, dtype=np.int64) if prior_visits is None else prior_visits.astype(np.int64).copy()
    start_visits = visits.copy()
    wpow = graph.weights ** params.alpha if params.alpha != 1 else graph.weights  # read only: no copy
    vmax = params.w_pop + params.w_cov + params.w_diff + params.w_link
    nodes, ptr, disc = _walk_kernel(
        graph.indptr, graph.indices, wpow, _static_value(graph, params), visits,
        float(params.w_cov), float(params.gamma), float(params.tau), float(vmax),
        graph.discipline.astype(np.int64), len(graph.disciplines), targets, eligible,
        lengths, np.uint32(seed % (2**32)), False,
        graph.seed_indptr, graph.seed_rids, graph.weights, _link_factor(params), LINK_SCAN, int(hub_degree),
    )
    return Walks(nodes, ptr, disc, visits - start_visits, targets)


def uniform_walks(graph: KPGraph, params: WalkParams, n_paths: int, *, seed: int = 0,
                  hub_degree: int = HUB_DEGREE) -> Walks:
    """The baseline: uniform start, a step to an unvisited neighbour ∝ edge weight, same lengths."""
    lengths, eligible = _prepare(graph, params, n_paths, seed)
    targets = target_shares(graph, params)
    visits = np.zeros(graph.n_nodes, dtype=np.int64)
    nodes, ptr, disc = _walk_kernel(
        graph.indptr, graph.indices, graph.weights, np.zeros(graph.n_nodes), visits,
        0.0, 0.0, 1.0, 0.0, graph.discipline.astype(np.int64), len(graph.disciplines), targets, eligible,
        lengths, np.uint32((seed + 1) % (2**32)), True,
        graph.seed_indptr, graph.seed_rids, graph.weights, 1.0, LINK_SCAN, int(hub_degree),
    )
    return Walks(nodes, ptr, disc, visits, targets)


# -- compiled core --------------------------------------------------------------------


@njit(cache=True)
def _fen_add(tree, off, n, i, delta):
    i += 1
    while i <= n:
        tree[off + i - 1] += delta
        i += i & (-i)


@njit(cache=True)
def _fen_find(tree, off, n, u):
    pos = 0
    step = 1
    while step * 2 <= n:
        step *= 2
    while step > 0:
        nxt = pos + step
        if nxt <= n and tree[off + nxt - 1] < u:
            pos = nxt
            u -= tree[off + nxt - 1]
        step //= 2
    return min(pos, n - 1)


@njit(cache=True)
def _fen_build(tree, off, n, values):
    for i in range(n):
        tree[off + i] = values[i]
    for i in range(1, n + 1):
        j = i + (i & (-i))
        if j <= n:
            tree[off + j - 1] += tree[off + i - 1]


@njit(cache=True)
def _node_weight(static, visits, v, w_cov, gamma, tau, vmax):
    value = static[v] + w_cov * (1.0 + visits[v]) ** (-gamma)
    return np.exp((value - vmax) / tau)


@njit(cache=True)
def _search(cum, n, r):
    """First index whose cumulative weight is above ``r``."""
    a = 0
    b = n - 1
    while a < b:
        m = (a + b) // 2
        if cum[m] > r:
            b = m
        else:
            a = m + 1
    return a


@njit(cache=True)
def _scan_step(u, p, indptr, indices, wpow, w, stamp, cum, linking, link,
               path, first, n_path, seed_indptr, seed_rids, scan):
    """The exact step: sum the weights of ``u``'s neighbours off the path and draw one;
    returns its CSR index, or -1 when every neighbour is on the path."""
    lo = indptr[u]
    hi = indptr[u + 1]
    s = 0.0
    for e in range(lo, hi):
        v = indices[e]
        if stamp[v] != p:
            s += wpow[e] * w[v]
        cum[e - lo] = s
    if s <= 0.0:
        # every neighbour is on the path (or weighs nothing): try uniform, else stop
        cnt = 0
        for e in range(lo, hi):
            if stamp[indices[e]] != p:
                cnt += 1
        if cnt == 0:
            return -1
        pick = np.random.randint(0, cnt)
        for e in range(lo, hi):
            if stamp[indices[e]] != p:
                if pick == 0:
                    return e
                pick -= 1
    if not linking:
        return lo + _search(cum, hi - lo, np.random.random() * s)
    # draw ∝ weight·(link if fresh else 1) by rejection from the draw without linkage
    # (accept a fresh KP always, another with probability 1/link): exact, and it looks up
    # freshness for a few KPs instead of every neighbour; after REJECTS refusals the
    # exact weights are summed (same distribution)
    for _ in range(REJECTS):
        c = _search(cum, hi - lo, np.random.random() * s)
        v = indices[lo + c]
        if _fresh(v, path, first, n_path, seed_indptr, seed_rids, scan) or np.random.random() * link < 1.0:
            return lo + c
    s = 0.0
    for e in range(lo, hi):
        v = indices[e]
        if stamp[v] != p:
            if _fresh(v, path, first, n_path, seed_indptr, seed_rids, scan):
                s += wpow[e] * w[v] * link
            else:
                s += wpow[e] * w[v]
        cum[e - lo] = s
    return lo + _search(cum, hi - lo, np.random.random() * s)


@njit(cache=True)
def _walk_kernel(indptr, indices, wpow, static, visits, w_cov, gamma, tau, vmax,
                 disc, n_disc, targets, eligible, lengths, seed, uniform,
                 seed_indptr, seed_rids, wpow_raw, link, scan, hub_degree):
    np.random.seed(seed)
    k = indptr.shape[0] - 1
    linking = (not uniform) and link != 1.0
    # start weights: a KP is linked when a path from it can gather two seeds (it is named by
    # two or more, or a neighbour is named by a seed that does not name it)
    start_mult = np.ones(k)
    if linking:
        for v in range(k):
            fv = seed_indptr[v + 1] - seed_indptr[v]
            ok = fv >= 2
            e = indptr[v]
            while not ok and e < indptr[v + 1]:
                u = indices[e]
                ok = seed_indptr[u + 1] - seed_indptr[u] > wpow_raw[e]
                e += 1
            if ok:
                start_mult[v] = link
    n_paths = lengths.shape[0]
    total_len = 0
    for p in range(n_paths):
        total_len += lengths[p]
    out_nodes = np.empty(total_len, np.int32)
    out_ptr = np.zeros(n_paths + 1, np.int64)
    out_disc = np.zeros(n_paths, np.int16)

    # node weights exp((V - vmax)/tau); 1 everywhere in uniform mode
    w = np.ones(k)
    if not uniform:
        for v in range(k):
            w[v] = _node_weight(static, visits, v, w_cov, gamma, tau, vmax)

    # eligible start KPs grouped by discipline, one Fenwick tree each
    seg_n = np.zeros(n_disc, np.int64)
    for v in range(k):
        if eligible[v]:
            seg_n[disc[v]] += 1
    seg_off = np.zeros(n_disc + 1, np.int64)
    for d in range(n_disc):
        seg_off[d + 1] = seg_off[d] + seg_n[d]
    n_elig = seg_off[n_disc]
    order = np.empty(n_elig, np.int64)
    pos_of = np.full(k, -1, np.int64)
    fill = seg_off[:n_disc].copy()
    for v in range(k):
        if eligible[v]:
            d = disc[v]
            order[fill[d]] = v
            pos_of[v] = fill[d] - seg_off[d]
            fill[d] += 1
    tree = np.zeros(n_elig)
    tot = np.zeros(n_disc)
    vals = np.empty(n_elig)
    for i in range(n_elig):
        vals[i] = w[order[i]] * start_mult[order[i]]
    for d in range(n_disc):
        _fen_build(tree, seg_off[d], seg_n[d], vals[seg_off[d]:seg_off[d + 1]])
        s = 0.0
        for i in range(seg_off[d], seg_off[d + 1]):
            s += vals[i]
        tot[d] = s

    resum_every = max(8192, n_elig // 8)
    max_deg = 0
    for v in range(k):
        dv = indptr[v + 1] - indptr[v]
        if dv > max_deg:
            max_deg = dv
    cum = np.empty(max_deg + 1)
    # hub rows: prefix sums taken when a walk first leaves the hub (see hubs.py); pages of
    # hubs no walk leaves are never touched
    hub_pos, tab_len = hub_layout(indptr, hub_degree)
    tab = np.empty(tab_len)
    row_total = np.full(k, -1.0)  # -1: not taken yet
    refusals = np.zeros(k, np.int64)
    stamp = np.full(k, -1, np.int64)
    per_disc = np.zeros(n_disc)
    cursor = 0
    for p in range(n_paths):
        # start
        if uniform:
            start = order[np.random.randint(0, n_elig)]
        else:
            best = -1
            best_def = -1e300
            for d in range(n_disc):
                if seg_n[d] == 0 or targets[d] <= 0:
                    continue
                deficit = targets[d] * (p + 1) - per_disc[d]
                if deficit > best_def:
                    best_def = deficit
                    best = d
            if best < 0:
                best = disc[order[np.random.randint(0, n_elig)]]
            n_d = seg_n[best]
            if tot[best] > 0:
                i = _fen_find(tree, seg_off[best], n_d, np.random.random() * tot[best])
            else:
                i = np.random.randint(0, n_d)
            start = order[seg_off[best] + i]
        d0 = disc[start]
        per_disc[d0] += 1
        out_disc[p] = d0
        out_nodes[cursor] = start
        stamp[start] = p
        length = 1
        u = start
        while length < lengths[p]:
            e = -1
            off = hub_pos[u]
            if off >= 0:
                if row_total[u] < 0.0 or refusals[u] > (indptr[u + 1] - indptr[u]) >> 2:
                    row_total[u] = build_row(u, indptr, indices, wpow, w, off, tab)
                    refusals[u] = 0
                if row_total[u] > 0.0:
                    e = hub_step(u, p, indptr, indices, wpow, w, off, tab, stamp, linking, link,
                                 out_nodes, cursor, length, seed_indptr, seed_rids, scan, refusals)
            if e < 0:
                e = _scan_step(u, p, indptr, indices, wpow, w, stamp, cum, linking, link,
                               out_nodes, cursor, length, seed_indptr, seed_rids, scan)
                if e < 0:
                    break  # every neighbour is on the path
            u = indices[e]
            stamp[u] = p
            out_nodes[cursor + length] = u
            length += 1
        # coverage moves after every path
        for j in range(cursor, cursor + length):
            v = out_nodes[j]
            visits[v] += 1
            if not uniform:
                nw = _node_weight(static, visits, v, w_cov, gamma, tau, vmax)
                if pos_of[v] >= 0:
                    dv = disc[v]
                    delta = (nw - w[v]) * start_mult[v]
                    _fen_add(tree, seg_off[dv], seg_n[dv], pos_of[v], delta)
                    tot[dv] += delta
                w[v] = nw
        cursor += length
        out_ptr[p + 1] = cursor
        # re-sum to stop floating-point drift; a re-sum costs O(KPs), so on big graphs it
        # comes every n_elig/8 paths (millions of updates still drift by ~1e-10 of a total)
        if not uniform and (p + 1) % resum_every == 0:
            for i in range(n_elig):
                vals[i] = w[order[i]] * start_mult[order[i]]
            for d in range(n_disc):
                tree[seg_off[d]:seg_off[d + 1]] = 0.0
                _fen_build(tree, seg_off[d], seg_n[d], vals[seg_off[d]:seg_off[d + 1]])
                s2 = 0.0
                for i in range(seg_off[d], seg_off[d + 1]):
                    s2 += vals[i]
                tot[d] = s2
    return out_nodes[:cursor].copy(), out_ptr, out_disc

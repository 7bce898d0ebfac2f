"""The obvious implementations the engine is measured against (issue #5).

- :func:`nx_build_graph`: the KP graph built edge by edge in networkx from the stored
  seed–KP links: for each seed, for each pair of its KPs, ``add_edge`` or increment the
  weight; node attributes (freq, discipline counts, mean difficulty) accumulated the same
  way. It reads the same tables as :func:`linkqa_core.graph.build_graph`.
- :func:`nx_value_walks`: value-guided walks written straightforwardly in Python over the
  networkx graph, with exactly the engine's formulas and rules (DESIGN §4,
  :mod:`linkqa_core.walks`): path lengths from ``default_rng(seed)`` as the engine draws
  them; start in the discipline furthest below its target share (ties: first in
  discipline order), KP ∝ ``exp(V/tau)`` among that discipline's KPs with a neighbour;
  step to an unvisited neighbour ∝ ``weight^alpha · exp(V/tau)``, each times
  ``exp(w_link/tau)`` when the KP is linked (a start KP: two or more seeds name it, or a
  neighbour is named by a seed that does not; a step: some seed naming it is not among
  the seeds marked by the path so far, each path KP marking its first ``LINK_SCAN``
  seeds, and a KP with more than ``LINK_SCAN`` seeds always linked); a path ends early when
  no unvisited neighbour is left; visits (so coverage and ``V``) update after every path.
  Not a straw man: current node weights are kept in a dict and in one numpy array per
  discipline (updated after each path, as the formulas require), and the start draw is a
  numpy cumulative sum; only the neighbour scan of a step is plain Python, as anyone
  would write it. Its random numbers come from :class:`random.Random`, not the engine's
  stream, so paths differ one by one but must agree in distribution:
  :func:`distribution_check` compares the sample metrics.
- :func:`compare_graphs`: checks that both graphs are the same graph.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from itertools import combinations, groupby
from operator import itemgetter
from typing import Any

import numpy as np

from linkqa_core.graph.build import KPGraph
from linkqa_core.graph.walks import LINK_SCAN, WalkParams, Walks

__all__ = ["nx_build_graph", "compare_graphs", "nx_value_walks", "to_walks", "distribution_check",
           "DISTRIBUTION_METRICS"]


def nx_build_graph(store) -> Any:
    """The KP graph from the store's links, edge by edge (networkx ``Graph``, nodes = KP ids)."""
    import networkx as nx

    with store.reading() as conn:
        cur = conn.execute("SELECT rid, discipline, difficulty FROM seeds")
        cur.row_factory = None
        seed_info = {rid: (disc, diff) for rid, disc, diff in cur}
        cur = conn.execute("SELECT id, coalesce(label, name) FROM kps")
        cur.row_factory = None
        names = dict(cur.fetchall())
        g = nx.Graph()
        disciplines = sorted({d for d, _ in seed_info.values()})
        g.graph["disciplines"] = disciplines
        nodes = g.nodes
        cur = conn.execute("SELECT seed_rid, kp_id FROM seed_kps ORDER BY seed_rid, kp_id")
        cur.row_factory = None
        for rid, group in groupby(cur, key=itemgetter(0)):
            kps = [k for _, k in group]
            disc, diff = seed_info[rid]
            for k in kps:
                if k not in g:
                    g.add_node(k, name=names.get(k, f"kp {k}"), freq=0, disc_counts={}, diff_sum=0.0, diff_n=0,
                               seeds=[])
                attrs = nodes[k]
                attrs["freq"] += 1
                attrs["seeds"].append(rid)
                attrs["disc_counts"][disc] = attrs["disc_counts"].get(disc, 0) + 1
                if diff is not None:
                    attrs["diff_sum"] += diff
                    attrs["diff_n"] += 1
            for a, b in combinations(kps, 2):
                if g.has_edge(a, b):
                    g[a][b]["weight"] += 1
                else:
                    g.add_edge(a, b, weight=1)
    order = {d: i for i, d in enumerate(disciplines)}
    for _k, attrs in g.nodes(data=True):
        attrs["difficulty"] = attrs["diff_sum"] / attrs["diff_n"] if attrs["diff_n"] else 3.0
        # most common discipline, ties to the first in discipline order (as numpy argmax)
        attrs["discipline"] = min(attrs["disc_counts"].items(), key=lambda kv: (-kv[1], order[kv[0]]))[0]
    return g


def compare_graphs(g: KPGraph, nxg: Any, *, max_edges: int = 200_000, seed: int = 0) -> dict[str, Any]:
    """Same nodes, edges, weights and node attributes? Edges are checked all or on a sample."""
    out: dict[str, Any] = {"nodes": (g.n_nodes, nxg.number_of_nodes()), "edges": (g.n_edges, nxg.number_of_edges())}
    ok = g.n_nodes == nxg.number_of_nodes() and g.n_edges == nxg.number_of_edges()
    ok &= set(map(int, g.kp_ids)) == set(nxg.nodes)
    total_w = float(g.weights.sum() / 2)
    nx_w = float(sum(w for _, _, w in nxg.edges(data="weight")))
    out["total_weight"] = (total_w, nx_w)
    ok &= total_w == nx_w
    nodes = nxg.nodes
    bad_nodes = 0
    for i, k in enumerate(g.kp_ids.tolist()):
        a = nodes[k]
        if (a["freq"] != g.freq[i] or a["discipline"] != g.disciplines[int(g.discipline[i])]
                or abs(a["difficulty"] - g.difficulty[i]) > 1e-9):
            bad_nodes += 1
    out["node_mismatches"] = bad_nodes
    ok &= bad_nodes == 0
    rows = np.repeat(np.arange(g.n_nodes), np.diff(g.indptr))
    upper = np.flatnonzero(g.indices > rows)
    if upper.size > max_edges:
        upper = np.sort(np.random.default_rng(seed).choice(upper, max_edges, replace=False))
    bad_edges = 0
    kp = g.kp_ids
    adj = nxg.adj
    for e in upper.tolist():
        a, b = int(kp[rows[e]]), int(kp[g.indices[e]])
        if adj[a].get(b, {}).get("weight") != g.weights[e]:
            bad_edges += 1
    out["edges_checked"] = int(upper.size)
    out["edge_mismatches"] = bad_edges
    ok &= bad_edges == 0
    out["same"] = bool(ok)
    return out


def _targets(nxg: Any, disciplines: list[str], params: WalkParams, has_kps: list[bool]) -> list[float]:
    """Target share per discipline: the mix, else as in the data (seed–KP links per discipline)."""
    if params.mix is None:
        counts = dict.fromkeys(disciplines, 0)
        for _v, dc in nxg.nodes(data="disc_counts"):
            for d, c in dc.items():
                counts[d] += c
        raw = [counts[d] if has_kps[i] else 0.0 for i, d in enumerate(disciplines)]
    else:
        lookup = {d.lower(): i for i, d in enumerate(disciplines)}
        raw = [0.0] * len(disciplines)
        for name, share in params.mix:
            raw[lookup[name.lower()]] = share
    total = sum(raw)
    return [x / total for x in raw]


def nx_value_walks(nxg: Any, params: WalkParams, n_paths: int, *, seed: int = 0) -> dict[str, Any]:
    """Value-guided walks over a networkx KP graph; the engine's formulas in plain Python.

    Returns ``paths`` (lists of KP ids), ``discipline`` (index of each path's start KP's
    discipline), ``visits`` (KP id -> visits in this run) and ``targets``.
    """
    p = params
    disciplines: list[str] = nxg.graph["disciplines"]
    d_index = {d: i for i, d in enumerate(disciplines)}
    nodes = nxg.nodes
    adj = nxg.adj
    lengths = np.random.default_rng(seed).integers(p.min_len, p.max_len + 1, size=n_paths).tolist()
    rnd = random.Random(seed)

    fmax = max((a for _, a in nodes(data="freq")), default=1)
    log_fmax = math.log1p(max(fmax, 1))
    static = {v: p.w_pop * math.log1p(a["freq"]) / log_fmax
              + p.w_diff * (1.0 - abs(a["difficulty"] - p.difficulty_target) / 4.0) for v, a in nodes(data=True)}
    vmax = p.w_pop + p.w_cov + p.w_diff + p.w_link  # exp((V - vmax)/tau) ∝ exp(V/tau): the same draws, no overflow
    w_cov, gamma, tau, alpha = p.w_cov, p.gamma, p.tau, p.alpha
    link = math.exp(p.w_link / tau)
    visits = dict.fromkeys(nodes, 0)
    seeds_of = {v: sorted(a["seeds"]) for v, a in nodes(data=True)}

    def linked_start(v: Any) -> bool:
        return len(seeds_of[v]) >= 2 or any(len(seeds_of[u]) > a["weight"] for u, a in adj[v].items())

    start_mult = {v: (link if p.w_link and linked_start(v) else 1.0) for v in nodes}

    def fresh(v: Any, marked: set) -> bool:
        s = seeds_of[v]
        return len(s) > LINK_SCAN or any(r not in marked for r in s)

    def node_weight(v: Any) -> float:
        return math.exp((static[v] + w_cov * (1.0 + visits[v]) ** (-gamma) - vmax) / tau)

    weight = {v: node_weight(v) for v in nodes}
    disc_of = {v: d_index[a] for v, a in nodes(data="discipline")}
    eligible = [v for v in nodes if nxg.degree(v) > 0] if p.min_len >= 2 else list(nodes)
    by_disc: list[list[Any]] = [[] for _ in disciplines]
    for v in eligible:
        by_disc[disc_of[v]].append(v)
    has_kps = [False] * len(disciplines)
    for v in nodes:
        has_kps[disc_of[v]] = True
    targets = _targets(nxg, disciplines, p, has_kps)
    start_w = [np.array([weight[v] * start_mult[v] for v in vs], dtype=np.float64) for vs in by_disc]
    pos = {v: (d, i) for d, vs in enumerate(by_disc) for i, v in enumerate(vs)}
    per_disc = [0] * len(disciplines)

    paths: list[list[Any]] = []
    path_disc: list[int] = []
    for i in range(n_paths):
        # start: the discipline furthest below its target share, then a KP ∝ exp(V/tau)
        best, best_def = -1, -math.inf
        for d in range(len(disciplines)):
            if not by_disc[d] or targets[d] <= 0:
                continue
            deficit = targets[d] * (i + 1) - per_disc[d]
            if deficit > best_def:
                best, best_def = d, deficit
        if best < 0:
            best = disc_of[eligible[rnd.randrange(len(eligible))]]
        cum = np.cumsum(start_w[best])
        j = int(np.searchsorted(cum, rnd.random() * cum[-1], side="right"))
        start = by_disc[best][min(j, len(cum) - 1)]
        path = [start]
        on_path = {start}
        marked = set(seeds_of[start][:LINK_SCAN])
        u = start
        while len(path) < lengths[i]:
            cands: list[Any] = []
            acc: list[float] = []
            s = 0.0
            for v, attr in adj[u].items():
                if v in on_path:
                    continue
                s += attr["weight"] ** alpha * weight[v] * (link if p.w_link and fresh(v, marked) else 1.0)
                cands.append(v)
                acc.append(s)
            if not cands:
                break
            if s <= 0.0:
                u = cands[rnd.randrange(len(cands))]
            else:
                u = cands[min(bisect_right(acc, rnd.random() * s), len(cands) - 1)]
            path.append(u)
            on_path.add(u)
            marked.update(seeds_of[u][:LINK_SCAN])
        d0 = disc_of[start]
        per_disc[d0] += 1
        paths.append(path)
        path_disc.append(d0)
        # coverage moves after every path
        for v in path:
            visits[v] += 1
            weight[v] = nw = node_weight(v)
            where = pos.get(v)
            if where is not None:
                start_w[where[0]][where[1]] = nw * start_mult[v]
    return {"paths": paths, "discipline": path_disc, "visits": visits, "targets": targets}


def to_walks(g: KPGraph, result: dict[str, Any]) -> Walks:
    """The baseline's paths as the engine's :class:`Walks` (dense KP indices of ``g``)."""
    lengths = np.array([len(p) for p in result["paths"]], dtype=np.int64)
    ptr = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    flat = np.fromiter((k for path in result["paths"] for k in path), dtype=np.int64, count=int(ptr[-1]))
    nodes = np.searchsorted(g.kp_ids, flat).astype(np.int32)
    visits = np.bincount(nodes, minlength=g.n_nodes).astype(np.int64)
    return Walks(nodes, ptr, np.asarray(result["discipline"], dtype=np.int16), visits,
                 np.asarray(result["targets"], dtype=np.float64))


DISTRIBUTION_METRICS = ("kp_coverage", "visit_entropy", "popularity_rank_correlation", "discipline_tv_distance",
                        "popularity_weighted_coverage", "mean_path_length", "mean_link_strength",
                        "bundle_share_2plus", "mean_shared_kps")


def distribution_check(g: KPGraph, nxg: Any, params: WalkParams, n_paths: int, *, repeats: int = 5,
                       seeds: tuple[int, ...] | None = None, z_max: float = 4.0, abs_tol: float = 0.002) -> dict[str, Any]:
    """Engine vs baseline on the same graph, knobs and number of paths, over several seeds.

    For each metric: mean and standard deviation over ``repeats`` runs of each, the
    difference, and ``z`` = difference / its standard error. Agreement: ``|diff| <=
    max(z_max · se, abs_tol)`` for every metric (``abs_tol`` covers metrics that barely
    vary, like the TV distance that the deficit rule pins near 0).
    """
    from linkqa_core.graph.bundles import choose_bundles
    from linkqa_core.graph.metrics import sample_metrics
    from linkqa_core.graph.walks import value_walks

    seeds = seeds or tuple(range(1, repeats + 1))
    engine_runs, base_runs = [], []
    for s in seeds:
        w = value_walks(g, params, n_paths, seed=s)
        engine_runs.append(sample_metrics(g, w, choose_bundles(g, w)))
        bw = to_walks(g, nx_value_walks(nxg, params, n_paths, seed=s))
        base_runs.append(sample_metrics(g, bw, choose_bundles(g, bw)))
    rows = {}
    agree = True
    for m in DISTRIBUTION_METRICS:
        a = np.array([r[m] for r in engine_runs], dtype=float)
        b = np.array([r[m] for r in base_runs], dtype=float)
        se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size) if a.size > 1 else 0.0
        diff = float(a.mean() - b.mean())
        ok = abs(diff) <= max(z_max * se, abs_tol)
        agree &= ok
        rows[m] = {"engine": round(float(a.mean()), 5), "engine_sd": round(float(a.std(ddof=1)), 5),
                   "baseline": round(float(b.mean()), 5), "baseline_sd": round(float(b.std(ddof=1)), 5),
                   "diff": round(diff, 5), "z": round(diff / se, 2) if se > 0 else 0.0, "agree": bool(ok)}
    return {"n_paths": n_paths, "repeats": len(seeds), "params": params.to_dict(), "metrics": rows,
            "agree": bool(agree), "rule": f"|diff| <= max({z_max} x standard error, {abs_tol})"}

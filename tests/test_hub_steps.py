"""Steps out of hubs (alias table + rejection, linkqa_core.graph.hubs) draw from the same
distribution as the exact step that sums every neighbour's weight."""

import numpy as np
import pytest
from numba import njit
from scipy.stats import chisquare

from linkqa_core.graph.build import graph_from_links
from linkqa_core.graph.bundles import choose_bundles
from linkqa_core.graph.hubs import build_row, fresh, hub_layout, hub_step
from linkqa_core.graph.metrics import sample_metrics
from linkqa_core.graph.walks import LINK_SCAN, WalkParams, _link_factor, _scan_step, _static_value, value_walks


def _zipf_graph(n_seeds=4000, n_kps=600, seed=0):
    """Seeds naming 2-6 KPs drawn by a Zipf law: a few KPs become hubs of hundreds of neighbours."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_kps + 1) ** 1.1
    popularity /= popularity.sum()
    rids, kps = [], []
    for r in range(n_seeds):
        chosen = np.unique(rng.choice(n_kps, size=rng.integers(2, 7), p=popularity))
        rids += [r] * len(chosen)
        kps += chosen.tolist()
    disc = rng.integers(0, 3, n_seeds).astype(np.int16)
    diff = rng.integers(1, 6, n_seeds).astype(float)
    return graph_from_links(rids, kps, disc, diff, ["Law", "Physics", "History"])


@pytest.fixture(scope="module")
def zipf():
    return _zipf_graph()


@njit
def _draw_steps(n, u, p, indptr, indices, wpow, w_build, w_now, stamp, linking, link, path, n_path,
                seed_indptr, seed_rids, scan, rng_seed):
    """The kernel's hub step from ``u`` ``n`` times: prefix sums taken with ``w_build``, draws
    against ``w_now`` (visits since the build), the exact scan when the table gives up."""
    np.random.seed(rng_seed)
    pos, total = hub_layout(indptr, 0)
    deg = indptr[u + 1] - indptr[u]
    tab = np.empty(total)
    refusals = np.zeros(indptr.shape[0] - 1, np.int64)
    cum = np.empty(deg + 1)
    build_row(u, indptr, indices, wpow, w_build, pos[u], tab)
    counts = np.zeros(deg, np.int64)
    scans = 0
    for _ in range(n):
        e = hub_step(u, p, indptr, indices, wpow, w_now, pos[u], tab, stamp, linking, link,
                     path, 0, n_path, seed_indptr, seed_rids, scan, refusals)
        if e < 0:
            scans += 1
            e = _scan_step(u, p, indptr, indices, wpow, w_now, stamp, cum, linking, link,
                           path, 0, n_path, seed_indptr, seed_rids, scan)
        counts[e - indptr[u]] += 1
    return counts, scans


def _linked_hub():
    """KP 0 is a hub of 150 neighbours joined by 1-3 seeds each; the seeds of neighbours
    1..20 are among the hub's 64 first seeds, so once the hub is on a path they bring no
    new seed (not fresh), while neighbours 21..150 do."""
    rng = np.random.default_rng(5)
    rids, kps = [], []
    low, high = iter(range(0, 64)), iter(range(64, 10_000))
    for v in range(1, 151):
        for _ in range(int(rng.integers(1, 4))):
            r = next(low) if v <= 20 else next(high)
            rids += [r, r]
            kps += [0, v]
    for r in low:  # the hub's other first seeds name it alone
        rids.append(r)
        kps.append(0)
    n = max(rids) + 1
    g = graph_from_links(rids, kps, rng.integers(0, 2, n).astype(np.int16), rng.integers(1, 6, n).astype(float),
                         ["Law", "Physics"], kp_ids=np.arange(151))
    return g, 0, np.array([7, 0], dtype=np.int32)  # the path came from neighbour 7 to the hub


def _hub_state(params, seed=1):
    """The hub, its path, node weights at a table's build and after later visits."""
    g, u, path = _linked_hub()
    rng = np.random.default_rng(seed)
    stamp = np.full(g.n_nodes, -1, np.int64)
    stamp[path] = 0
    vmax = params.w_pop + params.w_cov + params.w_diff + params.w_link
    static = _static_value(g, params)

    def weights(visits):
        return np.exp((static + params.w_cov * (1.0 + visits) ** (-params.gamma) - vmax) / params.tau)

    before = rng.integers(0, 3, g.n_nodes)
    after = before + rng.integers(0, 4, g.n_nodes) * (rng.random(g.n_nodes) < 0.5)  # half were visited since
    return g, u, path, stamp, weights(before), weights(after)


def _exact_probabilities(g, params, u, path, stamp, w_now):
    """The exact step from the module's formula: weight^alpha · w(v) · (link if fresh)."""
    lo, hi = g.indptr[u], g.indptr[u + 1]
    link = _link_factor(params)
    marked = set()
    for x in path:
        marked |= set(g.seeds_of(int(x))[:LINK_SCAN].tolist())
    probs = np.zeros(hi - lo)
    for i, e in enumerate(range(lo, hi)):
        v = int(g.indices[e])
        if stamp[v] == 0:
            continue
        seeds = g.seeds_of(v).tolist()
        is_fresh = len(seeds) > LINK_SCAN or any(s not in marked for s in seeds)
        probs[i] = g.weights[e] ** params.alpha * w_now[v] * (link if is_fresh else 1.0)
    return probs / probs.sum()


@pytest.mark.parametrize("params", [WalkParams(), WalkParams(alpha=2.0, tau=1.0, w_link=0.5, gamma=2.0)])
def test_a_hub_step_draws_the_exact_step_distribution(params):
    g, u, path, stamp, w_build, w_now = _hub_state(params)
    expected = _exact_probabilities(g, params, u, path, stamp, w_now)
    n = 200_000
    wpow = g.weights ** params.alpha
    counts, _ = _draw_steps(n, u, 0, g.indptr, g.indices, wpow, w_build, w_now, stamp, params.w_link > 0,
                            _link_factor(params), path, len(path), g.seed_indptr, g.seed_rids, LINK_SCAN, 7)
    assert counts[expected == 0].sum() == 0  # never a KP on the path
    keep = expected > 0
    # pool the rare neighbours so every cell expects at least 5 draws
    order = np.argsort(expected[keep])
    exp_sorted, got_sorted = expected[keep][order] * n, counts[keep][order]
    cut = np.searchsorted(np.cumsum(exp_sorted), 5.0) + 1
    exp_cells = np.r_[exp_sorted[:cut].sum(), exp_sorted[cut:]]
    got_cells = np.r_[got_sorted[:cut].sum(), got_sorted[cut:]]
    assert chisquare(got_cells, exp_cells).pvalue > 1e-3
    # the test has power: the same draws are far from the distribution of the stale weights
    stale = _exact_probabilities(g, params, u, path, stamp, w_build)[keep][order] * n
    stale_cells = np.r_[stale[:cut].sum(), stale[cut:]]
    assert chisquare(got_cells, stale_cells * got_cells.sum() / stale_cells.sum()).pvalue < 1e-6
    # and linkage shows: the neighbours that bring no new seed are drawn as rarely as they should be
    unlinked = np.arange(1, 21) - 1
    assert 0 < expected[unlinked].sum() < 0.5
    assert counts[unlinked].sum() / n == pytest.approx(expected[unlinked].sum(), abs=0.005)


def test_a_hub_whose_draws_keep_failing_falls_back_to_the_exact_scan():
    params = WalkParams()
    g, u, path, stamp, w_build, _ = _hub_state(params)
    # every neighbour lost almost all its weight since the table was built: draws fail, the scan decides
    w_now = w_build * 1e-9
    expected = _exact_probabilities(g, params, u, path, stamp, w_now)
    counts, scans = _draw_steps(20_000, u, 0, g.indptr, g.indices, g.weights, w_build, w_now, stamp, True,
                                _link_factor(params), path, len(path), g.seed_indptr, g.seed_rids, LINK_SCAN, 3)
    assert scans > 19_000
    top = np.argsort(expected)[-5:]
    assert np.allclose(counts[top] / counts.sum(), expected[top], atol=0.02)


def test_freshness_by_search_is_the_marking_rule(sample_store):
    from linkqa_core.graph.build import build_graph

    g = build_graph(sample_store)
    walks = value_walks(g, WalkParams(), 300, seed=2)
    checked = fresh_count = 0
    for i in range(len(walks)):
        path = walks.path(i).astype(np.int32)
        marked = set()
        for x in path:
            marked |= set(g.seeds_of(int(x))[:LINK_SCAN].tolist())
        for v in np.unique(g.indices[g.indptr[path[-1]]:g.indptr[path[-1] + 1]]):
            seeds = g.seeds_of(int(v)).tolist()
            want = len(seeds) > LINK_SCAN or any(s not in marked for s in seeds)
            got = fresh(int(v), path, 0, len(path), g.seed_indptr, g.seed_rids, LINK_SCAN)
            assert got == want
            checked += 1
            fresh_count += want
    assert checked > 200 and 0 < fresh_count < checked  # both answers were exercised


def _walk_metrics(g, params, hub_degree, seeds):
    out = []
    for s in seeds:
        w = value_walks(g, params, 1500, seed=s, hub_degree=hub_degree)
        m = sample_metrics(g, w, choose_bundles(g, w))
        m["mean_length"] = float(w.lengths.mean())
        out.append(m)
    return out


@pytest.mark.parametrize("params", [WalkParams(), WalkParams(w_link=0.0, w_cov=3.0, gamma=2.0, max_len=8)])
def test_walks_through_tables_and_through_scans_agree_in_distribution(zipf, params):
    """hub_degree=0 sends every step through the tables, a degree above the largest through
    the scans; their metrics over seeds agree within 4 standard errors."""
    big = int(zipf.degree.max()) + 1
    tables = _walk_metrics(zipf, params, 0, range(1, 9))
    scans = _walk_metrics(zipf, params, big, range(101, 109))
    for m in ("kp_coverage", "visit_entropy", "popularity_rank_correlation", "mean_link_strength",
              "bundle_share_2plus", "mean_length"):
        a = np.array([r[m] for r in tables])
        b = np.array([r[m] for r in scans])
        se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        assert abs(a.mean() - b.mean()) <= max(4 * se, 1e-3), (m, a.mean(), b.mean(), se)


def test_tables_give_valid_walks_that_hold_to_the_knobs(zipf):
    params = WalkParams(min_len=3, max_len=6)
    w = value_walks(zipf, params, 2000, seed=4, hub_degree=0)
    assert w.lengths.max() == 6 and (w.lengths >= 3).mean() > 0.95
    for i in range(len(w)):
        path = w.path(i)
        assert len(set(path.tolist())) == len(path)
        for a, b in zip(path[:-1], path[1:]):
            assert b in zipf.neighbors(int(a))[0]
    again = value_walks(zipf, params, 2000, seed=4, hub_degree=0)
    assert np.array_equal(w.nodes, again.nodes)

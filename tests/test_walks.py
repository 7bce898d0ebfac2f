import numpy as np
import pytest

from linkqa_core.graph.bundles import choose_bundles
from linkqa_core.errors import ConfigError
from linkqa_core.graph.build import build_graph
from linkqa_core.graph.metrics import sample_metrics
from linkqa_core.graph.walks import WalkParams, parse_mix, target_shares, uniform_walks, value_walks


@pytest.fixture
def graph(sample_store):
    return build_graph(sample_store)


def _metrics(graph, params, n=1000, seed=0):
    walks = value_walks(graph, params, n, seed=seed)
    return sample_metrics(graph, walks, choose_bundles(graph, walks))


def test_same_settings_and_seed_give_the_same_paths(graph):
    a = value_walks(graph, WalkParams(), 300, seed=11)
    b = value_walks(graph, WalkParams(), 300, seed=11)
    c = value_walks(graph, WalkParams(), 300, seed=12)
    assert np.array_equal(a.nodes, b.nodes) and np.array_equal(a.ptr, b.ptr)
    assert not np.array_equal(a.nodes[:200], c.nodes[:200])


def test_paths_are_walks_without_repeats_within_length_bounds(graph):
    params = WalkParams(min_len=2, max_len=6)
    walks = value_walks(graph, params, 500, seed=1)
    for i in range(len(walks)):
        path = walks.path(i)
        assert 1 <= len(path) <= 6
        assert len(set(path.tolist())) == len(path)
        for u, v in zip(path[:-1], path[1:]):
            assert v in graph.neighbors(int(u))[0]
    assert (walks.lengths >= 2).mean() > 0.95  # only dead ends stop early


def test_raising_w_cov_raises_kp_coverage(graph):
    low = np.mean([_metrics(graph, WalkParams(w_cov=0.0), seed=s)["kp_coverage"] for s in range(3)])
    high = np.mean([_metrics(graph, WalkParams(w_cov=3.0), seed=s)["kp_coverage"] for s in range(3)])
    assert high > low + 0.05


def test_raising_w_pop_raises_popularity_rank_correlation(graph):
    # linkage already favours KPs several seeds name, so w_pop is measured without it
    low = np.mean([_metrics(graph, WalkParams(w_pop=0.0, w_link=0.0), seed=s)["popularity_rank_correlation"]
                   for s in range(3)])
    high = np.mean([_metrics(graph, WalkParams(w_pop=3.0, w_link=0.0), seed=s)["popularity_rank_correlation"]
                    for s in range(3)])
    assert high > low + 0.05


def test_raising_w_diff_pulls_visits_towards_the_difficulty_target(graph):
    def mean_visited_difficulty(w_diff):
        walks = value_walks(graph, WalkParams(w_diff=w_diff, w_cov=0.5, difficulty_target=5.0), 1000, seed=2)
        return float((graph.difficulty * walks.visits).sum() / walks.visits.sum())

    assert mean_visited_difficulty(4.0) > mean_visited_difficulty(0.0) + 0.2


def test_difficulty_target_moves_visits_to_that_difficulty(graph):
    def mean_visited_difficulty(target):
        walks = value_walks(graph, WalkParams(w_diff=4.0, w_cov=0.5, difficulty_target=target), 1000, seed=2)
        return float((graph.difficulty * walks.visits).sum() / walks.visits.sum())

    assert mean_visited_difficulty(5.0) > mean_visited_difficulty(1.0) + 0.3


def test_raising_alpha_follows_heavier_edges():
    from linkqa_core.graph.build import graph_from_links

    # KP 0 meets KP 1 in ten seeds and KP 2 in one: alpha = 0 steps to either alike
    rids = [r for r in range(1, 11) for _ in (0, 1)] + [11, 11]
    kps = [0, 1] * 10 + [0, 2]
    g = graph_from_links(rids, kps, np.zeros(12, np.int16), np.full(12, 3.0), ["Physics"])

    def share_to_heavy(alpha):
        params = WalkParams(alpha=alpha, min_len=2, max_len=2, w_pop=0.0, w_cov=0.0, w_diff=0.0, w_link=0.0)
        walks = value_walks(g, params, 2000, seed=3)
        steps = [walks.path(i)[1] for i in range(len(walks)) if walks.path(i)[0] == 0]
        return np.mean(np.array(steps) == 1)

    assert 0.35 < share_to_heavy(0.0) < 0.65
    assert share_to_heavy(2.0) > 0.95


def test_low_tau_is_greedy_and_high_tau_close_to_uniform(graph):
    # popularity only: a greedy walk keeps to popular KPs, a hot one spreads its visits
    def entropy(tau):
        params = WalkParams(w_pop=3.0, w_cov=0.0, w_diff=0.0, w_link=0.0, tau=tau)
        return _metrics(graph, params, seed=4)["visit_entropy"]

    assert entropy(5.0) > entropy(0.1) + 0.05


def test_gamma_sets_how_fast_visited_kps_lose_coverage_value(graph):
    def coverage(gamma):
        return np.mean([_metrics(graph, WalkParams(w_cov=3.0, gamma=gamma), seed=s)["kp_coverage"] for s in range(2)])

    assert coverage(3.0) > coverage(0.0) + 0.05


@pytest.mark.parametrize("low, high", [(1, 1), (2, 2), (4, 4), (2, 5)])
def test_paths_never_exceed_max_len_and_span_the_range(graph, low, high):
    walks = value_walks(graph, WalkParams(min_len=low, max_len=high), 1000, seed=5)
    assert walks.lengths.max() == high
    assert set(range(max(low, 2), high + 1)) <= set(walks.lengths.tolist())


def test_raising_min_len_makes_paths_longer(graph):
    short = value_walks(graph, WalkParams(min_len=1, max_len=4), 1000, seed=5).lengths
    long = value_walks(graph, WalkParams(min_len=4, max_len=4), 1000, seed=5).lengths
    assert long.mean() > short.mean() + 0.5
    assert (long == 4).mean() > 0.6 and (short == 1).mean() > 0.15  # dead ends stop some paths early


def test_w_link_makes_bundles_join_several_seeds(graph):
    without = _metrics(graph, WalkParams(w_link=0.0))
    with_link = _metrics(graph, WalkParams(w_link=2.0))
    assert with_link["bundle_share_2plus"] > without["bundle_share_2plus"] + 0.2
    assert with_link["mean_shared_kps"] > without["mean_shared_kps"]


def test_default_bundles_join_at_least_two_seeds_on_the_sample(graph):
    m = _metrics(graph, WalkParams(), n=1000, seed=0)
    assert m["bundle_share_2plus"] >= 0.95
    assert m["bundle_share_3plus"] >= 0.7
    assert m["mean_shared_kps"] >= 1.2


def _fresh_step_share(graph, walks):
    fresh = total = 0
    for i in range(len(walks)):
        path = walks.path(i)
        gathered = set(graph.seeds_of(int(path[0])).tolist())
        for v in path[1:]:
            seeds = set(graph.seeds_of(int(v)).tolist())
            fresh += bool(seeds - gathered)
            total += 1
            gathered |= seeds
    return fresh / total


def test_linked_steps_bring_a_seed_the_path_had_not_gathered(graph):
    linked = _fresh_step_share(graph, value_walks(graph, WalkParams(w_link=2.0), 500, seed=6))
    unlinked = _fresh_step_share(graph, value_walks(graph, WalkParams(w_link=0.0), 500, seed=6))
    assert linked > unlinked + 0.1 and linked > 0.75


def test_discipline_target_shares_are_met_within_tv_005_over_1000_paths(graph):
    mix = parse_mix("Mathematics=0.4,Physics=0.3,Law=0.2,History=0.1")
    m = _metrics(graph, WalkParams(mix=mix), n=1000)
    assert m["discipline_tv_distance"] < 0.05
    assert set(m["discipline_shares"]) == {"Mathematics", "Physics", "Law", "History"}
    default = _metrics(graph, WalkParams(), n=1000)
    assert default["discipline_tv_distance"] < 0.05


def test_uniform_baseline_ignores_the_mix(graph):
    params = WalkParams(mix=parse_mix("Mathematics=1"))
    walks = uniform_walks(graph, params, 1000, seed=0)
    m = sample_metrics(graph, walks, choose_bundles(graph, walks))
    assert m["discipline_tv_distance"] > 0.5


def test_prior_visits_steer_new_paths_to_unvisited_kps(graph):
    params = WalkParams(w_cov=3.0)
    first = value_walks(graph, params, 500, seed=0)
    fresh = value_walks(graph, params, 500, seed=1)
    filled = value_walks(graph, params, 500, seed=1, prior_visits=first.visits)
    seen_before = first.visits > 0
    assert (filled.visits[~seen_before] > 0).sum() > (fresh.visits[~seen_before] > 0).sum()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tau": 0.0}, "tau = 0.0 is outside"),
        ({"min_len": 6, "max_len": 3}, "min_len (6) is larger than max_len (3)"),
        ({"w_cov": float("nan")}, "w_cov must be a number"),
        ({"w_link": -1.0}, "w_link = -1.0 is outside"),
        ({"mix": (("Law", -1.0),)}, "must be >= 0"),
    ],
)
def test_bad_knobs_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        WalkParams(**kwargs)


def test_unknown_discipline_in_mix_lists_the_known_ones(graph):
    with pytest.raises(ConfigError, match="unknown discipline 'Astrology'.*Mathematics"):
        target_shares(graph, WalkParams(mix=parse_mix("Astrology=1")))


def test_parse_mix_accepts_percentages_and_rejects_garbage():
    assert parse_mix("Law=60%,History=40%") == (("Law", 0.6), ("History", 0.4))
    assert WalkParams(mix=parse_mix("Law=60%,History=40%")).mix == (("History", 0.4), ("Law", 0.6))
    with pytest.raises(ConfigError, match="not DISCIPLINE=SHARE"):
        parse_mix("Law")
    with pytest.raises(ConfigError, match="is not a number"):
        parse_mix("Law=lots")


def test_params_round_trip_through_their_stored_form():
    p = WalkParams(w_pop=1.5, min_len=2, mix=(("Law", 0.5), ("History", 0.5)))
    assert WalkParams.from_dict(p.to_dict()) == p


def test_bundles_cover_paths_with_strongly_linked_seeds(graph):
    walks = value_walks(graph, WalkParams(), 300, seed=4)
    bundles = choose_bundles(graph, walks, min_seeds=3, max_seeds=5)
    assert (bundles.sizes >= 1).all() and (bundles.sizes <= 5).all()
    for i in range(len(walks)):
        path = set(walks.path(i).tolist())
        covered = set()
        for rid in bundles.of(i):
            covered |= {v for v in path if rid in graph.seeds_of(v)}
        assert covered == path  # together the seeds name every KP of the path
        strengths = bundles.strengths_of(i)
        assert strengths[0] == strengths.max()  # strongest first
    assert bundles.strength.mean() > 1.5


def test_bundles_honour_min_seeds_when_the_path_kps_have_enough_seeds(graph):
    walks = value_walks(graph, WalkParams(), 500, seed=7)
    for min_seeds in (2, 3, 4):
        bundles = choose_bundles(graph, walks, min_seeds=min_seeds, max_seeds=5)
        short = set(bundles.short.tolist())
        for i in range(len(walks)):
            candidates = set(np.concatenate([graph.seeds_of(int(v)) for v in walks.path(i)]).tolist())
            assert bundles.sizes[i] == min(max(min_seeds, bundles.sizes[i]), len(candidates), 5)
            assert (i in short) == (len(candidates) < min_seeds)
        m = sample_metrics(graph, walks, bundles)
        assert m["bundles_below_min_seeds"] == len(short)


def test_shared_kps_count_path_kps_two_bundle_seeds_name():
    from linkqa_core.graph.build import graph_from_links
    from linkqa_core.graph.walks import Walks

    # seeds 1..3 name KPs: 1 {a, b}, 2 {b, c}, 3 {b, c}; path a -> b -> c
    g = graph_from_links([1, 1, 2, 2, 3, 3], [0, 1, 1, 2, 1, 2], np.zeros(4, np.int16), np.full(4, 3.0),
                         ["Physics"], names=["hermitian operator", "eigenvalue", "spectral theorem"],
                         kp_ids=np.arange(3))
    walks = Walks(np.array([0, 1, 2], np.int32), np.array([0, 3]), np.zeros(1, np.int16), np.ones(3, np.int64),
                  np.ones(1))
    m = sample_metrics(g, walks, choose_bundles(g, walks, min_seeds=3, max_seeds=3))
    assert m["bundle_share_3plus"] == 1.0
    assert m["mean_shared_kps"] == 2.0  # eigenvalue (3 seeds) and spectral theorem (2); not hermitian operator (1)


def test_spearman_matches_scipy_with_ties():
    from scipy.stats import spearmanr

    from linkqa_core.graph.metrics import spearman

    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, 500)  # many ties, as visit counts have
    b = a + rng.integers(0, 4, 500)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman(np.zeros(5), np.arange(5)) == 0.0


def test_average_ranks_of_small_integers_equal_the_sorted_ranks():
    from linkqa_core.graph import metrics

    rng = np.random.default_rng(11)
    for x in (rng.integers(0, 6, 700), np.zeros(9, np.int64), np.array([3]), rng.integers(0, 3000, 500).astype(np.uint16)):
        _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
        expected = ((np.cumsum(counts) - counts) + (counts - 1) / 2.0)[inverse]
        assert np.array_equal(metrics._average_ranks(x), expected)
    wide = np.array([0, 10**9, 5, 5])  # too sparse to count: sorted as before
    assert np.array_equal(metrics._average_ranks(wide), [0.0, 3.0, 1.5, 1.5])


def test_a_kps_name_is_judged_once_per_graph_for_the_linkage_metrics(sample_store, monkeypatch):
    from linkqa_core.graph import bundles as bundles_module
    from linkqa_core.graph.metrics import linkage_metrics
    from linkqa_core.kps import quality

    g = build_graph(sample_store)
    walks = value_walks(g, WalkParams(), 50, seed=3)
    b = bundles_module.choose_bundles(g, walks)
    first = linkage_metrics(g, walks, b)
    judged = []
    real = quality.is_general_word
    monkeypatch.setattr(quality, "is_general_word", lambda w: judged.append(w) or real(w))
    assert linkage_metrics(g, walks, b) == first
    assert judged == []  # every KP on these paths was judged the first time
    flags = g.concept_flags()
    on_paths = np.unique(walks.nodes)
    assert (flags[on_paths] >= 0).all() and (np.delete(flags, on_paths) == -1).all()

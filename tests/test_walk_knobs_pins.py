"""Walk knobs and the uniform baseline, pinned where mutation testing of
linkqa_core/graph/walks.py found tests/test_walks.py blind: the stored form of the knobs,
the baseline's seed handling (the same seed the same paths, another seed other paths, any
seed a 64-bit integer can hold), and its visit counts."""

from __future__ import annotations

import numpy as np
import pytest

from linkqa_core.graph.build import build_graph
from linkqa_core.graph.walks import WalkParams, target_shares, uniform_walks, value_walks


@pytest.fixture
def graph(sample_store):
    return build_graph(sample_store)


def same(a, b) -> bool:
    return np.array_equal(a.nodes, b.nodes) and np.array_equal(a.ptr, b.ptr)


# -- the stored form ---------------------------------------------------------------------------


def test_stored_knobs_hold_the_mix_as_a_mapping_or_none():
    assert WalkParams().to_dict()["mix"] is None
    stored = WalkParams(mix=(("Law", 0.25), ("History", 0.75))).to_dict()
    assert stored["mix"] == {"History": 0.75, "Law": 0.25}
    assert set(stored) == set(WalkParams.__dataclass_fields__)


def test_lengths_stored_as_whole_floats_come_back_as_integers():
    p = WalkParams.from_dict({"min_len": 2.0, "max_len": 4.0, "tau": 0.5})
    assert (p.min_len, p.max_len, p.tau) == (2, 4, 0.5)
    assert type(p.min_len) is int and type(p.max_len) is int
    only_max = WalkParams.from_dict({"max_len": 6.0})
    assert (only_max.min_len, only_max.max_len) == (3, 6) and type(only_max.max_len) is int
    assert WalkParams.from_dict({}) == WalkParams()


# -- the uniform baseline ----------------------------------------------------------------------


def test_uniform_walks_follow_their_seed(graph):
    p = WalkParams()
    a = uniform_walks(graph, p, 300, seed=3)
    assert same(a, uniform_walks(graph, p, 300, seed=3))
    assert same(uniform_walks(graph, p, 300), uniform_walks(graph, p, 300, seed=0))  # the default seed is 0
    assert not same(uniform_walks(graph, p, 300, seed=0), uniform_walks(graph, p, 300, seed=64))


def test_any_64_bit_seed_is_taken(graph):
    p = WalkParams()
    for seed in (2**32 - 1, 2**32, 2**63 - 1):
        assert len(uniform_walks(graph, p, 20, seed=seed)) == 20
        assert len(value_walks(graph, p, 20, seed=seed)) == 20


def test_uniform_visits_are_whole_counts_of_the_paths_kps(graph):
    walks = uniform_walks(graph, WalkParams(), 300, seed=1)
    assert walks.visits.dtype.kind == "i"
    assert int(walks.visits.sum()) == len(walks.nodes)
    assert np.array_equal(walks.visits, np.bincount(walks.nodes, minlength=graph.n_nodes))


def test_value_walks_default_to_seed_0_and_count_visits_as_integers(graph):
    p = WalkParams()
    a = value_walks(graph, p, 200)
    assert same(a, value_walks(graph, p, 200, seed=0)) and len(a) == 200
    assert a.visits.dtype.kind == "i"
    prior = np.ones(graph.n_nodes, dtype=np.float64)  # a ledger read back as floats
    b = value_walks(graph, p, 200, seed=0, prior_visits=prior)
    assert b.visits.dtype.kind == "i" and int(b.visits.sum()) == len(b.nodes)


# -- the mix as typed ---------------------------------------------------------------------------


def test_parse_mix_reads_plain_shares_names_with_equals_signs_and_refuses_other_suffixes():
    from linkqa_core.errors import ConfigError
    from linkqa_core.graph.walks import parse_mix

    assert parse_mix("Law=0.25, History=3") == (("Law", 0.25), ("History", 3.0))
    assert parse_mix("Law=Order=50%") == (("Law=Order", 0.5),)
    with pytest.raises(ConfigError, match="is not a number"):
        parse_mix("Law=0.5X")
    with pytest.raises(ConfigError) as err:
        parse_mix(" , ")
    assert str(err.value) == "--mix is empty"


# -- the value function, exactly ------------------------------------------------------------------
# Two KPs with no edge between them, so every path is one start draw. KP 0 is named by three
# seeds of difficulty 5, KP 1 by one seed of difficulty 1. Each walk of one path with its own
# seed draws a start with probability exp(V(v) / tau) / sum, V from the module docstring:
#   p(v) = log(1+freq) / log(1+max freq), c(v) = (1+visits)**-gamma, h(v) = 1 - |d(v) - target| / 4


def two_kp_graph():
    from linkqa_core.graph.build import graph_from_links

    return graph_from_links([1, 2, 3, 4], [0, 0, 0, 1], np.zeros(5, np.int16),
                            np.array([3.0, 5.0, 5.0, 5.0, 1.0]), ["Physics"])


def share_of_kp0(g, params, prior=None, n=6000) -> float:
    starts = [value_walks(g, params, 1, seed=s, prior_visits=prior).nodes[0] for s in range(n)]
    return float(np.mean(np.array(starts) == 0))


def expected_share(params, visits=(0, 0)) -> float:
    freq, difficulty = np.array([3.0, 1.0]), np.array([5.0, 1.0])
    pop = np.log1p(freq) / np.log1p(freq.max())
    cov = (1.0 + np.array(visits, dtype=float)) ** -params.gamma
    fit = 1.0 - np.abs(difficulty - params.difficulty_target) / 4.0
    v = params.w_pop * pop + params.w_cov * cov + params.w_diff * fit
    return float(1.0 / (1.0 + np.exp(-(v[0] - v[1]) / params.tau)))


ONE_KP = dict(min_len=1, max_len=1, w_link=0.0)


@pytest.mark.parametrize("knobs", [
    dict(w_pop=1.0, w_cov=0.0, w_diff=0.0, tau=1.0),  # popularity on its 0-1 scale
    dict(w_pop=0.0, w_cov=0.0, w_diff=1.0, tau=0.25, difficulty_target=4.0),  # difficulty fit, /4
    dict(w_pop=0.0, w_cov=0.0, w_diff=1.0, tau=0.5, difficulty_target=2.0),  # the target moves it
    dict(w_pop=0.5, w_cov=0.0, w_diff=0.3, tau=2.0),  # tau divides the value
], ids=["w_pop", "w_diff", "difficulty_target", "tau"])
def test_start_draws_follow_the_value_function(knobs):
    g = two_kp_graph()
    assert list(g.freq) == [3, 1] and list(g.difficulty) == [5.0, 1.0]
    params = WalkParams(**ONE_KP, **knobs)
    assert abs(share_of_kp0(g, params) - expected_share(params)) < 0.02  # 6000 draws: sd <= 0.0065


def test_start_draws_weigh_coverage_by_gamma():
    g = two_kp_graph()
    prior = np.array([0, 3])  # KP 1 already visited three times
    for gamma in (0.5, 2.0):
        params = WalkParams(**ONE_KP, w_pop=0.0, w_cov=1.0, w_diff=0.0, tau=0.5, gamma=gamma)
        assert abs(share_of_kp0(g, params, prior) - expected_share(params, (0, 3))) < 0.02


# -- knobs refused, and their messages ------------------------------------------------------------


def test_a_true_or_false_knob_is_not_a_number():
    from linkqa_core.errors import ConfigError

    for name in ("w_pop", "tau"):
        with pytest.raises(ConfigError) as err:
            WalkParams(**{name: True})
        assert str(err.value) == f"{name} must be a number, got True"


def test_fractional_lengths_are_refused_either_one():
    from linkqa_core.errors import ConfigError

    for kw in ({"min_len": 2.5}, {"max_len": 4.5}):
        with pytest.raises(ConfigError) as err:
            WalkParams(**kw)
        assert str(err.value) == "min_len and max_len must be whole numbers"


def test_a_mix_may_hold_a_zero_share_but_not_only_zeros():
    from linkqa_core.errors import ConfigError

    assert WalkParams(mix=(("Law", 0.0), ("History", 1.0))).mix == (("History", 1.0), ("Law", 0.0))
    with pytest.raises(ConfigError) as err:
        WalkParams(mix=(("Law", 0.0), ("History", 0.0)))
    assert str(err.value) == "the discipline target shares add up to 0"


# -- target shares --------------------------------------------------------------------------------
# Three disciplines: KP 0 is named by two Physics seeds and a Law seed (a Physics KP), KP 1 by
# one History seed; Law has a link but no KP of its own, and is listed last.


def three_discipline_graph():
    from linkqa_core.graph.build import graph_from_links

    return graph_from_links([1, 2, 3, 4], [0, 0, 0, 1], np.array([0, 0, 0, 2, 1], np.int16),
                            np.full(5, 3.0), ["Physics", "History", "Law"])


def test_default_target_shares_follow_the_links_of_disciplines_that_have_kps():
    g = three_discipline_graph()
    assert list(g.discipline) == [0, 1]
    links = g.discipline_counts.sum(axis=0).astype(float)  # Physics 2, History 1, Law 1
    expected = np.array([links[0], links[1], 0.0]) / (links[0] + links[1])
    assert np.allclose(target_shares(g, WalkParams()), expected) and np.allclose(expected, [2 / 3, 1 / 3, 0])


def test_mix_shares_are_normalised_and_a_discipline_without_kps_may_only_get_zero():
    from linkqa_core.errors import ConfigError

    g = three_discipline_graph()
    assert np.allclose(target_shares(g, WalkParams(mix=(("Physics", 3.0), ("History", 1.0)))), [0.75, 0.25, 0.0])
    assert np.allclose(target_shares(g, WalkParams(mix=(("Physics", 1.0), ("Law", 0.0)))), [1.0, 0.0, 0.0])
    with pytest.raises(ConfigError) as err:
        target_shares(g, WalkParams(mix=(("Physics", 1.0), ("Law", 0.5))))
    assert str(err.value) == "discipline 'Law' has no knowledge points to start a path from"
    with pytest.raises(ConfigError) as err:
        target_shares(g, WalkParams(mix=(("Astrology", 1.0),)))
    assert str(err.value) == "unknown discipline 'Astrology' in the mix; known: Physics, History, Law"


def test_an_empty_graph_has_zero_shares_and_no_walks():
    from linkqa_core.errors import ConfigError
    from linkqa_core.graph.build import graph_from_links

    empty = graph_from_links([], [], np.zeros(1, np.int16), np.full(1, 3.0), ["Physics", "Law"])
    shares = target_shares(empty, WalkParams())
    assert shares.shape == (2,) and not np.isnan(shares).any() and shares.sum() == 0
    with pytest.raises(ConfigError) as err:
        value_walks(empty, WalkParams(), 5)
    assert str(err.value) == "the KP graph is empty: run extract first"


# -- path counts and lengths --------------------------------------------------------------------


def test_zero_paths_is_an_empty_run_and_fewer_is_refused():
    from linkqa_core.errors import ConfigError

    g = two_kp_graph()
    assert len(value_walks(g, WalkParams(**ONE_KP), 0)) == 0
    with pytest.raises(ConfigError) as err:
        value_walks(g, WalkParams(**ONE_KP), -1)
    assert str(err.value) == "the number of paths must be >= 0"


def test_a_one_kp_graph_walks_paths_of_one_kp():
    from linkqa_core.graph.build import graph_from_links

    g = graph_from_links([1, 2], [0, 0], np.zeros(3, np.int16), np.full(3, 3.0), ["Physics"])
    walks = value_walks(g, WalkParams(min_len=1, max_len=1), 3)
    assert len(walks) == 3 and walks.nodes.tolist() == [0, 0, 0]


def test_without_edges_paths_of_two_kps_are_refused_with_the_way_out():
    from linkqa_core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        value_walks(two_kp_graph(), WalkParams(min_len=2, max_len=2), 3)
    assert str(err.value) == "no KP has a neighbour: paths of 2 or more KPs are impossible; set min_len to 1"


def test_each_seed_draws_its_own_starts_even_when_lengths_are_fixed():
    g = two_kp_graph()
    p = WalkParams(**ONE_KP, w_pop=0.0, w_cov=0.0, w_diff=0.0)  # both KPs alike: starts are coin flips
    starts = {seed: value_walks(g, p, 64, seed=seed).nodes.tolist() for seed in (1, 2, 65)}
    assert starts[1] != starts[2] and starts[1] != starts[65]


def test_each_seed_draws_its_own_uniform_starts_even_when_lengths_are_fixed():
    g = two_kp_graph()
    starts = {seed: uniform_walks(g, WalkParams(**ONE_KP), 64, seed=seed).nodes.tolist() for seed in (0, 1, 64)}
    assert starts[0] != starts[1] and starts[0] != starts[64]

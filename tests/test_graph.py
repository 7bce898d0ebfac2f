import itertools

import networkx as nx
import numpy as np

from linkqa_core.graph.build import build_graph, graph_from_links
from linkqa_core.graph.stats import graph_stats


def _edge_by_edge(links):
    """The obvious construction, to check the vectorised one against."""
    g = nx.Graph()
    by_seed = {}
    for seed, kp in links:
        by_seed.setdefault(seed, []).append(kp)
    for kps in by_seed.values():
        for a, b in itertools.combinations(sorted(set(kps)), 2):
            w = g.get_edge_data(a, b, {"weight": 0})["weight"]
            g.add_edge(a, b, weight=w + 1)
    return g


def test_graph_weights_equal_the_edge_by_edge_construction():
    rng = np.random.default_rng(3)
    links = sorted({(int(s), int(k)) for s in range(300) for k in rng.choice(60, size=rng.integers(2, 7), replace=False)})
    seed_rid = np.array([s for s, _ in links])
    kp_id = np.array([k for _, k in links])
    g = graph_from_links(seed_rid, kp_id, np.zeros(300, np.int16), np.full(300, 3.0), ["Other"])
    ref = _edge_by_edge(links)
    assert g.n_edges == ref.number_of_edges()
    for i in range(g.n_nodes):
        nbrs, w = g.neighbors(i)
        for j, wt in zip(nbrs, w):
            assert ref[int(g.kp_ids[i])][int(g.kp_ids[j])]["weight"] == wt


def test_node_attributes_come_from_seeds(sample_store):
    g = build_graph(sample_store)
    freq = dict(sample_store.query("SELECT kp_id, count(*) FROM seed_kps GROUP BY kp_id"))
    assert all(freq[int(k)] == f for k, f in zip(g.kp_ids, g.freq))
    assert g.seed_indptr[-1] == sum(freq.values())
    assert ((g.difficulty >= 1) & (g.difficulty <= 5)).all()
    i = int(np.argmax(g.freq))
    assert len(g.seeds_of(i)) == g.freq[i]


def test_stats_report_components_degrees_disciplines_and_communities(sample_store):
    stats = graph_stats(build_graph(sample_store))
    # 20 questions a subject share few concepts: KPs join them into many small components
    # (everyday words that once joined them all are no longer KPs)
    assert stats["nodes"] > 1000 and stats["edges"] > 0.8 * stats["nodes"]
    assert 0.2 < stats["largest_component_share"] <= 1
    assert stats["components"] >= 1
    assert sum(stats["degree"]["histogram"].values()) == stats["nodes"]
    assert sum(stats["disciplines"].values()) == stats["nodes"]
    assert stats["communities"]["count"] > 5 and stats["communities"]["modularity"] > 0.3


def test_networkx_view_matches_the_arrays(sample_store):
    g = build_graph(sample_store)
    top = np.argsort(g.freq)[::-1][:50]
    sub = g.to_networkx(top)
    assert sub.number_of_nodes() == 50
    for a, b, data in sub.edges(data=True):
        nbrs, w = g.neighbors(a)
        assert w[list(nbrs).index(b)] == data["weight"]
    assert all("discipline" in d and d["freq"] >= 1 for _, d in sub.nodes(data=True))


def test_empty_database_gives_an_empty_graph(store):
    g = build_graph(store)
    assert g.n_nodes == 0 and graph_stats(g)["components"] == 0

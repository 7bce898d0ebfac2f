"""End to end on the full MMLU test split (skipped when the file is absent)."""

import numpy as np
import pytest

from linkqa_core.graph.build import build_graph
from linkqa_core.graph.stats import graph_stats
from linkqa_core.graph.sampling import sample
from linkqa_core.ingest.load import load_seeds
from linkqa_core.store import Store
from linkqa_core.graph.walks import WalkParams

pytestmark = pytest.mark.slow


def test_full_file_loads_every_question_and_reports_the_two_header_rows(mmlu_path):
    result = load_seeds(mmlu_path)
    assert len(result.bad_rows) == 2
    assert len(result.seeds) == 14042
    assert len({s.discipline for s in result.seeds}) == 13


def test_full_graph_is_one_big_component_with_a_heavy_tail(mmlu_db):
    with Store(mmlu_db) as store:
        g = build_graph(store)
        stats = graph_stats(g, communities=False)
    assert stats["nodes"] > 10_000
    # the rest: seeds whose text shares no concept with any other seed (about one in fourteen)
    assert stats["largest_component_share"] > 0.75
    assert g.freq.max() > 50 * np.median(g.freq)


def test_thousand_paths_on_full_mmlu_beat_the_uniform_walk_on_coverage_and_balance(mmlu_db):
    with Store(mmlu_db) as store:
        result = sample(store, WalkParams(w_cov=2.0), 1000, seed=0, save=True)
        assert store.runs.get(result.run_id).metrics["kp_coverage"] == result.metrics["kp_coverage"]
    m, b = result.metrics, result.baseline
    assert m["kp_coverage"] > b["kp_coverage"]
    assert m["discipline_tv_distance"] < 0.05
    assert m["mean_link_strength"] >= 1.5

"""The knowledge layer's targets on the full MMLU file (skipped when it is absent)."""

import pytest

from linkqa_core.graph.build import build_graph
from linkqa_core.graph.sampling import sample
from linkqa_core.graph.walks import WalkParams
from linkqa_core.ingest.load import load_seeds
from linkqa_core.kps.offline import OfflineExtractor
from linkqa_core.kps.quality import kp_quality
from linkqa_core.store import Store

pytestmark = pytest.mark.slow


def test_full_mmlu_kps_are_shared_concepts_not_everyday_words(mmlu_path):
    seeds = load_seeds(mmlu_path).seeds
    extractor = OfflineExtractor()
    q = kp_quality(extractor.extract(seeds), seeds)
    assert q.singleton_share <= 0.45
    assert q.general_word_share <= 0.10, q.general_words
    assert q.seeds_outside_bounds == 0
    assert extractor.subject_fallbacks < 0.03 * len(seeds)  # only seeds whose text names no noun


def test_full_mmlu_default_bundles_join_several_seeds(mmlu_db):
    with Store(mmlu_db) as store:
        result = sample(store, WalkParams(), 1000, seed=0, graph=build_graph(store))
    m = result.metrics
    assert m["bundle_share_2plus"] >= 0.98
    assert m["bundle_share_3plus"] >= 0.9
    assert m["mean_shared_kps"] >= 1.5
    assert m["bundle_share_2plus"] > result.baseline["bundle_share_2plus"]

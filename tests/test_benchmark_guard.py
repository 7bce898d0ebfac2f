"""The benchmark data generator is deterministic and shaped as promised (no timings here)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import generate as gen  # noqa: E402
from linkqa_core.graph.build import build_graph  # noqa: E402
from linkqa_core.store import Store  # noqa: E402


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_data(tmp_path):
    a = gen.generate(3000, seed=5)
    b = gen.generate(3000, seed=5)
    for field in ("seed_discipline", "seed_subject", "seed_difficulty", "link_ptr", "link_kp", "kp_home"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    gen.write_jsonl(a, tmp_path / "a.jsonl")
    gen.write_jsonl(b, tmp_path / "b.jsonl")
    assert _digest(tmp_path / "a.jsonl") == _digest(tmp_path / "b.jsonl")


def test_other_seed_other_data():
    a = gen.generate(3000, seed=5)
    c = gen.generate(3000, seed=6)
    assert not np.array_equal(a.link_kp[:1000], c.link_kp[:1000])


def test_shape_of_the_data():
    fit = gen.load_fit()
    d = gen.generate(5000, seed=1, fit=fit)
    sizes = np.diff(d.link_ptr)
    assert sizes.min() >= 2 and sizes.max() <= 8
    for i in range(0, d.n, 97):
        kps = d.kps_of(i)
        assert len(set(kps.tolist())) == len(kps)
    shares = np.bincount(d.seed_discipline, minlength=len(d.disciplines)) / d.n
    expected = np.array([fit["disciplines"][x] for x in d.disciplines])
    assert np.abs(shares - expected).max() < 0.02
    freq = np.bincount(d.link_kp)
    freq = freq[freq > 0]
    assert freq.max() > 20 * np.median(freq)  # heavy-tailed popularity


def test_vocabulary_grows_with_size():
    fit = gen.load_fit()
    assert gen.vocabulary_size(fit, 10_000) < gen.vocabulary_size(fit, 100_000) < gen.vocabulary_size(fit, 1_000_000)


def test_store_fast_path_matches_the_arrays():
    d = gen.generate(1500, seed=2)
    with Store(":memory:") as store:
        gen.write_store(d, store)
        g = build_graph(store)
        assert store.seeds.count() == d.n
    assert g.n_nodes == np.unique(d.link_kp).size
    assert int(g.freq.sum()) == d.n_links


@pytest.mark.parametrize("text,n", [("10k", 10_000), ("100K", 100_000), ("1M", 1_000_000), ("2500", 2500)])
def test_parse_size(text, n):
    assert gen.parse_size(text) == n

"""The gates' hashed sets and numpy LSH (quality/minhash.py), pinned against what they replace:
Python string sets with ``text.jaccard``, and datasketch's ``MinHashLSH`` queried item by item
(the index the gates used before, with the same signatures and band shape)."""

from __future__ import annotations

import random
from zlib import crc32

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHashLSH

from linkqa_core.quality.minhash import (LSH_SLACK, BandIndex, HashedSets, band_values, lsh_shape,
                                         near_duplicate_matches, set_bands, signatures)
from linkqa_core.quality.text import jaccard

NUM_PERM = 128


def _random_sets(n: int, seed: int) -> list[set[str]]:
    """Families of overlapping sets (a base set with a few elements swapped), some empty,
    with non-ASCII elements: near duplicates occur, at every similarity."""
    rng = random.Random(seed)
    vocab = [f"w{k} é{k % 7}" for k in range(400)]
    bases = [set(rng.sample(vocab, rng.randrange(3, 30))) for _ in range(max(1, n // 8))]
    out = []
    for _ in range(n):
        s = set(rng.choice(bases))
        for _ in range(rng.choice((0, 0, 1, 2, 4, 8))):
            if s:
                s.discard(rng.choice(sorted(s)))
            s.add(rng.choice(vocab))
        out.append(s if rng.random() > 0.03 else set())
    return out


def test_hashed_jaccard_equals_set_jaccard_on_random_sets():
    sets = _random_sets(160, seed=1)
    other = _random_sets(40, seed=2)
    hs, ho = HashedSets.of(sets), HashedSets.of(other)
    assert hs.sizes().tolist() == [len(s) for s in sets]
    got = [hs.jaccard(i, hs, j) for i in range(len(sets)) for j in range(len(sets))]
    assert got == [jaccard(a, b) for a in sets for b in sets]
    assert [hs.jaccard(i, ho, j) for i in range(len(sets)) for j in range(len(other))] == \
        [jaccard(a, b) for a in sets for b in other]


def test_an_element_hash_carries_its_crc32_so_signatures_are_the_string_sets_own():
    words = ["the cat sat", "naïve café", "日本 語", "", "x#2"]
    hs = HashedSets.of([{w} for w in words])
    assert (hs.flat >> np.uint64(32)).tolist() == [crc32(w.encode("utf-8")) for w in words]
    sets = [s for s in _random_sets(120, seed=3) if s]
    for t in (0.8, 0.9):
        b, r = lsh_shape(t, NUM_PERM)
        assert (set_bands(HashedSets.of(sets), NUM_PERM, t) == band_values(signatures(sets, NUM_PERM), b, r)).all()


def test_take_and_concat_keep_each_set_whole():
    sets = _random_sets(50, seed=4)
    hs = HashedSets.of(sets)
    rows = np.array([7, 0, 7, 49, 3])
    picked = hs.take(rows)
    assert [picked.jaccard(k, hs, int(r)) for k, r in enumerate(rows) if sets[r]] == [1.0] * sum(
        1 for r in rows if sets[r])
    both = HashedSets.concat([HashedSets.of(sets[:20]), HashedSets.of(sets[20:])])
    assert (both.flat == hs.flat).all() and (both.offsets == hs.offsets).all()


def _datasketch(threshold: float) -> MinHashLSH:
    return MinHashLSH(threshold=max(threshold - LSH_SLACK, threshold / 2), num_perm=NUM_PERM)


@pytest.mark.parametrize("threshold", [0.8, 0.9, 0.5])
def test_shared_band_values_are_exactly_the_pairs_datasketch_finds(threshold):
    sets = [s for s in _random_sets(300, seed=5) if s]
    sig = signatures(sets, NUM_PERM)
    lsh = _datasketch(threshold)
    assert (lsh.b, lsh.r) == lsh_shape(threshold, NUM_PERM)
    for k, row in enumerate(sig):
        lsh.insert(k, LeanMinHash(seed=1, hashvalues=row, scheme="affine32"))
    theirs = {(k, j) for k, row in enumerate(sig) for j in lsh.query(LeanMinHash(seed=1, hashvalues=row, scheme="affine32")) if j != k}
    bands = set_bands(HashedSets.of(sets), NUM_PERM, threshold)
    ours = {(k, j) for k in range(len(sets)) for j in range(len(sets))
            if j != k and (bands[k] == bands[j]).any()}
    assert len(theirs) > len(sets)  # near duplicates do meet
    assert ours == theirs


@pytest.mark.parametrize("threshold", [0.8, 0.5])
def test_near_duplicate_matches_are_the_sequential_datasketch_rule(threshold):
    """Each set against the sets kept before it, through datasketch, best match and ties to the
    smallest key: the gate as it was, and what the compiled loop must reproduce."""
    sets = [s for s in _random_sets(400, seed=6) if s]
    sig = signatures(sets, NUM_PERM)
    lsh = _datasketch(threshold)
    expect_match, expect_sim = [], []
    for i, row in enumerate(sig):
        sketch = LeanMinHash(seed=1, hashvalues=row, scheme="affine32")
        found = None
        for key in lsh.query(sketch):
            sim = jaccard(sets[i], sets[key])
            if sim >= threshold and (found is None or sim > found[1] or (sim == found[1] and key < found[0])):
                found = (key, sim)
        if found is None:
            lsh.insert(i, sketch)
        expect_match.append(-1 if found is None else found[0])
        expect_sim.append(0.0 if found is None else found[1])
    hs = HashedSets.of(sets)
    match, sim = near_duplicate_matches(hs, set_bands(hs, NUM_PERM, threshold), threshold)
    assert 0 < sum(m >= 0 for m in expect_match) < len(sets)
    assert match.tolist() == expect_match and sim.tolist() == expect_sim


def test_a_band_index_finds_every_indexed_set_that_shares_a_band_and_reaches_the_threshold():
    t = 0.8
    items = _random_sets(200, seed=7)
    queries = _random_sets(80, seed=7)[:40] + _random_sets(40, seed=8)
    hi, hq = HashedSets.of(items), HashedSets.of(queries)
    bi, bq = set_bands(hi, NUM_PERM, t), set_bands(hq, NUM_PERM, t)
    q, m, s = BandIndex(hi, bi, t).matches(hq, bq)
    got = sorted(zip(q.tolist(), m.tolist(), s.tolist()))
    expect = sorted((a, b, jaccard(queries[a], items[b])) for a in range(len(queries)) for b in range(len(items))
                    if queries[a] and items[b] and (bq[a] == bi[b]).any() and jaccard(queries[a], items[b]) >= t)
    assert len(expect) > 10
    assert got == expect


def _planted_items():
    from linkqa_core.records import Item

    q = "Which layer of the atmosphere holds most of the ozone that absorbs ultraviolet light?"
    other = "Which organelle of the cell makes most of the energy that a muscle uses when it runs?"
    opts = ("stratosphere", "troposphere", "mesosphere")
    return [Item(q, "stratosphere", opts, id=1), Item(other, "mitochondria", None, id=2),
            Item(q.upper(), "stratosphere", opts, id=3), Item("Name the gas that plants give off while they make sugar from light.", "oxygen", None, id=4),
            Item(other, "mitochondria", None, id=5)], [("s-ozone", q, list(opts)), ("s-cell", other, None)]


def test_exact_keys_are_confirmed_on_the_key_when_their_hashes_collide(monkeypatch):
    """The exact-duplicate gate and the seed gate's exact lookups go by the key's hash and
    confirm on the key: with every hash the same, the verdicts do not change."""
    from linkqa_core.quality import copies, gates

    items, seeds = _planted_items()
    honest = [(r.passed, r.gate, r.reason, r.match) for r in gates.run_gates(items, seeds=seeds)]
    for module in (gates, copies):
        monkeypatch.setattr(module, "hash", lambda key: 7, raising=False)
    colliding = [(r.passed, r.gate, r.reason, r.match) for r in gates.run_gates(items, seeds=seeds)]
    assert colliding == honest
    assert [g for _, g, _, _ in honest] == ["seed_duplicate", "seed_duplicate", "exact_duplicate", None,
                                           "exact_duplicate"]


def test_seed_hits_indexes_only_the_rows_asked_for_and_refuses_views_without_them():
    from linkqa_core.quality.checks import GateConfig
    from linkqa_core.quality.copies import ItemViews, seed_hits

    items, seeds = _planted_items()
    cfg = GateConfig()
    views = ItemViews.of(items, [0, 1, 3], cfg.shingle_size)
    # items 0 and 1 copy a seed, but only rows 1 and 3 are checked: row 0's views are not indexed
    assert set(seed_hits(items, [1, 3], seeds, cfg, views=views)) == {1}
    assert set(seed_hits(items, [0, 1, 3], seeds, cfg, views=views)) == {0, 1}
    with pytest.raises(ValueError, match="must include every row checked"):
        seed_hits(items, [1, 2], seeds, cfg, views=views)

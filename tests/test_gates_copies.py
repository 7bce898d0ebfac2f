"""The seed-copy rule for many items at once (quality/copies.py), pinned where mutation testing
found the gate tests blind: ``seed_hits`` called as the gates on Ray call it (no views, no
keys made beforehand), which seed is named when several are equally good evidence, the
one-line refusal of views that miss a checked row, and item views larger than the first
buffer or made a few items at a time."""

from __future__ import annotations

import numpy as np
import pytest

from linkqa_core.quality.checks import GateConfig
from linkqa_core.quality.copies import VIEWS, ItemViews, Views, seed_copy, seed_hits
from linkqa_core.quality.gates import run_gates
from linkqa_core.quality.minhash import HashedSets
from linkqa_core.records import Item

CFG = GateConfig()

OZONE = "Which layer of the atmosphere holds most of the ozone that absorbs ultraviolet light?"
LAYERS = ["stratosphere", "troposphere", "mesosphere"]
METAL = "Which metal is liquid at room temperature and was once used in thermometers?"
PLANTS = "Name the process by which green plants use sunlight water and carbon dioxide to make their own"
MOONS = "Which planet of the solar system has the largest number of known moons orbiting around it"
MOON_WALK = "In which year did the first person walk on the surface of the moon during a mission"


def _items() -> list[Item]:
    """One item per kind of copy, and one that copies nothing (row 0), so that no kind is found
    only because its item happens to come first."""
    return [
        Item("Which organelle of the cell makes most of the energy that a muscle uses when it runs?",
             "mitochondria", None, id="none"),
        Item(OZONE, "stratosphere", tuple(reversed(LAYERS)), id="exact"),  # the options in another order
        Item(METAL, "mercury", ("mercury", "gallium"), id="exact question"),
        Item(PLANTS + " sugar", "photosynthesis", None, id="near"),
        Item(MOONS + " now", "Mars or Venus", ("Uranus or Neptune", "Mars or Venus"), id="question"),
        Item(" ".join(reversed(MOON_WALK.split())), "1969", None, id="reordered"),
    ]


def _seeds() -> list[tuple]:
    """Each copy twice or more, the later seed's id sorting first: the earliest seed must win
    by its place in the stream, not by its id."""
    return [
        ("z-exact", OZONE, list(LAYERS)),
        ("a-exact", OZONE.upper(), list(LAYERS)),
        ("z-question", METAL, ["mercury", "bromine", "cesium"]),
        ("a-question", METAL, ["mercury", "bromine"]),
        ("skipped", None),  # not a question: read past, still counts as a place in the stream
        ("z-near", PLANTS + " food"),
        ("a-near", PLANTS + " food", "not a list"),  # options given as a string are dropped
        ("q", MOONS + " today", ["Saturn", "Jupiter"]),
        ("r", MOON_WALK),
    ]


def _one_by_one(items: list[Item], seeds: list[tuple], cfg: GateConfig) -> dict[int, tuple]:
    """The rule pair by pair (``seed_copy``): per item the best kind, then the earliest seed."""
    best: dict[int, tuple] = {}
    for r, item in enumerate(items):
        for at, seed in enumerate(seeds):
            sid, question = seed[0], seed[1]
            options = seed[2] if len(seed) == 3 and not isinstance(seed[2], str) else None
            if not isinstance(question, str):
                continue
            hit = seed_copy(item.question, item.options, question, options, cfg, seed_id=sid)
            if hit is not None and (r not in best or (hit.rank(), at) < best[r][0]):
                best[r] = ((hit.rank(), at), (hit.seed_id, hit.how, hit.similarity))
    return {r: found for r, (_, found) in best.items()}


def _found(hits: dict) -> dict[int, tuple]:
    return {r: (h.seed_id, h.how, h.similarity) for r, h in hits.items()}


def test_seed_hits_without_views_or_keys_finds_each_items_best_evidence_as_seed_copy_does():
    """The gates on Ray pass neither views nor near bands: seed_hits makes them itself."""
    items, seeds = _items(), _seeds()
    got = _found(seed_hits(items, range(len(items)), seeds, CFG))
    assert got == _one_by_one(items, seeds, CFG)
    assert {items[r].id: (sid, how) for r, (sid, how, _) in got.items()} == {
        "exact": ("z-exact", "exact"), "exact question": ("z-question", "exact question"),
        "near": ("z-near", "near"), "question": ("q", "question"), "reordered": ("r", "reordered")}


def test_seed_hits_with_or_without_what_the_gates_made_beforehand_agree():
    items, seeds = _items(), _seeds()
    rows = [5, 1, 3, 2, 4]  # not in order, and row 0 left out
    views = ItemViews.of(items, range(len(items)), CFG.shingle_size)
    keys = np.array([hash(k) for k in (_exact_key(items[r]) for r in rows)], np.int64)
    alone = _found(seed_hits(items, rows, seeds, CFG))
    given = _found(seed_hits(items, rows, seeds, CFG, exact_hashes=keys, views=views))
    assert alone == given and set(alone) == set(rows)
    results = run_gates(items, seeds=seeds)
    assert {r: (res.match, res.similarity) for r, res in enumerate(results) if not res.passed} == {
        r: (sid, sim) for r, (sid, _, sim) in _found(seed_hits(items, range(len(items)), seeds, CFG)).items()}


def _exact_key(item: Item) -> str:
    from linkqa_core.quality.text import exact_key

    return exact_key(item.question, item.options)


def test_seed_hits_with_no_rows_finds_nothing():
    items, seeds = _items(), _seeds()
    assert seed_hits(items, [], seeds, CFG) == {}
    assert seed_hits(items, [], seeds, CFG, views=ItemViews.of(items, [1, 2], CFG.shingle_size)) == {}


MISSING = r"^the views given to seed_hits must include every row checked$"


@pytest.mark.parametrize("view_rows, rows", [
    ([0, 1, 3], [1, 2]),  # a row between the views' rows
    ([0, 1, 3], [4]),  # a row after all of them
    ([3], [1]),  # before the only one
    ([0], [5]),  # after the only one
    ([], [0]),  # views of no item at all
])
def test_views_without_a_checked_row_are_refused_in_one_sentence(view_rows, rows):
    items, seeds = _items(), _seeds()
    views = ItemViews.of(items, view_rows, CFG.shingle_size)
    with pytest.raises(ValueError, match=MISSING):
        seed_hits(items, rows, seeds, CFG, views=views)


def _element_hash(element: str) -> int:
    return int(HashedSets.of([{element}]).flat[0])


def test_seeds_are_checked_when_the_items_hold_a_single_element_in_every_view():
    """One one-word item: each view's universe of elements is that word alone. A seed word
    whose hash sorts after it is looked for past the end of that universe."""
    word = "photosynthesis"
    after = next(w for w in ("oxygen", "chlorophyll", "glucose", "sunlight", "carbon", "water", "leaf", "starch")
                 if _element_hash(w) > _element_hash(word))
    item = Item(word.capitalize() + "?" * 10, "a process", None, id=1)
    seeds = [("other", f"{after} {after} {after} {after}"), ("copy", word.upper())]
    assert _found(seed_hits([item], [0], seeds, CFG)) == {0: ("copy", "exact", 1.0)}


def test_a_seed_view_of_a_single_element_is_compared():
    """At a threshold of 0.5 a one-shingle seed is near an item of two shingles that holds it."""
    cfg = GateConfig(near_dup_threshold=0.5, min_question_chars=1)
    item = Item("plants need light daily", "yes", None, id=1)
    seeds = [("s", "plants need light")]
    assert _found(seed_hits([item], [0], seeds, cfg)) == {0: ("s", "near", 0.5)}
    assert seed_copy(item.question, None, "plants need light", None, cfg).how == "near"


def _long_items(n: int, words: int) -> list[Item]:
    """``n`` items of ``words`` words, drawn so that shingles are mostly distinct."""
    return [Item(" ".join(f"w{(i * 7919 + j * 104729) % 60013}" for j in range(words)) + "?", "answer", None,
                 id=i) for i in range(n)]


@pytest.mark.parametrize("chunk", [2_000, 7])
def test_item_views_larger_than_the_first_buffer_or_made_in_chunks_are_the_sets_hashed_at_once(chunk):
    items = _long_items(300, 300)  # ~90,000 shingles a view: the buffer of 65,536 grows
    rows = list(range(299, -1, -2)) + list(range(0, 300, 2))
    views = ItemViews.of(items, rows, CFG.shingle_size, chunk=chunk)
    assert views.rows.tolist() == rows
    for how in VIEWS:
        expect = HashedSets.of([getattr(Views.of(items[r].question, items[r].options, CFG.shingle_size), how)
                                for r in rows])
        got = getattr(views, how)
        assert int(expect.offsets[-1]) > 1 << 16
        assert got.flat.tolist() == expect.flat.tolist() and got.offsets.tolist() == expect.offsets.tolist()

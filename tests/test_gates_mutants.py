"""Quality gates, pinned where mutation testing found the other tests blind: how often the
gates hash (each item once per view, in one batch call; seeds that cannot reach a threshold
never; at most 4096 seeds at a time), the shingle size reaching question and options, and
the small print of results (an exact duplicate's similarity, the repeated key named,
summaries counting rejections only)."""

from __future__ import annotations

import math

import pytest

from linkqa_core.quality import copies, gates, minhash
from linkqa_core.quality.checks import GateConfig
from linkqa_core.quality.gates import GateResult, run_gates, seed_copy, summarize
from linkqa_core.quality.text import jaccard, shingles
from linkqa_core.records import Item

# twenty distinct words: with shingle_size=1 every word is one shingle, so overlaps are counted by hand
WORDS = ("amber basalt cobalt dolomite emerald feldspar garnet hematite ilmenite jasper kyanite limonite "
         "magnetite nepheline olivine pyrite quartz rutile sphalerite topaz").split()
NEW = ("ash birch cedar dogwood elm fir ginkgo hazel").split()
WORD_CFG = GateConfig(shingle_size=1, min_question_chars=1)


@pytest.fixture
def signed(monkeypatch) -> list[int]:
    """The number of sets each call of :func:`minhash.set_bands` signs, in call order."""
    calls: list[int] = []
    real = minhash.set_bands

    def counting(sets, num_perm, threshold, tag=0):
        calls.append(int((sets.sizes() > 0).sum()))
        return real(sets, num_perm, threshold, tag)

    for module in (gates, copies):  # where the gates call it
        monkeypatch.setattr(module, "set_bands", counting)
    return calls


def test_each_surviving_item_is_signed_once_per_view_in_one_batch_call(signed):
    # the near view signs every item; the question-alone view reuses those bands for an item
    # without options (its two sets are the same) and signs the others; the word bags are signed apart
    items = [Item(" ".join(WORDS[:12]) + "?", "A", ("A", "B"), id=1),
             Item(" ".join(WORDS[8:]) + "?", "C", ("C", "D"), id=2),
             Item(" ".join(NEW) + " and more?", "free answer", None, id=3)]
    results = run_gates(items, seeds=())
    assert all(r.passed for r in results)
    with_options = sum(1 for it in items if it.options)
    assert signed == [len(items), with_options, len(items)]


def test_seeds_that_share_too_few_elements_with_all_items_are_never_signed(signed):
    item = Item(" ".join(WORDS), "answer", None, id=1)
    run_gates([item], seeds=(), cfg=WORD_CFG)
    items_only = sum(signed)
    signed.clear()
    t = WORD_CFG.near_dup_threshold
    at_bound = math.ceil(t * 10)  # 8 of a 10-word seed's words are the item's: 8 >= 0.8 * 10
    seeds = [("s-at", " ".join(WORDS[:at_bound] + NEW[: 10 - at_bound])),
             ("s-one-short", " ".join(WORDS[: at_bound - 1] + NEW[: 11 - at_bound])),
             ("s-few", " ".join(WORDS[:2] + NEW[:8]))]
    results = run_gates([item], seeds=seeds, cfg=WORD_CFG)
    assert results[0].passed  # none is a copy: the prefilter only saves work
    # "s-at" reaches the shingle views' bound (0.8) but not the word bags' (0.9); the others reach none
    assert sum(signed) - items_only == 2


def test_seeds_are_signed_in_batches_of_at_most_4096(signed):
    question = " ".join(WORDS) + "?"
    seeds = [(f"s{k}", f"{question} variant{k}") for k in range(4097)]  # every one passes the prefilter
    (r,) = run_gates([Item(question, "answer", None, id=1)], seeds=seeds, cfg=GateConfig(check_seeds=True))
    assert r.gate == "seed_duplicate" and r.match == "s0"  # the first of equally near seeds
    assert max(signed) == 4096  # the batch bound (memory): a 4097th seed waits for the next batch
    assert signed.count(1) >= 1  # ...which it makes alone


def test_the_shingle_size_applies_to_the_question_and_to_each_option():
    cfg = GateConfig(shingle_size=5, near_dup_threshold=0.2, min_question_chars=1)
    q1 = "which of these minerals forms the hardest natural crystals found in the crust of the earth"
    q2 = q1.replace("crust", "mantle")
    o1 = ["the cubic crystals of pure carbon called diamond", "the hexagonal crystals of corundum or ruby"]
    o2 = ["the cubic crystals of pure carbon named diamond", "the hexagonal crystals of corundum and ruby"]

    def near(qa, oa, qb, ob, q_size, o_size):
        a = shingles(qa, q_size).union(*(shingles(o, o_size) for o in oa))
        b = shingles(qb, q_size).union(*(shingles(o, o_size) for o in ob))
        return jaccard(a, b)

    expected = near(q1, o1, q2, o2, 5, 5)
    # the test can tell a question or the options shingled at the default size apart
    assert expected not in (near(q1, o1, q2, o2, 3, 5), near(q1, o1, q2, o2, 5, 3))
    hit = seed_copy(q1, o1, q2, o2, cfg, seed_id="s")
    assert (hit.how, hit.similarity) == ("near", expected)


def test_an_exact_duplicate_reports_similarity_one():
    q = " ".join(WORDS)
    results = run_gates([Item(q, "answer", id=1), Item(q.upper(), "other answer", id=2)])
    assert (results[1].gate, results[1].match, results[1].similarity) == ("exact_duplicate", 1, 1.0)


def test_the_repeated_candidate_key_is_named_not_the_first_key():
    q = " ".join(WORDS)
    with pytest.raises(ValueError, match="candidate key 8 appears more than once"):
        run_gates([Item(q, "a", id=7), Item(q, "b", id=8), Item(q, "c", id=8)])


def test_summarize_counts_only_failed_results_that_name_a_gate():
    counts = summarize([GateResult(1, True, None, "schema"), GateResult(2, False, "no gate named", None),
                        GateResult(3, False, "question is missing", "schema")])
    assert counts["schema"] == 1
    assert None not in counts and sum(counts.values()) == 1


def test_a_seed_with_nothing_to_compare_is_never_signed(signed):
    item = Item(" ".join(WORDS), "answer", None, id=1)
    run_gates([item], seeds=(), cfg=WORD_CFG)
    items_only = list(signed)
    signed.clear()
    # no words at all: every view of this seed is empty, so it cannot reach any threshold
    (r,) = run_gates([item], seeds=[("s-empty", "?! ... ?!"), ("s-blank", "")], cfg=WORD_CFG)
    assert r.passed
    assert signed == items_only  # no call for the seeds, not even one that signs nothing


def test_items_after_a_rejected_item_are_still_checked_for_exact_duplicates():
    q = " ".join(WORDS)
    results = run_gates([Item(q, "", id=1), Item(q, "answer", id=2), Item(q.upper(), "other", id=3)],
                        seeds=[("s", q.upper() + "?")])
    assert [r.gate for r in results] == ["schema", "seed_duplicate", "exact_duplicate"]
    assert (results[1].reason, results[2].match) == ("exact duplicate of seed s", 2)


NO_WORDS = "?" * 24  # passes the length gate, yet every view of it is empty


def test_items_with_no_words_pass_among_near_duplicates_that_are_found():
    near_a = " ".join(WORDS)
    near_b = " ".join(WORDS[:-1] + ["zircon"])  # 17 of 19 shingles shared: Jaccard 0.85
    items = [Item(NO_WORDS, "x", None, id=1), Item(near_a, "a", None, id=2), Item(NO_WORDS + "!", "y", None, id=3),
             Item(near_b, "b", None, id=4)]
    results = run_gates(items, seeds=[("s", near_a.upper())])
    # the second wordless item has the first's exact key (empty): the only duplicate of it found
    assert [(r.gate, r.match) for r in results] == [(None, None), ("seed_duplicate", "s"), ("exact_duplicate", 1),
                                                   ("near_duplicate", 2)]


def test_items_with_no_words_alone_pass_the_seed_gate():
    (r,) = run_gates([Item(NO_WORDS, "x", None, id=1)], seeds=[("s", " ".join(WORDS)), ("t", NO_WORDS[:3] + " ".join(NEW))])
    assert r.passed


def test_each_items_exact_key_is_made_once_whatever_the_seeds(monkeypatch):
    """The exact-duplicate gate finds an item's first twin by the key's hash and hands the
    hashes on to the seed gate: no item's key is made twice (it normalises the whole text)."""
    made: list[str] = []

    def counting(question, options):
        key = real(question, options)
        made.append(key)
        return key

    real = gates.exact_key
    for module in (gates, copies):
        monkeypatch.setattr(module, "exact_key", counting)
    items = [Item(" ".join(WORDS[k:k + 6]) + " and what else?", "answer", None, id=k) for k in range(0, 14, 2)]
    seeds = [("s1", "nothing like any item here at all"), ("s2", "nor is this one")]
    results = run_gates(items, seeds=seeds)
    assert all(r.passed for r in results)
    assert len(made) == len(items) + len(seeds)

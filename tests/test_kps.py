from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkqa_core.errors import InputError, NotFoundError
from linkqa_core.kps.curate import kp_table, merge_kps, rename_kp
from linkqa_core.kps.extract import estimate_difficulty, label_of, run_extraction
from linkqa_core.kps.names import normalize_kp, singularize
from linkqa_core.kps.offline import OfflineExtractor
from linkqa_core.records import Seed


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  Bayes' Theorem ", "bayes' theorem"),
        ("Le Chatelier's Principles.", "le chatelier's principle"),
        ("PROBABILITIES", "probability"),
        ("Photosynthesis", "photosynthesis"),
        ("matrices", "matrix"),
        ("(electric   fields)", "electric field"),
        ("stresses", "stress"),
        ("genetics", "genetics"),
    ],
)
def test_normalize_kp_folds_case_space_punctuation_and_plurals(raw, expected):
    assert normalize_kp(raw) == expected


@pytest.mark.parametrize(
    "raw, key, label",
    [
        ("Big-O notation (O(n))", "big-o notation (o(n))", "Big-O notation (O(n))"),
        ("f(x) and g(x)", "f(x) and g(x)", "f(x) and g(x)"),
        ("(a) and (b)", "(a) and (b)", "(a) and (b)"),
        ("(eigenvalue)", "eigenvalue", "eigenvalue"),
        ("eigenvalue)", "eigenvalue", "eigenvalue"),
        ("[(eigenvalue", "eigenvalue", "eigenvalue"),
        ("{[(nested)]}.", "nested", "nested"),
        ("C++", "c++", "C++"),
        ("the C# language", "the c# language", "the C# language"),
        ("vitamin C.", "vitamin c", "vitamin C"),
    ],
)
def test_names_keep_the_brackets_and_signs_that_belong_to_them(raw, key, label):
    assert normalize_kp(raw) == key
    assert label_of(raw) == label


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab C+#()[]{}.,'-_ ", max_size=30))
def test_normalize_kp_and_label_of_are_idempotent_whatever_the_brackets(raw):
    key = normalize_kp(raw)
    assert normalize_kp(key) == key
    assert label_of(label_of(raw)) == label_of(raw)


def test_singularize_leaves_words_that_end_in_s_by_nature():
    for word in ("physics", "analysis", "virus", "mass", "bias"):
        assert singularize(word) == word


def test_every_sample_seed_gets_two_to_eight_kps(sample_store):
    per_seed = sample_store.query("SELECT seed_rid, count(*) FROM seed_kps GROUP BY seed_rid")
    assert len(per_seed) == sample_store.seeds.count()
    counts = [n for _, n in per_seed]
    assert min(counts) >= 2 and max(counts) <= 8


def test_kps_are_phrases_not_stop_words_or_common_words(sample_store):
    names = [r[0] for r in sample_store.query("SELECT name FROM kps")]
    banned = {"the", "which", "following", "true", "statement", "take", "come", "found", "said", "provide"}
    assert not banned & set(names)
    multiword = sum(" " in n for n in names)
    assert multiword / len(names) > 0.5  # concept phrases, mostly


def test_kps_link_seeds_across_the_sample(sample_store):
    shared = sample_store.scalar("SELECT count(*) FROM (SELECT kp_id FROM seed_kps GROUP BY kp_id HAVING count(*) > 1)")
    assert shared > 300


def test_extraction_is_deterministic(sample_store):
    seeds = [s for _, s in sample_store.seeds.iter()][:200]
    a = OfflineExtractor().extract(seeds)
    b = OfflineExtractor().extract(seeds)
    assert a == b


def test_estimated_difficulty_follows_subject_level():
    def seed(subject, q="What is the value of x in the equation?"):
        return Seed(id="x", question=q, answer="1", subject=subject)

    assert estimate_difficulty(seed("elementary mathematics")) < estimate_difficulty(seed("college mathematics"))
    assert estimate_difficulty(seed("professional law")) >= 4
    assert estimate_difficulty(Seed(id="y", question="q" * 100, answer="a", difficulty=5.0)) == 5.0


def test_missing_difficulty_is_stored_as_estimated(sample_store):
    rows = sample_store.query("SELECT difficulty, difficulty_estimated FROM seeds")
    assert all(d is not None and 1 <= d <= 5 for d, _ in rows)
    assert all(est == 1 for _, est in rows)
    assert len(Counter(d for d, _ in rows)) >= 3


def test_extract_without_seeds_says_to_ingest_first(store):
    with pytest.raises(InputError, match="ingest a file first"):
        run_extraction(store)


def test_merge_moves_links_and_survives_reextraction(sample_store):
    top = kp_table(sample_store, limit=2)
    a, b = top[0]["name"], top[1]["name"]
    total = top[0]["freq"] + top[1]["freq"]
    merge_kps(sample_store, [a], b)
    merged = {r["name"]: r["freq"] for r in kp_table(sample_store, limit=50)}
    assert a not in merged
    assert merged[b] <= total and merged[b] >= max(top[0]["freq"], top[1]["freq"])
    run_extraction(sample_store)
    again = {r["name"] for r in kp_table(sample_store)}
    assert a not in again and b in again


def test_rename_keeps_links_and_rejects_unknown_names(sample_store):
    top = kp_table(sample_store, limit=1)[0]
    rename_kp(sample_store, top["name"], "Moral Judgement Scenarios")
    renamed = kp_table(sample_store, search="moral judgement scenario")
    assert renamed and renamed[0]["freq"] == top["freq"]
    with pytest.raises(NotFoundError, match="no knowledge point named"):
        rename_kp(sample_store, "no such kp at all", "x")

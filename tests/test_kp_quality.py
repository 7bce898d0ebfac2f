"""KPs that are concepts: the offline extractor's output judged by a teacher and by plain measures."""

import socket
from pathlib import Path

import pytest

from linkqa_core.ingest.load import load_seeds, sample_path
from linkqa_core.kps import lexicon
from linkqa_core.kps.lexicon import BREAK, NOUN, Usage, word_class, zipf
from linkqa_core.kps.names import normalize_kp
from linkqa_core.kps.offline import OfflineExtractor
from linkqa_core.kps.quality import is_general_word, judged_precision, kp_quality, load_judgements
from linkqa_core.records import Extraction, Seed

JUDGEMENTS = Path(__file__).parent / "data" / "kp_judgements.jsonl"
# The extractor before this rework scored 0.37 on this set (see docs/method.md). A floor of
# 0.6 means most of what it names is a concept a teacher accepts; it sits a few points under
# the measured 0.67, so a real regression fails and a one-KP change does not.
PRECISION_FLOOR = 0.6


@pytest.fixture(scope="module")
def sample():
    seeds = load_seeds(sample_path()).seeds
    return seeds, OfflineExtractor().extract(seeds)


def test_hand_checked_set_precision_is_above_the_floor(sample):
    seeds, extractions = sample
    judgements = load_judgements(JUDGEMENTS)
    assert len(judgements) >= 60 and len({s.discipline for s in seeds if s.id in {j.seed_id for j in judgements}}) >= 12
    result = judged_precision(extractions, judgements)
    assert result.seeds == len(judgements)
    assert result.unjudged <= 0.05 * (result.judged + result.unjudged)  # the set covers what the extractor names
    assert result.precision >= PRECISION_FLOOR, f"precision {result.precision}: rejected {result.rejected_kps}"


def test_top_kps_are_not_everyday_words_and_every_seed_has_two_to_eight(sample):
    seeds, extractions = sample
    q = kp_quality(extractions, seeds)
    assert q.general_word_share <= 0.10, q.general_words
    assert q.seeds_outside_bounds == 0 and q.kps_per_seed_min >= 2 and q.kps_per_seed_max <= 8
    assert set(q.top_by_discipline) == {s.discipline for s in seeds}


def test_no_kp_ends_in_a_verb_adverb_number_or_function_word(sample):
    _, extractions = sample
    names = {n for e in extractions for n in e.kps}
    for name in names:
        last = name.split(" ")[-1].lower()
        assert word_class(last) != BREAK, name
    assert not {"you're", "five distinct", "week later", "six month"} & {n.lower() for n in names}


def test_kp_names_keep_the_capitals_of_names_and_stay_unsingularised(sample):
    _, extractions = sample
    names = {n for e in extractions for n in e.kps}
    assert "United States" in names and "Supreme Court" in names
    assert not any(n.endswith("united state") for n in names)
    for name in ("United States", "Descartes", "Keynes", "Texas", "Athens"):
        assert normalize_kp(name) == name.lower()
    assert normalize_kp("eigenvalues") == "eigenvalue" and normalize_kp("characteristics") == "characteristic"


def test_normalize_kp_is_idempotent_on_every_extracted_name(sample):
    _, extractions = sample
    for name in {n for e in extractions for n in e.kps}:
        key = normalize_kp(name)
        assert normalize_kp(key) == key, name


def test_subject_names_fill_in_only_for_seeds_without_nouns():
    seeds = [Seed(id=f"s{i}", question=q, answer=a, subject="elementary mathematics", discipline="Mathematics")
             for i, (q, a) in enumerate([("What is 5 x 3?", "15"),
                                         ("Which eigenvalue of a hermitian operator is real?", "every eigenvalue"),
                                         ("A hermitian operator has a real eigenvalue spectrum.", "true")])]
    ex = OfflineExtractor()
    out = {e.seed_id: e.kps for e in ex.extract(seeds)}
    assert ex.subject_fallbacks == 1
    assert "elementary mathematics" in out["s0"]
    assert "elementary mathematics" not in out["s1"] + out["s2"]
    assert "hermitian operator" in out["s1"] and "hermitian operator" in out["s2"]


def test_corpus_usage_tells_verb_forms_from_nouns():
    usage = Usage()
    for before in ("it", "which", "who", "she"):
        usage.see(before, "shows")
    usage.see("the", "rates")
    usage.see("to", "rates")
    usage.see("an", "rates")
    assert usage.resolve("shows", lexicon.NOUN_OR_VERB) == BREAK
    assert usage.resolve("rates", lexicon.NOUN_OR_VERB) == NOUN


def test_everyday_frequency_separates_field_terms_from_common_words():
    assert zipf("money") > 5 > zipf("eigenvalue") > 0
    assert is_general_word("money") and is_general_word("patient")
    assert not is_general_word("negligence") and not is_general_word("united states")


def test_lexicons_work_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    lexicon.zipf.cache_clear()
    lexicon.word_class.cache_clear()
    lexicon._frequencies.cache_clear()
    assert zipf("photosynthesis") > 0
    assert word_class("revealed") == BREAK or word_class("revealed") == lexicon.PARTICIPLE


def test_quality_counts_by_matching_key_and_reports_general_words():
    extractions = [Extraction("a", ("eigenvalue", "money")), Extraction("b", ("Eigenvalues", "matrix"))]
    q = kp_quality(extractions, top=10)
    assert q.kps == 3 and q.singleton_share == round(2 / 3, 4)
    assert q.general_words == ("money",) and q.general_word_share == round(1 / 3, 4)
    assert q.top_kps[0] == ("eigenvalue", 2)
    assert q.to_dict()["top_kps"][0] == ["eigenvalue", 2]


def test_judged_precision_counts_unjudged_kps_apart(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"id": "a", "accept": ["Eigenvalues"], "reject": ["money"]}\n', encoding="utf-8")
    result = judged_precision([Extraction("a", ("eigenvalue", "money", "matrix")), Extraction("z", ("x",))],
                              load_judgements(path))
    assert (result.seeds, result.judged, result.accepted, result.unjudged) == (1, 2, 1, 1)
    assert result.precision == 0.5 and result.unjudged_kps == ("matrix",)

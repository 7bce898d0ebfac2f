"""Quality gates: each gate's reason, duplicates, decontamination, and gating a stored run."""

import json
import random
import re
import time

import pytest

from linkqa_core.errors import ConfigError, InputError, NotFoundError
from linkqa_core.quality.checks import GateConfig, check_answer_consistency, check_length, check_schema
from linkqa_core.quality.gates import GATES, GateResult, apply_gates, reorder_threshold, run_gates, seed_copy, summarize
from linkqa_core.quality.reference import Reference, load_reference
from linkqa_core.quality.text import jaccard, shingles
from linkqa_core.records import Item, Seed
from linkqa_core.store import Store

OPTIONS = ["Paris", "Rome", "Madrid", "Berlin"]

# A long question, so that a one-word change leaves most of its 3-word shingles intact.
LONG_Q = (
    "A student heats a sealed rigid container of an ideal gas from 300 kelvin to 600 kelvin "
    "while keeping the amount of gas fixed and measuring the pressure with a calibrated gauge "
    "throughout the whole experiment. What happens to the pressure of the gas inside the container?"
)
LONG_OPTS = ["It halves", "It stays the same", "It doubles", "It quadruples"]
OTHER_Q = (
    "Which organelle of a eukaryotic cell carries out aerobic respiration and produces most of "
    "the ATP that the cell uses for growth, movement and the synthesis of new proteins?"
)
OTHER_OPTS = ["Ribosome", "Mitochondrion", "Golgi apparatus", "Lysosome"]


def C(key, question, answer, options=None):
    """An item as the gates see it; fields keep whatever type a test gives them."""
    return Item(question, answer, tuple(options) if isinstance(options, list) else options, id=key)


def mc(key, question=LONG_Q, answer="It doubles", options=LONG_OPTS):
    return C(key, question, answer, list(options) if options is not None else None)


def one_word_changed(text, old, new):
    assert old in text
    return text.replace(old, new, 1)


def shared_ngram(a, b, n):
    """True when texts a and b share n consecutive lower-case words (independent of the index)."""
    wa, wb = re.findall(r"\w+", a.lower()), re.findall(r"\w+", b.lower())
    grams = {tuple(wa[i : i + n]) for i in range(len(wa) - n + 1)}
    return any(tuple(wb[i : i + n]) in grams for i in range(len(wb) - n + 1))


# -- configuration ----------------------------------------------------------------------


def test_config_defaults_match_the_design():
    cfg = GateConfig()
    assert (cfg.near_dup_threshold, cfg.num_perm, cfg.shingle_size, cfg.decontam_ngram) == (0.8, 128, 3, 13)
    assert (cfg.min_question_chars, cfg.max_question_chars) == (20, 4000)
    assert (cfg.min_answer_chars, cfg.max_answer_chars, cfg.check_seeds) == (1, 2000, True)


def test_config_rejects_a_threshold_above_one_with_a_clear_message():
    with pytest.raises(ConfigError) as err:
        GateConfig(near_dup_threshold=1.5)
    assert str(err.value) == "near_dup_threshold must be a number above 0 and at most 1 (got 1.5)"


def test_config_rejects_a_zero_threshold():
    with pytest.raises(ConfigError, match="near_dup_threshold"):
        GateConfig(near_dup_threshold=0)


def test_config_rejects_max_below_min():
    with pytest.raises(ConfigError) as err:
        GateConfig(min_question_chars=50, max_question_chars=10)
    assert str(err.value) == "max_question_chars (10) must be at least min_question_chars (50)"


def test_config_rejects_out_of_range_integers_naming_the_knob():
    with pytest.raises(ConfigError) as err:
        GateConfig(num_perm=8)
    assert str(err.value) == "num_perm must be a whole number from 16 to 1024 (got 8)"
    with pytest.raises(ConfigError, match="decontam_ngram must be a whole number from 3 to 100"):
        GateConfig(decontam_ngram=2.5)
    with pytest.raises(ConfigError, match="min_answer_chars must be a whole number of at least 0"):
        GateConfig(min_answer_chars=-1)
    with pytest.raises(ConfigError, match="check_seeds must be true or false"):
        GateConfig(check_seeds="yes")


def test_config_from_dict_round_trips_and_refuses_unknown_settings():
    cfg = GateConfig(near_dup_threshold=0.7, decontam_ngram=8)
    assert GateConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError) as err:
        GateConfig.from_dict({"near_dup": 0.5})
    assert str(err.value).startswith("unknown gate setting 'near_dup'; settings are near_dup_threshold, num_perm")


# -- schema -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "candidate, reason",
    [
        (C(1, None, "4"), "question is missing"),
        (C(1, "   ", "4"), "question is missing"),
        (C(1, 42, "4"), "question is not text (got int)"),
        (C(1, "What is two plus two?", None), "answer is missing"),
        (C(1, "What is two plus two?", " "), "answer is missing"),
        (C(1, "What is two plus two?", ["4"]), "answer is not text (got list)"),
        (C(1, "What is two plus two?", "4", options="4, 5"), "options are not a list (got str)"),
        (C(1, "What is two plus two?", "4", options=["4"]), "options must number 2 to 10 (got 1)"),
        (C(1, "What is two plus two?", "4", options=[str(i) for i in range(11)]),
         "options must number 2 to 10 (got 11)"),
        (C(1, "What is two plus two?", "4", options=["4", "", "5"]), "option B is empty"),
        (C(1, "What is two plus two?", "4", options=["4", 5]), "option B is not text (got int)"),
        (C(1, "What is two plus two?", "4", options=["Four", "5", " four. "]),
         "options A and C are the same ('four.')"),
    ],
)
def test_schema_gives_the_exact_reason(candidate, reason):
    assert check_schema(candidate) == reason


def test_schema_accepts_a_free_answer_item():
    assert check_schema(C(1, "What is two plus two?", "4")) is None


# -- answer consistency -----------------------------------------------------------------


@pytest.mark.parametrize("answer", ["Paris", " paris. ", "A", "(A)", "a", "A.", "A. Paris"])
def test_answer_matching_an_option_by_text_or_letter_passes(answer):
    assert check_answer_consistency(C(1, "Capital of France?", answer, OPTIONS)) is None


def test_answer_not_among_the_options_is_rejected_with_the_count():
    reason = check_answer_consistency(C(1, "Capital of France?", "Lyon", OPTIONS))
    assert reason == "answer 'Lyon' is not one of the 4 options"


def test_answer_letter_beyond_the_options_is_rejected():
    reason = check_answer_consistency(C(1, "Capital of France?", "E", OPTIONS))
    assert reason == "answer letter 'E' is out of range for 4 options (A–D)"


def test_answer_letter_with_the_wrong_text_is_rejected():
    reason = check_answer_consistency(C(1, "Capital of France?", "B. Paris", OPTIONS))
    assert reason == "answer 'B. Paris' names option B but option B is 'Rome'"


def test_free_answer_items_pass_the_answer_gate():
    assert check_answer_consistency(C(1, "What is two plus two?", "4")) is None


@pytest.mark.parametrize("answer, letter", [
    ("D. 2.4 × 10^-19 C", "D"), ("(D) 2.4 × 10^-19 C", "D"), ("(d)", "D"), ("D)", "D"), ("D) the charge", "D"),
    ("D: 2.4", "D"), ("Option D", "D"), ("option d is right", "D"), ("The answer is (B)", "B"),
    ("Answer: C.", "C"), ("correct answer: A", "A"), ("J. 4 C", "J"),
])
def test_an_answer_naming_a_letter_on_an_item_without_options_is_rejected(answer, letter):
    reason = check_answer_consistency(C(1, "What is the charge on the oil drop in coulombs?", answer))
    assert reason == f"answer '{answer}' names option {letter} but the item has no options"


@pytest.mark.parametrize("answer", ["E. coli", "H. pylori", "C", "B.", "Vitamin C", "A tree", "Answer: A tree",
                                    "(i) 4; (ii) 6", "(iii)", "K. 4 C", "DNA", "D-glucose", "e", "I"])
def test_a_free_answer_that_only_looks_like_a_letter_passes(answer):
    assert check_answer_consistency(C(1, "Which one is it, in a word or a symbol?", answer)) is None


@pytest.mark.parametrize("question", ["Which of the following is a noble gas?", "Pick one of these options.",
                                      "Pick one.\nA. neon\nB. iron"])
def test_a_bare_letter_is_a_letter_when_the_question_speaks_of_choices(question):
    reason = check_answer_consistency(C(1, question, "B"))
    assert reason == "answer 'B' names option B but the item has no options"
    reason = check_answer_consistency(C(1, question, "B. iron"))
    assert reason == "answer 'B. iron' names option B but the item has no options"
    assert check_answer_consistency(C(1, "What is the symbol of boron?", "B")) is None


@pytest.mark.parametrize("answer, reason", [
    ("E", "answer letter 'E' is out of range for 4 options (A–D)"),
    ("(E)", "answer letter '(E)' is out of range for 4 options (A–D)"),
    ("E. Lyon", "answer 'E. Lyon' names option E, out of range for 4 options (A–D)"),
    ("(F) Lyon", "answer '(F) Lyon' names option F, out of range for 4 options (A–D)"),
    ("Option E", "answer 'Option E' names option E, out of range for 4 options (A–D)"),
    ("E. coli", "answer 'E. coli' is not one of the 4 options"),
])
def test_a_letter_outside_the_options_is_rejected_naming_the_range(answer, reason):
    assert check_answer_consistency(C(1, "Capital of France?", answer, OPTIONS)) == reason


@pytest.mark.parametrize("answer", ["Option B", "The answer is (B)", "(b) Rome", "B) Rome", "B: Rome"])
def test_a_letter_inside_the_options_in_any_form_passes(answer):
    assert check_answer_consistency(C(1, "Capital of Italy?", answer, OPTIONS)) is None


def test_a_lower_case_letter_with_the_wrong_text_is_rejected():
    assert check_answer_consistency(C(1, "Capital of Italy?", "(b) Paris", OPTIONS)) == (
        "answer '(b) Paris' names option B but option B is 'Rome'")


# -- length -----------------------------------------------------------------------------


def test_length_reasons_name_the_length_and_the_bound():
    cfg = GateConfig()
    assert check_length(C(1, "What is 2+2 now?", "4"), cfg) == "question too short (16 < 20 characters)"
    assert check_length(C(1, "x" * 4001, "4"), cfg) == "question too long (4001 > 4000 characters)"
    assert check_length(C(1, "What is two plus two?", "y" * 2001), cfg) == "answer too long (2001 > 2000 characters)"
    strict = GateConfig(min_answer_chars=3)
    assert check_length(C(1, "What is two plus two?", "4"), strict) == "answer too short (1 < 3 characters)"
    assert check_length(C(1, "What is two plus two?", "4"), cfg) is None


def test_length_ignores_surrounding_whitespace():
    assert check_length(C(1, "   What is 2+2 now?\n\n   ", "4")) == "question too short (16 < 20 characters)"


def test_length_bounds_are_configurable():
    c = C(1, "What is 2+2 now?", "4")
    assert run_gates([c])[0].gate == "length"
    assert run_gates([c], cfg=GateConfig(min_question_chars=10))[0].passed


# -- exact and near duplicates ----------------------------------------------------------


def test_exact_duplicate_ignores_case_spacing_punctuation_and_option_order():
    first = mc(1)
    again = mc(2, question=LONG_Q.upper().replace(". ", " .  "), options=list(reversed(LONG_OPTS)))
    results = run_gates([first, again])
    assert results[0] == GateResult(1, True)
    assert (results[1].passed, results[1].gate, results[1].reason) == (False, "exact_duplicate", "exact duplicate of item 1")


def test_exact_duplicate_keeps_symbols_that_change_the_meaning():
    a = C("a", "What is the value of 2+2 in base ten?", "4")
    b = C("b", "What is the value of 2-2 in base ten?", "0")
    assert summarize(run_gates([a, b], cfg=GateConfig(near_dup_threshold=1.0)))["exact_duplicate"] == 0


def test_paraphrase_differing_by_one_word_is_a_near_duplicate_but_another_question_is_not():
    paraphrase = mc(2, question=one_word_changed(LONG_Q, "student", "pupil"))
    different = mc(3, question=OTHER_Q, options=OTHER_OPTS, answer="Mitochondrion")
    results = run_gates([mc(1), paraphrase, different])
    assert results[1].gate == "near_duplicate"
    assert re.fullmatch(r"near-duplicate of item 1 \(Jaccard 0\.\d\d\)", results[1].reason)
    assert results[1].match == 1
    assert results[2].passed


def test_reported_similarity_is_the_exact_jaccard_of_the_shingle_sets():
    paraphrase = one_word_changed(LONG_Q, "calibrated", "digital")
    result = run_gates([mc(1), mc(2, question=paraphrase)])[1]

    def item_shingles(q):
        out = shingles(q, 3)
        for o in LONG_OPTS:
            out |= shingles(o, 3)
        return out

    true = jaccard(item_shingles(LONG_Q), item_shingles(paraphrase))
    assert result.similarity == true
    assert result.reason == f"near-duplicate of item 1 (Jaccard {int(true * 100) / 100:.2f})"
    assert 0.8 <= true < 1.0


def test_near_duplicate_threshold_changes_the_outcome():
    a = C(1, "The mitochondria is the powerhouse of the cell and makes ATP for it", "yes")
    b = C(2, "The mitochondria is the powerhouse of the cell and makes energy for it", "yes")
    assert 0.5 < jaccard(shingles(a.question), shingles(b.question)) < 0.8  # the fixture sits between
    assert run_gates([a, b])[1].passed
    loose = run_gates([a, b], cfg=GateConfig(near_dup_threshold=0.5))[1]
    assert loose.gate == "near_duplicate" and loose.match == 1


def test_later_duplicates_point_at_the_first_kept_item():
    items = [mc(10), mc(11, question=one_word_changed(LONG_Q, "gauge", "meter")),
             mc(12, question=one_word_changed(LONG_Q, "whole", "entire"))]
    results = run_gates(items)
    assert [r.passed for r in results] == [True, False, False]
    assert [r.match for r in results[1:]] == [10, 10]


def test_shingles_of_short_texts_and_jaccard_of_empty_sets():
    assert shingles("Two words", 3) == {"two words"}
    assert shingles("?!", 3) == set()
    assert jaccard(set(), set()) == 0.0
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)


# -- seeds ------------------------------------------------------------------------------


def test_near_duplicate_of_a_seed_names_the_seed_and_its_similarity():
    seeds = [("s-other", OTHER_Q, OTHER_OPTS), ("s-gas", one_word_changed(LONG_Q, "sealed", "closed"), LONG_OPTS)]
    result = run_gates([mc(1)], seeds=seeds)[0]
    assert result.gate == "seed_duplicate"
    assert re.fullmatch(r"near-duplicate of seed s-gas \(Jaccard 0\.\d\d\)", result.reason)
    assert result.match == "s-gas"


def test_exact_copy_of_a_seed_is_reported_as_such_and_seeds_may_be_a_generator():
    seeds = (s for s in [("s1", OTHER_Q), ("s2", LONG_Q, LONG_OPTS)])
    result = run_gates([mc(1)], seeds=seeds)[0]
    assert (result.gate, result.reason, result.similarity) == ("seed_duplicate", "exact duplicate of seed s2", 1.0)


def test_seed_check_can_be_turned_off():
    seeds = [("s2", LONG_Q, LONG_OPTS)]
    assert run_gates([mc(1)], seeds=seeds, cfg=GateConfig(check_seeds=False))[0].passed


def test_an_unrelated_seed_does_not_reject_anything():
    assert run_gates([mc(1)], seeds=[("s1", OTHER_Q, OTHER_OPTS)])[0].passed


# -- copies of seeds as real models write them ----------------------------------------------

# LONG_Q with its two sentences in the other order and clauses moved: the same words, few
# shared 3-word shingles at the seams.
REORDERED_Q = (
    "What happens to the pressure of the gas inside the container? A student, keeping the amount "
    "of gas fixed and measuring the pressure with a calibrated gauge throughout the whole experiment, "
    "heats from 300 kelvin to 600 kelvin a sealed rigid container of an ideal gas."
)
SEEDS = [("s-gas", LONG_Q, LONG_OPTS), ("s-cell", OTHER_Q, None)]


def _inline(question, options):
    return question + "\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))


PLANTED = {
    # key: (item, expected reason or None when the item must pass)
    "copy-with-options": (mc("copy-with-options"), "exact duplicate of seed s-gas"),
    "copy-dropping-options": (C("copy-dropping-options", LONG_Q, "It doubles"),
                              r"copies the question of seed s-gas \(options aside\)"),
    "copy-adding-options": (C("copy-adding-options", OTHER_Q, "Mitochondrion", OTHER_OPTS),
                            r"copies the question of seed s-cell \(options aside\)"),
    "copy-new-options": (C("copy-new-options", LONG_Q, "2 times", ["2 times", "4 times", "half"]),
                         r"copies the question of seed s-gas \(options aside\)"),
    "trailing-punctuation": (C("trailing-punctuation", LONG_Q.rstrip("?") + ".", "It doubles"),
                             r"copies the question of seed s-gas \(options aside\)"),
    "no-trailing-punctuation": (C("no-trailing-punctuation", OTHER_Q.rstrip("?"), "Mitochondrion"),
                                "exact duplicate of seed s-cell"),
    "word-order": (C("word-order", REORDERED_Q, "It doubles", LONG_OPTS), r"the words of seed s-gas's question"
                   r" in another order \(word Jaccard (0\.9\d|1\.00)\)"),
    "word-order-no-options": (C("word-order-no-options", REORDERED_Q + "!", "It doubles"),
                              r"the words of seed s-gas's question in another order .*"),
    "one-word-no-options": (C("one-word-no-options", one_word_changed(LONG_Q, "sealed", "closed"), "It doubles"),
                            r"near-duplicate of the question of seed s-gas, options aside \(Jaccard 0\.\d\d\)"),
    "inline-options-letter": (C("inline-options-letter", _inline(LONG_Q, LONG_OPTS), "C. It doubles"),
                              "answer 'C. It doubles' names option C but the item has no options"),
    "fresh": (C("fresh", "A cyclist rides 12 km north and then 5 km east; how far is she from her start in km?",
                "13"), None),
    "same-topic": (C("same-topic", "Why does the pressure of a gas in a rigid container rise when it is heated, "
                     "in terms of molecular collisions with the walls?", "Faster molecules hit the walls harder "
                     "and more often"), None),
}


@pytest.mark.parametrize("key", list(PLANTED))
def test_a_planted_seed_copy_is_rejected_with_the_reason_that_fits(key):
    item, expected = PLANTED[key]
    (r,) = run_gates([item], seeds=SEEDS)
    if expected is None:
        assert r.passed, r.reason
    else:
        assert not r.passed and re.fullmatch(expected, r.reason), r.reason
        assert r.gate == ("answer" if key == "inline-options-letter" else "seed_duplicate")
        assert r.match == (None if key == "inline-options-letter" else ("s-cell" if "cell" in r.reason else "s-gas"))


def test_planted_copies_in_one_run_are_all_caught_by_some_gate():
    """Together the copies also duplicate each other: each is rejected once, by the first gate it fails."""
    items = [item for item, _ in PLANTED.values()]
    results = {r.key: r for r in run_gates(items, seeds=SEEDS)}
    for key, (_, expected) in PLANTED.items():
        r = results[key]
        if expected is None:
            assert r.passed, (key, r.reason)
        else:
            assert not r.passed, key
    counts = summarize(results.values())
    assert counts["answer"] == 1 and counts["seed_duplicate"] >= 2 and sum(counts.values()) == 10


def test_seed_copies_are_found_whichever_copy_came_first():
    """The copies themselves are near-duplicates of each other: only the first survives the
    item gates, and it is still rejected as a seed copy."""
    items = [C(1, LONG_Q, "It doubles"), C(2, LONG_Q + "?", "It doubles"), mc(3)]
    results = run_gates(items, seeds=SEEDS)
    assert [r.gate for r in results] == ["seed_duplicate", "exact_duplicate", "near_duplicate"]
    assert results[0].reason == "copies the question of seed s-gas (options aside)"


def test_an_exact_copy_wins_over_a_near_one_and_the_nearest_over_the_first():
    seeds = [("s-near", one_word_changed(LONG_Q, "sealed", "closed"), LONG_OPTS), ("s-exact", LONG_Q, LONG_OPTS),
             ("s-nearer", LONG_Q.replace("?", " now?"), LONG_OPTS)]
    assert run_gates([mc(1)], seeds=seeds)[0].match == "s-exact"
    r = run_gates([mc(1)], seeds=[seeds[0], seeds[2]])[0]
    assert r.match == "s-nearer" and r.reason.startswith("near-duplicate of seed s-nearer")
    # the same evidence twice: the earlier seed is named
    r = run_gates([mc(1)], seeds=[seeds[0], ("s-again", seeds[0][1], LONG_OPTS)])[0]
    assert r.match == "s-near"


def test_question_alone_and_word_order_use_their_thresholds():
    seed = [("s-gas", LONG_Q, LONG_OPTS)]
    item = C(1, one_word_changed(LONG_Q, "sealed", "closed"), "It doubles")
    sim = jaccard(shingles(item.question), shingles(LONG_Q))
    assert 0.8 <= sim < 0.9
    assert not run_gates([item], seeds=seed)[0].passed
    # above the shingle Jaccard the question-alone view lets it through; the word bag (one
    # word of ~50 differs: Jaccard ~0.96) is judged at (1 + 0.95) / 2 = 0.975
    assert run_gates([item], seeds=seed, cfg=GateConfig(near_dup_threshold=0.95))[0].passed
    assert reorder_threshold(GateConfig(near_dup_threshold=0.95)) == pytest.approx(0.975)
    assert seed_copy(item.question, None, LONG_Q, LONG_OPTS, GateConfig(near_dup_threshold=0.95)) is None
    r = seed_copy(REORDERED_Q, None, LONG_Q, LONG_OPTS)
    assert r.how == "reordered" and r.similarity > 0.95
    assert jaccard(shingles(REORDERED_Q), shingles(LONG_Q)) < 0.8  # shingles alone miss it


def test_a_seed_without_shared_words_is_skipped_before_hashing_and_odd_seeds_are_ignored():
    items = [mc(1), C(2, OTHER_Q, "Mitochondrion", OTHER_OPTS)]
    seeds = [("s-none", None, None), ("s-str-options", OTHER_Q, "Ribosome, Mitochondrion"), ("s-blank", "", None)]
    results = run_gates(items, seeds=seeds)
    assert results[0].passed
    assert results[1].reason == "copies the question of seed s-str-options (options aside)"
    with pytest.raises(ValueError, match="a seed is"):
        run_gates(items, seeds=[("only-id",)])


def test_the_indexed_gate_agrees_with_the_pairwise_rule():
    """run_gates finds through MinHash LSH what seed_copy finds pair by pair."""
    rng = random.Random(7)
    words = ("gas pressure volume heat kelvin container student measures rises falls doubles constant "
             "ideal sealed rigid amount fixed gauge experiment inside what happens").split()
    seeds = [(f"s{k}", " ".join(rng.choice(words) for _ in range(rng.randint(8, 30))) + "?",
              [f"opt {k} {j}" for j in range(4)] if k % 2 else None) for k in range(60)]
    items = []
    for k in range(120):
        sid, q, opts = seeds[rng.randrange(len(seeds))]
        toks = q.split()
        how = k % 4
        if how == 0:
            toks[rng.randrange(len(toks))] = rng.choice(words)
        elif how == 1:
            rng.shuffle(toks)
        elif how == 2:
            toks = toks[: max(3, len(toks) * 2 // 3)]
        opts = opts if how == 3 else None
        items.append(C(k, " ".join(toks), opts[0] if opts else "x", opts))
    cfg = GateConfig(min_question_chars=1, near_dup_threshold=0.7)
    results = run_gates(items, seeds=seeds, cfg=cfg)
    checked = positives = missed = agreed = 0
    for item, r in zip(items, results):
        if r.gate not in (None, "seed_duplicate"):
            continue
        pairwise = [c for s in seeds if (c := seed_copy(item.question, item.options, s[1], s[2], cfg, s[0]))]
        checked += 1
        positives += bool(pairwise)
        if r.gate == "seed_duplicate":
            # never a copy the rule does not see; mostly the best evidence there is (LSH may
            # miss the best view of a pair and find a lesser one)
            assert r.match in {c.seed_id for c in pairwise}, item
            assert r.similarity >= cfg.near_dup_threshold
            best = min(pairwise, key=lambda c: c.rank())
            agreed += (r.match, r.reason) == (best.seed_id, best.reason()) or r.similarity == best.similarity
        else:
            missed += bool(pairwise)  # LSH is approximate: a pair near the threshold may be missed
    assert checked > 40 and positives > 10 and missed <= 0.05 * positives
    assert agreed >= 0.9 * (positives - missed)


# -- contamination ----------------------------------------------------------------------

REF_LINE = (
    "In a small village a baker sells loaves of rye bread every morning to the farmers "
    "who walk past his shop on their way to the fields"
)


def _reference_file(tmp_path):
    path = tmp_path / "bench.jsonl"
    rows = [{"question": "What is the boiling point of water at sea level in Celsius?"}, {"prompt": REF_LINE}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _with_ngram(n):
    words = REF_LINE.split()[3 : 3 + n]
    return "Consider the following story carefully: " + " ".join(words) + ". How many loaves remain?"


def test_a_copied_13_gram_is_contamination_naming_the_reference_line(tmp_path):
    ref = load_reference(_reference_file(tmp_path))
    result = run_gates([C(1, _with_ngram(13), "Seven")], reference=ref)[0]
    assert (result.gate, result.reason, result.match) == (
        "contamination", "contaminated: shares a 13-gram with reference line 2", 2)


def test_a_copied_12_gram_is_not_contamination(tmp_path):
    ref = load_reference(_reference_file(tmp_path))
    assert run_gates([C(1, _with_ngram(12), "Seven")], reference=ref)[0].passed


def test_contamination_ignores_case_and_punctuation(tmp_path):
    ref = load_reference(_reference_file(tmp_path))
    shouted = _with_ngram(13).upper().replace(" ", " , ")
    assert run_gates([C(1, shouted, "Seven")], reference=ref)[0].gate == "contamination"


def test_plain_text_reference_counts_lines_from_one_including_blanks(tmp_path):
    path = tmp_path / "bench.txt"
    path.write_text("first question here\n\n" + REF_LINE + "\n", encoding="utf-8")
    ref = load_reference(path)
    assert ref.items == 2
    assert ref.match(_with_ngram(13)) == 3


def test_reference_accepts_problem_and_input_keys_and_keeps_bad_rows(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text(
        json.dumps({"problem": "short one"}) + "\n" + "{not json\n" + json.dumps({"answer": "x"}) + "\n"
        + json.dumps({"input": REF_LINE}) + "\n",
        encoding="utf-8",
    )
    ref = load_reference(path)
    assert ref.items == 2
    assert [b.line for b in ref.bad_rows] == [2, 3]
    assert ref.bad_rows[1].reason == "no question, prompt, problem, input field"
    assert ref.match(_with_ngram(13)) == 4


def test_reference_from_uploaded_bytes_uses_the_given_name():
    ref = load_reference(REF_LINE.encode(), name="upload.txt")
    assert (ref.name, ref.items) == ("upload.txt", 1)
    with pytest.raises(InputError) as err:
        load_reference(b"", name="upload.txt")
    assert str(err.value) == "upload.txt is empty"


def test_empty_reference_file_names_the_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n")
    with pytest.raises(InputError) as err:
        load_reference(path)
    assert str(err.value) == f"{path} is empty"


def test_binary_reference_file_names_the_file_and_the_byte(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_bytes(b"PK\x03\x04\x00\x00binary zip")
    with pytest.raises(InputError) as err:
        load_reference(path)
    assert str(err.value) == f"{path} is not a text file (binary content at byte 4)"


def test_missing_reference_file_names_the_file(tmp_path):
    path = tmp_path / "nope.jsonl"
    with pytest.raises(InputError) as err:
        load_reference(path)
    assert str(err.value) == f"{path}: no such file"


def test_jsonl_reference_without_any_question_field_is_refused(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"text": "a"}) + "\n" + json.dumps({"label": 1}) + "\n")
    with pytest.raises(InputError) as err:
        load_reference(path)
    assert str(err.value) == f"{path} has no questions (each JSON line needs a question or prompt or problem or input field)"


def test_reference_ngram_must_match_the_config(tmp_path):
    ref = load_reference(_reference_file(tmp_path), decontam_ngram=8)
    with pytest.raises(ConfigError, match="indexed with 8-grams but decontam_ngram is 13"):
        run_gates([C(1, _with_ngram(13), "Seven")], reference=ref)
    cfg = GateConfig(decontam_ngram=8)
    assert run_gates([C(1, _with_ngram(8), "Seven")], reference=ref, cfg=cfg)[0].gate == "contamination"


def test_mmlu_question_copied_into_an_item_is_contamination(mmlu_path):
    started = time.perf_counter()
    ref = load_reference(mmlu_path)
    indexed_in = time.perf_counter() - started
    rows = [json.loads(line) for line in mmlu_path.read_text(encoding="utf-8").splitlines()]
    copied = next(r["question"] for r in rows[5000:] if len(r["question"].split()) >= 30)
    item = C("copy", "Answer the following question. " + copied, "the second statement")
    fresh = C("fresh", "A cyclist rides 12 km north and then 5 km east; how far is she from her start in km?", "13")
    results = run_gates([item, fresh], reference=ref)
    assert results[0].gate == "contamination"
    assert results[0].reason.startswith("contaminated: shares a 13-gram with reference line ")
    assert shared_ngram(rows[results[0].match - 1]["question"], copied, 13)
    assert results[1].passed
    assert ref.items == len(rows)
    assert indexed_in < 30  # generous: a sanity bound, not a benchmark


# -- order, summary, scale --------------------------------------------------------------


def test_each_item_is_rejected_by_the_first_gate_it_fails(tmp_path):
    ref = load_reference(_reference_file(tmp_path))
    items = [
        C(1, "Short?", "Lyon", OPTIONS),  # schema ok, answer fails before length
        C(2, _with_ngram(13), "Seven"),  # contaminated
        C(3, _with_ngram(13), "Seven"),  # contaminated too, not an exact duplicate of 2
        C(4, None, "x"),
    ]
    gates = [r.gate for r in run_gates(items, reference=ref)]
    assert gates == ["answer", "contamination", "contamination", "schema"]


def test_summarize_counts_rejections_per_gate_in_gate_order():
    results = [
        GateResult(1, True),
        GateResult(2, False, "question is missing", "schema"),
        GateResult(3, False, "exact duplicate of item 1", "exact_duplicate"),
        GateResult(4, False, "exact duplicate of item 1", "exact_duplicate"),
    ]
    summary = summarize(results)
    assert list(summary) == list(GATES)
    assert summary["schema"] == 1 and summary["exact_duplicate"] == 2 and sum(summary.values()) == 3


def test_duplicate_candidate_keys_are_refused():
    with pytest.raises(ValueError, match="candidate key 1 appears more than once"):
        run_gates([mc(1), mc(1, question=OTHER_Q)])


def test_two_thousand_candidates_give_exact_counts_and_the_same_answer_twice():
    rng = random.Random(7)
    vocab = [f"term{i}" for i in range(400)]
    base = [" ".join(rng.choice(vocab) for _ in range(30)) + "?" for _ in range(1800)]
    items = [C(i, q, "an answer") for i, q in enumerate(base)]
    for j in range(100):  # exact copies, shouted
        items.append(C(1800 + j, base[j].upper(), "another answer"))
    for j in range(100):  # last word changed: 27 of 29 shingles shared
        words = base[200 + j].rstrip("?").split()
        items.append(C(1900 + j, " ".join(words[:-1] + ["zzz"]) + "?", "an answer"))
    seeds = [(f"seed{j}", base[500 + j]) for j in range(50)] + [(f"new{j}", base[0][::-1]) for j in range(50)]

    results = run_gates(items, seeds=seeds)
    summary = summarize(results)
    assert summary == {"schema": 0, "answer": 0, "length": 0, "contamination": 0,
                       "exact_duplicate": 100, "near_duplicate": 100, "seed_duplicate": 50}
    assert all(r.match == r.key - 1800 for r in results[1800:1900])
    assert all(r.match == r.key - 1700 for r in results[1900:])
    assert [r.match for r in results[500:550]] == [f"seed{j}" for j in range(50)]
    assert run_gates(items, seeds=seeds) == results


# -- a stored run -----------------------------------------------------------------------


def _insert_item(store, run_id, slot, status, question, answer, options=None, gate_reason=None):
    now = time.time() - 100
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO items (run_id, slot, status, question, options, answer, gate_reason, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, slot, status, question, json.dumps(options) if options is not None else None,
             answer, gate_reason, now, now),
        )
        return cur.lastrowid


def test_apply_gates_rejects_items_of_a_stored_run_with_their_reasons(tmp_path):
    store = Store(tmp_path / "t.db")
    try:
        seed_q = one_word_changed(OTHER_Q, "growth", "repair")
        store.seeds.add([Seed(id="seed-cell", question=seed_q, answer="Mitochondrion", options=tuple(OTHER_OPTS))])
        run = store.runs.create("synthesis", {})
        other_run = store.runs.create("synthesis", {})
        good = _insert_item(store, run, "p1/0", "generated", LONG_Q, "It doubles", LONG_OPTS)
        copy = _insert_item(store, run, "p1/1", "generated", LONG_Q.lower(), "C", LONG_OPTS)
        wrong = _insert_item(store, run, "p2/0", "generated", "Which city is the capital of France?", "Lyon", OPTIONS)
        seedish = _insert_item(store, run, "p3/0", "generated", OTHER_Q, "Mitochondrion", OTHER_OPTS)
        old = _insert_item(store, run, "p4/0", "rejected", "Which city is the capital of Italy?", "Rome", OPTIONS,
                           gate_reason="rejected by a curator")
        failed = _insert_item(store, run, "p5/0", "failed", None, None)
        elsewhere = _insert_item(store, other_run, "p1/0", "generated", LONG_Q, "It doubles", LONG_OPTS)

        summary = apply_gates(store, run)

        rows = {r["id"]: r for r in store.query("SELECT id, status, gate_reason, updated_at FROM items")}
        assert (rows[good]["status"], rows[good]["gate_reason"]) == ("generated", None)
        assert (rows[copy]["status"], rows[copy]["gate_reason"]) == ("rejected", f"exact duplicate of item {good}")
        assert (rows[wrong]["status"], rows[wrong]["gate_reason"]) == ("rejected", "answer 'Lyon' is not one of the 4 options")
        assert rows[seedish]["status"] == "rejected"
        assert re.fullmatch(r"near-duplicate of seed seed-cell \(Jaccard 0\.\d\d\)", rows[seedish]["gate_reason"])
        assert (rows[old]["status"], rows[old]["gate_reason"]) == ("rejected", "rejected by a curator")
        assert (rows[failed]["status"], rows[failed]["gate_reason"]) == ("failed", None)
        assert (rows[elsewhere]["status"], rows[elsewhere]["gate_reason"]) == ("generated", None)
        assert rows[copy]["updated_at"] > rows[good]["updated_at"]
        assert summary["exact_duplicate"] == 1 and summary["answer"] == 1 and summary["seed_duplicate"] == 1
        assert sum(summary.values()) == 3

        assert sum(apply_gates(store, run).values()) == 0  # the rejected are not gated again
    finally:
        store.close()


def test_apply_gates_checks_against_a_reference_and_reads_bad_option_json(tmp_path):
    store = Store(tmp_path / "t.db")
    try:
        run = store.runs.create("synthesis", {})
        _insert_item(store, run, "a", "generated", _with_ngram(13), "Seven")
        with store.transaction() as conn:
            now = time.time()
            conn.execute(
                "INSERT INTO items (run_id, slot, status, question, options, answer, created_at, updated_at)"
                " VALUES (?, 'b', 'generated', 'Which of these is a prime number?', '[\"2\", ', '2', ?, ?)",
                (run, now, now),
            )
        ref = load_reference(_reference_file(tmp_path))
        summary = apply_gates(store, run, reference=ref)
        reasons = dict(store.query("SELECT slot, gate_reason FROM items"))
        assert reasons == {"a": "contaminated: shares a 13-gram with reference line 2",
                           "b": "options are not a list (got str)"}
        assert (summary["contamination"], summary["schema"]) == (1, 1)
    finally:
        store.close()


def test_apply_gates_on_a_missing_run_says_so(tmp_path):
    store = Store(tmp_path / "t.db")
    try:
        with pytest.raises(NotFoundError, match="no run 99"):
            apply_gates(store, 99)
    finally:
        store.close()


def test_reference_from_texts_reports_one_based_positions():
    ref = Reference.from_texts(["nothing here", REF_LINE], decontam_ngram=13)
    assert ref.match(_with_ngram(13)) == 2 and ref.match(_with_ngram(12)) is None


# -- text helpers and the stored run ----------------------------------------------------------


def test_short_keeps_sixty_characters_and_marks_a_cut():
    from linkqa_core.quality.text import short

    assert short("x" * 60) == "x" * 60
    assert short("x" * 61) == "x" * 59 + "…"
    assert short("a  b\n c", 5) == "a b c"
    assert short("abcdef", 4) == "abc…"


def test_item_shingles_are_the_union_of_question_and_each_option_at_the_given_size():
    from linkqa_core.quality.text import item_shingles

    assert item_shingles("a b c", ["d e f", "g h"], 2) == {"a b", "b c", "d e", "e f", "g h"}
    assert item_shingles("a b c d", None, 3) == {"a b c", "b c d"}


def test_contamination_reads_question_and_options_as_one_text_across_the_seam():
    ref = Reference.from_texts(["what is the capital city of france paris"], decontam_ngram=8)
    item = C(1, "Tell me: what is the capital city of France?", "Paris", ["Paris", "Rome"])
    r = run_gates([item], reference=ref, cfg=GateConfig(decontam_ngram=8))[0]
    assert r.gate == "contamination" and r.match == 1


def test_apply_gates_uses_the_given_settings(tmp_path):
    with Store(tmp_path / "g.db") as store:
        run_id = store.runs.create("sample", {"seed": 0}, name="settings")
        store.items.insert([Item("What is the boiling point of water at sea level in kelvin?", "373", slot="p0:0",
                                 run_id=run_id, status="generated")])
        assert apply_gates(store, run_id)["length"] == 0
        counts = apply_gates(store, run_id, cfg=GateConfig(min_question_chars=100))
        assert counts["length"] == 1
        (item,) = store.items.of_run(run_id)
        assert (item.status, item.gate_reason) == ("rejected", "question too short (58 < 100 characters)")


def test_config_refuses_a_true_or_text_threshold_and_checks_every_integer_knob():
    for bad in (True, "0.8"):
        with pytest.raises(ConfigError, match="near_dup_threshold must be a number"):
            GateConfig(near_dup_threshold=bad)
    for value in (0, 11):
        with pytest.raises(ConfigError) as err:
            GateConfig(shingle_size=value)
        assert str(err.value) == f"shingle_size must be a whole number from 1 to 10 (got {value})"
    with pytest.raises(ConfigError) as err:
        GateConfig(min_answer_chars=0, max_answer_chars=0)
    assert str(err.value) == "max_answer_chars must be a whole number of at least 1 (got 0)"
    # every bound itself is allowed
    cfg = GateConfig(shingle_size=10, num_perm=16, decontam_ngram=100, min_answer_chars=1, max_answer_chars=1,
                     near_dup_threshold=1)
    assert (cfg.shingle_size, cfg.max_answer_chars) == (10, 1)
    assert GateConfig(shingle_size=1, num_perm=1024, decontam_ngram=3).num_perm == 1024


def test_a_letter_answer_message_names_the_form_written():
    from linkqa_core.quality.checks import letter_answer

    assert letter_answer("D. 4 C", "What is the charge?") == "answer 'D. 4 C' names option D but the item has no options"
    assert letter_answer("(E).", "q", 4) == "answer '(E).' names option E, out of range for 4 options (A–D)"
    assert letter_answer("(E)", "q", 4) == "answer letter '(E)' is out of range for 4 options (A–D)"
    assert letter_answer("d) four", "q") is None and letter_answer("answer: d", "q") is None
    assert letter_answer("(d) four", "q") == "answer '(d) four' names option D but the item has no options"


def test_seed_copy_names_each_kind_with_its_measure():
    opts = ["It halves", "It stays the same", "It doubles", "It quadruples"]
    assert (seed_copy(LONG_Q, opts, LONG_Q, opts).how, seed_copy(LONG_Q, opts, LONG_Q, opts).similarity) == (
        "exact", 1.0)
    other = seed_copy(LONG_Q, opts, LONG_Q, ["a", "b"])
    assert (other.how, other.similarity) == ("exact question", 1.0)
    assert seed_copy(LONG_Q, None, LONG_Q, opts).how == "exact question"
    # long options carry the pair over the threshold that the question alone does not reach
    long_opts = [" ".join(f"w{k}{j}" for j in range(30)) for k in range(4)]
    changed = " ".join(w if k % 8 else "zz" for k, w in enumerate(LONG_Q.split()))
    near = seed_copy(changed, long_opts, LONG_Q, long_opts)
    assert near.how == "near" and jaccard(shingles(changed), shingles(LONG_Q)) < 0.8
    # a Jaccard exactly at the threshold counts
    edge = seed_copy("a b c d e f g", None, "a b c d e f", None)
    assert (edge.how, edge.similarity) == ("near", 0.8)


def test_summarize_counts_only_rejections_and_any_gate_name():
    assert summarize([GateResult(1, True)]) == dict.fromkeys(GATES, 0)
    counts = summarize([GateResult(1, False, "odd", "custom"), GateResult(2, False, "odd", "custom")])
    assert counts["custom"] == 2 and list(counts)[: len(GATES)] == list(GATES)


def test_shingles_default_to_three_words_and_similarities_round_down():
    from linkqa_core.quality.text import fmt_sim

    assert shingles("a b c d e") == {"a b c", "b c d", "c d e"}
    assert (fmt_sim(0.29), fmt_sim(0.7999), fmt_sim(1.0)) == ("0.29", "0.79", "1.00")


def test_a_seed_that_is_neither_pair_nor_triple_is_refused_with_its_shape():
    with pytest.raises(ValueError) as err:
        run_gates([mc(1)], seeds=[("only-id",)])
    assert str(err.value) == "a seed is (seed_id, question) or (seed_id, question, options)"


@pytest.mark.parametrize("answer", ["d: four", "d. Four", "answer: (d)", "answer: d"])
def test_lower_case_letters_in_label_forms_are_prose(answer):
    from linkqa_core.quality.checks import letter_answer

    assert letter_answer(answer, "Which of the following is it?", 0) is None


def test_abbreviations_are_letters_only_when_written_in_capitals():
    from linkqa_core.quality.checks import letter_answer

    assert letter_answer("e. coli", "Which of the following lives in the gut?", 0) is None
    assert letter_answer("E. coli", "Which of the following lives in the gut?", 0) == (
        "answer 'E. coli' names option E but the item has no options")


def test_a_bare_letter_beyond_a_single_option_is_out_of_range():
    from linkqa_core.quality.checks import letter_answer

    assert letter_answer("B", "q", 1) == "answer letter 'B' is out of range for 1 options (A–A)"


def test_a_seed_exactly_at_the_threshold_is_not_skipped_before_hashing():
    # the seed's 5 shingles: 4 are the item's, so 4 >= 0.8 * 5 passes the prefilter exactly,
    # and the Jaccard 4 / 5 meets the threshold exactly
    item = C(1, "a b c d e f", "x")
    (r,) = run_gates([item], seeds=[("s-edge", "a b c d e f g")], cfg=GateConfig(min_question_chars=1))
    assert (r.gate, r.match, r.similarity) == ("seed_duplicate", "s-edge", 0.8)


def test_an_exact_question_copy_has_similarity_one():
    (r,) = run_gates([C(1, LONG_Q, "It doubles")], seeds=SEEDS)
    assert (r.reason, r.similarity) == ("copies the question of seed s-gas (options aside)", 1.0)


def test_minhash_permutations_are_fixed_odd_multipliers_and_offsets():
    import numpy as np

    from linkqa_core.quality.minhash import _permutations, signatures

    a, b = _permutations(23)  # a size no other test uses: made here, not taken from the cache
    gen = np.random.RandomState(1)
    expect_a = gen.randint(0, 1 << 62, size=23, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    expect_b = gen.randint(0, 1 << 62, size=23, dtype=np.uint64)
    assert a.dtype == b.dtype == np.uint64 and a.shape == b.shape == (23,)
    assert (a == expect_a).all() and (b == expect_b).all() and (a % 2 == 1).all()
    assert _permutations(23)[0] is a  # made once
    sig = signatures([{"x"}, {"x", "y"}], 23)
    assert sig.shape == (2, 23) and sig.dtype == np.uint64
    assert (sig[1] <= sig[0]).all() and (sig < (1 << 32)).all()
    with pytest.raises(ValueError) as err:
        signatures([{"x"}, set()], 23)
    assert str(err.value) == "cannot sign an empty set"
    # a set's signature does not depend on where it sits in the batch
    rows = signatures([{"a"}, {"b", "c"}, {"a"}, {"c", "b"}], 23)
    assert (rows[0] == rows[2]).all() and (rows[1] == rows[3]).all() and not (rows[0] == rows[1]).all()

"""Offline items a curator can keep: the linked-questions template, its rewrites, and the strict reader's checklist."""

import json
import random
import re

import pytest

from linkqa_core.curation.export import item_records
from linkqa_core.curation.review import set_status, list_items
from linkqa_core.difficulty.rewrite import OfflineRewriter, Rewrite, RewriteContext
from linkqa_core.graph.sampling import sample
from linkqa_core.graph.walks import WalkParams
from linkqa_core.quality.checks import check_answer_consistency, check_schema
from linkqa_core.quality.degenerate import PATTERNS, count_degenerate, findings
from linkqa_core.quality.gates import run_gates
from linkqa_core.quality.text import norm_answer
from linkqa_core.records import Bundle, Item, Path, Seed
from linkqa_core.synthesis.compose import Ask
from linkqa_core.synthesis.offline import (
    CONSTRAINT_NOTE,
    MAX_QUESTION_CHARS,
    OfflineComposer,
    Question,
    kps_named,
    linked_item,
    quoted_questions,
)
from linkqa_core.synthesis.run import SynthesisConfig, bundles_of, synthesize
from linkqa_core.tasks import ReplyError

ALPHA = Seed("s-alpha", "When a nucleus of uranium-238 emits an alpha particle, left behind is", "thorium-234",
             ("thorium-234", "radium-214", "uranium-234", "plutonium-238"))
BLOOD = Seed("s-blood", "Which cells in the blood do not have a nucleus?", "Erythrocyte",
             ("Basophil", "Erythrocyte", "Lymphocyte", "Monocyte"))
BETA = Seed("s-beta", "An alpha particle is the nucleus of which atom, stripped of its electrons?", "helium",
            ("hydrogen", "helium", "lithium", "carbon"))
OPEN = Seed("s-open", "How many protons does the nucleus of a carbon atom hold?", "6")
# How an item was made, as the old composer and rewriter wrote it into the training text.
META = re.compile(r"offline|without a model|linked seed|\bseeds? [0-9a-f]{6}|\b[0-9a-f]{16}\b|two-part question"
                  r"|\bpart \d+:|knowledge point", re.I)


def bundle(*seeds, kps=("alpha particle", "nucleus"), index=0):
    return Bundle(Path(index, tuple(kps), "Physics", tuple(s.id for s in seeds)), tuple(seeds))


def compose(*seeds, n=2, mc=True, **kw):
    return OfflineComposer(1).run(Ask(bundle(*seeds, **kw), n, 3.0, mc))


def sub_answers(option):
    return dict(re.findall(r"\((i{1,3}|iv)\) (.*?)(?=; \((?:i{1,3}|iv)\) |$)", option))


@pytest.fixture
def sample_bundles(sample_store):
    run_id = sample(sample_store, WalkParams(), 150, seed=5, save=True).run_id
    return bundles_of(sample_store, sample_store.runs.paths(run_id))


# -- the template ------------------------------------------------------------------------


def test_two_linked_seeds_become_one_question_with_each_seed_asked_once():
    (item,) = compose(BLOOD, ALPHA, n=1)
    assert item.question.startswith("Both questions below turn on nucleus.")
    assert item.question.count(BLOOD.question) == 1 and item.question.count(ALPHA.question) == 1
    assert item.question.rstrip().endswith("Which choice gives the correct answer to both (i) and (ii)?")
    assert "   B. Erythrocyte" in item.question  # each seed keeps its own options
    assert item.answer == "(i) Erythrocyte; (ii) thorium-234"
    assert item.options.count(item.answer) == 1
    assert item.solution.splitlines() == [
        "(i) The answer is B, Erythrocyte.", "(ii) The answer is A, thorium-234.",
        "Only one choice is right on every question: (i) Erythrocyte; (ii) thorium-234."]
    assert item.kps_used == ("nucleus",)
    assert check_schema(item) is None and check_answer_consistency(item) is None


def test_every_wrong_choice_is_wrong_somewhere_and_each_sub_question_must_be_solved():
    for seed in range(20):
        item = linked_item([Question.of(BLOOD), Question.of(ALPHA), Question.of(BETA)], ["nucleus"],
                           random.Random(seed))
        right = sub_answers(item.answer)
        assert len(item.options) == len(set(map(norm_answer, item.options))) >= 4
        wrong_only_at = set()
        for option in item.options:
            parts = sub_answers(option)
            assert parts.keys() == right.keys()
            wrong = [k for k in parts if parts[k] != right[k]]
            assert (option == item.answer) == (not wrong)
            if len(wrong) == 1:
                wrong_only_at.add(wrong[0])
        # a choice right everywhere but (k), for every k: no sub-question can be skipped
        assert wrong_only_at == {"i", "ii", "iii"}


def test_no_item_asks_one_seed_twice_and_no_pair_is_asked_twice():
    items = compose(BLOOD, ALPHA, BETA, n=5)
    assert len(items) == 3  # three seeds give three pairs
    pairs = [tuple(s.id for s in quoted_questions(it, [BLOOD, ALPHA, BETA])) for it in items]
    assert all(len(p) == 2 and p[0] != p[1] for p in pairs)
    assert len({frozenset(p) for p in pairs}) == 3
    # pairs sharing a path KP come first: BETA and ALPHA both name both KPs
    assert set(pairs[0]) == {"s-alpha", "s-beta"}


def test_a_bundle_of_one_seed_is_refused_with_a_reason():
    with pytest.raises(ReplyError, match="the bundle has 1 seed: an offline item asks two linked seeds together"):
        compose(ALPHA)
    with pytest.raises(ReplyError, match="has 1 seed"):
        compose(ALPHA, ALPHA)  # the same seed twice is one seed


def test_seeds_asking_the_same_question_are_not_paired():
    twin = Seed("s-twin", ALPHA.question + "?", "thorium-234", ("thorium-234", "radon-222"))
    with pytest.raises(ReplyError, match="they ask the same question"):
        compose(ALPHA, twin)
    items = compose(ALPHA, twin, BLOOD, n=3)
    assert len(items) == 2 and all(len(quoted_questions(i, [ALPHA, twin, BLOOD])) == 2 for i in items)


def test_pairs_too_long_for_the_length_gate_are_skipped():
    long_seed = Seed("s-long", "A long passage. " * 300 + "What is described?", "x", ("x", "y"))
    items = compose(long_seed, ALPHA, BLOOD, n=3)
    assert len(items) == 1 and long_seed.question not in items[0].question
    assert all(len(i.question) <= MAX_QUESTION_CHARS for i in items)


def test_an_item_that_would_read_as_a_copy_of_one_seed_is_not_composed():
    passage = Seed("s-passage", " ".join(f"word{i}" for i in range(400)) + " Which word comes last?",
                   "word399", ("word399", "word0"))
    short = Seed("s-short", "Is it so?", "yes", ("yes", "no"))
    with pytest.raises(ReplyError):
        compose(passage, short, kps=("word1",))


def test_an_open_item_when_asked_for_or_when_a_seed_has_no_wrong_option():
    (item,) = compose(BLOOD, OPEN, n=1)
    assert item.options is None and item.answer == "(i) Erythrocyte; (ii) 6"
    assert item.question.rstrip().endswith("Answer both (i) and (ii).")
    (item,) = compose(BLOOD, ALPHA, n=1, mc=False)
    assert item.options is None and "Which choice" not in item.question
    assert check_answer_consistency(item) is None  # "(i) ..." is not an option letter


def test_the_header_names_the_shared_kps_or_those_either_seed_names():
    assert kps_named(["Alpha Particle", "nucleus", "quark"], "an alpha particles' nucleus") == [
        "Alpha Particle", "nucleus"]
    (item,) = compose(BLOOD, OPEN, n=1, kps=("erythrocyte", "carbon atom"))
    assert item.question.startswith("Both questions below draw on erythrocyte and carbon atom.")
    (item,) = compose(BLOOD, OPEN, n=1, kps=("quark",))
    assert item.question.startswith("Both questions below draw on quark.")


def test_composed_items_hold_no_meta_text_in_any_exported_field(sample_bundles):
    composer = OfflineComposer(1)
    checked = 0
    for b in sample_bundles:
        try:
            items = composer.run(Ask(b, 2, 3.0, True))
        except ReplyError:
            continue
        for it in items:
            for text in (it.question, it.answer, it.solution, *(it.options or ())):
                assert not META.search(text), text
            asked = quoted_questions(it, list(b.seeds))
            assert len(asked) == 2 and asked[0].id != asked[1].id
            checked += 1
    assert checked > 150


def test_a_strict_reader_rejects_few_composed_items_and_none_for_meta_or_repeats(sample_bundles):
    composer = OfflineComposer(1)
    pairs = []
    for b in sample_bundles:
        try:
            pairs += [(it, b.seeds) for it in composer.run(Ask(b, 2, 3.0, True))]
        except ReplyError:
            pass
    counts = count_degenerate(pairs)
    assert counts.items == len(pairs) > 150
    for pattern in ("repeated_question", "meta_text", "letter_answer", "not_one_correct", "gate:schema",
                    "gate:answer", "gate:length", "dangling_reference"):
        assert counts.by_pattern[pattern] == 0, pattern
    assert counts.share < 0.05
    # and the gates keep them: none is a seed copy or duplicate of another
    results = run_gates([it.with_(id=k) for k, (it, _) in enumerate(pairs)],
                        seeds=[(s.id, s.question, s.options) for b in sample_bundles for s in b.seeds])
    assert sum(not r.passed for r in results) <= 0.05 * len(results)


def test_an_offline_run_exports_training_text_without_meta_and_provenance_beside_it(sample_store):
    run_id = sample(sample_store, WalkParams(), 20, seed=2, save=True).run_id
    synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2))
    set_status(sample_store, [i.id for i in list_items(sample_store, run_id)], "accepted")
    records = list(item_records(sample_store, run_id, fmt="messages"))
    assert records
    for rec in records:
        for message in rec["messages"]:
            assert not META.search(message["content"]), message["content"]
        assert rec["metadata"]["offline"] is True and rec["metadata"]["model"] == "offline-composer"
        assert len(rec["metadata"]["seed_ids"]) >= 2


# -- offline rewrites ----------------------------------------------------------------------


def _rewrite(parent, op, seeds, path_kps=("alpha particle", "nucleus", "helium")):
    ctx = RewriteContext(list(path_kps), list(seeds),
                         {s.id: set(kps_named(path_kps, s.question + " " + s.answer)) for s in seeds})
    job = Rewrite(parent.with_(seed_ids=tuple(s.id for s in seeds)), op, ctx, "p0:0/r1")
    rewriter = OfflineRewriter()
    if not rewriter.prepare(job):
        return None
    return rewriter.run(job)


def test_a_further_step_asks_one_more_linked_seed_in_the_same_template():
    (parent,) = compose(BLOOD, ALPHA, n=1)
    child = _rewrite(parent, "add_reasoning_steps", [BLOOD, ALPHA, BETA])
    assert [s.id for s in quoted_questions(child, [BLOOD, ALPHA, BETA])] == ["s-blood", "s-alpha", "s-beta"]
    assert child.question.startswith("The three questions below")
    assert child.question.rstrip().endswith("to each of (i), (ii) and (iii)?")
    assert child.answer == "(i) Erythrocyte; (ii) thorium-234; (iii) helium"
    assert child.options.count(child.answer) == 1
    assert findings(child, [BLOOD, ALPHA, BETA]) == []
    # every linked seed is asked: nothing left for another step
    assert _rewrite(child, "add_reasoning_steps", [BLOOD, ALPHA, BETA]) is None


def test_join_kp_says_which_sub_question_brings_the_kp_in():
    (parent,) = compose(BLOOD, ALPHA, n=1)
    child = _rewrite(parent, "join_kp", [BLOOD, ALPHA, BETA], path_kps=("nucleus", "helium"))
    assert "Question (iii) also draws on helium." in child.question.split("\n\n")[0]
    assert child.kps_used == ("nucleus", "helium")


def test_add_constraint_on_a_linked_item_adds_a_choice_and_a_true_note():
    (parent,) = compose(BLOOD, ALPHA, n=1)
    child = _rewrite(parent, "add_constraint", [BLOOD, ALPHA])
    assert CONSTRAINT_NOTE in child.question
    assert len(child.options) == len(parent.options) + 1 and child.answer == parent.answer
    assert findings(child, [BLOOD, ALPHA]) == []


def test_add_constraint_on_another_item_only_adds_a_sentence():
    parent = Item("Which gas do plants take in for photosynthesis?", "CO2", ("O2", "CO2"))
    child = _rewrite(parent, "add_constraint", [BLOOD])
    assert child.question == parent.question + "\nExactly one of the choices is correct."
    assert child.options == parent.options and child.solution == parent.solution


def test_an_item_outside_the_template_becomes_the_first_sub_question():
    parent = Item("Which gas do plants take in for photosynthesis?", "CO2", ("O2", "CO2", "N2"), solution="")
    child = _rewrite(parent, "add_reasoning_steps", [BETA])
    assert "(i) Which gas do plants take in for photosynthesis?" in child.question
    assert child.answer == "(i) CO2; (ii) helium" and child.options.count(child.answer) == 1
    assert not META.search(child.solution)


def test_a_step_that_would_pass_the_length_gate_is_not_taken():
    long_seed = Seed("s-long", "A long passage. " * 300 + "What is described?", "x", ("x", "y"))
    (parent,) = compose(BLOOD, ALPHA, n=1)
    assert _rewrite(parent, "add_reasoning_steps", [BLOOD, ALPHA, long_seed]) is None


# -- the strict reader -----------------------------------------------------------------------


def test_the_checklist_finds_each_pattern_of_the_old_composer():
    old = Item(
        question="This two-part question links nucleus.\nPart 1: Which cells in the blood do not have a nucleus?"
                 "\nPart 2: Which cells in the blood do not have a nucleus?",
        answer="Part 1: Erythrocyte; Part 2: Both A and B",
        options=("Part 1: Erythrocyte; Part 2: Both A and B", "Part 1: not Erythrocyte; Part 2: Both A and B"),
        solution="Composed offline from seeds 0123456789abcdef and 0123456789abcdef without a model.")
    found = {f.pattern for f in findings(old, [BLOOD])}
    assert {"repeated_question", "meta_text", "made_up_distractor", "dangling_reference"} <= found
    copy = Item(BLOOD.question, "D. Monocyte")
    found = {f.pattern: f.detail for f in findings(copy, [BLOOD])}
    assert found.keys() == {"letter_answer", "seed_copy", "gate:answer"}
    assert found["seed_copy"] == "copies the question of seed s-blood (options aside)"
    wrong = Item("Which of these cells in the blood has no nucleus at all?", "Neuron", ("Erythrocyte", "Basophil"))
    assert "not_one_correct" in {f.pattern for f in findings(wrong)}


def test_the_checklist_passes_a_clean_item_and_counts_every_pattern():
    clean = Item("A 2 kg cart moves at 3 m/s. What is its kinetic energy in joules?", "9 J",
                 ("6 J", "9 J", "18 J"), solution="KE = m v^2 / 2 = 9 J.")
    assert findings(clean) == []
    repeated = Item("Part 1: Which cell has no nucleus?\nPart 2: Which cell has no nucleus?", "Erythrocyte")
    counts = count_degenerate([(clean, ()), (repeated, ())])
    assert counts.items == 2 and counts.rejected == 1 and set(counts.by_pattern) == set(PATTERNS)
    assert counts.to_dict()["share"] == 0.5


def test_a_seed_option_that_negates_another_is_not_made_up():
    moral = Seed("s-moral", "Is the act wrong in scenario 1 and in scenario 2 by ordinary standards?",
                 "Wrong, Not wrong", ("Wrong, Wrong", "Wrong, Not wrong", "Not wrong, Wrong", "Not wrong, Not wrong"))
    item = linked_item([Question.of(moral), Question.of(BLOOD)], [], random.Random(0))
    assert "made_up_distractor" not in {f.pattern for f in findings(item, [moral, BLOOD])}
    negated = Item("Which cells in the blood carry oxygen around the body?", "Erythrocyte",
                   ("Erythrocyte", "not Erythrocyte"))
    assert [f.pattern for f in findings(negated)] == ["made_up_distractor"]


def test_json_of_the_findings_is_plain():
    f = findings(Item("Part 1: Is this one fine?\nPart 2: Is this one fine?", "yes"))
    assert json.loads(json.dumps([x.__dict__ for x in f]))[0]["pattern"] == "repeated_question"


def test_each_finding_says_where_and_what():
    long_q = "Which of these cells found in human blood carries oxygen to the tissues of the body every day?"
    seed = Seed("s-long", long_q, "Erythrocyte", ("Erythrocyte", "Basophil"))
    twice = Item(f"{long_q} {long_q}", "Erythrocyte")
    head = " ".join(long_q.lower().rstrip("?").split())[:60]
    assert [(f.pattern, f.detail) for f in findings(twice, [seed])] == [
        ("repeated_question", f"asked twice: '{head}'"),
        ("seed_copy", "near-duplicate of seed s-long (Jaccard 0.80)")]
    labelled = Item(f"Part 1: {long_q}\nPart 2: {long_q}", "Erythrocyte")
    assert findings(labelled)[0].detail == f"asked twice: '{head}'"
    for name, item in [("question", Item("Composed offline: which cell carries oxygen?", "Erythrocyte")),
                       ("answer", Item("Which cell carries oxygen in the blood?", "Erythrocyte, from linked seed 3")),
                       ("solution", Item("Which cell carries oxygen in the blood?", "Erythrocyte",
                                         solution="Rewritten offline without a model")),
                       ("option B", Item("Which cell carries oxygen in the blood?", "Erythrocyte",
                                         ("Erythrocyte", "a KP"), solution=""))]:
        (f,) = [x for x in findings(item) if x.pattern == "meta_text"]
        assert f.detail.startswith(f"{name} says '"), f.detail
    negation = "not " + "a very long option text that goes on and on past sixty characters for sure"
    item = Item("Which option is the one that goes on and on for sure?", negation[4:], (negation[4:], negation))
    (f,) = findings(item)
    assert f.detail == f"option '{negation[:60]}' only negates another"


def test_a_seed_question_repeated_without_labels_is_found_from_the_seed():
    seed = Seed("s-four", "Is water wet today?", "yes", ("yes", "no"))
    item = Item("Is water wet today? Is water wet today? Say which.", "yes", ("yes", "no"))
    assert [f.pattern for f in findings(item, [seed])] == ["repeated_question"]
    assert findings(item, [seed])[0].detail == "asked twice: 'is water wet today'"
    three = Seed("s-three", "Is water wet?", "yes")
    assert findings(Item("Is water wet? Is water wet? Tell me now.", "yes"), [three]) == []  # too short to judge
    once = Item("Is water wet today? Say which of yes or no.", "yes", ("yes", "no"))
    assert findings(once, [seed]) == []


def test_a_list_of_two_inline_options_is_a_list():
    two = Item("Pick one:\nA. all of the above\nB. none", "B. none")
    assert "dangling_reference" not in {f.pattern for f in findings(two)}
    one = Item("Pick the right answer to this question:\nA. all of the above", "all of the above")
    assert "dangling_reference" in {f.pattern for f in findings(one)}


def test_a_combined_option_is_judged_part_by_part():
    item = Item("(i) Which cell carries oxygen?\n(ii) Which gas do we breathe out?", "(i) Erythrocyte; (ii) CO2",
                ("(i) Erythrocyte; (ii) CO2", "(i) not Erythrocyte; (ii) CO2"))
    assert [f.pattern for f in findings(item)] == ["made_up_distractor"]


def test_items_with_fields_that_are_not_text_only_fail_the_schema():
    assert [(f.pattern, f.detail) for f in findings(Item(None, "4"))] == [("gate:schema", "question is missing")]
    assert [(f.pattern, f.detail) for f in findings(Item("What is two plus two?", 4))] == [
        ("gate:schema", "answer is not text (got int)")]


def test_counts_add_up_per_pattern_and_follow_the_settings():
    from linkqa_core.quality.checks import GateConfig

    rep = Item("Part 1: Which cell has no nucleus?\nPart 2: Which cell has no nucleus?", "Erythrocyte")
    meta = Item("Part 1: Which cell has no nucleus at all?\nPart 2: Which cell has no nucleus at all?",
                "Erythrocyte", solution="composed offline")
    short = Item("Which cell has no nucleus?", "Erythrocyte")
    counts = count_degenerate([(rep, ()), (meta, ()), (short, ())])
    assert counts.to_dict() == {"items": 3, "rejected": 2, "share": 0.6667, "by_pattern": {
        **dict.fromkeys(PATTERNS, 0), "repeated_question": 2, "meta_text": 1}}
    strict = count_degenerate([(short, ())], GateConfig(min_question_chars=40))
    assert strict.by_pattern["gate:length"] == 1 and strict.rejected == 1
    assert count_degenerate([]).to_dict() == {"items": 0, "rejected": 0, "share": 0.0,
                                              "by_pattern": dict.fromkeys(PATTERNS, 0)}


def test_dangling_references_and_letter_answers_are_described():
    long_ref = "All of the above, and in particular the first two of them together with the third"
    item = Item("Which cell carries oxygen in the blood?", long_ref, ("Erythrocyte", long_ref, "Neither of the above"))
    (f,) = [x for x in findings(item) if x.pattern == "dangling_reference"]
    assert f.detail == f"'{long_ref[:60]}' refers to a list the item does not show"
    open_item = Item("Which of the following gases is inert?", "B")
    assert [(x.pattern, x.detail) for x in findings(open_item)] == [
        ("dangling_reference", "the question refers to options the item does not have"),
        ("letter_answer", "answer 'B' names option B but the item has no options"),
        ("gate:answer", "answer 'B' names option B but the item has no options")]
    mc_item = Item("Which of the following is a noble gas?", "Neon", ("Neon", "Iron"))
    assert findings(mc_item) == []


def test_not_one_correct_says_how_many_match_and_whether_options_repeat():
    item = Item("Which of these metals is liquid at room temperature?", "Mercury", ("Mercury", "mercury.", "Iron"))
    (f,) = [x for x in findings(item) if x.pattern == "not_one_correct"]
    assert f.detail == "answer matches 2 of 3 options; options repeat"
    item = Item("Which of these metals is liquid at room temperature?", "Gallium", ("Mercury", "Iron"))
    (f,) = [x for x in findings(item) if x.pattern == "not_one_correct"]
    assert f.detail == "answer matches 0 of 2 options"


def test_a_repeated_block_of_several_lines_is_reported_by_its_words():
    block = "Read this.\nWhich cell carries oxygen?"
    item = Item(f"(i) {block}\n(ii) {block}", "Erythrocyte")
    assert [(f.pattern, f.detail) for f in findings(item)] == [
        ("repeated_question", "asked twice: 'read this which cell carries oxygen'")]


def test_a_negated_later_part_of_a_combined_option_is_made_up():
    item = Item("(i) Which cell carries oxygen?\n(ii) Which gas do we breathe out?", "(i) Erythrocyte; (ii) CO2",
                ("(i) Erythrocyte; (ii) CO2", "(i) Erythrocyte; (ii) not CO2"))
    assert [f.pattern for f in findings(item)] == ["made_up_distractor"]


def test_an_answer_that_is_an_option_is_never_a_letter_answer():
    item = Item("Which of the following blood groups is the universal recipient's?", "AB", ("A", "B", "AB", "O"))
    assert findings(item) == []
    item = Item("Which of the following blood groups has only the B antigen?", "B", ("A", "B", "AB", "O"))
    assert findings(item) == []


def test_a_copy_with_its_options_is_named_an_exact_copy_and_schema_failures_are_named():
    seed = Seed("s-gas", "Which of these gases makes up most of the air we breathe?", "Nitrogen",
                ("Oxygen", "Nitrogen", "Argon"))
    item = Item(seed.question, "Nitrogen", seed.options)
    assert [(f.pattern, f.detail) for f in findings(item, [seed])] == [("seed_copy", "exact duplicate of seed s-gas")]
    one = Item("Which of these gases makes up most of the air?", "Nitrogen", ("Nitrogen",))
    assert [(f.pattern, f.detail) for f in findings(one)] == [("gate:schema", "options must number 2 to 10 (got 1)")]

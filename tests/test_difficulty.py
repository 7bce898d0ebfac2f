"""Difficulty enhancement: targets, raters, offline rewrites, elimination, rounds, the fake model."""

from __future__ import annotations

import hashlib
import json
import re
import time

import pytest

from linkqa_core.difficulty.enhance import difficulty_mix, enhance
from linkqa_core.difficulty.raters import OfflineRater
from linkqa_core.difficulty.rewrite import OFFLINE_OPERATIONS, OFFLINE_REWRITER, OPERATIONS
from linkqa_core.difficulty.targets import DifficultyTargets, level_of, mix_gap
from linkqa_core.kps.names import normalize_kp
from linkqa_core.records import Item
from linkqa_core.store.items import item_from_row
from linkqa_core.errors import ConfigError, InputError
from linkqa_core.llm.client import LLMSettings
from linkqa_core.graph.sampling import sample
from linkqa_core.synthesis.run import SynthesisConfig, synthesize
from linkqa_core.graph.walks import WalkParams

from openai_server import Answer, FakeOpenAI


def _run(store, n_paths=20, seed=1) -> int:
    run_id = sample(store, WalkParams(), n_paths, seed=seed, save=True).run_id
    synthesize(store, run_id, SynthesisConfig(per_bundle=2))
    return run_id


def _rows(store, run_id, where="1", params=()):
    return [dict(r) for r in store.query(f"SELECT * FROM items WHERE run_id = ? AND {where} ORDER BY id",
                                         (run_id, *params))]


def _row_of(store, r):
    return store.query("SELECT * FROM items WHERE id = ?", (r["id"],))[0]


def _at_or_above(mix, level):
    return sum(n for counts in mix.values() for lvl, n in counts.items() if lvl >= level)


# -- targets ----------------------------------------------------------------------------


def test_targets_parse_the_compact_spec_and_normalise_shares():
    t = DifficultyTargets.parse("default=3:30,4:40,5:30; mathematics=4:1,5:1")
    assert t.for_discipline("Law") == {1: 0.0, 2: 0.0, 3: 0.3, 4: 0.4, 5: 0.3}
    assert t.for_discipline("Mathematics") == {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.5, 5: 0.5}
    assert DifficultyTargets.parse(t.spec()) == t
    assert DifficultyTargets.parse("4:1").for_discipline("Physics")[4] == 1.0
    assert DifficultyTargets.parse("") == DifficultyTargets()


def test_targets_from_dict_accept_string_levels_as_after_json():
    t = DifficultyTargets.from_dict(json.loads(json.dumps(DifficultyTargets.parse(
        "default=3:0.5,5:0.5;Medicine & Health=2:1").to_dict())))
    assert t.for_discipline("medicine & health")[2] == 1.0
    assert t.default[5] == 0.5


@pytest.mark.parametrize("spec, message", [
    ("default=3:0.3,7:0.7", "level '7' is not a whole number 1-5"),
    ("default=3:-1,4:2", "must be 0 or more"),
    ("default=3:0,4:0", "add up to 0"),
    ("default=3:x", "is not a number"),
    ("Alchemy=3:1", "unknown discipline 'Alchemy'"),
    ("default=3 0.5", "is not level:share"),
    ("default=3:1;default=4:1", "default mix is given twice"),
    ("Law=3:1;law=4:1", "name 'Law' twice"),
    ("default=3:0.5,3:0.5", "level 3 appears twice"),
])
def test_bad_targets_raise_config_errors_a_curator_can_read(spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        DifficultyTargets.parse(spec)


def test_mix_gap_is_zero_on_target_and_one_when_disjoint():
    t = DifficultyTargets.parse("default=4:1")
    assert mix_gap({"Law": {4: 3}}, t) == 0.0
    assert mix_gap({"Law": {1: 3}}, t) == 1.0
    assert level_of(2.5) == 3 and level_of(2.49) == 2 and level_of(None) is None


# -- raters -----------------------------------------------------------------------------


def test_offline_rater_rates_longer_multi_part_items_higher():
    rater = OfflineRater()
    easy = Item(question="What is the capital of France?", answer="Paris", options=("Paris", "Rome", "Oslo", "Bern"))
    hard = Item(
        question="Part 1: A 2 kg mass moves at 3 m/s and hits a 4 kg mass at rest; the collision is elastic. "
                 "Part 2: Assume no friction. What is the speed of the 4 kg mass after 5 s, given that it must stay "
                 "on the track? " + "Explain each step of the momentum and energy balance. " * 4,
        answer="2 m/s", kps_used=("momentum", "kinetic energy", "elastic collision"))
    assert rater.rate(easy).level == 1
    assert rater.rate(hard).level >= 4
    assert "words" in rater.rate(hard).why
    assert rater.rate_many([easy, hard]) == [rater.rate(easy), rater.rate(hard)]


# -- offline enhancement ----------------------------------------------------------------


def test_offline_enhancement_moves_the_mix_towards_the_target(sample_store):
    run_id = _run(sample_store)
    before = difficulty_mix(sample_store, run_id)
    report = enhance(sample_store, run_id)
    assert report.mix_before == before
    assert report.mix_after == difficulty_mix(sample_store, run_id)
    assert _at_or_above(report.mix_after, 3) > _at_or_above(report.mix_before, 3)
    assert report.gap_after < report.gap_before
    assert report.kept > 0 and report.attempted >= report.kept
    assert report.rater == "offline-heuristic" and report.rewriter == OFFLINE_REWRITER
    assert report.tokens == 0 and report.requests == 0
    # the number of live items does not change: a kept child replaces its parent
    assert sum(map(lambda c: sum(c.values()), report.mix_after.values())) == 40


def test_kept_rewrites_keep_lineage_and_supersede_their_parent(sample_store):
    run_id = _run(sample_store)
    enhance(sample_store, run_id)
    by_id = {r["id"]: r for r in _rows(sample_store, run_id)}
    kept = [r for r in by_id.values() if r["parent_id"] is not None and r["status"] == "generated"]
    assert kept
    for child in kept:
        parent = by_id[child["parent_id"]]
        assert parent["status"] == "superseded"
        assert re.fullmatch(re.escape(parent["slot"]) + r"/r[12]", child["slot"])
        assert child["operation"] in OFFLINE_OPERATIONS
        assert child["model"] == OFFLINE_REWRITER
        for key in ("run_id", "path_id", "discipline"):
            assert child[key] == parent[key]
        # the linked seeds stay; join_kp may add the seed that names the joined KP
        child_seeds, parent_seeds = json.loads(child["seed_ids"]), json.loads(parent["seed_ids"])
        assert child_seeds[: len(parent_seeds)] == parent_seeds
        assert len(child_seeds) == len(parent_seeds) or child["operation"] == "join_kp"
        assert child["difficulty"] > parent["difficulty"]
    for parent in (r for r in by_id.values() if r["status"] == "superseded"):
        # one kept child; it may itself have been rewritten again in a later round
        children = [r for r in by_id.values() if r["parent_id"] == parent["id"]
                    and r["status"] in ("generated", "superseded")]
        assert len(children) == 1
        node = children[0]
        while node["status"] == "superseded":
            node = next(r for r in by_id.values() if r["parent_id"] == node["id"]
                        and r["status"] in ("generated", "superseded"))
        assert node["status"] == "generated"  # every chain ends in one live item


def test_offline_rewrites_keep_exactly_one_right_option(sample_store):
    run_id = _run(sample_store)
    enhance(sample_store, run_id)
    children = _rows(sample_store, run_id, "parent_id IS NOT NULL AND question IS NOT NULL")
    assert children
    for c in children:
        options = json.loads(c["options"])
        assert options.count(c["answer"]) == 1
        assert len(set(options)) == len(options)
        assert "offline" not in c["solution"] and "without a model" not in c["solution"]


def test_join_kp_brings_in_a_kp_of_the_path(sample_store):
    run_id = _run(sample_store)
    enhance(sample_store, run_id, max_rounds=3)
    joined = _rows(sample_store, run_id, "operation = 'join_kp' AND question IS NOT NULL")
    assert joined
    for child in joined:
        parent = _rows(sample_store, run_id, "id = ?", (child["parent_id"],))[0]
        path_kps = json.loads(sample_store.scalar("SELECT kps FROM paths WHERE id = ?", (child["path_id"],)))
        new = set(json.loads(child["kps_used"])) - set(json.loads(parent["kps_used"]))
        assert len(new) == 1 and new <= set(path_kps)
        kp = new.pop()
        assert kp in child["question"].split("\n\n")[0]  # named where the item says what it draws on
        # a seed among the child's linked seeds names that KP (the new part comes from it)
        seed_ids = json.loads(child["seed_ids"])
        naming = sample_store.scalar(
            "SELECT count(*) FROM seeds s JOIN seed_kps l ON l.seed_rid = s.rid JOIN kps k ON k.id = l.kp_id"
            f" WHERE k.name = ? AND s.id IN ({','.join('?' * len(seed_ids))})", (normalize_kp(kp), *seed_ids))
        assert naming >= 1


def test_every_eliminated_rewrite_keeps_its_reason(sample_store):
    run_id = _run(sample_store)
    report = enhance(sample_store, run_id)
    rejected = _rows(sample_store, run_id, "parent_id IS NOT NULL AND status = 'rejected'")
    assert rejected and len(rejected) == sum(report.eliminated.values())
    for r in rejected:
        m = re.fullmatch(r"adds nothing: near-copy of parent #(\d+) \(Jaccard (0\.\d\d|1\.00)\)", r["gate_reason"])
        if m:
            assert int(m.group(1)) == r["parent_id"] and float(m.group(2)) >= 0.85
        else:
            assert re.fullmatch(r"rewrite is not harder \(\d -> \d\)", r["gate_reason"]), r["gate_reason"]


def _one_item_run(store, *, long: bool) -> tuple[int, int]:
    """A run with a single item whose only linked seed is already quoted in it, so the
    offline rewriter can only add a constraint."""
    seeds = [s for _, s in store.seeds.iter() if s.options and len(s.question.split()) > (150 if long else 0)]
    seed = seeds[0]
    run_id = store.runs.create("sample", {"seed": 0}, name="one item")
    now = time.time()
    with store.transaction() as conn:
        path_id = conn.execute(
            "INSERT INTO paths (run_id, idx, discipline, kps, seed_ids, link_strength) VALUES (?, 0, ?, ?, ?, 1.0)",
            (run_id, seed.discipline, json.dumps(["alpha concept", "beta concept"]), json.dumps([seed.id]))).lastrowid
        item_id = conn.execute(
            "INSERT INTO items (run_id, path_id, slot, status, question, options, answer, solution, kps_used,"
            " discipline, difficulty, seed_ids, model, created_at, updated_at)"
            " VALUES (?, ?, 'p0:0', 'generated', ?, ?, ?, '', ?, ?, 1.0, ?, 'test', ?, ?)",
            (run_id, path_id, seed.question, json.dumps(list(seed.options)), seed.answer,
             json.dumps(["alpha concept"]), seed.discipline, json.dumps([seed.id]), now, now)).lastrowid
    return run_id, item_id


def test_near_copy_rewrite_is_eliminated_with_its_reason(sample_store):
    run_id, item_id = _one_item_run(sample_store, long=True)
    report = enhance(sample_store, run_id, max_rounds=1)
    child = _rows(sample_store, run_id, "parent_id = ?", (item_id,))[0]
    assert child["operation"] == "add_constraint" and child["status"] == "rejected"
    assert re.fullmatch(rf"adds nothing: near-copy of parent #{item_id} \(Jaccard 0\.9\d\)", child["gate_reason"])
    assert report.eliminated == {"adds nothing (near-copy of parent)": 1} and report.kept == 0
    assert _rows(sample_store, run_id, "id = ?", (item_id,))[0]["status"] == "generated"


def test_max_rounds_is_respected_and_a_later_call_continues(sample_store):
    run_id = _run(sample_store)
    first = enhance(sample_store, run_id, max_rounds=1)
    assert first.rounds == 1 and first.rounds_done == 1
    slots = [r["slot"] for r in _rows(sample_store, run_id, "parent_id IS NOT NULL")]
    assert slots and all(s.endswith("/r1") and s.count("/r") == 1 for s in slots)
    again = enhance(sample_store, run_id, max_rounds=1)
    assert again.rounds == 0 and again.attempted == 0
    more = enhance(sample_store, run_id, max_rounds=2)
    assert more.rounds == 1 and more.attempted > 0
    slots = [r["slot"] for r in _rows(sample_store, run_id, "parent_id IS NOT NULL")]
    assert any(s.endswith("/r2") for s in slots) and not any("/r3" in s for s in slots)
    assert sample_store.runs.get(run_id).config["difficulty"]["rounds_done"] == 2


def test_rerun_does_not_duplicate_children(sample_store):
    run_id = _run(sample_store)
    first = enhance(sample_store, run_id)
    rows = _rows(sample_store, run_id)
    second = enhance(sample_store, run_id)
    assert _rows(sample_store, run_id) == rows
    assert second.attempted == 0 and second.mix_after == first.mix_after
    assert len({r["slot"] for r in rows}) == len(rows)


def test_a_given_rater_rerates_every_generated_item(sample_store):
    run_id = _run(sample_store, n_paths=5)
    report = enhance(sample_store, run_id, rater=OfflineRater(), max_rounds=0)
    assert report.rated == 10 and report.attempted == 0
    for r in _rows(sample_store, run_id):
        assert r["difficulty"] == OfflineRater().rate(item_from_row(_row_of(sample_store, r))).level


def test_enhance_refuses_bad_arguments(sample_store):
    run_id = sample(sample_store, WalkParams(), 2, seed=3, save=True).run_id
    with pytest.raises(InputError, match="no items yet"):
        enhance(sample_store, run_id)
    synthesize(sample_store, run_id, SynthesisConfig(per_bundle=1))
    with pytest.raises(ConfigError, match="max_rounds"):
        enhance(sample_store, run_id, max_rounds=-1)


# -- with a model (a fake OpenAI-compatible server) ---------------------------------------

_ITEM = re.compile(r"Question: (.*?)\nOptions:\n(.*?)\nAnswer: (.*?)\n", re.S)


class FakeModel:
    """Rates items 2 and rewrites 4; answers the rewrite as told; judges as told."""

    def __init__(self, answers=("beta", "beta"), verdict="yes", near_copy=False):
        self.answers = answers
        self.verdict = verdict
        self.near_copy = near_copy

    def __call__(self, body):
        text = body["messages"][-1]["content"]
        if text.startswith("Rate the difficulty"):
            return Answer(json.dumps({"difficulty": 4 if "HARDER" in text else 2, "why": "fake"}))
        if text.startswith("Rewrite this exam question"):
            if self.near_copy:
                q, opts, a = _ITEM.search(text.split("The question (difficulty", 1)[1]).groups()
                options = [line[3:] for line in opts.splitlines()]
                return Answer(json.dumps({"question": q + " HARDER", "options": options, "answer": a,
                                          "solution": "same", "kps_used": []}))
            tag = hashlib.sha256(text.encode()).hexdigest()[:8]  # one distinct rewrite per parent
            return Answer(json.dumps({
                "question": f"HARDER case {tag}: a brand new case that needs both knowledge points and an "
                            "intermediate result derived from the linked seeds before the final choice can be made.",
                "options": ["alpha", "beta", "gamma", "delta"], "answer": "beta",
                "solution": "derive the intermediate result, then choose beta", "kps_used": ["k1", "k2"]}))
        if text.startswith("Answer this"):
            given = self.answers[0] if body.get("temperature") == 0.0 else self.answers[1]
            return Answer(json.dumps({"answer": given}))
        if text.startswith("Judge whether"):
            return Answer(json.dumps({"verdict": self.verdict, "why": "fake judge"}))
        return None


def _llm(srv) -> LLMSettings:
    return LLMSettings(base_urls=(srv.base_url,), api_key="sk-test", model="fake", backoff_base_s=0.0)


def _asked(srv, prefix):
    return [r for r in srv.chat_requests if r.json["messages"][-1]["content"].startswith(prefix)]


def test_llm_enhancement_uses_the_rater_and_keeps_checked_rewrites(sample_store):
    run_id = _run(sample_store, n_paths=3, seed=2)
    with FakeOpenAI(FakeModel()) as srv:
        report = enhance(sample_store, run_id, DifficultyTargets.parse("default=4:1"), _llm(srv), max_rounds=2)
        assert report.rater == "llm:fake" and report.rewriter == "fake"
        rated = [r.json["messages"][-1]["content"] for r in _asked(srv, "Rate the difficulty")]
        assert sum("HARDER" in t for t in rated) == 6  # every rewrite
        assert 1 <= sum("HARDER" not in t for t in rated) <= 6  # the parents (identical ones are asked once)
        assert len(_asked(srv, "Rewrite this exam question")) == 6
        assert len(_asked(srv, "Answer this")) == 12 and len(_asked(srv, "Judge whether")) == 6
    assert all(set(c) == {1, 2, 3, 4, 5} and c[2] == sum(c.values()) for c in report.mix_before.values())
    assert all(c[4] == sum(c.values()) for c in report.mix_after.values())
    assert report.kept == 6 and report.eliminated == {} and report.rounds == 1
    assert report.tokens > 0 and report.requests == len(srv.chat_requests)
    children = _rows(sample_store, run_id, "parent_id IS NOT NULL")
    assert {c["model"] for c in children} == {"fake"} and all(c["operation"] in OPERATIONS for c in children)
    assert {r["status"] for r in _rows(sample_store, run_id, "parent_id IS NULL")} == {"superseded"}


def test_llm_rerun_costs_no_request(sample_store):
    run_id = _run(sample_store, n_paths=3, seed=2)
    with FakeOpenAI(FakeModel()) as srv:
        targets = DifficultyTargets.parse("default=4:1")
        enhance(sample_store, run_id, targets, _llm(srv), max_rounds=1)
        sent = len(srv.chat_requests)
        again = enhance(sample_store, run_id, targets, _llm(srv), max_rounds=1)
        assert len(srv.chat_requests) == sent
        assert again.requests == 0 and again.cached > 0 and again.attempted == 0


def test_llm_inconsistent_answers_are_eliminated_with_reason(sample_store):
    run_id = _run(sample_store, n_paths=3, seed=2)
    with FakeOpenAI(FakeModel(answers=("beta", "gamma"))) as srv:
        report = enhance(sample_store, run_id, DifficultyTargets.parse("default=4:1"), _llm(srv), max_rounds=1)
    assert report.kept == 0 and report.eliminated == {"model cannot answer consistently": 6}
    for child in _rows(sample_store, run_id, "parent_id IS NOT NULL"):
        assert child["status"] == "rejected"
        assert child["gate_reason"] == ("model cannot answer consistently (answered 'beta' and 'gamma'; "
                                        "stated 'beta')")
    assert {r["status"] for r in _rows(sample_store, run_id, "parent_id IS NULL")} == {"generated"}
    assert report.mix_after == report.mix_before


def test_llm_wrong_but_consistent_answers_are_eliminated_too(sample_store):
    run_id = _run(sample_store, n_paths=1, seed=2)
    with FakeOpenAI(FakeModel(answers=("D", "delta"))) as srv:
        report = enhance(sample_store, run_id, DifficultyTargets.parse("default=4:1"), _llm(srv), max_rounds=1)
    assert report.eliminated == {"model cannot answer consistently": 2}


def test_llm_seeds_judge_no_is_eliminated_with_reason(sample_store):
    run_id = _run(sample_store, n_paths=3, seed=2)
    with FakeOpenAI(FakeModel(verdict="no")) as srv:
        report = enhance(sample_store, run_id, DifficultyTargets.parse("default=4:1"), _llm(srv), max_rounds=1)
        judged = _asked(srv, "Judge whether")
    assert report.kept == 0 and report.eliminated == {"answer does not follow from the linked seeds": 6}
    assert "Linked seeds:\nSeed 1 (" in judged[0].json["messages"][-1]["content"]
    for child in _rows(sample_store, run_id, "parent_id IS NOT NULL"):
        assert child["gate_reason"] == "answer does not follow from the linked seeds (judge: no; fake judge)"


def test_llm_near_copy_rewrite_is_eliminated_before_any_check(sample_store):
    run_id = _run(sample_store, n_paths=3, seed=2)
    with FakeOpenAI(FakeModel(near_copy=True)) as srv:
        report = enhance(sample_store, run_id, DifficultyTargets.parse("default=4:1"), _llm(srv), max_rounds=1)
        assert not _asked(srv, "Answer this") and not _asked(srv, "Judge whether")
    assert report.eliminated == {"adds nothing (near-copy of parent)": 6}
    for child in _rows(sample_store, run_id, "parent_id IS NOT NULL"):
        assert child["gate_reason"].startswith(f"adds nothing: near-copy of parent #{child['parent_id']} (Jaccard ")

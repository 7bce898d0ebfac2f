"""Curation in the engine: the review queue (filters, decisions, edits, the queue's moves,
gate kinds, run comparison) and the export (which items, both formats, provenance, the
file written). Items are stored records on a real SQLite file, planted with known
statuses, so each assertion pins one rule of linkqa_core.curation."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from linkqa_core.curation import export as ex
from linkqa_core.curation import review as rv
from linkqa_core.errors import ConfigError, InputError, NotFoundError
from linkqa_core.graph.sampling import config_hash, sample
from linkqa_core.graph.walks import WalkParams
from linkqa_core.records import Item
from linkqa_core.store import Store

OPTIONS = ("alpha", "beta", "gamma", "delta")


def item(run_id: int, path_id: int | None, slot: str, **kw) -> Item:
    fields = dict(question=f"Question {slot} about enzymes and kinetics?", answer="beta", options=OPTIONS,
                  solution=f"Solution of {slot}.", discipline="Biology", difficulty=3.0, run_id=run_id,
                  path_id=path_id, slot=slot, seed_ids=("s1", "s2"), model="fake-r1", kps_used=("a", "b"))
    fields.update(kw)
    return Item(**fields)


@pytest.fixture
def run(sample_store: Store) -> tuple[Store, int, list[int]]:
    """A saved run of 3 paths and 8 planted items (ids 1-8):

    1 generated Biology 2.0 · 2 generated Physics 4.0 · 3 accepted Biology 5.0 ·
    4 rejected (near-duplicate) Law 3.0 · 5 superseded Biology 1.0 · 6 failed ·
    7 generated open question (no options, no solution) Law 3.5, rewrite of 5 ·
    8 generated Chemistry, no difficulty, no path
    """
    store = sample_store
    run_id = sample(store, WalkParams(), 3, seed=5, save=True, name="three").run_id
    path_ids = [p.id for p in store.runs.paths(run_id)]
    items = [
        item(run_id, path_ids[0], "p0:0", difficulty=2.0),
        item(run_id, path_ids[0], "p0:1", discipline="Physics", difficulty=4.0, question="Why do planets orbit?"),
        item(run_id, path_ids[1], "p1:0", status="accepted", difficulty=5.0),
        item(run_id, path_ids[1], "p1:1", status="rejected", discipline="Law",
             gate_reason="near-duplicate of item 1 (Jaccard 0.93)"),
        item(run_id, path_ids[2], "p2:0", status="superseded", difficulty=1.0),
        item(run_id, path_ids[2], "p2:1", status="failed", question="", answer="", raw="not json"),
        item(run_id, path_ids[2], "p2:0/r1", options=None, answer="Km", solution="", discipline="Law",
             difficulty=3.5, parent_id=5, operation="combine", model="offline-rewriter"),
        item(run_id, None, "x:0", discipline="Chemistry", difficulty=None, question="What is a buffer solution?"),
    ]
    assert store.items.insert(items) == 8
    return store, run_id, path_ids


def status_of(store: Store) -> dict[int, str]:
    return {int(r[0]): r[1] for r in store.query("SELECT id, status FROM items ORDER BY id")}


# -- list_items and counts ---------------------------------------------------------------------


def test_list_items_filters_by_each_field_and_keeps_id_order(run):
    store, rid, _ = run
    ids = lambda **kw: [i.id for i in rv.list_items(store, rid, **kw)]  # noqa: E731
    assert ids() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert ids(status="generated") == [1, 2, 7, 8]
    assert ids(status=["accepted", "rejected"]) == [3, 4]
    assert ids(discipline="Law") == [4, 7]
    assert ids(min_difficulty=3.5) == [2, 3, 7]
    assert ids(max_difficulty=2.0) == [1, 5]
    assert ids(min_difficulty=3.0, max_difficulty=3.0) == [4, 6]
    assert ids(gate="near-duplicate") == [4]
    assert ids(search="buffer") == [8]
    assert ids(search="Km") == [7]  # answers are searched too
    assert ids(search="Solution of p1:0") == [3]  # and solutions
    assert ids(limit=3) == [1, 2, 3]
    assert ids(limit=3, offset=3) == [4, 5, 6]
    assert ids(status="generated", discipline="Biology", max_difficulty=2.5) == [1]


def test_list_items_of_a_missing_run_or_an_unknown_status_is_an_error(run):
    store, rid, _ = run
    with pytest.raises(NotFoundError):
        rv.list_items(store, rid + 99)
    with pytest.raises(ConfigError, match="unknown status"):
        rv.list_items(store, rid, status="maybe")


def test_item_counts_are_per_status(run):
    store, rid, _ = run
    assert rv.item_counts(store, rid) == {"generated": 4, "accepted": 1, "rejected": 1, "superseded": 1, "failed": 1}


# -- the card ---------------------------------------------------------------------------------------


def test_item_card_holds_the_path_its_seeds_in_order_and_the_lineage_nearest_first(run):
    store, rid, path_ids = run
    path = store.runs.paths_by_id([path_ids[2]])[path_ids[2]]
    with store.transaction() as conn:  # a rewrite of the rewrite: 9 -> 7 -> 5
        conn.execute("UPDATE items SET seed_ids = ? WHERE id = 7", (json.dumps(list(path.seed_ids)),))
    store.items.insert([item(rid, path_ids[2], "p2:0/r1/r2", parent_id=7, operation="deepen")])
    card = rv.item_card(store, 9)
    assert card.item.id == 9 and card.path is not None and card.path.kps == path.kps
    assert [p.id for p in card.lineage] == [7, 5]
    card7 = rv.item_card(store, 7)
    assert [s.id for s in card7.seeds] == list(path.seed_ids)
    assert [p.id for p in card7.lineage] == [5]


def test_item_card_of_an_item_without_a_path_has_none(run):
    store, _, _ = run
    card = rv.item_card(store, 8)
    assert card.path is None and card.lineage == () and card.seeds == ()


# -- decisions --------------------------------------------------------------------------------------


def test_set_status_changes_decidable_items_only_and_counts_them(run):
    store, _, _ = run
    assert rv.set_status(store, [1, 3, 5, 6], "accepted") == 2  # 1 and 3; superseded 5 and failed 6 stay
    assert status_of(store)[1] == "accepted" and status_of(store)[5] == "superseded" and status_of(store)[6] == "failed"
    assert rv.set_status(store, [2], "rejected", reason="too easy") == 1
    assert store.items.get(2).gate_reason == "too easy"
    assert rv.set_status(store, [3], "generated") == 1
    assert rv.set_status(store, [], "accepted") == 0
    with pytest.raises(ConfigError, match="a curator can set"):
        rv.set_status(store, [1], "superseded")


def test_decide_rejects_with_the_curator_as_reason_unless_a_gate_gave_one(run):
    store, _, _ = run
    rv.set_status(store, [4], "generated")  # gated earlier, put back to review: its reason stays
    assert rv.decide(store, [1, 4], "rejected") == 2
    assert store.items.get(1).gate_reason == rv.CURATOR_REASON
    assert store.items.get(4).gate_reason == "near-duplicate of item 1 (Jaccard 0.93)"
    assert status_of(store)[1] == status_of(store)[4] == "rejected"


def test_decide_accepts_and_puts_back_without_touching_reasons(run):
    store, _, _ = run
    assert rv.decide(store, [4], "accepted") == 1
    assert store.items.get(4).gate_reason == "near-duplicate of item 1 (Jaccard 0.93)"
    assert rv.decide(store, [4, 6], "generated") == 1
    assert status_of(store)[4] == "generated"
    with pytest.raises(ConfigError, match="not 'failed'"):
        rv.decide(store, [1], "failed")


# -- the queue's moves ------------------------------------------------------------------------------


@pytest.mark.parametrize("ids, current, offset, expected", [
    ([3, 5, 8], 5, +1, 8),
    ([3, 5, 8], 5, -1, 3),
    ([3, 5, 8], 8, +1, 8),  # held at the end
    ([3, 5, 8], 3, -1, 3),  # held at the start
    ([3, 5, 8], 3, +2, 8),
    ([3, 5, 8], 3, +5, 8),
    ([3, 5, 8], 8, -5, 3),
    ([3, 5, 8], 5, 0, 5),
    ([3, 8], 5, +1, 8),  # 5 left the queue: the item after it is already one step on
    ([3, 8], 5, +2, 8),
    ([3, 8, 9], 5, +2, 9),
    ([3, 8], 5, -1, 3),
    ([3, 8], 5, 0, 8),
    ([3, 8], 9, +1, 8),  # past the end: the last one
    ([3, 8], 9, -1, 3),
    ([3, 8], 1, +1, 3),  # before the start: the first one is one step on
    ([3, 8], None, +1, 8),
    ([3, 8], None, 0, 3),
    ([], 5, +1, None),
])
def test_step_moves_along_the_queue_and_holds_at_its_ends(ids, current, offset, expected):
    assert rv.step(ids, current, offset) == expected


@pytest.mark.parametrize("ids, current, expected", [
    ([3, 5, 8], 5, 5),
    ([3, 8], 5, 8),
    ([3, 8], 3, 3),
    ([3, 8], 8, 8),
    ([3, 8], 9, 8),
    ([3, 8], 1, 3),
    ([3, 8], None, 3),
    ([], 4, None),
    ([], None, None),
])
def test_resume_at_stays_or_goes_to_the_next_item_else_the_last(ids, current, expected):
    assert rv.resume_at(ids, current) == expected


# -- gate kinds --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason, kind", [
    ("near-duplicate of item 181 (Jaccard 0.92)", "near-duplicate of item … (Jaccard …)"),
    ("question too long (4718 > 4000 characters)", "question too long (… > … characters)"),
    ("adds nothing: near-copy of parent #9 (Jaccard 0.91)", "adds nothing: near-copy of parent … (Jaccard …)"),
    ("near-duplicate of seed 63270f83aa13049a (Jaccard 0.85)", "near-duplicate of seed … (Jaccard …)"),
    ("answer 'x y' is not one of the 4 options", "answer '…' is not one of the … options"),
    ("rewrite is not harder (4 -> 4)", "rewrite is not harder (… -> …)"),
    ("1, 2, 3 things", "… things"),
    ("  rejected   by the curator ", "rejected by the curator"),
    ("option A is empty", "option A is empty"),
    ("", None),
    ("   ", None),
    (None, None),
])
def test_gate_kind_replaces_particulars_with_an_ellipsis(reason, kind):
    assert rv.gate_kind(reason) == kind


def test_gate_kinds_count_items_per_kind_most_frequent_first(run):
    store, rid, _ = run
    rv.set_status(store, [1], "rejected", reason="near-duplicate of item 3 (Jaccard 0.81)")
    rv.set_status(store, [2], "rejected", reason="question too long (5000 > 4000 characters)")
    assert rv.gate_kinds(store, rid) == [("near-duplicate of item … (Jaccard …)", 2),
                                         ("question too long (… > … characters)", 1)]
    pattern = rv.gate_pattern("near-duplicate of item … (Jaccard …)")
    assert pattern == "near-duplicate of item % (Jaccard %)"
    assert [i.id for i in rv.list_items(store, rid, gate=pattern)] == [1, 4]


def test_gate_kinds_of_a_run_without_reasons_is_empty(run):
    store, rid, _ = run
    rv.set_status(store, [4], "generated")
    with store.transaction() as conn:
        conn.execute("UPDATE items SET gate_reason = NULL")
    assert rv.gate_kinds(store, rid) == []


# -- edits ----------------------------------------------------------------------------------------------


def test_edit_keeps_the_first_original_and_records_when(run):
    store, _, _ = run
    before = store.items.get(1)
    card = rv.edit_item(store, 1, question="  A sharper question about enzymes?  ", solution="New solution.")
    edited = card.item
    assert edited.question == "A sharper question about enzymes?" and edited.solution == "New solution."
    assert edited.edited and edited.edited_at is not None
    assert edited.original == {"question": before.question, "options": list(OPTIONS), "answer": "beta",
                               "solution": before.solution, "difficulty": 2.0, "discipline": "Biology"}
    rv.edit_item(store, 1, answer="gamma")  # a second edit: the original stays the first one
    again = store.items.get(1)
    assert again.answer == "gamma" and again.original == edited.original and again.edited_at >= edited.edited_at


def test_edit_without_a_change_records_nothing(run):
    store, _, _ = run
    current = store.items.get(2)
    card = rv.edit_item(store, 2, question=current.question, options=list(current.options), answer=current.answer)
    assert not card.item.edited and card.item.edited_at is None


def test_edit_cleans_options_and_checks_the_answer_against_them(run):
    store, _, _ = run
    card = rv.edit_item(store, 1, options=[" one ", "", "two", "  "], answer=" two ")
    assert card.item.options == ("one", "two") and card.item.answer == "two" and card.item.answer_letter == "B"
    with pytest.raises(InputError, match="'three' is not one of the 2 options"):
        rv.edit_item(store, 1, answer="three")
    card = rv.edit_item(store, 1, options=[], answer="an open answer")
    assert card.item.options is None and card.item.answer == "an open answer"


@pytest.mark.parametrize("fields, message", [
    ({"question": "   "}, "the question cannot be empty"),
    ({"answer": ""}, "the answer cannot be empty"),
    ({"difficulty": 0.99}, "difficulty must be between 1 and 5"),
    ({"difficulty": 5.01}, "difficulty must be between 1 and 5"),
])
def test_edit_refuses_what_a_curator_could_not_mean(run, fields, message):
    store, _, _ = run
    with pytest.raises(InputError, match=message):
        rv.edit_item(store, 1, **fields)
    assert not store.items.get(1).edited


def test_edit_takes_the_ends_of_the_difficulty_range_a_discipline_and_no_difficulty(run):
    store, _, _ = run
    assert rv.edit_item(store, 1, difficulty=1).item.difficulty == 1.0
    assert rv.edit_item(store, 1, difficulty=5).item.difficulty == 5.0
    assert rv.edit_item(store, 1, difficulty=None).item.difficulty is None
    assert rv.edit_item(store, 1, discipline="Chemistry").item.discipline == "Chemistry"


def test_edit_of_an_unknown_field_or_a_failed_attempt_is_refused(run):
    store, _, _ = run
    with pytest.raises(ConfigError, match=r"cannot edit \['status'\]"):
        rv.edit_item(store, 1, status="accepted")
    with pytest.raises(InputError, match="failed attempt"):
        rv.edit_item(store, 6, question="Now it has one?")
    with pytest.raises(NotFoundError):
        rv.edit_item(store, 999, question="x")


# -- comparing runs --------------------------------------------------------------------------------------


def test_compare_runs_flattens_settings_marks_differences_and_hides_templates_and_curves(sample_store):
    a = sample(sample_store, WalkParams(), 20, seed=1, save=True).run_id
    b = sample(sample_store, WalkParams(w_cov=3.0), 20, seed=1, save=True).run_id
    sample_store.runs.update(a, config={**sample_store.runs.get(a).config,
                                        "synthesis": {"template": "A {kps}", "per_bundle": 2}})
    sample_store.runs.update(b, config={**sample_store.runs.get(b).config,
                                        "synthesis": {"template": "B {kps}", "per_bundle": 2}})
    cmp = rv.compare_runs(sample_store, a, b)
    rows = {(r["section"], r["key"]): r for r in cmp["rows"]}
    assert cmp["a"] == a and cmp["b"] == b
    w_cov = rows[("config", "w_cov")]
    assert (w_cov["a"], w_cov["b"], w_cov["differs"]) == (1.0, 3.0, True)
    assert rows[("config", "w_pop")]["differs"] is False
    assert rows[("config", "graph.nodes")]["differs"] is False  # nested settings are flattened
    template = rows[("config", "synthesis.template")]
    assert (template["a"], template["b"], template["differs"]) == ("(template)", "(template)", True)
    assert rows[("config", "synthesis.per_bundle")]["differs"] is False
    assert not any("coverage_curve" in key for _, key in rows)
    assert isinstance(rows[("metrics", "discipline_shares")]["a"], dict)  # kept whole, not flattened
    assert ("metrics", "kp_coverage") in rows and ("baseline", "kp_coverage") in rows
    assert rows[("metrics", "kp_coverage")]["differs"] is True


def test_compare_runs_of_a_missing_run_is_an_error(sample_store):
    a = sample(sample_store, WalkParams(), 5, seed=1, save=True).run_id
    with pytest.raises(NotFoundError):
        rv.compare_runs(sample_store, a, a + 1)


# -- export: which items and what each record says -------------------------------------------------------


def test_export_statuses_choose_items_and_failed_attempts_never_leave(run):
    store, rid, _ = run
    exported = {s: [r["provenance"]["item_id"] for r in ex.item_records(store, rid, status=s)]
                for s in ex.EXPORT_STATUSES}
    assert exported == {"accepted": [3], "unrejected": [1, 2, 3, 7, 8], "all": [1, 2, 3, 4, 5, 7, 8]}
    assert [r["status"] for r in ex.item_records(store, rid, status="all")] == [
        "generated", "generated", "accepted", "rejected", "superseded", "generated", "generated"]
    assert list(ex.item_records(store, rid)) == list(ex.item_records(store, rid, status="accepted"))


def test_export_refuses_unknown_formats_and_statuses(run):
    store, rid, _ = run
    with pytest.raises(ConfigError, match="unknown export format 'csv'"):
        next(ex.item_records(store, rid, fmt="csv"))
    with pytest.raises(ConfigError, match="status must be one of accepted, unrejected, all"):
        next(ex.item_records(store, rid, status="rejected"))


def test_record_format_carries_the_qa_and_full_provenance(run):
    store, rid, path_ids = run
    rv.edit_item(store, 3, solution="Edited solution.")
    rec = next(ex.item_records(store, rid, fmt="records", status="accepted"))
    path = store.runs.paths_by_id([path_ids[1]])[path_ids[1]]
    run_ = store.runs.get(rid)
    assert rec["id"] == f"run{rid}-item3"
    assert (rec["question"], rec["options"], rec["answer"], rec["answer_letter"]) == (
        "Question p1:0 about enzymes and kinetics?", list(OPTIONS), "beta", "B")
    assert (rec["solution"], rec["kps_used"], rec["discipline"], rec["difficulty"], rec["status"]) == (
        "Edited solution.", ["a", "b"], "Biology", 5.0, "accepted")
    assert rec["reasoning"] is None
    prov = rec["provenance"]
    assert prov == {
        "run_id": rid, "item_id": 3, "status": "accepted", "path_index": path.index, "path_kps": list(path.kps),
        "seed_ids": ["s1", "s2"], "model": "fake-r1", "offline": False, "parent_id": None, "operation": None,
        "edited": True, "original": prov["original"], "edited_at": prov["edited_at"],
        "config_hash": config_hash(run_.config), "settings": run_.config,
    }
    assert prov["original"]["solution"] == "Solution of p1:0." and prov["edited_at"] > 0


def test_record_of_an_unedited_rewrite_without_a_path_index_and_offline_models(run):
    store, rid, _ = run
    recs = {r["provenance"]["item_id"]: r for r in ex.item_records(store, rid, status="all")}
    seven, eight = recs[7], recs[8]
    assert seven["options"] is None and seven["answer_letter"] is None
    assert seven["provenance"]["offline"] is True and seven["provenance"]["model"] == "offline-rewriter"
    assert (seven["provenance"]["parent_id"], seven["provenance"]["operation"]) == (5, "combine")
    assert seven["provenance"]["edited"] is False and seven["provenance"]["original"] is None
    assert seven["provenance"]["edited_at"] is None
    assert eight["provenance"]["path_index"] is None and eight["provenance"]["path_kps"] == []
    assert recs[1]["provenance"]["offline"] is False
    with store.transaction() as conn:
        conn.execute("UPDATE items SET model = 'offline-composer' WHERE id = 1")
    assert next(ex.item_records(store, rid, status="all"))["provenance"]["offline"] is True


def test_messages_format_is_a_user_question_and_an_assistant_answer_with_metadata_apart(run):
    store, rid, _ = run
    msgs = {m["metadata"]["item_id"]: m for m in ex.item_records(store, rid, fmt="messages", status="all")}
    mc = msgs[1]
    assert [m["role"] for m in mc["messages"]] == ["user", "assistant"]
    assert mc["messages"][0]["content"] == ("Question p0:0 about enzymes and kinetics?\n\n"
                                            "A. alpha\nB. beta\nC. gamma\nD. delta")
    assert mc["messages"][1]["content"] == "Solution of p0:0.\n\nAnswer: B. beta"
    assert mc["metadata"]["discipline"] == "Biology" and mc["metadata"]["difficulty"] == 2.0
    assert mc["metadata"]["status"] == "generated" and mc["metadata"]["run_id"] == rid
    assert set(mc) == {"messages", "metadata"}
    open_q = msgs[7]  # no options, no solution: the answer alone, without a letter
    assert open_q["messages"][0]["content"] == "Question p2:0/r1 about enzymes and kinetics?"
    assert open_q["messages"][1]["content"] == "Answer: Km"
    for m in msgs.values():  # provenance never leaks into what the model is trained on
        text = " ".join(x["content"] for x in m["messages"])
        assert "run_id" not in text and "fake-r1" not in text and "provenance" not in text


def test_messages_with_a_blank_solution_start_with_the_answer(run):
    store, rid, _ = run
    with store.transaction() as conn:
        conn.execute("UPDATE items SET solution = '   ' WHERE id = 2")
    two = next(m for m in ex.item_records(store, rid, fmt="messages", status="all") if m["metadata"]["item_id"] == 2)
    assert two["messages"][1]["content"] == "Answer: B. beta"


def test_format_prompt_lists_options_by_letter():
    assert ex.format_prompt("Q?", None) == "Q?"
    assert ex.format_prompt("Q?", []) == "Q?"
    assert ex.format_prompt("Q?", ("x", "y")) == "Q?\n\nA. x\nB. y"


# -- export: files -------------------------------------------------------------------------------------------


def test_export_run_writes_items_with_the_settings_it_used(run, tmp_path):
    store, rid, _ = run
    out = tmp_path / "sub" / "run.jsonl"
    result = ex.export_run(store, rid, out, fmt="messages", status="unrejected")
    assert result == {"run_id": rid, "kind": "item", "records": 5, "out": str(out), "format": "messages",
                      "status": "unrejected"}
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [m["metadata"]["item_id"] for m in lines] == [1, 2, 3, 7, 8]
    assert not list(tmp_path.glob("sub/*.part"))


def test_export_of_a_sample_run_writes_its_paths_and_bundles(sample_store, tmp_path):
    rid = sample(sample_store, WalkParams(), 4, seed=2, save=True).run_id
    out = tmp_path / "paths.jsonl"
    result = ex.export_run(sample_store, rid, out, fmt="messages")
    assert result == {"run_id": rid, "kind": "path", "records": 4, "out": str(out), "format": "records"}
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    paths = sample_store.runs.paths(rid)
    assert [r["path_index"] for r in rows] == [p.index for p in paths]
    first = rows[0]
    assert first["type"] == "path" and first["run_id"] == rid and first["kps"] == list(paths[0].kps)
    assert first["discipline"] == paths[0].discipline and first["seed_ids"] == list(paths[0].seed_ids)
    assert [s["id"] for s in first["seeds"]] == list(paths[0].seed_ids)
    seed = sample_store.seeds.get([paths[0].seed_ids[0]])[0]
    assert first["seeds"][0] == {"id": seed.id, "question": seed.question,
                                 "options": list(seed.options) if seed.options else None, "answer": seed.answer,
                                 "answer_letter": seed.answer_letter, "discipline": seed.discipline,
                                 "subject": seed.subject, "difficulty": seed.difficulty}
    run_ = sample_store.runs.get(rid)
    assert first["provenance"] == {"run_id": rid, "config_hash": config_hash(run_.config), "settings": run_.config}


def test_export_run_refuses_a_bad_format_a_missing_run_and_bad_targets(run, tmp_path):
    store, rid, _ = run
    tmp_path = tmp_path / "exports"
    tmp_path.mkdir()
    with pytest.raises(ConfigError, match="unknown export format"):
        ex.export_run(store, rid, tmp_path / "x.jsonl", fmt="csv")
    with pytest.raises(NotFoundError):
        ex.export_run(store, rid + 50, tmp_path / "x.jsonl")
    with pytest.raises(InputError, match="the export file name is empty"):
        ex.export_run(store, rid, "  ")
    with pytest.raises(InputError, match="is a folder"):
        ex.export_run(store, rid, tmp_path)
    assert not list(tmp_path.iterdir())


def test_write_jsonl_gives_an_ordinary_file_by_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        n = ex.write_jsonl(iter([{"a": "é"}, {"b": 2}]), tmp_path / "out.jsonl")
    finally:
        os.umask(old)
    out = tmp_path / "out.jsonl"
    assert n == 2 and out.read_text(encoding="utf-8") == '{"a": "é"}\n{"b": 2}\n'
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_write_jsonl_leaves_no_half_file_when_the_records_fail(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("old export\n")

    def broken():
        yield {"a": 1}
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        ex.write_jsonl(broken(), out)
    assert out.read_text() == "old export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_write_jsonl_into_an_unwritable_place_says_where(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match=r"cannot write .*file/out\.jsonl"):
        ex.write_jsonl(iter([{"a": 1}]), blocker / "out.jsonl")


def test_write_jsonl_that_cannot_replace_the_target_cleans_up(tmp_path):
    target = tmp_path / "out.jsonl"
    target.mkdir()
    (target / "keep").write_text("")
    with pytest.raises(InputError):
        ex.write_jsonl(iter([{"a": 1}]), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


# -- the rules' edges (each kills a way the code could be subtly wrong) -------------------------------


def test_list_items_shows_200_at_most_unless_asked(run):
    store, rid, path_ids = run
    store.items.insert([item(rid, path_ids[0], f"bulk:{i}") for i in range(200)])
    assert len(rv.list_items(store, rid)) == 200
    assert len(rv.list_items(store, rid, limit=300)) == 208


def test_errors_name_what_is_allowed_in_full(run, tmp_path):
    store, rid, _ = run
    with pytest.raises(ConfigError) as err:
        rv.set_status(store, [1], "superseded")
    assert str(err.value) == "a curator can set accepted, rejected, generated, not 'superseded'"
    with pytest.raises(ConfigError) as err:
        rv.decide(store, [1], "failed")
    assert str(err.value) == "a curator can set accepted, rejected, generated, not 'failed'"
    with pytest.raises(ConfigError) as err:
        rv.edit_item(store, 1, status="accepted", model="x")
    assert str(err.value) == ("cannot edit ['model', 'status']; editable: question, options, answer, solution, "
                              "difficulty, discipline")
    for message, fields in (("the question cannot be empty", {"question": " "}),
                            ("the answer cannot be empty", {"answer": " "}),
                            ("difficulty must be between 1 and 5", {"difficulty": 6})):
        with pytest.raises(InputError) as err:
            rv.edit_item(store, 1, **fields)
        assert str(err.value) == message
    with pytest.raises(ConfigError) as err:
        next(ex.item_records(store, rid, fmt="csv"))
    assert str(err.value) == "unknown export format 'csv': use records or messages"
    with pytest.raises(ConfigError) as err:
        ex.export_run(store, rid, tmp_path / "x.jsonl", fmt="csv")
    assert str(err.value) == "unknown export format 'csv': use records or messages"
    with pytest.raises(InputError) as err:
        ex.export_run(store, rid, "")
    assert str(err.value) == "the export file name is empty: give --out FILE.jsonl"


def test_edit_treats_a_missing_question_as_empty_and_a_missing_solution_as_none(run):
    store, _, _ = run
    with pytest.raises(InputError, match="the question cannot be empty"):
        rv.edit_item(store, 1, question=None)
    assert rv.edit_item(store, 1, solution=None).item.solution == ""


@pytest.mark.parametrize("ids, current, expected", [([3, 5, 8], 9, 8), ([3, 5, 8], 6, 8), ([3, 5, 8], 4, 5)])
def test_resume_at_in_a_longer_queue(ids, current, expected):
    assert rv.resume_at(ids, current) == expected


def test_gate_kinds_break_ties_by_name(run):
    store, rid, _ = run
    with store.transaction() as conn:
        conn.execute("UPDATE items SET gate_reason = 'zeta check failed' WHERE id IN (1, 2)")
        conn.execute("UPDATE items SET gate_reason = 'alpha check failed' WHERE id IN (3, 5)")
        conn.execute("UPDATE items SET gate_reason = 'beta check failed' WHERE id = 4")
    assert rv.gate_kinds(store, rid) == [("alpha check failed", 2), ("zeta check failed", 2),
                                         ("beta check failed", 1)]


def test_compare_runs_with_settings_only_one_run_has(sample_store):
    a = sample(sample_store, WalkParams(), 10, seed=1, save=True).run_id
    b = sample(sample_store, WalkParams(), 10, seed=1, save=True).run_id
    base = sample_store.runs.get(a).config
    sample_store.runs.update(a, config={**base, "synthesis": {"template": "T {kps}", "per_bundle": 2},
                                        "mix": {"Law": 0.5, "History": 0.5}})
    sample_store.runs.update(b, config={**base, "mix": {"Law": 0.5, "History": 0.5}})
    rows = {(r["section"], r["key"]): r for r in rv.compare_runs(sample_store, a, b)["rows"]}
    template = rows[("config", "synthesis.template")]
    assert (template["a"], template["b"], template["differs"]) == ("(template)", None, True)
    per_bundle = rows[("config", "synthesis.per_bundle")]
    assert (per_bundle["a"], per_bundle["b"], per_bundle["differs"]) == (2, None, True)
    mix = rows[("config", "mix")]
    assert mix["a"] == {"Law": 0.5, "History": 0.5} and mix["differs"] is False  # kept whole
    for key in ("target_shares", "difficulty_histogram", "discipline_shares"):
        assert isinstance(rows[("metrics", key)]["a"], dict)
        assert not any(k.startswith(f"{key}.") for _, k in rows)
    rows = {(r["section"], r["key"]): r for r in rv.compare_runs(sample_store, b, a)["rows"]}  # the other way
    template = rows[("config", "synthesis.template")]
    assert (template["a"], template["b"], template["differs"]) == (None, "(template)", True)
    sample_store.runs.update(b, config={**base, "synthesis": {"template": "T {kps}", "per_bundle": 2}})
    rows = {(r["section"], r["key"]): r for r in rv.compare_runs(sample_store, a, b)["rows"]}
    assert rows[("config", "synthesis.template")]["differs"] is False


def test_path_records_of_a_seed_without_options(sample_store, tmp_path):
    from linkqa_core.ingest.load import ingest
    from linkqa_core.records import Path as KPPath

    data = b'{"question": "Name the enzyme that unwinds DNA.", "answer": "helicase", "subject": "biology"}\n'
    ingest(sample_store, data, filename="open.jsonl")
    sid = sample_store.query("SELECT id FROM seeds WHERE answer = 'helicase'")[0][0]
    rid = sample_store.runs.create("sample", {"n_paths": 1}, paths=[
        KPPath(index=0, kps=("helicase",), discipline="Biology", seed_ids=(sid,))])
    [record] = list(ex.path_records(sample_store, rid))
    assert record["seeds"][0]["options"] is None and record["seeds"][0]["answer"] == "helicase"


def test_export_run_exports_the_accepted_items_by_default(run, tmp_path):
    store, rid, _ = run
    result = ex.export_run(store, rid, tmp_path / "a" / "b" / "c.jsonl")  # missing folders are made
    assert result["status"] == "accepted" and result["records"] == 1
    assert json.loads((tmp_path / "a" / "b" / "c.jsonl").read_text())["provenance"]["item_id"] == 3


def test_write_jsonl_writes_a_part_file_beside_the_target_first(tmp_path):
    out = tmp_path / "run.jsonl"
    seen = []

    def records():
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        yield {"q": "ü"}

    ex.write_jsonl(records(), out)
    [names] = seen
    assert len(names) == 1 and names[0].startswith("run.jsonl") and names[0].endswith(".part")
    assert out.read_bytes() == '{"q": "ü"}\n'.encode("utf-8")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_write_jsonl_mode_follows_any_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        ex.write_jsonl(iter([{}]), tmp_path / "out.jsonl")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.jsonl").stat().st_mode) == mode


def test_write_jsonl_that_cannot_put_the_file_in_place_says_why_and_cleans_up(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ex.os, "replace", refuse)
    with pytest.raises(InputError) as err:
        ex.write_jsonl(iter([{"a": 1}]), tmp_path / "out.jsonl")
    assert str(err.value) == f"cannot write {tmp_path / 'out.jsonl'}: No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_write_jsonl_into_a_file_as_folder_gives_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError) as err:
        ex.write_jsonl(iter([{"a": 1}]), blocker / "out.jsonl")
    assert str(err.value) == f"cannot write {blocker / 'out.jsonl'}: File exists"


def test_gate_kinds_sum_reasons_of_one_kind_before_ordering(run):
    store, rid, _ = run
    with store.transaction() as conn:  # zeta: one reason on two items; alpha: two reasons of one kind
        conn.execute("UPDATE items SET gate_reason = 'zeta check failed' WHERE id IN (1, 2)")
        conn.execute("UPDATE items SET gate_reason = 'alpha check (1)' WHERE id = 3")
        conn.execute("UPDATE items SET gate_reason = 'alpha check (2)' WHERE id = 4")
        conn.execute("UPDATE items SET gate_reason = NULL WHERE id > 4")
    assert rv.gate_kinds(store, rid) == [("alpha check (…)", 2), ("zeta check failed", 2)]

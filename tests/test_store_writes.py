"""The Store's write paths, one behaviour per test: what each write stores, what it leaves alone,
what it returns, and that a failed write leaves nothing behind.

Everything here runs in one process on a fresh file (the ``store`` fixture): a second writer
is a second :class:`Store` on the same file, which meets SQLite's lock exactly as another
process would. The tests stay fast because scripts/mutation runs them once per mutant.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import threading
import time

import pytest

from linkqa_core.errors import DamagedDatabase, DatabaseBusy, InputError, LeaseHeld, NotFoundError
from linkqa_core.records import Item, Path, Seed
from linkqa_core.store import GRAPH_VERSION, SCHEMA_VERSION, Store
from linkqa_core.store.llm import CallRow

# -- helpers ---------------------------------------------------------------------------------


def seed(i: int, **kw) -> Seed:
    return Seed(id=f"s{i}", question=f"Question {i}?", answer=f"Answer {i}", **kw)


def rid_of(store: Store, seed_id: str) -> int:
    return int(store.scalar("SELECT rid FROM seeds WHERE id = ?", (seed_id,)))


def linked(store: Store, seed_id: str) -> set[str]:
    return store.seeds.kp_names([seed_id]).get(seed_id, set())


def item(slot: str, run_id: int, **kw) -> Item:
    base = dict(question=f"Q {slot}?", answer=f"A {slot}", solution=f"because {slot}", run_id=run_id, slot=slot,
                options=("x", "y"), kps_used=("kp a",), seed_ids=("s1",), discipline="Physics", difficulty=3.0,
                model="m", path_id=None, prompt_tokens=5, completion_tokens=7)
    base.update(kw)
    return Item(**base)


def status_of(store: Store, item_id: int) -> str:
    return store.items.get(item_id).status


@pytest.fixture
def run_id(store) -> int:
    return store.runs.create("synthesis", {"n": 1})


# -- seeds -------------------------------------------------------------------------------------


def test_adding_seeds_stores_every_field_and_counts_duplicates_by_id(store):
    s = Seed(id="a1", question="Q?", answer="A", options=("p", "q"), answer_letter="B", discipline="Physics",
             subject="optics", difficulty=2.5, difficulty_estimated=True, source="f.jsonl", metadata={"k": "é"})
    assert store.seeds.add([s, seed(2)]) == (2, 0)
    assert store.seeds.add([s, seed(3)]) == (1, 1)
    assert store.seeds.count() == 3
    assert store.seeds.get(["a1"]) == [s]
    plain = store.seeds.get(["s2"])[0]
    assert plain.options is None and plain.metadata == {} and plain.difficulty_estimated is False
    assert store.scalar("SELECT metadata FROM seeds WHERE id = 'a1'") == '{"k": "é"}'  # UTF-8 kept
    assert store.scalar("SELECT metadata FROM seeds WHERE id = 's2'") is None
    assert store.scalar("SELECT options FROM seeds WHERE id = 'a1'") == '["p", "q"]'


def test_adding_seeds_counts_a_change_of_the_graph_only_when_something_was_added(store):
    assert store.version() == 0
    store.seeds.add([seed(1)])
    assert store.version() == 1 and store.version(GRAPH_VERSION) == 1
    store.seeds.add([seed(1)])
    assert store.version() == 1
    store.seeds.add([])
    assert store.version() == 1


def test_a_bulk_add_larger_than_one_batch_stores_every_row(store):
    assert store.seeds.add(seed(i) for i in range(5003)) == (5003, 0)
    assert store.seeds.count() == 5003
    assert store.seeds.add(seed(i) for i in range(4999, 5005)) == (2, 4)


def test_estimates_set_difficulty_as_estimated_and_the_discipline(store):
    store.seeds.add([seed(1), seed(2)])
    r1, r2 = rid_of(store, "s1"), rid_of(store, "s2")
    store.seeds.set_estimates([(4.0, r1)], [("Chemistry", r2)])
    one, two = store.seeds.get(["s1", "s2"])
    assert (one.difficulty, one.difficulty_estimated, one.discipline) == (4.0, True, "Other")
    assert (two.difficulty, two.difficulty_estimated, two.discipline) == (None, False, "Chemistry")


def test_a_failed_bulk_add_stores_no_seed(store):
    store.seeds.add([seed(1)])

    def rows():
        yield from (seed(i) for i in range(2, 6))
        raise RuntimeError("the reader broke")

    with pytest.raises(RuntimeError, match="the reader broke"):
        store.seeds.add(rows())
    assert store.seeds.count() == 1 and store.version() == 1


# -- knowledge points --------------------------------------------------------------------------


def test_replacing_links_creates_kps_with_labels_and_replaces_only_the_seeds_named(store):
    store.seeds.add([seed(1), seed(2)])
    r1, r2 = rid_of(store, "s1"), rid_of(store, "s2")
    store.kps.replace_links({r1: [("newton law", "Newton law"), ("force", "force")], r2: [("force", "force")]})
    assert linked(store, "s1") == {"newton law", "force"} and linked(store, "s2") == {"force"}
    assert store.kps.label_of("newton law") == "Newton law"
    assert store.scalar("SELECT label FROM kps WHERE name = 'force'") is None  # label equal to key: not stored
    assert store.kps.label_of("force") == "force"
    version = store.version()
    store.kps.replace_links({r1: [("mass", "Mass"), ("newton law", "NEWTON LAW")]})
    assert linked(store, "s1") == {"mass", "newton law"} and linked(store, "s2") == {"force"}
    assert store.kps.label_of("newton law") == "Newton law"  # a stored key keeps its first label
    assert store.version() == version + 1
    assert store.kps.count() == 3 and store.kps.keys_in_use() == ["force", "mass", "newton law"]


def test_replacing_links_with_no_kps_unlinks_the_seed(store):
    store.seeds.add([seed(1)])
    r1 = rid_of(store, "s1")
    store.kps.replace_links({r1: [("a", "a"), ("a", "a")]})
    assert store.scalar("SELECT count(*) FROM seed_kps") == 1  # a repeated KP is one link
    store.kps.replace_links({r1: []})
    assert linked(store, "s1") == set() and store.seeds.count_without_kps() == 1


def _graph(store: Store) -> dict[str, int]:
    store.seeds.add([seed(i) for i in range(1, 5)])
    rids = {f"s{i}": rid_of(store, f"s{i}") for i in range(1, 5)}
    store.kps.replace_links({rids["s1"]: [("heat", "Heat"), ("energy", "Energy")],
                             rids["s2"]: [("heat", "Heat")], rids["s3"]: [("energy", "Energy")],
                             rids["s4"]: [("work", "Work")]})
    return rids


def test_merging_moves_links_once_and_keeps_the_source_as_an_alias(store):
    _graph(store)
    run = store.runs.create("sample", {}, paths=[Path(0, ("Heat",), "Physics", ("s1",),
                                                      kp_ids=(store.kps.id_of("heat"),))])
    version = store.version()
    moved = store.kps.merge(["heat"], "energy")
    assert moved == 1  # s1 already named energy: only s2's link moves
    assert linked(store, "s1") == {"energy"} and linked(store, "s2") == {"energy"}
    assert store.kps.id_of("heat") is None and store.kps.aliases() == {"heat": "energy"}
    assert store.kps.label_of("energy") == "Energy"  # no label given: unchanged
    assert store.runs.kp_visits(run) == {store.kps.id_of("energy"): 1}  # the ledger follows the merge
    assert store.version() == version + 1


def test_merging_into_a_new_key_creates_it_with_its_label(store):
    _graph(store)
    assert store.kps.merge(["heat", "work"], "thermo", "Thermodynamics") == 3
    assert store.kps.label_of("thermo") == "Thermodynamics"
    assert store.kps.merge(["energy"], "thermo", "Thermo!") == 1  # s1 names thermo already: only s3's moves
    assert linked(store, "s1") == {"thermo"} and linked(store, "s3") == {"thermo"}
    assert store.kps.label_of("thermo") == "Thermo!"  # an existing target takes the label given
    assert store.kps.aliases() == {"heat": "thermo", "work": "thermo", "energy": "thermo"}


def test_merging_re_points_aliases_of_the_source(store):
    _graph(store)
    store.kps.merge(["heat"], "energy")
    store.kps.merge(["energy"], "work")
    assert store.kps.aliases() == {"heat": "work", "energy": "work"}


def test_merging_a_kp_into_itself_changes_nothing(store):
    _graph(store)
    assert store.kps.merge(["heat"], "heat", "Heat") == 0
    assert linked(store, "s2") == {"heat"} and store.kps.aliases() == {}
    assert store.kps.merge(["heat", "work"], "heat") == 1  # the target among the sources is passed over
    assert linked(store, "s4") == {"heat"} and store.kps.aliases() == {"work": "heat"}


def test_a_new_merge_target_whose_label_is_its_key_stores_no_label(store):
    _graph(store)
    store.kps.merge(["work"], "labour", "labour")
    assert store.scalar("SELECT label FROM kps WHERE name = 'labour'") is None
    assert store.kps.label_of("labour") == "labour"


def test_a_merge_naming_an_unknown_kp_changes_nothing(store):
    _graph(store)
    version = store.version()
    with pytest.raises(NotFoundError, match="no knowledge point named 'nope'"):
        store.kps.merge(["heat", "nope"], "fresh", "Fresh")
    assert store.kps.id_of("fresh") is None and linked(store, "s2") == {"heat"}
    assert store.kps.aliases() == {} and store.version() == version
    with pytest.raises(InputError, match="^the target KP name is empty$"):
        store.kps.merge(["heat"], "")


def test_renaming_keeps_the_old_key_as_an_alias(store):
    _graph(store)
    version = store.version()
    store.kps.rename("heat", "heat transfer", "Heat transfer")
    assert store.kps.id_of("heat") is None and linked(store, "s2") == {"heat transfer"}
    assert store.kps.label_of("heat transfer") == "Heat transfer"
    assert store.kps.aliases() == {"heat": "heat transfer"}
    assert store.version() == version + 1


def test_renaming_to_the_same_key_changes_only_the_label(store):
    _graph(store)
    store.kps.rename("heat", "heat", "HEAT")
    assert store.kps.label_of("heat") == "HEAT" and store.kps.aliases() == {}
    store.kps.rename("heat", "heat", "heat")
    assert store.scalar("SELECT label FROM kps WHERE name = 'heat'") is None
    with pytest.raises(NotFoundError, match="no knowledge point named 'cold'"):
        store.kps.rename("cold", "colder", "Colder")


# -- runs and paths ----------------------------------------------------------------------------


def test_a_new_run_stores_its_config_metrics_and_paths_together(store):
    paths = [Path(0, ("A", "B"), "Physics", ("s1", "s2"), link_strength=(2, 1), kp_ids=(7, 8)),
             Path(1, ("C",), "Biology", ("s3",), kp_ids=(9,))]
    rid = store.runs.create("sample", {"b": 1, "a": [1, 2]}, name="first", metrics={"m": 0.5},
                            baseline={"m": 0.25}, parent_run=None, paths=paths)
    run = store.runs.get(rid)
    assert (run.kind, run.name, run.status, run.config) == ("sample", "first", "created", {"a": [1, 2], "b": 1})
    assert run.metrics == {"m": 0.5} and run.baseline == {"m": 0.25} and run.parent_run is None
    assert run.created_at == run.updated_at > 0
    assert store.scalar("SELECT config FROM runs WHERE id = ?", (rid,)) == '{"a": [1, 2], "b": 1}'  # sorted keys
    stored = store.runs.paths(rid)
    assert [(p.index, p.kps, p.discipline, p.seed_ids) for p in stored] == \
        [(0, ("A", "B"), "Physics", ("s1", "s2")), (1, ("C",), "Biology", ("s3",))]
    assert store.scalar("SELECT link_strength FROM paths WHERE idx = 0") == 1.5
    assert store.runs.kp_visits(rid) == {7: 1, 8: 1, 9: 1}
    assert [tuple(r) for r in store.query("SELECT pos, kp_id FROM path_kps ORDER BY path_id, pos")] == \
        [(0, 7), (1, 8), (0, 9)]
    child = store.runs.create("synthesis", {}, parent_run=rid, status="synthesizing")
    assert store.runs.get(child).parent_run == rid
    assert store.runs.get(child).metrics is None and store.runs.get(child).baseline is None


def test_a_run_whose_paths_fail_is_not_stored(store):
    bad = [Path(0, ("A",), "Physics", ("s1",)), Path(0, ("B",), "Physics", ("s2",))]  # same index twice
    with pytest.raises(sqlite3.IntegrityError):
        store.runs.create("sample", {}, paths=bad)
    assert store.runs.list() == [] and store.scalar("SELECT count(*) FROM paths") == 0


def test_paths_added_later_continue_the_numbering(store):
    rid = store.runs.create("sample", {}, paths=[Path(0, ("A",), "Physics", ("s1",), kp_ids=(1,))])
    start = store.runs.next_path_index(rid)
    assert start == 1
    store.runs.add_paths(rid, [Path(0, ("B",), "Physics", ("s2",), kp_ids=(2,)),
                               Path(1, ("C",), "Physics", ("s3",), kp_ids=(1,))], start=start)
    assert [p.index for p in store.runs.paths(rid)] == [0, 1, 2]
    assert store.runs.paths(rid, index=2)[0].kps == ("C",)
    assert store.runs.path_count(rid) == 3 and store.runs.next_path_index(rid) == 3
    assert store.runs.kp_visits(rid) == {1: 2, 2: 1}
    other = store.runs.create("sample", {}, paths=[Path(0, ("A",), "Physics", ("s1",), kp_ids=(1,))])
    assert store.runs.kp_visits() == {1: 3, 2: 1} and store.runs.kp_visits(other) == {1: 1}
    assert store.runs.next_path_index(store.runs.create("sample", {})) == 0


def test_updating_a_run_encodes_json_fields_and_moves_updated_at(store):
    rid = store.runs.create("synthesis", {"a": 1})
    before = store.runs.get(rid)
    time.sleep(0.01)
    store.runs.update(rid, status="done", metrics={"z": 1, "a": 2}, name="renamed", config={"b": 2})
    after = store.runs.get(rid)
    assert (after.status, after.metrics, after.name, after.config) == ("done", {"z": 1, "a": 2}, "renamed", {"b": 2})
    assert after.updated_at > before.updated_at and after.created_at == before.created_at
    assert store.scalar("SELECT metrics FROM runs WHERE id = ?", (rid,)) == '{"a": 2, "z": 1}'
    assert store.scalar("SELECT status FROM runs WHERE id = ?", (rid,)) == "done"  # not JSON-encoded
    with pytest.raises(ValueError, match=r"cannot update run fields \['kind'\]"):
        store.runs.update(rid, kind="sample")


def test_a_working_run_without_a_live_lease_reads_as_interrupted(store):
    from linkqa_core.store.runs import run_lease

    rid = store.runs.create("synthesis", {}, status="synthesizing")
    assert store.runs.get(rid).status == "interrupted"
    with store.lease(run_lease(rid), "synthesis of run 1"):
        assert store.runs.get(rid).status == "synthesizing"
        assert [r.status for r in store.runs.list()] == ["synthesizing"]
    assert [r.status for r in store.runs.list("synthesis")] == ["interrupted"]
    store.runs.update(rid, status="done")
    assert store.runs.get(rid).status == "done"


def test_listing_runs_counts_paths_and_items_and_filters_by_kind(store):
    sample = store.runs.create("sample", {"seed": 4}, paths=[Path(0, ("A",), "P", ("s1",))])
    synth = store.runs.create("synthesis", {"sample_run": sample})
    store.items.insert([item("a", synth), item("b", synth)])
    runs = {r.id: r for r in store.runs.list()}
    assert (runs[sample].n_paths, runs[sample].n_items) == (1, 0)
    assert (runs[synth].n_paths, runs[synth].n_items) == (0, 2)
    assert [r.id for r in store.runs.list("sample")] == [sample]
    assert store.runs.find("sample_run", sample, kind="synthesis") == synth
    assert store.runs.find("seed", 4) == sample and store.runs.find("seed", 5) is None
    with pytest.raises(NotFoundError, match="no run 99"):
        store.runs.get(99)
    with pytest.raises(NotFoundError):
        store.runs.paths(99)


# -- items ---------------------------------------------------------------------------------------


def test_inserting_items_skips_a_taken_slot_and_counts_only_new_ones(store, run_id):
    assert store.items.insert([item("a", run_id), item("b", run_id)]) == 2
    assert store.items.insert([item("a", run_id, question="other"), item("c", run_id)]) == 1
    assert store.items.total(run_id) == 3
    got = store.items.of_run(run_id)
    assert [i.slot for i in got] == ["a", "b", "c"] and got[0].question == "Q a?"
    first = got[0]
    assert (first.options, first.kps_used, first.seed_ids, first.solution) == (("x", "y"), ("kp a",), ("s1",),
                                                                              "because a")
    assert (first.prompt_tokens, first.completion_tokens, first.status) == (5, 7, "generated")
    assert first.created_at == first.updated_at > 0 and first.original is None and first.edited_at is None


def test_a_failed_attempt_is_stored_without_its_text(store, run_id):
    store.items.insert([item("f", run_id, status="failed", gate_reason="no JSON", raw="garbage")])
    row = store.query("SELECT question, options, answer, solution, kps_used, raw, gate_reason FROM items")[0]
    assert tuple(row) == (None, None, None, None, None, "garbage", "no JSON")
    got = store.items.of_run(run_id)[0]
    assert got.question == "" and got.options is None and got.kps_used == () and got.status == "failed"
    assert got.answer == "" and got.solution == ""
    no_options = item("n", run_id, options=None)
    store.items.insert([no_options])
    assert store.scalar("SELECT options FROM items WHERE slot = 'n'") is None


def test_a_rewrite_supersedes_its_generated_parent_only(store, run_id):
    store.items.insert([item("p1", run_id), item("p2", run_id), item("p3", run_id)])
    p1, p2, p3 = store.items.ids(run_id)
    store.items.set_status([p2], "accepted")
    kept = store.items.insert_rewrites([item("p1>1", run_id, parent_id=p1), item("p2>1", run_id, parent_id=p2),
                                        item("p3>1", run_id, parent_id=p3, status="failed")])
    assert kept == 2
    assert [status_of(store, i) for i in (p1, p2, p3)] == ["superseded", "accepted", "generated"]
    assert store.items.insert_rewrites([item("p1>1", run_id, parent_id=p1)]) == 0  # slot taken: nothing new
    child = next(i for i in store.items.of_run(run_id) if i.slot == "p1>1")
    assert [i.id for i in store.items.lineage(child)] == [p1]


def test_lineage_stops_at_twenty_parents_by_default(store, run_id):
    store.items.insert([item("c0", run_id)])
    for k in range(1, 23):
        store.items.insert_rewrites([item(f"c{k}", run_id, parent_id=store.items.ids(run_id)[-1])])
    last = store.items.get(store.items.ids(run_id)[-1])
    assert [i.slot for i in store.items.lineage(last)] == [f"c{k}" for k in range(21, 1, -1)]


def test_an_item_reads_back_field_for_field(store, run_id):
    it = item("a", run_id, path_id=None, parent_id=None, model="deepseek-r1", reasoning="think", raw="{...}",
               gate_reason="ok?", operation="add_step", status="accepted")
    store.items.insert([it])
    got = store.items.of_run(run_id)[0]
    expected = {**it.__dict__, "id": got.id, "created_at": got.created_at, "updated_at": got.updated_at}
    assert got.__dict__ == expected
    store.items.insert([item("p", run_id, path_id=None)])
    with store.transaction() as conn:
        conn.execute("UPDATE items SET path_id = 77, parent_id = 1, run_id = ? WHERE slot = 'p'", (run_id,))
    p = store.items.of_run(run_id)[1]
    assert (p.path_id, p.parent_id, p.run_id) == (77, 1, run_id)


def test_lineage_follows_parents_nearest_first_up_to_a_depth(store, run_id):
    store.items.insert([item("g0", run_id)])
    parent = store.items.ids(run_id)[0]
    for k in range(1, 4):
        store.items.insert_rewrites([item(f"g{k}", run_id, parent_id=parent)])
        parent = store.items.ids(run_id)[-1]
    last = store.items.get(parent)
    chain = store.items.lineage(last)
    assert [i.slot for i in chain] == ["g2", "g1", "g0"]
    assert [i.slot for i in store.items.lineage(last, depth=2)] == ["g2", "g1"]
    orphan = item("o", run_id, parent_id=12345)
    assert store.items.lineage(orphan) == []


def test_ratings_set_difficulty_as_a_float(store, run_id):
    store.items.insert([item("a", run_id), item("b", run_id)])
    a, b = store.items.ids(run_id)
    assert store.items.set_difficulty([(a, 4), (b, 1.5)]) == 2
    assert store.items.get(a).difficulty == 4.0 and store.items.get(b).difficulty == 1.5
    assert store.scalar("SELECT typeof(difficulty) FROM items WHERE id = ?", (a,)) == "real"


def test_a_gate_rejects_only_items_still_in_the_expected_status(store, run_id):
    store.items.insert([item("a", run_id), item("b", run_id), item("c", run_id)])
    a, b, c = store.items.ids(run_id)
    store.items.set_status([b], "accepted")
    assert store.items.reject([(a, "duplicate of 3"), (b, "too easy")]) == 1
    assert (status_of(store, a), store.items.get(a).gate_reason) == ("rejected", "duplicate of 3")
    assert (status_of(store, b), store.items.get(b).gate_reason) == ("accepted", None)
    assert store.items.reject([(b, "too easy")], only_status="accepted") == 1
    assert status_of(store, c) == "generated"


def test_a_curators_decision_leaves_failed_and_superseded_items_alone(store, run_id):
    store.items.insert([item("a", run_id), item("f", run_id, status="failed"), item("s", run_id)])
    a, f, s = store.items.ids(run_id)
    store.items.insert_rewrites([item("s>1", run_id, parent_id=s)])
    assert store.items.set_status([a, f, s], "accepted") == 1
    assert [status_of(store, i) for i in (a, f, s)] == ["accepted", "failed", "superseded"]
    assert store.items.get(a).gate_reason is None
    assert store.items.set_status([a], "rejected", reason="wrong answer") == 1
    assert store.items.get(a).gate_reason == "wrong answer"
    assert store.items.set_status([a], "accepted") == 1
    assert store.items.get(a).gate_reason == "wrong answer"  # no reason given: the old one stays


def test_a_bulk_decision_on_more_ids_than_one_statement_takes(store, run_id):
    store.items.insert([item(f"i{k}", run_id) for k in range(905)])
    ids = store.items.ids(run_id)
    assert store.items.set_status(ids, "accepted") == 905
    assert store.items.counts(run_id) == {"accepted": 905}


def test_the_first_edit_keeps_the_item_as_generated(store, run_id):
    store.items.insert([item("a", run_id)])
    (a,) = store.items.ids(run_id)
    edit = {"question": "Better Q?", "options": ["x", "z"], "answer": "z", "solution": "s", "difficulty": 4.0,
            "discipline": "Chemistry"}
    store.items.edit(a, edit)
    got = store.items.get(a)
    assert (got.question, got.options, got.answer, got.solution, got.difficulty, got.discipline) == \
        ("Better Q?", ("x", "z"), "z", "s", 4.0, "Chemistry")
    first = {"question": "Q a?", "options": ["x", "y"], "answer": "A a", "solution": "because a",
             "difficulty": 3.0, "discipline": "Physics"}
    assert got.original == first and got.edited_at == got.updated_at and got.edited_at >= got.created_at
    store.items.edit(a, {**edit, "question": "Best Q?", "options": []})
    again = store.items.get(a)
    assert again.original == first and again.question == "Best Q?" and again.options is None
    with pytest.raises(NotFoundError, match="no item 999"):
        store.items.edit(999, edit)


def test_an_original_with_unicode_is_stored_as_utf8(store, run_id):
    store.items.insert([item("a", run_id, question="Wärme?")])
    (a,) = store.items.ids(run_id)
    store.items.edit(a, {"question": "Q", "options": None, "answer": "A", "solution": "", "difficulty": None,
                         "discipline": "Physics"})
    assert "Wärme?" in store.scalar("SELECT original FROM items WHERE id = ?", (a,))


# -- the LLM ledger ----------------------------------------------------------------------------


def call(key: str, run_id: int | None = 1, **kw) -> CallRow:
    base = dict(run_id=run_id, stage="synthesis", key=key, endpoint="http://127.0.0.1:9/v1", model="m",
                status="ok", cached=False, attempts=1, prompt_tokens=10, completion_tokens=20, reasoning_tokens=5,
                latency_s=0.123456, error=None, usd=0.5)
    base.update(kw)
    return CallRow(**base)


def test_recording_calls_logs_them_and_caches_answers(store):
    store.llm.record([call("k1"), call("k2", cached=True, status="cached", usd=0.0),
                      call("k3", status="error", error="HTTP 500", prompt_tokens=0, completion_tokens=0,
                           reasoning_tokens=0, usd=0.0)],
                     [("k1", {"text": "Grüße"})])
    assert store.llm.cached(["k1", "k2"]) == {"k1": {"text": "Grüße"}}
    assert store.scalar("SELECT response FROM llm_cache") == '{"text": "Grüße"}'
    spend = store.llm.spend(1)
    assert (spend.calls, spend.cached, spend.errors, spend.requests) == (3, 1, 1, 2)
    assert (spend.prompt_tokens, spend.completion_tokens, spend.reasoning_tokens) == (20, 40, 10)
    assert spend.total_tokens == 60 and spend.usd == 0.5
    assert store.scalar("SELECT latency_s FROM llm_calls WHERE key = 'k1'") == 0.1235
    assert store.scalar("SELECT attempts FROM llm_calls WHERE key = 'k1'") == 1
    assert store.llm.spend(2) == type(spend)()


def test_calls_without_cache_entries_and_cache_entries_without_calls_are_both_stored(store):
    store.llm.record([call("only-call")], [])
    store.llm.record([], [("only-cache", {"a": 1})])
    store.llm.record([], [])
    assert store.scalar("SELECT count(*) FROM llm_calls") == 1
    assert store.llm.cached(["only-cache"]) == {"only-cache": {"a": 1}}


def test_a_cached_answer_is_replaced_and_can_be_forgotten(store):
    store.llm.record([], [("k", {"v": 1})])
    store.llm.record([], [("k", {"v": 2})])
    assert store.llm.cached(["k"]) == {"k": {"v": 2}}
    assert store.llm.forget("k") is True and store.llm.forget("k") is False
    assert store.llm.cached(["k"]) == {}


def test_unreadable_cache_entries_are_skipped(store):
    with store.transaction() as conn:
        conn.executemany("INSERT INTO llm_cache (key, response, created_at) VALUES (?, ?, 0)",
                         [("bad", "{not json"), ("list", "[1, 2]"), ("good", '{"ok": true}')])
    assert store.llm.cached(["bad", "list", "good", "absent"]) == {"good": {"ok": True}}


def test_cache_lookups_of_many_keys_find_every_one(store):
    store.llm.record([], [(f"k{i}", {"i": i}) for i in range(950)])
    found = store.llm.cached([f"k{i}" for i in range(950)])
    assert len(found) == 950 and found["k949"] == {"i": 949}


def test_an_endpoints_output_mode_is_kept_per_model_and_replaced(store):
    assert store.llm.mode("http://e/v1", "m") is None
    store.llm.set_mode("http://e/v1", "m", "json_schema", "strict")
    store.llm.set_mode("http://e/v1", "m2", "json_object")
    store.llm.set_mode("http://e/v1", "m", "prompt_only")
    assert store.llm.mode("http://e/v1", "m") == "prompt_only"
    modes = store.llm.modes()
    assert [(m["model"], m["mode"], m["detail"]) for m in modes] == [("m", "prompt_only", ""),
                                                                    ("m2", "json_object", "")]


# -- transactions --------------------------------------------------------------------------------


def test_an_error_inside_a_transaction_rolls_back_every_write_of_it(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('a', 1)")
            store.bump("b")  # an inner block joins the outer transaction
            raise RuntimeError("boom")
    assert store.version("a") == 0 and store.version("b") == 0
    store.bump("c")  # the writer is free again
    assert store.version("c") == 1


def test_an_error_in_an_inner_block_undoes_the_outer_blocks_writes_too(store):
    with pytest.raises(ValueError):
        with store.transaction():
            store.bump("outer")
            with store.transaction():
                store.bump("inner")
                raise ValueError("inner failed")
    assert store.version("outer") == 0 and store.version("inner") == 0


def test_a_caught_inner_error_still_commits_the_outer_block(store):
    with store.transaction():
        store.bump("outer")
        with pytest.raises(KeyError):
            with store.transaction():
                raise KeyError("x")
        store.bump("after")
    assert store.version("outer") == 1 and store.version("after") == 1


def test_an_sql_error_inside_a_transaction_surfaces_and_rolls_back(store):
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        with store.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('a', 1)")
            conn.execute("INSERT INTO nowhere VALUES (1)")
    assert store.version("a") == 0


def test_a_failing_commit_rolls_back_and_says_so(store):
    with store.transaction() as conn:
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE child (id INTEGER PRIMARY KEY,"
                     " parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        with store.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('kept?', 1)")
            conn.execute("INSERT INTO child (id, parent) VALUES (1, 999)")  # checked at COMMIT
    assert store.version("kept?") == 0
    store.bump("next")
    assert store.version("next") == 1


def test_a_thread_inside_a_transaction_reads_its_own_uncommitted_rows_and_others_do_not(store):
    seen = {}
    with store.transaction():
        store.seeds.add([seed(1)])
        seen["writer"] = store.seeds.count()
        t = threading.Thread(target=lambda: seen.__setitem__("reader", store.seeds.count()))
        t.start()
        t.join()
        seen["rows"] = len(store.rows("SELECT * FROM seeds"))
    assert seen == {"writer": 1, "reader": 0, "rows": 1}
    assert store.rows("SELECT id FROM seeds") == [{"id": "s1"}]


def test_readers_cannot_write(store):
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.query("INSERT INTO meta (key, value) VALUES ('x', 1)")
    assert store.version("x") == 0


def test_a_second_writer_in_this_process_waits_its_turn_then_writes(store):
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction():
            store.bump("first")
            holding.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    holding.wait(5)
    threading.Timer(0.2, release.set).start()
    store.bump("second")  # waits for the first thread's transaction
    t.join()
    assert store.version("first") == 1 and store.version("second") == 1


def test_a_thread_that_waits_too_long_is_told_another_task_of_this_process_writes(tmp_path):
    store = Store(tmp_path / "x.db", timeout=0.2)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction():
            holding.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    holding.wait(5)
    try:
        with pytest.raises(DatabaseBusy) as err:
            store.bump("late")
    finally:
        release.set()
        t.join()
    assert str(err.value) == (f"another process is writing to {store.path} (another task of this process); "
                              "waited 0.2 s for it, try again when it has finished")
    store.bump("now")
    assert store.version("late") == 0 and store.version("now") == 1
    store.close()


def test_a_writer_on_a_locked_file_is_told_who_holds_it(tmp_path):
    path = tmp_path / "x.db"
    first, second = Store(path), Store(path, timeout=0.1)
    try:
        with first.lease("ingest:a", "ingest of big.jsonl"), first.transaction():
            first.bump("held")
            with pytest.raises(DatabaseBusy) as err:
                second.bump("blocked")
            started = time.strftime("%H:%M", time.localtime(first.leases()[0]["started_at"]))
        assert str(err.value) == (f"another process is writing to {path} (ingest of big.jsonl since {started}, "
                                  f"pid {os.getpid()}); waited 0.1 s for it, try again when it has finished")
        second.bump("later")
        assert second.version("later") == 1 and second.version("blocked") == 0
        with first.transaction():
            with pytest.raises(DatabaseBusy, match=r"\(unknown work\); waited 0.1 s"):
                second.bump("blocked")
    finally:
        first.close()
        second.close()


# -- opening, migrating, closing -------------------------------------------------------------------


def _version_4_file(path) -> None:
    from linkqa_core.store.schema import MIGRATIONS, run_script

    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:4]:
        run_script(conn, script)
    conn.execute("PRAGMA user_version=4")
    conn.execute("INSERT INTO kps (name) VALUES ('old kp')")
    conn.execute("INSERT INTO runs (kind, status, config, created_at, updated_at) VALUES ('sample', 'done', '{}', 1, 1)")
    conn.close()


def test_a_version_4_file_is_migrated_in_place_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    _version_4_file(path)
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.kps.label_of("old kp") == "old kp" and store.runs.get(1).status == "done"
        store.kps.rename("old kp", "old kp", "Old KP")  # the v5 label column exists
        assert store.kps.label_of("old kp") == "Old KP"
        with store.lease("x", "y"):
            assert [r["name"] for r in store.leases()] == ["x"]
        store.llm.set_mode("e", "m", "json_object")
        columns = {r[1] for r in store.query("PRAGMA table_info(items)")}
        assert {"original", "edited_at"} <= columns
        assert "usd" in {r[1] for r in store.query("PRAGMA table_info(llm_calls)")}
    with Store(path) as again:  # opening a current file migrates nothing
        assert again.schema_version == SCHEMA_VERSION and again.kps.label_of("old kp") == "Old KP"


def test_a_file_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "new.db"
    with Store(path) as store:
        store.bump()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match=rf"written by a newer LinkQA Studio \(schema 99 > {SCHEMA_VERSION}\)"):
        Store(path)


def test_a_folder_or_an_impossible_path_is_refused_with_a_message(tmp_path):
    with pytest.raises(InputError, match="is a directory, not a LinkQA database"):
        Store(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot create the folder of"):
        Store(tmp_path / "file" / "sub" / "x.db")
    with Store(tmp_path / "new" / "deeper" / "x.db") as store:  # missing folders are made
        assert store.seeds.count() == 0


def test_a_migration_script_keeps_semicolons_inside_strings_and_refuses_a_cut_statement():
    from linkqa_core.store.schema import run_script

    conn = sqlite3.connect(":memory:", isolation_level=None)
    run_script(conn, "CREATE TABLE t (x TEXT);\n-- a comment; with a semicolon\n"
                     "INSERT INTO t VALUES ('a;b');\n;\nINSERT INTO t VALUES ('c');\n")
    assert [r[0] for r in conn.execute("SELECT x FROM t")] == ["a;b", "c"]
    with pytest.raises(ValueError, match=re.escape('at the end of a migration: "INSERT INTO t VALUES (\'e\'"')):
        run_script(conn, "INSERT INTO t VALUES ('d');\nINSERT INTO t VALUES ('e'")
    assert [r[0] for r in conn.execute("SELECT x FROM t")] == ["a;b", "c", "d"]


def test_a_migration_runs_inside_the_callers_transaction(tmp_path):
    from linkqa_core.store.schema import run_script

    with Store(tmp_path / "x.db") as store:
        with pytest.raises(RuntimeError):
            with store.transaction() as conn:
                run_script(conn, "CREATE TABLE t (x);\nINSERT INTO t VALUES (1);\n")
                raise RuntimeError("stop")
        assert store.scalar("SELECT count(*) FROM sqlite_master WHERE name = 't'") == 0


def test_a_new_file_is_in_wal_mode_with_16k_pages_and_memory_works_too(tmp_path):
    with Store(tmp_path / "x.db") as store:
        assert store.scalar("PRAGMA journal_mode") == "wal" and store.scalar("PRAGMA page_size") == 16384
        assert store.scalar("PRAGMA foreign_keys") == 1
    with Store(":memory:") as mem:
        mem.seeds.add([seed(1)])
        assert mem.seeds.count() == 1 and mem.counts()["seeds"] == 1 and mem.check() is None


def test_closing_twice_is_harmless_and_closes_every_connection(tmp_path):
    store = Store(tmp_path / "x.db")
    t = threading.Thread(target=store.seeds.count)
    t.start()
    t.join()
    store.seeds.count()
    store.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.db.execute("SELECT 1")


def test_checkpoint_folds_the_log_into_the_file(tmp_path):
    with Store(tmp_path / "x.db") as store:
        store.seeds.add([seed(i) for i in range(200)])
        assert os.path.getsize(str(tmp_path / "x.db") + "-wal") > 0
        store.checkpoint()
        assert os.path.getsize(str(tmp_path / "x.db") + "-wal") == 0


def test_counts_report_each_stage(store, run_id):
    store.seeds.add([seed(1), seed(2)])
    store.kps.replace_links({rid_of(store, "s1"): [("a", "a"), ("b", "b")]})
    store.runs.add_paths(run_id, [Path(0, ("a",), "P", ("s1",))])
    store.items.insert([item("x", run_id), item("y", run_id)])
    store.items.set_status(store.items.ids(run_id)[:1], "accepted")
    assert store.counts() == {"seeds": 2, "kps": 2, "seed_kps": 2, "seeds_with_kps": 1, "runs": 1, "paths": 1,
                              "items": 2, "accepted_items": 1}


def test_the_database_path_comes_from_linkqa_db(monkeypatch, tmp_path):
    from linkqa_core.store import default_db_path

    monkeypatch.setenv("LINKQA_DB", str(tmp_path / "env.db"))
    assert default_db_path() == tmp_path / "env.db"
    with Store() as store:
        assert store.path == str(tmp_path / "env.db") and repr(store) == f"<Store {tmp_path / 'env.db'}>"
    monkeypatch.delenv("LINKQA_DB")
    assert str(default_db_path()) == os.path.join("data", "linkqa.db")


# -- damage ------------------------------------------------------------------------------------------


def _sqlite_file(tmp_path, pages: int = 40) -> str:
    path = tmp_path / "x.db"
    with Store(path) as store:
        store.seeds.add([seed(i) for i in range(pages * 10)])
        store.checkpoint()
    return str(path)


def test_header_problems_name_what_is_wrong(tmp_path):
    from linkqa_core.store.database import header_problem

    good = _sqlite_file(tmp_path)
    assert header_problem(good) is None
    data = bytearray(open(good, "rb").read())
    cases = {
        "not sqlite": (b"hello" * 40, "is not an SQLite database"),
        "short header": (bytes(data[:60]), "is truncated: 60 bytes, shorter than an SQLite header"),
        "bad page size": (bytes(data[:16]) + (1000).to_bytes(2, "big") + bytes(data[18:]),
                          "has a damaged header (page size 1000)"),
        "small page size": (bytes(data[:16]) + (256).to_bytes(2, "big") + bytes(data[18:]),
                            "has a damaged header (page size 256)"),
        "cut": (bytes(data[: len(data) // 2]), "is truncated: its header counts"),
    }
    for name, (content, expected) in cases.items():
        bad = tmp_path / f"{name}.db"
        bad.write_bytes(content)
        assert (header_problem(str(bad)) or "").startswith(expected), name
    pages = int.from_bytes(data[28:32], "big")
    cut = tmp_path / "cut.db"
    assert header_problem(str(cut)) == (f"is truncated: its header counts {pages:,} pages of 16,384 bytes "
                                        f"({pages * 16384:,} bytes) but the file holds {len(data) // 2:,}")
    big = tmp_path / "64k.db"  # a page size of 1 in the header means 65536
    big.write_bytes(bytes(data[:16]) + (1).to_bytes(2, "big") + bytes(data[18:28]) + (1).to_bytes(4, "big")
                    + bytes(data[32:]) + bytes(65536))
    assert header_problem(str(big)) is None
    assert header_problem(str(tmp_path / "absent.db")).startswith("cannot be read (")


def test_an_unchecked_header_counter_does_not_count_as_truncation(tmp_path):
    from linkqa_core.store.database import header_problem

    data = bytearray(open(_sqlite_file(tmp_path), "rb").read())
    data[92:96] = (int.from_bytes(data[24:28], "big") + 1).to_bytes(4, "big")  # "valid-for" differs
    cut = tmp_path / "cut.db"
    cut.write_bytes(bytes(data[: len(data) // 2]))
    assert header_problem(str(cut)) is None  # SQLite itself ignores the page count then


def test_the_damage_message_is_one_line_with_the_recovery_command():
    from linkqa_core.store.database import damage_message

    msg = damage_message("/d/x.db", "quick_check:\n  row 3 missing")
    assert msg == ("/d/x.db is damaged (quick_check: row 3 missing): it is refused for writing. To recover what "
                   "SQLite can read: sqlite3 /d/x.db .recover | sqlite3 recovered.db, then use recovered.db. "
                   "Reading and export may still work on the damaged file (linkqa export --run N --out FILE).")


def test_corruption_and_busy_errors_are_told_apart():
    from linkqa_core.store.database import _is_busy, is_corruption

    def err(cls, text: str, name: str | None) -> sqlite3.Error:
        e = cls(text)
        e.sqlite_errorname = name
        return e

    assert is_corruption(err(sqlite3.DatabaseError, "x", "SQLITE_CORRUPT"))
    assert is_corruption(err(sqlite3.DatabaseError, "x", "SQLITE_CORRUPT_INDEX"))
    assert is_corruption(err(sqlite3.DatabaseError, "x", "SQLITE_NOTADB"))
    assert not is_corruption(err(sqlite3.OperationalError, "database disk image is malformed", "SQLITE_BUSY"))
    assert not is_corruption(err(sqlite3.DatabaseError, "x", "SQLITE_IOERR"))
    assert is_corruption(sqlite3.DatabaseError("database disk image is malformed"))
    assert is_corruption(sqlite3.DatabaseError("file is not a database"))
    assert not is_corruption(sqlite3.OperationalError("database disk image is malformed"))  # only the base type
    assert not is_corruption(sqlite3.DatabaseError("no such table: x"))
    assert _is_busy(err(sqlite3.OperationalError, "x", "SQLITE_BUSY"))
    assert _is_busy(err(sqlite3.OperationalError, "x", "SQLITE_LOCKED_SHAREDCACHE"))
    assert _is_busy(sqlite3.OperationalError("database is locked"))
    assert not _is_busy(err(sqlite3.OperationalError, "no such column", "SQLITE_ERROR"))


def _corrupt_the_middle(path: str) -> None:
    """Overwrite the middle of the file: SQLite opens it, and reading the damaged pages fails."""
    data = bytearray(open(path, "rb").read())
    mid = len(data) // 2
    data[mid:mid + 20000] = bytes(range(256)) * 78 + bytes(32)
    open(path, "wb").write(bytes(data))


def _orphan_pages(path: str) -> None:
    """Drop an index from the schema but not its pages: quick_check lists the pages never used."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("CREATE INDEX t_x ON t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(str(i) * 50,) for i in range(2000)])
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("DELETE FROM sqlite_master WHERE name = 't_x'")
    conn.close()


def test_damage_found_by_the_check_refuses_writes_but_reads_still_work(tmp_path):
    path = _sqlite_file(tmp_path)
    _orphan_pages(path)
    with Store(path) as store:
        assert store.seeds.count() == 400  # reading works
        problem = store.check()
        assert re.fullmatch(re.escape(path) + r" is damaged \(quick_check: Page \d+ is never used and \d+ more\): "
                            r"it is refused for writing\. .*", problem)
        with pytest.raises(DamagedDatabase) as err:
            store.bump("x")
        assert str(err.value) == problem
        assert store.check(full=False) == problem  # remembered
        assert store.seeds.count() == 400


def test_the_first_write_runs_the_check_and_refuses_a_damaged_file(tmp_path):
    path = _sqlite_file(tmp_path, pages=80)
    _corrupt_the_middle(path)
    with Store(path) as store:
        with pytest.raises(DamagedDatabase, match="is damaged"):
            store.bump("x")
        with pytest.raises(DamagedDatabase):
            store.bump("again")


def test_a_large_file_is_only_schema_checked_before_the_first_write(tmp_path, monkeypatch):
    import linkqa_core.store.database as database

    path = _sqlite_file(tmp_path)
    _orphan_pages(path)
    monkeypatch.setattr(database, "FULL_CHECK_MAX_BYTES", 1000)
    with Store(path) as store:
        store.bump("x")  # quick_check skipped: the meta page is sound, so the write goes through
        assert store.damage is None and store.version("x") == 1
        assert store.check(full=True) is not None


def test_a_sound_file_stays_writable_after_the_check(tmp_path):
    path = _sqlite_file(tmp_path)
    with Store(path) as store:
        assert store.check() is None and store.check(full=False) is None
        store.bump("x")
        store.bump("x")
        assert store.version("x") == 2 and store.damage is None


def test_a_store_already_open_on_a_file_lets_a_second_one_open_it_without_reading_the_header(tmp_path):
    path = _sqlite_file(tmp_path)
    with Store(path) as first:
        first.seeds.add([seed(9999)])
        with Store(path) as second:
            assert second.seeds.count() == first.seeds.count() == 401
    with Store(path) as again:
        assert again.seeds.count() == 401


# -- leases ------------------------------------------------------------------------------------------


def test_a_lease_is_held_while_its_block_runs_and_released_after(store):
    with store.lease("run:1", "synthesis of run 1") as lease:
        (row,) = store.leases()
        assert (row["name"], row["what"], row["pid"], row["host"], row["alive"]) == \
            ("run:1", "synthesis of run 1", os.getpid(), socket.gethostname(), True)
        assert row["started_at"] == row["heartbeat_at"]
        assert (lease.name, lease.what) == ("run:1", "synthesis of run 1")
        time.sleep(0.01)
        lease.beat()
        beat = store.query("SELECT heartbeat_at, started_at FROM leases")[0]
        assert beat[0] > beat[1]
    assert store.leases() == [] and store.leases(live_only=False) == []


def test_a_lease_is_released_when_its_block_fails(store):
    with pytest.raises(RuntimeError):
        with store.lease("run:1", "synthesis"):
            raise RuntimeError("crash")
    assert store.leases(live_only=False) == []


def test_this_process_may_take_its_own_lease_again(store):
    store.acquire_lease("a", "first")
    store.acquire_lease("a", "second")
    assert [r["what"] for r in store.leases()] == ["second"]
    store.release_lease("a")
    assert store.leases() == []


def _foreign_lease(store: Store, name: str, host: str, pid: int, beat: float) -> None:
    with store.transaction() as conn:
        conn.execute("INSERT INTO leases (name, pid, host, what, started_at, heartbeat_at) VALUES (?,?,?,?,?,?)",
                     (name, pid, host, f"work {name}", beat - 5, beat))


def test_a_lease_held_elsewhere_is_alive_while_it_beats(store):
    now = time.time()
    _foreign_lease(store, "fresh", "other-host", 1, now - 60)
    _foreign_lease(store, "stale", "other-host", 1, now - 300)
    assert [r["name"] for r in store.leases()] == ["fresh"]
    assert {r["name"]: r["alive"] for r in store.leases(live_only=False)} == {"fresh": True, "stale": False}
    with pytest.raises(LeaseHeld) as err:
        store.acquire_lease("fresh", "mine")
    started = time.strftime("%H:%M", time.localtime(now - 65))
    assert str(err.value) == f"work fresh is already running in another process (pid 1 on other-host, since {started})"
    store.acquire_lease("stale", "mine")  # a stale lease is taken over
    assert {r["name"]: r["what"] for r in store.leases()} == {"fresh": "work fresh", "stale": "mine"}
    store.release_lease("fresh")  # not ours: left alone
    assert len(store.leases()) == 2


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over(store):
    child = subprocess.Popen(["true"])
    child.wait()
    dead = child.pid
    _foreign_lease(store, "x", socket.gethostname(), dead, time.time())
    assert store.leases() == [] and store.leases(live_only=False)[0]["alive"] is False
    store.acquire_lease("x", "mine")
    assert store.leases()[0]["pid"] == os.getpid()


def test_a_lease_of_a_live_process_on_this_host_is_refused_even_without_heartbeat(store):
    _foreign_lease(store, "x", socket.gethostname(), 1, 0.0)  # pid 1 lives; its heartbeat is ancient
    assert [r["name"] for r in store.leases()] == ["x"]
    with pytest.raises(LeaseHeld, match="pid 1 on"):
        store.acquire_lease("x", "mine")


def test_releasing_a_lease_on_a_busy_file_gives_up_quietly(tmp_path):
    path = tmp_path / "x.db"
    first, second = Store(path), Store(path, timeout=0.1)
    try:
        second.acquire_lease("a", "work")
        with first.transaction():
            second.release_lease("a")  # busy: left for the next holder to take over
        assert [r["name"] for r in second.leases()] == ["a"]
    finally:
        first.close()
        second.close()


# -- JSON columns ------------------------------------------------------------------------------------


def test_json_columns_keep_unicode_and_read_back_a_default_when_unreadable():
    from linkqa_core.store.database import dumps, loads

    assert dumps({"k": "Grüße"}) == '{"k": "Grüße"}'
    assert loads('{"a": 1}') == {"a": 1}
    assert loads(None, []) == [] and loads("", {}) == {} and loads("{broken", "d") == "d"
    assert loads("{broken") is None


def test_a_hand_edited_row_reads_back_with_its_text_kept(store, run_id):
    store.items.insert([item("a", run_id)])
    (a,) = store.items.ids(run_id)
    with store.transaction() as conn:
        conn.execute("UPDATE items SET options = 'A) x B) y', kps_used = '\"ab\"', seed_ids = '\"s\"',"
                     " discipline = NULL, prompt_tokens = NULL, completion_tokens = NULL WHERE id = ?", (a,))
    got = store.items.get(a)
    assert got.options == "A) x B) y" and got.kps_used == () and got.seed_ids == ()
    assert got.discipline == "Other" and got.prompt_tokens == 0 and got.completion_tokens == 0
    with pytest.raises(NotFoundError, match="no item 404"):
        store.items.get(404)


def test_stored_text_round_trips_as_json(store, run_id):
    store.items.insert([item("a", run_id, seed_ids=("s1", "s2"), kps_used=("é",))])
    row = store.query("SELECT seed_ids, kps_used FROM items")[0]
    assert json.loads(row[0]) == ["s1", "s2"] and row[1] == '["é"]'


# -- edges that the mutation run found unpinned --------------------------------------------------


def test_damage_met_while_reading_is_remembered_and_refuses_writes(tmp_path):
    path = _sqlite_file(tmp_path, pages=80)
    data = bytearray(open(path, "rb").read())
    data[2 * 16384:] = bytes(range(256)) * ((len(data) - 2 * 16384) // 256)  # every page after the schema
    open(path, "wb").write(bytes(data))
    with Store(path) as store:
        with pytest.raises(DamagedDatabase) as err:
            list(store.seeds.iter())
        assert str(err.value).startswith(f"{path} is damaged (database disk image is malformed): it is refused")
        assert store.damage == str(err.value)
        with pytest.raises(DamagedDatabase):
            store.bump("x")


def test_the_busy_message_lists_every_live_lease_with_its_start(tmp_path):
    path = tmp_path / "x.db"
    first, second = Store(path), Store(path, timeout=0.1)
    try:
        long_ago = time.time() - 3 * 3600
        _foreign_lease(first, "a", "other-host", 11, time.time())
        with first.transaction() as conn:
            conn.execute("UPDATE leases SET started_at = ?", (long_ago,))
        first.acquire_lease("b", "ingest of b.jsonl")
        b_started = first.leases()[1]["started_at"]
        with first.transaction():
            with pytest.raises(DatabaseBusy) as err:
                second.bump("x")
        clock = lambda t: time.strftime("%H:%M", time.localtime(t))  # noqa: E731
        assert f"(work a since {clock(long_ago)}, pid 11; ingest of b.jsonl since {clock(b_started)}, " \
               f"pid {os.getpid()})" in str(err.value)
    finally:
        first.close()
        second.close()
    assert second._busy_message() == (f"another process is writing to {path} (unknown work); waited 0.1 s for it, "
                                      "try again when it has finished")  # a closed Store reads no leases


def test_a_lease_held_elsewhere_is_judged_by_its_heartbeat_then_its_start(store):
    now = time.time()
    with store.transaction() as conn:
        conn.executemany("INSERT INTO leases (name, pid, host, what, started_at, heartbeat_at) VALUES (?,?,?,?,?,?)",
                         [("beating", 5, "elsewhere", "w", now - 1000, now - 60),
                          ("never beat, recent", 5, "elsewhere", "w", now - 30, None),
                          ("never beat, old", 5, "elsewhere", "w", now - 500, None),
                          ("just too late", 5, "elsewhere", "w", now - 200, now - 120.5)])
    alive = {r["name"]: r["alive"] for r in store.leases(live_only=False)}
    assert alive == {"beating": True, "never beat, recent": True, "never beat, old": False, "just too late": False}


def test_checking_a_lease_holder_on_this_host_sends_it_no_signal(store):
    holder = subprocess.Popen(["sleep", "30"])
    try:
        _foreign_lease(store, "x", socket.gethostname(), holder.pid, time.time())
        assert [r["name"] for r in store.leases()] == ["x"]
        with pytest.raises(LeaseHeld):
            store.acquire_lease("x", "mine")
        time.sleep(0.1)
        assert holder.poll() is None  # still running: the check was signal 0
    finally:
        holder.kill()
        holder.wait()
    assert store.leases() == []


def test_the_lease_held_message_names_what_who_where_and_since_when(store):
    started = time.time() - 2 * 3600
    with store.transaction() as conn:
        conn.execute("INSERT INTO leases (name, pid, host, what, started_at, heartbeat_at) VALUES (?,?,?,?,?,?)",
                     ("run:7", 4242, "box-2", "synthesis of run 7", started, time.time()))
    with pytest.raises(LeaseHeld) as err:
        store.acquire_lease("run:7", "synthesis of run 7")
    assert str(err.value) == ("synthesis of run 7 is already running in another process (pid 4242 on box-2, since "
                              f"{time.strftime('%H:%M', time.localtime(started))})")


def test_the_version_5_tables_and_columns_have_their_types_and_constraints(store, run_id):
    store.llm.record([call("k")], [])
    store.items.insert([item("a", run_id)])
    (a,) = store.items.ids(run_id)
    store.items.edit(a, {"question": "Q", "options": None, "answer": "A", "solution": "", "difficulty": None,
                         "discipline": "Physics"})
    store.kps.merge([], "k", "K label")
    assert store.scalar("SELECT typeof(usd) FROM llm_calls") == "real"
    assert store.scalar("SELECT typeof(edited_at) || typeof(original) FROM items") == "realtext"
    assert store.scalar("SELECT typeof(label) FROM kps") == "text"
    for sql in ("INSERT INTO leases (name, pid, host, what, started_at) VALUES (NULL, 1, 'h', 'w', 0)",
                "INSERT INTO llm_modes (endpoint, model, mode, updated_at) VALUES (NULL, 'm', 'x', 0)",
                "INSERT INTO llm_modes (endpoint, model, mode, updated_at) VALUES ('e', NULL, 'x', 0)",
                "INSERT INTO leases (name, pid, host, what, started_at) VALUES ('x', 1, NULL, 'w', 0)",
                "INSERT INTO leases (name, pid, host, what, started_at) VALUES ('x', NULL, 'h', 'w', 0)",
                "INSERT INTO leases (name, pid, host, what, started_at) VALUES ('x', 1, 'h', NULL, 0)",
                "INSERT INTO leases (name, pid, host, what, started_at) VALUES ('x', 1, 'h', 'w', NULL)",
                "INSERT INTO llm_modes (endpoint, model, mode, updated_at) VALUES ('e', 'm', NULL, 0)",
                "INSERT INTO llm_modes (endpoint, model, mode, updated_at) VALUES ('e', 'm', 'x', NULL)"):
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
            with store.transaction() as conn:
                conn.execute(sql)


def test_a_store_that_finds_the_file_migrated_meanwhile_migrates_nothing(tmp_path, monkeypatch):
    path = tmp_path / "x.db"
    with Store(path) as store:
        store.bump("x")
    # as if another process migrated between this Store's first look and its transaction
    monkeypatch.setattr(Store, "_schema_version_read", lambda self: 4)
    with Store(path) as again:
        assert again.schema_version == SCHEMA_VERSION and again.version("x") == 1


def test_a_cut_migration_statement_is_quoted_up_to_eighty_characters():
    from linkqa_core.store.schema import run_script

    conn = sqlite3.connect(":memory:", isolation_level=None)
    cut = "INSERT INTO t VALUES ('" + "a" * 100
    with pytest.raises(ValueError) as err:
        run_script(conn, cut)
    assert str(err.value) == f"incomplete SQL statement at the end of a migration: {cut[:80]!r}"


def test_output_modes_read_back_with_their_column_names(store):
    store.llm.set_mode("http://e/v1", "m", "json_schema", "strict")
    (row,) = store.llm.modes()
    assert set(row) == {"endpoint", "model", "mode", "detail", "updated_at"} and row["endpoint"] == "http://e/v1"
    assert set(store.leases(live_only=False)) == set() and store.acquire_lease("a", "w") is None
    assert set(store.leases()[0]) == {"name", "pid", "host", "what", "started_at", "heartbeat_at", "alive"}

"""The Store's read paths, on a small hand-made database whose every answer is known.

The pages, the graph build and export read through these; each test pins the whole answer
(rows, order, keys), so that scripts/mutation can tell a changed query from the original.
"""

from __future__ import annotations

import numpy as np
import pytest

from linkqa_core.errors import ConfigError
from linkqa_core.records import Item, Path, Seed
from linkqa_core.store import Store


@pytest.fixture
def db(store) -> Store:
    """Five seeds over two disciplines, four KPs, a sample run with two paths and a synthesis run."""
    store.seeds.add([
        Seed("a", "What is heat?", "energy", options=("energy", "mass"), discipline="Physics", subject="thermo",
             difficulty=2.4, source="f.jsonl"),
        Seed("b", "What is work?", "force times distance", discipline="Physics", difficulty=3.6,
             difficulty_estimated=True),
        Seed("c", "What is an acid?", "a proton donor", discipline="Chemistry", subject="acids"),
        Seed("d", "Name a base.", "NaOH", discipline="Chemistry", difficulty=1.0),
        Seed("e", "What is entropy?", "disorder", discipline="Physics"),
    ])
    rid = {s: int(store.scalar("SELECT rid FROM seeds WHERE id = ?", (s,))) for s in "abcde"}
    store.kps.replace_links({rid["a"]: [("heat", "Heat"), ("energy", "Energy")],
                             rid["b"]: [("energy", "Energy"), ("work", "Work")],
                             rid["c"]: [("acid", "Acid")], rid["d"]: [("acid", "Acid")]})
    ids = {k: store.kps.id_of(k) for k in ("heat", "energy", "work", "acid")}
    store.runs.create("sample", {}, paths=[
        Path(0, ("Heat", "Energy"), "Physics", ("a", "b"), kp_ids=(ids["heat"], ids["energy"])),
        Path(1, ("Acid",), "Chemistry", ("c", "d"), kp_ids=(ids["acid"],))])
    return store


def _items(store: Store, run_id: int) -> list[int]:
    p0, p1 = (p.id for p in store.runs.paths(1))
    store.items.insert([
        Item("Q1 heat?", "A1", solution="S1", discipline="Physics", difficulty=2.0, run_id=run_id, path_id=p0,
             slot="0/0", kps_used=("heat",)),
        Item("Q2 acid?", "A2", solution="S2 about acid", discipline="Chemistry", difficulty=4.0, run_id=run_id,
             path_id=p1, slot="1/0", gate_reason="near duplicate of seed c"),
        Item("", "", status="failed", discipline="Chemistry", run_id=run_id, path_id=p1, slot="1/1"),
        Item("Q4?", "A4", solution="", discipline="Physics", difficulty=3.0, run_id=run_id, path_id=p0,
             slot="0/0/r1", parent_id=1),
    ])
    return store.items.ids(run_id)


# -- seeds ----------------------------------------------------------------------------------


def test_a_page_of_seeds_has_every_column_and_the_total(db):
    rows, total = db.seeds.page(limit=2)
    assert total == 5
    assert rows == [
        {"id": "a", "question": "What is heat?", "answer": "energy", "options": "energy | mass",
         "discipline": "Physics", "subject": "thermo", "difficulty": 2.4, "estimated": False, "kps": 2,
         "source": "f.jsonl"},
        {"id": "b", "question": "What is work?", "answer": "force times distance", "options": "",
         "discipline": "Physics", "subject": "", "difficulty": 3.6, "estimated": True, "kps": 2, "source": ""},
    ]
    assert [r["id"] for r in db.seeds.page(limit=2, offset=2)[0]] == ["c", "d"]
    assert db.seeds.page(limit=0) == ([], 5)


@pytest.mark.parametrize("filters, ids", [
    ({"disciplines": ["Chemistry"]}, ["c", "d"]),
    ({"disciplines": ["Chemistry", "Physics"]}, ["a", "b", "c", "d", "e"]),
    ({"difficulties": [2]}, ["a"]),
    ({"difficulties": [4, 1]}, ["b", "d"]),
    ({"difficulties": ["unknown"]}, ["c", "e"]),
    ({"difficulties": [2, "unknown"]}, ["a", "c", "e"]),
    ({"search": " heat "}, ["a"]),
    ({"search": "ACID"}, ["c"]),  # LIKE ignores ASCII case; the subject matches too
    ({"search": "NaOH"}, ["d"]),
    ({"search": "   "}, ["a", "b", "c", "d", "e"]),
    ({"disciplines": ["Physics"], "difficulties": ["unknown"], "search": "entropy"}, ["e"]),
    ({"disciplines": ["Physics"], "search": "acid"}, []),
])
def test_seed_filters_combine(db, filters, ids):
    rows, total = db.seeds.page(**filters)
    assert [r["id"] for r in rows] == ids and total == len(ids)


def test_filter_options_list_disciplines_levels_and_unknown(db):
    assert db.seeds.filter_options() == {"disciplines": ["Chemistry", "Physics"], "difficulties": [1, 2, 4, "unknown"]}
    unknown = [(5.0, r[0]) for r in db.query("SELECT rid FROM seeds WHERE difficulty IS NULL")]
    db.seeds.set_estimates(unknown, [])  # the options are kept per data version: this write moves it
    assert db.seeds.filter_options()["difficulties"] == [1, 2, 4, 5]


def test_discipline_and_difficulty_counts(db):
    assert db.seeds.discipline_counts() == [{"discipline": "Physics", "seeds": 3},
                                            {"discipline": "Chemistry", "seeds": 2}]
    assert db.seeds.difficulty_counts() == [
        {"difficulty": "1", "kind": "given", "seeds": 1}, {"difficulty": "2", "kind": "given", "seeds": 1},
        {"difficulty": "4", "kind": "estimated", "seeds": 1}, {"difficulty": "unknown", "kind": "missing", "seeds": 2}]


def test_seeds_stream_in_order_across_batches(db):
    assert [(s.id, s.discipline) for _, s in db.seeds.iter(batch=2)] == \
        [("a", "Physics"), ("b", "Physics"), ("c", "Chemistry"), ("d", "Chemistry"), ("e", "Physics")]
    assert [s.id for _, s in db.seeds.iter(without_kps=True, batch=1)] == ["e"]
    assert db.seeds.count_without_kps() == 1
    rids = [rid for rid, _ in db.seeds.iter()]
    assert rids == sorted(rids) and db.seeds.ids_for_rids(list(reversed(rids)) + [999]) == list("edcba")


def test_questions_stream_with_options_and_tolerate_a_hand_edited_row(db):
    with db.transaction() as conn:
        conn.execute("UPDATE seeds SET options = '{not json' WHERE id = 'b'")
        conn.execute("UPDATE seeds SET options = '\"text\"' WHERE id = 'c'")
    assert list(db.seeds.questions(batch=2)) == [
        ("a", "What is heat?", ["energy", "mass"]), ("b", "What is work?", None), ("c", "What is an acid?", None),
        ("d", "Name a base.", None), ("e", "What is entropy?", None)]


def test_seeds_by_id_keep_the_order_asked_and_drop_unknown_ones(db):
    assert [s.id for s in db.seeds.get(["d", "zz", "a"])] == ["d", "a"]
    many = [f"x{i}" for i in range(1000)] + ["e"]
    assert [s.id for s in db.seeds.get(many)] == ["e"]
    assert db.seeds.kp_names(["a", "c", "e"]) == {"a": {"heat", "energy"}, "c": {"acid"}}


def test_seeds_naming_a_kp_put_the_discipline_asked_first(db):
    assert [s.id for s in db.seeds.naming("energy", "Physics")] == ["a", "b"]
    assert [s.id for s in db.seeds.naming("acid", "Physics", limit=1)] == ["c"]
    assert db.seeds.naming("nothing", "Physics") == []


# -- knowledge points -----------------------------------------------------------------------


def test_the_kp_table_counts_seeds_and_names_the_main_discipline(db):
    table = db.kps.table()
    assert [(r["name"], r["key"], r["freq"], r["discipline"], r["n_disciplines"]) for r in table] == [
        ("Acid", "acid", 2, "Chemistry", 1), ("Energy", "energy", 2, "Physics", 1),
        ("Heat", "heat", 1, "Physics", 1), ("Work", "work", 1, "Physics", 1)]
    assert table[1]["mean_difficulty"] == pytest.approx(3.0) and table[0]["mean_difficulty"] == 1.0
    assert table[0]["id"] == db.kps.id_of("acid")
    assert [r["key"] for r in db.kps.table(limit=2)] == ["acid", "energy"]
    assert [r["key"] for r in db.kps.table(search="ERG")] == ["energy"]
    db.kps.rename("work", "work", "Mechanical work")
    assert [r["name"] for r in db.kps.table(search="mechanical")] == ["Mechanical work"]


def test_link_arrays_are_every_seed_kp_pair_sorted_by_seed(db):
    links = db.kps.link_arrays()
    assert links.dtype == np.int64 and links.shape == (6, 2)
    expected = sorted((int(r[0]), int(r[1])) for r in db.query("SELECT seed_rid, kp_id FROM seed_kps"))
    assert sorted(map(tuple, links.tolist())) == expected
    assert list(links[:, 0]) == sorted(links[:, 0])


def test_link_arrays_read_in_chunks_give_the_same_links(db, monkeypatch):
    import linkqa_core.store.kps as kps

    whole = db.kps.link_arrays()
    monkeypatch.setattr(kps, "_LINK_CHUNK", 1)
    chunked = db.kps.link_arrays()
    assert chunked.tolist() == whole.tolist()


def test_an_empty_database_has_no_links_or_seeds(store):
    assert store.kps.link_arrays().shape == (0, 2)
    disciplines, disc, diff = store.kps.seed_arrays()
    assert disciplines == [] and disc.tolist() == [0] and np.isnan(diff).all()
    assert store.kps.labels_for(np.array([3])) == ["kp 3"]
    assert store.kps.count() == 0 and store.kps.table() == []


def test_seed_arrays_index_discipline_and_difficulty_by_rid(db):
    disciplines, disc, diff = db.kps.seed_arrays()
    assert disciplines == ["Chemistry", "Physics"]
    rid = {s: int(db.scalar("SELECT rid FROM seeds WHERE id = ?", (s,))) for s in "abcde"}
    assert len(disc) == max(rid.values()) + 1 and disc.dtype == np.int16
    assert [int(disc[rid[s]]) for s in "abcde"] == [1, 1, 0, 0, 1]
    assert diff[rid["a"]] == 2.4 and diff[rid["b"]] == 3.6 and np.isnan(diff[rid["c"]])


def test_labels_for_ids_in_the_order_given(db):
    ids = [db.kps.id_of(k) for k in ("work", "heat", "acid")]
    assert db.kps.labels_for(np.array(ids + [999])) == ["Work", "Heat", "Acid", "kp 999"]
    db.kps.rename("heat", "heat", "Heat\x1e(odd)")  # a label holding the separator: read the plain way
    assert db.kps.labels_for(np.array([ids[1], 999])) == ["Heat\x1e(odd)", "kp 999"]


def test_kp_lookups(db):
    assert db.kps.label_of("nothing") is None and db.kps.id_of("nothing") is None
    assert db.kps.count() == 4


# -- items ----------------------------------------------------------------------------------


def test_item_filters_count_and_list_the_same_items(db):
    run = db.runs.create("synthesis", {})
    i1, i2, i3, i4 = _items(db, run)
    cases = [
        ({}, [i1, i2, i3, i4]),
        ({"statuses": ["failed"]}, [i3]),
        ({"statuses": "generated"}, [i1, i2, i4]),
        ({"discipline": "Chemistry"}, [i2, i3]),
        ({"min_difficulty": 3.0}, [i2, i4]),
        ({"max_difficulty": 3.0}, [i1, i4]),
        ({"min_difficulty": 2.5, "max_difficulty": 3.5}, [i4]),
        ({"gate": "duplicate"}, [i2]),
        ({"search": "acid"}, [i2]),
        ({"search": "A4"}, [i4]),
        ({"search": "S1"}, [i1]),
    ]
    for filters, expected in cases:
        statuses = filters.pop("statuses", None)
        assert [i.id for i in db.items.of_run(run, statuses, **filters)] == expected, filters
        assert db.items.count(run, statuses, **filters) == len(expected), filters
        assert db.items.ids(run, statuses, **filters) == expected, filters
    assert [i.id for i in db.items.of_run(run, limit=2, offset=1)] == [i2, i3]
    assert db.items.of_run(run + 1) == [] and db.items.count(run + 1) == 0
    with pytest.raises(ConfigError, match=r"unknown status \['done'\]; use generated, accepted"):
        db.items.count(run, ["done"])


def test_item_summaries_of_a_run(db):
    run = db.runs.create("synthesis", {})
    i1, i2, i3, i4 = _items(db, run)
    p0, p1 = (p.id for p in db.runs.paths(1))
    assert db.items.counts(run) == {"generated": 3, "failed": 1}
    assert db.items.total(run) == 4 and db.items.good_count(run) == 2  # rewrites and failures left out
    assert db.items.disciplines(run) == ["Chemistry", "Physics"]
    assert db.items.done_path_ids(run) == {p0, p1}
    assert db.items.slots_ending(run, "/0") == {"0/0", "1/0"} and db.items.slots_ending(run, "/r1") == {"0/0/r1"}
    assert db.items.counts(run + 1) == {} and db.items.done_path_ids(run + 1) == set()


def test_export_streams_items_with_their_path_in_id_order(db, monkeypatch):
    run = db.runs.create("synthesis", {})
    i1, i2, i3, i4 = _items(db, run)
    got = [(it.id, idx, kps) for it, idx, kps in db.items.for_export(run, ["generated"])]
    assert got == [(i1, 0, ["Heat", "Energy"]), (i2, 1, ["Acid"]), (i4, 0, ["Heat", "Energy"])]
    assert [it.id for it, _, _ in db.items.for_export(run, ["failed", "accepted"])] == [i3]
    db.items.insert([Item("Q?", "A", run_id=run, slot=f"x{k}") for k in range(2001)])
    streamed = [it.id for it, idx, kps in db.items.for_export(run, ["generated"])]
    assert len(streamed) == 2004 and streamed == sorted(streamed)
    last = list(db.items.for_export(run, ["generated"]))[-1]
    assert last[1] is None and last[2] == []  # no path


# -- runs -------------------------------------------------------------------------------------


def test_paths_by_id_and_coverage(db):
    paths = db.runs.paths(1)
    found = db.runs.paths_by_id([paths[1].id, paths[0].id, paths[1].id, 999])
    assert sorted(found) == sorted(p.id for p in paths)
    assert found[paths[1].id].kps == ("Acid",) and found[paths[0].id].seed_ids == ("a", "b")
    assert found[paths[0].id].run_id == 1 and found[paths[0].id].index == 0
    assert db.runs.cumulative_coverage() == 0.75  # heat, energy, acid of four KPs
    assert db.runs.path_count(1) == 2 and db.runs.path_count(2) == 0


def test_coverage_of_an_empty_database_is_zero(store):
    assert store.runs.cumulative_coverage() == 0.0


# -- edges that the mutation run found unpinned --------------------------------------------------


def test_lookups_of_more_ids_than_two_statements_take_find_the_last_one(db):
    unknown = [f"x{i}" for i in range(1900)]
    assert [s.id for s in db.seeds.get(unknown + ["e"])] == ["e"]
    assert db.seeds.kp_names(unknown + ["c"]) == {"c": {"acid"}}
    rid_e = int(db.scalar("SELECT rid FROM seeds WHERE id = 'e'"))
    assert db.seeds.ids_for_rids([10**6 + i for i in range(1900)] + [rid_e]) == ["e"]
    db.llm.record([], [(f"k{i}", {"i": i}) for i in range(1905)])
    assert db.llm.cached([f"k{i}" for i in range(1905)])["k1904"] == {"i": 1904}
    run = db.runs.create("sample", {}, paths=[Path(i, ("A",), "P", ("a",)) for i in range(1850)])
    ids = [p.id for p in db.runs.paths(run)]
    assert len(db.runs.paths_by_id(ids)) == 1850


def test_default_page_sizes(store):
    store.seeds.add(Seed(f"s{i:03}", f"Q{i}?", "A", discipline="Physics") for i in range(105))
    assert len(store.seeds.page()[0]) == 100 and store.seeds.page()[1] == 105
    assert [r["id"] for r in store.seeds.page(limit=1)[0]] == ["s000"]
    rid = {s.id: r for r, s in store.seeds.iter()}
    store.kps.replace_links({rid[f"s{i:03}"]: [("k", "k")] for i in range(25)})
    assert [s.id for s in store.seeds.naming("k", "Physics")] == [f"s{i:03}" for i in range(20)]


def test_items_of_several_statuses_and_a_limit_without_offset(db):
    run = db.runs.create("synthesis", {})
    i1, i2, i3, i4 = _items(db, run)
    assert db.items.ids(run, ["generated", "failed"]) == [i1, i2, i3, i4]
    assert [i.id for i in db.items.of_run(run, ["failed", "generated"], limit=2)] == [i1, i2]


def test_coverage_is_rounded_to_four_places(store):
    store.seeds.add([Seed("a", "Q?", "A")])
    rid = int(store.scalar("SELECT rid FROM seeds"))
    store.kps.replace_links({rid: [("x", "x"), ("y", "y"), ("z", "z")]})
    store.runs.create("sample", {}, paths=[Path(0, ("x",), "P", ("a",), kp_ids=(store.kps.id_of("x"),))])
    assert store.runs.cumulative_coverage() == 0.3333


def test_rows_with_parameters_inside_and_outside_a_transaction(db):
    assert db.rows("SELECT id FROM seeds WHERE discipline = ? ORDER BY id", ["Chemistry"]) == [{"id": "c"},
                                                                                               {"id": "d"}]
    with db.transaction():
        assert db.rows("SELECT id FROM seeds WHERE id = ?", ["e"]) == [{"id": "e"}]
        with pytest.raises(Exception, match="no such table: nowhere") as inside:
            db.rows("SELECT * FROM nowhere")
    with pytest.raises(Exception, match="no such table: nowhere") as outside:
        db.rows("SELECT * FROM nowhere")
    assert type(inside.value).__name__ == type(outside.value).__name__ == "OperationalError"


def test_rows_read_committed_data_while_another_thread_writes(db):
    import threading

    holding, release, seen = threading.Event(), threading.Event(), []

    def write() -> None:
        with db.transaction():
            db.seeds.add([Seed("new", "Q?", "A")])
            holding.set()
            release.wait(10)

    t = threading.Thread(target=write)
    t.start()
    holding.wait(10)
    seen.append(db.rows("SELECT count(*) AS n FROM seeds"))  # must not wait for the writer
    release.set()
    t.join()
    assert seen == [[{"n": 5}]] and db.seeds.count() == 6


def test_a_hand_edited_path_row_reads_back_with_defaults(db):
    with db.transaction() as conn:
        conn.execute("UPDATE paths SET discipline = NULL, kps = '{broken', seed_ids = '' WHERE idx = 0")
    p = db.runs.paths(1, index=0)[0]
    assert (p.discipline, p.kps, p.seed_ids, p.link_strength) == ("Other", (), (), ())
    assert db.runs.paths(1, index=1)[0].link_strength == ()
    with db.transaction() as conn:
        conn.execute("UPDATE runs SET config = '' WHERE id = 1")
    assert db.runs.get(1).config == {}


# -- values computed once per data version (Store.kept, Store._memo) -------------------------


def test_a_kept_value_is_computed_once_per_data_version():
    with Store(":memory:") as mem:  # nothing beside the file: only the Store's own memory remembers
        calls = []
        compute = lambda: calls.append(1) or len(calls)  # noqa: E731
        assert [mem.kept("n", compute), mem.kept("n", compute)] == [1, 1]
        mem.bump()
        assert [mem.kept("n", compute), mem.kept("n", compute)] == [2, 2]
        assert len(calls) == 2


def test_a_value_of_an_older_version_is_computed_again_even_when_it_equals_the_new_version():
    with Store(":memory:") as mem:
        assert mem.version() == 0
        assert mem.kept("n", lambda: 1) == 1
        mem.bump()
        assert mem.version() == 1  # the value kept at version 0 now equals the version number
        assert mem.kept("n", lambda: 2) == 2


def test_two_kept_values_of_one_version_are_kept_apart():
    with Store(":memory:") as mem:
        assert mem.kept("a", lambda: "A") == "A"
        assert mem.kept("b", lambda: "B") == "B"
        assert mem.kept("a", lambda: "other") == "A"


def test_a_kept_value_never_takes_the_name_of_the_stores_own_counts(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.seeds.add([Seed(id="s1", question="q?", answer="a", discipline="Physics")])
        counts = store.counts()
        assert store.kept("counts", lambda: {"seeds": -1}) == {"seeds": -1}
        assert store.counts() == counts and counts["seeds"] == 1
    with Store(tmp_path / "s.db") as again:  # and beside the file, each keeps its own
        assert again.kept("counts", lambda: "computed again") == {"seeds": -1}
        assert again.counts()["seeds"] == 1


def test_a_caller_asking_while_the_value_is_computed_waits_for_it_and_computes_nothing():
    import threading
    import time

    with Store(":memory:") as mem:
        started, asking, release = threading.Event(), threading.Event(), threading.Event()
        calls, got = [], []

        def slow() -> str:
            calls.append("first")
            started.set()
            release.wait(10)
            return "value"

        def second() -> None:
            asking.set()
            got.append(mem.kept("v", lambda: calls.append("second") or "again"))

        one = threading.Thread(target=lambda: got.append(mem.kept("v", slow)))
        one.start()
        started.wait(10)
        two = threading.Thread(target=second)
        two.start()
        asking.wait(10)
        time.sleep(0.3)  # the second caller is now waiting for the first one's computation
        release.set()
        one.join(10)
        two.join(10)
        assert calls == ["first"] and got == ["value", "value"]


def test_values_of_two_names_are_computed_side_by_side():
    import threading

    with Store(":memory:") as mem:
        started, release, quick = threading.Event(), threading.Event(), []

        def slow() -> int:
            started.set()
            release.wait(10)
            return 1

        one = threading.Thread(target=lambda: mem.kept("slow", slow))
        one.start()
        started.wait(10)
        two = threading.Thread(target=lambda: quick.append(mem.kept("quick", lambda: 2)))
        two.start()
        two.join(5)  # must not wait for the slow one
        finished = not two.is_alive()
        release.set()
        one.join(10)
        two.join(10)
        assert finished and quick == [2]

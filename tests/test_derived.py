"""The KP graph and derived results kept beside the database (linkqa_core.graph.stored, store.derived)."""

import os

import numpy as np
import pytest

from linkqa_core.graph import stored
from linkqa_core.graph.build import build_graph
from linkqa_core.graph.stats import graph_stats
from linkqa_core.kps.extract import run_extraction
from linkqa_core.store import Store

FIELDS = ("kp_ids", "freq", "discipline", "difficulty", "indptr", "indices", "weights", "seed_indptr", "seed_rids",
          "discipline_counts")


def _same_graph(a, b) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y), name
    assert a.names == b.names
    assert a.disciplines == b.disciplines


def _rename_one(store, label: str) -> None:
    name = store.query("SELECT name FROM kps JOIN seed_kps ON kp_id = id LIMIT 1")[0][0]
    store.kps.rename(name, label.lower(), label)


def test_a_kept_graph_loads_equal_to_a_fresh_build_in_another_store(sample_store):
    built = build_graph(sample_store)
    assert stored.save_graph(sample_store, built, sample_store.version())
    with Store(sample_store.path) as other:
        loaded = stored.load_graph(other)
    assert loaded is not None
    _same_graph(loaded, built)


def test_a_new_process_loads_the_kept_graph_instead_of_building(sample_store, monkeypatch):
    expected = stored.current_graph(sample_store)

    def no_build(store):
        raise AssertionError("built again although the kept graph is current")

    monkeypatch.setattr(stored, "build_graph", no_build)
    with Store(sample_store.path) as other:
        _same_graph(stored.current_graph(other), expected)


def test_a_loaded_graph_may_be_written_to_without_changing_what_is_kept(sample_store):
    stored.current_graph(sample_store)
    first = stored.load_graph(sample_store)
    first.weights[:] = -1.0  # copy-on-write: this process's pages only
    _same_graph(stored.load_graph(sample_store), build_graph(sample_store))


def test_extraction_keeps_the_graph_of_its_links_and_its_statistics(store):
    from linkqa_core.ingest.load import ingest, sample_path

    ingest(store, sample_path())
    run_extraction(store)
    assert store.derived.version(stored.GRAPH_SET) == store.version()
    assert store.derived.version(stored.STATS_SET) == store.version()
    _same_graph(stored.load_graph(store), build_graph(store))


def test_a_graph_kept_before_the_data_changed_is_not_used_and_is_replaced(sample_store, monkeypatch):
    stored.current_graph(sample_store)
    before = sample_store.version()
    _rename_one(sample_store, "Renamed KP for the test")
    assert sample_store.version() > before
    assert stored.load_graph(sample_store) is None
    builds = []
    real = stored.build_graph
    monkeypatch.setattr(stored, "build_graph", lambda s: builds.append(1) or real(s))
    g = stored.current_graph(sample_store)
    assert builds == [1]
    assert "Renamed KP for the test" in g.names
    assert stored.load_graph(sample_store) is not None
    kept = sorted(p.name for p in sample_store.derived.folder.iterdir() if p.name.startswith("kp_graph.v"))
    assert kept == [f"kp_graph.v{sample_store.version()}"]  # the stale copy is gone


def test_values_come_back_with_their_types(store):
    rng = np.random.default_rng(0)
    frozen = rng.random(5)
    frozen.flags.writeable = False
    value = {"counts": {"seeds": 3, "kps": np.int64(7)}, "pairs": [("a", 1, None), ("ü", 2, 0.1)],
             "listed": [np.arange(4)],
             "arrays": (rng.integers(0, 1 << 40, size=(77, 3)), frozen), "nan": float("nan")}
    assert store.derived.save_value("memo:t", 5, value)
    found, back = store.derived.load_value("memo:t", 5)
    assert found
    assert back["counts"] == {"seeds": 3, "kps": 7} and back["pairs"] == [("a", 1, None), ("ü", 2, 0.1)]
    assert isinstance(back["arrays"], tuple) and np.array_equal(back["arrays"][0], value["arrays"][0])
    assert back["arrays"][0].dtype == np.int64 and back["arrays"][0].flags.writeable
    assert np.array_equal(back["arrays"][1], frozen) and not back["arrays"][1].flags.writeable
    assert np.isnan(back["nan"])
    assert isinstance(back["listed"], list) and np.array_equal(back["listed"][0], np.arange(4))
    assert store.derived.load_value("memo:t", 6) == (False, None)


def test_a_value_that_cannot_be_kept_safely_is_not_kept(store):
    assert not store.derived.save_value("memo:t", 1, {"x": object()})
    assert not store.derived.save_value("memo:t", 1, {1: "int keys"})
    assert store.derived.load_value("memo:t", 1) == (False, None)


def test_a_seed_summary_kept_by_one_store_is_read_by_the_next_without_a_scan(sample_store, monkeypatch):
    first = sample_store.seeds.attributes()
    scans = []
    with Store(sample_store.path) as other:
        real = other.seeds._attributes
        monkeypatch.setattr(other.seeds, "_attributes", lambda: scans.append(1) or real())
        again = other.seeds.attributes()
        assert scans == []
        assert again["summary"] == first["summary"] and again["disciplines"] == first["disciplines"]
        assert np.array_equal(again["difficulty"], first["difficulty"], equal_nan=True)
        assert not again["discipline"].flags.writeable
        _rename_one(other, "Another Label")  # a write that moves the version: scanned again
        other.seeds.attributes()
        assert scans == [1]


def test_a_disk_that_refuses_the_folder_still_gives_the_graph(sample_store):
    folder = sample_store.derived.folder
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder.write_text("a file where the folder would go")  # mkdir fails, as on a read-only disk
    g = stored.current_graph(sample_store)
    assert g.n_nodes == build_graph(sample_store).n_nodes
    assert stored.load_graph(sample_store) is None
    assert folder.read_text() == "a file where the folder would go"


def test_statistics_are_kept_per_version_and_per_options(sample_store, monkeypatch):
    g = stored.current_graph(sample_store)
    first = stored.current_stats(sample_store, g)
    assert first == graph_stats(g)
    calls = []
    import linkqa_core.graph.stats as stats_module

    real = stats_module.graph_stats
    monkeypatch.setattr(stats_module, "graph_stats", lambda *a, **k: calls.append(k) or real(*a, **k))
    with Store(sample_store.path) as other:
        assert stored.current_stats(other) == first
        assert calls == []
        no_comm = stored.current_stats(other, communities=False)
        assert stored.current_stats(other, communities=False) == no_comm
        assert stored.current_stats(other) == first
    assert calls == [{"communities": False}]
    assert no_comm["communities"] is None


@pytest.mark.parametrize("damage", ["header", "array", "dtype"])
def test_a_damaged_kept_graph_is_built_again(sample_store, damage):
    stored.current_graph(sample_store)
    where = sample_store.derived.folder / f"kp_graph.v{sample_store.version()}"
    if damage == "header":
        (where / "header.json").write_text("{not json")
    elif damage == "array":
        with open(where / "5.npy", "r+b") as fh:  # indices: cut short
            fh.truncate(os.path.getsize(where / "5.npy") // 2)
    else:
        np.save(where / "6.npy", np.zeros(3, np.float32))  # weights of the wrong type
    assert stored.load_graph(sample_store) is None
    _same_graph(stored.current_graph(sample_store), build_graph(sample_store))
    _same_graph(stored.load_graph(sample_store), build_graph(sample_store))  # and the damaged copy replaced


def test_a_graph_kept_under_another_format_is_not_loaded(sample_store, monkeypatch):
    stored.current_graph(sample_store)
    assert stored.load_graph(sample_store) is not None
    monkeypatch.setattr(stored, "FORMAT", stored.FORMAT + 1)
    assert stored.load_graph(sample_store) is None


def test_an_in_memory_store_keeps_nothing(tmp_path):
    with Store(":memory:") as mem:
        assert mem.derived.folder is None and mem.derived.version("memo:x") is None
        assert not mem.derived.save_value("memo:x", 0, {"a": 1})
        assert stored.current_graph(mem).n_nodes == 0


def test_merge_suggestions_are_kept_and_follow_a_merge(sample_store, monkeypatch):
    from linkqa_core.kps import curate

    with sample_store.transaction() as conn:  # two spellings of one KP, named by two seeds
        conn.execute("INSERT INTO kps (name) VALUES ('heat-capacity'), ('heat capacity')")
        ids = [r[0] for r in conn.execute("SELECT id FROM kps WHERE name IN ('heat-capacity', 'heat capacity')")]
        rids = [r[0] for r in conn.execute("SELECT rid FROM seeds LIMIT 2")]
        conn.executemany("INSERT INTO seed_kps (seed_rid, kp_id) VALUES (?, ?)", zip(rids, ids))
    sample_store.bump()
    first = curate.suggest_merges(sample_store, limit=200)
    assert ("heat-capacity", "heat capacity") in first or ("heat capacity", "heat-capacity") in first
    passes = []
    real = curate._suggest_merges
    monkeypatch.setattr(curate, "_suggest_merges", lambda s, n: passes.append(n) or real(s, n))
    with Store(sample_store.path) as other:
        assert curate.suggest_merges(other, limit=200) == first
        assert passes == []
        a, b = next(p for p in first if "heat" in p[0])
        curate.merge_kps(other, [a], b)
        after = curate.suggest_merges(other, limit=200)
    assert passes == [200]
    assert all("heat" not in x for pair in after for x in pair)


def test_a_new_database_at_the_same_path_never_reads_the_old_ones_results(tmp_path):
    from linkqa_core.ingest.load import ingest, sample_path

    path = tmp_path / "linkqa.db"
    with Store(path) as first:
        ingest(first, sample_path())
        run_extraction(first)
        old_counts = first.counts()
        version = first.version()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"linkqa.db{suffix}").unlink(missing_ok=True)
    with Store(path) as second:  # the folder of kept results is still there
        assert second.derived.folder.is_dir()
        with second.transaction() as conn:
            conn.execute("INSERT INTO seeds (id, question, answer, discipline, added_at) VALUES ('x', 'q?', 'a', 'Other', 0)")
        while second.version() < version:  # the same version number as the old file's kept results
            second.bump()
        assert second.version() == version
        assert second.counts()["seeds"] == 1 != old_counts["seeds"]
        assert stored.load_graph(second) is None


def test_a_copy_of_the_file_keeps_its_kept_results(sample_store, tmp_path):
    import shutil

    stored.current_graph(sample_store)
    sample_store.checkpoint()
    copy = tmp_path / "copy.db"
    shutil.copy(sample_store.path, copy)
    shutil.copytree(sample_store.path + "-derived", str(copy) + "-derived")
    with Store(copy) as other:
        assert stored.load_graph(other) is not None


# -- the folder's rules (store.derived) -------------------------------------------------------


def test_sets_are_folders_named_by_set_and_version_with_nothing_left_over(store):
    assert store.derived.version("memo:counts") is None  # nothing kept yet, no folder yet
    assert store.derived.save_value("memo:counts", 3, {"seeds": 1})
    assert store.derived.save_value("memo:counts", 3, {"seeds": 2})  # the same version again: replaced
    assert store.derived.save_value("memo:counts", 4, {"seeds": 5})
    assert sorted(p.name for p in store.derived.folder.iterdir()) == ["memo-counts.v4"]
    assert store.derived.version("memo:counts") == 4
    assert store.derived.load_value("memo:counts", 4) == (True, {"seeds": 5})


def test_a_set_is_written_on_the_folders_own_disk_and_renamed_into_place(store, monkeypatch):
    import errno

    folder = store.derived.folder
    real = os.replace

    def replace(src, dst):  # a rename from anywhere outside the folder would cross devices
        if not all(os.fspath(p).startswith(os.fspath(folder) + os.sep) for p in (src, dst)):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert store.derived.save_value("memo:a", 1, {"x": 1})
    assert store.derived.save_value("memo:a", 1, {"x": 2})
    assert store.derived.load_value("memo:a", 1) == (True, {"x": 2})


def test_a_value_that_only_pickle_could_keep_is_refused_and_leaves_nothing(store, caplog):
    with caplog.at_level("WARNING", logger="linkqa_core.store.derived"):
        assert not store.derived.save_value("memo:objects", 1, {"a": np.array([{"x": 1}], dtype=object)})
        assert not store.derived.save_value("memo:thing", 1, [object()])
    assert store.derived.load_value("memo:objects", 1) == (False, None)
    assert [p.name for p in store.derived.folder.iterdir()] == []  # no half-written folder
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith(f"memo:objects was not kept beside {store.path}: Object arrays cannot be saved")
    assert messages[1] == "memo:thing was not kept: cannot keep a object"


def test_a_pickled_array_in_a_kept_folder_is_never_loaded(store):
    assert store.derived.save_value("memo:v", 1, {"a": np.arange(3)})
    where = store.derived.folder / "memo-v.v1"
    np.save(where / "0.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    assert store.derived.load_value("memo:v", 1) == (False, None)


def test_a_folder_renamed_to_another_sets_name_is_not_taken_for_it(store):
    assert store.derived.save_value("memo:a", 1, {"x": 1})
    os.rename(store.derived.folder / "memo-a.v1", store.derived.folder / "memo-b.v1")
    assert store.derived.load_value("memo:b", 1) == (False, None)


def test_a_header_that_names_a_missing_array_is_no_value(store):
    assert store.derived.save_value("memo:v", 1, [np.arange(3)])
    where = store.derived.folder / "memo-v.v1"
    head = (where / "header.json").read_text().replace('"array": "0"', '"array": "7"')
    (where / "header.json").write_text(head)
    assert store.derived.load_value("memo:v", 1) == (False, None)


def test_stray_entries_in_the_folder_do_not_confuse_the_version(store):
    assert store.derived.save_value("memo:v", 2, {"x": 1})
    (store.derived.folder / "memo-v.vold").mkdir()
    (store.derived.folder / "memo-w.v9").mkdir()
    assert store.derived.version("memo:v") == 2


def test_kept_graph_arrays_are_mapped_from_their_files(sample_store):
    stored.current_graph(sample_store)
    g = stored.load_graph(sample_store)
    assert isinstance(g.indices, np.memmap) and isinstance(g.seed_rids, np.memmap)


def test_a_set_name_outside_the_allowed_letters_is_refused(store):
    with pytest.raises(ValueError, match=r"letters, digits and _:\.- only, got '\.\./x'"):
        store.derived.save_value("../x", 1, 1)


def test_the_graph_of_an_explicit_version_is_that_versions_copy(sample_store):
    kept = stored.current_graph(sample_store)
    version = sample_store.version()
    _rename_one(sample_store, "A Later Label")
    _same_graph(stored.load_graph(sample_store, version), kept)  # the older copy, asked for by its version
    assert stored.load_graph(sample_store) is None  # none of the current version yet


def test_statistics_of_a_given_graph_never_load_another(sample_store, monkeypatch):
    g = stored.current_graph(sample_store)
    monkeypatch.setattr(stored, "current_graph", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    assert stored.current_stats(sample_store, g, communities=False)["nodes"] == g.n_nodes


def test_statistics_under_two_choices_of_options_are_kept_side_by_side(sample_store, monkeypatch):
    g = stored.current_graph(sample_store)
    calls = []
    import linkqa_core.graph.stats as stats_module

    real = stats_module.graph_stats
    monkeypatch.setattr(stats_module, "graph_stats", lambda *a, **k: calls.append(k) or real(*a, **k))
    a = {"communities": False, "max_community_edges": 10}
    b = {"max_community_edges": 10, "communities": True}
    for _ in range(2):
        stored.current_stats(sample_store, g, **a)
        stored.current_stats(sample_store, g, **b)
    stored.current_stats(sample_store, g, max_community_edges=10, communities=False)  # a, named in another order
    assert calls == [a, b]


def test_counts_kept_by_one_store_are_read_by_the_next_without_a_scan(sample_store, monkeypatch):
    first = sample_store.counts()
    assert sample_store.derived.version("memo:counts") == sample_store.version()  # kept as the set memo:counts
    scans = []
    with Store(sample_store.path) as other:
        real = other._seed_counts
        monkeypatch.setattr(other, "_seed_counts", lambda: scans.append(1) or real())
        assert other.counts() == first
        assert scans == []


def test_a_memo_not_asked_to_keep_leaves_nothing_beside_the_file(store):
    assert store._memo("plain", lambda: {"x": 1}) == {"x": 1}
    assert store.derived.version("memo:plain") is None
    assert store.kept("asked", lambda: {"x": 2}) == {"x": 2}
    assert store.derived.version("memo:kept:asked") == store.version()  # the folder is there and writable

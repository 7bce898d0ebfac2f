import json
import sqlite3

import pytest

from linkqa_core.errors import ConfigError, InputError, NotFoundError
from linkqa_core.graph.sampling import coverage_ledger, sample
from linkqa_core.ingest.load import ingest, sample_path
from linkqa_core.store import PAGE_SIZE, SCHEMA_VERSION, Store
from linkqa_core.graph.walks import WalkParams


def test_database_uses_wal_and_the_latest_schema(store):
    assert store.scalar("PRAGMA journal_mode") == "wal"
    assert store.schema_version == SCHEMA_VERSION


def test_reopening_a_database_keeps_its_data(sample_store):
    path, n = sample_store.path, sample_store.seeds.count()
    sample_store.close()
    with Store(path) as again:
        assert again.seeds.count() == n and again.schema_version == SCHEMA_VERSION


def test_a_new_database_gets_16k_pages_and_an_older_4k_one_keeps_its_own(tmp_path):
    with Store(tmp_path / "new.db") as new:
        assert new.scalar("PRAGMA page_size") == PAGE_SIZE == 16384
    old = sqlite3.connect(tmp_path / "old.db")
    old.execute("PRAGMA page_size=4096")
    old.execute("CREATE TABLE note (x)")
    old.close()
    with Store(tmp_path / "old.db") as store:
        assert store.scalar("PRAGMA page_size") == 4096 and store.schema_version == SCHEMA_VERSION
        assert ingest(store, sample_path()).added == 1139


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("hello, I am not a database")
    with pytest.raises(InputError, match="is not a LinkQA database"):
        Store(bad)


def test_saved_sample_is_a_run_with_config_metrics_paths_and_bundles(sample_store):
    result = sample(sample_store, WalkParams(w_cov=2.0), 50, seed=5, save=True, name="t")
    run = sample_store.runs.get(result.run_id)
    assert run.kind == "sample" and run.name == "t"
    assert run.config["w_cov"] == 2.0 and run.config["seed"] == 5 and run.config["n_paths"] == 50
    assert run.metrics["kp_coverage"] == result.metrics["kp_coverage"]
    assert run.baseline["kp_coverage"] == result.baseline["kp_coverage"]
    paths = sample_store.runs.paths(result.run_id)
    assert [p.kps for p in paths] == [p.kps for p in result.paths(sample_store)]
    assert [p.seed_ids for p in paths] == [p.seed_ids for p in result.paths(sample_store)]
    assert all(1 <= len(p.seed_ids) <= 5 for p in paths)


def test_a_run_config_repeats_the_same_paths(sample_store):
    first = sample(sample_store, WalkParams(tau=0.5), 40, seed=9, save=True)
    cfg = sample_store.runs.get(first.run_id).config
    again = sample(sample_store, WalkParams.from_dict(cfg), cfg["n_paths"], seed=cfg["seed"])
    assert [p.kps for p in again.paths(sample_store)] == [p.kps for p in sample_store.runs.paths(first.run_id)]


def test_ledger_all_fills_the_gaps_earlier_runs_left(sample_store):
    params = WalkParams(w_cov=3.0)
    sample(sample_store, params, 300, seed=1, save=True)
    after_one = sample_store.runs.cumulative_coverage()
    fresh = sample(sample_store, params, 300, seed=2)
    filling = sample(sample_store, params, 300, seed=2, ledger="all")
    ledger = coverage_ledger(sample_store, filling.graph)
    new_fresh = ((fresh.walks.visits > 0) & (ledger == 0)).sum()
    new_filling = ((filling.walks.visits > 0) & (ledger == 0)).sum()
    assert new_filling > new_fresh
    assert filling.metrics["cumulative_kp_coverage"] > after_one


def test_cumulative_coverage_counts_every_saved_run(sample_store):
    assert sample_store.runs.cumulative_coverage() == 0
    sample(sample_store, WalkParams(), 100, seed=1, save=True)
    one = sample_store.runs.cumulative_coverage()
    sample(sample_store, WalkParams(), 100, seed=2, save=True)
    assert sample_store.runs.cumulative_coverage() > one > 0


def test_an_interrupted_save_leaves_no_partial_run(sample_store, monkeypatch):
    result = sample(sample_store, WalkParams(), 30, seed=1)
    before = sample_store.counts()
    real_execute = sample_store._writer.execute
    calls = {"n": 0}

    class Boom(Exception):
        pass

    def flaky(sql, *args):
        if sql.startswith("INSERT INTO paths"):
            calls["n"] += 1
            if calls["n"] == 10:
                raise Boom("disk unplugged")
        return real_execute(sql, *args)

    class Conn:
        def __getattr__(self, name):
            return flaky if name == "execute" else getattr(real, name)

    real = sample_store._writer
    sample_store._writer = Conn()
    try:
        with pytest.raises(Boom):
            from linkqa_core.graph.sampling import save_sample

            save_sample(sample_store, result)
    finally:
        sample_store._writer = real
    assert sample_store.counts() == before


def test_unknown_run_and_bad_ledger_get_clear_errors(sample_store):
    with pytest.raises(NotFoundError, match="no run 99"):
        sample_store.runs.paths(99)
    with pytest.raises(ConfigError, match="ledger must be one of"):
        sample(sample_store, WalkParams(), 10, ledger="most")


def test_sampling_before_extraction_says_the_graph_is_empty(store):
    with pytest.raises(ConfigError, match="the KP graph is empty"):
        sample(store, WalkParams(), 10)

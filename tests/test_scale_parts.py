"""The Ray backend's parts that need no Ray: settings, storage, ids and tables, the limiter's
rules, the shared cache, the review sample, the manifest."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
import pytest

from linkqa_core.errors import ConfigError
from linkqa_core.records import Item
from linkqa_core.scale import progress
from linkqa_core.scale.cache import CacheStore
from linkqa_core.scale.importer import stratified_sample
from linkqa_core.scale.limiter import BUDGET_REACHED, ClusterLimiter, LimitSettings
from linkqa_core.scale.manifest import Manifest
from linkqa_core.scale.settings import ScaleSettings
from linkqa_core.scale.storage import Storage, open_storage
from linkqa_core.scale.tables import dedupe_first, item_uid, items_from_table, items_table, uid


def test_backend_settings_refuse_what_cannot_work():
    with pytest.raises(ConfigError, match="needs storage"):
        ScaleSettings(kind="ray")
    with pytest.raises(ConfigError, match="unknown backend setting 'actor'"):
        ScaleSettings.from_dict({"kind": "ray", "storage": "/x", "actor": 3})
    with pytest.raises(ConfigError, match="actors must be"):
        ScaleSettings(kind="ray", storage="/x", actors=0)
    assert ScaleSettings.from_dict({"kind": "ray", "storage": "s3://k:secret@bucket/p?x=1"}).to_dict()["storage"] \
        == "s3://bucket/p"


def test_the_ray_backend_is_not_imported_by_the_engine_or_the_cli():
    import subprocess
    import sys

    code = "import sys, linkqa_core.cli, linkqa_core.pipeline, linkqa_core.scale; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_storage_writes_whole_shards_and_lists_no_temporary_files(tmp_path):
    s = open_storage(str(tmp_path / "st"))
    s.write_table("results/a/part-1.parquet", pa.table({"x": [1, 2]}))
    (tmp_path / "st" / "results" / "a" / "part-2.parquet.abc.tmp").write_bytes(b"half")
    assert [f.rsplit("/", 1)[1] for f in s.files("results")] == ["part-1.parquet"]
    assert [t.num_rows for t in s.read_tables("results")] == [2]
    s.write_json("m.json", {"a": 1})
    assert s.read_json("m.json") == {"a": 1} and s.read_json("missing.json") is None


def test_ids_are_stable_and_items_survive_the_parquet_round_trip():
    assert uid("bundle", 1, 2) == uid("bundle", 1, 2) != uid("bundle", 1, 3)
    item = Item("Which gas do plants take in?", "CO2", options=("CO2", "O2"), kps_used=("photosynthesis",),
                run_id=1, path_id=4, slot="p3:0", seed_ids=("s1", "s2"), model="m", difficulty=3.0)
    rows = [(item_uid(7, 0), 7, 300, item, False), (item_uid(7, 0), 7, 300, item.with_(question="dup"), False)]
    table = dedupe_first([items_table(rows[:1]), items_table(rows[1:])])
    assert table.num_rows == 1
    (_, back), = items_from_table(table)
    assert back == item


def test_the_limiter_holds_the_rate_and_the_budget():
    lim = ClusterLimiter(LimitSettings(rpm=600))  # 10 a second, one second banked
    granted = [lim.try_acquire(4)[0] for _ in range(5)]
    assert sum(granted) == 10  # a full bucket, then nothing until it refills
    time.sleep(0.35)
    assert 2 <= lim.try_acquire(10)[0] <= 4

    lim = ClusterLimiter(LimitSettings(budget_tokens=1000, spent_tokens=100))
    assert lim.try_acquire(8)[0] == 1  # no cost known yet: one at a time
    assert lim.try_acquire(8)[0] == 0
    lim.report(returned=1, requests=1, done=1, prompt_tokens=200, completion_tokens=100, calls_with_tokens=1)
    assert lim.try_acquire(8)[0] == 2  # (1000 - 400) / 300 per request
    lim.report(returned=2, requests=2, done=2, prompt_tokens=400, completion_tokens=200, calls_with_tokens=2)
    assert lim.try_acquire(8) == (0, BUDGET_REACHED, 0.0)
    snap = lim.snapshot()
    assert snap["tokens"] == 900 and snap["spent_tokens_total"] == 1000 and snap["budget_reached"]


def test_a_budget_left_smaller_than_an_average_request_still_lets_one_go_when_none_is_out():
    lim = ClusterLimiter(LimitSettings(budget_tokens=1000))
    assert lim.try_acquire(4)[0] == 1
    lim.report(returned=1, requests=1, done=1, prompt_tokens=600, completion_tokens=300, calls_with_tokens=1)
    # 100 tokens left against 900 a request: not reached, so one more request may spend it
    assert lim.try_acquire(4)[:2] == (1, None)
    assert lim.try_acquire(4)[:2] == (0, None)  # that one is out: wait for its report
    lim.report(returned=1, requests=1, done=1, prompt_tokens=60, completion_tokens=10, calls_with_tokens=1)
    assert lim.try_acquire(4)[:2] == (1, None)  # 30 left, still not reached, nothing out
    lim.report(returned=1, requests=1, done=1, prompt_tokens=20, completion_tokens=20, calls_with_tokens=1)
    assert lim.try_acquire(4) == (0, BUDGET_REACHED, 0.0)


def test_the_shared_cache_answers_what_was_recorded_and_treats_damage_as_a_miss(tmp_path):
    store = CacheStore(Storage(str(tmp_path)))
    store.llm.record([], [("ab" + "0" * 62, {"content": "yes"}), ("cd" + "0" * 62, {"content": "no"})])
    assert store.llm.cached(["cd" + "0" * 62]) == {"cd" + "0" * 62: {"content": "no"}}  # served while it is written
    store.cache.flush()
    (tmp_path / "cache" / "cd" / ("cd" + "0" * 62 + ".json")).write_text("{broken")
    assert store.llm.cached(["ab" + "0" * 62, "cd" + "0" * 62, "ef" + "0" * 62]) == {"ab" + "0" * 62: {"content": "yes"}}
    store.close()


def test_the_shared_cache_has_every_ledger_method_the_client_calls(tmp_path):
    """The client calls ``store.llm.<name>``; on Ray that store is the shared cache, so a new
    call in the client must exist there too (a missing ``modes`` failed every Ray batch)."""
    import re
    from pathlib import Path

    import linkqa_core.llm.client as client

    called = set(re.findall(r"store\.llm\.(\w+)\(", Path(client.__file__).read_text(encoding="utf-8")))
    store = CacheStore(Storage(str(tmp_path)))
    assert called and {name for name in called if not callable(getattr(store.llm, name, None))} == set()
    store.close()


def test_the_shared_cache_keeps_the_settled_output_modes(tmp_path):
    store = CacheStore(Storage(str(tmp_path)))
    assert store.llm.modes() == []
    store.llm.set_mode("http://a:1/v1", "m", "json_object_schema", "json_schema refused")
    store.llm.set_mode("http://b:2/v1", "m", "prompt")
    again = CacheStore(Storage(str(tmp_path)))  # another actor reads them
    assert sorted((d["endpoint"], d["mode"]) for d in again.llm.modes()) == [
        ("http://a:1/v1", "json_object_schema"), ("http://b:2/v1", "prompt")]
    assert again.llm.mode("http://a:1/v1", "m") == "json_object_schema"
    store.close()
    again.close()


def test_the_review_sample_keeps_every_strata_share():
    n = 1000
    disc = ["Math"] * 600 + ["Physics"] * 300 + ["Law"] * 100
    table = pa.table({"uid": np.arange(n, dtype=np.int64), "discipline": disc,
                      "difficulty": [float(1 + i % 5) for i in range(n)], "status": ["generated"] * n})
    pick = stratified_sample(table, 100)
    assert len(pick) == 100 and len(set(pick.tolist())) == 100
    chosen = [disc[i] for i in pick]
    assert (chosen.count("Math"), chosen.count("Physics"), chosen.count("Law")) == (60, 30, 10)
    assert np.array_equal(pick, stratified_sample(table, 100))


def test_progress_reads_a_run_manifest_or_every_run_under_the_root(tmp_path):
    import linkqa_core.scale.synthesis  # noqa: F401 - importing the stages leaves progress() a function
    from linkqa_core.scale import progress

    assert progress(str(tmp_path)) == {}
    Manifest(Storage(str(tmp_path / "run-3"))).update(synthesis={"state": "running", "done": 5})
    Manifest(Storage(str(tmp_path / "run-3"))).update(synthesis={"done": 9})
    assert progress(str(tmp_path / "run-3"))["synthesis"] == {"state": "running", "done": 9}
    assert progress(str(tmp_path))["runs"]["3"]["synthesis"]["done"] == 9
    assert json.loads((tmp_path / "run-3" / "manifest.json").read_text())["updated_at"] > 0


def test_a_runs_manifest_is_found_from_the_storage_its_config_records(tmp_path):
    from linkqa_core.errors import InputError
    from linkqa_core.scale.manifest import run_manifest

    assert run_manifest({}, 3) is None  # a run that never ran on Ray
    assert run_manifest({"backend": {"kind": "local", "storage": str(tmp_path)}}, 3) is None
    config = {"backend": {"kind": "ray", "storage": str(tmp_path) + "/"}}
    assert run_manifest(config, 3) == {}  # not written yet
    (tmp_path / "run-3").mkdir()
    (tmp_path / "run-3" / "manifest.json").write_text(json.dumps({"synthesis": {"state": "running", "done": 7}}))
    (tmp_path / "run-4").mkdir()
    (tmp_path / "run-4" / "manifest.json").write_text(json.dumps({"synthesis": {"state": "finished", "done": 9}}))
    assert run_manifest(config, 3) == {"synthesis": {"state": "running", "done": 7}}
    for uri, says in (("nosuch://bucket/x", "Unrecognized filesystem type"), ("hdfs://nohost:1/x", "libjvm")):
        with pytest.raises(InputError, match=rf"^storage '{uri}/run-3' cannot be opened \(.*{says}") as err:
            run_manifest({"backend": {"kind": "ray", "storage": uri}}, 3)
        assert "\n" not in str(err.value)  # hdfs's error lists every libjvm path it tried, one a line

"""`run --config FILE.toml`: the whole pipeline unattended, resumable, keys refused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from linkqa_core.errors import ConfigError, InputError
from linkqa_core.pipeline import load_config, run_from_config
from linkqa_core.curation.review import list_items
from openai_server import Answer, FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[ingest]
sample = true
[sample]
paths = 8
seed = 4
w_cov = 2.0
[synthesize]
per_bundle = 2
items = 20
[enhance]
targets = "default=4:0.5,5:0.5"
max_rounds = 1
[gates]
near_dup_threshold = 0.8
[export]
out = "out.jsonl"
status = "unrejected"
"""


def test_offline_pipeline_runs_every_stage_and_exports(store, tmp_path, monkeypatch):
    for key in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LINKQA_MODEL"):
        monkeypatch.delenv(key, raising=False)
    cfg = tmp_path / "p.toml"
    cfg.write_text(CONFIG)
    report = run_from_config(store, cfg)
    assert report["ingest"][0]["added"] == 1139
    assert report["extract"]["kps"] > 1000
    assert report["synthesize"]["items"] >= 20 and report["synthesize"]["model"] == "offline-composer"
    assert report["enhance"]["attempted"] > 0
    assert set(report["gates"]) >= {"schema", "near_duplicate"}
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == report["export"]["records"] > 0
    assert json.loads(lines[0])["provenance"]["run_id"] == report["run_id"]


def test_running_the_same_config_again_resumes_the_same_run(store, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = tmp_path / "p.toml"
    cfg.write_text(CONFIG.split("[enhance]")[0])
    first = run_from_config(store, cfg)
    items = len(list_items(store, first["run_id"], limit=10_000))
    second = run_from_config(store, cfg)
    assert second["run_id"] == first["run_id"] and second["sample"]["resumed"]
    assert second["ingest"][0]["added"] == 0 and "skipped" in second["extract"]
    assert len(list_items(store, first["run_id"], limit=10_000)) == items


def test_a_key_in_the_config_is_refused(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('[llm]\napi_key = "sk-123"\n')
    with pytest.raises(ConfigError, match="keys belong in the environment"):
        load_config(cfg)


def test_bad_toml_and_unknown_sections_say_where(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[sample\npaths = 3")
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(bad)
    odd = tmp_path / "odd.toml"
    odd.write_text("[sampling]\npaths = 3\n")
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['sampling'\]"):
        load_config(odd)


def test_cli_run_against_a_local_model_server(tmp_path):
    def responder(body):
        text = body["messages"][-1]["content"]
        tag = abs(hash(text)) % 100000
        items = [{"question": f"Combined question {tag}-{i}: which option links the two ideas?",
                  "options": ["one", "two", "three", "four"], "answer": "C", "solution": "three, because.",
                  "kps_used": [], "difficulty": 5} for i in range(2)]
        return Answer(json.dumps({"items": items}), reasoning_content="<reasoning>")

    cfg = tmp_path / "p.toml"
    cfg.write_text(CONFIG.split("[enhance]")[0] + '[export]\nout = "out.jsonl"\n')
    with FakeOpenAI() as srv:
        srv.responder = responder
        env = {**os.environ, "PYTHONPATH": str(ROOT), "LINKQA_DB": str(tmp_path / "p.db"),
               "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-test-pipeline-SECRET-99", "LINKQA_MODEL": "r1"}
        proc = subprocess.run([sys.executable, "-m", "linkqa_core", "run", "--config", str(cfg), "--json", "-q"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert len(srv.chat_requests) == 10
    report = json.loads(proc.stdout)
    assert report["synthesize"]["model"] == "r1" and report["synthesize"]["items"] == 20
    recs = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert all(r["answer"] == "three" and r["provenance"]["model"] == "r1" for r in recs)
    assert b"sk-test-pipeline-SECRET-99" not in (tmp_path / "p.db").read_bytes()

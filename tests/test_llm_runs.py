"""Runs that fail honestly and cheaply: outages, budgets across restarts, two processes, bad text.

The command line in child processes against tests/openai_server.py; the StageModel answers
every prompt deterministically, so a resumed run can be compared item for item with an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from linkqa_core.curation.review import list_items
from linkqa_core.graph.sampling import sample
from linkqa_core.graph.walks import WalkParams
from linkqa_core.llm.client import LLMSettings
from linkqa_core.pipeline import resume_command
from linkqa_core.store import Store
from linkqa_core.synthesis.run import SynthesisConfig, synthesize
from openai_server import Answer, FakeOpenAI, HTTPError, StageModel

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-runs-SECRET-777"


@pytest.fixture
def run_id(sample_store):
    return sample(sample_store, WalkParams(), 8, seed=5, save=True).run_id


def cli(db: Path, *args, env: dict | None = None, wait: bool = True, timeout: float = 120):
    full = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "LINKQA_DB": str(db), **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "linkqa_core", *map(str, args)], env=full, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def endpoint_env(srv: FakeOpenAI, **extra: str) -> dict:
    return {"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": KEY, "LINKQA_MODEL": "fake-model",
            "LINKQA_BACKOFF_BASE_S": "0.01", "LINKQA_BACKOFF_MAX_S": "0.02", **extra}


def export(db: Path, run_id: int, out: Path) -> list[dict]:
    code, _, err = cli(db, "export", "--run", run_id, "--out", out, "--status", "all")
    assert code == 0, err
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    for r in recs:  # ids and token splits may differ; the QA and provenance may not
        r.pop("id"), r["provenance"].pop("item_id")
    return sorted(recs, key=lambda r: (r["provenance"]["path_index"], r["question"]))


class Held:
    """A StageModel that holds every request until ``release`` is set (a process stays mid-run)."""

    def __init__(self) -> None:
        self.model = StageModel()
        self.release = threading.Event()

    def __call__(self, body):
        self.release.wait(60)
        return self.model(body)


class Outage:
    """A StageModel behind a switch: while ``down``, every request gets 503."""

    def __init__(self) -> None:
        self.model = StageModel()
        self.down = False
        self.answered = 0
        self.lock = threading.Lock()

    def __call__(self, body):
        if self.down:
            return HTTPError(503, "upstream connect error", wire=None)
        with self.lock:
            self.answered += 1
        return self.model(body)


def test_an_outage_stops_synthesis_and_a_resume_equals_a_run_that_never_saw_it(sample_store, run_id, tmp_path):
    sample_store.close()
    clean_db, outage_db = tmp_path / "clean.db", tmp_path / "outage.db"
    shutil.copy(sample_store.path, clean_db)
    shutil.copy(sample_store.path, outage_db)
    args = ("synthesize", "--run", run_id, "--per-bundle", 2, "--concurrency", 2, "-q")
    with FakeOpenAI(StageModel()) as srv:
        code, out, err = cli(clean_db, *args, env=endpoint_env(srv))
        assert code == 0, err
    switch = Outage()
    with FakeOpenAI(switch, latency=0.05) as srv:
        env = endpoint_env(srv, LINKQA_MAX_RETRIES="1", LINKQA_OUTAGE_AFTER="3")
        proc = cli(outage_db, *args, env=env, wait=False)
        deadline = time.time() + 60
        while switch.answered < 3 and time.time() < deadline:
            time.sleep(0.01)
        switch.down = True
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1
        assert err.startswith("error: the endpoint http://127.0.0.1") and "requests in a row" in err
        assert "run the same command again" in err and KEY not in err and len(err.strip().splitlines()) == 1
        with Store(outage_db) as store:
            assert store.items.counts(run_id).get("failed", 0) == 0  # nothing was marked done and failed
            assert store.runs.path_count(run_id) == 8  # and no path was sampled to replace one
            partial = store.items.good_count(run_id)
            assert store.runs.get(run_id).status == "stopped"
        assert 0 < partial < 16
        switch.down = False
        code, out, err = cli(outage_db, "synthesize", "--run", run_id, "-q", env=env)  # the stored settings resume it
        assert code == 0, err
    assert export(outage_db, run_id, tmp_path / "b.jsonl") == export(clean_db, run_id, tmp_path / "a.jsonl")


def test_a_budget_belongs_to_the_run_and_a_restart_continues_it(sample_store, run_id):
    model = StageModel()
    with FakeOpenAI(model) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key=KEY, model="fake-model", concurrency=1,
                               budget_tokens=3000)
        first = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2), settings)
        sent = len(srv.chat_requests)
        spent = sample_store.llm.spend(run_id, ["synthesis"]).total_tokens
        assert first.stopped == "token or money budget reached" and 0 < first.items_ok < 16
        assert spent >= 3000 and spent - 3000 < spent / sent  # over by less than one request (concurrency 1)
        again = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2), settings)
        assert len(srv.chat_requests) == sent and again.spent_before == spent  # nothing more spent
        assert again.stopped == "token or money budget reached" and again.items_ok == first.items_ok
        more = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2),
                          LLMSettings(base_urls=(srv.base_url,), api_key=KEY, model="fake-model"))
    assert more.items_ok == 16 and more.stopped is None


def test_the_budget_of_an_interrupted_command_is_remembered_by_the_run(sample_store, run_id, tmp_path):
    sample_store.close()
    db = Path(sample_store.path)
    with FakeOpenAI(StageModel()) as srv:
        code, out, err = cli(db, "synthesize", "--run", run_id, "--budget-tokens", 2500, "--concurrency", 1, "-q",
                             "--json", env=endpoint_env(srv))
        assert code == 0, err and json.loads(out)["stopped"] == "token or money budget reached"
        sent = len(srv.chat_requests)
        code, out, err = cli(db, "synthesize", "--run", run_id, "-q", "--json", env=endpoint_env(srv))
        assert code == 0, err
        assert len(srv.chat_requests) == sent and json.loads(out)["stopped"] == "token or money budget reached"


def test_a_second_process_on_the_same_run_is_refused_and_a_killed_one_shows_how_to_resume(sample_store, run_id,
                                                                                         tmp_path):
    sample_store.close()
    db = Path(sample_store.path)
    held = Held()
    with FakeOpenAI(held) as srv:
        env = endpoint_env(srv)
        first = cli(db, "synthesize", "--run", run_id, "--concurrency", 1, "-q", env=env, wait=False)
        deadline = time.time() + 60
        while not srv.chat_requests and time.time() < deadline:
            time.sleep(0.02)
        for command in (("synthesize", "--run", run_id), ("enhance", "--run", run_id)):
            code, out, err = cli(db, *command, "-q", env=env)
            assert code == 1, (command, out, err)
            assert err.startswith(f"error: synthesis of run {run_id} is already running in another "
                                                f"process (pid {first.pid}")
            assert len(err.strip().splitlines()) == 1
        asked = len(srv.chat_requests)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        held.release.set()
    assert asked == 1  # the refused processes asked nothing
    code, out, err = cli(db, "runs")
    assert code == 0 and f"run {run_id} was interrupted; resume it with: python -m linkqa_core synthesize " \
                         f"--run {run_id}" in out
    with Store(db) as store:
        assert store.runs.get(run_id).status == "interrupted"
        assert resume_command(store, run_id) == f"python -m linkqa_core synthesize --run {run_id}"


def test_a_killed_enhancement_shows_as_interrupted_with_its_resume_command(sample_store, run_id):
    synthesize(sample_store, run_id, SynthesisConfig(per_bundle=1))  # offline items to enhance
    sample_store.close()
    db = Path(sample_store.path)
    held = Held()
    with FakeOpenAI(held) as srv:
        proc = cli(db, "enhance", "--run", run_id, "--targets", "default=5:1", "--concurrency", 1, "-q",
                   env=endpoint_env(srv), wait=False)
        deadline = time.time() + 60
        while not srv.chat_requests and time.time() < deadline:
            time.sleep(0.02)
        with Store(db) as store:
            assert store.runs.get(run_id).status == "enhancing" and resume_command(store, run_id) is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        held.release.set()
    with Store(db) as store:
        assert store.runs.get(run_id).status == "interrupted"
        assert resume_command(store, run_id) == f"python -m linkqa_core enhance --run {run_id}"
        assert store.runs.get(run_id).config["difficulty"]["targets"].startswith("default=5:1")


def test_answers_that_cannot_be_stored_as_is_are_cleaned_and_a_resume_does_not_trip_on_them(sample_store, run_id):
    def unstorable(body):
        text = body["messages"][-1]["content"]
        tag = str(abs(hash(text)) % 10_000)
        item = {"question": f"Which \\ud800 option fits case {tag} with a NUL \\u0000 inside?",
                "options": ["a\\udfff", "b", "c", "d"], "answer": "B", "solution": "b \\ud800", "kps_used": ["k"]}
        # the JSON escapes decode to a lone surrogate and a NUL; the HTTP body itself is valid
        return Answer('{"items": [' + ", ".join([json.dumps(item).replace("\\\\", "\\")] * 2) + "]}")

    with FakeOpenAI(unstorable) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key=KEY, model="fake-model", concurrency=4)
        report = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2), settings)
        again = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2, target_items=20), settings)
    assert report.items_ok == 16 and report.items_failed == 0 and again.items_ok == 20
    items = list_items(sample_store, run_id, limit=100)
    assert all("\ufffd" in i.question and "\x00" not in i.question for i in items)
    assert all(i.options[0] == "a\ufffd" and i.answer == "b" for i in items)

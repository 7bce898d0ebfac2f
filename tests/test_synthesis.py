"""Diffusion synthesis: offline composer, a scripted model over real HTTP, resumable runs."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from linkqa_core.errors import ConfigError, NotFoundError
from linkqa_core.curation.export import export_run
from linkqa_core.llm.client import LLMSettings
from linkqa_core.curation.review import list_items
from linkqa_core.graph.sampling import sample
from linkqa_core.synthesis.compose import parse_items
from linkqa_core.synthesis.offline import OFFLINE_MODEL
from linkqa_core.synthesis.prompt import DEFAULT_TEMPLATE, render_prompt
from linkqa_core.synthesis.run import (
    SynthesisConfig,
    bundles_of,
    estimate_synthesis_cost,
    preview_bundle,
    run_progress,
    synthesize,
)
from linkqa_core.tasks import ReplyError
from linkqa_core.graph.walks import WalkParams
from openai_server import Answer, FakeOpenAI, HTTPError

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-SECRET-synthesis-0123456789"


def good_answer(n=2, tag="q"):
    items = [{"question": f"Which statement about {tag} number {i} links both ideas correctly?",
              "options": ["alpha", "beta", "gamma", "delta"], "answer": "B", "solution": "Because beta.",
              "kps_used": ["x", "y"], "difficulty": 4} for i in range(n)]
    return json.dumps({"items": items})


def prompt_responder(body):
    """Answers depend on the prompt only, so reruns and resumes agree item for item."""
    text = body["messages"][-1]["content"]
    tag = str(abs(hash(text)) % 10_000_000)
    return Answer(good_answer(2, tag), reasoning_content="thinking about " + tag[:4])


@pytest.fixture
def run_id(sample_store):
    return sample(sample_store, WalkParams(), 12, seed=3, save=True).run_id


def settings_for(srv, **kw):
    return LLMSettings(base_urls=(srv.base_url,), api_key=KEY, model="fake-r1", **kw)


def test_offline_composer_fills_the_run_and_says_it_is_offline(sample_store, run_id):
    report = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2))
    assert report.items_ok == 24 and report.model == OFFLINE_MODEL
    items = list_items(sample_store, run_id)
    assert all(i.model == OFFLINE_MODEL for i in items)
    for item in items:
        assert item.options.count(item.answer) == 1
        # how the item was made is provenance, never training text
        assert "offline" not in item.solution and "model" not in item.solution
    assert sample_store.runs.get(run_id).status == "synthesized"


def test_asking_for_more_items_than_bundles_give_samples_more_paths(sample_store, run_id):
    report = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2, target_items=40))
    assert report.items_ok == 40
    # 12 paths give at most 24 items, so at least 8 more are sampled; more when a bundle
    # of two seeds gives one offline item (a pair is never asked twice)
    assert report.paths_added >= 8
    assert sample_store.scalar("SELECT count(*) FROM paths WHERE run_id = ?", (run_id,)) == 12 + report.paths_added


def test_template_with_unknown_field_is_refused_before_any_call():
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \{topic\}"):
        SynthesisConfig(template="{kps} {seeds} {topic}")
    with pytest.raises(ConfigError, match="must contain"):
        SynthesisConfig(template="no fields here")


def test_prompt_holds_path_kps_in_order_and_every_bundle_seed(sample_store, run_id):
    ctx = bundles_of(sample_store, sample_store.runs.paths(run_id))[0]
    prompt = render_prompt(DEFAULT_TEMPLATE, ctx, 3, 4.0, True)
    assert " -> ".join(ctx.kps) in prompt
    for seed in ctx.seeds:
        assert seed.question.strip()[:40] in prompt
    assert "Write 3 new" in prompt and "difficulty (1 = easy, 5 = very hard): 4" in prompt


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty answer"),
        ("I cannot help with that", "not JSON"),
        ('{"items": []}', "no 'items' list"),
        ('{"items": [{"question": "", "answer": "x"}]}', "item 1 has no question"),
        ('{"items": [{"question": "Why?", "answer": ""}]}', "item 1 has no answer"),
    ],
)
def test_malformed_model_output_is_explained(content, message):
    with pytest.raises(ReplyError, match=message):
        parse_items(content)


def test_items_in_code_fences_and_letter_answers_are_understood():
    items = parse_items("Here you go:\n```json\n" + good_answer(1) + "\n```")
    assert items[0].answer == "beta"


def test_llm_synthesis_stores_items_with_reasoning_tokens_and_provenance(sample_store, run_id, tmp_path):
    with FakeOpenAI() as srv:
        srv.responder = prompt_responder
        report = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2), settings_for(srv, concurrency=4))
        assert len(srv.chat_requests) == 12
        body = srv.chat_requests[0].json
        assert body["model"] == "fake-r1" and body["response_format"]["type"] == "json_schema"
    assert report.items_ok == 24 and report.model == "fake-r1"
    items = list_items(sample_store, run_id)
    assert all(i.reasoning.startswith("thinking about") for i in items)
    assert all(i.answer == "beta" for i in items)
    out = tmp_path / "x.jsonl"
    export_run(sample_store, run_id, out, status="all")
    rec = json.loads(out.read_text().splitlines()[0])
    assert rec["provenance"]["model"] == "fake-r1" and rec["provenance"]["seed_ids"]
    assert rec["provenance"]["path_kps"] and rec["provenance"]["config_hash"]


def test_rerunning_a_finished_synthesis_makes_no_call(sample_store, run_id):
    with FakeOpenAI() as srv:
        srv.responder = prompt_responder
        synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2), settings_for(srv))
        n = len(srv.chat_requests)
        again = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2), settings_for(srv))
        assert len(srv.chat_requests) == n
    assert again.items_ok == 24


def test_malformed_answers_become_failed_items_with_raw_text_and_are_topped_up(sample_store, run_id):
    calls = {"n": 0}

    def responder(body):
        calls["n"] += 1
        if calls["n"] <= 3:
            return Answer('{"items": [{"question": "cut off', finish_reason="length")
        return prompt_responder(body)

    with FakeOpenAI() as srv:
        srv.responder = responder
        report = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2), settings_for(srv, concurrency=1))
    failed = list_items(sample_store, run_id, status="failed")
    assert len(failed) == 3
    assert all("malformed answer" in f.gate_reason and f.raw.startswith('{"items"') for f in failed)
    assert report.items_ok == 24  # the curator gets the number asked for
    assert report.paths_added >= 2


def test_server_errors_leave_the_paths_planned_not_failed(sample_store, run_id):
    with FakeOpenAI() as srv:
        srv.responder = lambda body: HTTPError(500)
        report = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=1, target_items=3, max_top_up_rounds=0),
                            settings_for(srv, max_retries=1, concurrency=2))
        assert len(srv.chat_requests) == 3 * 2  # each tried twice, then left for later
    assert report.items_ok == 0 and report.items_failed == 0 and report.retry_later == 3
    assert sample_store.items.done_path_ids(run_id) == set() and report.paths_added == 0
    assert sample_store.runs.get(run_id).status == "partial"
    assert all("HTTP 500" in e for e in report.errors)


def test_budget_stops_the_run_cleanly_and_a_rerun_continues(sample_store, run_id):
    with FakeOpenAI() as srv:
        srv.responder = prompt_responder
        first = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2),
                           settings_for(srv, concurrency=1, budget_tokens=400))
        assert first.stopped and 0 < first.items_ok < 24
        second = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2), settings_for(srv))
    assert second.items_ok == 24


def test_preview_shows_prompt_answer_and_folded_reasoning(sample_store, run_id):
    with FakeOpenAI() as srv:
        srv.responder = prompt_responder
        out = preview_bundle(sample_store, run_id, 0, SynthesisConfig(), settings_for(srv))
    assert out["items"] and out["reasoning"].startswith("thinking")
    assert "Seed 1" in out["prompt"]
    assert sample_store.scalar("SELECT count(*) FROM items") == 0  # a preview stores nothing
    offline = preview_bundle(sample_store, run_id, 0)
    assert offline["model"] == OFFLINE_MODEL and offline["items"]
    with pytest.raises(NotFoundError, match="has no path 999"):
        preview_bundle(sample_store, run_id, 999)


def test_cost_estimate_counts_requests_tokens_and_price(sample_store, run_id):
    settings = LLMSettings(base_urls=("http://127.0.0.1:9",), model="m", price_in_per_mtok=1.0,
                           price_out_per_mtok=4.0)
    est = estimate_synthesis_cost(sample_store, run_id, SynthesisConfig(per_bundle=2, target_items=30), settings)
    assert est["requests"] == 15 and est["paths_to_add"] == 3
    assert est["total_tokens"] == 15 * (est["prompt_tokens_each"] + est["output_tokens_each"]
                                        + est["reasoning_tokens_each"])
    expected = 15 * est["prompt_tokens_each"] / 1e6 * 1.0 + 15 * (est["output_tokens_each"]
                                                                 + est["reasoning_tokens_each"]) / 1e6 * 4.0
    assert est["usd"] == pytest.approx(expected, abs=1e-4)


def _cli(db, *args, env_extra=None, **kw):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "LINKQA_DB": str(db), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "linkqa_core", *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_killing_synthesis_and_starting_again_equals_an_uninterrupted_run(sample_store, run_id, tmp_path):
    sample_store.close()
    db_a, db_b = tmp_path / "a.db", tmp_path / "b.db"
    shutil.copy(sample_store.path, db_a)
    shutil.copy(sample_store.path, db_b)
    with FakeOpenAI(latency=0.15) as srv:
        srv.responder = prompt_responder
        env = {"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": KEY, "LINKQA_MODEL": "fake-r1"}
        args = ("synthesize", "--run", run_id, "--per-bundle", 2, "--concurrency", 2, "-q")
        # uninterrupted
        proc = _cli(db_a, *args, env_extra=env)
        assert proc.wait(120) == 0, proc.stderr.read()
        # interrupted: kill -9 once some items are stored, then start again
        proc = _cli(db_b, *args, env_extra=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            with sqlite3.connect(db_b) as c:
                n = c.execute("SELECT count(*) FROM items").fetchone()[0]
            if n >= 6:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with sqlite3.connect(db_b) as c:
            partial = c.execute("SELECT count(*) FROM items").fetchone()[0]
        assert 0 < partial < 24
        calls_before_resume = len(srv.chat_requests)
        proc = _cli(db_b, *args, env_extra=env)
        assert proc.wait(120) == 0, proc.stderr.read()
        resumed_calls = len(srv.chat_requests) - calls_before_resume
    assert resumed_calls <= 12 - partial // 2  # finished bundles are not asked again
    out_a, out_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for db, out in ((db_a, out_a), (db_b, out_b)):
        proc = _cli(db, "export", "--run", run_id, "--out", out, "--status", "all")
        assert proc.wait(60) == 0

    def normal(path):  # ids and token splits may differ; the QA and provenance may not
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        for r in recs:
            r.pop("id"), r["provenance"].pop("item_id")
        return sorted(recs, key=lambda r: (r["provenance"]["path_index"], r["question"]))

    assert normal(out_a) == normal(out_b)
    assert len(normal(out_b)) == 24
    for db in (db_a, db_b):
        assert KEY.encode() not in db.read_bytes()
        wal = Path(str(db) + "-wal")
        assert not wal.exists() or KEY.encode() not in wal.read_bytes()


def test_offline_rounds_reach_the_target_when_bundles_give_less_than_asked(sample_store):
    """Pairs get used up, so later bundles give fewer offline items than asked; the rounds
    size their asks and new paths by the last round's yield and still end at the target."""
    from linkqa_core.graph.sampling import sample
    from linkqa_core.graph.walks import WalkParams

    run_id = sample(sample_store, WalkParams(), 30, seed=11, save=True, name="big").run_id
    report = synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2, target_items=1000))
    assert report.items_ok == 1000 and report.stopped is None
    assert report.items_failed > 0  # bundles did give less than asked
    assert sample_store.runs.get(run_id).status == "synthesized"

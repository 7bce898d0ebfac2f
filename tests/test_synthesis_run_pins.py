"""Synthesis runs, pinned where mutation testing found the other tests blind: the settings'
bounds, when the offline composer stands in, the difficulty and the question form a run
asks for, the report's books (cached and estimated calls, missing token counts), the
lease and status while a run works, a stop pressed mid-round, the preview's call log, the
cost estimate to the cent, and the progress counts of failed rows."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest

from linkqa_core.errors import ConfigError
from linkqa_core.graph.sampling import sample
from linkqa_core.graph.walks import WalkParams
from linkqa_core.llm.settings import LLMSettings
from linkqa_core.llm.chat import ChatResult
from linkqa_core.records import Bundle, Item, Path
from linkqa_core.store.llm import CallRow
from linkqa_core.store.runs import run_lease
from linkqa_core.synthesis.compose import Ask, SynthesisTask
from linkqa_core.synthesis.offline import OFFLINE_MODEL
from linkqa_core.synthesis.prompt import render_prompt
from linkqa_core.synthesis.run import (SynthesisConfig, _store, _within_target, bundles_of, items_to_store,
                                       estimate_synthesis_cost, preview_bundle, run_progress, synthesize)
from linkqa_core.tasks import Outcome
from openai_server import Answer, FakeOpenAI, Wire

KEY = "sk-" + "fake-pins-0123456789"
DIFFICULTY_LINE = "Target difficulty (1 = easy, 5 = very hard): {}"


def two_items(body, **answer) -> Answer:
    text = body["messages"][-1]["content"]
    tag = str(abs(hash(text)) % 100_000)
    items = [{"question": f"Case {tag}-{k}: which option follows from both seeds?", "options": ["a", "b"],
              "answer": "A", "solution": "a", "kps_used": ["x"], "difficulty": 4} for k in range(2)]
    return Answer(json.dumps({"items": items}), **({"prompt_tokens": 100, "completion_tokens": 50} | answer))


def settings(srv, **kw) -> LLMSettings:
    return LLMSettings(base_urls=(srv.base_url,), api_key=KEY, model="fake-model", concurrency=1, **kw)


@pytest.fixture
def run6(sample_store) -> int:
    return sample(sample_store, WalkParams(), 6, seed=8, save=True).run_id


def prompts(srv) -> list[str]:
    return [r.json["messages"][-1]["content"] for r in srv.chat_requests]


# -- settings ----------------------------------------------------------------------------------


def test_config_takes_the_ends_of_its_ranges_and_refuses_just_past_them():
    assert SynthesisConfig(target_items=10_000_000).target_items == 10_000_000
    with pytest.raises(ConfigError, match="got 10000001"):
        SynthesisConfig(target_items=10_000_001)
    assert [SynthesisConfig(difficulty=d).difficulty for d in (1, 1.5)] == [1, 1.5]


def test_settings_that_name_no_endpoint_compose_offline(sample_store, run6):
    unconfigured = LLMSettings(model="fake-model", budget_usd=None)
    assert not unconfigured.configured
    report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=1, target_items=2), unconfigured)
    assert report.model == OFFLINE_MODEL and report.items_ok == 2
    record = sample_store.runs.get(run6).config["synthesis"]
    assert (record["model"], record["endpoints"]) == (OFFLINE_MODEL, 0)
    # an object that does not say whether it is configured is not taken for an endpoint
    out = preview_bundle(sample_store, run6, 0, SynthesisConfig(per_bundle=1), SimpleNamespace(model="x"))
    assert out["model"] == OFFLINE_MODEL and out["error"] is None


def test_the_run_record_keeps_the_money_budget(sample_store, run6):
    with FakeOpenAI(two_items) as srv:
        synthesize(sample_store, run6, SynthesisConfig(per_bundle=2, target_items=2),
                   settings(srv, budget_usd=1.5, price_in_per_mtok=1.0, price_out_per_mtok=2.0))
    assert sample_store.runs.get(run6).config["synthesis"]["budget_usd"] == 1.5


# -- what a run asks for ------------------------------------------------------------------------


def test_a_run_asks_for_its_walks_difficulty_target_or_3_when_it_has_none(sample_store):
    run4 = sample(sample_store, WalkParams(difficulty_target=4.0), 2, seed=8, save=True).run_id
    with FakeOpenAI(two_items) as srv:
        synthesize(sample_store, run4, SynthesisConfig(per_bundle=2, target_items=2), settings(srv))
        [sent] = prompts(srv)
    assert DIFFICULTY_LINE.format(4) in sent
    assert DIFFICULTY_LINE.format(4) in preview_bundle(sample_store, run4, 1)["prompt"]
    run = sample_store.runs.get(run4)
    sample_store.runs.update(run4, config={k: v for k, v in run.config.items() if k != "difficulty_target"})
    assert DIFFICULTY_LINE.format(3) in preview_bundle(sample_store, run4, 1)["prompt"]


def test_open_questions_are_asked_for_when_multiple_choice_is_off(sample_store, run6):
    cfg = SynthesisConfig(per_bundle=2, target_items=2, multiple_choice=False)
    with FakeOpenAI(two_items) as srv:
        synthesize(sample_store, run6, cfg, settings(srv))
        [sent] = prompts(srv)
        preview = preview_bundle(sample_store, run6, 0, cfg, settings(srv))
    path = sample_store.runs.paths(run6, index=0)[0]
    expected = render_prompt(cfg.template, bundles_of(sample_store, [path])[0], 2, 3.0, False)
    assert sent == expected and preview["prompt"] == expected
    assert "Give no options" in expected
    offline = preview_bundle(sample_store, run6, 0, cfg)
    assert offline["prompt"] == expected


# -- the report's books -------------------------------------------------------------------------


def test_answers_from_the_request_cache_are_counted_as_cached(sample_store, run6):
    cfg = SynthesisConfig(per_bundle=2, target_items=6)
    with FakeOpenAI(two_items) as srv:
        first = synthesize(sample_store, run6, cfg, settings(srv))
        with sample_store.transaction() as conn:  # the items lost, the paid answers still in the cache
            conn.execute("DELETE FROM items WHERE run_id = ?", (run6,))
        again = synthesize(sample_store, run6, cfg, settings(srv))
        assert len(srv.chat_requests) == 3
    assert (first.requests, first.cached) == (3, 0)
    assert (again.requests, again.cached, again.items_ok) == (3, 3, 6)


def test_calls_without_usage_are_counted_as_estimated(sample_store, run6):
    with FakeOpenAI(two_items, wire=Wire(usage=False)) as srv:
        report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=2, target_items=6), settings(srv))
    assert (report.requests, report.estimated_calls) == (3, 3)


def test_zero_token_counts_add_nothing(sample_store, run6):
    with FakeOpenAI(lambda body: two_items(body, prompt_tokens=0, completion_tokens=0)) as srv:
        report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=2, target_items=4), settings(srv))
    assert (report.requests, report.prompt_tokens, report.completion_tokens) == (2, 0, 0)


def test_items_name_the_model_that_answered(sample_store, run6):
    with FakeOpenAI(lambda body: two_items(body, model="fake-model-2026-01-01")) as srv:
        synthesize(sample_store, run6, SynthesisConfig(per_bundle=2, target_items=2), settings(srv))
        [request] = srv.chat_requests
    assert request.json["model"] == "fake-model"
    assert {i.model for i in sample_store.items.of_run(run6)} == {"fake-model-2026-01-01"}


def test_the_budget_counts_only_this_runs_synthesis_calls(sample_store, run6):
    other = CallRow(run_id=run6, stage="kps", key="k-other-stage", endpoint=None, model="m", status="ok",
                    cached=False, attempts=1, prompt_tokens=700, completion_tokens=300, reasoning_tokens=0,
                    latency_s=0.1, error=None)
    sample_store.llm.record([other], [])
    with FakeOpenAI(two_items) as srv:
        report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=2, target_items=2),
                            settings(srv, budget_tokens=1000))
    assert report.spent_before == 0 and report.items_ok == 2 and report.stopped is None


# -- while a run works ------------------------------------------------------------------------


def test_a_working_run_holds_its_lease_and_shows_as_synthesizing(sample_store, run6):
    seen = []

    def look(done, total, what):
        seen.append((sample_store.runs.get(run6).status, {r["name"] for r in sample_store.leases()}))

    report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=1, target_items=2), None, progress=look)
    assert report.run_id == run6
    assert seen and all(status == "synthesizing" and run_lease(run6) in names for status, names in seen)
    assert sample_store.runs.get(run6).status == "synthesized"


def test_a_stop_pressed_mid_round_composes_nothing_more(sample_store, run6):
    stop = threading.Event()
    answered = []

    def press_stop(done, total, what):
        answered.append(done)
        stop.set()

    report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=1, target_items=6), None,
                        progress=press_stop, stop_event=stop)
    assert answered == [1] and report.requests == 1
    assert report.stopped == "stopped by the curator" and sample_store.runs.get(run6).status == "stopped"


def test_a_stop_pressed_as_the_last_answer_arrives_is_reported(sample_store, run6):
    stop = threading.Event()
    report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=1, target_items=1), None,
                        progress=lambda *a: stop.set(), stop_event=stop)
    assert (report.items_ok, report.stopped) == (1, "stopped by the curator")
    assert sample_store.runs.get(run6).status == "synthesized"


def test_a_run_that_fails_midway_is_marked_stopped(sample_store, run6):
    def fail(done, total, what):
        raise RuntimeError("the page went away")

    with pytest.raises(RuntimeError):
        synthesize(sample_store, run6, SynthesisConfig(per_bundle=1, target_items=3), None, progress=fail)
    assert sample_store.runs.get(run6).status == "stopped"


# -- rows kept and stored -------------------------------------------------------------------------


def test_failed_rows_are_kept_even_with_no_room_left():
    good = Item(question="q", answer="a", slot="p1:0", status="generated")
    failed = Item(question="", answer="", slot="p1:failed", status="failed")
    assert _within_target([failed, good, good], 0) == [failed]
    assert _within_target([good, failed, good], 1) == [good, failed]


def test_the_failed_row_for_an_answer_the_database_refuses_is_blank_but_keeps_its_path(sample_store):
    run_id = sample_store.runs.create("sample", {})
    bad = Item(question="lone \ud800", answer="a", slot="p5:0", run_id=run_id, path_id=9, discipline="Physics",
               seed_ids=("s1",), model="m")
    _store(sample_store, [bad])
    [row] = sample_store.items.of_run(run_id)
    assert (row.question, row.answer, row.discipline, row.status) == ("", "", "Physics", "failed")


def test_progress_counts_failed_rows(sample_store, run6):
    with FakeOpenAI(lambda body: Answer("no items today")) as srv:
        synthesize(sample_store, run6, SynthesisConfig(per_bundle=1, target_items=1, max_top_up_rounds=0),
                   settings(srv))
    progress = run_progress(sample_store, run6)
    assert progress["failed"] == progress["by_status"]["failed"] == 1


# -- preview and estimate ------------------------------------------------------------------------


def test_a_preview_logs_its_call_under_the_run(sample_store, run6):
    with FakeOpenAI(two_items) as srv:
        out = preview_bundle(sample_store, run6, 1, SynthesisConfig(per_bundle=2), settings(srv))
    spend = sample_store.llm.spend(run6)
    assert out["error"] is None and spend.calls == 1 and spend.prompt_tokens == 100
    assert sample_store.items.total(run6) == 0


def test_an_offline_preview_shows_the_items_as_indented_json(sample_store, run6):
    out = preview_bundle(sample_store, run6, 1, SynthesisConfig(per_bundle=2))
    assert out["error"] is None and out["tokens"] == 0
    assert out["content"] == json.dumps({"items": out["items"]}, ensure_ascii=False, indent=1)


def test_the_cost_estimate_averages_the_first_20_prompts_at_4_characters_a_token(sample_store):
    run30 = sample(sample_store, WalkParams(difficulty_target=3.5), 30, seed=8, save=True).run_id
    cfg = SynthesisConfig(per_bundle=3, target_items=10_000_000)
    llm = LLMSettings(base_urls="http://127.0.0.1:9/v1", model="m", price_in_per_mtok=2.0, price_out_per_mtok=10.0)
    est = estimate_synthesis_cost(sample_store, run30, cfg, llm)
    task = SynthesisTask(cfg.template)
    bundles = bundles_of(sample_store, sample_store.runs.paths(run30))

    def tokens(asks) -> int:
        return int(sum(len(task.prompt(a)) for a in asks) / len(asks) / 4)

    assert est["prompt_tokens_each"] == tokens([Ask(b, 3, 3.5, True) for b in bundles[:20]])
    # the figure tells apart the 21st path, the run's difficulty (3.5, not the default 3) and the
    # number of items asked: each changes the prompts enough to move it by a token
    assert est["prompt_tokens_each"] not in (tokens([Ask(b, 3, 3.5, True) for b in bundles[:21]]),
                                             tokens([Ask(b, 3, 3.0, True) for b in bundles[:20]]),
                                             tokens([Ask(b, None, 3.5, True) for b in bundles[:20]]))
    requests = -(-10_000_000 // 3)
    assert (est["requests"], est["output_tokens_each"], est["reasoning_tokens_each"]) == (requests, 350 * 3, 1500)
    tokens_in, tokens_out = requests * est["prompt_tokens_each"], requests * (350 * 3 + 1500)
    assert est["usd"] == round(tokens_in / 1e6 * 2.0 + tokens_out / 1e6 * 10.0, 4)
    assert est["usd"] > 10_000  # large enough that a price per 1,000,001 tokens would show


def test_a_finished_run_started_again_with_stop_pressed_stops_nothing(sample_store, run6):
    cfg = SynthesisConfig(per_bundle=1, target_items=2)
    synthesize(sample_store, run6, cfg, None)
    stop = threading.Event()
    stop.set()
    again = synthesize(sample_store, run6, cfg, None, stop_event=stop)
    assert (again.items_ok, again.requests, again.stopped) == (2, 0, None)
    assert sample_store.runs.get(run6).status == "synthesized"


def test_the_offline_preview_shows_the_items_the_run_stores_for_that_path(sample_store, run6):
    preview = preview_bundle(sample_store, run6, 0, SynthesisConfig(per_bundle=2))
    synthesize(sample_store, run6, SynthesisConfig(per_bundle=2, target_items=2), None)
    stored = [i for i in sample_store.items.of_run(run6) if i.slot.startswith("p0:")]
    assert [(i.question, i.options, i.answer) for i in stored] == [
        (p["question"], tuple(p["options"]) if p["options"] else None, p["answer"]) for p in preview["items"]]


def test_an_offline_preview_of_a_one_seed_bundle_says_why_it_has_no_items(sample_store):
    run_id = sample_store.runs.create("sample", {})
    seed_id = sample_store.seeds.page(limit=1)[0][0]["id"]
    sample_store.runs.add_paths(run_id, [Path(0, ("optics",), "Physics", (seed_id,))])
    out = preview_bundle(sample_store, run_id, 0)
    assert out["items"] == [] and out["error"].startswith("the bundle has 1 seed:")


def test_a_refused_request_gives_a_failed_row_with_no_tokens():
    ask = Ask(Bundle(Path(4, ("optics",), "Physics", ("s1", "s2"), id=104, run_id=7), ()), 2, 3.0)
    refused = Outcome(0, error="HTTP 413: too large", result=ChatResult(error="x", attempts=1, status=413))
    [row] = items_to_store(7, ask, refused, "m")
    assert (row.status, row.prompt_tokens, row.completion_tokens) == ("failed", 0, 0)


def test_top_ups_end_when_the_last_round_of_50_paths_gave_under_5_items(sample_store):
    """Round 0 asks 60 paths and 10 answer (20 items: a yield of 1/3, so the run goes on);
    the top-up round asks 50 new paths and 1 answers (2 items): under a tenth of an item per
    path, so the run stops and says so, counting that round's items and paths only."""
    run60 = sample(sample_store, WalkParams(), 60, seed=8, save=True).run_id
    asked = {"n": 0}

    def answers(body):
        asked["n"] += 1
        return two_items(body) if asked["n"] <= 10 or asked["n"] == 61 else Answer("no items today")

    with FakeOpenAI(answers) as srv:
        report = synthesize(sample_store, run60, SynthesisConfig(per_bundle=2), settings(srv))
        assert len(srv.chat_requests) == 60 + 50
    assert (report.items_ok, report.items_failed) == (22, 60 + 50 - 11)
    assert report.errors[-1] == ("the last round's 50 paths gave 2 items: these seeds give no more new ones; "
                                 "stopped at 22 of 120")


def test_a_top_up_round_that_gave_a_tenth_of_an_item_per_path_goes_on(sample_store):
    """As above, but the top-up round's 50 paths give 5 items: exactly a tenth per path is
    not under it, so the run goes on and asks again in its last round."""
    run60 = sample(sample_store, WalkParams(), 60, seed=8, save=True).run_id
    asked = {"n": 0}

    def answers(body):
        asked["n"] += 1
        if asked["n"] <= 10:
            return two_items(body)
        if 61 <= asked["n"] <= 65:
            one = json.loads(two_items(body).content)
            return Answer(json.dumps({"items": one["items"][:1]}), prompt_tokens=100, completion_tokens=50)
        return Answer("no items today")

    with FakeOpenAI(answers) as srv:
        report = synthesize(sample_store, run60, SynthesisConfig(per_bundle=2, max_top_up_rounds=3), settings(srv))
        requests = len(srv.chat_requests)
    assert report.items_ok == 25 and requests > 60 + 50
    assert not any("give no more new ones" in e for e in report.errors)


def test_an_offline_preview_keeps_non_ascii_text_readable(sample_store, run6):
    path = sample_store.runs.paths(run6, index=1)[0]
    with sample_store.transaction() as conn:
        conn.executemany("UPDATE seeds SET question = question || ' (α-amylase, ≥ 37 °C)' WHERE id = ?",
                         [(sid,) for sid in path.seed_ids])
    out = preview_bundle(sample_store, run6, 1, SynthesisConfig(per_bundle=2))
    assert "α-amylase, ≥ 37 °C" in out["content"]  # as text, not \\u escapes
    assert out["content"] == json.dumps({"items": out["items"]}, ensure_ascii=False, indent=1)


@pytest.mark.parametrize("multiple_choice", [True, False])
def test_the_cost_estimate_renders_the_prompts_the_run_will_send(sample_store, multiple_choice):
    """A template that repeats the question form and the number of items, so that a prompt
    rendered with another form or count is many tokens longer or shorter."""
    from linkqa_core.synthesis.prompt import DEFAULT_TEMPLATE

    run = sample(sample_store, WalkParams(difficulty_target=3.5), 20, seed=8, save=True).run_id
    template = DEFAULT_TEMPLATE + " {format_rules}" * 20 + " {n_items}" * 20
    cfg = SynthesisConfig(per_bundle=3, template=template, multiple_choice=multiple_choice)
    est = estimate_synthesis_cost(sample_store, run, cfg, None)
    task = SynthesisTask(template)
    bundles = bundles_of(sample_store, sample_store.runs.paths(run))

    def tokens(n_items, difficulty, mc) -> int:
        return int(sum(len(task.prompt(Ask(b, n_items, difficulty, mc))) for b in bundles) / len(bundles) / 4)

    assert est["prompt_tokens_each"] == tokens(3, 3.5, multiple_choice)
    assert est["prompt_tokens_each"] not in (tokens(3, 3.5, not multiple_choice), tokens(3.5, 1, multiple_choice))

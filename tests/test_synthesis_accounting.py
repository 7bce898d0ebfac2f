"""The synthesis item accounting: what is asked for, and what each answer stores.

Pure functions on records (plus a real database for :func:`_store`), so every rule is
pinned directly: the trim to the number asked, one failed row per unusable answer,
nothing for an answer that may come later.
"""

from __future__ import annotations

import json

import pytest

from linkqa_core.llm.chat import ChatResult
from linkqa_core.records import Bundle, Item, Path, Seed
from linkqa_core.store import Store
from linkqa_core.synthesis.compose import Ask, SynthesisTask
from linkqa_core.synthesis.prompt import DEFAULT_TEMPLATE
from linkqa_core.synthesis.run import _store, items_to_store, plan_asks
from linkqa_core.tasks import Outcome
from openai_server import StageModel

SEEDS = (Seed(id="s1", question="What does a prism split?", answer="light", options=("light", "sound")),
         Seed(id="s2", question="What bends light?", answer="a lens", options=("a lens", "a mirror")))


def bundle(index: int, path_id: int = 100) -> Bundle:
    return Bundle(Path(index, ("optics", "refraction"), "Physics", ("s1", "s2"), id=path_id + index, run_id=7),
                  SEEDS)


def item(q: str) -> Item:
    return Item(question=q, answer="light", options=("light", "sound"), solution="s", kps_used=("optics",),
                difficulty=3.0)


RESULT = ChatResult(content='{"items": []}', reasoning="because", prompt_tokens=120, completion_tokens=80,
                    attempts=1, model="m", status=200)


def test_plan_asks_per_bundle_until_the_need_is_met():
    bundles = [bundle(i) for i in range(5)]
    plan, rest = plan_asks(bundles, 7, 2, 4.0, False)
    assert [a.n_items for a in plan] == [2, 2, 2, 1] and rest == 0
    assert [a.bundle.path.index for a in plan] == [0, 1, 2, 3]
    assert all(a.difficulty == 4.0 and a.multiple_choice is False for a in plan)
    plan, rest = plan_asks(bundles, 20, 3, 3.0)
    assert [a.n_items for a in plan] == [3] * 5 and rest == 5 and plan[0].multiple_choice
    assert plan_asks(bundles, 0, 2, 3.0) == ([], 0)
    assert plan_asks(bundles, -4, 2, 3.0) == ([], -4)
    assert plan_asks(bundles[:1], 1, 5, 3.0)[0][0].n_items == 1


def test_a_good_answer_stores_its_items_cut_to_the_number_asked():
    ask = Ask(bundle(3), 2, 3.0)
    o = Outcome(0, value=[item("q1"), item("q2"), item("q3")], raw="raw text", result=RESULT)
    rows = items_to_store(7, ask, o, "m")
    assert [r.slot for r in rows] == ["p3:0", "p3:1"] and [r.question for r in rows] == ["q1", "q2"]
    assert all(r.run_id == 7 and r.path_id == 103 and r.discipline == "Physics" and r.seed_ids == ("s1", "s2")
               for r in rows)
    assert all(r.model == "m" and r.reasoning == "because" and r.raw == '{"items": []}' for r in rows)
    assert [(r.prompt_tokens, r.completion_tokens) for r in rows] == [(120, 80), (0, 0)]  # counted once
    assert all(r.status == "generated" for r in rows)


def test_an_offline_answer_has_no_tokens_reasoning_or_raw_text():
    rows = items_to_store(7, Ask(bundle(0), 1, 3.0), Outcome(0, value=[item("q")]), "offline-composer")
    assert [(r.slot, r.reasoning, r.raw, r.prompt_tokens, r.model) for r in rows] == [
        ("p0:0", None, None, 0, "offline-composer")]


def test_an_unusable_answer_is_one_failed_row_with_its_reason_and_text():
    ask = Ask(bundle(4), 2, 3.0)
    o = Outcome(0, error="malformed answer: not JSON", raw="I cannot", result=RESULT)
    [row] = items_to_store(7, ask, o, "m")
    assert (row.slot, row.status, row.gate_reason, row.raw) == ("p4:failed", "failed", "malformed answer: not JSON",
                                                               "I cannot")
    assert (row.prompt_tokens, row.completion_tokens, row.reasoning) == (120, 80, "because")
    assert (row.path_id, row.run_id, row.model, row.seed_ids) == (104, 7, "m", ("s1", "s2"))
    [empty] = items_to_store(7, ask, Outcome(0, value=[], result=RESULT), "m")
    assert empty.status == "failed" and empty.gate_reason == "malformed answer: no items"
    [refused] = items_to_store(7, ask, Outcome(0, error="HTTP 413: too large", result=replace_result(status=413)), "m")
    assert refused.status == "failed" and refused.prompt_tokens == 0


def replace_result(**kw) -> ChatResult:
    return ChatResult(error="x", attempts=1, **kw)


def test_an_answer_that_may_come_later_stores_nothing():
    ask = Ask(bundle(1), 2, 3.0)
    gave_up = Outcome(0, error="gave up after 6 attempts", result=ChatResult(error="gave up", attempts=6,
                                                                           transient=True))
    never = Outcome(0, unstarted=True, error="budget reached", result=ChatResult(error="budget reached"))
    assert gave_up.transient and items_to_store(7, ask, gave_up, "m") == []
    assert never.transient and items_to_store(7, ask, never, "m") == []
    paid = Outcome(0, error="blank twice", result=ChatResult(error="blank twice", attempts=2))
    assert not paid.transient and len(items_to_store(7, ask, paid, "m")) == 1


def test_rows_the_database_cannot_take_become_one_failed_row(tmp_path):
    with Store(tmp_path / "a.db") as store:
        run_id = store.runs.create("sample", {})
        bad = [Item(question="lone \ud800", answer="a", slot="p5:0", run_id=run_id, path_id=9, discipline="Physics",
                    seed_ids=("s1",), model="m"),
               Item(question="fine", answer="a", slot="p5:1", run_id=run_id, path_id=9, model="m")]
        _store(store, bad)
        _store(store, [])
        rows = store.query("SELECT slot, status, gate_reason, path_id, model, seed_ids FROM items")
    assert [tuple(r) for r in rows] == [("p5:failed", "failed", "the answer cannot be stored (UnicodeEncodeError)", 9,
                                         "m", '["s1"]')]


def test_the_model_task_cuts_extra_items_and_keeps_the_prompt_deterministic():
    task = SynthesisTask(DEFAULT_TEMPLATE, model="m", run_id=7)
    ask = Ask(bundle(0), 2, 3.0)
    req = task.request(ask)
    assert req.stage == "synthesis" and req.run_id == 7 and req.response_format["type"] == "json_schema"
    answer = StageModel(misbehave={"more_items": 1})({"messages": [{"role": "user", "content": task.prompt(ask)}]})
    assert len(json.loads(answer.content)["items"]) == 3
    got = task.parse(ask, ChatResult(content=answer.content))
    assert len(got) == 2


@pytest.mark.parametrize("n", [1, 3])
def test_slots_are_unique_per_path_and_position(n):
    rows = items_to_store(1, Ask(bundle(2), n, 3.0), Outcome(0, value=[item(f"q{k}") for k in range(n)]), "m")
    assert [r.slot for r in rows] == [f"p2:{k}" for k in range(n)]


# -- a run's books, end to end ---------------------------------------------------------------------------

from linkqa_core.errors import ConfigError, NotFoundError  # noqa: E402
from linkqa_core.graph.sampling import sample  # noqa: E402
from linkqa_core.graph.walks import WalkParams  # noqa: E402
from linkqa_core.llm.settings import LLMSettings  # noqa: E402
from linkqa_core.synthesis.run import (SynthesisConfig, estimate_synthesis_cost, preview_bundle,  # noqa: E402
                                       run_progress, synthesize)
from openai_server import Answer, FakeOpenAI  # noqa: E402


def two_items(body) -> Answer:
    text = body["messages"][-1]["content"]
    tag = str(abs(hash(text)) % 100_000)
    items = [{"question": f"Case {tag}-{k}: which option follows from both seeds?", "options": ["a", "b"],
              "answer": "A", "solution": "a", "kps_used": ["x"], "difficulty": 9} for k in range(2)]
    return Answer(json.dumps({"items": items}), reasoning_content="why " + tag, prompt_tokens=100,
                  completion_tokens=50)


@pytest.fixture
def run6(sample_store):
    return sample(sample_store, WalkParams(), 6, seed=8, save=True).run_id


def test_a_model_run_reports_what_it_asked_spent_and_stored(sample_store, run6):
    progress = []
    with FakeOpenAI(two_items) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-x", model="fake-model", concurrency=1,
                               budget_tokens=10**6)
        report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=2, target_items=11), settings,
                            progress=lambda done, total, what: progress.append((done, total, what)))
        again = synthesize(sample_store, run6, SynthesisConfig(per_bundle=2, target_items=11), settings)
    assert (report.items_ok, report.items_failed, report.requests, report.cached) == (11, 0, 6, 0)
    assert (report.prompt_tokens, report.completion_tokens, report.model, report.stopped) == (600, 300, "fake-model",
                                                                                           None)
    assert report.target_items == 11 and report.paths_added == 0 and report.errors == [] and report.retry_later == 0
    assert (again.items_ok, again.requests, again.spent_before) == (11, 0, 900)
    assert progress[-1] == (11, 11, "6 requests, 900 tokens, 0 errors")
    assert [p[0] for p in progress] == [2, 4, 6, 8, 10, 11]
    stored = sample_store.runs.get(run6)
    assert stored.status == "synthesized"
    assert stored.config["synthesis"] | {} == {**SynthesisConfig(per_bundle=2, target_items=11).to_dict(),
                                              "target_items": 11, "model": "fake-model", "endpoints": 1,
                                              "budget_tokens": 10**6, "budget_usd": None}
    items = list_items_of(sample_store, run6)
    assert len(items) == 11 and all(i.difficulty == 5.0 and i.answer == "a" for i in items)
    assert sum(i.prompt_tokens for i in items) == 600 and items[0].reasoning.startswith("why ")
    progress_now = run_progress(sample_store, run6)
    assert progress_now == {"status": "synthesized", "target_items": 11, "items": 11, "by_status": {"generated": 11},
                            "failed": 0, "prompt_tokens": 600, "completion_tokens": 300, "calls": 6,
                            "call_errors": 0, "cached_calls": 0}


def list_items_of(store, run_id):
    return store.items.of_run(run_id)


def test_an_offline_run_reports_bundles_composed(sample_store, run6):
    seen = []
    report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=1, target_items=3), None,
                        progress=lambda d, t, w: seen.append(w))
    assert report.model == "offline-composer" and report.items_ok == 3 and report.requests == 3
    assert seen[-1] == "3 bundles composed offline" and report.spent_before == 0
    config = sample_store.runs.get(run6).config["synthesis"]
    assert (config["model"], config["endpoints"], config["budget_tokens"]) == ("offline-composer", 0, None)


def test_a_stop_or_a_budget_says_why_and_leaves_the_rest_planned(sample_store, run6):
    import threading

    stop = threading.Event()
    stop.set()
    report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=1), None, stop_event=stop)
    assert report.stopped == "stopped by the curator" and report.items_ok == 0
    assert sample_store.runs.get(run6).status == "stopped"
    with FakeOpenAI(two_items) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-x", model="fake-model", concurrency=1,
                               budget_tokens=200)
        report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=2), settings)
    assert report.stopped == "token or money budget reached" and report.items_ok == 4  # 150 spent < 200, then 300
    assert sample_store.runs.get(run6).status == "stopped"


def test_a_run_without_paths_or_with_bad_settings_is_refused(sample_store):
    run_id = sample_store.runs.create("sample", {})
    with pytest.raises(NotFoundError, match=rf"run {run_id} has no paths: save a sample first \(sample --save\)"):
        synthesize(sample_store, run_id)
    with pytest.raises(NotFoundError, match=rf"run {run_id} has no paths$"):
        estimate_synthesis_cost(sample_store, run_id, SynthesisConfig(), None)
    for kwargs, message in (({"per_bundle": 0}, "items per bundle must be 1-20, got 0"),
                            ({"per_bundle": 21}, "items per bundle must be 1-20, got 21"),
                            ({"target_items": 0}, "target number of items must be >= 1, got 0"),
                            ({"difficulty": 0.5}, "difficulty must be 1-5, got 0.5"),
                            ({"difficulty": 5.5}, "difficulty must be 1-5, got 5.5")):
        with pytest.raises(ConfigError, match=message):
            SynthesisConfig(**kwargs)
    assert SynthesisConfig(per_bundle=20, target_items=1, difficulty=5).per_bundle == 20


def test_the_cost_estimate_in_numbers(sample_store, run6):
    settings = LLMSettings(base_urls="http://127.0.0.1:9/v1", model="m", price_in_per_mtok=2.0,
                           price_out_per_mtok=10.0)
    est = estimate_synthesis_cost(sample_store, run6, SynthesisConfig(per_bundle=3, target_items=20), settings,
                                  output_tokens_per_item=100, reasoning_tokens_per_request=50)
    assert (est["requests"], est["target_items"], est["output_tokens_each"], est["reasoning_tokens_each"],
            est["paths_to_add"]) == (7, 20, 300, 50, 1)
    p = est["prompt_tokens_each"]
    assert 200 < p < 2000 and est["total_tokens"] == 7 * (p + 300 + 50)
    assert est["usd"] == round(7 * p / 1e6 * 2.0 + 7 * 350 / 1e6 * 10.0, 4)
    free = estimate_synthesis_cost(sample_store, run6, SynthesisConfig(per_bundle=2), None)
    assert free["usd"] == 0 and free["requests"] == 6 and free["paths_to_add"] == 0
    assert estimate_synthesis_cost(sample_store, run6, SynthesisConfig(per_bundle=2, difficulty=5.0), None)[
        "prompt_tokens_each"] == free["prompt_tokens_each"]


def test_a_preview_shows_the_prompt_and_what_came_back_and_stores_nothing(sample_store, run6):
    with FakeOpenAI(two_items) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-x", model="fake-model")
        out = preview_bundle(sample_store, run6, 2, SynthesisConfig(per_bundle=2, difficulty=4.0), settings)
        [sent] = srv.chat_requests
    assert sent.json["messages"][-1]["content"] == out["prompt"] and "difficulty (1 = easy, 5 = very hard): 4" in \
        out["prompt"]
    path = sample_store.runs.paths(run6, index=2)[0]
    assert out["kps"] == list(path.kps) and out["seeds"] == list(path.seed_ids)
    assert (out["model"], out["error"], out["tokens"]) == ("fake-model", None, 150)
    assert out["reasoning"].startswith("why ") and len(out["items"]) == 2 and out["items"][0]["answer"] == "a"
    assert json.loads(out["content"])["items"][0]["answer"] == "A"
    with FakeOpenAI(lambda body: Answer("no JSON here")) as srv:
        bad = preview_bundle(sample_store, run6, 2, SynthesisConfig(), LLMSettings(base_urls=(srv.base_url,),
                                                                                  api_key="sk-x", model="m"))
    assert bad["error"].startswith("malformed answer: not JSON") and "items" not in bad and bad["content"] == \
        "no JSON here"
    offline = preview_bundle(sample_store, run6, 2, SynthesisConfig(per_bundle=1, multiple_choice=False))
    assert offline["model"] == "offline-composer" and offline["tokens"] == 0 and offline["reasoning"] is None
    assert len(offline["items"]) == 1 and json.loads(offline["content"]) == {"items": offline["items"]}
    assert sample_store.items.total(run6) == 0


def test_a_failed_row_holds_no_question_and_no_tokens_when_there_was_no_call():
    [row] = items_to_store(7, Ask(bundle(0), 2, 3.0), Outcome(0, error="offline composer failed"), "offline")
    assert (row.question, row.answer, row.reasoning, row.prompt_tokens, row.completion_tokens, row.raw) == (
        "", "", None, 0, 0, None)
    zero = ChatResult(content="x", attempts=1, prompt_tokens=0, completion_tokens=0)
    rows = items_to_store(7, Ask(bundle(0), 1, 3.0), Outcome(0, value=[item("q")], result=zero), "m")
    assert (rows[0].prompt_tokens, rows[0].completion_tokens) == (0, 0)


def test_a_target_the_paths_cannot_reach_samples_exactly_the_paths_missing(sample_store, run6):
    with FakeOpenAI(two_items) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-x", model="fake-model")
        report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=2, target_items=13), settings)
        assert len(srv.chat_requests) == 7
    assert (report.items_ok, report.paths_added) == (13, 1) and sample_store.runs.path_count(run6) == 7


def test_paths_sampled_over_several_rounds_are_all_counted(sample_store, run6):
    asked = {"n": 0}

    def flaky(body):
        asked["n"] += 1
        if asked["n"] in (1, 2, 3, 7, 8):
            return Answer("no items today")
        return two_items(body)

    with FakeOpenAI(flaky) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-x", model="fake-model", concurrency=1)
        report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=2), settings)
    # round 0 asks the 6 paths (3 fail: yield 1 item per path); round 1 samples 7 paths
    # (6 missing items x 1.1 at that yield); round 2 asks 3 of them (2 fail: yield 2/3);
    # round 3 samples 3 more (4 missing - 4 left x 2/3, x 1.1, at 2/3) and asks 2 paths
    assert (report.items_ok, report.items_failed, report.paths_added) == (12, 5, 7 + 3)
    assert report.requests == 6 + 3 + 2  # a paid round asks for exactly what is missing


def test_the_last_round_still_asks_what_it_planned(sample_store, run6):
    with FakeOpenAI(two_items) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-x", model="fake-model")
        report = synthesize(sample_store, run6, SynthesisConfig(per_bundle=2, target_items=14, max_top_up_rounds=0),
                            settings)
        assert len(srv.chat_requests) == 6
    assert (report.items_ok, report.paths_added) == (12, 0) and sample_store.runs.get(run6).status == "partial"


def test_a_round_that_gives_almost_nothing_ends_the_top_ups(sample_store):
    """A model whose every answer is unusable: after a round of 60 paths that gave no item,
    the run stops and says why, instead of paying for five more rounds of new paths."""
    run60 = sample(sample_store, WalkParams(), 60, seed=8, save=True).run_id
    with FakeOpenAI(lambda body: Answer("no items today")) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-x", model="fake-model")
        report = synthesize(sample_store, run60, SynthesisConfig(per_bundle=2), settings)
        assert len(srv.chat_requests) == 60  # the first round only
    assert report.items_ok == 0 and report.items_failed == 60
    assert report.errors[-1] == ("the last round's 60 paths gave 0 items: these seeds give no more new ones; "
                                 "stopped at 0 of 120")

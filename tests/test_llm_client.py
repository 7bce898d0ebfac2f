"""The LLM client against a real local HTTP server speaking the OpenAI API.

No mocks: ``tests/openai_server.py`` listens on 127.0.0.1 and the real ``openai`` SDK
talks to it. Tests that exercise the wire run on both transports (``fast_http``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from linkqa_core.errors import ConfigError, LLMError
from linkqa_core.llm.client import (
    BUDGET_REACHED,
    ENDPOINT_DOWN,
    STOPPED,
    ChatRequest,
    LLMClient,
    LLMSettings,
    Usage,
    cache_key,
    estimate_cost,
    settings_from_mapping,
    split_reasoning,
    test_connection,
)
from linkqa_core.store import Store
from linkqa_core.llm.failures import EndpointDown
from openai_server import Answer, BrokenBody, Drop, FakeOpenAI, HTTPError, Split, Wire

KEY = "sk-test-SECRET-1234567890abcdef"
MODEL = "fake-model"

# keys the fake server insists on (test fixtures, not credentials)
RIGHT_KEY = "sk-the-right-one-000000"
STRICT_KEY = "sk-only-this-one-9999999"


@pytest.fixture
def srv():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "llm.db")
    yield s
    s.close()


def settings_for(*servers: FakeOpenAI, **kw) -> LLMSettings:
    values = dict(
        base_urls=tuple(s.base_url for s in servers), api_key=KEY, model=MODEL,
        backoff_base_s=0.01, backoff_max_s=0.05, timeout_s=5.0, max_retries=5,
    )
    values.update(kw)
    return LLMSettings(**values)


def calls(store: Store) -> list[dict]:
    return [dict(r) for r in store.query("SELECT * FROM llm_calls ORDER BY id")]


# -- answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("fast_http", [True, False])
def test_plain_answer_and_token_accounting(srv, store, fast_http):
    srv.script(Answer("Paris", prompt_tokens=12, completion_tokens=3))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    with LLMClient(settings_for(srv, fast_http=fast_http, temperature=0.3), store) as client:
        r = client.complete(ChatRequest.user("Capital of France?", system="Be brief.", stage="t", run_id=7,
                                             response_format=schema))
        usage = client.usage
    assert (r.content, r.reasoning, r.error) == ("Paris", None, None)
    assert (r.prompt_tokens, r.completion_tokens, r.total_tokens) == (12, 3, 15)
    assert r.attempts == 1 and not r.cached and r.endpoint == srv.base_url and r.model == MODEL
    assert (usage.requests, usage.total_tokens) == (1, 15)
    [sent] = srv.chat_requests
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["model"] == MODEL and sent.json["temperature"] == 0.3
    assert sent.json["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent.json["response_format"]["type"] == "json_schema"
    assert sent.json["response_format"]["json_schema"]["schema"] == schema
    [row] = calls(store)
    assert row["status"] == "ok" and row["run_id"] == 7 and row["stage"] == "t"
    assert (row["prompt_tokens"], row["completion_tokens"], row["attempts"], row["cached"]) == (12, 3, 1, 0)
    assert row["endpoint"] == srv.base_url and row["key"] == r.key


def test_reasoning_content_is_kept_apart(srv):
    srv.script(Answer("42", reasoning_content="6 times 7", reasoning_tokens=9, completion_tokens=20))
    with LLMClient(settings_for(srv)) as client:
        r = client.complete(ChatRequest.user("6*7?"))
    assert r.content == "42" and r.reasoning == "6 times 7"
    assert (r.reasoning_tokens, r.completion_tokens) == (9, 20)


@pytest.mark.parametrize(
    "content, finish, answer, thinking",
    [
        ("<think>First, recall.\nThen add.</think>\n\nThe answer is 4.", "stop", "The answer is 4.",
         "First, recall.\nThen add."),
        ("<think>I was still thinking when the tokens ran o", "length", "", "I was still thinking when the tokens ran o"),
        ("the template opened it</think>Four.", "stop", "Four.", "the template opened it"),
    ],
)
def test_think_tags_are_split_out(srv, content, finish, answer, thinking):
    srv.script(Answer(content, finish_reason=finish))
    with LLMClient(settings_for(srv)) as client:
        r = client.complete(ChatRequest.user("2+2?"))
    assert (r.content, r.reasoning) == (answer, thinking)
    assert r.truncated == (finish == "length")


def test_split_reasoning_joins_field_and_tags():
    assert split_reasoning("plain answer") == ("plain answer", None)
    assert split_reasoning("<THINK>a</THINK>b", "field") == ("b", "field\n\na")
    assert split_reasoning(None, "only thinking") == ("", "only thinking")


# -- retries ----------------------------------------------------------------------------------


def test_429_waits_for_retry_after_then_succeeds(srv, store):
    srv.script(HTTPError(429, retry_after=0.4), Answer("late but fine"))
    with LLMClient(settings_for(srv), store) as client:
        r = client.complete(ChatRequest.user("q"))
    first, second = srv.chat_requests
    assert first.outcome == "429" and second.outcome == "200"
    assert second.received_at - first.answered_at >= 0.39  # the event loop may wake a millisecond early
    assert r.content == "late but fine" and r.attempts == 2
    assert calls(store)[0]["attempts"] == 2


@pytest.mark.parametrize("fast_http", [True, False])
def test_two_500s_then_success(srv, store, fast_http):
    srv.script(HTTPError(500), HTTPError(500), Answer("third time"))
    with LLMClient(settings_for(srv, fast_http=fast_http), store) as client:
        r = client.complete(ChatRequest.user("q"))
    assert r.ok and r.content == "third time" and r.attempts == 3
    assert [q.outcome for q in srv.chat_requests] == ["500", "500", "200"]
    assert calls(store)[0]["attempts"] == 3


def test_gives_up_after_max_retries(srv, store):
    srv.responder = lambda body: HTTPError(503)
    with LLMClient(settings_for(srv, max_retries=2), store) as client:
        r = client.complete(ChatRequest.user("q"))
    assert not r.ok and r.attempts == 3 and r.status == 503
    assert "gave up after 3 attempts" in r.error and "HTTP 503" in r.error
    assert len(srv.chat_requests) == 3
    [row] = calls(store)
    assert row["status"] == "error" and row["attempts"] == 3 and "HTTP 503" in row["error"]
    assert store.scalar("SELECT count(*) FROM llm_cache") == 0


@pytest.mark.parametrize("fast_http", [True, False])
def test_dropped_connection_is_retried(srv, fast_http):
    srv.script(Drop(), Answer("after the drop"))
    with LLMClient(settings_for(srv, fast_http=fast_http)) as client:
        r = client.complete(ChatRequest.user("q"))
    assert r.content == "after the drop" and r.attempts == 2
    assert [q.outcome for q in srv.chat_requests] == ["drop", "200"]


def test_broken_body_is_retried_and_truncated_content_returned_uncached(srv, store):
    cut = '{"question": "What is the capital of'
    srv.script(BrokenBody(), Answer(cut, finish_reason="length"), Answer(cut + ' France?"}'))
    with LLMClient(settings_for(srv), store) as client:
        r = client.complete(ChatRequest.user("q"))
        assert r.ok and r.attempts == 2 and r.content == cut and r.truncated
        again = client.complete(ChatRequest.user("q"))  # a cut answer is not cached
    assert not again.cached and again.content.endswith('France?"}')
    assert len(srv.chat_requests) == 3


@pytest.mark.parametrize("fast_http", [True, False])
def test_timeout_is_retried_then_given_up(srv, fast_http):
    srv.script(Answer("too slow", delay=1.0), Answer("quick"))
    with LLMClient(settings_for(srv, fast_http=fast_http, timeout_s=0.25, max_retries=2)) as client:
        t0 = time.monotonic()
        r = client.complete(ChatRequest.user("q"))
        assert r.content == "quick" and r.attempts == 2
        assert 0.25 <= time.monotonic() - t0 < 0.9
        srv.responder = lambda body: Answer("never in time", delay=1.0)
        gone = client.complete(ChatRequest.user("other"))
    assert gone.attempts == 3 and "gave up after 3 attempts" in gone.error and "timed out after 0.25 s" in gone.error
    assert len(srv.chat_requests) == 2 + 3


def test_401_raises_llmerror_without_the_key(store):
    with FakeOpenAI(api_key=RIGHT_KEY) as srv:  # quotes the wrong key back
        with LLMClient(settings_for(srv, concurrency=1), store) as client:
            with pytest.raises(LLMError) as info:
                client.complete(ChatRequest.user("q"))
            with pytest.raises(LLMError, match="401"):
                client.complete_many([ChatRequest.user(f"q{i}") for i in range(5)])
        body = srv.chat_requests[0]
    assert KEY in repr(body.headers)  # the server did see it ...
    message = str(info.value)
    assert "401" in message and "API key" in message
    assert KEY not in message and "SECRET" not in message  # ... the error does not show it
    assert len(srv.chat_requests) == 1 + 1  # no retries, and the batch stopped at the first 401
    assert all(KEY not in (row["error"] or "") for row in calls(store))


def test_400_in_a_batch_is_that_items_error(srv):
    srv.responder = lambda body: HTTPError(400, message="context too long") if "bad" in str(body) else None
    with LLMClient(settings_for(srv)) as client:
        results = client.complete_many([ChatRequest.user(t) for t in ("ok 1", "bad", "ok 2")])
        with pytest.raises(LLMError, match="400"):
            client.complete(ChatRequest.user("bad again"))
    assert [r.ok for r in results] == [True, False, True]
    assert "context too long" in results[1].error and results[1].attempts == 1


# -- cache ------------------------------------------------------------------------------------


def test_repeat_is_a_cache_hit(srv, store):
    req = ChatRequest.user("Name a prime.", temperature=0.0)
    with LLMClient(settings_for(srv), store) as client:
        first = client.complete(req)
        second = client.complete(req)
        other = client.complete(replace(req, temperature=0.5))
        variant = client.complete(replace(req, variant=1))
    assert len(srv.chat_requests) == 3  # req, other temperature, variant
    assert not first.cached and second.cached and not other.cached and not variant.cached
    assert second.content == first.content and second.total_tokens == 0 and second.attempts == 0
    assert [row["status"] for row in calls(store)] == ["ok", "cached", "ok", "ok"]
    # the key depends on what shapes the answer, not on credentials or endpoint
    s = settings_for(srv)
    assert cache_key(req, s) == cache_key(req, replace(s, api_key="sk-other", base_urls=("http://x:1/v1",)))
    assert cache_key(req, s) != cache_key(req, replace(s, model="another-model"))
    # a fresh client on the same database hits too
    with LLMClient(settings_for(srv), store) as client:
        assert client.complete(req).cached


def test_identical_requests_in_one_batch_are_sent_once(srv, store):
    with LLMClient(settings_for(srv), store) as client:
        results = client.complete_many([ChatRequest.user("same")] * 5 + [ChatRequest.user("same", cache=False)])
    assert len(srv.chat_requests) == 2
    assert sum(r.cached for r in results) == 4 and len({r.content for r in results}) == 1


# -- concurrency, endpoints, budget, rate -------------------------------------------------


def test_concurrency_is_reached_and_results_arrive_in_the_calling_thread():
    with FakeOpenAI(latency=0.2) as srv:
        seen: list[tuple[int, int]] = []
        with LLMClient(settings_for(srv, concurrency=8)) as client:
            t0 = time.monotonic()
            results = client.complete_many(
                [ChatRequest.user(f"q{i}") for i in range(40)],
                on_result=lambda i, r: seen.append((i, threading.get_ident())),
            )
            elapsed = time.monotonic() - t0
    assert srv.max_in_flight == 8
    assert elapsed < 1.6  # ideal: 40 / 8 * 0.2 s = 1.0 s
    assert sorted(i for i, _ in seen) == list(range(40))
    assert {tid for _, tid in seen} == {threading.get_ident()}
    assert [r.content for r in results] == [f"echo: q{i}" for i in range(40)]


def test_requests_spread_over_two_endpoints():
    with FakeOpenAI(latency=0.02) as a, FakeOpenAI(latency=0.02) as b:
        with LLMClient(settings_for(a, b, concurrency=4)) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(24)])
        assert all(r.ok for r in results)
        assert len(a.chat_requests) >= 6 and len(b.chat_requests) >= 6
        assert len(a.chat_requests) + len(b.chat_requests) == 24
        assert {r.endpoint for r in results} == {a.base_url, b.base_url}


def test_budget_stops_new_requests_and_marks_the_rest(store):
    ten_tokens = lambda body: Answer("x", prompt_tokens=5, completion_tokens=5)  # noqa: E731
    with FakeOpenAI(ten_tokens, latency=0.02) as srv:
        delivered = []
        with LLMClient(settings_for(srv, concurrency=1, budget_tokens=35), store) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(10)],
                                           on_result=lambda i, r: delivered.append(i))
            assert client.budget_reached and client.usage.total_tokens == 40
            assert client.complete(ChatRequest.user("q0")).cached  # a hit costs nothing: still served
            late = client.complete(ChatRequest.user("new"))
        assert len(srv.chat_requests) == 4  # 0, 10, 20, 30 < 35 spent before each start
    assert [r.ok for r in results] == [True] * 4 + [False] * 6
    assert all(r.error == BUDGET_REACHED and r.attempts == 0 for r in results[4:])
    assert delivered == [0, 1, 2, 3] and late.error == BUDGET_REACHED
    assert store.scalar("SELECT count(*) FROM llm_calls WHERE status = 'ok'") == 4


def test_budget_overshoot_stays_small_with_concurrency():
    with FakeOpenAI(lambda body: Answer("x", prompt_tokens=5, completion_tokens=5), latency=0.05) as srv:
        with LLMClient(settings_for(srv, concurrency=8, budget_tokens=35)) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(30)])
            spent = client.usage.total_tokens
        started = len(srv.chat_requests)
    assert 4 <= started <= 5 and spent <= 50
    assert sum(r.error == BUDGET_REACHED for r in results) == 30 - started


def test_spent_usage_carries_over(srv):
    with LLMClient(settings_for(srv, budget_tokens=100), spent=Usage(prompt_tokens=60, completion_tokens=40)) as c:
        assert c.budget_reached and c.complete(ChatRequest.user("q")).error == BUDGET_REACHED
    assert srv.chat_requests == []


def test_rpm_limit_slows_requests(srv):
    with LLMClient(settings_for(srv, concurrency=8, rpm=1200)) as client:  # 20 a second, burst 20
        t0 = time.time()
        results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(40)])
        elapsed = time.time() - t0
    assert all(r.ok for r in results)
    assert elapsed >= 0.9  # 20 at once, then 20 more at 20/s
    times = sorted(q.received_at for q in srv.chat_requests)
    busiest = max(sum(1 for t in times if start <= t < start + 0.5) for start in times)
    assert busiest <= 20 + 10 + 1


def test_stop_event_lets_in_flight_finish_and_marks_the_rest():
    with FakeOpenAI(latency=0.05) as srv:
        stop = threading.Event()

        def on_result(i, r):
            if i >= 2:
                stop.set()

        with LLMClient(settings_for(srv, concurrency=2)) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(20)], on_result, stop)
        started = len(srv.chat_requests)
    assert 3 <= started <= 6
    assert sum(r.ok for r in results) == started
    assert all(r.error == STOPPED for r in results if not r.ok)


def test_on_result_error_propagates_after_in_flight_finish(srv):
    def boom(i, r):
        raise RuntimeError("store is full")

    with LLMClient(settings_for(srv, concurrency=2)) as client:
        with pytest.raises(RuntimeError, match="store is full"):
            client.complete_many([ChatRequest.user(f"q{i}") for i in range(50)], on_result=boom)
    assert len(srv.chat_requests) < 50


# -- key hygiene -------------------------------------------------------------------------------


def test_key_is_never_persisted_or_logged(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "hygiene.db"
    store = Store(db)
    with FakeOpenAI() as good, FakeOpenAI(api_key=STRICT_KEY) as strict:
        good.script(HTTPError(500), Drop(), Answer("ok"), HTTPError(503), HTTPError(503), HTTPError(503))
        s = settings_for(good, max_retries=2)
        with LLMClient(s, store) as client:
            assert client.complete(ChatRequest.user("a")).ok
            assert not client.complete(ChatRequest.user("b")).ok
            assert client.complete(ChatRequest.user("a")).cached
            text = f"{client!r} {s!r} {s.public_dict()} {client.usage!r}"
        with LLMClient(settings_for(strict), store) as client:
            with pytest.raises(LLMError) as info:
                client.complete(ChatRequest.user("c"))
        ok, message = test_connection(settings_for(strict))
    assert not ok and "401" in message
    assert [r["status"] for r in calls(store)] == ["ok", "error", "cached", "error"]
    open_files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("hygiene.db"))
    store.close()
    closed_file = db.read_bytes()
    for blob in (open_files, closed_file):  # the -wal file while open, the main file after
        assert b"fake-model" in blob and KEY.encode() not in blob and b"SECRET" not in blob
    for where in (caplog.text, text, str(info.value), message):
        assert KEY not in where and "SECRET" not in where
    assert "retrying" in caplog.text  # the logs did record the failures


# -- settings, connection test, estimates ----------------------------------------------------


def test_settings_from_env_and_mapping(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://a:1/v1/, http://b:2/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("LINKQA_MODEL", "m1")
    s = LLMSettings.from_env(concurrency=32, model=None)
    assert s.base_urls == ("http://a:1/v1", "http://b:2/v1") and s.model == "m1" and s.concurrency == 32
    assert s.configured and KEY not in repr(s) and KEY not in str(s.public_dict())
    secrets = {"llm": {"OPENAI_BASE_URL": "http://c:3/v1", "LINKQA_MODEL": "m2", "concurrency": "8"}, "other": 1}
    t = settings_from_mapping(secrets)  # the environment wins over the secrets file
    assert (t.base_urls, t.model, t.concurrency, t.api_key) == (("http://a:1/v1", "http://b:2/v1"), "m1", 8, KEY)
    assert settings_from_mapping(secrets, env=False).base_urls == ("http://c:3/v1",)
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert not LLMSettings.from_env().configured
    assert LLMSettings.from_env(api_key="k").base_urls == ("https://api.openai.com/v1",)
    with pytest.raises(ConfigError):
        settings_from_mapping({"concurrency": "many"})
    with pytest.raises(ConfigError):
        LLMSettings(base_urls="http://x/v1", model="m", budget_usd=1.0)
    with pytest.raises(ConfigError):
        LLMSettings(base_urls="ftp://x/v1", model="m")


def test_connection_check(srv):
    ok, message = test_connection(settings_for(srv))
    assert ok and MODEL in message and srv.requests[0].path.endswith("/models")
    with FakeOpenAI() as gone:
        url = gone.base_url
    ok, message = test_connection(replace(settings_for(srv), base_urls=(url,)), timeout_s=2)
    assert not ok and "cannot connect" in message


def test_estimate_cost():
    s = LLMSettings(price_in_per_mtok=2.0, price_out_per_mtok=8.0)
    est = estimate_cost(1000, 500, 200, 300, s)
    assert est.tokens == 1000 * (500 + 200 + 300)
    assert est.usd == pytest.approx((500_000 * 2.0 + 500_000 * 8.0) / 1e6)
    assert estimate_cost(10, 1, 1).usd == 0.0


# -- what real servers send --------------------------------------------------------------------------


def test_a_server_without_usage_is_charged_an_estimate_and_the_budget_holds(store):
    no_usage = Wire(usage=False)
    with FakeOpenAI(lambda body: Answer("x" * 40, wire=no_usage), latency=0.01) as srv:
        with LLMClient(settings_for(srv, concurrency=1, budget_tokens=35), store) as client:
            results = client.complete_many([ChatRequest.user(f"question {i}") for i in range(10)])
            usage = client.usage
        sent = len(srv.chat_requests)
    assert sent < 10 and sum(r.error == BUDGET_REACHED for r in results) == 10 - sent
    first = results[0]
    assert first.estimated and first.completion_tokens == 10 and first.prompt_tokens > 0
    assert usage.estimated == sent and usage.total_tokens >= 35
    assert store.scalar("SELECT sum(estimated) FROM llm_calls") == sent


def test_reasoning_in_either_field_and_content_as_parts():
    with FakeOpenAI() as srv:
        srv.script(Answer("42", reasoning="vLLM thinks here"),
                   Answer("43", reasoning_content="DeepSeek thinks here"),
                   Answer("44", reasoning_content="both", wire=Wire(reasoning_field="both")),
                   Answer("<think>tagged</think>45", wire=Wire(content_parts=True)))
        with LLMClient(settings_for(srv, concurrency=1)) as client:
            results = [client.complete(ChatRequest.user(f"q{i}")) for i in range(4)]
    assert [(r.content, r.reasoning) for r in results] == [
        ("42", "vLLM thinks here"), ("43", "DeepSeek thinks here"), ("44", "both"), ("45", "tagged")]


@pytest.mark.parametrize("fast_http", [True, False])
def test_chunked_and_split_responses_are_read_whole(fast_http):
    wire = Wire(chunks=5, split=Split(pieces=4, pause=0.01), close=True)
    with FakeOpenAI(wire=wire) as srv:
        with LLMClient(settings_for(srv, fast_http=fast_http, concurrency=2)) as client:
            results = client.complete_many([ChatRequest.user(f"chunked {i} " + "z" * 300) for i in range(6)])
    assert [r.content for r in results] == [f"echo: chunked {i} " + "z" * 300 for i in range(6)]


def test_answers_that_cannot_be_stored_as_is_are_cleaned(store):
    srv_answers = [Answer("lone \ud800 surrogate"), Answer("nul\x00byte", reasoning_content="think \udfff")]
    with FakeOpenAI() as srv:
        srv.script(*srv_answers, BrokenBody(body=b'{"choices": [{"message": {"content": "caf\xe9 au lait"}, '
                                                 b'"finish_reason": "stop"}], "model": "m"}'))
        with LLMClient(settings_for(srv, concurrency=1), store) as client:
            a, b, c = client.complete_many([ChatRequest.user(f"q{i}") for i in range(3)])
            again = client.complete_many([ChatRequest.user(f"q{i}") for i in range(3)])
    assert a.content == "lone \ufffd surrogate" and b.content == "nulbyte" and b.reasoning == "think \ufffd"
    assert c.content == "caf\ufffd au lait" and c.estimated
    assert all(r.cached for r in again) and [r.content for r in again] == [a.content, b.content, c.content]


def test_413_and_422_and_context_length_stop_only_their_item():
    def refuse(body):
        text = body["messages"][-1]["content"]
        if "huge" in text:
            return HTTPError(413, "Request Entity Too Large", wire=Wire(error_style="html"))
        if "odd" in text:
            return HTTPError(422, "Unprocessable")
        return None

    with FakeOpenAI(refuse, profile="vllm", context_length=60) as srv:
        with LLMClient(settings_for(srv, concurrency=2)) as client:
            results = client.complete_many([ChatRequest.user(t) for t in ("ok", "huge", "odd", "long " * 300, "ok 2")])
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert "413" in results[1].error and "too large" in results[1].error and "<html" not in results[1].error
    assert "422" in results[2].error and "maximum context length is 60 tokens" in results[3].error
    assert "too long for the model's context" in results[3].error
    assert all(r.attempts == 1 and not r.transient for r in results[1:4])


@pytest.mark.parametrize("profile, status, words", [
    ("strict", 404, "does not exist"),
    ("vllm", 404, "does not exist"),
    ("ollama", 404, "not found, try pulling it first"),
    ("hosted_reasoning", 400, "Model Not Exist"),
])
def test_an_unknown_model_stops_the_batch_with_a_hint(profile, status, words):
    with FakeOpenAI(profile=profile, check_model=True, models=("served-model",)) as srv:
        with LLMClient(settings_for(srv, model="missing-model", concurrency=1)) as client:
            with pytest.raises(LLMError) as info:
                client.complete_many([ChatRequest.user(f"q{i}") for i in range(6)])
        assert len(srv.chat_requests) == 1
    message = str(info.value)
    assert f"HTTP {status}" in message and words in message and "check LINKQA_MODEL" in message


@pytest.mark.parametrize("style", ["plain", "detail", "text", "html", "vllm"])
def test_error_bodies_of_every_shape_end_as_one_readable_line(store, style):
    with FakeOpenAI() as srv:
        srv.responder = lambda body: HTTPError(503, "Engine overloaded", wire=Wire(error_style=style))
        with LLMClient(settings_for(srv, max_retries=1), store) as client:
            r = client.complete(ChatRequest.user("q"))
    assert r.transient and r.attempts == 2 and "\n" not in r.error
    expected = "503 Service Unavailable" if style == "html" else "Engine overloaded"
    assert r.error.endswith(f"HTTP 503: {expected}")
    assert calls(store)[0]["error"] == r.error


@pytest.mark.parametrize("how", ["ms", "date"])
def test_retry_after_in_milliseconds_or_as_a_date_is_waited_for(srv, how):
    srv.script(HTTPError(429, retry_after=1.2 if how == "date" else 0.4, retry_after_as=how), Answer("after"))
    with LLMClient(settings_for(srv)) as client:
        r = client.complete(ChatRequest.user("q"))
    first, second = srv.chat_requests
    assert r.content == "after" and second.received_at - first.answered_at >= 0.35


def test_an_endpoint_that_is_down_stops_the_batch_after_a_few_failures_in_a_row(store):
    with FakeOpenAI() as srv:
        srv.responder = lambda body: HTTPError(503)
        delivered = []
        with LLMClient(settings_for(srv, max_retries=1, concurrency=2, outage_after=3), store) as client:
            with pytest.raises(EndpointDown, match=r"failed 3 requests in a row.*run the same command again") as info:
                client.complete_many([ChatRequest.user(f"q{i}") for i in range(20)],
                                     on_result=lambda i, r: delivered.append(r))
            assert client.endpoint_down
            with pytest.raises(EndpointDown):  # and it stays down for this client
                client.complete_many([ChatRequest.user("later")])
        sent = len(srv.chat_requests)
    assert sent <= 2 * 4 and all(r.transient for r in delivered)
    assert sum(r.attempts == 2 for r in delivered) >= 3  # those that gave up; one in flight may stop after one
    assert KEY not in str(info.value)
    assert store.scalar("SELECT count(*) FROM llm_calls") == len(delivered)


def test_a_success_between_failures_resets_the_outage_count():
    pattern = iter([HTTPError(503), HTTPError(503), Answer("fine")] * 10)
    with FakeOpenAI(lambda body: next(pattern)) as srv:
        with LLMClient(settings_for(srv, max_retries=0, concurrency=1, outage_after=3)) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(9)])
    assert [r.ok for r in results] == [False, False, True] * 3 and not any(r.error == ENDPOINT_DOWN for r in results)


def test_a_key_in_the_url_query_is_sent_but_never_shown_or_stored(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "query-key-SECRET-42"
    with FakeOpenAI() as srv:  # it knows no query strings: it answers 404 quoting the path, key and all
        url = f"{srv.base_url}?api-key={secret}"
        with Store(tmp_path / "q.db") as store:
            with LLMClient(settings_for(srv, base_urls=(url,), api_key=None), store) as client:
                with pytest.raises(LLMError) as info:
                    client.complete(ChatRequest.user("hello"))
                shown = f"{client!r} {client.settings!r} {client.settings.public_dict()}"
        [sent] = [r for r in srv.requests if r.method == "POST"]
    assert sent.path == f"/v1/chat/completions?api-key={secret}"  # the key went where the server wants it
    assert "Unknown path /v1/chat/completions?api-key=***" in str(info.value)
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for where in (str(info.value), shown, caplog.text, blob.decode("latin-1")):
        assert secret not in where


# -- the keep-alive transport, byte by byte -------------------------------------------------------------


class RawServer:
    """Answers each HTTP request with the next scripted bytes, then closes if told to."""

    def __init__(self, *responses: tuple[bytes, bool]):
        import socket

        self.responses = list(responses)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while self.responses:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while self.responses:
                    while b"\r\n\r\n" not in data:
                        more = conn.recv(65536)
                        if not more:
                            break
                        data += more
                    if b"\r\n\r\n" not in data:
                        break
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                       if line.lower().startswith(b"content-length")), b"0"))
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    data = rest[length:]
                    payload, close = self.responses.pop(0)
                    conn.sendall(payload)
                    if close:
                        break

    def close(self) -> None:
        self.sock.close()


def completion(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 2}}).encode()


def test_the_fast_transport_reads_extensions_trailers_1xx_and_bodies_to_the_end():
    body = completion("chunked with extensions")
    chunked = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
               b"transfer-encoding: gzip, chunked\r\n\r\n"
               + b"%x;name=value\r\n%s\r\n" % (10, body[:10]) + b"%X\r\n%s\r\n" % (len(body) - 10, body[10:])
               + b"0\r\nx-trailer: yes\r\n\r\n")
    to_eof = b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n" + completion("read to the end")
    closing = (b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: %d\r\n\r\n" % len(completion("closed"))
               + completion("closed"))
    keep = b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive\r\ncontent-length: %d\r\n\r\n" % len(completion("kept"))
    server = RawServer((chunked, False), (to_eof, True), (closing, False), (keep + completion("kept"), False),
                       (keep + completion("kept"), False))
    try:
        settings = LLMSettings(base_urls=(server.url,), model="m", max_retries=0, concurrency=1)
        with LLMClient(settings) as client:
            got = [client.complete(ChatRequest.user(f"q{i}")).content for i in range(5)]
    finally:
        server.close()
    assert got == ["chunked with extensions", "read to the end", "closed", "kept", "kept"]
    assert server.connections == 3  # a new one after the HTTP/1.0 body and after Connection: close


@pytest.mark.parametrize("raw, why", [
    (b"HTTP/1.1 OK\r\n\r\n", "malformed status line"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{\"choices\"", "in the middle of the response body"),
    (b"HTTP/1.1 200 OK\r\ncontent-type: appl", "in the middle of the response head"),
    (b"", "without sending a response"),
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nff\r\n{}", "in the middle of the response body"),
])
def test_broken_responses_on_the_wire_are_connection_errors_that_are_retried(raw, why, caplog):
    caplog.set_level(logging.INFO, logger="linkqa_core.llm")
    server = RawServer((raw, True), (b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(completion("ok"))
                                     + completion("ok"), True))
    try:
        settings = LLMSettings(base_urls=(server.url,), model="m", max_retries=1, backoff_base_s=0.0, concurrency=1)
        with LLMClient(settings) as client:
            r = client.complete(ChatRequest.user("q"))
    finally:
        server.close()
    assert r.content == "ok" and r.attempts == 2
    assert f"attempt 1 failed (connection error: RemoteProtocolError: " in caplog.text and why in caplog.text


def test_a_refused_connection_says_where_without_a_traceback():
    server = RawServer()
    url = server.url
    server.close()
    with LLMClient(LLMSettings(base_urls=(url,), model="m", max_retries=0)) as client:
        r = client.complete(ChatRequest.user("q"))
    assert r.transient and r.error.startswith("gave up after 1 attempts; last error: connection error: ")
    assert f"cannot connect to 127.0.0.1:{url.split(':')[2].split('/')[0]}" in r.error


def test_measure_throughput_times_distinct_requests_after_a_warm_up():
    from linkqa_core.llm.client import measure_throughput

    with FakeOpenAI(latency=0.05) as srv:
        t = measure_throughput(settings_for(srv, concurrency=4), 12, prompt="speed")
        sent = [r.json["messages"][-1]["content"] for r in srv.chat_requests]
    assert (t.requests, t.errors, t.concurrency) == (12, 0, 4)
    assert sorted(sent[:4]) == [f"speed warm {i}" for i in range(4)]
    assert sorted(sent[4:]) == sorted(f"speed {i}" for i in range(12))
    assert t.seconds >= 3 * 0.05 and t.requests_per_s == pytest.approx(12 / t.seconds)


# -- what each result carries ----------------------------------------------------------------------------


def test_a_failed_result_says_where_what_and_what_it_cost(store):
    srv_answers = [Answer("   ", as_is=True, prompt_tokens=10, completion_tokens=3, reasoning_tokens=2,
                          wire=Wire(usage=False)),
                   HTTPError(503), HTTPError(503)]
    with FakeOpenAI() as srv:
        srv.script(*srv_answers)
        with LLMClient(settings_for(srv, max_retries=2), store) as client:
            r = client.complete(ChatRequest.user("x" * 40, model="other-model"))
        url = srv.base_url
    assert (r.endpoint, r.model, r.status, r.attempts, r.transient) == (url, "other-model", 503, 3, True)
    assert r.key and r.key == calls(store)[0]["key"] and r.latency_s > 0
    # the blank answer was paid for (estimated: that server sent no usage), and is charged to the failure
    assert r.estimated and r.prompt_tokens == 4 + 10 and r.completion_tokens == 1  # "   " is about one token
    row = calls(store)[0]
    assert (row["prompt_tokens"], row["estimated"], row["status"], row["model"]) == (14, 1, "error", "other-model")


def test_two_blank_answers_are_charged_in_full():
    with FakeOpenAI() as srv:
        srv.script(Answer("  ", as_is=True, prompt_tokens=10, completion_tokens=3, reasoning_tokens=2,
                          wire=Wire(usage=False)),
                   Answer("\n", as_is=True, prompt_tokens=11, completion_tokens=4, reasoning_tokens=5))
        with LLMClient(settings_for(srv)) as client:
            r = client.complete(ChatRequest.user("y" * 40))
    assert r.error == "the model answered with blank content twice" and r.attempts == 2 and r.status == 200
    assert (r.prompt_tokens, r.completion_tokens, r.reasoning_tokens) == (14 + 11, 1 + 4, 0 + 5)
    assert r.estimated  # one of the two was estimated


def test_a_cache_hit_gives_back_the_answer_as_it_came_and_costs_nothing(store):
    with FakeOpenAI() as srv:
        srv.script(Answer("<think>hm</think>Paris", finish_reason="stop", model="served-name", prompt_tokens=7,
                          completion_tokens=5, reasoning_tokens=3))
        req = ChatRequest.user("capital?")
        with LLMClient(settings_for(srv), store) as client:
            first = client.complete(req)
            hit = client.complete(req)
            twins = client.complete_many([ChatRequest.user("twin")] * 3)
    assert (first.content, first.reasoning, first.model, first.reasoning_tokens) == ("Paris", "hm", "served-name", 3)
    assert (hit.content, hit.reasoning, hit.model, hit.finish_reason, hit.key) == ("Paris", "hm", "served-name",
                                                                                   "stop", first.key)
    assert hit.cached and (hit.prompt_tokens, hit.completion_tokens, hit.reasoning_tokens, hit.attempts) == (0, 0, 0, 0)
    stored = store.llm.cached([first.key])[first.key]
    assert stored == {"content": "Paris", "reasoning": "hm", "model": "served-name", "finish_reason": "stop",
                      "prompt_tokens": 7, "completion_tokens": 5, "reasoning_tokens": 3}
    lead, *follow = twins
    assert not lead.cached and lead.attempts == 1 and lead.endpoint is not None
    for f in follow:  # identical requests in one batch: sent once, the others are hits
        assert f.cached and f.content == lead.content and f.key == lead.key
        assert (f.prompt_tokens, f.completion_tokens, f.reasoning_tokens, f.attempts, f.latency_s, f.endpoint,
                f.estimated) == (0, 0, 0, 0, 0.0, None, False)


def test_requests_that_never_started_carry_their_key_and_are_not_logged(store):
    with FakeOpenAI() as srv:
        with LLMClient(settings_for(srv, budget_tokens=1, concurrency=1), store) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(3)])
    assert results[0].ok and [r.error for r in results[1:]] == [BUDGET_REACHED] * 2
    assert all(r.key and not r.transient and not r.started for r in results[1:])
    assert len({r.key for r in results}) == 3 and len(calls(store)) == 1


def test_a_known_mode_and_a_forced_one_start_at_full_concurrency(store):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    for kw in ({"structured_output": "json_object"}, {}):
        reqs = [ChatRequest.user(f"JSON {i} {kw}", response_format=schema) for i in range(6)]
        with FakeOpenAI(latency=0.3) as srv:
            store.llm.set_mode(srv.base_url, MODEL, "json_object_schema", "from before")
            with LLMClient(settings_for(srv, concurrency=6, **kw), store) as client:
                client.complete_many(reqs)
            times = sorted(r.received_at for r in srv.chat_requests)
            kinds = {r.json["response_format"]["type"] for r in srv.chat_requests}
        assert times[-1] - times[0] < 0.25 and kinds == {"json_object"}  # none waited for a first answer


def test_the_spend_of_a_run_can_be_counted_per_stage(store):
    from linkqa_core.store.llm import CallRow

    store.llm.record([CallRow(5, "synthesis", "k1", None, "m", "ok", False, 1, 100, 50, 10, 0.1, None, 0.5, True),
                      CallRow(5, "synthesis", "k2", None, "m", "cached", True, 0, 0, 0, 0, 0.0, None, 0.0),
                      CallRow(5, "difficulty-rate", "k3", None, "m", "error", False, 2, 7, 0, 0, 0.1, "x", 0.25),
                      CallRow(6, "synthesis", "k4", None, "m", "ok", False, 1, 1000, 1000, 0, 0.1, None, 9.0)], [])
    u = Usage.from_store(store, 5, ["synthesis"])
    assert (u.requests, u.cached, u.errors, u.prompt_tokens, u.completion_tokens, u.reasoning_tokens, u.usd,
            u.estimated) == (1, 1, 0, 100, 50, 10, 0.5, 1)
    every = Usage.from_store(store, 5)
    assert (every.requests, every.errors, every.prompt_tokens, every.usd) == (2, 1, 107, 0.75)
    assert Usage.from_store(store, 7).total_tokens == 0


def test_cost_estimates_refuse_negative_counts_and_round_to_a_millionth():
    s = LLMSettings(price_in_per_mtok=1.0, price_out_per_mtok=3.0)
    assert estimate_cost(0, 10, 10, settings=s) == estimate_cost(0, 0, 0) == \
        type(estimate_cost(0, 0, 0))(requests=0, tokens=0, usd=0.0)
    for args in ((-1, 1, 1, 0), (1, -1, 1, 0), (1, 1, -1, 0), (1, 1, 1, -1)):
        with pytest.raises(ConfigError, match="request and token counts must be 0 or more"):
            estimate_cost(*args)
    est = estimate_cost(3, 0.5, 0.25, 0.125, s)
    assert est.requests == 3 and est.tokens == 3 and est.usd == round((1.5 * 1.0 + 1.125 * 3.0) / 1e6, 6)
    assert estimate_cost(1, 1, 1, settings=s).usd == 0.000004
    assert estimate_cost(7, 100, 0, settings=LLMSettings(price_in_per_mtok=0.3)).usd == 0.00021


def test_cache_keys_change_with_the_variant_and_token_estimates_count_characters():
    from linkqa_core.llm.ledger import prompt_tokens_of

    s = LLMSettings(model="m")
    req = ChatRequest.user("same")
    assert cache_key(req, s) != cache_key(replace(req, variant=1), s) != cache_key(replace(req, variant=2), s)
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "é" * 40}]}]}
    assert prompt_tokens_of(parts) == 4 + (len(json.dumps(parts["messages"][0]["content"], ensure_ascii=False)) + 3) // 4

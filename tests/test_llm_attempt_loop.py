"""The LLM client's attempt loop and its bookkeeping, pinned branch by branch.

Mutation testing (``scripts/mutation linkqa_core/llm/client.py``) found these branches
loose: the mode fall-back over several endpoints, the endpoint pause after ``Retry-After``,
the rpm/tpm buckets, stops and outages during a back-off, what each failure says, what a
client counts, and how a client ends. Every test talks real HTTP to tests/openai_server.py
(or to a raw socket where a byte-exact answer is needed) through the public client API;
the few looks at the client's loop thread say so where they are made.
"""

from __future__ import annotations

import gc
import json
import math
import socket
import threading
import time

import pytest

from linkqa_core.errors import ConfigError, LLMError
from linkqa_core.llm import ledger
from linkqa_core.llm.client import BUDGET_REACHED, ENDPOINT_DOWN, STOPPED, ChatRequest, LLMClient, LLMSettings, Usage
from linkqa_core.llm.failures import EndpointDown
from linkqa_core.tasks import json_request
from openai_server import Answer, BrokenBody, Drop, FakeOpenAI, HTTPError, Wire

KEY = "sk-" + "attempt-loop-" + "0123456789"
MODEL = "fake-model"
SCHEMA = {"name": "city", "schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                     "required": ["city"]}}


def settings_for(*servers: FakeOpenAI, **kw) -> LLMSettings:
    values = dict(base_urls=tuple(s.base_url for s in servers), api_key=KEY, model=MODEL, backoff_base_s=0.0,
                  backoff_max_s=0.01, timeout_s=5.0, max_retries=2)
    values.update(kw)
    return LLMSettings(**values)


def ask_json(text: str = "Name a city, as JSON.") -> ChatRequest:
    return json_request([{"role": "user", "content": text}], SCHEMA, stage="t")


def paris(body) -> Answer:
    return Answer(json.dumps({"city": "Paris"}))


def completion_bytes(**fields) -> bytes:
    """A chat completion body with exactly the given top-level fields besides ``choices``."""
    data = {"choices": [{"message": {"content": fields.pop("content", "ok")}, "finish_reason": "stop"}]}
    data.update(fields)
    return json.dumps(data).encode()


class RawServer:
    """Answers each HTTP request with the next scripted bytes; notes when the client hangs up."""

    def __init__(self, *responses: bytes):
        self.responses = list(responses)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.hung_up = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        self.hung_up.set()
                        return
                    data += more
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length")), b"0"))
                while len(rest) < length:
                    rest += conn.recv(65536)
                data = rest[length:]
                if not self.responses:
                    return
                conn.sendall(self.responses.pop(0))

    def close(self) -> None:
        self.sock.close()


def http_response(status: str, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        status.encode(), len(body), body)


# -- creating and ending a client ----------------------------------------------------------------------


def test_a_client_without_an_endpoint_or_a_model_says_what_to_set():
    with pytest.raises(ConfigError) as info:
        LLMClient(LLMSettings(model="m"))
    assert str(info.value) == "no LLM endpoint: set OPENAI_BASE_URL (or OPENAI_API_KEY for api.openai.com)"
    with pytest.raises(ConfigError) as info:
        LLMClient(LLMSettings(base_urls="http://127.0.0.1:9/v1"))
    assert str(info.value) == "no model: set LINKQA_MODEL or pass model="


def test_repr_names_the_model_every_endpoint_and_the_concurrency():
    client = LLMClient(LLMSettings(base_urls="http://127.0.0.1:9/v1, http://u:pw@127.0.0.1:8/v1?key=k",
                                   model="m", concurrency=3))
    assert repr(client) == "<LLMClient 'm' at http://127.0.0.1:9/v1, http://127.0.0.1:8/v1 concurrency=3>"
    client.close()


def test_a_key_that_does_not_look_like_one_is_still_kept_out_of_errors():
    wrong = "plain" + "-password-" + "4242"
    with FakeOpenAI(api_key="right" + "-password-" + "0000") as srv:  # quotes the key it got back
        with LLMClient(settings_for(srv, api_key=wrong)) as client:
            with pytest.raises(LLMError) as info:
                client.complete(ChatRequest.user("q"))
    assert wrong not in str(info.value) and "Incorrect API key provided: [redacted]" in str(info.value)


def test_close_hangs_up_ends_the_loop_thread_and_refuses_later_calls():
    server = RawServer(http_response("200 OK", completion_bytes(content="one")))
    try:
        client = LLMClient(LLMSettings(base_urls=(server.url,), model="m", max_retries=0))
        assert client.complete(ChatRequest.user("q")).content == "one"
        loop, thread = client._loop, client._thread  # the client's own event loop and its thread
        assert not server.hung_up.is_set()  # keep-alive: the connection stays open ...
        client.close()
        assert not thread.is_alive() and loop.is_closed()
        assert server.hung_up.wait(3)  # ... until close() closes it
        with pytest.raises(LLMError, match="this LLM client is closed"):
            client.complete(ChatRequest.user("again"))
        client.close()  # a second close does nothing
    finally:
        server.close()


def test_close_returns_only_once_the_loop_thread_has_ended():
    with FakeOpenAI() as srv:
        for i in range(5):  # the thread may also end on its own in the instant before the check: look five times
            client = LLMClient(settings_for(srv))
            answer = client.complete(ChatRequest.user(f"q{i}"))
            loop, thread = client._loop, client._thread  # the client's own event loop and its thread
            client.close()
            assert answer.ok and not thread.is_alive() and loop.is_closed()


def test_a_single_request_after_a_concurrent_batch_goes_to_the_endpoint_sent_less():
    with FakeOpenAI(latency=0.3) as a, FakeOpenAI(latency=0.3) as b:
        with LLMClient(settings_for(a, b, concurrency=3)) as client:
            batch = client.complete_many([ChatRequest.user(f"q{i}") for i in range(3)])  # a, b, then a again
            after = client.complete(ChatRequest.user("one more"))  # nothing in flight now: b has sent less
            urls = (a.base_url, b.base_url)
    assert sorted(r.endpoint for r in batch) == sorted([urls[0], urls[0], urls[1]])
    assert after.endpoint == urls[1]


def test_a_client_dropped_without_close_stops_its_thread_and_closes_its_loop():
    gc.disable()  # the last reference goes when this test says, not at a collection on some thread
    try:
        with FakeOpenAI() as srv:
            client = LLMClient(settings_for(srv))
            answer = client.complete(ChatRequest.user("q"))  # not inside an assert: pytest would keep the client
            loop, thread = client._loop, client._thread  # the client's own event loop and its thread
            del client  # often freed on the loop thread itself, which then stops and closes its loop
            gc.collect()
            thread.join(timeout=3)
            assert answer.ok and not thread.is_alive() and loop.is_closed()
    finally:
        gc.enable()


def test_the_finalizer_run_on_another_thread_returns_only_once_the_loop_thread_ended():
    with FakeOpenAI() as srv:
        client = LLMClient(settings_for(srv))
        answer = client.complete(ChatRequest.user("q"))
        loop, thread = client._loop, client._thread
        client._finalizer()  # what dropping the client runs, run here on the calling thread
        assert answer.ok and not thread.is_alive() and loop.is_closed()  # joined before returning


def test_a_closed_client_that_never_started_refuses_calls():
    client = LLMClient(LLMSettings(base_urls="http://127.0.0.1:9/v1", model="m"))
    client.close()
    with pytest.raises(LLMError) as info:
        client.complete(ChatRequest.user("q"))
    assert str(info.value) == "this LLM client is closed"


# -- what a client knows and forgets -------------------------------------------------------------------


def test_modes_include_what_the_store_remembered(store):
    with FakeOpenAI() as srv:
        store.llm.set_mode(srv.base_url, MODEL, "json_object_schema", "from before")
        with LLMClient(settings_for(srv), store) as client:
            assert client.modes() == {}  # nothing read before the first call
            assert client.complete(ChatRequest.user("plain chat")).ok
            assert client.modes() == {srv.base_url: {MODEL: "json_object_schema"}}


def test_forget_drops_a_cached_answer_once(store):
    req = ChatRequest.user("Name a prime.")
    with FakeOpenAI() as srv:
        with LLMClient(settings_for(srv)) as client:
            assert client.forget(req) is False  # no store: nothing to forget
        with LLMClient(settings_for(srv), store) as client:
            assert client.forget(req) is False
            client.complete(req)
            assert client.complete(req).cached
            assert client.forget(req) is True
            assert client.forget(req) is False
            assert not client.complete(req).cached
        assert len(srv.chat_requests) == 2


# -- the structured-output mode over several endpoints ----------------------------------------------------


def test_two_endpoints_that_take_only_the_prompt_mode_still_answer():
    refusal = HTTPError(400, "response_format is not supported by this deployment")

    def refuse_formats(body):
        return refusal if "response_format" in body else paris(body)

    with FakeOpenAI(refuse_formats) as a, FakeOpenAI(refuse_formats) as b:
        with LLMClient(settings_for(a, b, max_retries=0)) as client:
            r = client.complete(ask_json())
            assert client.modes() == {a.base_url: {MODEL: "prompt"}, b.base_url: {MODEL: "prompt"}}
        sent = len(a.chat_requests) + len(b.chat_requests)
    assert r.ok and json.loads(r.content) == {"city": "Paris"} and r.attempts == 1 and r.mode == "prompt"
    assert sent == 3 + 3 + 1  # each endpoint refused three modes; the answer came in the fourth


def test_a_result_names_the_mode_it_was_asked_in():
    with FakeOpenAI(paris, profile="llama_cpp") as srv:
        with LLMClient(settings_for(srv)) as client:
            structured = client.complete(ask_json())
            plain = client.complete(ChatRequest.user("chat"))
    assert structured.mode == "json_object_schema" and plain.mode is None


# -- waiting: Retry-After, the endpoint's pause, rpm and tpm -------------------------------------------------


def test_after_a_retry_after_the_next_request_to_that_endpoint_waits_too():
    with FakeOpenAI() as srv:
        srv.script(HTTPError(429, retry_after=0.8), Answer("later"))
        with LLMClient(settings_for(srv, max_retries=0)) as client:
            first = client.complete(ChatRequest.user("q1"))
            second = client.complete(ChatRequest.user("q2"))
        refused, answered = srv.chat_requests
    assert first.transient and first.error.startswith("gave up after 1 attempts; last error: HTTP 429")
    assert second.content == "later"
    assert answered.received_at - refused.answered_at >= 0.75  # the endpoint was paused for the other request


def test_a_retry_waits_the_whole_retry_after_even_with_another_endpoint_free():
    with FakeOpenAI() as busy, FakeOpenAI() as free:
        busy.script(HTTPError(429, retry_after=1.2))
        with LLMClient(settings_for(busy, free, max_retries=1, concurrency=1)) as client:
            t0 = time.monotonic()
            r = client.complete(ChatRequest.user("q"))
            elapsed = time.monotonic() - t0
        [retried] = free.chat_requests
        free_url = free.base_url
    assert r.ok and r.attempts == 2 and r.endpoint == free_url
    assert retried.received_at - busy.chat_requests[0].answered_at >= 1.15 and elapsed < 3.0


def test_back_off_sleeps_are_as_short_as_asked():
    with FakeOpenAI() as srv:
        srv.script(*[HTTPError(503)] * 5, Answer("sixth"))
        with LLMClient(settings_for(srv, max_retries=5)) as client:
            t0 = time.monotonic()
            r = client.complete(ChatRequest.user("q"))
            elapsed = time.monotonic() - t0
    assert r.content == "sixth" and r.attempts == 6 and elapsed < 1.2  # five back-offs of at most 10 ms


def test_rpm_takes_one_request_from_the_bucket_per_attempt():
    with FakeOpenAI() as srv:
        with LLMClient(settings_for(srv, rpm=600, concurrency=15)) as client:  # 10 a second, a burst of 10
            t0 = time.monotonic()
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(15)])
            elapsed = time.monotonic() - t0
    assert all(r.ok for r in results)
    assert 0.4 <= elapsed < 1.5  # ten at once, five more at ten a second; two per request would take 2 s


def test_tpm_reserves_the_prompt_and_max_tokens_and_keeps_them_for_a_failed_attempt():
    req = ChatRequest.user("How far is the Moon? " * 8, max_tokens=20)
    settings = settings_for(max_retries=1)
    reserve = ledger.prompt_tokens_of(ledger.request_body(req, settings)) + 20
    with FakeOpenAI() as srv:
        srv.script(HTTPError(503), Answer("far", prompt_tokens=1, completion_tokens=1))
        settings = settings_for(srv, max_retries=1, tpm=60 * reserve)  # a bucket of exactly one reservation
        with LLMClient(settings) as client:
            r = client.complete(req)
        failed, answered = srv.chat_requests
    assert r.ok and r.attempts == 2
    # the failed attempt kept its reservation: the retry waited for the bucket to refill, about a second
    assert 0.85 <= answered.received_at - failed.answered_at < 3.0


def test_tpm_gives_back_what_an_answer_did_not_use():
    with FakeOpenAI(lambda body: Answer("x", prompt_tokens=5, completion_tokens=5)) as srv:
        req = ChatRequest.user("short", max_tokens=30)
        with LLMClient(settings_for(srv, tpm=60 * 100, concurrency=1)) as client:  # 100 tokens a second
            t0 = time.monotonic()
            results = client.complete_many([ChatRequest.user(f"q{i}", max_tokens=30) for i in range(30)] + [req])
            elapsed = time.monotonic() - t0
    assert all(r.ok for r in results)
    # 31 answers of 10 tokens from a bucket of 100 at 100 a second: about 2.1 s, not the ~0 s of a bucket that
    # is never charged, nor the ~12 s of one that keeps every reservation
    assert 1.5 <= elapsed < 6.0


# -- stopping in the middle of a back-off -----------------------------------------------------------------


def test_a_stop_during_a_back_off_ends_the_request_at_once_with_what_it_cost():
    stop = threading.Event()
    with FakeOpenAI() as srv:
        srv.script(HTTPError(503, "Engine busy", retry_after=3))
        with LLMClient(settings_for(srv, max_retries=3)) as client:
            threading.Timer(0.3, stop.set).start()
            t0 = time.monotonic()
            [r] = client.complete_many([ChatRequest.user("q")], stop_event=stop)
            elapsed = time.monotonic() - t0
        url = srv.base_url
    assert r.error == f"{STOPPED} after 1 attempts; last error: HTTP 503: Engine busy"
    assert (r.transient, r.status, r.attempts, r.endpoint, r.model) == (True, 503, 1, url, MODEL)
    assert r.key and 0.25 <= r.latency_s < 1.0
    assert elapsed < 1.0 and len(srv.chat_requests) == 1  # woke within a quarter second of the stop


def test_an_outage_wakes_a_request_sleeping_in_its_back_off():
    def answer(body):
        text = body["messages"][-1]["content"]
        return HTTPError(503, retry_after=3) if text == "slow" else HTTPError(503)

    got = []
    with FakeOpenAI(answer, latency=0.05) as a, FakeOpenAI(answer, latency=0.05) as b:  # "fast" retries on b
        with LLMClient(settings_for(a, b, max_retries=1, concurrency=2, outage_after=1)) as client:
            t0 = time.monotonic()
            slow, fast = client.complete_many([ChatRequest.user("slow"), ChatRequest.user("fast")],
                                              on_result=lambda i, r: got.append(i))
            elapsed = time.monotonic() - t0
            assert client.endpoint_down
        asked = [q.json["messages"][-1]["content"] for q in a.chat_requests + b.chat_requests]
    assert fast.error.startswith("gave up after 2 attempts") and sorted(got) == [0, 1]
    assert slow.error.startswith(f"{STOPPED} after 1 attempts; last error: HTTP 503") and slow.attempts == 1
    assert asked.count("slow") == 1 and elapsed < 2.0  # woke at once, and sent nothing more


def test_an_on_result_error_wakes_a_request_sleeping_in_its_back_off():
    def answer(body):
        text = body["messages"][-1]["content"]
        return HTTPError(503, retry_after=3) if text == "slow" else Answer("fine", delay=0.2)

    def boom(i, r):
        raise RuntimeError("cannot save")

    with FakeOpenAI(answer) as srv:
        with LLMClient(settings_for(srv, max_retries=1, concurrency=2)) as client:
            t0 = time.monotonic()
            with pytest.raises(RuntimeError, match="cannot save"):
                client.complete_many([ChatRequest.user("slow"), ChatRequest.user("fast")], on_result=boom)
            elapsed = time.monotonic() - t0
        assert len(srv.chat_requests) == 2
    assert elapsed < 2.0  # not the three seconds the server asked for


# -- what each failure says ------------------------------------------------------------------------------


def test_failures_without_an_http_status_carry_none_as_status():
    with FakeOpenAI() as srv:
        srv.script(Answer("slow", delay=1.0), Drop(), BrokenBody(), BrokenBody(body=b'{"id": "no choices"}'))
        with LLMClient(settings_for(srv, max_retries=0, timeout_s=0.3, concurrency=1)) as client:
            results = [client.complete(ChatRequest.user(f"q{i}")) for i in range(4)]
    timed_out, dropped, not_json, no_choices = results
    assert timed_out.error == "gave up after 1 attempts; last error: timed out after 0.3 s"
    assert dropped.error.startswith("gave up after 1 attempts; last error: connection error: ")
    assert not_json.error == "gave up after 1 attempts; last error: invalid response body (not JSON: JSONDecodeError)"
    assert no_choices.error == "gave up after 1 attempts; last error: invalid response body (no choices)"
    assert all(r.status is None and r.transient for r in results)


def test_an_error_status_with_an_empty_body_reads_as_the_status():
    server = RawServer(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
    try:
        with LLMClient(LLMSettings(base_urls=(server.url,), model="m", max_retries=0)) as client:
            r = client.complete(ChatRequest.user("q"))
    finally:
        server.close()
    assert r.error == "gave up after 1 attempts; last error: HTTP 503: HTTP 503" and r.status == 503


def test_an_items_refusal_carries_its_status_and_a_hint_naming_the_model():
    with FakeOpenAI(lambda body: HTTPError(422, "cannot process this")) as srv:
        with LLMClient(settings_for(srv, model="the-model")) as client:
            [r] = client.complete_many([ChatRequest.user("q")])
        url = srv.base_url
    assert r.status == 422 and not r.transient and r.attempts == 1
    assert r.error == f"{url} answered HTTP 422: cannot process this -- the endpoint could not process the request"
    with FakeOpenAI(profile="strict", check_model=True, models=("served",)) as srv:
        with LLMClient(settings_for(srv, model="missing")) as client:
            with pytest.raises(LLMError) as info:
                client.complete_many([ChatRequest.user("q")])
    assert "model 'missing' or the path is unknown there" in str(info.value)


def test_a_connection_error_is_one_line_of_at_most_300_characters():
    long_host = ".".join(letter * 40 for letter in "hijklm") + ".invalid"  # cannot resolve: says so, host and all
    with LLMClient(LLMSettings(base_urls=f"http://{long_host}:9/v1", model="m", max_retries=0)) as client:
        r = client.complete(ChatRequest.user("q"))
    last = r.error.split("; last error: ", 1)[1]
    assert last.startswith("connection error: ConnectError: cannot connect to hhhh") and len(last) == 300


# -- what a result carries ---------------------------------------------------------------------------------


def test_a_blank_answer_then_a_good_one_adds_both_costs():
    with FakeOpenAI() as srv:
        srv.script(Answer(" ", as_is=True, prompt_tokens=10, completion_tokens=3, reasoning_tokens=2),
                   Answer("fine", prompt_tokens=11, completion_tokens=4, reasoning_tokens=3))
        with LLMClient(settings_for(srv)) as client:
            r = client.complete(ChatRequest.user("q"))
    assert r.content == "fine" and r.attempts == 2 and not r.estimated
    assert (r.prompt_tokens, r.completion_tokens, r.reasoning_tokens) == (21, 7, 5)


def test_a_blank_answer_then_a_failure_keeps_the_blank_ones_cost():
    with FakeOpenAI() as srv:
        srv.script(Answer("\n", as_is=True, prompt_tokens=10, completion_tokens=3, reasoning_tokens=2),
                   HTTPError(503))
        with LLMClient(settings_for(srv, max_retries=1)) as client:
            r = client.complete(ChatRequest.user("q"))
    assert r.transient and r.attempts == 2 and not r.estimated
    assert (r.prompt_tokens, r.completion_tokens, r.reasoning_tokens) == (10, 3, 2)
    assert 0 < r.latency_s < 5


def test_blank_twice_returns_no_content():
    with FakeOpenAI() as srv:
        srv.script(Answer(" ", as_is=True), Answer("\n\n", as_is=True))
        with LLMClient(settings_for(srv)) as client:
            r = client.complete(ChatRequest.user("q"))
    assert r.error == "the model answered with blank content twice" and r.content == ""


def test_usage_missing_half_is_estimated_and_a_missing_model_is_the_one_asked():
    bodies = [completion_bytes(content="one", usage={"completion_tokens": 5}),
              completion_bytes(content="two", usage={"prompt_tokens": 7})]
    server = RawServer(*[http_response("200 OK", b) for b in bodies])
    try:
        with LLMClient(LLMSettings(base_urls=(server.url,), model="asked-model", max_retries=0)) as client:
            first = client.complete(ChatRequest.user("q1"))
            second = client.complete(ChatRequest.user("q2"))
    finally:
        server.close()
    assert first.estimated and second.estimated
    assert first.completion_tokens == 5 and second.prompt_tokens == 7
    assert first.model == second.model == "asked-model" and 0 < first.latency_s < 5


# -- what a client counts ------------------------------------------------------------------------------------


def test_usage_adds_every_kind_of_count_to_what_was_spent_before():
    before = Usage(requests=5, cached=1, errors=2, prompt_tokens=100, completion_tokens=50, reasoning_tokens=7,
                   usd=1.0, estimated=1)
    with FakeOpenAI() as srv:
        srv.script(Answer("ok", prompt_tokens=10, completion_tokens=4, reasoning_tokens=3),
                   HTTPError(400, "bad field"), HTTPError(400, "bad field"),
                   Answer("est", wire=Wire(usage=False)))
        with LLMClient(settings_for(srv, concurrency=1, price_in_per_mtok=1e6, price_out_per_mtok=2e6),
                       spent=before) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(4)])
            u = client.usage
    est = results[3]
    assert [r.ok for r in results] == [True, False, False, True] and est.estimated
    assert (u.requests, u.cached, u.errors, u.estimated) == (9, 1, 4, 2)
    assert (u.prompt_tokens, u.completion_tokens, u.reasoning_tokens) == (
        110 + est.prompt_tokens, 54 + est.completion_tokens, 10)
    assert u.usd == pytest.approx(1.0 + (10 + est.prompt_tokens) * 1.0 + (4 + est.completion_tokens) * 2.0)


def test_the_outage_count_starts_at_zero():
    with FakeOpenAI(lambda body: HTTPError(503)) as srv:
        with LLMClient(settings_for(srv, max_retries=0, concurrency=1, outage_after=2)) as client:
            with pytest.raises(EndpointDown, match="failed 2 requests in a row"):
                client.complete_many([ChatRequest.user(f"q{i}") for i in range(5)])
        assert len(srv.chat_requests) == 2


def test_an_items_own_error_resets_the_outage_count():
    pattern = iter([HTTPError(503), HTTPError(400, "bad field")] * 10)
    with FakeOpenAI(lambda body: next(pattern)) as srv:
        with LLMClient(settings_for(srv, max_retries=0, concurrency=1, outage_after=2)) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(8)])
    assert [r.status for r in results] == [503, 400] * 4 and not any(r.error == ENDPOINT_DOWN for r in results)


def test_the_outage_message_names_every_endpoint_and_what_to_do():
    with FakeOpenAI(lambda body: HTTPError(503, "down")) as a, FakeOpenAI(lambda body: HTTPError(503, "down")) as b:
        with LLMClient(settings_for(a, b, max_retries=0, concurrency=1, outage_after=2)) as client:
            with pytest.raises(EndpointDown) as info:
                client.complete_many([ChatRequest.user(f"q{i}") for i in range(4)])
        urls = f"{a.base_url}, {b.base_url}"
    assert str(info.value) == (
        f"the endpoint {urls} failed 2 requests in a row, each after 1 attempt(s) (last: gave up "
        f"after 1 attempts; last error: HTTP 503: down); stopped sending -- check that the server is up and "
        "reachable, then run the same command again: the work not done is still to do")


def test_twins_of_a_request_the_budget_never_started_say_why(store):
    with FakeOpenAI(lambda body: Answer("x", prompt_tokens=5, completion_tokens=5)) as srv:
        with LLMClient(settings_for(srv, concurrency=1, budget_tokens=10), store) as client:
            results = client.complete_many([ChatRequest.user("first"), ChatRequest.user("twin"),
                                            ChatRequest.user("twin")])
    assert results[0].ok and [r.error for r in results[1:]] == [BUDGET_REACHED] * 2
    assert [r.transient for r in results[1:]] == [False, False]
    assert store.scalar("SELECT count(*) FROM llm_calls") == 1


def test_with_a_budget_the_first_answer_is_awaited_before_more_requests_start():
    with FakeOpenAI(lambda body: Answer("x", prompt_tokens=5, completion_tokens=5), latency=0.3) as srv:
        with LLMClient(settings_for(srv, concurrency=3, budget_tokens=1000)) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(3)])
        first, *rest = sorted(srv.chat_requests, key=lambda q: q.received_at)
    # nothing is known of a request's cost until one is answered: the others wait for it, then all fit
    assert all(r.ok for r in results) and len(rest) == 2 and all(q.received_at >= first.answered_at for q in rest)


def test_an_even_budget_is_spent_exactly_at_full_concurrency():
    with FakeOpenAI(lambda body: Answer("x", prompt_tokens=5, completion_tokens=5), latency=0.1) as srv:
        with LLMClient(settings_for(srv, concurrency=4, budget_tokens=200)) as client:  # 20 requests' worth
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(30)])
            spent = client.usage.total_tokens
        started = sorted(srv.chat_requests, key=lambda q: q.received_at)
    assert len(started) == 20 and spent == 200 and sum(r.error == BUDGET_REACHED for r in results) == 10
    assert srv.max_in_flight == 4
    # the first answer's cost known, the others start at once (woken by it, not by a half-second poll)
    assert started[1].received_at - started[0].answered_at < 0.3
    # half the budget spent, requests still overlap: the estimate per request is the true average, not more
    middle = started[10:16]
    overlap = max(sum(1 for q in middle if q.received_at <= p.received_at < q.answered_at) for p in middle)
    assert overlap >= 3


# -- lanes -----------------------------------------------------------------------------------------------------


def test_the_sdk_transport_spreads_a_large_concurrency_over_its_lanes():
    with FakeOpenAI(latency=1.0) as srv:  # long enough for all 64 to arrive on a busy machine
        with LLMClient(settings_for(srv, fast_http=False, concurrency=64)) as client:  # two lanes of 36
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(64)])
    assert all(r.ok for r in results) and srv.max_in_flight == 64


def test_the_sdk_transport_keeps_a_total_deadline_on_a_server_that_trickles_blank_lines():
    with FakeOpenAI() as srv:  # DeepSeek under load: the head at once, a blank line every 0.1 s, the JSON late
        srv.script(Answer("late", delay=1.5, wire=Wire(keepalive=0.1)), Answer("in time"))
        with LLMClient(settings_for(srv, timeout_s=0.5, max_retries=1, fast_http=False)) as client:
            r = client.complete(ChatRequest.user("q"))  # httpx's read time-out restarts with every blank line
    assert r.content == "in time" and r.attempts == 2


def test_a_settled_mode_and_each_step_down_are_stored_with_why(store):
    with FakeOpenAI(paris) as srv:
        with LLMClient(settings_for(srv), store) as client:
            assert client.complete(ask_json()).ok
        [row] = store.llm.modes()
    assert (row["mode"], row["detail"]) == ("json_schema", "answered")
    refusal = "response_format is not supported by this deployment"
    with FakeOpenAI(lambda body: HTTPError(400, refusal) if "response_format" in body else paris(body)) as srv:
        with LLMClient(settings_for(srv), store) as client:
            assert client.complete(ask_json("Another city, as JSON.")).ok
        row = next(r for r in store.llm.modes() if r["endpoint"] == srv.base_url)
    assert (row["mode"], row["detail"]) == ("prompt", f"json_object refused: {refusal}")


def test_tpm_reserves_the_running_average_of_completions_for_a_request_without_max_tokens():
    second = ChatRequest.user("And how far is Mars?")
    settings = settings_for(max_retries=1)
    # after one answer of 500 completion tokens the average moves from 256 to 0.9 * 256 + 0.1 * 500
    reserve = ledger.prompt_tokens_of(ledger.request_body(second, settings)) + 0.9 * 256 + 0.1 * 500
    with FakeOpenAI() as srv:
        srv.script(Answer("far", prompt_tokens=1, completion_tokens=500), HTTPError(503),
                   Answer("farther", prompt_tokens=1, completion_tokens=1))
        with LLMClient(settings_for(srv, max_retries=1, tpm=60 * math.ceil(reserve))) as client:
            assert client.complete(ChatRequest.user("How far is the Moon?")).ok
            r = client.complete(second)
        _, failed, answered = srv.chat_requests
    assert r.ok and r.attempts == 2
    # the failed attempt kept its reservation, a whole bucket: the retry waited about a second for it
    assert 0.85 <= answered.received_at - failed.answered_at < 1.5


def test_sequential_requests_alternate_between_two_idle_endpoints():
    with FakeOpenAI() as a, FakeOpenAI() as b:
        with LLMClient(settings_for(a, b, concurrency=1)) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(6)])
            urls = (a.base_url, b.base_url)
        sent = (len(a.chat_requests), len(b.chat_requests))
    assert [r.endpoint for r in results] == list(urls) * 3 and sent == (3, 3)


def test_requests_go_to_the_endpoint_with_fewer_in_flight():
    with FakeOpenAI(latency=1.5) as slow, FakeOpenAI() as fast:
        with LLMClient(settings_for(slow, fast, concurrency=2)) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(12)])
            fast_url = fast.base_url
        sent = (len(slow.chat_requests), len(fast.chat_requests))
    assert all(r.ok for r in results) and sent == (1, 11)
    assert [r.endpoint for r in results[1:]] == [fast_url] * 11


def test_an_even_usd_budget_is_spent_exactly_at_full_concurrency():
    with FakeOpenAI(lambda body: Answer("x", prompt_tokens=5, completion_tokens=5), latency=0.1) as srv:
        priced = dict(price_in_per_mtok=1e5, price_out_per_mtok=1e5)  # 10 tokens cost 1.00
        with LLMClient(settings_for(srv, concurrency=4, budget_usd=20.0, **priced)) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(30)])
            spent = client.usage
        started = sorted(srv.chat_requests, key=lambda q: q.received_at)
    assert len(started) == 20 and spent.usd == pytest.approx(20.0) and spent.requests == 20
    assert sum(r.error == BUDGET_REACHED for r in results) == 10 and srv.max_in_flight == 4
    middle = started[10:16]
    overlap = max(sum(1 for q in middle if q.received_at <= p.received_at < q.answered_at) for p in middle)
    assert overlap >= 3


def test_the_sdk_transport_sends_new_requests_to_the_lane_with_fewer_in_flight():
    def answer(body):
        text = body["messages"][-1]["content"]
        return Answer("quick") if text.startswith("fast") else Answer("slow", delay=2.0)

    first = [ChatRequest.user(f"{'fast' if i % 2 else 'slow'} {i}") for i in range(64)]  # lanes alternate: 0, 1, 0...
    second = [ChatRequest.user(f"slow again {i}") for i in range(32)]
    with FakeOpenAI(answer) as srv:
        with LLMClient(settings_for(srv, fast_http=False, concurrency=64)) as client:  # two lanes of 36 connections
            results = client.complete_many(first + second)
    # lane 1's fast answers came back at once, so the 32 new requests all went to lane 1 and ran beside
    # lane 0's 32 slow ones; on lane 0 only 4 of them would have found a connection
    assert all(r.ok for r in results) and srv.max_in_flight == 64


def test_a_step_down_not_followed_by_an_answer_is_stored_with_why(store):
    refusal = "response_format json_schema is not supported"

    def answer(body):
        kind = (body.get("response_format") or {}).get("type")
        return HTTPError(400, refusal) if kind == "json_schema" else HTTPError(503)

    with FakeOpenAI(answer) as srv:
        with LLMClient(settings_for(srv, max_retries=0), store) as client:
            r = client.complete(ask_json())
        [row] = store.llm.modes()
    assert r.transient and r.attempts == 1  # the refused mode was not charged; the 503 was
    assert (row["mode"], row["detail"]) == ("json_object_schema", f"json_schema refused: {refusal}")


def test_a_keyless_client_sends_the_placeholder_key_the_sdk_insists_on():
    with FakeOpenAI() as srv:  # local servers take any key, or none
        with LLMClient(settings_for(srv, api_key=None)) as client:
            assert client.complete(ChatRequest.user("q")).ok
        [sent] = srv.chat_requests
    assert sent.headers["authorization"] == "Bearer EMPTY"


def test_the_call_log_row_holds_reasoning_tokens_and_cost(store):
    with FakeOpenAI() as srv:
        srv.script(Answer("42", prompt_tokens=10, completion_tokens=4, reasoning_tokens=3))
        with LLMClient(settings_for(srv, price_in_per_mtok=1e5, price_out_per_mtok=2e5), store) as client:
            assert client.complete(ChatRequest.user("q")).ok
    [row] = [dict(r) for r in store.query("SELECT * FROM llm_calls")]
    assert row["reasoning_tokens"] == 3 and row["usd"] == pytest.approx((10 * 1e5 + 4 * 2e5) / 1e6)


def test_twins_of_a_failed_request_share_its_result_but_not_its_log_row(store):
    with FakeOpenAI(lambda body: HTTPError(400, "bad field")) as srv:
        with LLMClient(settings_for(srv), store) as client:
            results = client.complete_many([ChatRequest.user("same")] * 3)
    assert [r.status for r in results] == [400] * 3 and len(srv.chat_requests) == 1
    assert store.scalar("SELECT count(*) FROM llm_calls") == 1


def test_a_request_stopped_while_it_waited_for_a_slot_another_thread_holds_is_never_sent():
    stop, results = threading.Event(), []

    def answer(body):
        return Answer("held", delay=1.5) if body["messages"][-1]["content"] == "hold" else None

    with FakeOpenAI(answer) as srv:
        with LLMClient(settings_for(srv, concurrency=1)) as client:  # one slot for both threads
            holder = threading.Thread(target=client.complete, args=(ChatRequest.user("hold"),))
            holder.start()
            for _ in range(500):
                if srv.chat_requests:
                    break
                time.sleep(0.01)
            waiter = threading.Thread(target=lambda: results.extend(
                client.complete_many([ChatRequest.user("a"), ChatRequest.user("b")], stop_event=stop)))
            waiter.start()
            time.sleep(0.3)  # "a" was admitted before the stop and now waits for the slot
            stop.set()
            holder.join(10), waiter.join(10)
        sent = [q.json["messages"][-1]["content"] for q in srv.chat_requests]
    assert sent == ["hold"] and [r.error for r in results] == [STOPPED, STOPPED]


def test_a_lane_counts_its_answered_requests_back_one_each():
    def answer(body):
        kind, _, i = body["messages"][-1]["content"].partition(" ")
        slow = kind in ("p", "b") or (kind == "a" and int(i) % 2 == 0 and int(i) > 0)
        return Answer(kind, delay=2.0 if slow else 0.0)

    def sent(kind: str) -> list:
        return [q for q in srv.chat_requests if q.json["messages"][-1]["content"].startswith(kind + " ")]

    def spread(kind: str) -> float:
        return max(q.received_at for q in sent(kind)) - min(q.received_at for q in sent(kind))

    with FakeOpenAI(answer) as srv:
        with LLMClient(settings_for(srv, fast_http=False, concurrency=64)) as client:  # two lanes of 36 connections
            for i in range(40):  # one at a time: lane 0 each time, and back to an idle lane
                assert client.complete(ChatRequest.user(f"single {i}")).ok
            assert all(r.ok for r in client.complete_many([ChatRequest.user(f"p {i}") for i in range(64)]))
            # from another thread: on lane 0 one quick request and 31 slow ones, on lane 1 32 quick ones ...
            batch = [ChatRequest.user(f"a {i}") for i in range(64)]
            other = threading.Thread(target=client.complete_many, args=(batch,))
            other.start()
            for _ in range(500):
                if sum(q.answered_at is not None for q in sent("a")) >= 33:
                    break
                time.sleep(0.01)
            # ... and once the quick ones are back, 32 more slow ones: they all fit on lane 1
            assert all(r.ok for r in client.complete_many([ChatRequest.user(f"b {i}") for i in range(32)]))
            other.join(10)
    # counted back by 2, lane 0 reads as 40 below lane 1 after the singles and takes 52 of the 64 at once;
    # set to 1, lane 0 reads as 1 with 31 in flight and takes half of the 32: either way some wait two seconds
    # for a connection
    assert spread("p") < 1.5 and spread("b") < 1.5


def test_the_sdk_transport_follows_a_redirect_and_hangs_up_on_close():
    with FakeOpenAI() as srv:
        moved = RawServer(b"HTTP/1.1 307 Temporary Redirect\r\nlocation: %s/chat/completions\r\n"
                          b"content-length: 0\r\n\r\n" % srv.base_url.encode())
        try:
            with LLMClient(settings_for(base_urls=(moved.url,), fast_http=False)) as client:
                r = client.complete(ChatRequest.user("q"))
                assert not moved.hung_up.is_set()  # keep-alive ...
            assert moved.hung_up.wait(3)  # ... until close() closes the SDK's HTTP client too
        finally:
            moved.close()
        assert r.content == "echo: q" and len(srv.chat_requests) == 1


def test_an_endpoint_behind_a_proxy_is_reached_through_it(monkeypatch):
    proxy = RawServer(http_response("200 OK", completion_bytes(content="via the proxy")))
    try:
        for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", proxy.url.rsplit("/", 1)[0])
        with LLMClient(settings_for(base_urls=("http://127.0.0.1:9/v1",), max_retries=0)) as client:
            r = client.complete(ChatRequest.user("q"))  # port 9 is closed: only the proxy can answer
    finally:
        proxy.close()
    assert r.content == "via the proxy"

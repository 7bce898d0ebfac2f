"""Exact values of the LLM package's small rules, pinned one by one (mutation testing found
them loose): hints, mode notes, settings coercion, thinking tags, parser messages, scrubbed logs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from linkqa_core.errors import ConfigError
from linkqa_core.llm.failures import error_line, hint
from linkqa_core.llm.modes import describe, schema_note, shape
from linkqa_core.llm.ratelimit import retry_after
from linkqa_core.llm.replies import clean_text, loads_lenient, split_reasoning, strip_think
from linkqa_core.llm.settings import LLMSettings, gather_settings, load_settings, read_secrets_file
from linkqa_core.tasks import ReplyError

# -- hints and error lines -------------------------------------------------------------------------------


@pytest.mark.parametrize("status, message, expected", [
    (401, "", "check the API key (OPENAI_API_KEY)"),
    (403, "", "the key has no access to this model or endpoint"),
    (404, "", "model 'm' or the path is unknown there; check LINKQA_MODEL and OPENAI_BASE_URL"),
    (400, "Model Not Exist", "model 'm' or the path is unknown there; check LINKQA_MODEL and OPENAI_BASE_URL"),
    (400, None, "the endpoint rejected the request as malformed"),
    (413, "", "the request is too large for the endpoint"),
    (400, "This model's maximum CONTEXT length is 10 tokens", "the prompt is too long for the model's context"),
    (400, "prompt TOO LONG", "the prompt is too long for the model's context"),
    (400, "Maximum 4096 Tokens", "the prompt is too long for the model's context"),
    (400, "bad field", "the endpoint rejected the request as malformed"),
    (422, "", "the endpoint could not process the request"),
    (500, "", "the endpoint refused the request"),
    (None, "", "the endpoint refused the request"),
])
def test_every_hint_word_for_word(status, message, expected):
    assert hint(status, message, "m") == expected


def test_error_details_that_are_not_text_are_shown_as_json():
    assert error_line(422, {"detail": {"où": "là", "n": {1, 2} and 3}}, "") == '{"où": "là", "n": 3}'
    assert error_line(422, {"detail": [{"loc": [], "msg": "plain"}]}, "") == "plain"
    assert error_line(422, {"detail": None, "message": ""}, "") == "HTTP 422"

    class Odd:
        def __str__(self) -> str:
            return "odd value"

    assert error_line(400, {"detail": {"v": Odd()}}, "") == '{"v": "odd value"}'


# -- structured-output modes -----------------------------------------------------------------------------


def test_mode_descriptions_and_schema_notes_word_for_word():
    assert describe("json_schema") == "JSON schema (response_format json_schema)"
    assert describe("prompt") == "schema in the prompt only, reply read leniently (no response_format)"
    assert describe("xml") == "xml"
    assert schema_note(None) == "Reply with JSON only (no prose, no code fences)."
    assert schema_note({"b": "é", "a": [1]}) == ('Reply with JSON only (no prose, no code fences), matching this '
                                                  'JSON schema:\n{"a":[1],"b":"é"}')


def _rf(schema=None):
    return {"type": "json_schema", "json_schema": {"name": "n", "schema": schema or {"type": "object"}}}


def test_notes_go_to_the_last_user_message_in_its_own_shape():
    parts = {"model": "m", "response_format": _rf(), "messages": [
        {"role": "user", "content": "first"},
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {}}]}]}
    out = shape(parts, "prompt")["messages"]
    assert out[0] == {"role": "user", "content": "first"}
    assert out[1]["content"][-1] == {"type": "text", "text": schema_note({"type": "object"})}
    empty = {"model": "m", "response_format": _rf(), "messages": [{"role": "user", "content": None}]}
    assert shape(empty, "prompt")["messages"][0]["content"] == "\n\n" + schema_note({"type": "object"})
    none = {"model": "m", "response_format": _rf(), "messages": []}
    assert shape(none, "json_object")["messages"] == [{"role": "user", "content": schema_note({"type": "object"})}]


def test_the_word_json_is_looked_for_in_every_part_of_every_message():
    for messages in ([{"role": "system", "content": "Answer in json."}, {"role": "user", "content": "x"}],
                     [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "JSON"}]}]):
        body = {"model": "m", "response_format": _rf(), "messages": messages}
        assert shape(body, "json_object_schema")["messages"] == messages  # already says it: nothing added
    plain = {"model": "m", "response_format": _rf(),
             "messages": [{"role": "user", "content": [{"type": "text", "text": "js"}, {"type": "text", "text": "on"}]}]}
    assert shape(plain, "json_object_schema")["messages"][0]["content"][-1]["text"] == "Reply in JSON."


# -- settings ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [("0", False), ("false", False), ("FALSE", False), ("no", False),
                                         (" Off ", False), ("", None), ("1", True), ("yes", True)])
def test_switches_read_from_text(text, value):
    got = gather_settings(env={"LINKQA_FAST_HTTP": text}, secrets={})[0].get("fast_http")
    assert got is value


def test_values_are_coerced_by_kind():
    values, _ = gather_settings(env={}, secrets={}, config={"fast_http": 0, "concurrency": 3.0, "max_tokens": "2_048",
                                                            "model": "  m  ", "base_urls": ["http://a/v1"]})
    assert values == {"fast_http": False, "concurrency": 3, "max_tokens": 2048, "model": "m",
                      "base_urls": ["http://a/v1"]}
    assert gather_settings(env={}, secrets={}, config={"base_urls": 12})[0]["base_urls"] == "12"
    assert gather_settings(env={}, secrets={}, flags={"fast_http": 1})[0]["fast_http"] is True
    with pytest.raises(ConfigError, match=r"'rpm' \(command line\) must be a whole number, got True"):
        gather_settings(env={}, secrets={}, flags={"rpm": True})
    with pytest.raises(ConfigError, match=r"unknown LLM setting 'speed' \(command line\); known: api_key, "
                                          r"backoff_base_s, backoff_max_s, base_urls, budget_tokens, "):
        gather_settings(env={}, secrets={}, flags={"speed": 2})


def test_the_openai_table_of_the_secrets_file_is_read_too():
    secrets = {"openai": {"api_key": "sk-from-openai-table", "model": "o"}, "llm": {"model": "l"},
               "ignored": {"model": "x"}}
    values, origin = gather_settings(env={}, secrets=secrets)
    assert values == {"api_key": "sk-from-openai-table", "model": "l"} and origin["model"] == "secrets.toml"
    assert gather_settings(env={}, secrets={"llm": "not a table", "LINKQA_MODEL": "t"})[0] == {"model": "t"}


def test_an_empty_value_after_a_set_one_does_not_stop_the_rest(monkeypatch):
    values, _ = gather_settings(env={"LINKQA_MODEL": "", "OPENAI_BASE_URL": "http://h/v1", "LINKQA_RPM": "5"},
                                secrets={})
    assert values == {"base_urls": "http://h/v1", "rpm": 5}


def test_from_env_reads_the_environment_but_never_the_secrets_file(tmp_path, monkeypatch):
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('LINKQA_MODEL = "from-file"\nLINKQA_RPM = 7\n')
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LINKQA_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LINKQA_CONCURRENCY", "3")
    assert read_secrets_file() == {"LINKQA_MODEL": "from-file", "LINKQA_RPM": 7}
    s = LLMSettings.from_env()
    assert (s.model, s.rpm, s.concurrency) == ("", None, 3)
    assert load_settings().model == "from-file"  # the one loader reads it by default


def test_a_secrets_file_in_utf8_is_read_as_such(tmp_path):
    file = tmp_path / "s.toml"
    file.write_bytes('LINKQA_MODEL = "modèle"\n'.encode("utf-8"))
    assert read_secrets_file(file) == {"LINKQA_MODEL": "modèle"}


def test_load_settings_names_the_setting_that_cannot_work():
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, secrets={}, config={"max_retries": -1})
    assert str(info.value) == "max_retries must be 0 or more, got -1 (max_retries, from the pipeline config)"
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, secrets={}, flags={"budget_usd": 1.0})  # no price: not tied to one source
    assert str(info.value) == "budget_usd needs price_in_per_mtok and price_out_per_mtok (budget_usd, from the command line)"
    with pytest.raises(ConfigError, match=r"is not a usable URL \(malformed\)"):
        LLMSettings(base_urls="http://[::1/v1")


def test_settings_repr_lists_every_setting_but_the_key():
    text = repr(LLMSettings(base_urls="http://h/v1", api_key="sk-secret-value", model="m"))
    assert text.startswith("LLMSettings(base_urls=('http://h/v1',), model='m', concurrency=16, rpm=None, ")
    assert text.endswith("structured_output='auto', outage_after=8)") and "sk-secret" not in text
    assert ", " in text and "XX" not in text


# -- thinking and JSON in replies -----------------------------------------------------------------------


@pytest.mark.parametrize("content, expected", [
    ("</think>Four.", ("Four.", None)),
    ("a</think>b</think>c", ("b</think>c", "a")),
    ("Text <think>aside</think> more", ("Text <think>aside</think> more", None)),
    ('{"x": "</think>"}', ('{"x": "</think>"}', None)),
    ("<think>one</think><think>two", ("", "one\n\ntwo")),
    ("<think></think>  answer  ", ("answer", None)),
    ("no tags  ", ("no tags  ", None)),
])
def test_only_leading_thinking_is_thinking(content, expected):
    assert split_reasoning(content) == expected


def test_strip_think_keeps_the_answer_only():
    assert strip_think("<think>x</think>\n{\"a\": 1}") == '\n{"a": 1}'
    assert strip_think('{"a": "<think>x</think>"}') == '{"a": "<think>x</think>"}'


def test_parser_messages_word_for_word():
    with pytest.raises(ReplyError) as info:
        loads_lenient('{"a": 1')
    assert str(info.value) == "not JSON (Expecting ',' delimiter at line 1 column 8)"
    with pytest.raises(ReplyError) as info:
        loads_lenient('{"n": ' + "9" * 5000 + "}")
    assert str(info.value) == "not JSON (Exceeds the limit (4300 digits) for integer string conversion)"
    for deep in ("[" * 100_000 + "]" * 100_000, "x " + "[" * 100_000 + "]" * 100_000):
        with pytest.raises(ReplyError) as info:
            loads_lenient(deep)
        assert str(info.value) == "the JSON is nested too deeply"


def test_escaped_text_that_cannot_be_stored_is_cleaned_and_only_then():
    assert loads_lenient('{"q": "a\\ud800b\\u0000c", "k": ["\\udfff"]}') == {"q": "a\ufffdbc", "k": ["\ufffd"]}
    assert loads_lenient('Here: {"q": "\\ud800"} ok') == {"q": "\ufffd"}
    raw = {"q": "plain \\u00e9"}
    assert loads_lenient(json.dumps(raw)) == raw
    assert loads_lenient('["\\ud83d\\ude00"]') == ["\U0001F600"]  # a proper pair is one character


def test_the_scan_takes_the_longest_json_and_the_first_of_equals():
    assert loads_lenient('see {this} then {"x": 1} end') == {"x": 1}
    assert loads_lenient('[1] and {"a": [1, 2, 3]} end') == {"a": [1, 2, 3]}
    assert loads_lenient("x [1] [2]") == [1]
    assert loads_lenient("x {} y") == {}


def test_clean_text_keeps_good_text_as_it_is():
    good = "é and 😀 and \t tabs"
    assert clean_text(good) is good
    assert clean_text(None) == "" and clean_text(12) == "12"


# -- Retry-After headers as servers send them --------------------------------------------------------------


def test_retry_after_header_names_in_any_case():
    assert retry_after({"RETRY-AFTER": "4"}) == 4.0
    assert retry_after({"Retry-After-Ms": "1500"}) == 1.5
    assert retry_after({"other": "1"}) is None


# -- the HTTP libraries' logs --------------------------------------------------------------------------------


def test_library_log_records_are_scrubbed_not_dropped(caplog):
    from linkqa_core.llm.scrub import Scrubber, guard_logs

    guard_logs(Scrubber(["library-secret-1234"]))
    caplog.set_level(logging.INFO, logger="httpx2")
    logging.getLogger("httpx2").info("HTTP Request: POST %s %s", "http://h/v1?key=library-secret-1234", "200 OK")
    logging.getLogger("httpx2").info("nothing secret here %d", 5)
    assert caplog.messages == ["HTTP Request: POST http://h/v1?key=*** 200 OK", "nothing secret here 5"]
    assert "library-secret-1234" not in caplog.text


# -- the call log's rows ---------------------------------------------------------------------------------------


def _call_rows(store) -> list[dict]:
    return [dict(r) for r in store.query("SELECT * FROM llm_calls ORDER BY id")]


def test_a_call_log_row_names_the_model_that_answered_and_an_ok_row_has_no_error(store):
    from linkqa_core.llm.client import ChatRequest, LLMClient, LLMSettings
    from openai_server import Answer, FakeOpenAI

    # a hosted model answers with its dated name: the log keeps what answered, not what was asked
    with FakeOpenAI(lambda body: Answer("42", model="fake-model-2024-08-06")) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-" + "pins-" + "0123456789", model="fake-model")
        with LLMClient(settings, store) as client:
            assert client.complete(ChatRequest.user("q")).model == "fake-model-2024-08-06"
    [row] = _call_rows(store)
    assert (row["status"], row["model"]) == ("ok", "fake-model-2024-08-06")
    assert row["error"] is None  # NULL, not "": `WHERE error IS NULL` finds the calls that went well


def test_an_internal_error_is_logged_under_the_model_asked(store, monkeypatch):
    from linkqa_core.llm import client as client_module
    from linkqa_core.llm.client import ChatRequest, LLMClient, LLMSettings
    from openai_server import FakeOpenAI

    def broken(data):  # stands in for a bug in the client: the item must come back, and be logged
        raise RuntimeError("a bug")

    monkeypatch.setattr(client_module, "read_completion", broken)
    req = ChatRequest.user("q")
    with FakeOpenAI() as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-" + "pins-" + "0123456789", model="fake-model")
        with LLMClient(settings, store) as client:
            r = client.complete(req)
    assert r.error == "internal error: RuntimeError" and r.model is None  # the result itself names no model
    assert r.key == client_module.cache_key(req, settings) and r.attempts == 1
    [row] = _call_rows(store)
    assert (row["status"], row["model"], row["error"]) == ("error", "fake-model", "internal error: RuntimeError")
    assert (row["key"], row["attempts"]) == (r.key, 1)


# -- how a client sets up its HTTP side (looks inside: these settings change speed and limits, not answers) ----


def _client_settings(srv, **kw):
    from linkqa_core.llm.client import LLMSettings

    values = dict(base_urls=(srv.base_url,), api_key="sk-" + "pins-" + "0123456789", model="fake-model")
    values.update(kw)
    return LLMSettings(**values)


def test_rpm_and_tpm_are_per_minute_with_one_second_of_each_banked():
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI

    with FakeOpenAI() as srv:
        with LLMClient(_client_settings(srv, rpm=600, tpm=60_000)) as client:
            assert client.complete(ChatRequest.user("q")).ok
            rpm, tpm = client._rpm, client._tpm  # the buckets: 1.6 % off (a minute of 61 s) is too little to time
    assert (rpm.rate, rpm.capacity, tpm.rate, tpm.capacity) == (10.0, 10.0, 1000.0, 1000.0)


@pytest.mark.parametrize("fast_http", [True, False])
@pytest.mark.parametrize("timeout_s, connect_s", [(5.0, 5.0), (30.0, 10.0)])
def test_the_sdk_reads_for_the_whole_time_out_and_connects_for_at_most_ten_seconds(fast_http, timeout_s, connect_s):
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI

    with FakeOpenAI() as srv:
        with LLMClient(_client_settings(srv, fast_http=fast_http, timeout_s=timeout_s)) as client:
            assert client.complete(ChatRequest.user("q")).ok
            timeout = client._endpoints[0].lanes[0].timeout  # the SDK client's own (public) setting
        [sent] = srv.chat_requests
    assert (timeout.read, timeout.connect) == (timeout_s, connect_s)
    assert sent.headers["x-stainless-read-timeout"] == str(timeout_s)  # the SDK tells the server its read limit


@pytest.mark.parametrize("fast_http, concurrency, lanes", [(True, 64, 1), (False, 8, 1), (False, 33, 2),
                                                         (False, 64, 2)])
def test_plain_http_has_one_fast_lane_and_the_sdk_transport_a_lane_per_32_requests(fast_http, concurrency, lanes):
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI

    with FakeOpenAI() as srv:
        with LLMClient(_client_settings(srv, fast_http=fast_http, concurrency=concurrency)) as client:
            assert client.complete(ChatRequest.user("q")).ok
            assert len(client._endpoints[0].lanes) == lanes


def test_the_sdk_transport_keeps_every_connection_of_a_full_batch_alive():
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI

    with FakeOpenAI(latency=1.0) as srv:
        with LLMClient(_client_settings(srv, fast_http=False, concurrency=64)) as client:  # two lanes of 32
            assert all(r.ok for r in client.complete_many([ChatRequest.user(f"q{i}") for i in range(64)]))
            time.sleep(0.3)
            kept = len(srv._connections)  # a look inside the test server: the connections open now
    assert srv.max_in_flight == 64 and kept == 64  # httpx's default keeps 20 a pool: 40, and 24 new ones next time


def test_the_loop_thread_is_a_daemon_named_linkqa_llm():
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI

    with FakeOpenAI() as srv:
        with LLMClient(_client_settings(srv)) as client:
            assert client.complete(ChatRequest.user("q")).ok
            thread = client._thread  # the client's loop thread
    # named for a stack dump; a daemon, so a client never closed cannot keep the interpreter from exiting
    assert thread.name == "linkqa-llm" and thread.daemon


def test_a_client_whose_http_clients_cannot_start_leaves_no_thread_behind(tmp_path, monkeypatch):
    import threading

    from linkqa_core.llm.client import ChatRequest, LLMClient, LLMSettings

    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))  # httpx reads it for https endpoints
    before = set(threading.enumerate())
    client = LLMClient(LLMSettings(base_urls=("https://127.0.0.1:9/v1",), model="m"))
    with pytest.raises(ConfigError, match=r"^cannot set up HTTPS for the LLM endpoints: .*SSL_CERT_FILE="):
        client.complete(ChatRequest.user("q"))
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []


def test_a_usd_budget_judges_the_requests_in_flight_by_the_average_cost_so_far():
    from linkqa_core.llm.client import BUDGET_REACHED, ChatRequest, LLMClient
    from openai_server import Answer, FakeOpenAI

    priced = dict(price_in_per_mtok=1e5, price_out_per_mtok=1e5)  # 10 tokens cost 1.00
    with FakeOpenAI(lambda body: Answer("x", prompt_tokens=5, completion_tokens=5), latency=0.2) as srv:
        with LLMClient(_client_settings(srv, concurrency=3, budget_usd=2.0, **priced)) as client:
            results = client.complete_many([ChatRequest.user(f"q{i}") for i in range(3)])
            spent = client.usage
        sent = len(srv.chat_requests)
    # after one answer (1.00), one more in flight would make 2.00: the third waits for it and finds the budget spent
    assert [r.error for r in results].count(BUDGET_REACHED) == 1 and sent == 2 and spent.usd == pytest.approx(2.0)


# -- twins: identical requests in one batch ------------------------------------------------------------------


def test_twins_of_an_answered_request_are_served_from_it_and_logged_as_cached(store):
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI

    with FakeOpenAI() as srv:
        with LLMClient(_client_settings(srv), store) as client:
            results = client.complete_many([ChatRequest.user("same")] * 3)
            cached = client.usage.cached
        sent = len(srv.chat_requests)
    assert sent == 1 and [r.cached for r in results] == [False, True, True] and cached == 2
    assert [row["status"] for row in _call_rows(store)] == ["ok", "cached", "cached"]


def test_a_request_that_skips_the_cache_serves_no_twins(store):
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI

    reqs = [ChatRequest.user("same"), ChatRequest.user("same", cache=False), ChatRequest.user("same")]
    with FakeOpenAI() as srv:
        with LLMClient(_client_settings(srv), store) as client:
            results = client.complete_many(reqs)
            cached = client.usage.cached
        sent = len(srv.chat_requests)
    # the third is the first one's twin only; the second is sent on its own and answers nobody else
    assert sent == 2 and [r.cached for r in results] == [False, False, True] and cached == 1
    assert sorted(row["status"] for row in _call_rows(store)) == ["cached", "ok", "ok"]


def test_twins_of_a_request_that_stops_the_batch_are_not_reported_either():
    from linkqa_core.errors import LLMError
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI, HTTPError

    reported = []
    with FakeOpenAI(lambda body: HTTPError(401, "Incorrect API key provided")) as srv:
        with LLMClient(_client_settings(srv)) as client:
            with pytest.raises(LLMError):
                client.complete_many([ChatRequest.user("same")] * 3, on_result=lambda i, r: reported.append(i))
    assert reported == []


def test_after_a_request_stops_the_batch_no_retry_starts_either():
    from linkqa_core.errors import LLMError
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI, HTTPError

    def answer(body):
        text = body["messages"][-1]["content"]
        return HTTPError(401, "Incorrect API key provided", delay=0.2) if text == "first" else \
            HTTPError(503, retry_after=1.0)

    with FakeOpenAI(answer) as srv:
        with LLMClient(_client_settings(srv, concurrency=2, max_retries=3)) as client:
            with pytest.raises(LLMError):
                client.complete_many([ChatRequest.user("first"), ChatRequest.user("second")])
        sent = [q.json["messages"][-1]["content"] for q in srv.chat_requests]
    # "second" waits a second to retry; the 401 in the meantime stops it, and reporting the 401 does not undo that
    assert sorted(sent) == ["first", "second"]


def test_cache_hits_are_delivered_in_chunks_of_500_each_once(store):
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI

    reqs = [ChatRequest.user(f"q{i}") for i in range(501)]
    with FakeOpenAI() as srv:
        with LLMClient(_client_settings(srv, concurrency=64), store) as client:
            assert all(r.ok for r in client.complete_many(reqs))
            reported = []
            results = client.complete_many(reqs, on_result=lambda i, r: reported.append(i))
    assert all(r.cached for r in results) and sorted(reported) == list(range(501))
    assert store.scalar("SELECT count(*) FROM llm_calls WHERE status = 'cached'") == 501


# -- the calling thread's wait for results --------------------------------------------------------------------


def test_a_bug_in_the_loop_itself_fails_the_call_with_one_line(monkeypatch):
    from linkqa_core.errors import LLMError
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI

    def broken(self, result):  # stands in for a bug outside any one request: the batch's coroutine dies
        raise RuntimeError("a bug")

    monkeypatch.setattr(LLMClient, "_account", broken)
    with FakeOpenAI() as srv:
        with LLMClient(_client_settings(srv)) as client:
            with pytest.raises(LLMError) as info:
                client.complete_many([ChatRequest.user("q")])
    assert str(info.value) == "the LLM client failed: RuntimeError: a bug"


def test_results_are_reported_as_they_arrive_not_when_the_batch_ends(store):
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import Answer, FakeOpenAI

    reported = {}
    with FakeOpenAI(lambda body: Answer("x", delay=0.5 if body["messages"][-1]["content"] == "a" else 2.0)) as srv:
        with LLMClient(_client_settings(srv, concurrency=2), store) as client:
            t0 = time.monotonic()
            client.complete_many([ChatRequest.user("a"), ChatRequest.user("b")],
                                 on_result=lambda i, r: reported.setdefault(i, time.monotonic() - t0))
    # "a" is reported soon after its answer (a 20 ms pause lets more answers share one write), "b" at 2 s
    assert reported[0] < 1.2 and reported[1] >= 2.0


def test_a_call_returns_as_soon_as_its_last_result_is_in():
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import FakeOpenAI

    with FakeOpenAI() as srv:
        with LLMClient(_client_settings(srv)) as client:
            assert client.complete(ChatRequest.user("warm up")).ok
            t0 = time.monotonic()
            for i in range(10):
                assert client.complete_many([ChatRequest.user(f"q{i}"), ChatRequest.user(f"r{i}")])[1].ok
            elapsed = time.monotonic() - t0
    assert elapsed < 2.0  # counting results, not waiting for a quiet queue (0.25 s polls) after the last one


# -- the cache and the counts --------------------------------------------------------------------------------


def test_a_blank_cached_answer_is_not_served_and_hits_add_to_the_count(store):
    from linkqa_core.llm import ledger
    from linkqa_core.llm.client import ChatRequest, ChatResult, LLMClient
    from openai_server import FakeOpenAI

    blank, saved = ChatRequest.user("blank"), ChatRequest.user("saved")
    with FakeOpenAI() as srv:
        settings = _client_settings(srv)
        # an empty answer in the cache (older versions stored them): it is asked again, not served
        store.llm.record([], [(ledger.cache_key(blank, settings), ledger.cache_payload(ChatResult(content="")))])
        with LLMClient(settings, store) as client:
            assert client.complete(saved).ok
            first = client.complete(blank)
            for _ in range(2):
                assert client.complete(saved).cached
            cached = client.usage.cached
        sent = [q.json["messages"][-1]["content"] for q in srv.chat_requests]
    assert sent == ["saved", "blank"] and not first.cached and first.content == "echo: blank" and cached == 2


def test_when_writing_the_log_fails_the_requests_not_started_never_start(store, monkeypatch):
    import sqlite3

    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import Answer, FakeOpenAI

    def broken(calls, cache):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store.llm, "record", broken)
    with FakeOpenAI(lambda body: Answer("x", delay=0.2)) as srv:
        with LLMClient(_client_settings(srv, concurrency=1), store) as client:
            with pytest.raises(sqlite3.OperationalError):
                client.complete_many([ChatRequest.user(f"q{i}") for i in range(6)])
            time.sleep(1.5)  # the client is still open: a loop not told to stop would go on sending
            sent = len(srv.chat_requests)
    assert sent <= 2  # the first, and the second if it started before the first was written


def test_a_token_budget_judges_requests_in_flight_by_the_exact_average_so_far():
    from linkqa_core.llm.client import ChatRequest, LLMClient
    from openai_server import Answer, FakeOpenAI

    with FakeOpenAI(lambda body: Answer("x", prompt_tokens=5, completion_tokens=5), latency=0.3) as srv:
        with LLMClient(_client_settings(srv, concurrency=3, budget_tokens=21)) as client:
            assert all(r.ok for r in client.complete_many([ChatRequest.user(f"q{i}") for i in range(3)]))
        first, second, third = sorted(srv.chat_requests, key=lambda q: q.received_at)
    # after the first answer (10 tokens), 10 spent + 10 for the one in flight stays under 21: the third starts
    # beside the second; an average off by one token (11) would hold it back until the second is answered
    assert third.received_at < second.answered_at

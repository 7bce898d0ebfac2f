"""Structured output against the servers curators run: each settles on the strongest mode it takes.

Real HTTP to tests/openai_server.py with its real-server profiles; the client is linkqa_core's.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from linkqa_core.errors import LLMError
from linkqa_core.llm.client import ChatRequest, LLMClient, LLMSettings, test_connection
from linkqa_core.llm.modes import MODES, ModeState, next_mode, schema_of, shape, structured
from linkqa_core.llm.replies import loads_lenient
from linkqa_core.tasks import json_request
from openai_server import Answer, FakeOpenAI, HostedReasoning, HTTPError

SCHEMA = {"name": "city", "schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                     "required": ["city"]}}


def settings_for(srv: FakeOpenAI, **kw) -> LLMSettings:
    values = dict(base_urls=(srv.base_url,), api_key="sk-test-modes", model="fake-model", backoff_base_s=0.0,
                  backoff_max_s=0.01, max_retries=2)
    values.update(kw)
    return LLMSettings(**values)


def ask(text: str = "Name the capital of France.", **kw) -> ChatRequest:
    return json_request([{"role": "user", "content": text}], SCHEMA, stage="t", **kw)


def city(body) -> Answer:
    return Answer(json.dumps({"city": "Paris"}))


def formats(srv: FakeOpenAI) -> list:
    return [(r.json.get("response_format") or {}).get("type") for r in srv.chat_requests]


@pytest.mark.parametrize("profile, mode, refused", [
    ("strict", "json_schema", 0),
    ("vllm", "json_schema", 0),
    ("ollama", "json_schema", 0),
    ("prose", "json_schema", 0),
    ("llama_cpp", "json_object_schema", 1),  # 500 "Input should be 'text' or 'json_object'"
    ("hosted_reasoning", "json_object_schema", 1),  # 400 "This response_format type is unavailable now"
])
def test_each_server_settles_on_the_strongest_mode_it_accepts(profile, mode, refused, store):
    profile_obj = HostedReasoning(blank_every=0) if profile == "hosted_reasoning" else profile
    with FakeOpenAI(city, profile=profile_obj) as srv:
        url = srv.base_url
        with LLMClient(settings_for(srv), store) as client:
            results = client.complete_many([ask(f"Name city {i} as JSON.") for i in range(12)])
            assert client.modes() == {url: {"fake-model": mode}}
        statuses = [r.outcome for r in srv.chat_requests]
    assert all(r.ok and loads_lenient(r.content) == {"city": "Paris"} for r in results)
    assert len(statuses) == 12 + refused and statuses.count("200") == 12  # refused once, not once per request
    assert all(r.attempts == 1 for r in results)  # a refused mode is not charged to the item
    [row] = store.llm.modes()
    assert (row["endpoint"], row["mode"]) == (url, mode)
    if refused:
        assert "json_schema refused" in row["detail"]


def test_a_settled_mode_is_remembered_and_the_next_batch_starts_there(store):
    with FakeOpenAI(city, profile="llama_cpp") as srv:
        with LLMClient(settings_for(srv), store) as client:
            client.complete(ask())
        assert formats(srv) == ["json_schema", "json_object"]
        srv.reset()
        with LLMClient(settings_for(srv), store) as client:
            assert client.complete(ask("Another city, as JSON.")).ok
        assert [r.outcome for r in srv.chat_requests] == ["200"]
        assert srv.chat_requests[0].json["response_format"] == {"type": "json_object", "schema": SCHEMA["schema"]}


def test_a_second_endpoint_at_the_same_address_asks_in_the_mode_the_first_settled_on():
    # two accounts on one server (credentials in the URL, as behind some proxies): one address on display,
    # so the mode the first one settled on is the second one's starting point
    with FakeOpenAI(city) as srv:
        url = srv.base_url
        urls = tuple(url.replace("//", f"//user{i}:pw{i}@") for i in (1, 2))
        with LLMClient(settings_for(srv, base_urls=urls, concurrency=1)) as client:
            first = client.complete(ask("First city, as JSON."))
            second = client.complete(ask("Second city, as JSON."))  # the endpoint sent less: the second
            assert client.modes() == {url: {"fake-model": "json_schema"}}
    assert first.ok and second.ok and first.endpoint == second.endpoint == url
    assert formats(srv) == ["json_schema", "json_schema"]


def test_a_fresh_endpoint_finds_its_mode_with_one_request_at_a_time():
    with FakeOpenAI(city, profile="llama_cpp", latency=0.2) as srv:
        with LLMClient(settings_for(srv, concurrency=16)) as client:
            results = client.complete_many([ask(f"City {i}, in JSON?") for i in range(32)])
        refused = [r for r in srv.chat_requests if r.outcome == "500"]
    assert all(r.ok for r in results) and len(refused) == 1
    assert srv.max_in_flight >= 8  # and once settled, the batch runs concurrently again


def test_deepseek_like_json_mode_gets_the_word_json_and_its_blank_answers_are_asked_again():
    hosted = HostedReasoning(blank_every=3)
    with FakeOpenAI(city, profile=hosted) as srv:
        # one request at a time, so which answers are blank does not depend on timing: with
        # several in flight a retry can arrive as the server's third or sixth answer and be blank again
        with LLMClient(settings_for(srv, structured_output="json_object", concurrency=1)) as client:
            results = client.complete_many([ask(f"Which is capital number {i}?") for i in range(6)])
        bodies = [r.json for r in srv.chat_requests]
    assert all(r.ok and json.loads(r.content) == {"city": "Paris"} for r in results)
    assert all(r.reasoning for r in results)  # DeepSeek's reasoning_content is kept apart
    assert all("json" in b["messages"][-1]["content"].lower() for b in bodies)  # DeepSeek refuses otherwise
    assert all(b["response_format"] == {"type": "json_object"} for b in bodies)
    assert sum(r.attempts == 2 for r in results) == 2  # answers 3 and 6 of 8 were blank: each asked again once
    assert len(bodies) == 6 + 2
    assert all(SCHEMA["schema"]["required"][0] in b["messages"][-1]["content"] for b in bodies)  # the schema in the prompt


def test_blank_twice_is_that_requests_error_and_is_not_cached(store):
    with FakeOpenAI(city, profile=HostedReasoning(blank_every=1)) as srv:
        with LLMClient(settings_for(srv, structured_output="json_object"), store) as client:
            [r] = client.complete_many([ask()])
            again = client.complete_many([ask()])[0]
        assert len(srv.chat_requests) == 4
    assert r.error == "the model answered with blank content twice" and r.attempts == 2 and not r.transient
    assert r.prompt_tokens > 0 and r.completion_tokens > 0  # both blank answers were paid for
    assert not again.cached and store.scalar("SELECT count(*) FROM llm_cache") == 0


def test_prompt_mode_states_the_schema_and_sends_no_response_format():
    with FakeOpenAI(city, profile="prose") as srv:
        with LLMClient(settings_for(srv, structured_output="prompt")) as client:
            r = client.complete(ask())
        [body] = [q.json for q in srv.chat_requests]
    assert "response_format" not in body
    note = body["messages"][-1]["content"]
    assert note.startswith("Name the capital of France.") and json.dumps(SCHEMA["schema"], sort_keys=True,
                                                                       separators=(",", ":")) in note
    assert json.loads(r.content.split("```json", 1)[-1].split("```")[0]) == {"city": "Paris"}


def test_a_forced_mode_the_server_refuses_stops_the_batch_with_a_hint():
    with FakeOpenAI(city, profile="llama_cpp") as srv:
        with LLMClient(settings_for(srv, structured_output="json_schema", concurrency=1)) as client:
            with pytest.raises(LLMError, match="refuses structured_output=json_schema.*set structured_output to auto"):
                client.complete_many([ask(f"q{i} json") for i in range(5)])
        assert len(srv.chat_requests) == 1  # no step down, no retries: the batch stopped


def test_a_mode_refusal_is_not_a_5xx_to_retry_and_the_prompt_mode_is_the_floor():
    refusal = HTTPError(400, "response_format is not supported by this deployment")
    with FakeOpenAI(lambda body: refusal if "response_format" in body else city(body)) as srv:
        with LLMClient(settings_for(srv, max_retries=0)) as client:
            r = client.complete(ask())
            assert client.modes()[srv.base_url]["fake-model"] == "prompt"
    assert r.ok and r.attempts == 1
    assert formats(srv) == ["json_schema", "json_object", "json_object", None]


def test_unstructured_requests_never_carry_a_response_format():
    with FakeOpenAI(profile="llama_cpp") as srv:
        with LLMClient(settings_for(srv)) as client:
            assert client.complete(ChatRequest.user("just chat")).content == "echo: just chat"
        assert "response_format" not in srv.chat_requests[0].json


def test_connection_test_probes_and_stores_the_mode(store):
    with FakeOpenAI(city, profile="llama_cpp", models=("fake-model",)) as srv:
        ok, message = test_connection(settings_for(srv), store=store)
        assert ok and "structured output: JSON object with the schema" in message
        assert store.llm.mode(srv.base_url, "fake-model") == "json_object_schema"
        srv.reset()
        with LLMClient(settings_for(srv), store) as client:  # the batch starts in the probed mode
            client.complete(ask())
        assert [r.outcome for r in srv.chat_requests] == ["200"]
    with FakeOpenAI(city, profile="strict") as srv:
        ok, message = test_connection(settings_for(srv, structured_output="json_object"))
        assert ok and "JSON object, schema in the prompt" in message and "(forced)" in message


def test_connection_test_with_a_wrong_model_says_so(store):
    with FakeOpenAI(city, profile="hosted_reasoning", check_model=True, models=("deepseek-reasoner",)) as srv:
        ok, message = test_connection(settings_for(srv, model="deepseek-r9"), store=store)
    assert not ok and "Model Not Exist" in message and "check LINKQA_MODEL" in message
    assert store.llm.modes() == []


# -- the shapes themselves --------------------------------------------------------------------------


def _body(content="Give me a city", rf=None):
    body = {"model": "m", "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": content}]}
    if rf is not None:
        body["response_format"] = rf
    return body


def test_shape_of_each_mode():
    rf = {"type": "json_schema", "json_schema": SCHEMA}
    body = _body(rf=rf)
    assert shape(body, "json_schema") == body
    assert shape(body, "json_object_schema")["response_format"] == {"type": "json_object", "schema": SCHEMA["schema"]}
    assert shape(body, "json_object_schema")["messages"][-1]["content"].endswith("Reply in JSON.")
    with_word = _body("Give me a city as JSON", rf=rf)
    assert shape(with_word, "json_object_schema")["messages"] == with_word["messages"]
    plain = shape(body, "json_object")
    assert plain["response_format"] == {"type": "json_object"} and '"city"' in plain["messages"][-1]["content"]
    assert plain["messages"][0] == {"role": "system", "content": "sys"}  # the note goes to the last user message
    prompt = shape(body, "prompt")
    assert "response_format" not in prompt and "JSON schema" in prompt["messages"][-1]["content"]
    assert body["messages"][-1]["content"] == "Give me a city"  # the logical body is untouched
    parts = _body(rf=rf)
    parts["messages"][-1]["content"] = [{"type": "text", "text": "Give me a city"}]
    assert shape(parts, "prompt")["messages"][-1]["content"][-1]["text"].startswith("Reply with JSON only")
    no_user = {"model": "m", "messages": [{"role": "system", "content": "s"}], "response_format": rf}
    assert shape(no_user, "prompt")["messages"][-1]["role"] == "user"
    with pytest.raises(ValueError, match="unknown structured-output mode"):
        shape(body, "yaml")


def test_plain_json_requests_and_other_formats():
    plain = _body(rf={"type": "json_object"})
    assert schema_of(plain) is None and structured(plain)
    assert shape(plain, "json_schema")["response_format"] == {"type": "json_object"}
    assert shape(plain, "prompt")["messages"][-1]["content"].endswith("Reply with JSON only (no prose, no code fences).")
    text = _body(rf={"type": "text"})
    assert not structured(text) and shape(text, "prompt") == text
    assert schema_of(_body(rf={"type": "json_object", "schema": {"type": "object"}})) == {"type": "object"}
    assert schema_of(_body()) is None and schema_of(_body(rf={"type": "json_schema", "json_schema": "x"})) is None


def test_mode_state_steps_down_once_per_mode_and_never_past_prompt():
    assert [next_mode(m) for m in MODES] == ["json_object_schema", "json_object", "prompt", None]
    state = ModeState()
    assert state.step_down("json_schema", "no") and state.mode == "json_object_schema" and not state.settled
    assert not state.step_down("json_schema", "late refusal of the old mode")  # already moved
    assert state.settle() and not state.settle()
    assert state.step_down("json_object_schema", "no") and state.step_down("json_object", "no")
    assert state.mode == "prompt" and not state.step_down("prompt", "no")
    assert "json_object refused: no" == state.detail
    forced = ModeState(mode="json_schema", forced=True, settled=True)
    assert not forced.step_down("json_schema", "no") and forced.mode == "json_schema"


def test_cache_key_does_not_depend_on_the_mode(store):
    with FakeOpenAI(city, profile="llama_cpp") as srv:
        with LLMClient(settings_for(srv), store) as client:
            client.complete(ask())
        with LLMClient(settings_for(srv, structured_output="prompt"), store) as client:
            assert client.complete(ask()).cached
        assert len([r for r in srv.chat_requests if r.outcome == "200"]) == 1


def test_settings_reject_an_unknown_mode():
    with pytest.raises(Exception, match="structured_output must be one of auto, json_schema"):
        LLMSettings(structured_output="xml")
    assert replace(LLMSettings(), structured_output=" Prompt ").structured_output == "prompt"


# -- the connection test, message by message --------------------------------------------------------


def test_connection_messages_for_a_served_an_unlisted_and_an_unlistable_model():
    with FakeOpenAI(city, models=("fake-model", "other")) as srv:
        ok, message = test_connection(settings_for(srv))
        url = srv.base_url
    assert ok and message == (f"{url}: connected; model 'fake-model' is served; structured output: JSON schema "
                              "(response_format json_schema).")
    with FakeOpenAI(city, models=("alias-1", "alias-2")) as srv:
        ok, message = test_connection(settings_for(srv))
    assert ok and "'fake-model' is not among the 2 listed models (some servers list aliases)" in message
    with FakeOpenAI(city, models=()) as srv:
        ok, message = test_connection(settings_for(srv))
    assert ok and "model 'fake-model' is served" in message  # an empty list says nothing against it


def test_connection_failures_say_why_in_one_message_per_endpoint():
    with FakeOpenAI(api_key="sk-" + "fake-right-key") as wrong_key, FakeOpenAI(city) as fine:
        ok, message = test_connection(settings_for(wrong_key, base_urls=(wrong_key.base_url, fine.base_url)))
        wrong_url, fine_url = wrong_key.base_url, fine.base_url
    assert not ok
    first, second = message.split(f" {fine_url}: ")
    assert first.startswith(f"{wrong_url}: HTTP 401: Incorrect API key provided: [redacted]") and \
        first.endswith(" -- check the API key")
    assert second.startswith("connected; model 'fake-model' is served")
    with FakeOpenAI(city) as gone:
        url = gone.base_url
        settings = settings_for(gone)
    ok, message = test_connection(settings, timeout_s=2)
    assert not ok and message.startswith(f"{url}: cannot connect (") and message.endswith(").")
    with FakeOpenAI(lambda body: Answer("late", delay=3)) as slow:
        slow.models = ()
        ok, message = test_connection(settings_for(slow), timeout_s=0.5)
    assert not ok and "a request failed" in message and "timed out after 0.5 s" in message
    assert test_connection(LLMSettings(base_urls="http://127.0.0.1:9/v1")) == (
        False, "No model configured: set LINKQA_MODEL.")


def test_probe_mode_reports_and_stores_only_what_it_learned(store):
    from linkqa_core.llm.probe import probe_mode

    with FakeOpenAI(city, profile="hosted_reasoning") as srv:
        assert probe_mode(settings_for(srv), srv.base_url, store=store) == ("json_object_schema", "answered")
        assert store.llm.mode(srv.base_url, "fake-model") == "json_object_schema"
        assert store.llm.modes()[0]["detail"] == "connection test"
    with FakeOpenAI(lambda body: HTTPError(401, "Invalid API key"), profile="strict") as srv:
        mode, why = probe_mode(settings_for(srv), srv.base_url)
    assert mode is None and "HTTP 401" in why and "check the API key" in why
    with FakeOpenAI(lambda body: HTTPError(503)) as srv:
        mode, why = probe_mode(settings_for(srv), srv.base_url)
    assert mode is None and why.startswith("gave up after 1 attempts")
    with FakeOpenAI(lambda body: Answer("   ", as_is=True)) as srv:  # blank twice: the mode was still accepted
        mode, why = probe_mode(settings_for(srv), srv.base_url, store=store)
        assert (mode, why) == ("json_schema", "the model answered with blank content twice")

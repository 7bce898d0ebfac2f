"""The fake OpenAI server itself: each profile refuses and accepts what its real server
does, and each wire behaviour really is on the wire.

Talks to the server with raw sockets, ``http.client`` and the ``openai`` SDK only --
never through linkqa_core's client, so these tests say what the server does whatever
the client makes of it.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import re
import socket
import time
from dataclasses import dataclass, field

import openai
import pytest

from openai_server import (ERROR_STYLES, Answer, FakeOpenAI, HostedReasoning, HTTPError, Prose, RateLimit, Split,
                           Wire)

SCHEMA_RF = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
JSON_RF = {"type": "json_object"}


def sdk(srv: FakeOpenAI, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key=key, max_retries=0, timeout=10)


def ask(srv: FakeOpenAI, text: str = "Reply in JSON.", *, key: str = "sk-test", model: str = "fake-model", **kw):
    """One chat completion through the SDK: the completion, or the APIStatusError raised."""
    try:
        return sdk(srv, key).chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kw)
    except openai.APIStatusError as err:
        return err


# -- raw HTTP ----------------------------------------------------------------------------------


@dataclass
class Raw:
    """One response as it came off the socket."""

    data: bytes
    recvs: list[bytes]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    head: bytes = b""
    body: bytes = b""
    chunk_sizes: list[int] = field(default_factory=list)
    complete: bool = False
    closed: bool = False


def _parse(data: bytes) -> Raw:
    raw = Raw(data, [])
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return raw
    raw.head = data[: end + 4]
    lines = raw.head.decode("latin-1").split("\r\n")
    raw.status = int(lines[0].split(" ")[1])
    raw.headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    rest = data[end + 4:]
    if raw.headers.get("transfer-encoding") == "chunked":
        pos = 0
        while True:
            eol = rest.find(b"\r\n", pos)
            if eol < 0:
                return raw
            size = int(rest[pos:eol], 16)
            raw.chunk_sizes.append(size)
            if size == 0:
                raw.complete = rest.endswith(b"\r\n\r\n", eol)
                return raw
            if len(rest) < eol + 2 + size + 2:
                return raw
            raw.body += rest[eol + 2: eol + 2 + size]
            pos = eol + 2 + size + 2
    length = int(raw.headers.get("content-length", -1))
    raw.body = rest[:length]
    raw.complete = len(rest) >= length >= 0
    return raw


def raw_post(srv: FakeOpenAI, body: dict, *, sock: socket.socket | None = None, wait_close: float = 0.0) -> Raw:
    """POST a chat completion over a plain socket and read the response as it arrives."""
    payload = json.dumps(body).encode()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload
    own = sock is None
    sock = sock or socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        sock.sendall(request)
        data, recvs = b"", []
        while True:
            got = sock.recv(65536)
            if not got:
                break
            recvs.append(got)
            data += got
            if _parse(data).complete:
                break
        raw = _parse(data)
        raw.recvs = recvs
        if wait_close:
            sock.settimeout(wait_close)
            try:
                raw.closed = sock.recv(1) == b""
            except socket.timeout:
                raw.closed = False
        return raw
    finally:
        if own:
            sock.close()


def chat(text: str = "hi", **extra) -> dict:
    return {"model": "fake-model", "messages": [{"role": "user", "content": text}], **extra}


def _models(srv: FakeOpenAI, key: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
    return json.loads(conn.getresponse().read())


# -- profiles -----------------------------------------------------------------------------------


def test_strict_accepts_every_openai_response_format_and_refuses_an_unknown_type():
    with FakeOpenAI() as srv:
        for rf in (SCHEMA_RF, JSON_RF, {"type": "text"}):
            assert ask(srv, response_format=rf).choices[0].message.content == "echo: Reply in JSON."
        err = ask(srv, response_format={"type": "yaml"})
    assert err.status_code == 400
    assert err.body == {"message": "Invalid value: 'yaml'. Supported values are: 'json_object', 'json_schema', and "
                                   "'text'.", "type": "invalid_request_error", "param": "response_format.type",
                        "code": "invalid_value"}


def test_llama_cpp_answers_json_schema_with_a_500_carrying_fastapis_validation_error():
    with FakeOpenAI(profile="llama_cpp") as srv:
        err = ask(srv, response_format=SCHEMA_RF)
    assert err.status_code == 500
    assert err.response.content.startswith(b'{"error":{"message":"1 validation error:\\n  {')  # compact JSON
    inner = err.response.json()["error"]
    assert set(inner) == {"message", "type", "param", "code"}
    assert inner["type"] == "internal_server_error" and inner["param"] is None and inner["code"] is None
    assert "'msg': \"Input should be 'text' or 'json_object'\"" in inner["message"]
    assert "'loc': ('body', 'response_format', 'type')" in inner["message"]
    assert "'input': 'json_schema'" in inner["message"]
    assert inner["message"].endswith("in create_chat_completion\n    POST /v1/chat/completions")


def test_llama_cpp_accepts_json_object_with_or_without_a_schema():
    with FakeOpenAI(lambda body: Answer('{"a": 1}'), profile="llama_cpp") as srv:
        plain = sdk(srv).chat.completions.with_raw_response.create(
            model="fake-model", messages=[{"role": "user", "content": "x"}], response_format=JSON_RF)
        schema = ask(srv, response_format={"type": "json_object", "schema": {"type": "object"}})
        text = ask(srv, response_format={"type": "text"})
    assert plain.http_response.status_code == 200 and json.loads(plain.parse().choices[0].message.content) == {"a": 1}
    assert plain.http_response.headers["openai-processing-ms"].isdigit()
    assert plain.http_response.headers["server"] == "uvicorn"
    assert schema.choices[0].message.content == '{"a": 1}' and text.choices[0].message.content == '{"a": 1}'


def test_llama_cpp_refuses_a_wrong_key_with_fastapis_detail_and_serves_any_model_name():
    with FakeOpenAI(profile="llama_cpp", api_key="sk-right", check_model=True) as srv:
        wrong = ask(srv, key="sk-wrong")
        other_model = ask(srv, key="sk-right", model="not-listed")
        listed = _models(srv, "sk-right")
    assert wrong.status_code == 401 and wrong.response.json() == {"detail": "Invalid API key"}
    assert "sk-wrong" not in wrong.response.text
    assert other_model.choices[0].message.content.startswith("echo:")  # falls back to the default model
    assert listed == {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "me",
                                                  "permissions": []}]}


def test_llama_cpp_context_error_says_none_in_the_completion_when_max_tokens_is_unset():
    with FakeOpenAI(profile="llama_cpp", context_length=30) as srv:
        long = "word " * 40
        unset = ask(srv, long)
        with_max = ask(srv, long, max_tokens=7)
        fits = ask(srv, "short")
    assert unset.status_code == 400 and unset.body["code"] == "context_length_exceeded"
    assert unset.body["message"] == ("This model's maximum context length is 30 tokens. However, you requested 50 "
                                     "tokens (50 in the messages, None in the completion). Please reduce the length "
                                     "of the messages or completion.")
    assert "requested 57 tokens (50 in the messages, 7 in the completion)" in with_max.body["message"]
    assert fits.choices[0].message.content == "echo: short"


def test_hosted_reasoning_refuses_json_schema_and_json_object_without_the_word_json():
    with FakeOpenAI(lambda body: Answer('{"ok": true}'), profile="hosted_reasoning") as srv:
        schema = ask(srv, "Reply in JSON.", response_format=SCHEMA_RF)
        no_word = ask(srv, "Reply with an object.", response_format=JSON_RF)
        upper = ask(srv, "Reply with JSON only.", response_format=JSON_RF)
        text = ask(srv, "Reply with an object.")
    assert schema.status_code == 400 and schema.body == {
        "message": "This response_format type is unavailable now", "type": "invalid_request_error", "param": None,
        "code": "invalid_request_error"}
    assert no_word.status_code == 400 and no_word.body["message"] == (
        "Prompt must contain the word 'json' in some form to use 'response_format' of type 'json_object'.")
    assert json.loads(upper.choices[0].message.content) == {"ok": True}
    assert text.choices[0].message.content == '{"ok": true}'
    assert [r.outcome for r in srv.chat_requests] == ["400", "400", "200", "200"]


def test_hosted_reasoning_sends_reasoning_content_and_blanks_every_nth_json_answer():
    with FakeOpenAI(lambda body: Answer('{"n": 1}'), profile=HostedReasoning(blank_every=3)) as srv:
        answers = [ask(srv, f"Answer {i} in json.", response_format=JSON_RF) for i in range(6)]
    contents = [a.choices[0].message.content for a in answers]
    assert [c.strip() == "" for c in contents] == [False, False, True, False, False, True]
    assert all(c == " " * len('{"n": 1}') for c in contents[2::3])
    assert all(a.choices[0].finish_reason == "stop" for a in answers)
    for a in answers:
        extra = a.choices[0].message.model_extra
        assert extra["reasoning_content"].startswith("The user asks: Answer")
        assert a.usage.completion_tokens_details.reasoning_tokens > 0
        assert a.usage.model_extra["prompt_cache_miss_tokens"] == a.usage.prompt_tokens


def test_hosted_reasoning_replaces_non_json_content_with_spaces_only_in_json_mode():
    prose = "Sure! Here it is: {\"a\": 1}"
    with FakeOpenAI(lambda body: Answer(prose, reasoning_content="thought"), profile=HostedReasoning(blank_every=0)) \
            as srv:
        json_mode = ask(srv, "json please", response_format=JSON_RF)
        text_mode = ask(srv, "json please")
    assert json_mode.choices[0].message.content == " " * len(prose)
    assert text_mode.choices[0].message.content == prose
    assert json_mode.choices[0].message.model_extra["reasoning_content"] == "thought"


def test_hosted_reasoning_refusals_for_an_unknown_type_model_and_key():
    with FakeOpenAI(profile="hosted_reasoning", check_model=True, api_key="sk-right") as srv:
        odd = ask(srv, key="sk-right", response_format={"type": "xml"})
        model = ask(srv, key="sk-right", model="deepseek-r9")
        key = ask(srv, key="sk-wrong-abcd")
    assert odd.status_code == 422
    assert re.fullmatch(r"Failed to deserialize the JSON body into the target type: response_format.type: unknown "
                        r"variant `xml`, expected `text` or `json_object` at line 1 column \d+", odd.body["message"])
    assert model.status_code == 400 and model.body["message"] == "Model Not Exist"
    assert key.status_code == 401 and key.body["type"] == "authentication_error"
    assert key.body["message"] == "Authentication Fails, Your api key: ****abcd is invalid"


def test_hosted_reasoning_sends_blank_lines_while_the_answer_is_pending():
    with FakeOpenAI(lambda body: Answer('{"late": true}'), profile=HostedReasoning(blank_every=0, keepalive=0.05),
                    latency=0.3) as srv:
        raw = raw_post(srv, chat("json", response_format=JSON_RF))
        record = srv.chat_requests[-1]
        via_sdk = ask(srv, "json again", response_format=JSON_RF)
    assert raw.status == 200 and raw.headers["transfer-encoding"] == "chunked" and "content-length" not in raw.headers
    assert raw.headers["server"] == "elb"
    blanks = len(raw.body) - len(raw.body.lstrip(b"\n"))
    assert blanks >= 3 and raw.chunk_sizes[:blanks] == [1] * blanks
    assert json.loads(raw.body)["choices"][0]["message"]["content"] == '{"late": true}'
    assert b"{" not in raw.recvs[0]  # the head came before the answer existed
    assert len(record.writes) == blanks + 2  # head, each blank line, the JSON
    assert json.loads(via_sdk.choices[0].message.content) == {"late": True}  # the SDK skips the blank lines


def test_prose_ignores_response_format_and_wraps_json_answers_in_turn():
    data = {"items": [{"question": "Q?", "answer": "A"}]}
    with FakeOpenAI(lambda body: Answer(json.dumps(data)), profile="prose") as srv:
        contents = [ask(srv, "json", response_format=rf).choices[0].message.content
                    for rf in (SCHEMA_RF, JSON_RF, {"type": "bogus"}, SCHEMA_RF, SCHEMA_RF)]
    for c in contents:
        with pytest.raises(ValueError):
            json.loads(c)
    fenced = [re.search(r"```json\n(.*?)\n```", c, re.S) for c in contents]
    assert contents[0].startswith("Sure!") and fenced[0] and json.loads(fenced[0].group(1)) == data
    assert contents[1].startswith("```json") and json.loads(fenced[1].group(1)) == data
    assert re.match(r"<think>\n.+\n</think>\n\n```json", contents[2], re.S) and json.loads(fenced[2].group(1)) == data
    assert not fenced[3] and contents[3].startswith("Here is the JSON")
    assert json.loads(contents[3][contents[3].index("{"): contents[3].rindex("}") + 1]) == data
    assert contents[4] == contents[0]  # the styles come round again


def test_prose_puts_reasoning_in_a_think_block_and_leaves_plain_text_alone():
    with FakeOpenAI(profile=Prose(styles=("fenced",))) as srv:
        srv.script(Answer('{"a": 1}', reasoning_content="first I think"), Answer("plain words"),
                   Answer("more words", reasoning_content="hmm"))
        with_reasoning, plain, plain_reasoning = (ask(srv) for _ in range(3))
    assert with_reasoning.choices[0].message.content == '<think>\nfirst I think\n</think>\n\n```json\n{\n  "a": 1\n}\n```'
    assert "reasoning_content" not in with_reasoning.choices[0].message.model_extra
    assert plain.choices[0].message.content == "plain words"
    assert plain_reasoning.choices[0].message.content == "<think>\nhmm\n</think>\n\nmore words"


def test_vllm_profile_errors_models_and_reasoning_field():
    with FakeOpenAI(lambda body: Answer("42", reasoning_content="6*7"), profile="vllm", check_model=True,
                    api_key="sk-right", context_length=20) as srv:
        missing = ask(srv, key="sk-right", model="llama-9")
        unauthorised = ask(srv, key="sk-wrong")
        too_long = ask(srv, "x " * 40, key="sk-right", max_tokens=10)
        ok = ask(srv, key="sk-right")
        cards = _models(srv, "sk-right")["data"]
    assert missing.status_code == 404 and missing.response.json() == {"error": {
        "message": "The model `llama-9` does not exist.", "type": "NotFoundError", "param": "model", "code": 404}}
    assert unauthorised.status_code == 401 and unauthorised.response.json() == {"error": "Unauthorized"}
    assert too_long.status_code == 400 and too_long.body["type"] == "BadRequestError" and too_long.body["code"] == 400
    assert too_long.body["message"].startswith("This model's maximum context length is 20 tokens. However, you "
                                               "requested 10 output tokens and your prompt contains 20 input tokens")
    message = ok.choices[0].message
    assert message.content == "42" and message.model_extra == {"reasoning": "6*7"}
    assert cards[0]["owned_by"] == "vllm" and cards[0]["root"] == "fake-model"


def test_ollama_profile_ignores_keys_and_names_missing_models_its_way():
    with FakeOpenAI(lambda body: Answer("hi", reasoning_content="hm"), profile="ollama", api_key="sk-right",
                    check_model=True, context_length=5) as srv:
        missing = ask(srv, key="anything", model="qwen3:8b")
        ok = ask(srv, "a prompt far longer than five tokens, which Ollama truncates", key="anything")
    assert missing.status_code == 404 and missing.response.json() == {"error": {
        "message": 'model "qwen3:8b" not found, try pulling it first', "type": "not_found_error", "param": None,
        "code": None}}
    assert ok.choices[0].message.content == "hi" and ok.choices[0].message.model_extra == {"reasoning": "hm"}


def test_refusals_happen_before_the_script_and_consume_none_of_it():
    with FakeOpenAI(profile="llama_cpp") as srv:
        srv.script(Answer("the scripted one"))
        refused = ask(srv, response_format=SCHEMA_RF)
        answered = ask(srv)
    assert refused.status_code == 500 and answered.choices[0].message.content == "the scripted one"


# -- models and context length ---------------------------------------------------------------


def test_an_unlisted_model_is_refused_only_with_check_model():
    with FakeOpenAI(models=("m-1", "m-2")) as lenient, FakeOpenAI(models=("m-1", "m-2"), check_model=True) as strict:
        assert ask(lenient, model="other").choices[0].message.content.startswith("echo:")
        err = ask(strict, model="other")
        ok = ask(strict, model="m-2")
        listed = [m.id for m in sdk(strict).models.list()]
    assert err.status_code == 404 and err.body == {
        "message": "The model `other` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": None, "code": "model_not_found"}
    assert ok.model == "m-2" and listed == ["m-1", "m-2"]


def test_context_length_counts_the_prompt_and_max_tokens():
    with FakeOpenAI(context_length=100) as srv:
        prompt = "abcd" * 60  # 60 tokens by count_tokens
        fits = ask(srv, prompt, max_tokens=40)
        over = ask(srv, prompt, max_tokens=41)
    assert fits.choices[0].message.content.startswith("echo:")
    assert over.status_code == 400 and over.body["code"] == "context_length_exceeded"
    assert over.body["message"] == ("This model's maximum context length is 100 tokens. However, you requested 101 "
                                    "tokens (60 in the messages, 41 in the completion). Please reduce the length of "
                                    "the messages or completion.")


# -- wire behaviours -----------------------------------------------------------------------------


def _http(srv: FakeOpenAI, body: dict) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    return conn.getresponse()


def test_retry_after_goes_out_in_seconds_milliseconds_or_as_an_http_date():
    with FakeOpenAI() as srv:
        srv.script(HTTPError(429, retry_after=2), HTTPError(429, retry_after=2.5, retry_after_as="ms"),
                   HTTPError(503, retry_after=3, retry_after_as="date"), HTTPError(429, retry_after=0.3))
        seconds, ms, date, fraction = (_http(srv, chat()) for _ in range(4))
        sent_at = time.time()
    assert seconds.status == 429 and seconds.getheader("Retry-After") == "2"
    assert ms.getheader("retry-after-ms") == "2500" and ms.getheader("Retry-After") is None
    when = email.utils.parsedate_to_datetime(date.getheader("Retry-After")).timestamp()
    assert date.status == 503 and sent_at + 1 <= when <= sent_at + 5
    assert fraction.getheader("Retry-After") == "0.3"
    assert json.loads(seconds.read())["error"]["type"] == "requests"


def test_ratelimit_headers_count_down_and_an_enforced_limit_answers_openais_429():
    with FakeOpenAI(ratelimit=RateLimit(requests=3, tokens=100_000, enforce=True)) as srv:
        responses = [_http(srv, chat(f"q{i}")) for i in range(4)]
        bodies = [json.loads(r.read()) for r in responses]
    assert [r.status for r in responses] == [200, 200, 200, 429]
    assert [r.getheader("x-ratelimit-remaining-requests") for r in responses] == ["2", "1", "0", "0"]
    assert all(r.getheader("x-ratelimit-limit-requests") == "3" and r.getheader("x-ratelimit-limit-tokens") == "100000"
               for r in responses)
    assert responses[0].getheader("x-ratelimit-reset-requests") == "20s"  # one of 3/min comes back in 20 s
    assert re.fullmatch(r"\d+ms", responses[0].getheader("x-ratelimit-reset-tokens"))
    remaining_tokens = [int(r.getheader("x-ratelimit-remaining-tokens")) for r in responses[:3]]
    assert remaining_tokens == sorted(remaining_tokens, reverse=True) and remaining_tokens[0] < 100_000
    err = bodies[3]["error"]
    assert err["type"] == "requests" and err["code"] == "rate_limit_exceeded"
    assert err["message"].startswith("Rate limit reached for fake-model in organization org-fake on requests per "
                                     "min (RPM): Limit 3, Used 3, Requested 1. Please try again in ")
    assert 55 <= int(responses[3].getheader("Retry-After")) <= 60  # whole seconds until the oldest request leaves


@pytest.mark.parametrize("style", ERROR_STYLES)
def test_error_bodies_take_the_shape_of_each_style(style):
    with FakeOpenAI() as srv:
        srv.script(HTTPError(503, "busy", wire=Wire(error_style=style)))
        raw = raw_post(srv, chat())
    expected = {
        "openai": {"error": {"message": "busy", "type": "server_error", "param": None, "code": None}},
        "vllm": {"error": {"message": "busy", "type": "ServiceUnavailableError", "param": None, "code": 503}},
        "vllm_legacy": {"object": "error", "message": "busy", "type": "ServiceUnavailableError", "param": None,
                        "code": 503},
        "plain": {"error": "busy"},
        "detail": {"detail": "busy"},
    }
    assert raw.status == 503
    if style in expected:
        assert raw.headers["content-type"].startswith("application/json") and json.loads(raw.body) == expected[style]
    elif style == "text":
        assert raw.headers["content-type"] == "text/plain; charset=utf-8" and raw.body == b"busy"
    else:
        assert raw.headers["content-type"] == "text/html"
        assert b"<center><h1>503 Service Unavailable</h1></center>" in raw.body and b"nginx" in raw.body
        with pytest.raises(ValueError):
            json.loads(raw.body)


def test_reasoning_fields_content_parts_and_a_missing_usage():
    with FakeOpenAI(wire=Wire(reasoning_field="both", content_parts=True, usage=False)) as srv:
        srv.script(Answer("42", reasoning_content="6 times 7"), Answer("x", reasoning="own field", wire=Wire(
            content_parts=False, usage=True)))
        first, second = (json.loads(raw_post(srv, chat()).body) for _ in range(2))
    message = first["choices"][0]["message"]
    assert message == {"role": "assistant", "content": [{"type": "text", "text": "42"}],
                       "reasoning_content": "6 times 7", "reasoning": "6 times 7"}
    assert "usage" not in first
    assert second["choices"][0]["message"] == {"role": "assistant", "content": "x", "reasoning": "own field"}
    assert second["usage"]["total_tokens"] > 0


def test_chunked_transfer_encoding_is_on_the_wire():
    with FakeOpenAI(wire=Wire(chunks=3)) as srv:
        srv.script(Answer("chunked answer"), Answer("again"))
        raw = raw_post(srv, chat())
        via_http_client = json.loads(_http(srv, chat()).read())
    assert raw.headers["transfer-encoding"] == "chunked" and "content-length" not in raw.headers
    assert len(raw.chunk_sizes) == 4 and raw.chunk_sizes[-1] == 0 and min(raw.chunk_sizes[:3]) > 0
    body_on_wire = raw.data[len(raw.head):]
    assert re.match(rb"[0-9a-f]+\r\n", body_on_wire) and body_on_wire.endswith(b"\r\n0\r\n\r\n")
    assert json.loads(raw.body)["choices"][0]["message"]["content"] == "chunked answer"
    assert via_http_client["choices"][0]["message"]["content"] == "again"


def test_connection_close_is_announced_and_really_closes_the_socket():
    with FakeOpenAI(wire=Wire(close=True)) as closing, FakeOpenAI() as keeping:
        closed = raw_post(closing, chat(), wait_close=2.0)
        with socket.create_connection(("127.0.0.1", keeping.port), timeout=10) as sock:
            first = raw_post(keeping, chat("one"), sock=sock)
            second = raw_post(keeping, chat("two"), sock=sock)  # the same connection, still open
    assert closed.headers["connection"] == "close" and closed.complete and closed.closed
    assert first.headers["connection"] == "keep-alive"
    assert json.loads(second.body)["choices"][0]["message"]["content"] == "echo: two"


def test_split_writes_arrive_in_pieces_with_the_head_cut_mid_line():
    with FakeOpenAI(wire=Wire(split=Split(pieces=4, pause=0.2))) as srv:
        raw = raw_post(srv, chat("split me"))
        writes = srv.chat_requests[-1].writes
    sizes = [n for _, n in writes]
    assert len(writes) == 4 and sum(sizes) == len(raw.data)
    first_piece = raw.data[: sizes[0]]
    assert first_piece.count(b"\r\n") == 1 and not first_piece.endswith(b"\r\n")  # inside the first header line
    assert all(b - a >= 0.15 for (a, _), (b, _) in zip(writes, writes[1:]))  # the pauses are real
    assert len(raw.recvs) >= 2 and b"\r\n\r\n" not in raw.recvs[0]  # the client got a partial head first
    assert json.loads(raw.body)["choices"][0]["message"]["content"] == "echo: split me"


def test_a_spec_wire_overrides_the_server_wire_field_by_field():
    with FakeOpenAI(wire=Wire(chunks=2, error_style="plain")) as srv:
        srv.script(Answer("a"), HTTPError(400, "no", wire=Wire(chunks=0)))
        chunked = raw_post(srv, chat())
        error = raw_post(srv, chat())
    assert chunked.headers["transfer-encoding"] == "chunked"
    assert error.headers["content-length"] == str(len(error.body)) and json.loads(error.body) == {"error": "no"}


def test_profiles_are_named_or_given_and_each_server_counts_for_itself():
    with pytest.raises(ValueError, match="unknown profile 'lmstudio'"):
        FakeOpenAI(profile="lmstudio")
    shared = HostedReasoning(blank_every=2)
    with FakeOpenAI(lambda body: Answer("{}"), profile=shared) as a, \
            FakeOpenAI(lambda body: Answer("{}"), profile=shared) as b:
        first_a = ask(a, "json", response_format=JSON_RF).choices[0].message.content
        first_b = ask(b, "json", response_format=JSON_RF).choices[0].message.content
        second_a = ask(a, "json", response_format=JSON_RF).choices[0].message.content
        a.reset()
        after_reset = [ask(a, "json", response_format=JSON_RF).choices[0].message.content for _ in range(2)]
    assert (first_a, first_b, second_a) == ("{}", "{}", "  ")
    assert after_reset == ["{}", "  "]

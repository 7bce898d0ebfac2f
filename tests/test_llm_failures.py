"""What an error means and how it reads; Retry-After; keys kept out of sight; the settings loader.

Pure functions, fed with what real servers send (error bodies from tests/openai_wire.py,
which cites the server each shape comes from).
"""

from __future__ import annotations

import email.utils
import json

import pytest

from linkqa_core.errors import ConfigError
from linkqa_core.llm.failures import MAX_LINE, Failure, classify, error_line, hint
from linkqa_core.llm.ledger import estimate_tokens, prompt_tokens_of
from linkqa_core.llm.ratelimit import MAX_RETRY_AFTER_S, backoff, retry_after
from linkqa_core.llm.scrub import REDACTED, Scrubber, display_url, mask_url, scrubber_for, url_secrets
from linkqa_core.llm.settings import LLMSettings, gather_settings, load_settings, read_secrets_file
from openai_profiles import HostedReasoning, LlamaCpp, Profile
from openai_wire import error_body

# -- one readable line from any body -----------------------------------------------------------------


@pytest.mark.parametrize("style", ["openai", "vllm", "vllm_legacy", "plain", "detail", "text"])
def test_every_error_body_style_reads_as_its_message(style):
    _, body = error_body(style, 400, "The model `x` does not exist.", "invalid_request_error", "model_not_found")
    assert error_line(400, None, body.decode()) == "The model `x` does not exist."


def test_an_html_error_page_reads_as_its_title():
    _, page = error_body("html", 502, "ignored")
    assert error_line(502, None, page.decode()) == "502 Bad Gateway"
    assert error_line(503, None, "<html><body><p>Service <b>down</b> &amp; out</p></body></html>") == \
        "Service down & out"


def test_fastapi_validation_details_and_odd_shapes_become_one_line():
    detail = {"detail": [{"loc": ["body", "response_format", "type"], "msg": "Input should be 'text'"},
                         {"msg": "second"}, "third"]}
    assert error_line(422, None, json.dumps(detail)) == \
        "body.response_format.type: Input should be 'text'; second; third"
    assert error_line(400, {"error": {"code": 7}}, "") == '{"code": 7}'
    assert error_line(400, {"message": "top-level message"}, "") == "top-level message"
    assert error_line(400, {"detail": {"why": "nested"}}, "") == '{"why": "nested"}'
    assert error_line(500, None, "") == "HTTP 500" and error_line(None, None, "") == "no message"
    assert error_line(400, "just a string", "") == "just a string"
    assert error_line(400, [1, 2], "") == "HTTP 400"
    assert error_line(400, None, "{not json") == "{not json"
    assert error_line(400, None, "  line one\n   line two  ") == "line one line two"
    long = error_line(400, None, "x" * 1000)
    assert len(long) == MAX_LINE and long.endswith("…")


def test_the_sdk_body_that_is_the_inner_error_object_reads_too():
    assert error_line(401, {"message": "Incorrect API key", "type": "invalid_request_error"}, "") == \
        "Incorrect API key"
    assert error_line(401, {"error": {"msg": "short"}}, "") == "short"


# -- what it means -------------------------------------------------------------------------------------


def _profile_refusal(profile: Profile, kind: str) -> tuple[int, str]:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": kind}}
    err = profile.refuse(body, json.dumps(body).encode())
    assert err is not None
    return err.status, err.message


def test_real_mode_refusals_are_mode_failures_only_for_structured_requests():
    for profile, kind in ((LlamaCpp(), "json_schema"), (HostedReasoning(), "json_schema"), (Profile(), "yaml"),
                          (HostedReasoning(), "yaml")):
        status, message = _profile_refusal(profile, kind)
        assert classify(status, message, structured=True) is Failure.MODE, (profile, message)
    assert classify(500, "Input should be 'text' or 'json_object' (response_format)", structured=False) \
        is Failure.RETRY
    assert classify(400, "response_format json_schema unavailable", structured=False) is Failure.ITEM


@pytest.mark.parametrize("status, message, kind", [
    (None, "", Failure.RETRY),
    (408, "", Failure.RETRY), (409, "", Failure.RETRY), (425, "", Failure.RETRY), (429, "slow down", Failure.RETRY),
    (500, "boom", Failure.RETRY), (502, "", Failure.RETRY), (503, "not available right now", Failure.MODE),
    (401, "Invalid API key", Failure.BATCH), (403, "", Failure.BATCH), (404, "", Failure.BATCH),
    (400, "Model Not Exist", Failure.BATCH), (400, "The model `x` does not exist.", Failure.BATCH),
    (400, "model_not_found", Failure.BATCH), (400, "unknown model 'x'", Failure.BATCH),
    (400, "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens",
     Failure.ITEM),
    (413, "too large", Failure.ITEM), (422, "cannot process", Failure.ITEM), (418, "teapot", Failure.ITEM),
    (400, "temperature is not supported with this model", Failure.ITEM),
    (400, "This response_format type is unavailable now", Failure.MODE),
    (422, "Failed to deserialize: response_format.type: unknown variant", Failure.MODE),
    (400, "guided_json is not supported", Failure.MODE),
    (400, "structured output unavailable", Failure.MODE),
    (400, "feature unsupported", Failure.MODE),
])
def test_classification_of_real_refusals(status, message, kind):
    expected = kind if not (kind is Failure.MODE and status not in (400, 422, 500)) else Failure.RETRY
    assert classify(status, message, structured=True) is expected


def test_hints_name_what_to_check():
    assert "OPENAI_API_KEY" in hint(401, "", "m")
    assert "no access" in hint(403, "", "m")
    assert "LINKQA_MODEL" in hint(404, "", "m") and "'m'" in hint(404, "", "m")
    assert "LINKQA_MODEL" in hint(400, "Model Not Exist", "deepseek-r9")
    assert "too large" in hint(413, "", "m")
    assert "context" in hint(400, "maximum context length is 4096 tokens", "m")
    assert "malformed" in hint(400, "bad", "m")
    assert "could not process" in hint(422, "", "m")
    assert hint(418, "", "m") == "the endpoint refused the request"


# -- Retry-After ---------------------------------------------------------------------------------------


def test_retry_after_in_seconds_milliseconds_and_http_date():
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"Retry-After": " 1.5 "}) == 1.5
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25  # ms wins, as the SDK reads it
    assert retry_after({"retry-after-ms": "soon", "retry-after": "3"}) == 3.0
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after({"retry-after": date}, now=lambda: now) == 30.0
    assert retry_after({"retry-after": email.utils.formatdate(now - 30, usegmt=True)}, now=lambda: now) == 0.0


def test_retry_after_is_capped_at_600_seconds_and_ignores_garbage():
    assert MAX_RETRY_AFTER_S == 600.0
    assert retry_after({"retry-after": "86400"}) == 600.0
    assert retry_after({"retry-after-ms": "3600000"}) == 600.0
    assert retry_after({"retry-after": "-5"}) == 0.0
    assert retry_after({"retry-after": "whenever"}) is None
    assert retry_after({"retry-after": "nan"}) is None
    assert retry_after({"retry-after": ""}) is None
    assert retry_after({}) is None and retry_after(None) is None


def test_backoff_grows_is_capped_and_waits_at_least_retry_after():
    top = lambda a, b: b  # noqa: E731  - the top of the jitter range
    assert [backoff(k, 1.0, 60.0, rng=top) for k in (1, 2, 3, 7, 8)] == [1.0, 2.0, 4.0, 60.0, 60.0]
    assert backoff(1, 1.0, 60.0, asked=5.0, rng=top) == 5.0
    assert backoff(3, 1.0, 60.0, asked=0.5, rng=top) == 4.0
    assert backoff(1, 1.0, 60.0, rng=lambda a, b: a) == 0.0
    assert 0.0 <= backoff(4, 0.5, 2.0) <= 2.0


# -- keys out of sight ---------------------------------------------------------------------------------


def test_display_and_masked_urls_never_show_credentials():
    url = "https://admin:hunter22@api.example.com:8443/v1/?api-key=abc123&api-version=2024-02&token=t0ken"
    assert display_url(url) == "https://api.example.com:8443/v1"
    assert mask_url(url) == "https://***:***@api.example.com:8443/v1/?api-key=***&api-version=2024-02&token=***"
    assert mask_url("http://only-user@h/v1") == "http://***@h/v1"
    assert mask_url("http://[::1]:8000/v1?key=zzzz") == "http://[::1]:8000/v1?key=***"
    assert display_url("not a url") == "<invalid url>" and mask_url("") == "<invalid url>"
    assert set(url_secrets(url)) == {"admin", "hunter22", "abc123", "t0ken"}
    assert url_secrets("http://me:pw@h/v1") == []  # too short to scrub safely: still never shown
    assert url_secrets("http://h/v1?key=a%2Bb%3D") == ["a%2Bb%3D", "a+b="]


def test_one_scrubber_removes_the_key_url_credentials_and_anything_key_like():
    fake = "sk-" + "fake-0123456789"  # a made-up key, built so that no literal key sits in the repo
    s = LLMSettings(base_urls="http://user:pa55word@h:1/v1?api-key=query-secret", api_key=fake,
                    model="m")
    scrub = scrubber_for(s)
    text = (f"401 Incorrect API key provided: {fake} for http://user:pa55word@h:1/v1?api-key=query-secret;"
            " header Bearer abcdefghij; other sk-zzzzzzzzzz; pa55word alone; query-secret alone")
    out = scrub(text)
    for secret in (fake, "pa55word", "query-secret", "abcdefghij", "sk-zzzzzzzzzz"):
        assert secret not in out
    assert "http://***@h:1/v1?api-key=***" in out and REDACTED in out
    assert Scrubber([None, "", "abc"])("abc stays: too short to be a key") == "abc stays: too short to be a key"
    assert scrub(None) == "" and "secret" in repr(scrub)


# -- the one settings loader -----------------------------------------------------------------------------


def test_precedence_secrets_then_environment_then_config_then_flags():
    secrets = {"llm": {"base_url": "http://from-secrets:1/v1", "model": "s-model", "concurrency": 2,
                       "api_key": "sk-from-secrets-000"}, "OPENAI_BASE_URL": "http://top-level:1/v1"}
    env = {"OPENAI_BASE_URL": "http://from-env:2/v1", "LINKQA_MODEL": "e-model", "LINKQA_CONCURRENCY": "4",
           "LINKQA_STRUCTURED_OUTPUT": "json_object", "LINKQA_DB": "ignored.db", "HOME": "/root"}
    values, origin = gather_settings(env=env, secrets=secrets, config={"model": "c-model"}, flags={"concurrency": 8})
    assert values["base_urls"] == "http://from-env:2/v1" and origin["base_urls"] == "environment"
    assert values["model"] == "c-model" and origin["model"] == "pipeline config"
    assert values["concurrency"] == 8 and origin["concurrency"] == "command line"
    assert values["api_key"] == "sk-from-secrets-000" and origin["api_key"] == "secrets.toml"
    assert values["structured_output"] == "json_object"
    s = load_settings(env=env, secrets=secrets, config={"model": "c-model"}, flags={"concurrency": 8, "rpm": None})
    assert (s.model, s.concurrency, s.structured_output, s.rpm) == ("c-model", 8, "json_object", None)
    only_secrets = load_settings(env={}, secrets=secrets)
    assert only_secrets.base_urls == ("http://top-level:1/v1",)  # a top-level key wins over the [llm] table


def test_environment_names_are_only_openai_and_linkqa_ones():
    values, _ = gather_settings(env={"URL": "http://x/v1", "KEY": "k", "MODEL": "m", "LINKQA_TIMEOUT_S": "5"},
                                secrets={})
    assert values == {"timeout_s": 5.0}


def test_bad_values_say_which_setting_and_where():
    with pytest.raises(ConfigError, match=r"'LINKQA_CONCURRENCY' \(environment\) must be a whole number"):
        load_settings(env={"LINKQA_CONCURRENCY": "many"}, secrets={})
    with pytest.raises(ConfigError, match=r"'concurrency' \(pipeline config\) must be a whole number"):
        load_settings(env={}, secrets={}, config={"concurrency": 2.5})
    with pytest.raises(ConfigError, match=r"'temperature' \(command line\) must be a number"):
        load_settings(env={}, secrets={}, flags={"temperature": True})
    with pytest.raises(ConfigError, match=r"unknown LLM setting 'modle' \(pipeline config\)"):
        load_settings(env={}, secrets={}, config={"modle": "x"})
    with pytest.raises(ConfigError, match=r"concurrency must be at least 1.*\(concurrency, from the command line\)"):
        load_settings(env={}, secrets={}, flags={"concurrency": 0})
    assert load_settings(env={"LINKQA_FAST_HTTP": "off"}, secrets={}).fast_http is False
    assert load_settings(env={}, secrets={}, config={"budget_tokens": "1_000"}).budget_tokens == 1000


@pytest.mark.parametrize("url, why", [
    ("ftp://h/v1", "must start with http:// or https://"),
    ("http:///v1", "names no host"),
    ("http://h:99999/v1", "port must be 1-65535"),
    ("http://h:0/v1", "port must be 1-65535"),
    ("http://h:port/v1", "port must be 1-65535"),
    ("http://h /v1", "contains a space"),
    ("localhost:8000/v1", "must start with http:// or https://"),
])
def test_base_url_is_checked_before_any_request_without_showing_secrets(url, why):
    secret_url = url.replace("://", "://u:topsecret99@", 1) if "://" in url else url
    with pytest.raises(ConfigError, match=why) as info:
        load_settings(env={"OPENAI_BASE_URL": secret_url}, secrets={})
    assert "topsecret99" not in str(info.value) and "(OPENAI_BASE_URL, from the environment)" in str(info.value)


def test_secrets_file_is_read_and_a_broken_one_is_one_clear_error(tmp_path):
    assert read_secrets_file(tmp_path / "absent.toml") == {}
    good = tmp_path / "secrets.toml"
    good.write_text('LINKQA_MODEL = "m"\n[llm]\nconcurrency = 3\n')
    assert load_settings(env={}, secrets=read_secrets_file(good)).concurrency == 3
    bad = tmp_path / "bad.toml"
    bad.write_text("LINKQA_MODEL = \n")
    with pytest.raises(ConfigError, match="bad.toml: cannot read it as TOML"):
        read_secrets_file(bad)


def test_public_dict_and_repr_hold_no_secret():
    s = LLMSettings(base_urls="http://u:pw-secret-1@h/v1?key=kk-secret-2", api_key="sk-secret-3", model="m")
    text = f"{s!r} {s.public_dict()}"
    assert "pw-secret-1" not in text and "kk-secret-2" not in text and "sk-secret-3" not in text
    assert s.public_dict()["base_urls"] == ["http://h/v1"] and s.public_dict()["api_key_set"]


def test_token_estimates():
    assert [estimate_tokens(t) for t in (None, "", "a", "abcd", "abcde")] == [0, 0, 1, 1, 2]
    body = {"messages": [{"role": "user", "content": "x" * 40}, {"role": "user", "content": [{"text": "y"}]}]}
    assert prompt_tokens_of(body) == (4 + 10) + (4 + estimate_tokens(json.dumps([{"text": "y"}])))


# -- token buckets -------------------------------------------------------------------------------------


def test_a_bucket_spends_refunds_up_to_its_capacity_and_goes_into_debt_for_a_huge_take():
    import asyncio

    from linkqa_core.llm.ratelimit import Bucket

    async def scenario():
        b = Bucket(1e-9, 5)  # refills nothing in the test's lifetime
        assert (b.capacity, b.level) == (5.0, 5.0)
        await b.take(2)
        assert round(b.level, 6) == 3.0
        b.give_back(10)
        assert round(b.level, 6) == 5.0  # never above the capacity
        await b.take(7)  # more than it can ever hold: waits for a full bucket, then owes
        assert round(b.level, 6) == -2.0
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(b.take(1), timeout=0.05)  # in debt: the next take waits
        assert Bucket(10, 0.2).capacity == 1.0  # at least one request fits
        fast = Bucket(1000.0, 1)
        await fast.take(1)
        t0 = asyncio.get_running_loop().time()
        await fast.take(1)  # refilled at 1000/s: about a millisecond
        assert asyncio.get_running_loop().time() - t0 < 0.5

    asyncio.run(scenario())


@pytest.mark.parametrize("url", ["https://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"])
def test_a_missing_ca_file_named_by_ssl_cert_file_is_one_line_naming_it(monkeypatch, tmp_path, url):
    from linkqa_core.llm.chat import ChatRequest
    from linkqa_core.llm.client import LLMClient

    missing = tmp_path / "no-such-ca.pem"
    monkeypatch.setenv("SSL_CERT_FILE", str(missing))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    client = LLMClient(LLMSettings(base_urls=url, model="m", api_key="sk-" + "fake", max_retries=0, timeout_s=2,
                                   fast_http=False))
    try:
        with pytest.raises(ConfigError) as err:
            client.complete(ChatRequest(messages=[{"role": "user", "content": "hi"}]))
    finally:
        client.close()
    message = str(err.value)
    assert message == f"cannot set up HTTPS for the LLM endpoints: No such file or directory (SSL_CERT_FILE={missing})"


@pytest.mark.parametrize("env, err, want", [
    ({"SSL_CERT_FILE": "/a.pem", "SSL_CERT_DIR": "/certs"}, FileNotFoundError(2, "No such file or directory"),
     "No such file or directory (SSL_CERT_FILE=/a.pem, SSL_CERT_DIR=/certs)"),
    ({"SSL_CERT_DIR": "/certs"}, PermissionError(13, "Permission denied"), "Permission denied (SSL_CERT_DIR=/certs)"),
    ({"SSL_CERT_FILE": ""}, OSError("bad PEM lines"), "bad PEM lines"),  # set but empty: not named
    ({}, OSError(), "OSError"),  # nothing to say but the kind
])
def test_an_https_setup_failure_names_each_certificate_setting_it_read(monkeypatch, env, err, want):
    from linkqa_core.llm.client import tls_problem

    for key in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tls_problem(err) == f"cannot set up HTTPS for the LLM endpoints: {want}"

"""Does the endpoint work, and how does it take JSON? The connection test, and a throughput measure.

:func:`test_connection` tells a curator before a batch what the batch would meet: per
endpoint, whether it answers, whether it serves the model, and which structured-output
mode it accepts (found with the client's own mode logic, one tiny request per refused
mode, and stored so that the next batch starts in that mode).

>>> test_connection(LLMSettings())
(False, 'No endpoint configured: set OPENAI_BASE_URL (or OPENAI_API_KEY for api.openai.com).')
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Optional

import openai

from ..errors import LinkQAError
from .chat import ChatRequest
from .failures import error_line
from .modes import describe
from .scrub import display_url, guard_logs, scrubber_for
from .settings import LLMSettings
from .transport import base_and_query

__all__ = ["test_connection", "probe_mode", "measure_throughput", "PROBE_SCHEMA"]

PROBE_SCHEMA = {"name": "probe", "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}},
                                            "required": ["ok"], "additionalProperties": False}}
_PROBE_PROMPT = 'Reply with the JSON object {"ok": true} and nothing else.'


def probe_mode(settings: LLMSettings, url: str, *, timeout_s: float = 15.0, store: Any = None) -> tuple[Optional[str], str]:
    """The structured-output mode ``url`` accepts for the model, found from the strongest
    down (or the forced one checked): ``(mode or None, what happened)``. Stored when
    ``store`` is given."""
    from .client import LLMClient

    quick = replace(settings, base_urls=(url,), max_retries=0, timeout_s=min(timeout_s, settings.timeout_s),
                    concurrency=1, budget_tokens=None, budget_usd=None, rpm=None, tpm=None, outage_after=1)
    shown = display_url(url)
    req = ChatRequest.user(_PROBE_PROMPT, response_format={"type": "json_schema", "json_schema": PROBE_SCHEMA},
                           max_tokens=32, temperature=0.0, cache=False, stage="connection-test")
    with LLMClient(quick) as client:  # no store: the probe starts from the strongest mode
        try:
            result = client.complete(req)
        except LinkQAError as err:
            return None, str(err)
        mode = client.modes().get(shown, {}).get(settings.model)
    if mode is None or (result.error and result.transient):
        return None, result.error or "no answer"
    if store is not None:
        store.llm.set_mode(shown, settings.model, mode, "connection test")
    return mode, "answered" if result.ok else (result.error or "")


def test_connection(settings: LLMSettings, *, timeout_s: float = 15.0, store: Any = None) -> tuple[bool, str]:
    """Check every endpoint: list its models, then ask one tiny JSON question to learn its
    structured-output mode. Returns ``(ok, message)``; the message never holds a key."""
    if not settings.base_urls:
        return False, "No endpoint configured: set OPENAI_BASE_URL (or OPENAI_API_KEY for api.openai.com)."
    if not settings.model:
        return False, "No model configured: set LINKQA_MODEL."
    scrub = scrubber_for(settings)
    guard_logs(scrub)
    messages = []
    all_ok = True
    for url in settings.base_urls:
        shown = display_url(url)
        ok, said = _check_models(settings, url, timeout_s)
        if ok:
            mode, how = probe_mode(settings, url, timeout_s=timeout_s, store=store)
            if mode is None:
                ok, said = False, f"{said}; but a request failed: {how}"
            else:
                forced = " (forced)" if settings.structured_output != "auto" else ""
                said += f"; structured output: {describe(mode)}{forced}."
        all_ok = all_ok and ok
        messages.append(scrub(f"{shown}: {said}"))
    return all_ok, " ".join(messages)


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _check_models(settings: LLMSettings, url: str, timeout_s: float) -> tuple[bool, str]:
    base, query = base_and_query(url)
    timeout = min(timeout_s, settings.timeout_s)
    client = openai.OpenAI(base_url=base, api_key=settings.api_key or "EMPTY", max_retries=0, timeout=timeout,
                           default_query=query or None)
    try:
        ids = [m.id for m in client.models.list().data]
    except openai.NotFoundError:  # no /models here: the probe request proves the model answers
        return True, "connected"
    except openai.APIStatusError as err:
        status = err.status_code
        hint = {401: " -- check the API key", 403: " -- the key has no access",
                404: " -- check the model name and base URL"}.get(status, "")
        return False, f"HTTP {status}: {error_line(status, None, _text(err))[:200]}{hint}"
    except openai.APITimeoutError:
        return False, f"no answer within {timeout:g} s."
    except openai.APIConnectionError as err:
        cause = err.__cause__
        return False, f"cannot connect ({str(cause) if cause else str(err)})."[:240]
    except Exception as err:  # noqa: BLE001 - any failure is the answer to "does it work?"
        return False, f"{type(err).__name__}: {str(err)[:200]}"
    finally:
        client.close()
    if settings.model in ids or not ids:
        return True, f"connected; model {settings.model!r} is served"
    return True, f"connected; {settings.model!r} is not among the {len(ids)} listed models (some servers list aliases)"


def _text(err: openai.APIStatusError) -> str:
    try:
        return err.response.text
    except Exception:  # noqa: BLE001
        return ""


def measure_throughput(settings: LLMSettings, n_requests: int, *, store: Any = None,
                       prompt: str = "ping") -> Any:
    """Send ``n_requests`` distinct small requests (cache off) and time them.

    The connections are opened first by a warm-up round of ``concurrency`` requests that is
    not timed. For benchmarks: compare ``requests_per_s`` with ``concurrency / latency``.
    """
    from .client import LLMClient, Throughput

    with LLMClient(settings, store) as client:
        warm = [ChatRequest.user(f"{prompt} warm {i}", cache=False, stage="benchmark")
                for i in range(settings.concurrency)]
        client.complete_many(warm)
        reqs = [ChatRequest.user(f"{prompt} {i}", cache=False, stage="benchmark") for i in range(n_requests)]
        t0 = time.perf_counter()
        results = client.complete_many(reqs)
        seconds = time.perf_counter() - t0
    errors = sum(1 for r in results if r.error)
    return Throughput(requests=n_requests, errors=errors, seconds=seconds,
                      requests_per_s=n_requests / seconds if seconds > 0 else float("inf"),
                      concurrency=settings.concurrency)

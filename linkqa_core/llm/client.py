"""The one client every LLM stage uses: concurrency, retries, rate limits, cache, budget.

Any OpenAI-compatible endpoint works (OpenAI, vLLM, SGLang, DeepSeek, a local server).
Settings come from the environment (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``,
``LINKQA_MODEL``) or from a mapping such as Streamlit's ``secrets.toml``; the key is
never written to the database, a log, an exception message or a ``repr``.

>>> settings = LLMSettings(base_urls="http://127.0.0.1:8000/v1", model="qwen", api_key="sk-...")
>>> settings                                                    # doctest: +ELLIPSIS
LLMSettings(base_urls=('http://127.0.0.1:8000/v1',), model='qwen', concurrency=16, ...)

Typical use in a stage::

    client = LLMClient(settings, store)
    reqs = [ChatRequest.user(prompt, stage="synthesis", run_id=run_id) for prompt in prompts]
    client.complete_many(reqs, on_result=lambda i, r: save_item(i, r))

How it works. One background thread runs an asyncio event loop with one
:class:`openai.AsyncOpenAI` client per endpoint; ``complete_many`` keeps up to
``concurrency`` requests in flight across all endpoints (the least busy endpoint gets the
next request) and hands each result back to the *calling* thread as it arrives, so
``on_result`` may touch the database or the UI. Plain ``http://`` endpoints (local model
servers, where throughput matters most) use a small keep-alive HTTP/1.1 transport on
asyncio, because the default transport costs about 1 ms of CPU per request and caps one
process near 700 requests/s; ``https://`` and proxied URLs use the SDK's own transport.
Set ``fast_http=False`` to use the SDK's transport everywhere.

Retries: 408/409/425/429/5xx, dropped connections, time-outs and unparseable bodies are
retried up to ``max_retries`` times with exponential back-off and full jitter, waiting at
least ``Retry-After`` when the server sends it (and pausing that endpoint meanwhile).
After the last attempt the :class:`ChatResult` carries ``error`` ("gave up after 6
attempts; last error: HTTP 503: ..."). Any other 4xx is not retried: :meth:`LLMClient.complete`
raises :class:`~linkqa_core.errors.LLMError`; :meth:`LLMClient.complete_many` raises it for
401/403/404 (wrong key, no access, wrong model or URL: every request would fail) after the
requests in flight have finished, and records 400/413/422 as that item's ``error``.

Cache: a request's key is the SHA-256 of the canonical JSON of everything that shapes the
answer (model, messages, temperature, max_tokens, response_format, extra body fields,
``variant``) -- not the key, not the endpoint. A hit returns at once with ``cached=True``
and zero tokens, and counts nothing against the budget; identical requests inside one
batch are sent once. Only complete answers are cached (no error, ``finish_reason`` other
than ``"length"``). Bump ``ChatRequest.variant`` for a fresh sample of the same prompt, or
set ``cache=False``.

Budget (``budget_tokens`` = prompt + completion tokens, ``budget_usd`` from the prices):
counted over the client's life, starting from ``spent=``. Once spent, no new request
starts; requests in flight finish and are delivered; every request that never started
comes back with ``error == BUDGET_REACHED`` and ``attempts == 0``, is *not* passed to
``on_result`` and is not logged. Nothing is raised: check :attr:`LLMClient.budget_reached`
(a stage may then raise :class:`~linkqa_core.errors.BudgetExceeded` to end its run). While
results arrive the client also holds back new requests when the average cost of the
requests already in flight would cross the budget, so the overshoot stays small.

Every call -- hit or miss, success or error -- is logged to ``llm_calls`` (status
``ok`` / ``cached`` / ``error``, tokens, latency, attempts, endpoint without credentials,
error text with the key scrubbed).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import math
import os
import queue
import random
import re
import threading
import time
import urllib.parse
import urllib.request
import weakref
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import httpx2
import openai

from ..errors import ConfigError, LLMError

__all__ = [
    "LLMSettings",
    "settings_from_mapping",
    "ChatRequest",
    "ChatResult",
    "Usage",
    "CostEstimate",
    "Throughput",
    "LLMClient",
    "estimate_cost",
    "test_connection",
    "split_reasoning",
    "cache_key",
    "measure_throughput",
    "BUDGET_REACHED",
    "STOPPED",
    "DEFAULT_BASE_URL",
]

log = logging.getLogger("linkqa_core.llm")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BUDGET_REACHED = "budget reached"
STOPPED = "stopped"

_RETRY_STATUSES = frozenset({408, 409, 425, 429})
_FATAL_IN_BATCH = frozenset({401, 403, 404})
_MAX_RETRY_AFTER_S = 600.0
_LANE_SIZE = 32  # connections per SDK client on the default transport (its pool scans are O(n))


# -- settings -------------------------------------------------------------------------


def _split_urls(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(u.strip().rstrip("/") for u in items if u and u.strip())


@dataclass(frozen=True)
class LLMSettings:
    """Where and how to call the model. ``repr`` never shows ``api_key``.

    ``base_urls`` takes one URL, a comma-separated string or a sequence; requests are
    spread over them. Prices are USD per million tokens and only feed cost estimates and
    ``budget_usd``. ``temperature`` / ``max_tokens`` are defaults a request may override.
    """

    base_urls: tuple[str, ...] = ()
    api_key: Optional[str] = field(default=None, repr=False)
    model: str = ""
    concurrency: int = 16
    rpm: Optional[int] = None
    tpm: Optional[int] = None
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    temperature: Optional[float] = None
    max_tokens: Optional[int] = None
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    budget_tokens: Optional[int] = None
    budget_usd: Optional[float] = None
    fast_http: bool = True

    def __post_init__(self) -> None:
        urls = _split_urls(self.base_urls)  # type: ignore[arg-type]
        if not urls and self.api_key:
            urls = (DEFAULT_BASE_URL,)
        object.__setattr__(self, "base_urls", urls)
        for url in urls:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"base URL {_display_url(url)!r} is not an http:// or https:// URL")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ConfigError("backoff_base_s and backoff_max_s must be 0 or more")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive or unset, got {value}")
        for name in ("budget_tokens", "budget_usd", "price_in_per_mtok", "price_out_per_mtok"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be 0 or more, got {value}")
        if self.budget_usd is not None and not (self.price_in_per_mtok or self.price_out_per_mtok):
            raise ConfigError("budget_usd needs price_in_per_mtok and price_out_per_mtok")

    @property
    def base_url(self) -> Optional[str]:
        """The first endpoint, or ``None``."""
        return self.base_urls[0] if self.base_urls else None

    @property
    def configured(self) -> bool:
        """True when there is somewhere to send requests and a model to ask."""
        return bool(self.base_urls or self.api_key) and bool(self.model)

    @classmethod
    def from_env(cls, **overrides: Any) -> "LLMSettings":
        """Read ``OPENAI_BASE_URL`` (comma-separated for several endpoints),
        ``OPENAI_API_KEY`` and ``LINKQA_MODEL``; keyword overrides win, ``None`` ones
        are ignored so that unset command-line options can be passed straight through."""
        values: dict[str, Any] = {}
        env = os.environ
        if env.get("OPENAI_BASE_URL"):
            values["base_urls"] = env["OPENAI_BASE_URL"]
        if env.get("OPENAI_API_KEY"):
            values["api_key"] = env["OPENAI_API_KEY"]
        if env.get("LINKQA_MODEL"):
            values["model"] = env["LINKQA_MODEL"]
        known = {f.name for f in fields(cls)}
        for name, value in overrides.items():
            if name == "base_url":
                name = "base_urls"
            if name not in known:
                raise ConfigError(f"unknown LLM setting {name!r}")
            if value is not None:
                values[name] = value
        return cls(**values)

    def public_dict(self) -> dict[str, Any]:
        """The settings without the key, with URLs stripped of credentials: safe to
        store with a run's config or show in the app."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        out["base_urls"] = [_display_url(u) for u in self.base_urls]
        out["api_key_set"] = bool(self.api_key)
        return out


_ENV_NAMES = {"openai_base_url": "base_urls", "openai_api_key": "api_key", "linkqa_model": "model",
              "base_url": "base_urls", "url": "base_urls", "key": "api_key"}
_INT_FIELDS = {"concurrency", "rpm", "tpm", "max_retries", "max_tokens", "budget_tokens"}
_FLOAT_FIELDS = {"timeout_s", "backoff_base_s", "backoff_max_s", "temperature", "price_in_per_mtok",
                 "price_out_per_mtok", "budget_usd"}


def settings_from_mapping(d: Mapping[str, Any] | None, *, env: bool = True) -> LLMSettings:
    """Settings from a mapping such as ``st.secrets``: keys may be the environment names
    (``OPENAI_BASE_URL``...) or the field names (``base_urls``, ``concurrency``...), at the
    top level or inside an ``[llm]`` or ``[openai]`` table. Unknown keys are ignored.
    Values in the mapping win over the environment (read unless ``env=False``)."""
    flat: dict[str, Any] = {}
    d = d or {}
    for section in ("openai", "llm"):
        inner = d.get(section) if hasattr(d, "get") else None
        if isinstance(inner, Mapping) or hasattr(inner, "items"):
            flat.update({str(k): v for k, v in inner.items()})  # type: ignore[union-attr]
    flat.update({str(k): v for k, v in d.items() if not isinstance(v, Mapping) and not hasattr(v, "items")})
    known = {f.name for f in fields(LLMSettings)}
    values: dict[str, Any] = {}
    for raw_name, value in flat.items():
        name = raw_name.lower()
        name = _ENV_NAMES.get(name, name)
        if name not in known or value is None or value == "":
            continue
        try:
            if name in _INT_FIELDS:
                value = int(value)
            elif name in _FLOAT_FIELDS:
                value = float(value)
            elif name == "fast_http" and isinstance(value, str):
                value = value.strip().lower() not in {"0", "false", "no", "off"}
        except (TypeError, ValueError):
            raise ConfigError(f"LLM setting {raw_name!r} must be a number, got {value!r}") from None
        values[name] = value
    if env:
        return LLMSettings.from_env(**values)
    return LLMSettings(**values)


# -- requests and results -------------------------------------------------------------


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to make. ``None`` fields take the settings' defaults.

    ``response_format`` is either an OpenAI ``response_format`` object
    (``{"type": "json_schema", ...}`` / ``{"type": "json_object"}``) or a bare JSON schema,
    which is wrapped as ``json_schema``. ``extra`` holds other body fields (``top_p``,
    ``seed``, ``reasoning_effort``...). ``stage`` and ``run_id`` only label the log.
    """

    messages: Sequence[Mapping[str, Any]]
    model: Optional[str] = None
    temperature: Optional[float] = None
    max_tokens: Optional[int] = None
    response_format: Optional[Mapping[str, Any]] = None
    stage: Optional[str] = None
    run_id: Optional[int] = None
    extra: Optional[Mapping[str, Any]] = None
    cache: bool = True
    variant: int = 0

    @classmethod
    def user(cls, text: str, *, system: Optional[str] = None, **kwargs: Any) -> "ChatRequest":
        """A request with one user message (and an optional system message)."""
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": text})
        return cls(messages=messages, **kwargs)


@dataclass(frozen=True)
class ChatResult:
    """What came back. ``content`` has any ``<think>`` block removed; ``reasoning`` holds
    the ``reasoning_content`` field or the text inside ``<think>`` tags (``None`` if there
    was none). ``error`` is ``None`` on success. ``attempts`` counts HTTP attempts (0 for a
    cache hit or a request that never started)."""

    content: str = ""
    reasoning: Optional[str] = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False
    attempts: int = 0
    endpoint: Optional[str] = None
    model: Optional[str] = None
    error: Optional[str] = None
    finish_reason: Optional[str] = None
    status: Optional[int] = None
    key: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def truncated(self) -> bool:
        """The model stopped at ``max_tokens``; the content is probably cut."""
        return self.finish_reason == "length"


@dataclass
class Usage:
    """What a client has spent: HTTP calls that returned, cache hits, errors, tokens, USD."""

    requests: int = 0
    cached: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_store(cls, store: Any, run_id: int) -> "Usage":
        """What a run already spent, from the call log -- pass it as ``spent=`` when a
        run resumes so that its budget carries over."""
        spend = store.llm.spend(run_id)
        return cls(requests=spend.requests, cached=spend.cached, errors=spend.errors,
                   prompt_tokens=spend.prompt_tokens, completion_tokens=spend.completion_tokens,
                   reasoning_tokens=spend.reasoning_tokens, usd=spend.usd)


@dataclass(frozen=True)
class CostEstimate:
    requests: int
    tokens: int
    usd: float


@dataclass(frozen=True)
class Throughput:
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    concurrency: int


def estimate_cost(
    n_requests: int,
    prompt_tokens_each: float,
    output_tokens_each: float,
    reasoning_tokens_each: float = 0,
    settings: Optional[LLMSettings] = None,
) -> CostEstimate:
    """Tokens and USD for ``n_requests`` calls; reasoning tokens are billed as output.

    >>> estimate_cost(1000, 800, 400, 0, LLMSettings(price_in_per_mtok=0.5, price_out_per_mtok=1.5))
    CostEstimate(requests=1000, tokens=1200000, usd=1.0)
    """
    if n_requests < 0 or min(prompt_tokens_each, output_tokens_each, reasoning_tokens_each) < 0:
        raise ConfigError("request and token counts must be 0 or more")
    prompt = n_requests * prompt_tokens_each
    output = n_requests * (output_tokens_each + reasoning_tokens_each)
    usd = 0.0
    if settings is not None:
        usd = (prompt * settings.price_in_per_mtok + output * settings.price_out_per_mtok) / 1e6
    return CostEstimate(requests=n_requests, tokens=int(round(prompt + output)), usd=round(usd, 6))


# -- helpers: reasoning, cache key, scrubbing -------------------------------------------

_THINK = re.compile(r"<think>(.*?)</think>", re.S | re.I)


def split_reasoning(content: Optional[str], reasoning: Optional[str] = None) -> tuple[str, Optional[str]]:
    """Separate a reasoning model's thinking from its answer.

    Handles a separate ``reasoning`` field, ``<think>...</think>`` blocks, an unclosed
    leading ``<think>`` (output cut at ``max_tokens``) and a bare ``</think>`` (templates
    that put the opening tag in the prompt).

    >>> split_reasoning("<think>2+2 is 4</think> Four.")
    ('Four.', '2+2 is 4')
    """
    parts = [reasoning.strip()] if reasoning and reasoning.strip() else []
    text = content or ""
    lower = text.lower()
    if "<think>" in lower or "</think>" in lower:
        parts.extend(m.strip() for m in _THINK.findall(text))
        text = _THINK.sub("", text)
        lower = text.lower()
        i = lower.find("<think>")
        if i >= 0:  # opened, never closed: everything after it is thinking
            parts.append(text[i + len("<think>"):].strip())
            text = text[:i]
            lower = text.lower()
        j = lower.find("</think>")
        if j >= 0:  # closed, never opened: everything before it is thinking
            parts.append(text[:j].strip())
            text = text[j + len("</think>"):]
        text = text.strip()
    joined = "\n\n".join(p for p in parts if p)
    return text, (joined or None)


def _normalise_response_format(rf: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    if rf is None:
        return None
    rf = dict(rf)
    if rf.get("type") in {"json_schema", "json_object", "text"}:
        return rf
    name = str(rf.get("title") or "response")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "response"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": rf}}


def _request_body(req: ChatRequest, settings: LLMSettings) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": req.model or settings.model,
        "messages": [dict(m) for m in req.messages],
    }
    temperature = req.temperature if req.temperature is not None else settings.temperature
    if temperature is not None:
        body["temperature"] = temperature
    max_tokens = req.max_tokens if req.max_tokens is not None else settings.max_tokens
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    rf = _normalise_response_format(req.response_format)
    if rf is not None:
        body["response_format"] = rf
    if req.extra:
        for k, v in req.extra.items():
            if k in {"stream", "n"}:
                raise ConfigError(f"ChatRequest.extra may not set {k!r}")
            body[k] = v
    return body


def _key_of(body: Mapping[str, Any], variant: int) -> str:
    material = dict(body)
    if variant:
        material["__variant__"] = variant
    canon = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def cache_key(req: ChatRequest, settings: LLMSettings) -> str:
    """The cache key of a request under these settings (never depends on key or endpoint)."""
    return _key_of(_request_body(req, settings), req.variant)


_TOKENISH = re.compile(r"\b(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9._\-]{6,})")


def _scrubber(secret: Optional[str]) -> Callable[[str], str]:
    def scrub(text: str) -> str:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
        return _TOKENISH.sub("[redacted]", text)

    return scrub


def _display_url(url: str) -> str:
    """A URL without user:password@, query or fragment: safe to log and store."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "<invalid url>"


def _estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    n = 0
    for m in body.get("messages") or ():
        c = m.get("content")
        n += 4 + (len(c) // 4 if isinstance(c, str) else len(json.dumps(c)) // 4)
    return n


def _retry_after(headers: Any) -> Optional[float]:
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _error_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    try:
        text = err.response.text
    except Exception:  # noqa: BLE001 - a body we cannot read says nothing
        text = ""
    return text or getattr(err, "message", "") or type(err).__name__


# -- a fast HTTP/1.1 transport for plain http:// endpoints ---------------------------------


class _Disconnected(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: write a request, read one response."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.transport: Optional[asyncio.Transport] = None
        self.buf = bytearray()
        self.closed = False
        self.waiter: Optional[asyncio.Future[None]] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _more(self) -> None:
        if self.closed:
            raise _Disconnected()
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def roundtrip(self, data: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool]:
        assert self.transport is not None
        self.transport.write(data)
        buf = self.buf
        while True:  # response head, skipping 1xx
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                if len(buf) > 1 << 20:
                    raise httpx2.RemoteProtocolError("response head too large")
                try:
                    await self._more()
                except _Disconnected:
                    raise httpx2.RemoteProtocolError(
                        "Server disconnected without sending a response." if not buf
                        else "Server disconnected in the middle of the response head."
                    ) from None
                end = buf.find(b"\r\n\r\n")
            head = bytes(buf[:end]).split(b"\r\n")
            del buf[: end + 4]
            status_line = head[0].split(b" ", 2)
            try:
                version, status = status_line[0], int(status_line[1])
            except (IndexError, ValueError):
                raise httpx2.RemoteProtocolError("malformed status line") from None
            reason = status_line[2] if len(status_line) > 2 else b""
            headers = []
            for line in head[1:]:
                name, _, value = line.partition(b":")
                headers.append((name.strip(), value.strip()))
            if not 100 <= status < 200:
                break
        length = None
        chunked = False
        keep = version == b"HTTP/1.1"
        for name, value in headers:
            lname = name.lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif lname == b"connection":
                v = value.lower()
                if b"close" in v:
                    keep = False
                elif b"keep-alive" in v:
                    keep = True
        if status in (204, 304):
            return status, reason, headers, b"", keep
        try:
            if chunked:
                body = await self._read_chunked()
            elif length is not None:
                while len(buf) < length:
                    await self._more()
                body = bytes(buf[:length])
                del buf[:length]
            else:  # read to end of stream
                while not self.closed:
                    await self._more()
                body = bytes(buf)
                buf.clear()
                keep = False
        except _Disconnected:
            raise httpx2.RemoteProtocolError("Server disconnected in the middle of the response body.") from None
        return status, reason, headers, body, keep

    async def _read_chunked(self) -> bytes:
        buf = self.buf
        out = bytearray()
        while True:
            end = buf.find(b"\r\n")
            while end < 0:
                await self._more()
                end = buf.find(b"\r\n")
            size = int(bytes(buf[:end]).split(b";")[0].strip() or b"0", 16)
            del buf[: end + 2]
            if size == 0:  # trailers end with an empty line
                while True:
                    end = buf.find(b"\r\n")
                    while end < 0:
                        await self._more()
                        end = buf.find(b"\r\n")
                    line = bytes(buf[:end])
                    del buf[: end + 2]
                    if not line:
                        return bytes(out)
            while len(buf) < size + 2:
                await self._more()
            out += buf[:size]
            del buf[: size + 2]


class _FastTransport(httpx2.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 over asyncio for ``http://`` URLs; no TLS, no proxies.

    About a third of the CPU per request of the default transport, and O(1) pool work,
    so one process can keep hundreds of requests in flight.
    """

    def __init__(self, max_idle: int = 1024):
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._closed = False

    async def _connect(self, host: str, port: int, timeout: Optional[float]) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: _Connection(loop), host, port)
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as err:
            raise httpx2.ConnectError(f"cannot connect to {host}:{port}: {err.strerror or err}") from None
        return conn

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._closed:
            raise httpx2.ConnectError("transport is closed", request=request)
        url = request.url
        host, port = url.host, url.port or 80
        timeouts = request.extensions.get("timeout") or {}
        body = await request.aread()
        lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), url.raw_path)]
        lines.extend(k + b": " + v for k, v in request.headers.raw)
        data = b"\r\n".join(lines) + b"\r\n\r\n" + body
        pool = self._idle.setdefault((host, port), [])
        conn = None
        while pool:
            candidate = pool.pop()
            if candidate.closed or candidate.buf:
                candidate.close()
                continue
            conn = candidate
            break
        if conn is None:
            conn = await self._connect(host, port, timeouts.get("connect"))
        try:
            async with asyncio.timeout(timeouts.get("read")):
                status, reason, headers, content, keep = await conn.roundtrip(data)
        except TimeoutError:
            conn.close()
            raise httpx2.ReadTimeout("timed out waiting for the response", request=request) from None
        except httpx2.HTTPError as err:
            conn.close()
            err.request = request
            raise
        except BaseException:  # cancelled mid-request: the connection's state is unknown
            conn.close()
            raise
        if keep and not conn.closed and not self._closed and len(pool) < self.max_idle:
            pool.append(conn)
        else:
            conn.close()
        return httpx2.Response(
            status,
            headers=headers,
            stream=httpx2.ByteStream(content),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._idle.values():
            for conn in pool:
                conn.close()
        self._idle.clear()


def _proxied(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


# -- rate limiting ------------------------------------------------------------------------


class _Bucket:
    """A token bucket on the event loop: ``rate`` per second, at most ``capacity`` banked.

    A take larger than the capacity waits for a full bucket and then goes into debt, so a
    single huge request is slowed, not refused.
    """

    def __init__(self, rate: float, capacity: float):
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float) -> None:
        need = min(amount, self.capacity)
        for _ in range(1_000_000):  # bounded; each turn waits for the refill it needs
            self._refill()
            if self.level >= need:
                self.level -= amount
                return
            await asyncio.sleep(max(0.001, (need - self.level) / self.rate))

    def give_back(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + amount)


# -- the client -----------------------------------------------------------------------------


class _Endpoint:
    def __init__(self, url: str, lanes: list[openai.AsyncOpenAI]):
        self.url = url
        self.display = _display_url(url)
        self.lanes = lanes
        self.lane_load = [0] * len(lanes)
        self.in_flight = 0
        self.sent = 0
        self.paused_until = 0.0


@dataclass
class _Job:
    index: int
    key: str
    body: dict[str, Any]
    req: ChatRequest


@dataclass
class _Outcome:
    index: int
    result: ChatResult
    job: Optional[_Job]
    fatal: bool = False  # a non-retryable status
    logged: bool = True  # write an llm_calls row


class LLMClient:
    """Chat completions with concurrency, retries, rate limits, cache, budget and a log.

    Thread-safe: several threads may call :meth:`complete` at once; together they never
    exceed ``concurrency`` requests in flight. Call :meth:`close` (or use ``with``) when
    done; it stops the background event loop thread.
    """

    def __init__(self, settings: LLMSettings, store: Any = None, *, spent: Optional[Usage] = None):
        if not settings.base_urls:
            raise ConfigError("no LLM endpoint: set OPENAI_BASE_URL (or OPENAI_API_KEY for api.openai.com)")
        if not settings.model:
            raise ConfigError("no model: set LINKQA_MODEL or pass model=")
        self.settings = settings
        self.store = store
        self._scrub = _scrubber(settings.api_key)
        self._usage = replace(spent) if spent is not None else Usage()
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._endpoints: list[_Endpoint] = []
        self._http: list[Any] = []
        self._closed = False
        self._finalizer: Optional[weakref.finalize] = None
        # event-loop state (touched only on the loop thread)
        self._sem: Optional[asyncio.Semaphore] = None
        self._done_event: Optional[asyncio.Event] = None
        self._rpm: Optional[_Bucket] = None
        self._tpm: Optional[_Bucket] = None
        self._in_flight = 0
        self._finished_calls = 0
        self._finished_tokens = 0
        self._avg_completion = 256.0

    def __repr__(self) -> str:
        urls = ", ".join(_display_url(u) for u in self.settings.base_urls)
        return f"<LLMClient {self.settings.model!r} at {urls} concurrency={self.settings.concurrency}>"

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
            self._closed = True
        if loop is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        try:
            asyncio.run_coroutine_threadsafe(self._aclose(), loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - closing must not fail the caller
            log.debug("closing the HTTP clients failed", exc_info=False)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        if not loop.is_running():
            loop.close()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise LLMError("this LLM client is closed")
            if self._loop is not None:
                return self._loop
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="linkqa-llm", daemon=True)
            thread.start()
            try:
                asyncio.run_coroutine_threadsafe(self._astart(), loop).result(timeout=30)
            except BaseException:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=5)
                raise
            self._loop, self._thread = loop, thread
            # a client dropped without close() must not leave its thread running
            self._finalizer = weakref.finalize(self, _stop_loop, loop, thread)
            return loop

    async def _astart(self) -> None:
        s = self.settings
        self._sem = asyncio.Semaphore(s.concurrency)
        self._done_event = asyncio.Event()
        if s.rpm:
            self._rpm = _Bucket(s.rpm / 60.0, s.rpm / 60.0)
        if s.tpm:
            self._tpm = _Bucket(s.tpm / 60.0, s.tpm / 60.0)
        timeout = httpx2.Timeout(s.timeout_s, connect=min(s.timeout_s, 10.0))
        api_key = s.api_key or "EMPTY"  # keyless local servers; the SDK insists on one
        for url in s.base_urls:
            fast = s.fast_http and url.startswith("http://") and not _proxied(url)
            n_lanes = 1 if fast else max(1, math.ceil(s.concurrency / _LANE_SIZE))
            per_lane = math.ceil(s.concurrency / n_lanes) + 4
            lanes = []
            for _ in range(n_lanes):
                if fast:
                    http = httpx2.AsyncClient(transport=_FastTransport(max_idle=s.concurrency + 8), timeout=timeout)
                else:
                    limits = httpx2.Limits(max_connections=per_lane, max_keepalive_connections=per_lane)
                    http = httpx2.AsyncClient(limits=limits, timeout=timeout, follow_redirects=True)
                self._http.append(http)
                lanes.append(openai.AsyncOpenAI(
                    base_url=url, api_key=api_key, max_retries=0, timeout=timeout, http_client=http,
                ))
            self._endpoints.append(_Endpoint(url, lanes))

    async def _aclose(self) -> None:
        for http in self._http:
            try:
                await http.aclose()
            except Exception:  # noqa: BLE001
                pass

    # -- public calls ----------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """A snapshot of what this client has spent (including ``spent=``)."""
        return replace(self._usage)

    @property
    def budget_reached(self) -> bool:
        s, u = self.settings, self._usage
        if s.budget_tokens is not None and u.total_tokens >= s.budget_tokens:
            return True
        return s.budget_usd is not None and u.usd >= s.budget_usd

    def complete(self, req: ChatRequest) -> ChatResult:
        """One request, blocking. Raises :class:`LLMError` for a non-retryable 4xx;
        other failures come back as ``result.error``."""
        return self._run([req], None, None, fatal_all_4xx=True)[0]

    def complete_many(
        self,
        reqs: Sequence[ChatRequest],
        on_result: Optional[Callable[[int, ChatResult], None]] = None,
        stop_event: Optional[threading.Event] = None,
    ) -> list[ChatResult]:
        """Run ``reqs`` with up to ``concurrency`` in flight; results in request order.

        ``on_result(index, result)`` is called in the calling thread as each result
        arrives (cache hits first), after its ``llm_calls`` row is written. Setting
        ``stop_event`` stops new requests from starting: the ones in flight finish, the
        rest come back with ``error == STOPPED``. The budget works the same way with
        ``BUDGET_REACHED``. If ``on_result`` raises, no new request starts, the ones in
        flight finish (unreported) and the exception propagates.
        """
        return self._run(list(reqs), on_result, stop_event, fatal_all_4xx=False)

    def forget(self, req: ChatRequest) -> bool:
        """Drop a request's cached answer; True if there was one."""
        if self.store is None:
            return False
        return self.store.llm.forget(cache_key(req, self.settings))

    # -- the calling thread's side ---------------------------------------------------------

    def _run(
        self,
        reqs: list[ChatRequest],
        on_result: Optional[Callable[[int, ChatResult], None]],
        stop_event: Optional[threading.Event],
        *,
        fatal_all_4xx: bool,
    ) -> list[ChatResult]:
        n = len(reqs)
        results: list[Optional[ChatResult]] = [None] * n
        if n == 0:
            return []
        jobs: list[_Job] = []
        followers: dict[str, list[int]] = {}
        leaders: dict[str, int] = {}
        for i, req in enumerate(reqs):
            body = _request_body(req, self.settings)
            key = _key_of(body, req.variant)
            if req.cache and key in leaders:
                followers.setdefault(key, []).append(i)
                continue
            if req.cache:
                leaders[key] = i
            jobs.append(_Job(i, key, body, req))

        hits = self._cache_lookup([j for j in jobs if j.req.cache])
        misses = [j for j in jobs if j.key not in hits or not j.req.cache]
        control = _Control(stop_event)
        out: "queue.Queue[_Outcome]" = queue.Queue()
        future = None
        if misses:
            loop = self._ensure_loop()
            future = asyncio.run_coroutine_threadsafe(
                self._abatch(misses, out, control, fatal_all_4xx), loop
            )

        pending_error: Optional[BaseException] = None
        fatal: Optional[_Outcome] = None

        def deliver(outcomes: list[_Outcome]) -> None:
            nonlocal pending_error, fatal
            expanded: list[_Outcome] = []
            for o in outcomes:
                expanded.append(o)
                if o.job is not None and o.job.req.cache:
                    for fi in followers.get(o.job.key, ()):
                        if o.result.ok:
                            expanded.append(_Outcome(fi, _as_hit(o.result), o.job, logged=True))
                            with self._lock:
                                self._usage.cached += 1
                        else:
                            expanded.append(_Outcome(fi, o.result, o.job, fatal=o.fatal, logged=False))
            self._record(expanded)
            for o in expanded:
                results[o.index] = o.result
                if o.fatal and fatal is None:
                    fatal = o
                    control.abort = True
                if pending_error is not None or on_result is None or o.fatal:
                    continue
                if o.result.attempts == 0 and not o.result.cached:
                    continue  # never started: budget or stop
                try:
                    on_result(o.index, o.result)
                except BaseException as err:  # noqa: BLE001 - re-raised below
                    pending_error = err
                    control.abort = True

        # cache hits first, while the network works on the misses
        hit_outcomes = []
        for job in jobs:
            if job.req.cache and job.key in hits:
                hit_outcomes.append(_Outcome(job.index, hits[job.key], job))
        for k in range(0, len(hit_outcomes), 500):
            deliver(hit_outcomes[k:k + 500])

        remaining = len(misses)
        try:
            while remaining > 0:
                try:
                    first = out.get(timeout=0.25)
                except queue.Empty:
                    if future is not None and future.done():
                        exc = future.exception()
                        if exc is not None:
                            raise LLMError(self._scrub(f"the LLM client failed: {type(exc).__name__}: {exc}")) from None
                        if out.empty():
                            break
                    continue
                batch = [first]
                if remaining > 1 and self.store is not None:
                    time.sleep(0.02)  # let a few more arrive: one transaction for all of them
                while len(batch) < 1000:
                    try:
                        batch.append(out.get_nowait())
                    except queue.Empty:
                        break
                remaining -= len(batch)
                deliver(batch)
        except BaseException:
            control.abort = True
            raise
        if pending_error is not None:
            raise pending_error
        if fatal is not None:
            raise LLMError(fatal.result.error or "the endpoint refused the request")
        for i, r in enumerate(results):
            if r is None:  # unreachable unless the loop died; never return holes
                results[i] = ChatResult(error="no result (client closed?)", key="")
        return results  # type: ignore[return-value]

    def _cache_lookup(self, jobs: list[_Job]) -> dict[str, ChatResult]:
        if self.store is None or not jobs:
            return {}
        found = {
            key: ChatResult(content=data.get("content") or "", reasoning=data.get("reasoning"), model=data.get("model"),
                            finish_reason=data.get("finish_reason"), cached=True, key=key)
            for key, data in self.store.llm.cached([j.key for j in jobs]).items()
        }
        if found:
            with self._lock:
                self._usage.cached += len(found)
        return found

    def _record(self, outcomes: list[_Outcome]) -> None:
        """Write call-log rows and new cache entries in one short transaction."""
        if self.store is None:
            return
        from ..store.llm import CallRow

        s = self.settings
        calls = []
        cache_rows = []
        for o in outcomes:
            r, job = o.result, o.job
            if not o.logged or job is None or (r.attempts == 0 and not r.cached):
                continue
            status = "cached" if r.cached else ("ok" if r.ok else "error")
            usd = (r.prompt_tokens * s.price_in_per_mtok + r.completion_tokens * s.price_out_per_mtok) / 1e6
            calls.append(CallRow(job.req.run_id, job.req.stage, r.key, r.endpoint, r.model or job.body.get("model"),
                                 status, r.cached, r.attempts, r.prompt_tokens, r.completion_tokens,
                                 r.reasoning_tokens, r.latency_s, self._scrub(r.error) if r.error else None, usd))
            if not r.cached and r.ok and not r.truncated and job.req.cache:
                cache_rows.append((r.key, {"content": r.content, "reasoning": r.reasoning, "model": r.model,
                                           "finish_reason": r.finish_reason, "prompt_tokens": r.prompt_tokens,
                                           "completion_tokens": r.completion_tokens,
                                           "reasoning_tokens": r.reasoning_tokens}))
        self.store.llm.record(calls, cache_rows)

    # -- the event loop's side ---------------------------------------------------------------

    async def _abatch(self, jobs: list[_Job], out: "queue.Queue[_Outcome]", control: "_Control",
                      fatal_all_4xx: bool) -> None:
        it = iter(jobs)
        workers = [asyncio.create_task(self._aworker(it, out, control, fatal_all_4xx))
                   for _ in range(min(self.settings.concurrency, len(jobs)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for w in workers:
                w.cancel()
            raise

    async def _aworker(self, it: Iterable[_Job], out: "queue.Queue[_Outcome]", control: "_Control",
                       fatal_all_4xx: bool) -> None:
        assert self._sem is not None
        for job in it:
            why = await self._admit(control)
            if why is not None:
                out.put(_Outcome(job.index, ChatResult(error=why, key=job.key), job, logged=False))
                continue
            async with self._sem:
                why = await self._admit(control)  # the wait for a slot may have been long
                if why is not None:
                    out.put(_Outcome(job.index, ChatResult(error=why, key=job.key), job, logged=False))
                    continue
                self._in_flight += 1
                try:
                    result, fatal = await self._acall(job, control)
                except BaseException as err:  # a bug must not lose the item
                    if isinstance(err, asyncio.CancelledError):
                        raise
                    log.exception("unexpected error in an LLM call")
                    result, fatal = ChatResult(error=self._scrub(f"internal error: {type(err).__name__}"),
                                               key=job.key, attempts=1), False
                finally:
                    self._in_flight -= 1
                self._account(result)
            is_fatal = fatal and (fatal_all_4xx or result.status in _FATAL_IN_BATCH)
            if is_fatal:
                control.abort = True  # every other request would fail the same way
            out.put(_Outcome(job.index, result, job, fatal=is_fatal))

    async def _admit(self, control: "_Control") -> Optional[str]:
        """``None`` if a new request may start, else why not. Waits while the requests in
        flight would probably spend the rest of the budget."""
        s = self.settings
        for _ in range(100_000):  # bounded: each turn waits for a request to finish
            if control.abort or control.stopped():
                return STOPPED
            if self.budget_reached:
                return BUDGET_REACHED
            if s.budget_tokens is None and s.budget_usd is None:
                return None
            if self._in_flight == 0:
                return None
            if self._finished_calls == 0:  # no cost known yet: let the first call finish
                await self._wait_done()
                continue
            avg = self._finished_tokens / self._finished_calls
            projected_tokens = self._usage.total_tokens + avg * self._in_flight
            over = s.budget_tokens is not None and projected_tokens >= s.budget_tokens
            if s.budget_usd is not None:
                avg_usd = self._usage.usd / max(1, self._usage.requests)
                over = over or self._usage.usd + avg_usd * self._in_flight >= s.budget_usd
            if not over:
                return None
            await self._wait_done()
        return BUDGET_REACHED

    async def _wait_done(self) -> None:
        assert self._done_event is not None
        self._done_event.clear()
        try:
            await asyncio.wait_for(self._done_event.wait(), timeout=0.5)
        except TimeoutError:
            pass
        return None

    def _account(self, r: ChatResult) -> None:
        s = self.settings
        with self._lock:
            u = self._usage
            if r.attempts:
                u.requests += 1
            if r.error:
                u.errors += 1
            u.prompt_tokens += r.prompt_tokens
            u.completion_tokens += r.completion_tokens
            u.reasoning_tokens += r.reasoning_tokens
            u.usd += (r.prompt_tokens * s.price_in_per_mtok + r.completion_tokens * s.price_out_per_mtok) / 1e6
        if r.total_tokens:
            self._finished_calls += 1
            self._finished_tokens += r.total_tokens
            self._avg_completion = 0.9 * self._avg_completion + 0.1 * r.completion_tokens
        if self._done_event is not None:
            self._done_event.set()

    def _pick(self) -> tuple[_Endpoint, int]:
        now = time.monotonic()
        ep = min(self._endpoints, key=lambda e: (e.paused_until > now, e.in_flight, e.sent))
        lane = min(range(len(ep.lanes)), key=ep.lane_load.__getitem__) if len(ep.lanes) > 1 else 0
        return ep, lane

    async def _acall(self, job: _Job, control: "_Control") -> tuple[ChatResult, bool]:
        """One request with retries; returns (result, fatal)."""
        s = self.settings
        body = job.body
        est_prompt = _estimate_prompt_tokens(body)
        started = time.monotonic()
        last_error = ""
        status: Optional[int] = None
        attempts = 0
        ep = self._endpoints[0]
        while True:
            ep, lane = self._pick()
            wait = ep.paused_until - time.monotonic()
            if wait > 0:
                await self._sleep(wait, control)
            if self._rpm is not None:
                await self._rpm.take(1)
            reserved = 0.0
            if self._tpm is not None:
                reserved = est_prompt + min(float(body.get("max_tokens") or 1e9), self._avg_completion)
                await self._tpm.take(reserved)
            attempts += 1
            retry_after: Optional[float] = None
            ep.in_flight += 1
            ep.lane_load[lane] += 1
            ep.sent += 1
            t0 = time.monotonic()
            try:
                async with asyncio.timeout(s.timeout_s):
                    data = await ep.lanes[lane].post("/chat/completions", body=body, cast_to=object)
                result = self._parse(data, job, ep, attempts, time.monotonic() - t0)
                if self._tpm is not None:
                    self._tpm.give_back(reserved - result.total_tokens)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s -> %s in %.2fs (%d attempt(s))", job.key[:12], ep.display,
                              result.latency_s, attempts)
                return result, False
            except openai.APIStatusError as err:
                status = err.status_code
                last_error = f"HTTP {status}: {self._scrub(_error_message(err))[:300]}"
                if not (status in _RETRY_STATUSES or status >= 500):
                    log.warning("%s refused a request: %s", ep.display, last_error)
                    return self._failure(job, ep, attempts, started, _fatal_message(status, last_error, ep, body),
                                         status), True
                retry_after = _retry_after(err.response.headers)
                if retry_after is not None:
                    retry_after = min(retry_after, _MAX_RETRY_AFTER_S)
                    ep.paused_until = max(ep.paused_until, time.monotonic() + retry_after)
            except (TimeoutError, openai.APITimeoutError):
                status = None
                last_error = f"timed out after {s.timeout_s:g} s"
            except openai.APIConnectionError as err:
                status = None
                cause = err.__cause__
                detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(err)
                last_error = self._scrub(f"connection error: {detail}")[:300]
            except _MalformedResponse as err:
                last_error = str(err)
            except ValueError as err:  # the body was not JSON
                last_error = f"invalid response body (not JSON: {type(err).__name__})"
            finally:
                ep.in_flight -= 1
                ep.lane_load[lane] -= 1
            if attempts > s.max_retries:
                log.warning("%s: gave up after %d attempts: %s", ep.display, attempts, last_error)
                return self._failure(job, ep, attempts, started, f"gave up after {attempts} attempts; last error: "
                                     f"{last_error}", status), False
            if control.abort or control.stopped():
                return self._failure(job, ep, attempts, started, f"{STOPPED} after {attempts} attempts; last error: "
                                     f"{last_error}", status), False
            delay = random.uniform(0, min(s.backoff_max_s, s.backoff_base_s * 2 ** (attempts - 1)))
            if retry_after is not None:
                delay = max(delay, retry_after)
            log.info("%s: attempt %d failed (%s); retrying in %.2fs", ep.display, attempts, last_error, delay)
            await self._sleep(delay, control)

    async def _sleep(self, seconds: float, control: "_Control") -> None:
        end = time.monotonic() + seconds
        for _ in range(int(seconds / 0.25) + 2):  # wake up to notice a stop
            left = end - time.monotonic()
            if left <= 0 or control.abort or control.stopped():
                return
            await asyncio.sleep(min(left, 0.25))

    def _failure(self, job: _Job, ep: _Endpoint, attempts: int, started: float, error: str,
                 status: Optional[int]) -> ChatResult:
        return ChatResult(error=self._scrub(error), attempts=attempts, endpoint=ep.display,
                          model=job.body.get("model"), latency_s=time.monotonic() - started, status=status,
                          key=job.key)

    def _parse(self, data: Any, job: _Job, ep: _Endpoint, attempts: int, latency: float) -> ChatResult:
        if not isinstance(data, Mapping):
            raise _MalformedResponse("invalid response body (not a JSON object)")
        choices = data.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], Mapping):
            raise _MalformedResponse("invalid response body (no choices)")
        choice = choices[0]
        message = choice.get("message") or {}
        raw_content = message.get("content")
        if isinstance(raw_content, list):  # content parts
            raw_content = "".join(str(p.get("text", "")) for p in raw_content if isinstance(p, Mapping))
        field_reasoning = message.get("reasoning_content") or message.get("reasoning")
        content, reasoning = split_reasoning(raw_content, field_reasoning if isinstance(field_reasoning, str) else None)
        usage = data.get("usage") or {}
        details = usage.get("completion_tokens_details") or {}
        return ChatResult(
            content=content,
            reasoning=reasoning,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            reasoning_tokens=int((details.get("reasoning_tokens") if isinstance(details, Mapping) else 0) or 0),
            latency_s=latency,
            attempts=attempts,
            endpoint=ep.display,
            model=data.get("model") or job.body.get("model"),
            finish_reason=choice.get("finish_reason"),
            status=200,
            key=job.key,
        )


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)
    if thread is not threading.current_thread():
        thread.join(timeout=5)
        if not loop.is_running() and not loop.is_closed():
            loop.close()  # also ends the default executor's threads


class _MalformedResponse(Exception):
    pass


class _Control:
    """Stop flags shared between the calling thread and the event loop."""

    def __init__(self, stop_event: Optional[threading.Event]):
        self.stop_event = stop_event
        self.abort = False

    def stopped(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()


def _as_hit(r: ChatResult) -> ChatResult:
    return replace(r, cached=True, prompt_tokens=0, completion_tokens=0, reasoning_tokens=0, latency_s=0.0,
                   attempts=0, endpoint=None)


def _fatal_message(status: int, error: str, ep: _Endpoint, body: Mapping[str, Any]) -> str:
    hint = {
        401: "check the API key (OPENAI_API_KEY)",
        403: "the key has no access to this model or endpoint",
        404: f"model {body.get('model')!r} or the path is unknown there; check LINKQA_MODEL and OPENAI_BASE_URL",
        400: "the endpoint rejected the request as malformed",
        413: "the request is too large for the endpoint",
        422: "the endpoint could not process the request",
    }.get(status, "the endpoint refused the request")
    return f"{ep.display} answered {error} -- {hint}"


# -- connection test and throughput ------------------------------------------------------


def test_connection(settings: LLMSettings, *, timeout_s: float = 15.0) -> tuple[bool, str]:
    """Check every endpoint: list its models, or make a 1-token call where listing is not
    offered. Returns ``(ok, message)``; the message never contains the key."""
    if not settings.base_urls:
        return False, "No endpoint configured: set OPENAI_BASE_URL (or OPENAI_API_KEY for api.openai.com)."
    if not settings.model:
        return False, "No model configured: set LINKQA_MODEL."
    scrub = _scrubber(settings.api_key)
    messages = []
    all_ok = True
    for url in settings.base_urls:
        shown = _display_url(url)
        client = openai.OpenAI(base_url=url, api_key=settings.api_key or "EMPTY", max_retries=0,
                               timeout=min(timeout_s, settings.timeout_s))
        try:
            try:
                ids = [m.id for m in client.models.list().data]
                if settings.model in ids or not ids:
                    messages.append(f"{shown}: connected; model {settings.model!r} is served.")
                else:
                    # some servers list aliases only: prove the model answers
                    _one_token_call(client, settings.model)
                    messages.append(f"{shown}: connected; {settings.model!r} answers "
                                    f"(not among the {len(ids)} listed models).")
            except openai.NotFoundError:
                _one_token_call(client, settings.model)
                messages.append(f"{shown}: connected; {settings.model!r} answers.")
        except openai.APIStatusError as err:
            all_ok = False
            hint = {401: " -- check the API key", 403: " -- the key has no access",
                    404: " -- check the model name and base URL"}.get(err.status_code, "")
            messages.append(f"{shown}: HTTP {err.status_code}: {scrub(_error_message(err))[:200]}{hint}")
        except openai.APITimeoutError:
            all_ok = False
            messages.append(f"{shown}: no answer within {min(timeout_s, settings.timeout_s):g} s.")
        except openai.APIConnectionError as err:
            all_ok = False
            cause = err.__cause__
            messages.append(f"{shown}: cannot connect ({scrub(str(cause) if cause else str(err))[:200]}).")
        except Exception as err:  # noqa: BLE001 - any failure is the answer to "does it work?"
            all_ok = False
            messages.append(f"{shown}: {type(err).__name__}: {scrub(str(err))[:200]}")
        finally:
            client.close()
    return all_ok, " ".join(messages)


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _one_token_call(client: openai.OpenAI, model: str) -> None:
    client.post("/chat/completions", cast_to=object,
                body={"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})


def measure_throughput(settings: LLMSettings, n_requests: int, *, store: Any = None,
                       prompt: str = "ping") -> Throughput:
    """Send ``n_requests`` distinct small requests (cache off) and time them.

    The connections are opened first by a warm-up round of ``concurrency`` requests that is
    not timed. For benchmarks: compare ``requests_per_s`` with ``concurrency / latency``.
    """
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

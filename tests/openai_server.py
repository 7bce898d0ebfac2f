"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It speaks real HTTP on a free port, so the code under test uses the real ``openai`` SDK
with no patching. Each test scripts what the "model" does::

    with FakeOpenAI(latency=0.2) as srv:
        srv.script(HTTPError(429, retry_after=0.3), Answer("hello"))
        client = LLMClient(LLMSettings(base_urls=(srv.base_url,), api_key="k", model="m"))
        ...
        assert len(srv.chat_requests) == 2

and, to test against the behaviour of a real server, which server it is and how its
responses travel::

    with FakeOpenAI(StageModel(misbehave={"fewer_items": 2}), profile="llama_cpp",
                    wire=Wire(chunks=3, close=True), check_model=True, context_length=4096) as srv:
        ...

What happens to a chat completion, in order:

1. refusals a real server makes before any generation, each in its profile's words
   (:mod:`openai_profiles`): a wrong key (``api_key``), a rate limit (``ratelimit``), an
   unknown model (``check_model``, against ``models``), a prompt over ``context_length``,
   a ``response_format`` the server does not take. These consume no script.
2. the answer: the queue filled by :meth:`FakeOpenAI.script` (one spec per request, in
   order); else the ``responder`` callable (request JSON -> spec, or ``None`` to fall
   through; :class:`~stage_model.StageModel` is one); else an :class:`Answer` echoing
   the last user message. It waits ``latency`` + the spec's ``delay``.
3. the profile reshapes an :class:`Answer` (prose, ``<think>``, blank JSON...), and the
   response goes out as its :class:`Wire` says (spec -> server -> profile -> default).

Spec types (:mod:`openai_specs`): :class:`Answer`, :class:`HTTPError` (status, error
body in the wire's style, ``Retry-After`` in seconds / ms / HTTP-date), :class:`Drop`
(close the socket without answering), :class:`BrokenBody` (a body that is not JSON).

Every request is recorded (:attr:`FakeOpenAI.requests`) with its JSON body, headers,
times, status and the sizes and times of the writes that answered it; the server tracks
the largest number of requests in flight at once. Starting a server costs a bind and a
thread (about a millisecond), so tests may start many.
"""

from __future__ import annotations

import collections
import json
import math
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Union

from openai_profiles import (PROFILES, VLLM, HostedReasoning, LlamaCpp, Ollama, Profile, Prose, Strict,
                             make_profile)
from openai_specs import (DEFAULT_WIRE, ERROR_STYLES, Answer, BrokenBody, Drop, HTTPError, RateLimit, Spec, Split,
                          Wire, count_tokens, prompt_text)
from openai_wire import (LAST_CHUNK, RateState, chunk, default_message, encode_head, encode_response, error_body,
                         framing_headers, retry_headers)
from stage_model import MISBEHAVIOURS, StageModel

__all__ = [
    "Answer",
    "HTTPError",
    "Drop",
    "BrokenBody",
    "Spec",
    "Wire",
    "Split",
    "RateLimit",
    "ERROR_STYLES",
    "RecordedRequest",
    "FakeOpenAI",
    "count_tokens",
    "Profile",
    "Strict",
    "LlamaCpp",
    "HostedReasoning",
    "Prose",
    "VLLM",
    "Ollama",
    "PROFILES",
    "StageModel",
    "MISBEHAVIOURS",
]

Header = tuple[str, str]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    received_at: float
    answered_at: Optional[float] = None
    outcome: str = ""
    raw: bytes = b""
    writes: list[tuple[float, int]] = field(default_factory=list)  # (time, bytes) per write


def echo_responder(body: Any) -> Answer:
    """The default: answer ``echo: <last user message>``."""
    last = ""
    if isinstance(body, dict):
        for message in body.get("messages") or []:
            if isinstance(message, dict) and message.get("role") == "user":
                last = str(message.get("content"))
    return Answer(f"echo: {last}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True
    fake: "FakeOpenAI"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30  # an idle keep-alive connection ends after this many seconds

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        pass

    def setup(self) -> None:
        super().setup()
        try:  # no Nagle delay between our writes and the client's
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    # -- HTTP verbs ---------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        fake = self.server.fake
        record = fake._record(self, None, b"")
        if not fake._authorised(self):
            return self._error(record, fake._auth_error(self))
        if self.path.rstrip("/").endswith("/models"):
            data = {"object": "list", "data": [fake.profile.model_card(m) for m in fake.models]}
            return self._send(record, 200, "application/json", json.dumps(data).encode(), fake._wire(None))
        self._error(record, HTTPError(404, f"Unknown path {self.path}", type="invalid_request_error"))

    def do_POST(self) -> None:  # noqa: N802
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = fake._record(self, body, raw)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._error(record, HTTPError(404, f"Unknown path {self.path}", type="invalid_request_error"))
        if not fake._authorised(self):
            return self._error(record, fake._auth_error(self))
        if not isinstance(body, dict):
            return self._error(record, HTTPError(400, "Request body is not a JSON object", type="invalid_request_error"))
        estimate = count_tokens(prompt_text(body)) + int(body.get("max_tokens") or 0)
        event, over = fake._rates.admit(estimate) if fake._rates else (None, None)
        if over is not None:
            return self._error(record, fake._rate_error(body, *over))
        refusal = fake._refusal(body, raw)
        if refusal is not None:
            return self._error(record, refusal)
        spec = fake._next_spec(body)
        fake._enter()
        try:
            wire = fake._wire(getattr(spec, "wire", None))
            wait = fake.latency + getattr(spec, "delay", 0.0)
            if isinstance(spec, Answer) and wire.keepalive and wait > 0:
                return self._answer_with_keepalive(record, spec, body, wire, wait, event)
            fake._sleep(wait)
            if isinstance(spec, Drop):
                record.outcome = "drop"
                record.answered_at = time.time()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if isinstance(spec, HTTPError):
                return self._error(record, spec)
            if isinstance(spec, BrokenBody):
                return self._send(record, spec.status, "application/json", spec.body, wire)
            if not isinstance(spec, Answer):
                raise TypeError(f"not a response spec: {spec!r}")
            payload, tokens = fake._answer_payload(spec, body, wire)
            if event is not None:
                fake._rates.settle(event, tokens)
            extra = fake.profile.success_headers(time.time() - record.received_at)
            self._send(record, 200, "application/json", payload, wire, extra)
        finally:
            fake._leave()

    # -- writing ------------------------------------------------------------------------

    def _error(self, record: RecordedRequest, err: HTTPError) -> None:
        fake = self.server.fake
        wire = fake._wire(err.wire)
        message = err.message or default_message(err.status)
        content_type, payload = error_body(wire.error_style or "openai", err.status, message, err.type, err.code,
                                           err.param)
        extra = retry_headers(err.retry_after, err.retry_after_as) + list(err.headers)
        self._send(record, err.status, content_type, payload, wire, extra)

    def _send(self, record: RecordedRequest, status: int, content_type: str, payload: bytes, wire: Wire,
              extra: Optional[list[Header]] = None) -> None:
        fake = self.server.fake
        extra = list(extra or [])
        if fake._rates is not None and record.path.rstrip("/").endswith("/chat/completions"):
            extra += fake._rates.headers()
        record.outcome = str(status)
        pieces = encode_response(status, content_type, payload, wire, extra)
        pause = (wire.split or Split(pieces=1)).pause
        for k, piece in enumerate(pieces):
            if k:
                fake._sleep(pause)
            if not self._write(record, piece):
                return
        record.answered_at = time.time()
        if wire.close:
            self.close_connection = True

    def _write(self, record: RecordedRequest, data: bytes) -> bool:
        try:
            self.connection.sendall(data)
        except OSError:
            self.close_connection = True
            return False
        record.writes.append((time.time(), len(data)))
        return True

    def _answer_with_keepalive(self, record: RecordedRequest, spec: Answer, body: dict, wire: Wire, wait: float,
                               event: Optional[list]) -> None:
        """DeepSeek under load: the head at once, blank lines while waiting, then the JSON."""
        fake = self.server.fake
        wire = replace(wire, chunks=max(1, wire.chunks or 0))
        extra = list(wire.headers or ()) + (fake._rates.headers() if fake._rates else [])
        record.outcome = "200"
        if not self._write(record, encode_head(200, framing_headers("application/json", 0, wire) + extra)):
            return
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0 and not fake._stopping.is_set():
            fake._sleep(min(wire.keepalive or left, left))
            if not self._write(record, chunk(b"\n")):
                return
        payload, tokens = fake._answer_payload(spec, body, wire)
        if event is not None:
            fake._rates.settle(event, tokens)
        if self._write(record, chunk(payload) + LAST_CHUNK):
            record.answered_at = time.time()
        if wire.close:
            self.close_connection = True


class FakeOpenAI:
    """The server. Use as a context manager, or call :meth:`start` and :meth:`stop`.

    - ``responder``: request JSON -> spec (or ``None``); see the module docstring.
    - ``latency``: seconds added to every chat completion (the benchmark uses 0.2).
    - ``api_key``: when set, requests without ``Authorization: Bearer <api_key>`` are
      refused as the profile's server does (``strict`` quotes the key sent back, as
      OpenAI does, so tests can check that the client scrubs it).
    - ``models``: what ``/v1/models`` lists; with ``check_model`` a request for another
      model is refused as the profile's server does (404 "model does not exist"...).
    - ``profile``: a name from :data:`PROFILES` or a :class:`Profile` (default ``strict``).
    - ``wire``: a :class:`Wire` for every response (a spec's own ``wire`` wins).
    - ``context_length``: refuse requests whose prompt (+ ``max_tokens``) exceeds it.
    - ``ratelimit``: a :class:`RateLimit`: ``x-ratelimit-*`` headers, 429s when enforced.
    """

    def __init__(
        self,
        responder: Optional[Callable[[Any], Optional[Spec]]] = None,
        *,
        latency: float = 0.0,
        api_key: Optional[str] = None,
        models: tuple[str, ...] = ("fake-model",),
        host: str = "127.0.0.1",
        profile: Union[str, Profile, None] = None,
        wire: Optional[Wire] = None,
        check_model: bool = False,
        context_length: Optional[int] = None,
        ratelimit: Optional[RateLimit] = None,
    ):
        self.responder = responder
        self.latency = latency
        self.api_key = api_key
        self.models = models
        self.host = host
        self.profile = make_profile(profile)
        self.wire = wire or Wire()
        self.check_model = check_model
        self.context_length = context_length
        self.ratelimit = ratelimit
        self._rates = RateState(ratelimit) if ratelimit is not None else None
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._queue: collections.deque[Spec] = collections.deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"<FakeOpenAI {self.profile.name} {where}>"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> "FakeOpenAI":
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers, and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- scripting ----------------------------------------------------------------------

    def script(self, *specs: Spec) -> None:
        """Queue responses for the next chat completions, one each, in order."""
        with self._lock:
            self._queue.extend(specs)

    def reset(self) -> None:
        """Forget the queue, the recorded requests, the in-flight peak, the profile's counters
        and the rate-limit window."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.max_in_flight = self.in_flight
            self.profile = self.profile.fresh()
            self._rates = RateState(self.ratelimit) if self.ratelimit is not None else None

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    # -- used by the handler ------------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _record(self, handler: _Handler, body: Any, raw: bytes) -> RecordedRequest:
        record = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            json=body,
            received_at=time.time(),
            raw=raw,
        )
        with self._lock:
            self.requests.append(record)
        return record

    def _wire(self, spec_wire: Optional[Wire]) -> Wire:
        resolved = self.wire.over(self.profile.wire.over(DEFAULT_WIRE))
        return spec_wire.over(resolved) if spec_wire is not None else resolved

    def _authorised(self, handler: _Handler) -> bool:
        if self.api_key is None or not self.profile.checks_key:
            return True
        return handler.headers.get("Authorization") == f"Bearer {self.api_key}"

    def _auth_error(self, handler: _Handler) -> HTTPError:
        return self.profile.auth_error((handler.headers.get("Authorization") or "").removeprefix("Bearer "))

    def _rate_error(self, body: dict, kind: str, limit: int, used: int, wait: float) -> HTTPError:
        """OpenAI's 429 for a request over its requests- or tokens-per-minute limit."""
        unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
        requested = 1 if kind == "requests" else count_tokens(prompt_text(body)) + int(body.get("max_tokens") or 0)
        model = body.get("model") or self.models[0]
        wait = max(0.001, wait)
        message = (f"Rate limit reached for {model} in organization org-fake on {unit}: Limit {limit}, Used {used}, "
                   f"Requested {requested}. Please try again in {wait:.3g}s.")
        how = self.ratelimit.retry_after_as if self.ratelimit else None
        retry = max(1, math.ceil(wait)) if how == "seconds" else wait  # whole seconds, as servers send
        return HTTPError(429, message, type=kind, code="rate_limit_exceeded",
                         retry_after=retry if how else None, retry_after_as=how or "seconds")

    def _refusal(self, body: dict, raw: bytes) -> Optional[HTTPError]:
        model = body.get("model")
        if self.check_model and model not in self.models:
            refusal = self.profile.model_missing(str(model))
            if refusal is not None:
                return refusal
        if self.context_length is not None:
            completion = body.get("max_completion_tokens") or body.get("max_tokens")
            refusal = self.profile.too_long(self.context_length, count_tokens(prompt_text(body)),
                                            int(completion) if completion else None)
            if refusal is not None:
                return refusal
        return self.profile.refuse(body, raw)

    def _next_spec(self, body: Any) -> Spec:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            spec = self.responder(body)
            if spec is not None:
                return spec
        return echo_responder(body)

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _answer_payload(self, spec: Answer, body: dict, wire: Wire) -> tuple[bytes, int]:
        """The chat completion JSON of an answer, and its total tokens."""
        spec = spec if spec.as_is else self.profile.shape(spec, body)
        content: Any = spec.content
        if wire.content_parts and content is not None:
            content = [{"type": "text", "text": content}]
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if spec.reasoning_content is not None:
            if wire.reasoning_field in ("reasoning_content", "both"):
                message["reasoning_content"] = spec.reasoning_content
            if wire.reasoning_field in ("reasoning", "both"):
                message["reasoning"] = spec.reasoning_content
        if spec.reasoning is not None:
            message["reasoning"] = spec.reasoning
        text = (spec.content or "") + (spec.reasoning_content or "") + (spec.reasoning or "")
        prompt_tokens = spec.prompt_tokens if spec.prompt_tokens is not None else count_tokens(prompt_text(body))
        completion_tokens = spec.completion_tokens
        if completion_tokens is None:
            completion_tokens = count_tokens(text) + spec.reasoning_tokens
        data: dict[str, Any] = {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": spec.model or body.get("model") or self.models[0],
            "choices": [{"index": 0, "message": message, "finish_reason": spec.finish_reason, "logprobs": None}],
        }
        if wire.usage:
            data["usage"] = self.profile.usage(prompt_tokens, completion_tokens, spec.reasoning_tokens)
        return json.dumps(data).encode(), prompt_tokens + completion_tokens

"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It speaks real HTTP on a free port, so the code under test uses the real ``openai`` SDK
with no patching. Each test scripts what the "model" does::

    with FakeOpenAI(latency=0.2) as srv:
        srv.script(HTTPError(429, retry_after=0.3), Answer("hello"))
        client = LLMClient(LLMSettings(base_urls=(srv.base_url,), api_key="k", model="m"))
        ...
        assert len(srv.chat_requests) == 2

What decides a chat completion's answer, first match wins:

1. the queue filled by :meth:`FakeOpenAI.script` (one spec per request, in order);
2. the ``responder`` callable (request JSON -> spec, or ``None`` to fall through);
3. the default: an :class:`Answer` echoing the last user message.

Spec types: :class:`Answer` (content, optional ``reasoning_content``, usage),
:class:`HTTPError` (status, OpenAI-style error JSON, optional ``Retry-After``),
:class:`Drop` (close the socket without answering), :class:`BrokenBody` (a 200 whose
body is not JSON). Truncated or non-JSON *content* is just ``Answer("{\\"question\\": \\"unfin",
finish_reason="length")``. Every spec takes ``delay`` seconds before answering; the
server-wide ``latency`` is added to every chat completion.

Every request is recorded (:attr:`FakeOpenAI.requests`) with its JSON body, headers and
times, and the server tracks the largest number of requests in flight at once.
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Union

__all__ = [
    "Answer",
    "HTTPError",
    "Drop",
    "BrokenBody",
    "Spec",
    "RecordedRequest",
    "FakeOpenAI",
    "count_tokens",
]


@dataclass(frozen=True)
class Answer:
    """A normal chat completion. Token counts default to :func:`count_tokens` of the text."""

    content: Optional[str] = "ok"
    reasoning_content: Optional[str] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    reasoning_tokens: int = 0
    finish_reason: str = "stop"
    model: Optional[str] = None
    delay: float = 0.0


@dataclass(frozen=True)
class HTTPError:
    """An error status with an OpenAI-style JSON body; ``retry_after`` sets the header."""

    status: int = 500
    message: Optional[str] = None  # a default that fits the status
    retry_after: Optional[Union[float, str]] = None
    type: Optional[str] = None
    delay: float = 0.0


@dataclass(frozen=True)
class Drop:
    """Read the request, then close the connection without sending a byte."""

    delay: float = 0.0


@dataclass(frozen=True)
class BrokenBody:
    """A response whose HTTP body is not valid JSON (despite the JSON content type)."""

    body: bytes = b'{"id": "chatcmpl-broken", "choices": [{"mess'
    status: int = 200
    delay: float = 0.0


Spec = Union[Answer, HTTPError, Drop, BrokenBody]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    received_at: float
    answered_at: Optional[float] = None
    outcome: str = ""


def count_tokens(text: str) -> int:
    """A crude, deterministic token count: about one token per four characters."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _prompt_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    parts = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


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
        record = fake._record(self, None)
        if not fake._authorised(self):
            return self._finish(record, fake._auth_error(self))
        if self.path.rstrip("/").endswith("/models"):
            data = {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in fake.models],
            }
            return self._finish(record, (200, {}, json.dumps(data).encode()))
        self._finish(record, (404, {}, _error_body(f"Unknown path {self.path}", "invalid_request_error")))

    def do_POST(self) -> None:  # noqa: N802
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = fake._record(self, body)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._finish(record, (404, {}, _error_body(f"Unknown path {self.path}", "invalid_request_error")))
        if not fake._authorised(self):
            return self._finish(record, fake._auth_error(self))
        if body is None:
            return self._finish(record, (400, {}, _error_body("Request body is not JSON", "invalid_request_error")))
        spec = fake._next_spec(body)
        fake._enter()
        try:
            fake._sleep(fake.latency + getattr(spec, "delay", 0.0))
            if isinstance(spec, Drop):
                record.outcome = "drop"
                record.answered_at = time.time()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            response = fake._render(spec, body)
        finally:
            fake._leave()
        self._finish(record, response)

    # -- helpers ------------------------------------------------------------------------

    def _finish(self, record: RecordedRequest, response: tuple[int, dict[str, str], bytes]) -> None:
        status, headers, payload = response
        record.outcome = str(status)
        record.answered_at = time.time()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            # headers and body in one write: one packet, no delayed-ACK stall
            self._headers_buffer.append(b"\r\n")
            self._headers_buffer.append(payload)
            self.flush_headers()
        except OSError:
            self.close_connection = True


def _error_body(message: str, type_: str, code: Optional[str] = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


_MESSAGES = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    403: "You are not allowed to use this model.",
    404: "The model does not exist or you do not have access to it.",
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request.",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}


class FakeOpenAI:
    """The server. Use as a context manager, or call :meth:`start` and :meth:`stop`.

    ``api_key``: when set, requests without ``Authorization: Bearer <api_key>`` get a 401
    whose message quotes the key they sent, as real providers do, so tests can check that
    the client scrubs it. ``latency``: seconds added to every chat completion.
    """

    def __init__(
        self,
        responder: Optional[Callable[[Any], Optional[Spec]]] = None,
        *,
        latency: float = 0.0,
        api_key: Optional[str] = None,
        models: tuple[str, ...] = ("fake-model",),
        host: str = "127.0.0.1",
    ):
        self.responder = responder
        self.latency = latency
        self.api_key = api_key
        self.models = models
        self.host = host
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._queue: collections.deque[Spec] = collections.deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> "FakeOpenAI":
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
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
        """Forget the queue, the recorded requests and the in-flight peak."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.max_in_flight = self.in_flight

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

    def _record(self, handler: _Handler, body: Any) -> RecordedRequest:
        record = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            json=body,
            received_at=time.time(),
        )
        with self._lock:
            self.requests.append(record)
        return record

    def _authorised(self, handler: _Handler) -> bool:
        return self.api_key is None or handler.headers.get("Authorization") == f"Bearer {self.api_key}"

    def _auth_error(self, handler: _Handler) -> tuple[int, dict[str, str], bytes]:
        sent = (handler.headers.get("Authorization") or "").removeprefix("Bearer ")
        return 401, {}, _error_body(f"Incorrect API key provided: {sent}.", "invalid_request_error", "invalid_api_key")

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

    def _render(self, spec: Spec, body: Any) -> tuple[int, dict[str, str], bytes]:
        if isinstance(spec, BrokenBody):
            return spec.status, {}, spec.body
        if isinstance(spec, HTTPError):
            headers = {} if spec.retry_after is None else {"Retry-After": str(spec.retry_after)}
            type_ = spec.type or _ERROR_TYPES.get(spec.status, "server_error")
            message = spec.message or _MESSAGES.get(spec.status, f"Error {spec.status}")
            return spec.status, headers, _error_body(message, type_)
        if not isinstance(spec, Answer):
            raise TypeError(f"not a response spec: {spec!r}")
        message: dict[str, Any] = {"role": "assistant", "content": spec.content}
        if spec.reasoning_content is not None:
            message["reasoning_content"] = spec.reasoning_content
        text = (spec.content or "") + (spec.reasoning_content or "")
        prompt_tokens = spec.prompt_tokens if spec.prompt_tokens is not None else count_tokens(_prompt_text(body))
        completion_tokens = spec.completion_tokens
        if completion_tokens is None:
            completion_tokens = count_tokens(text) + spec.reasoning_tokens
        data = {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": spec.model or (body.get("model") if isinstance(body, dict) else None) or self.models[0],
            "choices": [{"index": 0, "message": message, "finish_reason": spec.finish_reason, "logprobs": None}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "completion_tokens_details": {"reasoning_tokens": spec.reasoning_tokens},
            },
        }
        return 200, {}, json.dumps(data).encode()

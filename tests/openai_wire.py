"""Bytes on the wire for the fake OpenAI server: error bodies, retry and rate-limit headers,
Content-Length or chunked bodies, and responses cut into pieces.

Each error body style follows a real server (cited per style in :func:`error_body`).
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections import deque
from http import HTTPStatus
from typing import Any, Optional, Union

from openai_specs import RateLimit, Split, Wire

__all__ = [
    "error_body",
    "default_message",
    "retry_headers",
    "format_reset",
    "RateState",
    "encode_response",
    "encode_head",
    "chunk",
    "LAST_CHUNK",
    "split_points",
    "compact_json",
]

Header = tuple[str, str]

LAST_CHUNK = b"0\r\n\r\n"

# OpenAI's error ``type`` per status (api reference, "Error codes"); 429s are ``requests``
# or ``tokens`` with code ``rate_limit_exceeded``.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
}

# vLLM's ``err_type`` per status (vllm/entrypoints/openai/engine/serving.py create_error_response).
_VLLM_TYPES = {
    400: "BadRequestError",
    401: "Unauthorized",
    404: "NotFoundError",
    422: "BadRequestError",
    500: "InternalServerError",
    501: "NotImplementedError",
    503: "ServiceUnavailableError",
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


def default_message(status: int) -> str:
    return _MESSAGES.get(status, f"Error {status}")


def compact_json(data: Any) -> bytes:
    """JSON as Starlette's ``JSONResponse`` renders it (no spaces, UTF-8)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def error_body(style: str, status: int, message: str, type_: Optional[str] = None,
               code: Union[str, int, None] = None, param: Optional[str] = None) -> tuple[str, bytes]:
    """``(content type, body)`` of an error in ``style``:

    - ``openai``: ``{"error": {"message", "type", "param", "code"}}`` -- OpenAI's API, and
      the servers that copy it (llama-cpp-python's ``ErrorResponse``, DeepSeek, Ollama's
      ``/v1`` middleware ``openai.NewError``);
    - ``vllm``: the same object with the exception class as ``type`` and the status as an
      integer ``code`` (vllm/entrypoints/openai/engine/protocol.py ``ErrorInfo``);
    - ``vllm_legacy``: that object at the top level with ``"object": "error"`` (vLLM before
      the ``{"error": ...}`` wrapper);
    - ``plain``: ``{"error": "<message>"}`` -- Ollama's native API (server/routes.go
      ``gin.H{"error": ...}``) and proxies that pass it through;
    - ``detail``: ``{"detail": "<message>"}`` -- FastAPI's ``HTTPException`` handler
      (llama-cpp-python's 401 "Invalid API key");
    - ``text``: the message as ``text/plain`` -- Starlette's ``ServerErrorMiddleware``
      ("Internal Server Error") in front of a crashed app;
    - ``html``: nginx's default error page, as a reverse proxy in front of a model
      server sends for 502/503/504.
    """
    if style == "openai":
        type_ = type_ or _OPENAI_TYPES.get(status, "server_error")
        return "application/json", compact_json({"error": {"message": message, "type": type_, "param": param,
                                                           "code": code}})
    if style in ("vllm", "vllm_legacy"):
        inner = {"message": message, "type": type_ or _VLLM_TYPES.get(status, "InternalServerError"),
                 "param": param, "code": status}
        data = {"error": inner} if style == "vllm" else {"object": "error", **inner}
        return "application/json", compact_json(data)
    if style == "plain":
        return "application/json; charset=utf-8", compact_json({"error": message})
    if style == "detail":
        return "application/json", compact_json({"detail": message})
    if style == "text":
        return "text/plain; charset=utf-8", message.encode()
    if style == "html":
        title = f"{status} {_reason(status)}"
        page = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
                "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
        return "text/html", page.encode()
    raise ValueError(f"unknown error style {style!r}")


def http_date(at: float) -> str:
    return email.utils.formatdate(at, usegmt=True)


def retry_headers(retry_after: Union[float, str, None], as_: str = "seconds") -> list[Header]:
    """The header that tells a client how long to wait (seconds, ms or an HTTP-date)."""
    if retry_after is None:
        return []
    if isinstance(retry_after, str):  # sent verbatim, e.g. a malformed value
        return [("Retry-After", retry_after)]
    if as_ == "ms":
        return [("retry-after-ms", str(int(round(retry_after * 1000))))]
    if as_ == "date":  # an HTTP-date has whole seconds: round up so the client never retries early
        return [("Retry-After", http_date(time.time() + retry_after + 0.999))]
    value = int(retry_after) if float(retry_after).is_integer() else retry_after
    return [("Retry-After", str(value))]


def format_reset(seconds: float) -> str:
    """A reset time as OpenAI writes it: ``"12ms"``, ``"1s"``, ``"17.5s"``, ``"6m0s"``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{int(round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"


class RateState:
    """Requests and tokens spent over the last ``window_s``, for the ``x-ratelimit-*`` headers.

    Resets are written as OpenAI's token buckets report them: the time to earn back what
    is spent (one request of 5000/min -> ``"12ms"``).
    """

    def __init__(self, limits: RateLimit):
        self.limits = limits
        self._lock = threading.Lock()
        self._events: deque[list] = deque()  # [time, tokens]

    def _trim(self, now: float) -> tuple[int, int]:
        while self._events and self._events[0][0] <= now - self.limits.window_s:
            self._events.popleft()
        return len(self._events), sum(e[1] for e in self._events)

    def admit(self, tokens: int) -> tuple[Optional[list], Optional[tuple[str, int, int, float]]]:
        """Count a request of about ``tokens`` tokens: ``(event, None)``. When enforcing
        and over a limit: ``(None, (kind, limit, used, wait_s))``, and nothing is counted."""
        now = time.monotonic()
        lim = self.limits
        with self._lock:
            n, used = self._trim(now)
            if lim.enforce and self._events:
                wait = self._events[0][0] + lim.window_s - now
                if n + 1 > lim.requests:
                    return None, ("requests", lim.requests, n, wait)
                if used + tokens > lim.tokens:
                    return None, ("tokens", lim.tokens, used, wait)
            event = [now, tokens]
            self._events.append(event)
            return event, None

    def settle(self, event: list, tokens: int) -> None:
        """Replace a request's estimate by what it really cost."""
        with self._lock:
            event[1] = tokens

    def headers(self) -> list[Header]:
        lim = self.limits
        with self._lock:
            n, used = self._trim(time.monotonic())
        return [
            ("x-ratelimit-limit-requests", str(lim.requests)),
            ("x-ratelimit-limit-tokens", str(lim.tokens)),
            ("x-ratelimit-remaining-requests", str(max(0, lim.requests - n))),
            ("x-ratelimit-remaining-tokens", str(max(0, lim.tokens - used))),
            ("x-ratelimit-reset-requests", format_reset(lim.window_s * n / max(1, lim.requests))),
            ("x-ratelimit-reset-tokens", format_reset(lim.window_s * used / max(1, lim.tokens))),
        ]


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 §7.1)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def encode_head(status: int, headers: list[Header]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def framing_headers(content_type: str, body_len: int, wire: Wire) -> list[Header]:
    out = [("date", http_date(time.time())), ("content-type", content_type)]
    if wire.chunks:
        out.append(("transfer-encoding", "chunked"))
    else:
        out.append(("content-length", str(body_len)))
    out.append(("connection", "close" if wire.close else "keep-alive"))
    return out


def chunked_body(body: bytes, n: int) -> bytes:
    size = max(1, -(-len(body) // max(1, n)))
    parts = [body[i:i + size] for i in range(0, len(body), size)] or []
    return b"".join(chunk(p) for p in parts) + LAST_CHUNK


def split_points(data: bytes, split: Split) -> list[int]:
    """Where to cut ``data`` (head + body) into ``split.pieces`` writes."""
    if split.pieces <= 1 or len(data) < 2:
        return []
    cuts: list[int] = []
    start = 0
    if split.mid_head:
        first_eol = data.find(b"\r\n")
        second_eol = data.find(b"\r\n", first_eol + 2)
        if 0 <= first_eol < second_eol:
            cuts.append((first_eol + 2 + second_eol) // 2)  # inside the first header line
            start = cuts[0]
    left = split.pieces - 1 - len(cuts)
    step = (len(data) - start) / (left + 1)
    cuts += [int(start + step * (k + 1)) for k in range(left)]
    return sorted({c for c in cuts if 0 < c < len(data)})


def encode_response(status: int, content_type: str, body: bytes, wire: Wire,
                    extra: list[Header]) -> list[bytes]:
    """The pieces to write for one response, in order."""
    headers = framing_headers(content_type, len(body), wire) + list(wire.headers or ()) + extra
    data = encode_head(status, headers) + (chunked_body(body, wire.chunks) if wire.chunks else body)
    split = wire.split or Split(pieces=1)
    cuts = [0] + split_points(data, split) + [len(data)]
    return [data[a:b] for a, b in zip(cuts, cuts[1:])]

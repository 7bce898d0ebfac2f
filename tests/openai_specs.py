"""What the fake OpenAI-compatible server answers (specs) and how it puts it on the wire.

Data only: :mod:`openai_server` runs the server, :mod:`openai_profiles` holds the
emulated servers, :mod:`openai_wire` turns these records into bytes. Everything is
re-exported by :mod:`openai_server`, which is what tests import.

A spec is one chat completion's outcome: :class:`Answer`, :class:`HTTPError`,
:class:`Drop` or :class:`BrokenBody`. :class:`Wire` says how a response travels (chunked,
``Connection: close``, written in pieces, error body shape, reasoning field, ...); it can
be set per server and per spec, and every field left ``None`` is inherited (spec ->
server -> profile -> :data:`DEFAULT_WIRE`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Optional, Union

__all__ = [
    "Answer",
    "HTTPError",
    "Drop",
    "BrokenBody",
    "Spec",
    "Split",
    "Wire",
    "DEFAULT_WIRE",
    "ERROR_STYLES",
    "RateLimit",
    "count_tokens",
    "prompt_text",
    "last_user_text",
    "response_format_type",
]

ERROR_STYLES = ("openai", "vllm", "vllm_legacy", "plain", "detail", "text", "html")
"""How an error body looks on the wire (see :func:`openai_wire.error_body` for each one's source)."""


@dataclass(frozen=True)
class Split:
    """Write a response in ``pieces`` writes with ``pause`` seconds between them.

    With ``mid_head`` the first cut falls in the middle of a header line, as a slow
    proxy or a congested link delivers it; the other cuts spread over the rest evenly.
    """

    pieces: int = 3
    pause: float = 0.05
    mid_head: bool = True


@dataclass(frozen=True)
class Wire:
    """How responses travel. ``None`` = inherit (spec -> server -> profile -> default).

    - ``chunks``: 0 = ``Content-Length``; n >= 1 = ``Transfer-Encoding: chunked`` with the
      body in n chunks (RFC 9112 §7.1; OpenAI's API answers non-streaming completions
      chunked, as its response headers show).
    - ``close``: send ``Connection: close`` and close the socket after the response
      (RFC 9112 §9.6), as servers do before a restart or behind some proxies.
    - ``split``: a :class:`Split`; ``Split(pieces=1)`` switches an inherited split off.
    - ``error_style``: one of :data:`ERROR_STYLES`.
    - ``usage``: include the ``usage`` object (``usage`` is optional in the OpenAI
      schema; some servers and proxies leave it out).
    - ``content_parts``: send ``message.content`` as a list of ``{"type": "text"}`` parts,
      the request-side shape that some gateways also use in responses (no single server
      is emulated here).
    - ``reasoning_field``: where an answer's reasoning goes: ``"reasoning_content"``
      (DeepSeek, llama.cpp, older vLLM), ``"reasoning"`` (vLLM >= 0.11, Ollama) or ``"both"``.
    - ``keepalive``: while a completion is pending, send the head at once and a blank
      line every ``keepalive`` seconds before the JSON (DeepSeek under load); the body
      is then chunked and ``split`` does not apply.
    - ``headers``: extra response headers, e.g. ``(("server", "uvicorn"),)``.
    """

    chunks: Optional[int] = None
    close: Optional[bool] = None
    split: Optional[Split] = None
    error_style: Optional[str] = None
    usage: Optional[bool] = None
    content_parts: Optional[bool] = None
    reasoning_field: Optional[str] = None
    keepalive: Optional[float] = None
    headers: Optional[tuple[tuple[str, str], ...]] = None

    def __post_init__(self) -> None:
        if self.error_style is not None and self.error_style not in ERROR_STYLES:
            raise ValueError(f"error_style must be one of {ERROR_STYLES}, got {self.error_style!r}")
        if self.reasoning_field not in (None, "reasoning_content", "reasoning", "both"):
            raise ValueError(f"reasoning_field must be reasoning_content, reasoning or both, got {self.reasoning_field!r}")
        if self.chunks is not None and self.chunks < 0:
            raise ValueError("chunks must be 0 (Content-Length) or more")

    def over(self, base: "Wire") -> "Wire":
        """These settings where set, ``base``'s elsewhere."""
        return replace(base, **{f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None})


DEFAULT_WIRE = Wire(chunks=0, close=False, split=Split(pieces=1), error_style="openai", usage=True,
                    content_parts=False, reasoning_field="reasoning_content", keepalive=0.0, headers=())
"""Today's behaviour: Content-Length, keep-alive, one write, OpenAI error objects."""


@dataclass(frozen=True)
class Answer:
    """A normal chat completion. Token counts default to :func:`count_tokens` of the text.

    ``reasoning_content`` / ``reasoning`` are the model's thinking; where it goes on the
    wire is the wire's ``reasoning_field`` (an explicit ``reasoning`` keeps its own
    field). The server's profile may reshape the answer (wrap it in prose, blank it...);
    ``as_is=True`` sends it exactly as given.
    """

    content: Optional[str] = "ok"
    reasoning_content: Optional[str] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    reasoning_tokens: int = 0
    finish_reason: str = "stop"
    model: Optional[str] = None
    delay: float = 0.0
    reasoning: Optional[str] = None
    as_is: bool = False
    wire: Optional[Wire] = None


@dataclass(frozen=True)
class HTTPError:
    """An error status with an error body in the wire's ``error_style``.

    ``retry_after`` (seconds) sets ``Retry-After`` as ``retry_after_as`` says:
    ``"seconds"`` (``Retry-After: 2``), ``"ms"`` (``retry-after-ms: 2000``, which the
    OpenAI SDK reads first) or ``"date"`` (``Retry-After: <HTTP-date>``, RFC 9110 §10.2.3).
    ``type`` / ``code`` / ``param`` fill the error object; ``headers`` adds headers.
    """

    status: int = 500
    message: Optional[str] = None  # a default that fits the status
    retry_after: Optional[Union[float, str]] = None
    type: Optional[str] = None
    delay: float = 0.0
    code: Optional[Union[str, int]] = None
    param: Optional[str] = None
    retry_after_as: str = "seconds"
    headers: tuple[tuple[str, str], ...] = ()
    wire: Optional[Wire] = None

    def __post_init__(self) -> None:
        if self.retry_after_as not in ("seconds", "ms", "date"):
            raise ValueError(f"retry_after_as must be seconds, ms or date, got {self.retry_after_as!r}")


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
    wire: Optional[Wire] = None


Spec = Union[Answer, HTTPError, Drop, BrokenBody]


@dataclass(frozen=True)
class RateLimit:
    """OpenAI-style rate limits over a sliding ``window_s`` (OpenAI's are per minute).

    Every chat completion's response carries ``x-ratelimit-limit-requests``,
    ``-remaining-requests``, ``-reset-requests`` and the same three for tokens, with
    resets written like OpenAI's (``"120ms"``, ``"1s"``, ``"6m0s"``). With ``enforce``
    a request over either limit gets OpenAI's 429 (type ``requests`` or ``tokens``,
    code ``rate_limit_exceeded``) and, when ``retry_after_as`` is set, a retry header.
    """

    requests: int = 500
    tokens: int = 200_000
    window_s: float = 60.0
    enforce: bool = False
    retry_after_as: Optional[str] = "seconds"


def count_tokens(text: str) -> int:
    """A crude, deterministic token count: about one token per four characters."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def prompt_text(body: Any) -> str:
    """Every message's text, joined (string or list-of-parts content)."""
    if not isinstance(body, dict):
        return ""
    return "\n".join(_text_of(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict))


def last_user_text(body: Any) -> str:
    """The last user message's text ("" when there is none)."""
    last = ""
    if isinstance(body, dict):
        for message in body.get("messages") or []:
            if isinstance(message, dict) and message.get("role") == "user":
                last = _text_of(message.get("content"))
    return last


def response_format_type(body: Any) -> Optional[str]:
    """``response_format.type`` of a request, or ``None`` when it has none."""
    rf = body.get("response_format") if isinstance(body, dict) else None
    if isinstance(rf, dict):
        value = rf.get("type")
        return value if isinstance(value, str) else repr(value)
    return None

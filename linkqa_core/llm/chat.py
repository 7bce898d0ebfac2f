"""What the client is asked (:class:`ChatRequest`) and what it hands back (:class:`ChatResult`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

__all__ = ["ChatRequest", "ChatResult", "BUDGET_REACHED", "STOPPED", "ENDPOINT_DOWN"]

BUDGET_REACHED = "budget reached"
STOPPED = "stopped"
ENDPOINT_DOWN = "endpoint down"


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to make. ``None`` fields take the settings' defaults.

    ``response_format`` is either an OpenAI ``response_format`` object
    (``{"type": "json_schema", ...}`` / ``{"type": "json_object"}``) or a bare JSON schema,
    which is wrapped as ``json_schema``; how it reaches the endpoint (``response_format``
    or the prompt) is the client's business (:mod:`linkqa_core.llm.modes`). ``extra`` holds
    other body fields (``top_p``, ``seed``, ``reasoning_effort``...). ``stage`` and
    ``run_id`` only label the log.
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
    the ``reasoning_content`` / ``reasoning`` field or the text inside ``<think>`` tags
    (``None`` if there was none). ``error`` is ``None`` on success. ``attempts`` counts
    HTTP attempts (0 for a cache hit or a request that never started).

    ``estimated``: the server sent no ``usage``, so the token counts are estimated from
    the text (about four characters a token). ``transient``: the request failed for a
    reason that may pass (the endpoint kept failing or timing out, or stopped answering):
    nothing is wrong with the item, ask again later. ``mode``: the structured-output mode
    the request went out in.
    """

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
    estimated: bool = False
    transient: bool = False
    mode: Optional[str] = None

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

    @property
    def started(self) -> bool:
        """The request went out (or came from the cache): a budget stop or a stop never started it."""
        return bool(self.attempts or self.cached)

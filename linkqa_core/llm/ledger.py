"""The client's books: request bodies and their cache keys, what calls cost, what a run spent.

Cache: a request's key is the SHA-256 of the canonical JSON of everything that shapes the
answer (model, messages, temperature, max_tokens, response_format, extra body fields,
``variant``) -- not the key, not the endpoint, not the structured-output mode it went out
in. Only complete answers are cached (no error, ``finish_reason`` other than ``"length"``,
some content).

Tokens: what the server's ``usage`` says; when a server leaves ``usage`` out, an estimate
from the text (:func:`estimate_tokens`: about four characters a token) so that budgets
still hold, and the call is marked ``estimated``. USD: tokens × the settings' prices.

>>> estimate_cost(1000, 800, 400, 0, LLMSettings(price_in_per_mtok=0.5, price_out_per_mtok=1.5))
CostEstimate(requests=1000, tokens=1200000, usd=1.0)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from ..errors import ConfigError
from .chat import ChatRequest, ChatResult
from .replies import clean_text
from .settings import LLMSettings

__all__ = ["request_body", "key_of", "cache_key", "Usage", "CostEstimate", "estimate_cost", "estimate_tokens",
           "prompt_tokens_of", "usd_of", "cache_payload", "from_cache"]


def _normalise_response_format(rf: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    if rf is None:
        return None
    rf = dict(rf)
    if rf.get("type") in {"json_schema", "json_object", "text"}:
        return rf
    name = str(rf.get("title") or "response")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "response"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": rf}}


def request_body(req: ChatRequest, settings: LLMSettings) -> dict[str, Any]:
    """The logical body of a request (before the endpoint's structured-output mode)."""
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


def key_of(body: Mapping[str, Any], variant: int) -> str:
    material = dict(body)
    if variant:
        material["__variant__"] = variant
    canon = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest()


def cache_key(req: ChatRequest, settings: LLMSettings) -> str:
    """The cache key of a request under these settings (never depends on key, endpoint or mode)."""
    return key_of(request_body(req, settings), req.variant)


def estimate_tokens(text: Optional[str]) -> int:
    """About one token per four characters (what a tokenizer gives English on average)."""
    return max(1, (len(text) + 3) // 4) if text else 0


def prompt_tokens_of(body: Mapping[str, Any]) -> int:
    """An estimate of a request's prompt tokens: its messages' text plus a few per message."""
    n = 0
    for m in body.get("messages") or ():
        c = m.get("content")
        n += 4 + estimate_tokens(c if isinstance(c, str) else json.dumps(c, ensure_ascii=False, default=str))
    return n


def usd_of(prompt_tokens: int, completion_tokens: int, settings: LLMSettings) -> float:
    return (prompt_tokens * settings.price_in_per_mtok + completion_tokens * settings.price_out_per_mtok) / 1e6


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
    estimated: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_store(cls, store: Any, run_id: int, stages: Optional[Sequence[str]] = None) -> "Usage":
        """What a run (its ``stages``, or all of them) already spent, from the call log --
        pass it as ``spent=`` so that a restarted command's budget continues from there."""
        spend = store.llm.spend(run_id, stages=stages)
        return cls(requests=spend.requests, cached=spend.cached, errors=spend.errors,
                   prompt_tokens=spend.prompt_tokens, completion_tokens=spend.completion_tokens,
                   reasoning_tokens=spend.reasoning_tokens, usd=spend.usd, estimated=spend.estimated)


@dataclass(frozen=True)
class CostEstimate:
    requests: int
    tokens: int
    usd: float


def estimate_cost(
    n_requests: int,
    prompt_tokens_each: float,
    output_tokens_each: float,
    reasoning_tokens_each: float = 0,
    settings: Optional[LLMSettings] = None,
) -> CostEstimate:
    """Tokens and USD for ``n_requests`` calls; reasoning tokens are billed as output."""
    if n_requests < 0 or min(prompt_tokens_each, output_tokens_each, reasoning_tokens_each) < 0:
        raise ConfigError("request and token counts must be 0 or more")
    prompt = n_requests * prompt_tokens_each
    output = n_requests * (output_tokens_each + reasoning_tokens_each)
    usd = 0.0
    if settings is not None:
        usd = (prompt * settings.price_in_per_mtok + output * settings.price_out_per_mtok) / 1e6
    return CostEstimate(requests=n_requests, tokens=int(round(prompt + output)), usd=round(usd, 6))


def cache_payload(r: ChatResult) -> dict[str, Any]:
    return {"content": r.content, "reasoning": r.reasoning, "model": r.model, "finish_reason": r.finish_reason,
            "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
            "reasoning_tokens": r.reasoning_tokens}


def cacheable(r: ChatResult, req: ChatRequest) -> bool:
    """Only complete answers are worth serving again."""
    return req.cache and not r.cached and r.ok and not r.truncated and bool(r.content.strip())


def from_cache(key: str, data: Mapping[str, Any]) -> ChatResult:
    """A cache hit (zero tokens: a hit costs nothing); text cleaned like a fresh answer."""
    reasoning = data.get("reasoning")
    return ChatResult(content=clean_text(data.get("content")), reasoning=clean_text(reasoning) if reasoning else None,
                      model=data.get("model"), finish_reason=data.get("finish_reason"), cached=True, key=key)

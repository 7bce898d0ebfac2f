"""Structured output that adapts to the endpoint: four ways to ask for JSON of a schema.

Servers differ in what ``response_format`` they take: OpenAI and vLLM take
``json_schema``; llama-cpp-python takes only ``json_object``, optionally carrying a
``schema`` (and answers ``json_schema`` with a 500); DeepSeek takes only plain
``json_object`` and wants the word "json" in the prompt; some local servers take
anything and enforce nothing. Per endpoint and model the client uses the strongest mode
the server accepts, in this order (:data:`MODES`):

======================  ==================================================================
``json_schema``         ``{"type": "json_schema", "json_schema": {"name", "schema"}}``
``json_object_schema``  ``{"type": "json_object", "schema": {...}}`` (llama-cpp-python)
``json_object``         ``{"type": "json_object"}``, the schema stated in the prompt (which
                        therefore says "JSON", as DeepSeek requires)
``prompt``              no ``response_format``; the schema stated in the prompt and the
                        reply read leniently (fences, prose, ``<think>``)
======================  ==================================================================

A refusal of the mode (:attr:`~linkqa_core.llm.failures.Failure.MODE`) moves the endpoint
one step down, once per mode however many requests were refused at the same time. Until
an endpoint has answered in some mode (``settled``), its structured requests go one at
a time, so a fresh endpoint costs one refused request per step, not one per request in
flight. The settled mode is stored (``llm_modes``) and shown on the home page;
``structured_output`` forces one mode.

The cache key is computed before the mode is applied: a stored answer serves the same
request whatever mode it went out in.

>>> body = {"model": "m", "messages": [{"role": "user", "content": "Name a city."}],
...         "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": {"type": "object"}}}}
>>> shape(body, "json_object_schema")["response_format"]
{'type': 'json_object', 'schema': {'type': 'object'}}
>>> "JSON" in shape(body, "prompt")["messages"][-1]["content"]
True
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .settings import MODES

__all__ = ["MODES", "shape", "structured", "schema_of", "next_mode", "ModeState", "schema_note", "describe"]

_DESCRIPTIONS = {
    "json_schema": "JSON schema (response_format json_schema)",
    "json_object_schema": "JSON object with the schema (response_format json_object + schema)",
    "json_object": "JSON object, schema in the prompt (response_format json_object)",
    "prompt": "schema in the prompt only, reply read leniently (no response_format)",
}
_JSON_WORD = re.compile("json", re.I)


def describe(mode: str) -> str:
    """A curator's description of a mode."""
    return _DESCRIPTIONS.get(mode, mode)


def next_mode(mode: str) -> Optional[str]:
    """The next weaker mode, ``None`` after ``prompt``."""
    i = MODES.index(mode)
    return MODES[i + 1] if i + 1 < len(MODES) else None


def structured(body: Mapping[str, Any]) -> bool:
    """Whether a (logical) request body asks for JSON."""
    rf = body.get("response_format")
    return isinstance(rf, Mapping) and rf.get("type") in ("json_schema", "json_object")


def schema_of(body: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """The JSON schema a request asks for (``None`` for plain JSON or none)."""
    rf = body.get("response_format")
    if not isinstance(rf, Mapping):
        return None
    if rf.get("type") == "json_schema":
        inner = rf.get("json_schema")
        if isinstance(inner, Mapping):
            schema = inner.get("schema")
            return schema if isinstance(schema, Mapping) else None
    if rf.get("type") == "json_object" and isinstance(rf.get("schema"), Mapping):
        return rf["schema"]
    return None


def schema_note(schema: Optional[Mapping[str, Any]]) -> str:
    """What the prompt says when the endpoint does not take the schema itself."""
    if schema is None:
        return "Reply with JSON only (no prose, no code fences)."
    text = json.dumps(schema, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return f"Reply with JSON only (no prose, no code fences), matching this JSON schema:\n{text}"


def _with_note(body: dict[str, Any], note: str) -> dict[str, Any]:
    """``body`` with ``note`` appended to its last user message (the most robust place:
    some chat templates refuse a second system message or one that is not first)."""
    messages = [dict(m) for m in body.get("messages") or ()]
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                m["content"] = list(content) + [{"type": "text", "text": note}]
            else:
                m["content"] = f"{content or ''}\n\n{note}"
            break
    else:
        messages.append({"role": "user", "content": note})
    return {**body, "messages": messages}


def _prompt_text(body: Mapping[str, Any]) -> str:
    parts = []
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, Mapping) else None
        if isinstance(content, list):
            parts += [str(p.get("text", "")) for p in content if isinstance(p, Mapping)]
        elif content is not None:
            parts.append(str(content))
    return "\n".join(parts)


def shape(body: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """The body to send for a (logical) request in ``mode``; unstructured bodies pass unchanged."""
    if not structured(body):
        return dict(body)
    schema = schema_of(body)
    rest = {k: v for k, v in body.items() if k != "response_format"}
    if mode == "json_schema" and schema is not None:
        return dict(body)
    if mode in ("json_schema", "json_object_schema"):
        rf: dict[str, Any] = {"type": "json_object"}
        if schema is not None:
            rf["schema"] = schema
        out = {**rest, "response_format": rf}
        return out if _JSON_WORD.search(_prompt_text(out)) else _with_note(out, "Reply in JSON.")
    note = schema_note(schema)
    if mode == "json_object":
        return _with_note({**rest, "response_format": {"type": "json_object"}}, note)
    if mode == "prompt":
        return _with_note(rest, note)
    raise ValueError(f"unknown structured-output mode {mode!r}")


@dataclass
class ModeState:
    """Where one endpoint stands for one model (lives on the client's event loop).

    ``forced``: the curator chose the mode; a refusal then stops the batch instead of
    stepping down. ``settled``: the endpoint has answered in ``mode``.
    """

    mode: str = MODES[0]
    settled: bool = False
    forced: bool = False
    detail: str = ""
    _gate: Optional[asyncio.Lock] = field(default=None, repr=False)

    def gate(self) -> asyncio.Lock:
        if self._gate is None:
            self._gate = asyncio.Lock()
        return self._gate

    def step_down(self, refused: str, why: str) -> bool:
        """After a refusal of ``refused``: move one step down if still there. True if it moved."""
        if self.forced or refused != self.mode:
            return False
        lower = next_mode(self.mode)
        if lower is None:
            return False
        self.mode, self.settled, self.detail = lower, False, f"{refused} refused: {why}"
        return True

    def settle(self) -> bool:
        """The endpoint answered in ``mode``. True the first time."""
        if self.settled:
            return False
        self.settled = True
        return True

"""The event loop's bookkeeping for :class:`~linkqa_core.llm.client.LLMClient`: one record
per endpoint, per queued request, per finished request and per request's attempts.

They live apart from the client so that the client reads as what it does (plan, send,
retry, record) rather than as the shapes it keeps; nothing here does I/O.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import openai

from . import modes
from .chat import ChatRequest, ChatResult
from .modes import ModeState
from .scrub import display_url

__all__ = ["Throughput", "Endpoint", "Job", "Outcome", "Control", "Attempt", "as_hit"]


@dataclass(frozen=True)
class Throughput:
    """What :func:`~linkqa_core.llm.probe.measure_throughput` measured."""

    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    concurrency: int


class Endpoint:
    """One base URL: its SDK clients (lanes), what is in flight, its pause and its modes."""

    def __init__(self, url: str, lanes: list[openai.AsyncOpenAI]):
        self.url = url
        self.display = display_url(url)
        self.lanes = lanes
        self.lane_load = [0] * len(lanes)
        self.in_flight = 0
        self.sent = 0
        self.paused_until = 0.0
        self.modes: dict[str, ModeState] = {}


@dataclass
class Job:
    """One request to send: the logical body and its shape in each output mode, built once."""

    index: int
    key: str
    body: dict[str, Any]  # the logical body (before the mode)
    req: ChatRequest
    structured: bool = False
    wire: dict[str, dict[str, Any]] = field(default_factory=dict)

    def body_for(self, mode: Optional[str]) -> dict[str, Any]:
        if mode is None:
            return self.body
        if mode not in self.wire:
            self.wire[mode] = modes.shape(self.body, mode)
        return self.wire[mode]


@dataclass
class Outcome:
    """One request finished: its result, and whether the batch stops or the call is logged."""

    index: int
    result: ChatResult
    job: Optional[Job]
    fatal: bool = False  # the batch stops
    logged: bool = True  # write an llm_calls row


class Control:
    """Stop flags shared between the calling thread and the event loop."""

    def __init__(self, stop_event: Optional[threading.Event]):
        self.stop_event = stop_event
        self.abort = False

    def stopped(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()


class Attempt:
    """What one request has cost so far over its attempts (blank answers are paid for)."""

    def __init__(self) -> None:
        self.count = 0
        self.prompt = 0
        self.completion = 0
        self.reasoning = 0
        self.estimated = False
        self.blank = 0


def as_hit(r: ChatResult) -> ChatResult:
    """A stored answer served again: nothing spent, no endpoint."""
    return replace(r, cached=True, prompt_tokens=0, completion_tokens=0, reasoning_tokens=0, latency_s=0.0,
                   attempts=0, endpoint=None, estimated=False)

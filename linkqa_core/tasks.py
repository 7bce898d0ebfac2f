"""One interface for the model-backed step of every stage, and one way to run it.

A stage's step (write items for a bundle, name a seed's KPs, rate an item, rewrite it
harder, check its answer) comes in two versions that share this interface:

- a :class:`ModelTask` builds the request for one input and parses the model's reply
  into the stage's output (raising :class:`ReplyError` for an unusable reply);
- an :class:`OfflineTask` computes the output itself, with no model.

:func:`run_task` runs either over many inputs and hands back one :class:`Outcome` per
input, so the stage's own code (what to store, what to count) is the same for both. The
LLM client knows nothing of stages; a task knows nothing of HTTP (as distilabel's tasks).
A new model-backed stage is a small class: a name, a JSON schema, ``request`` and ``parse``.

>>> class Upper:
...     name = "upper"
...     def run(self, x): return x.upper()
>>> [o.value for o in run_task(Upper(), ["a", "b"])]
['A', 'B']
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Generic, Mapping, Optional, Protocol, Sequence, TypeVar, Union

from .errors import LinkQAError

if TYPE_CHECKING:
    from .llm.client import ChatRequest, ChatResult, LLMClient

__all__ = ["ModelTask", "OfflineTask", "Task", "Outcome", "ReplyError", "run_task", "json_request"]

In = TypeVar("In")
Out = TypeVar("Out")
In_contra = TypeVar("In_contra", contravariant=True)
Out_co = TypeVar("Out_co", covariant=True)


class ReplyError(LinkQAError):
    """A model's reply cannot be used as the stage's output; the message says what is wrong and where."""


class ModelTask(Protocol[In_contra, Out_co]):
    """The model-backed version of a stage's step."""

    name: str
    schema: Mapping[str, Any]  # {"name": ..., "schema": {...}}: the JSON the reply must be

    def request(self, item: In_contra) -> "ChatRequest":
        ...

    def parse(self, item: In_contra, result: "ChatResult") -> Out_co:
        ...


class OfflineTask(Protocol[In_contra, Out_co]):
    """The offline version of a stage's step: no model, no network."""

    name: str

    def run(self, item: In_contra) -> Out_co:
        ...


Task = Union[ModelTask[In, Out], OfflineTask[In, Out]]


@dataclass(frozen=True)
class Outcome(Generic[Out]):
    """What came of one input: a ``value``, or an ``error`` (the request failed or the reply
    was unusable; ``raw`` keeps the reply), or ``unstarted`` (budget reached, stopped or
    the endpoint down before its request went out: nothing was spent, nothing should be
    stored). ``transient``: the request failed for a reason that may pass (the endpoint
    kept failing or timing out): the input is fine, ask again later rather than record a
    failure."""

    index: int
    value: Optional[Out] = None
    error: Optional[str] = None
    raw: Optional[str] = None
    result: Optional["ChatResult"] = None
    unstarted: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.unstarted

    @property
    def transient(self) -> bool:
        return self.unstarted or bool(self.error and self.result is not None and self.result.transient)


def json_request(messages: Sequence[Mapping[str, Any]], schema: Mapping[str, Any], *, stage: str,
                 run_id: int | None = None, **kwargs: Any) -> "ChatRequest":
    """A chat request whose reply must be JSON of ``schema`` ({"name", "schema"}); how that is
    asked of the endpoint (``response_format`` in one of four modes, or the prompt) is the
    client's business (:mod:`linkqa_core.llm.modes`); parse the reply with
    :func:`~linkqa_core.llm.replies.loads_lenient`, which reads every mode's answers."""
    from .llm.client import ChatRequest

    return ChatRequest(messages=list(messages), response_format={"type": "json_schema", "json_schema": dict(schema)},
                       stage=stage, run_id=run_id, **kwargs)


def run_task(
    task: Any,
    items: Sequence[In],
    *,
    client: "LLMClient | None" = None,
    on_outcome: Callable[[Outcome[Any]], None] | None = None,
    stop_event: threading.Event | None = None,
) -> list[Outcome[Any]]:
    """Run ``task`` over ``items``: offline in this thread, or through ``client`` with its
    concurrency, cache and budget. ``on_outcome`` is called in this thread as each input
    is done (requests that never started are not reported), so it may store results."""
    if not hasattr(task, "request"):
        outcomes = []
        for i, item in enumerate(items):
            if stop_event is not None and stop_event.is_set():
                outcomes.append(Outcome(i, unstarted=True))
                continue
            try:
                o = Outcome(i, value=task.run(item))
            except ReplyError as err:
                o = Outcome(i, error=str(err))
            outcomes.append(o)
            if on_outcome is not None:
                on_outcome(o)
        return outcomes
    if client is None:
        raise ValueError(f"the model task {task.name!r} needs an LLM client")
    got: dict[int, Outcome[Any]] = {}

    def judge(i: int, res: "ChatResult") -> Outcome[Any]:
        if res.error:
            return Outcome(i, error=res.error, raw=res.content or None, result=res)
        try:
            return Outcome(i, value=task.parse(items[i], res), raw=res.content, result=res)
        except ReplyError as err:
            return Outcome(i, error=f"malformed answer: {err}", raw=res.content, result=res)

    def on_result(i: int, res: "ChatResult") -> None:
        o = judge(i, res)
        got[i] = o
        if on_outcome is not None:
            on_outcome(o)

    results = client.complete_many([task.request(x) for x in items], on_result=on_result, stop_event=stop_event)
    return [got.get(i) or (Outcome(i, unstarted=True, error=r.error, result=r) if not r.started else judge(i, r))
            for i, r in enumerate(results)]

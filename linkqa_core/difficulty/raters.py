"""Difficulty raters: the scale of the target mix, offline (a documented heuristic) or a model.

Both rate many items at once and give ``None`` where they could not rate.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

from ..errors import ConfigError
from ..kps.names import normalize_kp
from ..llm.replies import loads_lenient
from ..prompting import format_item
from ..records import Item
from ..tasks import ReplyError, json_request, run_task

__all__ = ["Rating", "Rater", "OfflineRater", "LLMRater", "RATING_SCHEMA"]


@dataclass(frozen=True)
class Rating:
    level: int
    why: str = ""


class Rater(Protocol):
    """Rates items 1–5; ``None`` where it could not."""

    name: str

    def rate_many(self, items: Sequence[Item], *, run_id: int | None = None,
                  stop_event: threading.Event | None = None) -> list[Optional[Rating]]:
        ...


_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)?")
_PART = re.compile(r"\b(?:part|step)\s*(\d+)\b|\((i{1,3}|iv|v|[a-e])\)", re.I)
_CONSTRAINT = re.compile(
    r"\b(constraint|must|assum(?:e|ing)|given that|only if|provided that|unless|without|at least|at most|exactly)\b",
    re.I)


class OfflineRater:
    """A documented heuristic 1–5 for when no model is set; deterministic, no network.

    Score = 1
    + min(1.5, words in the question / 80)                 (length)
    + 0.25 per KP used beyond the first, at most +1        (knowledge combined)
    + 0.2 per number in the question, at most +1           (calculation)
    + 0.5 per part or step beyond the first, at most +1.5  ("Part 2", "Step 3", "(ii)")
    + 0.25 per constraint word, at most +0.75              ("must", "assume", "only if"...)
    + 0.5 for an open question (no options to eliminate from),
      else 0.25 per option beyond four, at most +0.75;
    rounded half up and clamped to 1–5. It measures load, not insight: a model rates better.
    """

    name = "offline-heuristic"

    def score(self, item: Item) -> tuple[float, list[str]]:
        q = item.question or ""
        notes: list[str] = []
        s = 1.0
        words = len(q.split())
        add = min(1.5, words / 80)
        s += add
        notes.append(f"{words} words +{add:.2f}")
        k = len({normalize_kp(x) for x in item.kps_used if str(x).strip()})
        if k >= 2:
            add = min(1.0, 0.25 * (k - 1))
            s += add
            notes.append(f"{k} KPs +{add:.2f}")
        nums = len(_NUMBER.findall(q))
        if nums:
            add = min(1.0, 0.2 * nums)
            s += add
            notes.append(f"{nums} numbers +{add:.2f}")
        parts = {m.group(1) or m.group(2).lower() for m in _PART.finditer(q)}
        if len(parts) >= 2:
            add = min(1.5, 0.5 * (len(parts) - 1))
            s += add
            notes.append(f"{len(parts)} parts/steps +{add:.2f}")
        cons = len(_CONSTRAINT.findall(q))
        if cons:
            add = min(0.75, 0.25 * cons)
            s += add
            notes.append(f"{cons} constraint words +{add:.2f}")
        if not item.options:
            s += 0.5
            notes.append("open question +0.50")
        elif len(item.options) > 4:
            add = min(0.75, 0.25 * (len(item.options) - 4))
            s += add
            notes.append(f"{len(item.options)} options +{add:.2f}")
        return s, notes

    def rate(self, item: Item) -> Rating:
        s, notes = self.score(item)
        level = int(min(5, max(1, math.floor(s + 0.5))))
        return Rating(level, f"offline heuristic {s:.2f}: " + ", ".join(notes))

    def rate_many(self, items: Sequence[Item], *, run_id: int | None = None,
                  stop_event: threading.Event | None = None) -> list[Optional[Rating]]:
        return [self.rate(it) for it in items]


_RATE_PROMPT = """Rate the difficulty of this {discipline} exam question for a strong undergraduate, 1 to 5:
1 = recall of a single fact; 2 = one concept applied directly; 3 = one concept applied with a few steps;
4 = several concepts combined or multi-step reasoning; 5 = expert level: long reasoning across several concepts.

{item}

Reply with JSON only: {{"difficulty": <1-5>, "why": "<one sentence>"}}"""

RATING_SCHEMA: dict[str, Any] = {
    "name": "difficulty_rating",
    "schema": {"type": "object",
               "properties": {"difficulty": {"type": "integer", "minimum": 1, "maximum": 5},
                              "why": {"type": "string"}},
               "required": ["difficulty", "why"], "additionalProperties": False},
}


class LLMRater:
    """Asks the model for ``{"difficulty": 1-5, "why": ...}``, one request per item, all
    concurrent through the client (and cached). Give ``client`` (an open
    :class:`~linkqa_core.llm.client.LLMClient`, not closed here) or ``settings`` (+ ``store``
    for the cache); call :meth:`close` when it made its own client."""

    name_prefix = "llm:"
    schema = RATING_SCHEMA

    def __init__(self, client: Any = None, *, settings: Any = None, store: Any = None):
        if client is None:
            if settings is None or not getattr(settings, "configured", False):
                raise ConfigError("the LLM rater needs an endpoint and a model (OPENAI_BASE_URL, LINKQA_MODEL)")
            from ..llm.client import LLMClient

            client = LLMClient(settings, store)
            self._own = True
        else:
            self._own = False
        self.client = client
        self.name = f"llm:{client.settings.model}"
        self.run_id: int | None = None
        self.transient: set[int] = set()  # items of the last rate_many whose request may work later

    def close(self) -> None:
        if self._own:
            self.client.close()

    def request(self, item: Item) -> Any:
        prompt = _RATE_PROMPT.format(discipline=item.discipline, item=format_item(item))
        return json_request([{"role": "user", "content": prompt}], self.schema, stage="difficulty-rate",
                            run_id=self.run_id, temperature=0.0)

    def parse(self, item: Item, result: Any) -> Rating:
        data = loads_lenient(result.content)
        if not isinstance(data, dict):
            raise ReplyError("the rating is not a JSON object")
        value = data.get("difficulty")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ReplyError(f"difficulty {value!r} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ReplyError(f"difficulty {value!r} is not a number")
        return Rating(int(min(5, max(1, math.floor(value + 0.5)))), str(data.get("why") or "")[:500])

    def rate_many(self, items: Sequence[Item], *, run_id: int | None = None,
                  stop_event: threading.Event | None = None) -> list[Optional[Rating]]:
        self.transient = set()
        if not items:
            return []
        self.run_id = run_id
        outcomes = run_task(self, items, client=self.client, stop_event=stop_event)
        self.transient = {o.index for o in outcomes if o.transient}
        return [o.value if o.ok else None for o in outcomes]

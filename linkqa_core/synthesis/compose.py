"""Writing items for one bundle with a model: the request and the reading of the reply.

The model task here and the offline composer (:mod:`.offline`) share one interface: both
take an :class:`Ask` (a bundle, how many items, the target difficulty) and give
:class:`~linkqa_core.records.Item` records (not yet stored: the run gives them slots).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..llm.replies import loads_lenient
from ..records import Bundle, Item
from ..tasks import ReplyError, json_request
from .prompt import ITEM_SCHEMA, render_prompt

__all__ = ["Ask", "SynthesisTask", "parse_items"]


@dataclass(frozen=True)
class Ask:
    """What one synthesis request asks for."""

    bundle: Bundle
    n_items: int
    difficulty: float
    multiple_choice: bool = True


def parse_items(content: str | None, *, multiple_choice: bool = True) -> list[Item]:
    """Items from a model's answer; :class:`ReplyError` says what is wrong and where.

    A letter answer ("B", "(b)", "B.") on an item with options becomes that option's text.
    """
    data = loads_lenient(content)
    if isinstance(data, dict) and "items" in data:
        data = data["items"]
    elif isinstance(data, dict) and "question" in data:
        data = [data]
    if not isinstance(data, list) or not data:
        raise ReplyError("no 'items' list in the answer")
    items = []
    for i, raw in enumerate(data, 1):
        if not isinstance(raw, dict):
            raise ReplyError(f"item {i} is not an object")
        q, a = raw.get("question"), raw.get("answer")
        if not isinstance(q, str) or not q.strip():
            raise ReplyError(f"item {i} has no question")
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            a = str(a)
        if not isinstance(a, str) or not a.strip():
            raise ReplyError(f"item {i} has no answer")
        options = raw.get("options") or None
        if options is not None:
            if not isinstance(options, list) or not all(isinstance(o, (str, int, float)) for o in options):
                raise ReplyError(f"item {i}: options must be a list of strings")
            options = [str(o).strip() for o in options]
            letter = a.strip().rstrip(".)").lstrip("(").upper()
            if len(letter) == 1 and "A" <= letter < chr(65 + len(options)):
                a = options[ord(letter) - 65]
        diff = raw.get("difficulty")
        try:
            diff = None if diff is None else min(5.0, max(1.0, float(diff)))
        except (TypeError, ValueError):
            diff = None
        kps_used = raw.get("kps_used") or []
        items.append(Item(
            question=q.strip(),
            options=tuple(options) if options else None,
            answer=a.strip(),
            solution=str(raw.get("solution") or "").strip(),
            kps_used=tuple(str(k) for k in kps_used) if isinstance(kps_used, list) else (str(kps_used),),
            difficulty=diff,
        ))
    return items


class SynthesisTask:
    """Ask a model for new items from a bundle (the run's editable template)."""

    name = "synthesis"
    schema = ITEM_SCHEMA

    def __init__(self, template: str, *, model: str | None = None, run_id: int | None = None):
        self.template = template
        self.model = model
        self.run_id = run_id

    def prompt(self, ask: Ask) -> str:
        return render_prompt(self.template, ask.bundle, ask.n_items, ask.difficulty, ask.multiple_choice)

    def request(self, ask: Ask) -> Any:
        return json_request([{"role": "user", "content": self.prompt(ask)}], self.schema, stage=self.name,
                            run_id=self.run_id, model=self.model)

    def parse(self, ask: Ask, result: Any) -> list[Item]:
        items = parse_items(result.content, multiple_choice=ask.multiple_choice)
        return items[: ask.n_items]

"""Writing items for one bundle: the model task and the offline composer, one interface.

Both take a :class:`Ask` (a bundle, how many items, the target difficulty) and give
:class:`~linkqa_core.records.Item` records (not yet stored: the run gives them slots).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..llm.replies import loads_lenient
from ..records import Bundle, Item, Seed
from ..tasks import ReplyError, json_request
from .prompt import ITEM_SCHEMA, render_prompt

__all__ = ["Ask", "SynthesisTask", "OfflineComposer", "OFFLINE_MODEL", "parse_items"]

OFFLINE_MODEL = "offline-composer"


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


class OfflineComposer:
    """Composes items from a bundle without a model: two linked seeds become one two-part item.

    The question asks both seed questions; the options pair each seed's correct answer
    with the other's distractors, so exactly one option is right. Honest but shallow: it
    exists so the pipeline, the app and the export work with no endpoint.
    """

    name = OFFLINE_MODEL

    def __init__(self, run_id: int = 0):
        self.run_id = run_id

    def run(self, ask: Ask) -> list[Item]:
        bundle = ask.bundle
        rng = random.Random(f"{self.run_id}:{bundle.path.index}")
        seeds = bundle.seeds
        pairs = [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:]] or [(s, s) for s in seeds]
        items = []
        for k in range(ask.n_items):
            if not pairs:
                break
            a, b = pairs[k % len(pairs)]
            items.append(self._pair(a, b, bundle, rng, ask.difficulty, ask.multiple_choice))
        if not items:
            raise ReplyError("bundle has no seeds to compose from")
        return items

    @staticmethod
    def _pair(a: Seed, b: Seed, bundle: Bundle, rng: random.Random, difficulty: float,
              multiple_choice: bool) -> Item:
        shared = list(bundle.kps)[:3]
        question = (
            f"This two-part question links {', '.join(shared)}.\n"
            f"Part 1: {a.question.strip()}\nPart 2: {b.question.strip()}"
        )
        answer = f"Part 1: {a.answer}; Part 2: {b.answer}"
        options = None
        if multiple_choice:
            wrong_a = [o for o in (a.options or ()) if o != a.answer] or [f"not {a.answer}"]
            wrong_b = [o for o in (b.options or ()) if o != b.answer] or [f"not {b.answer}"]
            combos = {answer}
            tries = 0
            while len(combos) < 4 and tries < 50:
                tries += 1
                pa = a.answer if rng.random() < 0.34 else rng.choice(wrong_a)
                pb = b.answer if pa != a.answer and rng.random() < 0.5 else rng.choice(wrong_b)
                combos.add(f"Part 1: {pa}; Part 2: {pb}")
            options = sorted(combos)
            rng.shuffle(options)
        solution = (
            f"Composed offline from seeds {a.id} and {b.id} without a model. "
            f"Part 1: {a.answer.rstrip('.')}. Part 2: {b.answer.rstrip('.')}."
        )
        known = [d for d in (a.difficulty, b.difficulty) if d is not None]
        return Item(
            question=question,
            options=tuple(options) if options else None,
            answer=answer,
            solution=solution,
            kps_used=tuple(shared),
            difficulty=float(min(5, round(max(known) + 0.5))) if known else difficulty,
        )

"""Rewriting an item harder with one in-depth operation, offline or with a model.

==========================  ===========================================================
``add_constraint``          add a condition the solver must take into account
``deepen``                  ask for the underlying principle or mechanism
``concretise``              turn the general question into a specific, concrete case
``add_reasoning_steps``     require an intermediate result before the answer
``join_kp``                 bring in a KP of the item's path that it does not use yet
==========================  ===========================================================

Both rewriters take a :class:`Rewrite` (the parent item, the operation, what it may draw
on) and give the child :class:`~linkqa_core.records.Item`, not yet checked or stored.
``prepare`` decides whether an item can take an operation at all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..kps.names import normalize_kp
from ..prompting import format_item, format_seeds
from ..records import Item, Seed
from ..synthesis.offline import CONSTRAINT_NOTE, MAX_QUESTION_CHARS, Question, fits, linked_item, quoted_questions
from ..tasks import json_request

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["OPERATIONS", "OFFLINE_OPERATIONS", "OFFLINE_REWRITER", "RewriteContext", "Rewrite", "OfflineRewriter",
           "LLMRewriter", "REWRITE_SCHEMA", "validate"]

OPERATIONS: tuple[str, ...] = ("add_constraint", "deepen", "concretise", "add_reasoning_steps", "join_kp")
OFFLINE_OPERATIONS: tuple[str, ...] = ("add_constraint", "add_reasoning_steps", "join_kp")
OFFLINE_REWRITER = "offline-rewriter"


@dataclass
class RewriteContext:
    """What a rewrite of one item may draw on: its path and its linked seeds."""

    path_kps: list[str]
    seeds: list[Seed]
    seed_kps: dict[str, set[str]]

    def new_kps(self, item: Item) -> list[str]:
        used = {normalize_kp(k) for k in item.kps_used}
        return [k for k in self.path_kps if normalize_kp(k) not in used]


@dataclass
class Rewrite:
    """One rewrite to make: ``slot`` is the child's (``<parent slot>/r<round>``)."""

    parent: Item
    op: str
    ctx: RewriteContext
    slot: str
    new_kp: str | None = None
    seed: Seed | None = None  # the linked seed an offline rewrite draws on


def _child(parent: Item, **fields: Any) -> Item:
    return Item(discipline=parent.discipline, path_id=parent.path_id, seed_ids=parent.seed_ids, **fields)


def _norm(text: str) -> str:
    return " ".join(str(text).casefold().split()).rstrip(".;:!? ")


def validate(d: Item) -> str | None:
    if not d.question.strip():
        return "the rewrite has no question"
    if not d.answer.strip():
        return "the rewrite has no answer"
    if d.options is not None:
        if len(d.options) < 2:
            return "the rewrite has fewer than two options"
        normed = [_norm(o) for o in d.options]
        if len(set(normed)) != len(normed):
            return "the rewrite repeats an option"
        if normed.count(_norm(d.answer)) != 1:
            return "the rewrite's answer is not one of its options"
    return None


def _quoted(seed: Seed, question: str) -> bool:
    head = " ".join(seed.question.split())[:80]
    return bool(head) and head in " ".join(question.split())


class OfflineRewriter:
    """Deterministic rewrites without a model, labelled ``model = "offline-rewriter"``.

    Children are written in the offline composer's linked-questions template
    (:func:`~linkqa_core.synthesis.offline.linked_item`), so they read as one question
    drawing on linked seeds and keep exactly one right choice; nothing in them says how
    they were made (that is the provenance: ``model``, ``operation``, ``parent_id``).

    - ``add_reasoning_steps``: asks one more linked seed, not yet asked, as a further
      sub-question; the answer combines it too.
    - ``join_kp``: the same with a seed naming a KP of the path the item does not use yet;
      the question says which sub-question draws on it, and it joins ``kps_used``. A
      linked seed is preferred; when none is free, the first seed of the database naming
      the KP is used and joins the child's ``seed_ids``, so its provenance stays complete.
    - ``add_constraint``: on a linked item, one more wrong combination and a sentence
      saying that several choices are right on all but one sub-question (true by
      construction); on any other item only a sentence, which the near-copy check then
      drops as adding nothing.

    An item not in the template (a model's, or one a curator edited) becomes
    sub-question (i) of the child.
    """

    name = OFFLINE_REWRITER
    operations = OFFLINE_OPERATIONS

    def __init__(self, store: Store | None = None):
        self.store = store

    def _seeds_naming(self, kp: str, discipline: str) -> list[Seed]:
        """Seeds outside the bundle that name a KP (same discipline first), when a store is given."""
        if self.store is None:
            return []
        return self.store.seeds.naming(kp, discipline)

    def prepare(self, job: Rewrite) -> bool:
        """Pick what the operation needs; False when this item cannot take it."""
        item, ctx = job.parent, job.ctx
        if job.op == "add_constraint":
            # a linked item takes the note only while it stays within the length gate
            return len(item.question) + len(CONSTRAINT_NOTE) + 2 <= MAX_QUESTION_CHARS \
                or not quoted_questions(item, ctx.seeds)
        # linked seeds not asked yet, and short enough that the child stays within the length gate
        free = [s for s in ctx.seeds if not _quoted(s, item.question) and fits(item.question, s)]
        if job.op == "join_kp":
            new = ctx.new_kps(item)
            for kp in new:
                name = normalize_kp(kp)
                match = next((s for s in free if name in ctx.seed_kps.get(s.id, set())), None)
                if match is not None:
                    job.new_kp, job.seed = kp, match
                    return True
            # no unquoted linked seed names one: draw on another seed naming it, which
            # then joins the item's linked seeds
            for kp in new:
                match = next((s for s in self._seeds_naming(normalize_kp(kp), item.discipline)
                              if s.id not in item.seed_ids and not _quoted(s, item.question)
                              and fits(item.question, s)), None)
                if match is not None:
                    job.new_kp, job.seed = kp, match
                    return True
            return False
        if job.op == "add_reasoning_steps":
            if free:
                job.seed = free[0]
                return True
            return False
        return False

    def run(self, job: Rewrite) -> Item:
        if job.op == "add_constraint":
            return self._constraint(job)
        assert job.seed is not None
        child = self._add_part(job)
        if job.seed.id not in job.parent.seed_ids:
            child = child.with_(seed_ids=(*job.parent.seed_ids, job.seed.id))
        return child

    @staticmethod
    def _parts(item: Item, ctx: RewriteContext) -> list[Question]:
        quoted = quoted_questions(item, ctx.seeds)
        return [Question.of(s) for s in quoted] if quoted else [Question.of(item)]

    def _add_part(self, job: Rewrite) -> Item:
        item, ctx, seed = job.parent, job.ctx, job.seed
        assert seed is not None
        parts = [*self._parts(item, ctx), Question.of(seed)]
        kps = list(dict.fromkeys([*item.kps_used, *ctx.path_kps]))
        child = linked_item(parts, kps, random.Random(job.slot), multiple_choice=bool(item.options),
                            also=job.new_kp if job.op == "join_kp" else None)
        # join_kp adds exactly the KP it brings in; a further step adds those its header names
        used = [*item.kps_used, job.new_kp] if job.op == "join_kp" and job.new_kp else [*item.kps_used, *child.kps_used]
        return _child(item, question=child.question, answer=child.answer, options=child.options,
                      solution=child.solution, kps_used=tuple(dict.fromkeys(used)))

    def _constraint(self, job: Rewrite) -> Item:
        item = job.parent
        quoted = quoted_questions(item, job.ctx.seeds)
        if quoted and item.options:
            kps = list(dict.fromkeys([*item.kps_used, *job.ctx.path_kps]))
            child = linked_item([Question.of(s) for s in quoted], kps, random.Random(job.slot),
                                extra_choices=1, note=CONSTRAINT_NOTE)
            return _child(item, question=child.question, answer=child.answer, options=child.options,
                          solution=child.solution, kps_used=item.kps_used)
        text = "Exactly one of the choices is correct." if item.options else \
            "Give one answer that holds exactly as the question is stated."
        return _child(item, question=item.question.rstrip() + "\n" + text, answer=item.answer,
                      options=item.options, solution=item.solution, kps_used=item.kps_used)



_OP_TEXT = {
    "add_constraint": "Add a constraint or condition that the solver must take into account and that changes the "
                      "reasoning needed, not just the wording.",
    "deepen": "Deepen it: ask about the underlying principle, mechanism or consequence instead of a surface fact.",
    "concretise": "Concretise it: replace general concepts by a specific, realistic case with concrete values or "
                  "details the solver must work with.",
    "add_reasoning_steps": "Require more reasoning steps: the solver must derive an intermediate result before "
                           "reaching the answer.",
    "join_kp": "Join another knowledge point of the path: the new question must also need '{kp}', which the "
               "question does not use yet.",
}

_REWRITE_PROMPT = """Rewrite this exam question to make it harder, with one in-depth operation.

Operation: {operation}

Discipline: {discipline}
Knowledge points of the path, in order: {path_kps}
Knowledge points the question uses now: {kps_used}

Linked seed questions (the new answer must follow from this knowledge):
{seeds}

The question (difficulty {difficulty} of 5):
{item}
Solution: {solution}

Write ONE harder, self-contained version. It must need more knowledge or more reasoning than the original,
not just more words, and keep exactly one correct answer that follows from the linked seeds. {format_rule}
Reply with JSON only: {{"question": "...", "options": [...], "answer": "...", "solution": "<worked solution>",
"kps_used": ["..."]}}"""

_MC_RULE = "Give options with exactly one correct; 'answer' is the correct option's text."
_OPEN_RULE = "Keep it an open question with a short, checkable final answer ('options': [])."

REWRITE_SCHEMA: dict[str, Any] = {
    "name": "harder_item",
    "schema": {"type": "object",
               "properties": {"question": {"type": "string"},
                              "options": {"type": "array", "items": {"type": "string"}},
                              "answer": {"type": "string"}, "solution": {"type": "string"},
                              "kps_used": {"type": "array", "items": {"type": "string"}}},
               "required": ["question", "answer", "solution"]},
}



class LLMRewriter:
    """Asks the model for one harder version of the item, by the operation's instruction."""

    operations = OPERATIONS
    schema = REWRITE_SCHEMA

    def __init__(self, client: Any, run_id: int | None = None):
        self.client = client
        self.name = client.settings.model
        self.run_id = run_id

    def prepare(self, job: Rewrite) -> bool:
        if job.op == "join_kp":
            new = job.ctx.new_kps(job.parent)
            if not new:
                return False
            job.new_kp = new[0]
        return True

    def request(self, job: Rewrite) -> Any:
        p = job.parent
        prompt = _REWRITE_PROMPT.format(
            operation=_OP_TEXT[job.op].format(kp=job.new_kp or ""),
            discipline=p.discipline, path_kps=" -> ".join(job.ctx.path_kps) or "(none)",
            kps_used=", ".join(p.kps_used) or "(none)", seeds=format_seeds(job.ctx.seeds),
            difficulty=f"{p.difficulty:g}" if p.difficulty is not None else "unknown",
            item=format_item(p), solution=p.solution or "(none)",
            format_rule=_MC_RULE if p.options else _OPEN_RULE,
        )
        return json_request([{"role": "user", "content": prompt}], self.schema, stage="difficulty-rewrite",
                            run_id=self.run_id)

    def parse(self, job: Rewrite, result: Any) -> Item:
        from ..synthesis.compose import parse_items

        item = parse_items(result.content, multiple_choice=bool(job.parent.options))[0]
        kps = item.kps_used or job.parent.kps_used
        if job.new_kp and normalize_kp(job.new_kp) not in {normalize_kp(k) for k in kps}:
            kps = (*kps, job.new_kp)
        return _child(job.parent, question=item.question, answer=item.answer, options=item.options,
                      solution=item.solution, kps_used=tuple(kps))

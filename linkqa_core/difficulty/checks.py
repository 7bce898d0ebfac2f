"""The model checks of a rewrite: answered twice without the answer, judged against the linked seeds.

A rewrite a model cannot answer consistently (two variants, two temperatures), or whose
answer a judge shown the linked seeds says does not follow from them, is dropped with
the reason.
"""

from __future__ import annotations

import math
import re
import threading
from typing import Any, Sequence

from ..llm.replies import loads_lenient
from ..prompting import format_item, format_seeds
from ..records import Item
from ..tasks import ReplyError, json_request
from .rewrite import Rewrite

__all__ = ["LLMChecker", "REASON_INCONSISTENT", "REASON_NOT_FROM_SEEDS", "REASON_UNCHECKED", "ANSWER_SCHEMA",
           "JUDGE_SCHEMA"]

REASON_INCONSISTENT = "model cannot answer consistently"
REASON_NOT_FROM_SEEDS = "answer does not follow from the linked seeds"
REASON_UNCHECKED = "could not be checked"


def _loads(content: str | None) -> Any:
    try:
        return loads_lenient(content)
    except ReplyError:
        return None


def _norm(text: str) -> str:
    return " ".join(str(text).casefold().split()).rstrip(".;:!? ")


_ANSWER_PROMPT = """Answer this {discipline} exam question. Work it out carefully, then reply with JSON only:
{{"answer": "{shape}"}}

{item}"""

_JUDGE_PROMPT = """Judge whether a new exam question is sound given the linked seed questions it was written from.

Linked seeds:
{seeds}

New question:
{item}
Worked solution: {solution}

Does the stated answer follow from the knowledge in the linked seeds (with sound reasoning), and is it the one
correct answer? Reply with JSON only: {{"verdict": "yes" or "no", "why": "<one sentence>"}}"""

ANSWER_SCHEMA: dict[str, Any] = {
    "name": "answer", "schema": {"type": "object", "properties": {"answer": {"type": "string"}},
                                 "required": ["answer"], "additionalProperties": False}}
JUDGE_SCHEMA: dict[str, Any] = {
    "name": "verdict",
    "schema": {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["yes", "no"]},
                                                "why": {"type": "string"}},
               "required": ["verdict", "why"], "additionalProperties": False}}
_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.:)]?(?:\s+(.*))?$", re.S)
_WORDS = re.compile(r"\w+")


def _short(text: Any, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _given_answer(content: str) -> str | None:
    data = _loads(content)
    if isinstance(data, dict) and data.get("answer") is not None:
        return str(data["answer"]).strip()
    text = (content or "").strip()
    return text or None


def _option_index(answer: str, options: Sequence[str]) -> int | None:
    """Which option an answer names: its letter, its text, or a text that contains exactly one option."""
    a = answer.strip()
    m = _LETTER.match(a)
    if m and ord(m.group(1).upper()) - 65 < len(options) and (not m.group(2) or len(a) <= 3 or
                                                              _norm(m.group(2)) in {_norm(o) for o in options}):
        return ord(m.group(1).upper()) - 65
    na = _norm(a)
    for j, o in enumerate(options):
        if _norm(o) == na:
            return j
    inside = [j for j, o in enumerate(options) if _norm(o) and _norm(o) in na]
    if len(inside) == 1:
        return inside[0]
    return None


def _same_open_answer(given: str, stated: str) -> bool:
    g, s = _WORDS.findall(given.casefold()), _WORDS.findall(stated.casefold())
    if not g or not s:
        return False
    if g == s:
        return True
    try:
        return math.isclose(float(given.strip().rstrip(".")), float(stated.strip().rstrip(".")), rel_tol=1e-6)
    except ValueError:
        pass
    n = len(s)
    return any(g[i:i + n] == s for i in range(len(g) - n + 1))


class LLMChecker:
    """The model checks of a rewrite: answers it twice without the answer; judges it against the seeds."""

    def __init__(self, client: Any):
        self.client = client

    def requests(self, job: Rewrite, child: Item, run_id: int | None) -> list[Any]:
        shape = "<the text of the option you choose>" if child.options else "<your short final answer>"
        ask = _ANSWER_PROMPT.format(discipline=child.discipline, shape=shape, item=format_item(child, with_answer=False))
        judge = _JUDGE_PROMPT.format(seeds=format_seeds(job.ctx.seeds), item=format_item(child),
                                     solution=child.solution or "(none)")
        user = lambda text: [{"role": "user", "content": text}]  # noqa: E731
        return [
            json_request(user(ask), ANSWER_SCHEMA, stage="difficulty-check", run_id=run_id, temperature=0.0,
                         variant=1),
            json_request(user(ask), ANSWER_SCHEMA, stage="difficulty-check", run_id=run_id, temperature=0.8,
                         variant=2),
            json_request(user(judge), JUDGE_SCHEMA, stage="difficulty-judge", run_id=run_id, temperature=0.0),
        ]

    def check_many(self, pairs: Sequence[tuple[Rewrite, Item]], *, run_id: int | None,
                   stop_event: threading.Event | None) -> list[tuple[str | None, str | None, bool]]:
        """Per pair: (reason kind, reason text, check again later); kind ``None`` means it passed."""
        reqs = [r for job, child in pairs for r in self.requests(job, child, run_id)]
        results = self.client.complete_many(reqs, stop_event=stop_event) if reqs else []
        out = []
        for k, (job, child) in enumerate(pairs):
            a1, a2, verdict = results[3 * k: 3 * k + 3]
            if any(r.error and (not r.started or r.transient) for r in (a1, a2, verdict)):
                out.append((None, None, True))  # not asked, or the endpoint kept failing: check later
                continue
            failed = next((r for r in (a1, a2, verdict) if r.error), None)
            if failed is not None:
                out.append((REASON_UNCHECKED, f"{REASON_UNCHECKED}: a check request failed: {failed.error}", False))
                continue
            g1, g2 = _given_answer(a1.content), _given_answer(a2.content)
            if child.options:
                want = _option_index(child.answer, child.options)
                i1 = _option_index(g1, child.options) if g1 else None
                i2 = _option_index(g2, child.options) if g2 else None
                ok = want is not None and i1 == want and i2 == want
            else:
                ok = bool(g1 and g2) and _same_open_answer(g1, child.answer) and _same_open_answer(g2, child.answer)
            if not ok:
                out.append((REASON_INCONSISTENT,
                            f"{REASON_INCONSISTENT} (answered '{_short(g1)}' and '{_short(g2)}'; "
                            f"stated '{_short(child.answer)}')", False))
                continue
            data = _loads(verdict.content)
            said = str(data.get("verdict", "")).strip().lower() if isinstance(data, dict) else ""
            if isinstance(data, dict) and isinstance(data.get("verdict"), bool):
                said = "yes" if data["verdict"] else "no"
            if said != "yes":
                why = _short(data.get("why", "") if isinstance(data, dict) else verdict.content, 160)
                out.append((REASON_NOT_FROM_SEEDS,
                            f"{REASON_NOT_FROM_SEEDS} (judge: {said or 'no clear verdict'}{'; ' + why if why else ''})",
                            False))
                continue
            out.append((None, None, False))
        return out



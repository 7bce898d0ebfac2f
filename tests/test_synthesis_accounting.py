"""The synthesis item accounting: what is asked for, and what each answer stores.

Pure functions on records (plus a real database for :func:`_store`), so every rule is
pinned directly: the trim to the number asked, one failed row per unusable answer,
nothing for an answer that may come later.
"""

from __future__ import annotations

import json

import pytest

from linkqa_core.llm.chat import ChatResult
from linkqa_core.records import Bundle, Item, Path, Seed
from linkqa_core.store import Store
from linkqa_core.synthesis.compose import Ask, SynthesisTask
from linkqa_core.synthesis.prompt import DEFAULT_TEMPLATE
from linkqa_core.synthesis.run import _store, items_to_store, plan_asks
from linkqa_core.tasks import Outcome
from openai_server import StageModel

SEEDS = (Seed(id="s1", question="What does a prism split?", answer="light", options=("light", "sound")),
         Seed(id="s2", question="What bends light?", answer="a lens", options=("a lens", "a mirror")))


def bundle(index: int, path_id: int = 100) -> Bundle:
    return Bundle(Path(index, ("optics", "refraction"), "Physics", ("s1", "s2"), id=path_id + index, run_id=7),
                  SEEDS)


def item(q: str) -> Item:
    return Item(question=q, answer="light", options=("light", "sound"), solution="s", kps_used=("optics",),
                difficulty=3.0)


RESULT = ChatResult(content='{"items": []}', reasoning="because", prompt_tokens=120, completion_tokens=80,
                    attempts=1, model="m", status=200)


def test_plan_asks_per_bundle_until_the_need_is_met():
    bundles = [bundle(i) for i in range(5)]
    plan, rest = plan_asks(bundles, 7, 2, 4.0, False)
    assert [a.n_items for a in plan] == [2, 2, 2, 1] and rest == 0
    assert [a.bundle.path.index for a in plan] == [0, 1, 2, 3]
    assert all(a.difficulty == 4.0 and a.multiple_choice is False for a in plan)
    plan, rest = plan_asks(bundles, 20, 3, 3.0)
    assert [a.n_items for a in plan] == [3] * 5 and rest == 5 and plan[0].multiple_choice
    assert plan_asks(bundles, 0, 2, 3.0) == ([], 0)
    assert plan_asks(bundles, -4, 2, 3.0) == ([], -4)
    assert plan_asks(bundles[:1], 1, 5, 3.0)[0][0].n_items == 1


def test_a_good_answer_stores_its_items_cut_to_the_number_asked():
    ask = Ask(bundle(3), 2, 3.0)
    o = Outcome(0, value=[item("q1"), item("q2"), item("q3")], raw="raw text", result=RESULT)
    rows = items_to_store(7, ask, o, "m")
    assert [r.slot for r in rows] == ["p3:0", "p3:1"] and [r.question for r in rows] == ["q1", "q2"]
    assert all(r.run_id == 7 and r.path_id == 103 and r.discipline == "Physics" and r.seed_ids == ("s1", "s2")
               for r in rows)
    assert all(r.model == "m" and r.reasoning == "because" and r.raw == '{"items": []}' for r in rows)
    assert [(r.prompt_tokens, r.completion_tokens) for r in rows] == [(120, 80), (0, 0)]  # counted once
    assert all(r.status == "generated" for r in rows)


def test_an_offline_answer_has_no_tokens_reasoning_or_raw_text():
    rows = items_to_store(7, Ask(bundle(0), 1, 3.0), Outcome(0, value=[item("q")]), "offline-composer")
    assert [(r.slot, r.reasoning, r.raw, r.prompt_tokens, r.model) for r in rows] == [
        ("p0:0", None, None, 0, "offline-composer")]


def test_an_unusable_answer_is_one_failed_row_with_its_reason_and_text():
    ask = Ask(bundle(4), 2, 3.0)
    o = Outcome(0, error="malformed answer: not JSON", raw="I cannot", result=RESULT)
    [row] = items_to_store(7, ask, o, "m")
    assert (row.slot, row.status, row.gate_reason, row.raw) == ("p4:failed", "failed", "malformed answer: not JSON",
                                                               "I cannot")
    assert (row.prompt_tokens, row.completion_tokens, row.reasoning) == (120, 80, "because")
    assert (row.path_id, row.run_id, row.model, row.seed_ids) == (104, 7, "m", ("s1", "s2"))
    [empty] = items_to_store(7, ask, Outcome(0, value=[], result=RESULT), "m")
    assert empty.status == "failed" and empty.gate_reason == "malformed answer: no items"
    [refused] = items_to_store(7, ask, Outcome(0, error="HTTP 413: too large", result=replace_result(status=413)), "m")
    assert refused.status == "failed" and refused.prompt_tokens == 0


def replace_result(**kw) -> ChatResult:
    return ChatResult(error="x", attempts=1, **kw)


def test_an_answer_that_may_come_later_stores_nothing():
    ask = Ask(bundle(1), 2, 3.0)
    gave_up = Outcome(0, error="gave up after 6 attempts", result=ChatResult(error="gave up", attempts=6,
                                                                           transient=True))
    never = Outcome(0, unstarted=True, error="budget reached", result=ChatResult(error="budget reached"))
    assert gave_up.transient and items_to_store(7, ask, gave_up, "m") == []
    assert never.transient and items_to_store(7, ask, never, "m") == []
    paid = Outcome(0, error="blank twice", result=ChatResult(error="blank twice", attempts=2))
    assert not paid.transient and len(items_to_store(7, ask, paid, "m")) == 1


def test_rows_the_database_cannot_take_become_one_failed_row(tmp_path):
    with Store(tmp_path / "a.db") as store:
        run_id = store.runs.create("sample", {})
        bad = [Item(question="lone \ud800", answer="a", slot="p5:0", run_id=run_id, path_id=9, discipline="Physics",
                    seed_ids=("s1",), model="m"),
               Item(question="fine", answer="a", slot="p5:1", run_id=run_id, path_id=9, model="m")]
        _store(store, bad)
        _store(store, [])
        rows = store.query("SELECT slot, status, gate_reason, path_id, model, seed_ids FROM items")
    assert [tuple(r) for r in rows] == [("p5:failed", "failed", "the answer cannot be stored (UnicodeEncodeError)", 9,
                                         "m", '["s1"]')]


def test_the_model_task_cuts_extra_items_and_keeps_the_prompt_deterministic():
    task = SynthesisTask(DEFAULT_TEMPLATE, model="m", run_id=7)
    ask = Ask(bundle(0), 2, 3.0)
    req = task.request(ask)
    assert req.stage == "synthesis" and req.run_id == 7 and req.response_format["type"] == "json_schema"
    answer = StageModel(misbehave={"more_items": 1})({"messages": [{"role": "user", "content": task.prompt(ask)}]})
    assert len(json.loads(answer.content)["items"]) == 3
    got = task.parse(ask, ChatResult(content=answer.content))
    assert len(got) == 2


@pytest.mark.parametrize("n", [1, 3])
def test_slots_are_unique_per_path_and_position(n):
    rows = items_to_store(1, Ask(bundle(2), n, 3.0), Outcome(0, value=[item(f"q{k}") for k in range(n)]), "m")
    assert [r.slot for r in rows] == [f"p2:{k}" for k in range(n)]

"""Property-based tests of the reply parsers: whatever a model writes, the parsers say
ReplyError or give back every good item -- never another exception, never a lost item.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from linkqa_core.kps.llm import parse_batch
from linkqa_core.kps.names import MAX_KPS, MIN_KPS, normalize_kp
from linkqa_core.llm.replies import clean_text, loads_lenient, read_completion, split_reasoning
from linkqa_core.synthesis.compose import parse_items
from linkqa_core.tasks import ReplyError

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# text of any kind, lone surrogates included
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=400)
# prose a model puts around its JSON: no braces, brackets, fences or tags of its own
prose = st.text(st.characters(blacklist_characters="{}[]`<>\\\"", blacklist_categories=("Cs",)), max_size=80)
word = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_categories=("Cs",)),
               min_size=1, max_size=40).filter(lambda s: s.strip())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


def wrap(payload: str, style: int, before: str, after: str) -> str:
    """The ways models wrap JSON (the prose profile's styles and more)."""
    return [
        payload,
        f"{before}\n```json\n{payload}\n```\n{after}",
        f"```JSON\n{payload}\n```",
        f"<think>\n{before}\n</think>\n\n{payload}",
        f"{before}\n\n{payload}\n\n{after}",
        f"{before}</think>{payload}",
        f"<THINK>{before}</THINK>```\n{payload}\n```",
    ][style]


def storable(value) -> bool:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "strict") is not None


@FAST
@given(any_text)
@example("{" * 5000)
@example("[" * 100_000 + "]" * 100_000)
@example('{"a": 1' + "9" * 5000 + "}")
@example('{"q": "\\ud800"}')
@example("```json\n```")
def test_loads_lenient_raises_only_reply_error(text):
    try:
        value = loads_lenient(text)
    except ReplyError:
        return
    assert storable(value)


@FAST
@given(json_values.filter(lambda v: isinstance(v, (dict, list))), st.integers(0, 6), prose, prose)
def test_loads_lenient_finds_the_json_however_it_is_wrapped(value, style, before, after):
    payload = json.dumps(value, ensure_ascii=bool(style % 2))
    got = loads_lenient(wrap(payload, style, before, after))
    assert got == json.loads(json.dumps(value).replace("\\u0000", "")) or _equal_after_cleaning(got, value)


def _equal_after_cleaning(got, value) -> bool:
    def clean(v):
        if isinstance(v, str):
            return clean_text(v)
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {clean_text(k): clean(x) for k, x in v.items()}
        return v
    return got == clean(value)


@FAST
@given(st.text(st.characters(categories=("Cs",)), min_size=1, max_size=5), any_text)
def test_escaped_surrogates_and_nul_come_out_storable(bad, text):
    raw = json.dumps({"items": [{"question": text + bad + "\x00", "answer": "x" + bad}]})
    assert "\\u" in raw
    value = loads_lenient(raw)
    assert storable(value) and "\x00" not in value["items"][0]["question"]


item = st.fixed_dictionaries(
    {"question": word, "answer": word},
    optional={"options": st.lists(word, min_size=2, max_size=6), "solution": any_text,
              "kps_used": st.lists(word, max_size=4), "difficulty": st.one_of(st.integers(-5, 9), st.floats(), word)})


@FAST
@given(st.lists(item, min_size=1, max_size=6), st.integers(0, 6), prose, prose, st.booleans())
def test_parse_items_keeps_every_good_item_whatever_the_wrapping(items, style, before, after, bare):
    payload = json.dumps(items if bare else {"items": items})
    got = parse_items(wrap(payload, style, before, after))
    assert len(got) == len(items)
    for raw, it in zip(items, got):
        assert it.question == clean_text(raw["question"]).strip()
        assert it.difficulty is None or 1.0 <= it.difficulty <= 5.0
        if raw.get("options"):
            assert it.options is not None and len(it.options) == len(raw["options"])


@FAST
@given(any_text)
@example('{"items": [{"question": "q", "answer": "a", "options": "not a list"}]}')
@example('{"items": [{"question": "q", "answer": "B", "options": [1, 2.5, null]}]}')
@example('{"items": [{"question": "q", "answer": true}]}')
@example('{"question": "q", "answer": 7}')
def test_parse_items_raises_only_reply_error(text):
    try:
        for it in parse_items(text):
            assert it.question.strip() and it.answer.strip()
    except ReplyError:
        pass


@FAST
@given(st.integers(1, 8), st.data())
def test_parse_batch_finds_every_good_entry(n, data):
    kps = st.lists(word.filter(lambda w: len(w) <= 60 and normalize_kp(w)), min_size=MIN_KPS, max_size=MAX_KPS + 2,
                   unique_by=normalize_kp)
    entries = [{"index": i, "kps": data.draw(kps), "discipline": data.draw(word), "difficulty": data.draw(
        st.integers(-3, 9))} for i in range(1, n + 1)]
    shuffled = data.draw(st.permutations(entries))
    style = data.draw(st.integers(0, 6))
    found, problems = parse_batch(wrap(json.dumps({"seeds": shuffled}), style, data.draw(prose), data.draw(prose)), n)
    assert problems == [] and sorted(found) == list(range(1, n + 1))
    for e in entries:
        names, _, difficulty = found[e["index"]]
        assert [normalize_kp(k) for k in names] == [normalize_kp(" ".join(k.split()).strip(" .,;:"))
                                                    for k in e["kps"]][:MAX_KPS]
        assert 1 <= difficulty <= 5


@FAST
@given(any_text, st.integers(1, 10))
@example('{"seeds": [{"index": 1.0, "kps": ["a", "b"]}, {"index": true}, 5, {"index": 2, "kps": null}]}', 3)
@example('{"seeds": [{"index": 1, "kps": ["a", "b"], "difficulty": "NaN"}]}', 1)
@example('{"seeds": [{"index": 1, "kps": ["a", "b"], "difficulty": 1e999}]}', 1)
def test_parse_batch_never_raises(text, n):
    found, problems = parse_batch(text, n)
    assert set(found) <= set(range(1, n + 1))
    assert found or problems
    for kps, _, difficulty in found.values():
        assert MIN_KPS <= len(kps) <= MAX_KPS and (difficulty is None or 1 <= difficulty <= 5)


@FAST
@given(any_text, st.one_of(st.none(), any_text))
def test_split_reasoning_and_completions_never_lose_the_answer_text(content, reasoning):
    text, thinking = split_reasoning(content, reasoning)
    assert "<think>" not in text.lower() or "</think>" not in text.lower()
    body = {"choices": [{"message": {"content": content, "reasoning_content": reasoning}, "finish_reason": "stop"}]}
    c = read_completion(body)
    c.content.encode("utf-8")
    assert "\x00" not in c.content and (c.reasoning is None or "\x00" not in c.reasoning)


def test_huge_fields_are_read_whole():
    question = "why " * 250_000
    got = parse_items("Here:\n```json\n" + json.dumps({"items": [{"question": question, "answer": "a"}]}) + "\n```")
    assert len(got[0].question) == len(question.strip())


def test_deep_nesting_is_a_reply_error_not_a_crash():
    with pytest.raises(ReplyError, match="nested too deeply|not JSON"):
        loads_lenient("prose " + "[" * 50_000 + "]" * 50_000)

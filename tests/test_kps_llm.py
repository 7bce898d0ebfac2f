"""The LLM KP extractor against a real HTTP server on 127.0.0.1 that plays the model."""

from __future__ import annotations

import json
import math
import re

import pytest

from linkqa_core.errors import ConfigError
from linkqa_core.kps.extract import run_extraction
from linkqa_core.kps.llm import LLMExtractor, parse_batch, render_batch_prompt
from linkqa_core.llm.client import LLMSettings
from linkqa_core.records import BadRow, Seed
from linkqa_core.ingest.load import ingest
from linkqa_core.store import Store

from openai_server import Answer, FakeOpenAI, HTTPError

_SEED_HEAD = re.compile(r"^Seed (\d+) \(subject: [^)]*\):\nQuestion: (.*)$", re.M)


def _seeds_in(body) -> list[tuple[int, str]]:
    """(number, question) of each seed in a request's first user message."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return [(int(n), q) for n, q in _SEED_HEAD.findall(user)]


def _alone(body) -> bool:
    return len(_seeds_in(body)) == 1


def _entry(n: int, question: str) -> dict:
    return {"index": n, "kps": [f"{question} concept", f"{question} principle"], "discipline": "Physics",
            "difficulty": 3}


def model(body) -> Answer:
    """A model that names two KPs per seed, and misbehaves on request:

    - "BROKEN": a batch answer with it is cut off JSON; asked alone it is fine;
    - "HOPELESS": the seed is left out of every answer;
    - "MANY": twelve KPs (two of them blank or duplicate);
    - "ONE": a single KP;
    - "ODD": an unknown discipline and difficulty 9.
    """
    seeds = _seeds_in(body)
    questions = " ".join(q for _, q in seeds)
    if "BROKEN" in questions and not _alone(body):
        return Answer('{"seeds": [{"index": 1, "kps": ["unfinished')
    entries = []
    for n, q in seeds:
        if "HOPELESS" in q:
            continue
        e = _entry(n, q)
        if "MANY" in q:
            e["kps"] = [f"concept {k}" for k in range(10)] + ["", "Concept 1"]
        if "ONE" in q:
            e["kps"] = ["lonely concept"]
        if "ODD" in q:
            e["discipline"], e["difficulty"] = "Alchemy", 9
        entries.append(e)
    return Answer(json.dumps({"seeds": entries}))


@pytest.fixture
def server():
    with FakeOpenAI(model) as srv:
        yield srv


def _settings(srv, **kw) -> LLMSettings:
    return LLMSettings(base_urls=(srv.base_url,), api_key="sk-test", model="fake", **kw)


def _seed(i: int, question: str | None = None) -> Seed:
    return Seed(id=f"s{i:03d}", question=question or f"What is item number {i}?", answer=str(i),
                options=("1", "2", str(i), "4"), subject="physics")


def test_llm_extractor_batches_seeds_into_ceil_n_over_batch_requests(server):
    seeds = [_seed(i) for i in range(20)]
    ex = LLMExtractor(_settings(server), batch_size=8)
    out = ex.extract(seeds)
    assert len(server.chat_requests) == math.ceil(20 / 8)
    assert sorted(len(_seeds_in(r.json)) for r in server.chat_requests) == [4, 8, 8]
    assert [e.seed_id for e in out] == [s.id for s in seeds]
    assert all(2 <= len(e.kps) <= 8 for e in out)
    assert ex.failures == [] and ex.stats.extracted == 20 and ex.stats.requests == 3


def test_llm_extractor_asks_for_a_json_schema_with_numbered_seeds(server):
    LLMExtractor(_settings(server), batch_size=4).extract([_seed(i) for i in range(3)])
    body = server.chat_requests[0].json
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]["schema"]
    assert "seeds" in schema["properties"]
    user = body["messages"][-1]["content"]
    for n in (1, 2, 3):
        assert f"Seed {n} (subject: physics)" in user
    assert "Answer: 0" in user and "Options: A. 1" in user


def test_kps_are_kept_as_written_one_per_key_cut_to_eight_and_fields_validated(server):
    seeds = [_seed(0, "MANY things?"), _seed(1, "ODD things?"), _seed(2, "Plain Things?")]
    out = {e.seed_id: e for e in LLMExtractor(_settings(server)).extract(seeds)}
    many = out["s000"]
    assert len(many.kps) == 8 and "" not in many.kps and len({k.lower() for k in many.kps}) == 8
    assert out["s001"].discipline is None and out["s001"].difficulty == 5.0
    assert out["s002"].discipline == "Physics" and out["s002"].difficulty == 3.0
    assert out["s002"].kps == ("Plain Things? concept", "Plain Things? principle")


def test_a_broken_batch_answer_is_asked_again_seed_by_seed(server):
    seeds = [_seed(0), _seed(1, "BROKEN question?"), _seed(2)]
    ex = LLMExtractor(_settings(server), batch_size=8)
    out = ex.extract(seeds)
    assert len(out) == 3 and ex.failures == []
    assert [len(_seeds_in(r.json)) for r in server.chat_requests] == [3, 1, 1, 1]
    assert ex.stats.singles == 3 and ex.by_path == {"llm-single": 3}


def test_seeds_failing_alone_too_are_reported_with_their_position(server):
    seeds = [_seed(0), _seed(1, "HOPELESS question?"), _seed(2), _seed(3, "ONE idea?")]
    ex = LLMExtractor(_settings(server), batch_size=2, fallback=False)
    out = ex.extract(seeds)
    assert {e.seed_id for e in out} == {"s000", "s002"}
    assert [f.line for f in ex.failures] == [2, 4]
    assert all(isinstance(f, BadRow) for f in ex.failures)
    assert ex.failures[0].reason == ("seed s001: left out of the answer; asked alone: left out of the answer")
    assert "2-8 knowledge points, got 1" in ex.failures[1].reason
    # one request per batch, then each failing seed alone
    assert len(server.chat_requests) == 2 + 2
    assert ex.by_path == {"llm": 2, "failed": 2}


def test_only_the_failing_seed_is_asked_again(server):
    seeds = [_seed(0), _seed(1, "ONE idea?")]
    LLMExtractor(_settings(server), fallback=False).extract(seeds)
    first, again = server.chat_requests
    assert [q for _, q in _seeds_in(first.json)] == ["What is item number 0?", "ONE idea?"]
    assert _seeds_in(again.json) == [(1, "ONE idea?")]


def test_seeds_the_model_cannot_answer_get_offline_kps_marked_as_such(server):
    seeds = [_seed(i, f"Which force keeps planet {i} in orbit around its star?") for i in range(5)]
    seeds.append(_seed(5, "HOPELESS: which force keeps a moon in orbit around its planet?"))
    ex = LLMExtractor(_settings(server), batch_size=8)
    out = {e.seed_id: e for e in ex.extract(seeds)}
    assert set(out) == {s.id for s in seeds}  # no holes
    assert ex.by_path == {"llm": 5, "offline-fallback": 1}
    assert len(out["s005"].kps) >= 2 and not any("concept" in k for k in out["s005"].kps)
    [why] = ex.failures
    assert why.line == 6 and why.reason.endswith("the offline extractor's KPs stand in")


def test_rerun_with_a_store_hits_the_cache(server, store):
    seeds = [_seed(i) for i in range(5)] + [_seed(5, "BROKEN one?")]
    first = LLMExtractor(_settings(server), store=store, batch_size=4).extract(seeds)
    sent = len(server.chat_requests)
    assert sent == 2 + 2  # two batches, the broken one's two seeds alone
    ex = LLMExtractor(_settings(server), store=store, batch_size=4)
    again = ex.extract(seeds)
    assert len(server.chat_requests) == sent
    assert again == first and ex.stats.cached == 4 and ex.stats.requests == 0


def test_failed_requests_become_failures_not_exceptions(server):
    server.responder = lambda body: HTTPError(500)
    ex = LLMExtractor(_settings(server, max_retries=1, backoff_base_s=0.0), batch_size=8, fallback=False)
    out = ex.extract([_seed(0), _seed(1)])
    assert out == []
    assert [f.line for f in ex.failures] == [1, 2]
    assert "the request failed" in ex.failures[0].reason and "HTTP 500" in ex.failures[0].reason
    assert len(server.chat_requests) == 2 * 3  # the batch, then each seed alone, twice each


def test_extractor_needs_an_endpoint_and_a_model():
    with pytest.raises(ConfigError, match="endpoint and a model"):
        LLMExtractor(LLMSettings())
    with pytest.raises(ConfigError, match="batch size"):
        LLMExtractor(LLMSettings(base_urls="http://127.0.0.1:9/v1", model="m"), batch_size=0)


def test_run_extraction_with_the_llm_extractor_stores_kps_and_counts_paths(server, tmp_path):
    rows = [{"question": f"Question {i} about forces?", "answer": "yes", "subject": "physics"} for i in range(6)]
    rows.append({"question": "HOPELESS question about nothing?", "answer": "no", "subject": "physics"})
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with Store(tmp_path / "x.db") as store:
        ingest(store, path)
        ex = LLMExtractor(_settings(server), store=store, batch_size=3, fallback=False)
        report = run_extraction(store, ex)
        assert report.extractor == "llm" and report.seeds == 6
        assert report.by_path == {"llm": 6, "failed": 1}
        linked = store.scalar("SELECT count(DISTINCT seed_rid) FROM seed_kps")
        assert linked == 6
        names = {r[0] for r in store.query("SELECT name FROM kps")}
        assert "question 0 about forces? concept" in names
        assert len(ex.failures) == 1 and "HOPELESS" not in ex.failures[0].reason


def test_parse_batch_is_lenient_about_wrapping_but_not_about_content():
    assert parse_batch("not json", 2)[1][0].startswith("it is not JSON")
    assert parse_batch("", 2)[1] == ["the answer is empty"]
    assert parse_batch('{"items": []}', 1)[1] == ['it is not an object with a "seeds" list']
    found, problems = parse_batch(json.dumps({"seeds": [
        {"index": 1, "kps": ["a b", "c d"], "discipline": "law", "difficulty": "2"},
        {"index": 7, "kps": ["x", "y"]},
        {"index": 2, "kps": "x, y, "},
        {"index": "3", "kps": ["only one"]},
    ]}), 3)
    assert found == {1: (("a b", "c d"), "Law", 2.0), 2: (("x", "y"), None, None)}
    assert any("index 7" in p for p in problems)
    assert problems[-1] == "seed 3: needs 2-8 knowledge points, got 1"
    # fences, prose and <think> around the JSON; a bare list; entries without numbers, one per seed
    for text in ('```json\n{"seeds": [{"index": 1, "kps": ["p q", "r s"]}]}\n```',
                 'Sure! <think>hm</think> Here: {"seeds": [{"index": 1, "kps": ["p q", "r s"]}]} Done.',
                 '[{"index": 1, "kps": ["p q", "r s"]}]', '{"seeds": [{"kps": ["p q", "r s"]}]}'):
        assert parse_batch(text, 1) == ({1: (("p q", "r s"), None, None)}, []), text


def test_render_batch_prompt_numbers_seeds_from_one():
    text = render_batch_prompt([_seed(0), _seed(1)])
    assert "Seed 1 (subject: physics)" in text and "Seed 2 (subject: physics)" in text
    assert "Mathematics" in text  # the discipline list

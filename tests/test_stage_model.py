"""The stage-aware fake model: it answers each stage's real prompt with JSON that stage
can use, misbehaves exactly when asked, and goes through each server profile's quirks."""

from __future__ import annotations

import json
import re

import openai
import pytest

from linkqa_core.difficulty.enhance import enhance
from linkqa_core.difficulty.raters import LLMRater
from linkqa_core.difficulty.targets import DifficultyTargets
from linkqa_core.graph.sampling import sample
from linkqa_core.graph.walks import WalkParams
from linkqa_core.kps.llm import LLMExtractor, parse_batch, render_batch_prompt
from linkqa_core.kps.names import normalize_kp
from linkqa_core.llm.client import LLMSettings
from linkqa_core.records import Bundle, Path, Seed
from linkqa_core.synthesis.compose import parse_items
from linkqa_core.synthesis.prompt import DEFAULT_TEMPLATE, render_prompt
from linkqa_core.synthesis.run import SynthesisConfig, synthesize

from openai_server import FakeOpenAI, HostedReasoning, StageModel
from stage_model import MISBEHAVIOURS, STAGES, stage_of

SEEDS = [
    Seed(id="s1", question="Which gas do green plants absorb from the air during photosynthesis?",
         answer="Carbon dioxide", options=("Oxygen", "Carbon dioxide", "Nitrogen", "Helium"), answer_letter="B",
         subject="high_school_biology"),
    Seed(id="s2", question="In which organelle does photosynthesis take place in plant cells?",
         answer="Chloroplast", options=("Mitochondrion", "Ribosome", "Chloroplast", "Nucleus"), answer_letter="C",
         subject="high_school_biology"),
    Seed(id="s3", question="What pigment gives leaves their green colour and captures light energy?",
         answer="Chlorophyll", options=("Carotene", "Chlorophyll", "Melanin", "Haemoglobin"), answer_letter="B",
         subject="college_biology"),
]
KPS = ["photosynthesis", "chloroplast", "light energy"]


def body(text: str, system: str | None = None) -> dict:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return {"model": "fake-model", "messages": messages}


def synthesis_prompt(n: int, *, multiple_choice: bool = True) -> str:
    bundle = Bundle(Path(0, tuple(KPS), "Biology", tuple(s.id for s in SEEDS), id=1, run_id=1), tuple(SEEDS))
    return render_prompt(DEFAULT_TEMPLATE, bundle, n, 3.0, multiple_choice)


def answer_of(model: StageModel, request: dict) -> str:
    return model(request).content


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


# -- answers that parse as each stage expects ------------------------------------------------------


def test_stage_of_knows_each_prompt_and_only_ours():
    assert stage_of(body(synthesis_prompt(2))) == "synthesis"
    assert stage_of(body(render_batch_prompt(SEEDS), system="You index exam questions.")) == "kps"
    assert stage_of(body("What is the capital of France?")) is None
    assert StageModel()(body("What is the capital of France?")) is None  # the server's echo answers it
    assert set(STAGES) == {s for _, stages in MISBEHAVIOURS.values() for s in stages}


@pytest.mark.parametrize("n", [1, 2, 4])
def test_synthesis_answers_n_valid_items_built_from_the_seeds_not_copied(n):
    items = parse_items(answer_of(StageModel(), body(synthesis_prompt(n))))
    assert len(items) == n
    seed_text = " ".join(s.question for s in SEEDS)
    for item in items:
        assert len(item.options) == 4 and item.answer in item.options
        assert item.question not in {s.question for s in SEEDS}
        assert not any(s.question[:-1] in item.question for s in SEEDS)  # never a whole seed question
        assert len(words(item.question) & words(seed_text)) >= 5  # but the seeds' own words
        assert set(item.kps_used) <= set(KPS) and len(item.kps_used) == 2
        answered_by = [s for s in SEEDS if s.answer == item.answer]
        assert answered_by and set(answered_by[0].options) == set(item.options)  # follows from a seed
        assert item.difficulty == 3.0 and item.solution
    assert len({i.question for i in items}) == n


def test_synthesis_open_questions_have_no_options():
    items = parse_items(answer_of(StageModel(), body(synthesis_prompt(2, multiple_choice=False))),
                        multiple_choice=False)
    assert [i.options for i in items] == [None, None]
    assert {i.answer for i in items} <= {s.answer for s in SEEDS}


def test_kp_batch_answers_every_seed_with_phrases_from_its_own_text():
    content = answer_of(StageModel(), body(render_batch_prompt(SEEDS), system="You index."))
    found, problems = parse_batch(content, len(SEEDS))
    assert problems == [] and sorted(found) == [1, 2, 3]
    for entry in json.loads(content)["seeds"]:
        seed = SEEDS[entry["index"] - 1]
        kps, discipline, difficulty = found[entry["index"]]
        assert 2 <= len(kps) <= 3 and [normalize_kp(k) for k in kps] == [normalize_kp(k) for k in entry["kps"]]
        assert all(kp in f"{seed.question} {seed.answer}".lower() for kp in entry["kps"])  # the seed's own phrases
        assert discipline == "Biology" and 1 <= difficulty <= 5
        assert not set(kps) & {"bayes' theorem", "le chatelier's principle", "price elasticity of demand"}


def test_rating_parses_and_a_rewrite_it_wrote_is_rated_one_level_higher(sample_store):
    model = StageModel()
    run_id = sample(sample_store, WalkParams(), 2, seed=2, save=True).run_id
    with FakeOpenAI(model) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-test", model="fake-model",
                               backoff_base_s=0.0)
        synthesize(sample_store, run_id, SynthesisConfig(per_bundle=2), settings)
        report = enhance(sample_store, run_id, DifficultyTargets.parse("default=5:1"), settings, max_rounds=1)
        rate_prompts = [r.json for r in srv.chat_requests if stage_of(r.json) == "difficulty-rate"]
    assert report.attempted == 4 and report.kept == 4 and report.eliminated == {}
    assert rate_prompts and all(LLMRater.parse(None, None, StageModel()(b)) is not None for b in rate_prompts)
    children = sample_store.query("SELECT difficulty, parent_id, operation FROM items WHERE parent_id IS NOT NULL")
    parents = {r["id"]: r["difficulty"] for r in sample_store.query("SELECT id, difficulty FROM items")}
    assert all(c["difficulty"] == min(5, parents[c["parent_id"]] + 1) for c in children)
    assert {stage for stage, _ in model.log} == {"synthesis", "difficulty-rate", "difficulty-rewrite",
                                                 "difficulty-check", "difficulty-judge"}


# -- misbehaviour on request -------------------------------------------------------------------


def test_more_and_fewer_items_than_asked():
    more = parse_items(answer_of(StageModel(misbehave={"more_items": 1}), body(synthesis_prompt(2))))
    fewer = json.loads(answer_of(StageModel(misbehave={"fewer_items": 1}), body(synthesis_prompt(1))))
    assert len(more) == 3 and fewer == {"items": []}


def test_misbehaviour_every_nth_request_is_counted_per_stage():
    model = StageModel(misbehave={"fewer_items": 2, "example_kps": 3})
    sizes = [len(json.loads(model(body(synthesis_prompt(3))).content)["items"]) for _ in range(4)]
    model(body(render_batch_prompt(SEEDS)))
    assert sizes == [3, 2, 3, 2]
    assert model.log == [("synthesis", ()), ("synthesis", ("fewer_items",)), ("synthesis", ()),
                         ("synthesis", ("fewer_items",)), ("kps", ())]


def test_copy_seed_and_letter_answers():
    copied = parse_items(answer_of(StageModel(misbehave={"copy_seed": 1}), body(synthesis_prompt(2))))
    assert copied[0].question == SEEDS[0].question and copied[0].answer == "Carbon dioxide"
    assert copied[1].question != SEEDS[1].question
    raw = json.loads(answer_of(StageModel(misbehave={"letter_answer": 1}), body(synthesis_prompt(2))))
    assert all(re.fullmatch(r"[A-D]", i["answer"]) for i in raw["items"])
    assert all(i["options"][ord(i["answer"]) - 65] in {s.answer for s in SEEDS} for i in raw["items"])


def test_example_kps_repeat_the_prompts_own_examples():
    answer = answer_of(StageModel(misbehave={"example_kps": 1}), body(render_batch_prompt(SEEDS)))
    found, problems = parse_batch(answer, 3)
    assert problems == []
    assert {kps for kps, _, _ in found.values()} == {("Bayes' theorem", "Le Chatelier's principle",
                                                     "price elasticity of demand")}
    found, problems = parse_batch(answer, 3, SEEDS)  # knowing the seeds, the copied examples are dropped
    assert found == {} and all("only the prompt's own example KPs" in p for p in problems)


def test_a_dropped_seed_is_asked_again_alone_through_the_extractor():
    for kind in ("drop_seed", "drop_seed_always"):
        model = StageModel(misbehave={kind: 1})
        with FakeOpenAI(model) as srv:
            ex = LLMExtractor(LLMSettings(base_urls=(srv.base_url,), api_key="sk-test", model="fake-model"),
                              batch_size=8)
            out = ex.extract(SEEDS)
            alone = srv.chat_requests[-1].json["messages"][-1]["content"]
        assert [stage for stage, _ in model.log] == ["kps", "kps"]  # the batch, then seed 3 on its own
        assert "Seed 1 (subject: college_biology)" in alone and "Seed 2" not in alone
        assert len(out) == 3 and ex.stats.singles == 1 and ex.failures == []
        assert ex.by_path == {"llm": 2, "llm-single": 1}


def test_judge_no_and_truncated_answers(sample_store):
    run_id = sample(sample_store, WalkParams(), 2, seed=2, save=True).run_id
    with FakeOpenAI(StageModel(misbehave={"judge_no": 1})) as srv:
        settings = LLMSettings(base_urls=(srv.base_url,), api_key="sk-test", model="fake-model",
                               backoff_base_s=0.0)
        synthesize(sample_store, run_id, SynthesisConfig(per_bundle=1), settings)
        report = enhance(sample_store, run_id, DifficultyTargets.parse("default=5:1"), settings, max_rounds=1)
    assert report.kept == 0 and report.eliminated == {"answer does not follow from the linked seeds": 2}
    cut = StageModel(misbehave={"truncated": 1})(body(synthesis_prompt(2)))
    assert cut.finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(cut.content)


def test_unknown_misbehaviour_or_bad_period_is_refused():
    with pytest.raises(ValueError, match="unknown misbehaviour 'lie'"):
        StageModel(misbehave={"lie": 1})
    with pytest.raises(ValueError, match="every N-th"):
        StageModel(misbehave={"copy_seed": 0})


# -- through each profile's quirks ------------------------------------------------------------------


def _sdk_ask(srv: FakeOpenAI, text: str, **kw):
    client = openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0)
    return client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": text}], **kw)


def test_prose_profile_wraps_the_stage_answers_which_lenient_parsing_reads():
    with FakeOpenAI(StageModel(reasoning=True), profile="prose") as srv:
        contents = [_sdk_ask(srv, synthesis_prompt(2)).choices[0].message.content for _ in range(4)]
        kp_answers = [_sdk_ask(srv, render_batch_prompt(SEEDS)).choices[0].message.content for _ in range(4)]
    assert all(c.startswith("<think>\nAnswering the synthesis request") for c in contents)
    assert all(len(parse_items(c.split("</think>", 1)[1])) == 2 for c in contents)
    problems = [parse_batch(c, 3)[1] for c in kp_answers]  # <think>, fences and prose around the JSON
    assert problems == [[], [], [], []]


def test_hosted_profile_adds_reasoning_and_blanks_every_nth_stage_answer():
    with FakeOpenAI(StageModel(), profile=HostedReasoning(blank_every=2)) as srv:
        answers = [_sdk_ask(srv, render_batch_prompt(SEEDS), response_format={"type": "json_object"})
                   for _ in range(4)]
        with pytest.raises(openai.BadRequestError, match="response_format type is unavailable"):
            _sdk_ask(srv, render_batch_prompt(SEEDS), response_format={"type": "json_schema", "json_schema": {
                "name": "x", "schema": {}}})
    problems = [parse_batch(a.choices[0].message.content, 3)[1] for a in answers]
    assert problems == [[], ["the answer is empty"], [], ["the answer is empty"]]
    assert all(a.choices[0].message.model_extra["reasoning_content"] for a in answers)

"""Multiple-choice layouts, per-row fallbacks and disciplines (issue 12, engine side)."""

from __future__ import annotations

import json

import pytest

from ingest_fixtures import csv_bytes, jsonl_bytes, parquet_bytes  # noqa: F401
from linkqa_core.ingest.load import discipline_values, guess_mapping, ingest, load_seeds
from linkqa_core.records import BadRow
from linkqa_core.store import Store
from linkqa_core.taxonomy import DISCIPLINES, match_discipline

OPTIONS = ["Paris", "Rome", "Madrid", "Berlin"]


def test_prompt_choice1_to_4_key_area_csv_is_mapped_fully_by_guess():
    header = ["Prompt", "Choice1", "Choice2", "Choice3", "Choice4", "Key", "Area"]
    assert guess_mapping(header) == {
        "question": "Prompt", "options": ["Choice1", "Choice2", "Choice3", "Choice4"], "answer": "Key",
        "discipline": "Area",
    }
    data = csv_bytes(header, [["Capital of Spain?", *OPTIONS, "C", "Geography"],
                              ["Capital of Italy?", *OPTIONS, "B", "philosophy"]])
    result = load_seeds(data, filename="exam.csv")
    assert result.bad_rows == []
    assert [(s.answer, s.answer_letter, s.discipline) for s in result.seeds] == [
        ("Madrid", "C", "Social Sciences"), ("Rome", "B", "Philosophy & Religion")]


@pytest.mark.parametrize("columns,answer_column", [
    (["Question", "Option A", "Option B", "Option C", "Option D"], "Correct"),
    (["question", "A", "B", "C", "D"], "Label"),
    (["stem", "option1", "option2", "option3", "option4"], "correct_option"),
    (["question", "choice_1", "choice_2", "choice_3", "choice_4"], "key"),
    (["Question", "opt_a", "opt_b", "opt_c", "opt_d"], "Correct Answer"),
])
def test_common_option_layouts_and_answer_columns_are_guessed(columns, answer_column):
    mapping = guess_mapping([*columns, answer_column, "Field"])
    assert mapping["question"] == columns[0] and mapping["options"] == columns[1:]
    assert mapping["answer"] == answer_column and mapping["discipline"] == "Field"
    data = csv_bytes([*columns, answer_column, "Field"], [["Capital of Germany?", *OPTIONS, "D", "History"]])
    seed = load_seeds(data, filename="x.csv").seeds[0]
    assert (seed.answer, seed.answer_letter, seed.discipline) == ("Berlin", "D", "History")


def _medmcqa(cop_values: list[int]) -> list[dict]:
    return [{"id": f"m{i}", "question": f"Which is option {cop}?", "opa": "w", "opb": "x", "opc": "y", "opd": "z",
             "cop": cop, "subject_name": "Anatomy", "topic_name": "Bones"} for i, cop in enumerate(cop_values)]


def test_medmcqa_cop_counts_options_from_1_as_in_the_original_release():
    rows = _medmcqa([1, 2, 3, 4, 2])
    result = load_seeds(jsonl_bytes(rows), filename="medmcqa.jsonl")
    assert result.mapping["options"] == ["opa", "opb", "opc", "opd"] and result.mapping["answer"] == "cop"
    assert [s.answer_letter for s in result.seeds] == ["A", "B", "C", "D", "B"]
    assert {s.subject for s in result.seeds} == {"Anatomy"} and {s.discipline for s in result.seeds} == {"Medicine & Health"}


def test_medmcqa_cop_from_0_as_on_hugging_face_is_read_from_0():
    rows = _medmcqa([0, 1, 2, 3, 1])
    data = parquet_bytes({k: [r[k] for r in rows] for k in rows[0]})
    result = load_seeds(data, filename="medmcqa.parquet")
    assert [s.answer_letter for s in result.seeds] == ["A", "B", "C", "D", "B"]


def test_a_digit_key_next_to_numbered_choices_counts_from_1_and_a_text_answer_still_matches():
    header = ["Prompt", "Choice1", "Choice2", "Choice3", "Key"]
    data = csv_bytes(header, [["Which?", "alpha", "beta", "gamma", "2"], ["Which?", "1", "7", "3", "3"],
                              ["Which?", "alpha", "beta", "gamma", "beta"], ["Which?", "alpha", "beta", "gamma", "9"]])
    result = load_seeds(data, filename="k.csv")
    assert [(s.answer, s.answer_letter) for s in result.seeds] == [("beta", "B"), ("3", "C"), ("beta", "B")]
    assert result.bad_rows == [BadRow(5, "answer '9' matches none of the 3 options")]


def test_rows_that_name_their_answer_in_another_column_fall_back_row_by_row():
    rows = [{"question": f"q{i}?", "answer_a": "x", "answer_b": "y", "answer_c": "z", "answer_d": "w",
             "correct_answer": "BCDA"[i % 4]} for i in range(8)]
    rows.insert(3, {"question": "free?", "answer": "forty-two"})
    result = load_seeds(jsonl_bytes(rows), filename="mixed.jsonl")
    assert result.bad_rows == [] and len(result.seeds) == 9
    free = result.seeds[3]
    assert (free.answer, free.options, free.metadata) == ("forty-two", None, {})
    assert [s.answer_letter for s in result.seeds if s.options] == ["B", "C", "D", "A", "B", "C", "D", "A"]
    assert all(s.metadata == {} for s in result.seeds)


def test_options_and_question_fall_back_between_layouts_row_by_row():
    rows = [{"prompt": "p1?", "choices": ["a", "b"], "answer": "B"},
            {"question": "q2?", "A": "c", "B": "d", "answer": "A"}]
    result = load_seeds(jsonl_bytes(rows), filename="two.jsonl")
    assert [(s.question, s.options, s.answer) for s in result.seeds] == [("p1?", ("a", "b"), "b"), ("q2?", ("c", "d"), "c")]


def test_a_field_the_curator_mapped_elsewhere_does_not_fall_back():
    rows = [{"question": "q1?", "answer": "a", "solution": "s"}, {"question": "q2?", "solution": "s"}]
    mapped = load_seeds(jsonl_bytes(rows), filename="m.jsonl", mapping={"answer": "answer"})
    assert len(mapped.seeds) == 2  # the curator confirmed the guess: the fallback stays
    own = load_seeds(jsonl_bytes([{"question": "q?", "key": "", "answer": "a"}, {"question": "q2?", "key": "k"}]),
                     filename="o.jsonl", mapping={"answer": "key"})
    assert own.bad_rows == [BadRow(1, "empty answer")] and [s.answer for s in own.seeds] == ["k"]


# -- disciplines ---------------------------------------------------------------------------

MATCHES = {
    "Philosophy": "Philosophy & Religion",
    "philosophy and religion": "Philosophy & Religion",
    "MEDICINE & HEALTH": "Medicine & Health",
    "Maths": "Mathematics",
    "Mathematcs": "Mathematics",
    "Comp. Sci.": "Computer Science",
    "Life sciences": "Biology",
    "Organic chemistry": "Chemistry",
    "economics": "Economics & Business",
    "high school us history": "History",
    "Social science": "Social Sciences",
    "Misc": "Other",
    "Earth science": None,
    "Humanities": None,
    "Art": None,
    "": None,
}


@pytest.mark.parametrize("value", sorted(MATCHES))
def test_match_discipline_reads_names_cases_ands_typos_and_says_none_when_nothing_fits(value):
    assert match_discipline(value) == MATCHES[value]


def test_every_built_in_discipline_matches_itself_in_any_case():
    assert all(match_discipline(d.upper()) == d for d in DISCIPLINES)


def _area_rows() -> bytes:
    areas = ["philosophy"] * 3 + ["Earth science"] * 2 + ["Physics"] + [" philosophy "]
    return jsonl_bytes([{"question": f"q{i}?", "answer": "a", "area": a} for i, a in enumerate(areas)])


def test_discipline_values_lists_each_value_with_its_rows_and_proposal():
    assert discipline_values(_area_rows(), filename="areas.jsonl") == [
        ("philosophy", 4, "Philosophy & Religion"), ("Earth science", 2, None), ("Physics", 1, "Physics")]
    assert discipline_values(_area_rows(), filename="areas.jsonl", limit=1) == [("philosophy", 4, "Philosophy & Religion")]


def test_discipline_values_use_the_subject_when_no_discipline_column_is_mapped():
    data = jsonl_bytes([{"question": "q?", "answer": "a", "topic": t} for t in ["astronomy", "astronomy", "knitting"]])
    assert discipline_values(data, filename="t.jsonl") == [("astronomy", 2, "Physics"), ("knitting", 1, None)]
    assert discipline_values(jsonl_bytes([{"question": "q?", "answer": "a"}]), filename="n.jsonl") == []


def test_ingest_applies_the_curators_choices_and_matching_values_never_make_a_new_discipline(tmp_path):
    store = Store(tmp_path / "d.db")
    report = ingest(store, _area_rows(), filename="areas.jsonl", discipline_map={"Earth science": "physics"})
    assert report.added == 7
    disciplines = {r[0] for r in store.query("SELECT discipline FROM seeds")}
    assert disciplines == {"Philosophy & Religion", "Physics"}
    unmapped = Store(tmp_path / "u.db")
    ingest(unmapped, _area_rows(), filename="areas.jsonl")
    assert {r[0] for r in unmapped.query("SELECT discipline FROM seeds")} == {
        "Philosophy & Religion", "Physics", "Earth science"}  # unmatched: kept as the curator's own


def test_a_discipline_map_file_of_json_still_overrides_subjects(tmp_path):
    data = jsonl_bytes([{"question": "q?", "answer": "a", "subject": "Basket weaving"}])
    seed = load_seeds(data, filename="b.jsonl", discipline_map=json.loads('{"basket weaving": "engineering"}')).seeds[0]
    assert seed.discipline == "Engineering"

"""Loading seeds: formats, column mapping, multiple choice, disciplines, ids, the store."""

from __future__ import annotations

import json

import pytest

from ingest_fixtures import as_format, csv_bytes, fail_add_rows_on_call, jsonl_bytes, parquet_bytes, sample_rows, seeded_store, write_as  # noqa: F401
from linkqa_core.ingest import load as seeds_module
from linkqa_core.errors import InputError
from linkqa_core.records import BadRow
from linkqa_core.ingest.load import guess_mapping, ingest, load_seeds, peek, sample_path, seed_id
from linkqa_core.store import Store
from linkqa_core.store.seeds import SeedStore
from linkqa_core.taxonomy import DISCIPLINES

FORMAT_KINDS = ["jsonl", "json_array", "json_splits", "csv_letters", "parquet"]


# -- the bundled sample and the full MMLU file -------------------------------------------


def test_sample_path_is_the_bundled_jsonl():
    assert sample_path().name == "mmlu_sample.jsonl" and sample_path().is_file()


def test_bundled_sample_gives_1140_seeds_over_57_subjects_with_letters_resolved():
    result = load_seeds(sample_path())
    assert (len(result.seeds), result.bad_rows, result.rows_read, result.format) == (1140, [], 1140, "jsonl")
    assert len({s.subject for s in result.seeds}) == 57
    disciplines = {s.discipline for s in result.seeds}
    assert len(disciplines) <= 13 and disciplines <= set(DISCIPLINES)
    first = result.seeds[0]  # "The element (4, 2) of Z_12 x Z_8 has order", correct_answer C
    assert (first.answer, first.answer_letter, first.options) == ("12", "C", ("4", "8", "12", "6"))
    assert (first.subject, first.discipline, first.source) == ("abstract algebra", "Mathematics", "mmlu_sample.jsonl")
    assert all(s.options and s.options["ABCD".index(s.answer_letter)] == s.answer for s in result.seeds)
    assert all(s.difficulty is None and s.metadata == {} for s in result.seeds)


def test_ingest_sample_into_sqlite_then_again_adds_nothing(store):
    first = ingest(store, sample_path())
    # one question is filed under both clinical knowledge and college medicine: same id
    assert (first.added, first.duplicates, first.rows_read, first.bad_rows) == (1139, 1, 1140, [])
    assert first.total_seeds == store.seeds.count() == 1139
    again = ingest(store, sample_path())
    assert (again.added, again.duplicates, again.total_seeds) == (0, 1140, 1139)


def test_stored_seed_reads_back_equal_to_the_loaded_one(store):
    loaded = load_seeds(sample_path()).seeds[:3]
    ingest(store, sample_path())
    assert store.seeds.get([s.id for s in loaded]) == loaded


def test_full_mmlu_file_gives_14042_seeds_and_reports_the_two_header_rows_by_line(mmlu_path):
    result = load_seeds(mmlu_path)
    assert (len(result.seeds), result.rows_read) == (14042, 14044)
    assert result.bad_rows == [
        BadRow(11777, "answer 'answer' matches none of the 4 options"),
        BadRow(12794, "answer 'answer' matches none of the 4 options"),
    ]
    assert len({s.subject for s in result.seeds}) == 57


def test_full_mmlu_ingest_counts_repeated_questions_as_duplicates(mmlu_path, store):
    report = ingest(store, mmlu_path)
    unique = len({s.id for s in load_seeds(mmlu_path).seeds})
    assert report.added == unique == store.seeds.count()
    assert report.added + report.duplicates == 14042 and len(report.bad_rows) == 2


# -- formats -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMAT_KINDS)
@pytest.mark.parametrize("via", ["path", "bytes"])
def test_every_format_gives_the_same_seeds_from_a_path_or_from_bytes(tmp_path, kind, via):
    rows = sample_rows(40)
    expected = load_seeds(jsonl_bytes(rows), filename="ref.jsonl").seeds
    name, data = as_format(rows, kind)
    if via == "path":
        result = load_seeds(write_as(tmp_path, rows, kind))
    else:
        result = load_seeds(data, filename=name)
    assert result.format == kind.split("_")[0]
    assert result.bad_rows == [] and result.rows_read == 40
    assert [s.id for s in result.seeds] == [s.id for s in expected]
    assert [(s.answer, s.answer_letter, s.subject, s.discipline) for s in result.seeds] == [
        (s.answer, s.answer_letter, s.subject, s.discipline) for s in expected
    ]
    assert all(s.source == name for s in result.seeds)


@pytest.mark.parametrize("kind", FORMAT_KINDS)
def test_format_is_sniffed_from_content_when_bytes_come_without_a_name(kind):
    _, data = as_format(sample_rows(10), kind)
    result = load_seeds(data)
    assert result.format == kind.split("_")[0] and len(result.seeds) == 10
    assert result.seeds[0].source == "upload"


def test_format_argument_beats_the_extension(tmp_path):
    path = tmp_path / "seeds.txt"
    path.write_bytes(jsonl_bytes(sample_rows(5)))
    assert load_seeds(path, format="jsonl").format == "jsonl"
    with pytest.raises(InputError, match=r"seeds.txt: unknown format 'xml'; use one of jsonl, json, csv, parquet"):
        load_seeds(path, format="xml")


def test_json_object_of_arrays_numbers_records_across_the_arrays():
    rows = sample_rows(4)
    rows[3] = dict(rows[3], correct_answer="")
    data = json.dumps({"train": rows[:2], "test": rows[2:], "version": 3}).encode()
    result = load_seeds(data, filename="splits.json")
    assert result.bad_rows == [BadRow(4, "empty answer")]
    assert [s.metadata for s in result.seeds] == [{"split": "train"}, {"split": "train"}, {"split": "test"}]


def test_json_lines_saved_as_json_and_an_array_saved_as_jsonl_still_load():
    rows = sample_rows(3)
    assert load_seeds(jsonl_bytes(rows), filename="lines.json").format == "jsonl"
    assert load_seeds(json.dumps(rows, indent=1).encode(), filename="array.jsonl").format == "json"


def test_csv_lines_count_the_header_as_line_1_and_a_record_starts_where_it_starts():
    data = csv_bytes(
        ["question", "answer"],
        [["first?", "yes"], ["multi\nline\nquestion?", ""], ["", "orphan answer"], ["last?", "no"]],
    )
    result = load_seeds(data, filename="q.csv")
    assert result.bad_rows == [BadRow(3, "empty answer"), BadRow(6, "missing question")]
    assert [s.question for s in result.seeds] == ["first?", "last?"]


def test_tsv_and_semicolon_csv_are_read_by_their_delimiter():
    tsv = b"question\tanswer\nWhat is 2+2?\t4\n"
    semi = b"question;answer\nWhat is 2+2?;4\n"
    assert load_seeds(tsv, filename="q.tsv").seeds[0].answer == "4"
    assert load_seeds(semi, filename="q.csv").seeds[0].answer == "4"


def test_gzipped_jsonl_loads_by_its_inner_extension(tmp_path):
    import gzip

    path = tmp_path / "seeds.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl_bytes(sample_rows(7))))
    result = load_seeds(path)
    assert (result.format, len(result.seeds)) == ("jsonl", 7)


def test_an_upload_object_with_a_name_is_read_like_bytes():
    import io

    upload = io.BytesIO(jsonl_bytes(sample_rows(3)))
    upload.name = "browser.jsonl"
    result = load_seeds(upload)
    assert len(result.seeds) == 3 and result.seeds[0].source == "browser.jsonl"


# -- column mapping ------------------------------------------------------------------------


def test_guess_mapping_finds_common_names_case_insensitively():
    assert guess_mapping(["Prompt", "Solution", "Choices", "Category", "Level", "Source", "id"]) == {
        "question": "Prompt", "answer": "Solution", "options": "Choices", "subject": "Category",
        "difficulty": "Level", "source": "Source",
    }
    assert guess_mapping(["question", "answer_a", "answer_b", "answer_c", "answer_d", "correct_answer", "topic"]) == {
        "question": "question", "answer": "correct_answer", "subject": "topic",
        "options": ["answer_a", "answer_b", "answer_c", "answer_d"],
    }
    assert guess_mapping(["Question", "A", "B", "C", "Answer", "Discipline"])["options"] == ["A", "B", "C"]
    assert guess_mapping(["input", "output", "option_a", "option_b"]) == {
        "question": "input", "answer": "output", "options": ["option_a", "option_b"],
    }
    assert guess_mapping(["text", "label"]) == {"answer": "label"}


def test_mapping_overrides_guesses_and_can_unmap_a_field():
    data = jsonl_bytes([
        {"stem": "What is 2+2?", "key": "b", "o1": "3", "o2": "4", "answer": "ignored", "topic": "arithmetic"},
    ])
    result = load_seeds(data, filename="odd.jsonl", mapping={"question": "stem", "answer": "key", "options": "o1,o2", "subject": None})
    seed = result.seeds[0]
    assert result.mapping == {"question": "stem", "answer": "key", "options": ["o1", "o2"]}
    assert (seed.question, seed.answer, seed.answer_letter, seed.options) == ("What is 2+2?", "4", "B", ("3", "4"))
    assert seed.subject is None and seed.discipline == "Other"
    assert seed.metadata == {"answer": "ignored", "topic": "arithmetic"}


def test_mapping_to_a_column_that_is_not_there_names_the_columns():
    data = csv_bytes(["q", "a"], [["x?", "y"]])
    with pytest.raises(InputError) as err:
        load_seeds(data, filename="m.csv", mapping={"question": "qq"})
    assert str(err.value) == "m.csv: mapped column 'qq' for question not found among columns [q, a]"
    with pytest.raises(InputError, match="unknown field 'colour'"):
        load_seeds(data, filename="m.csv", mapping={"colour": "q"})


def test_peek_shows_columns_and_first_rows_for_every_format(tmp_path):
    for kind in FORMAT_KINDS:
        path = write_as(tmp_path, sample_rows(8), kind)
        columns, rows = peek(path, n=3)
        assert len(rows) == 3 and "question" in columns
        assert rows[0]["question"] == sample_rows(1)[0]["question"]
    name, data = as_format(sample_rows(8), "csv_letters")
    columns, rows = peek(data, filename=name)
    assert columns == ["question", "A", "B", "C", "D", "answer", "subject"] and len(rows) == 5


# -- multiple choice -----------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["B", "b", "(B)", "B.", "[b]", " B "])
def test_answer_letter_forms_resolve_to_the_option_text(answer):
    data = jsonl_bytes([{"question": "Pick two", "options": ["one", "two", "three"], "answer": answer}])
    seed = load_seeds(data, filename="x.jsonl").seeds[0]
    assert (seed.answer, seed.answer_letter) == ("two", "B")


def test_options_may_be_a_list_a_json_string_or_a_letter_object():
    rows = [
        {"question": "q1", "choices": ["x", "y"], "answer": "y"},
        {"question": "q2", "choices": '["x", "y"]', "answer": "A"},
        {"question": "q3", "choices": {"B": "y", "A": "x"}, "answer": "B"},
        {"question": "q4", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answer": "A"},
    ]
    result = load_seeds(jsonl_bytes(rows), filename="o.jsonl")
    assert [(s.options, s.answer, s.answer_letter) for s in result.seeds] == [
        (("x", "y"), "y", "B"), (("x", "y"), "x", "A"), (("x", "y"), "y", "B"), (("x", "y"), "x", "A"),
    ]


def test_answer_equal_to_an_option_text_gets_its_letter_and_whitespace_does_not_matter():
    data = jsonl_bytes([{"question": "Capital of France?", "options": ["Rome", "Paris  city"], "answer": " Paris city"}])
    seed = load_seeds(data, filename="x.jsonl").seeds[0]
    assert (seed.answer, seed.answer_letter) == ("Paris  city", "B")


def test_letter_beyond_the_options_is_a_bad_row_and_the_rest_load():
    rows = sample_rows(3)
    rows[1] = dict(rows[1], correct_answer="E")
    result = load_seeds(jsonl_bytes(rows), filename="x.jsonl")
    assert result.bad_rows == [BadRow(2, "answer letter 'E' is outside the 4 options")]
    assert len(result.seeds) == 2


def test_number_answers_become_text_and_an_integer_with_choices_is_an_index():
    rows = [
        {"question": "How many legs has a spider?", "answer": 8},
        {"question": "Half of 5?", "answer": 2.5},
        {"question": "Largest?", "choices": ["1", "7", "3"], "answer": 1},  # Hugging Face MMLU style
        {"question": "Which is 7?", "choices": ["1", "7", "3"], "answer": "7"},
        {"question": "Which is 3?", "choices": ["1", "7", "3"], "answer": 3},  # no 4th option: the text
    ]
    result = load_seeds(jsonl_bytes(rows), filename="n.jsonl")
    assert [(s.answer, s.answer_letter) for s in result.seeds] == [
        ("8", None), ("2.5", None), ("7", "B"), ("7", "B"), ("3", "C"),
    ]


def test_options_without_a_letter_column_drop_trailing_blanks():
    data = csv_bytes(["question", "A", "B", "C", "D", "answer"], [["Yes or no?", "yes", "no", "", "", "A"]])
    seed = load_seeds(data, filename="x.csv").seeds[0]
    assert seed.options == ("yes", "no") and seed.answer == "yes"


# -- disciplines, difficulty, metadata, source, ids ----------------------------------------


def test_discipline_column_wins_over_subject_and_the_map_overrides_the_table():
    rows = [
        {"question": "q1", "answer": "a", "subject": "college physics", "discipline": "chemistry"},
        {"question": "q2", "answer": "a", "subject": "college physics"},
        {"question": "q3", "answer": "a", "subject": "astrobiology"},
        {"question": "q4", "answer": "a", "subject": "Basket weaving"},
    ]
    result = load_seeds(jsonl_bytes(rows), filename="d.jsonl", discipline_map={"basket weaving": "Engineering"})
    assert [s.discipline for s in result.seeds] == ["Chemistry", "Physics", "Biology", "Engineering"]
    assert [s.subject for s in result.seeds] == ["college physics", "college physics", "astrobiology", "Basket weaving"]


def test_difficulty_accepts_1_to_5_numbers_strings_and_words_and_reports_the_rest():
    values = [3, "4", 2.5, "easy", "Medium", "HARD", "Level 5", "", None, 7, "0", "very", True]
    rows = [{"question": f"q{i}", "answer": "a", "difficulty": v} for i, v in enumerate(values)]
    result = load_seeds(jsonl_bytes(rows), filename="d.jsonl")
    assert [s.difficulty for s in result.seeds] == [3.0, 4.0, 2.5, 2.0, 3.0, 4.0, 5.0, None, None]
    assert result.bad_rows == [
        BadRow(10, "bad difficulty '7': expected 1-5"),
        BadRow(11, "bad difficulty '0': expected 1-5"),
        BadRow(12, "bad difficulty 'very': expected 1-5"),
        BadRow(13, "bad difficulty 'True': expected 1-5"),
    ]


def test_other_columns_go_to_metadata_and_blank_ones_are_left_out():
    rows = [{"question": "q", "answer": "a", "id": 17, "tags": ["x", "y"], "note": "", "extra": None, "meta": {"k": 1}, "z": 0}]
    seed = load_seeds(jsonl_bytes(rows), filename="m.jsonl").seeds[0]
    assert seed.metadata == {"id": 17, "tags": ["x", "y"], "meta": {"k": 1}, "z": 0}
    assert list(seed.metadata) == ["id", "tags", "meta", "z"]  # file order, so exports are stable


def test_parquet_metadata_is_made_json_safe():
    import datetime

    data = parquet_bytes({
        "question": ["q"], "answer": ["a"], "when": [datetime.date(2024, 5, 1)], "score": [float("nan")], "blob": [b"\x00"],
    })
    seed = load_seeds(data, filename="m.parquet").seeds[0]
    assert seed.metadata == {"when": "2024-05-01", "score": None}
    json.dumps(seed.metadata, allow_nan=False)


def test_source_column_then_source_name_then_file_name():
    rows = [{"question": "q1", "answer": "a", "source": "textbook"}, {"question": "q2", "answer": "a"}]
    data = jsonl_bytes(rows)
    assert [s.source for s in load_seeds(data, filename="f.jsonl").seeds] == ["textbook", "f.jsonl"]
    assert [s.source for s in load_seeds(data, filename="f.jsonl", source_name="batch-7").seeds] == ["textbook", "batch-7"]


def test_seed_id_is_16_hex_of_normalised_question_options_and_answer():
    a = seed_id("What is  2+2?\n", ["3", " 4"], "4")
    assert a == seed_id("What is 2+2?", ("3", "4"), "4")
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != seed_id("What is 2+2?", ("3", "4"), "3") != seed_id("What is 2+2?", None, "4")
    row = {"question": "What is  2+2?", "options": ["3", "4"], "answer": "B"}
    assert load_seeds(jsonl_bytes([row]), filename="x.jsonl").seeds[0].id == a


def test_the_same_item_in_another_format_is_a_duplicate_in_the_store(store, tmp_path):
    rows = sample_rows(30)
    assert ingest(store, write_as(tmp_path, rows, "jsonl")).added == 30
    report = ingest(store, write_as(tmp_path, rows, "csv_letters"))
    assert (report.added, report.duplicates, report.total_seeds) == (0, 30, 30)


# -- ingest: progress and all-or-nothing ---------------------------------------------------


def test_progress_is_called_once_a_batch_before_the_index_and_at_the_end(store, tmp_path, monkeypatch):
    monkeypatch.setattr(seeds_module, "BATCH", 250)
    calls = []
    ingest(store, sample_path(), progress=lambda done, total, msg: calls.append((done, total, msg)))
    assert [c[0] for c in calls] == [250, 500, 750, 1000, 1140, 1140, 1140]
    assert all(total == 1140 for _, total, _ in calls)
    # the last rows read, then the index and commit (seconds at a million rows) are named before the end
    assert calls[-2][2] == "1,140 seeds read from mmlu_sample.jsonl; indexing and saving them"
    assert calls[-1][2] == "1,139 seeds added from mmlu_sample.jsonl"


def test_an_error_after_the_first_batch_rolls_the_whole_file_back(seeded_store, tmp_path, monkeypatch):
    before = seeded_store.seeds.count()
    monkeypatch.setattr(seeds_module, "BATCH", 10)
    real_add = SeedStore.add_rows
    calls = fail_add_rows_on_call(monkeypatch, 2)
    rows = [{"question": f"new question {i}?", "answer": "yes"} for i in range(50)]
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest(seeded_store, jsonl_bytes(rows), filename="new.jsonl")
    assert calls == [10, 10]
    assert seeded_store.seeds.count() == before
    monkeypatch.setattr(SeedStore, "add_rows", real_add)
    assert ingest(seeded_store, jsonl_bytes(rows), filename="new.jsonl").added == 50


def test_ingest_inside_an_outer_transaction_joins_it(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            assert ingest(store, sample_path()).added == 1139
            raise RuntimeError("caller changes its mind")
    assert store.seeds.count() == 0


def test_ingest_streams_the_file_into_the_store_in_batches(store, monkeypatch):
    monkeypatch.setattr(seeds_module, "BATCH", 100)
    sizes = []
    real_add = SeedStore.add_rows
    monkeypatch.setattr(SeedStore, "add_rows", lambda self, rows: sizes.append(len(rows)) or real_add(self, rows))
    ingest(store, sample_path())
    assert sizes == [100] * 11 + [40]

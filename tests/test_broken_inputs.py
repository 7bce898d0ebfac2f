"""Broken inputs: every bad row is reported with its line and reason, every bad file with one
clear message, and a bad file changes nothing in the database.

The broken files are made here, in tmp_path, so the corpus is the test itself.
"""

from __future__ import annotations

import json
import random

import pytest

from ingest_fixtures import csv_bytes, jsonl_bytes, parquet_bytes, sample_rows, seeded_store  # noqa: F401
from linkqa_core.errors import InputError
from linkqa_core.records import BadRow
from linkqa_core.ingest.load import ingest, load_seeds

PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def png_bytes() -> bytes:
    return PNG_HEADER + random.Random(7).randbytes(2000)


# -- bad rows: reported, and the rest load -------------------------------------------------


def test_truncated_jsonl_reports_the_cut_line_and_loads_the_rest(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_bytes(jsonl_bytes(sample_rows(5)) + b'{"question": "What is 2+2?", "answ')
    result = load_seeds(path)
    assert result.bad_rows == [BadRow(6, "bad JSON: Unterminated string starting at column 30")]
    assert (len(result.seeds), result.rows_read) == (5, 6)


def test_a_latin1_line_inside_utf8_jsonl_is_one_bad_row(tmp_path):
    lines = jsonl_bytes([{"question": "Crème brûlée?", "answer": "dessert"}]) + \
        '{"question": "Café au lait?", "answer": "oui"}\n'.encode("latin-1") + \
        jsonl_bytes([{"question": "Naïve?", "answer": "yes"}])
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(lines)
    result = load_seeds(path)
    assert result.bad_rows == [BadRow(2, "not UTF-8 text (byte 0xe9 at column 18)")]
    assert [s.question for s in result.seeds] == ["Crème brûlée?", "Naïve?"]


def test_a_windows_1252_csv_loads_with_its_accents_and_curly_quotes(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(csv_bytes(["Question", "Answer"], [["Who wrote “Les Misérables”?", "Hugo"]], encoding="cp1252"))
    result = load_seeds(path)
    assert result.encoding == "cp1252"
    assert result.seeds[0].question == "Who wrote “Les Misérables”?"


def test_a_utf16_csv_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "utf16.csv"
    path.write_bytes("question,answer\nÜber?,ja\n".encode("utf-16"))
    assert load_seeds(path).seeds[0].question == "Über?"


def test_utf16_in_both_byte_orders_loads_and_a_stray_bom_line_in_utf8_loses_no_row():
    for codec in ("utf-16-le", "utf-16-be"):
        bom = b"\xff\xfe" if codec.endswith("le") else b"\xfe\xff"
        data = bom + '{"question": "Über was?", "answer": "ja"}\n'.encode(codec)
        assert load_seeds(data, filename="u.jsonl").seeds[0].question == "Über was?"
    # a UTF-8 file whose first line happens to be the two bytes of a UTF-16 mark
    stray = b"\xfe\xff\n" + jsonl_bytes(sample_rows(2))
    result = load_seeds(stray, filename="s.jsonl")
    assert len(result.seeds) == 2
    assert [b.line for b in result.bad_rows] == [1]


def test_a_utf8_bom_is_not_part_of_the_first_column_or_line():
    bom = b"\xef\xbb\xbf"
    assert load_seeds(bom + b"question,answer\nq?,a\n", filename="b.csv").seeds[0].question == "q?"
    assert load_seeds(bom + jsonl_bytes(sample_rows(2)), filename="b.jsonl").bad_rows == []


def test_each_row_problem_has_its_own_exact_reason_and_line():
    rows: list = [
        {"question": "fine?", "answer": "yes"},                      # 1
        {"answer": "no question"},                                    # 2
        {"question": "   ", "answer": "blank question"},             # 3
        {"question": "no answer?"},                                   # 4
        {"question": "blank answer?", "answer": "  "},               # 5
        {"question": ["a", "list"], "answer": "x"},                  # 6
        {"question": 12, "answer": "x"},                              # 7
        {"question": "list answer?", "answer": ["x"]},               # 8
        [1, 2],                                                       # 9
        42,                                                           # 10
        None,                                                         # 11
        {"question": "pick", "options": ["a", "b"], "answer": "C"},  # 12
        {"question": "pick", "options": ["a", "b"], "answer": "z"},  # 13
        {"question": "hard?", "answer": "x", "difficulty": 9},       # 14
        {"question": "also fine?", "answer": 0},                      # 15
    ]
    result = load_seeds(jsonl_bytes(rows), filename="rows.jsonl")
    assert result.bad_rows == [
        BadRow(2, "missing question"),
        BadRow(3, "missing question"),
        BadRow(4, "empty answer"),
        BadRow(5, "empty answer"),
        BadRow(6, "wrong type: question is list, expected text"),
        BadRow(7, "wrong type: question is int, expected text"),
        BadRow(8, "wrong type: answer is list, expected text"),
        BadRow(9, "not an object"),
        BadRow(10, "not an object"),
        BadRow(11, "not an object"),
        BadRow(12, "answer letter 'C' is outside the 2 options"),
        BadRow(13, "answer 'z' matches none of the 2 options"),
        BadRow(14, "bad difficulty '9': expected 1-5"),
    ]
    assert [(s.question, s.answer) for s in result.seeds] == [("fine?", "yes"), ("also fine?", "0")]
    assert result.rows_read == 15


def test_blank_lines_in_jsonl_are_not_rows_but_still_count_for_line_numbers():
    data = b'\n{"question": "q1", "answer": "a"}\n\n   \n{"question": "q2"}\n'
    result = load_seeds(data, filename="gaps.jsonl")
    assert result.rows_read == 2 and result.bad_rows == [BadRow(5, "empty answer")]


def test_json_records_that_are_not_objects_are_numbered_bad_rows():
    data = json.dumps([{"question": "q", "answer": "a"}, "stray text", {"question": "q2", "answer": ""}]).encode()
    result = load_seeds(data, filename="arr.json")
    assert result.bad_rows == [BadRow(2, "not an object"), BadRow(3, "empty answer")]


def test_csv_rows_with_wrong_options_and_difficulty_are_reported_by_file_line():
    data = csv_bytes(
        ["question", "choices", "answer", "level"],
        [["ok?", '["x", "y"]', "x", "2"], ["bad list?", "x; y", "x", ""], ["bad level?", "", "x", "Level 9"]],
    )
    result = load_seeds(data, filename="c.csv")
    assert result.bad_rows == [
        BadRow(3, "wrong type: options is text, expected a list of options"),
        BadRow(4, "bad difficulty 'Level 9': expected 1-5"),
    ]
    assert result.seeds[0].difficulty == 2.0


def test_parquet_question_of_ints_is_a_wrong_type_in_every_record(tmp_path):
    path = tmp_path / "ints.parquet"
    path.write_bytes(parquet_bytes({"question": [1, 2, 3], "answer": ["a", "b", "c"]}))
    with pytest.raises(InputError) as err:
        load_seeds(path)
    assert str(err.value) == (
        "ints.parquet: none of the 3 rows could be used; first problem: record 1: wrong type: question is int, expected text"
    )


def test_parquet_answer_as_a_list_is_a_wrong_type_per_record():
    data = parquet_bytes({"question": ["q1", "q2"], "answer": [["a"], None], "notes": ["n", "m"]})
    with pytest.raises(InputError) as err:
        load_seeds(data, filename="lists.parquet")
    assert str(err.value) == (
        "lists.parquet: none of the 2 rows could be used; first problem: record 1: wrong type: answer is list, expected text"
    )


def test_parquet_wrong_types_next_to_good_records_leave_the_good_ones():
    data = parquet_bytes({"question": ["q1", "q2", "q3"], "answer": [1.5, None, 2.0], "difficulty": ["1", "6", None]})
    result = load_seeds(data, filename="mixed.parquet")
    assert result.bad_rows == [BadRow(2, "empty answer")]
    assert [s.answer for s in result.seeds] == ["1.5", "2.0"]
    data = parquet_bytes({"question": ["q1", "q2"], "answer": ["a", "b"], "difficulty": ["1", "6"]})
    assert load_seeds(data, filename="d.parquet").bad_rows == [BadRow(2, "bad difficulty '6': expected 1-5")]


# -- whole-file errors: one message, nothing changed -----------------------------------------


def _broken_files() -> dict[str, tuple[bytes, str]]:
    """name -> (content, the exact message, or its start when it ends with '...')."""
    return {
        "empty.jsonl": (b"", "empty.jsonl is empty"),
        "blank.csv": (b"\n \n\t\n", "blank.csv is empty"),
        "empty.parquet": (b"", "empty.parquet is empty"),
        "picture.jsonl": (png_bytes(), "picture.jsonl is not a text file (binary content at byte 8)"),
        # a NUL byte in a text file is a bad row (issue 9); here it is the only row
        "nul.csv": (b"question,answer\nq?,a\x00b\n",
                    "nul.csv: none of the 1 rows could be used; first problem: line 2: NUL byte at column 5"),
        "words.json": (b"this is not JSON\n", "words.json is not valid JSON: Expecting value at line 1 column 1"),
        "cut.json": (
            b'[{"question": "q", "answer": "a"},\n {"quest',
            "cut.json is not valid JSON: Unterminated string starting at line 2 column 3",
        ),
        "number.json": (
            b"42",
            "number.json: expected an array of objects or an object whose values are arrays of objects, found int",
        ),
        "fake.parquet": (b"question,answer\nq?,a\n", "fake.parquet is not valid Parquet: ..."),
        "noq.csv": (
            csv_bytes(["text", "label", "notes"], [["What?", "x", ""]]),
            "noq.csv: no question column found among columns [text, label, notes];"
            " map one with --map question=COLUMN",
        ),
        "noq.jsonl": (
            jsonl_bytes([{"text": "What?", "label": "x"}]),
            "noq.jsonl: no question column found among columns [text, label]; map one with --map question=COLUMN",
        ),
        "noanswer.csv": (
            csv_bytes(["question", "notes"], [["What?", ""]]),
            "noanswer.csv: no answer column found among columns [question, notes]; map one with --map answer=COLUMN",
        ),
        "allbad.jsonl": (
            jsonl_bytes([{"question": "", "answer": "a"}, {"question": "q", "answer": ""}, [1]]),
            "allbad.jsonl: none of the 3 rows could be used; first problem: line 1: missing question",
        ),
        "allbad.csv": (
            csv_bytes(["question", "answer"], [["q1", ""], ["q2", ""]]),
            "allbad.csv: none of the 2 rows could be used; first problem: line 2: empty answer",
        ),
        "header_only.csv": (b"question,answer\n", "header_only.csv has no rows"),
        "empty_array.json": (b"[]", "empty_array.json has no rows"),
    }


BROKEN = _broken_files()


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_file_gets_one_exact_message_and_leaves_the_database_as_it_was(name, tmp_path, seeded_store):
    content, message = BROKEN[name]
    path = tmp_path / name
    path.write_bytes(content)
    before = seeded_store.seeds.count()
    with pytest.raises(InputError) as err:
        ingest(seeded_store, path)
    if message.endswith("..."):
        assert str(err.value).startswith(message[:-3]) and len(str(err.value)) > len(message)
    else:
        assert str(err.value) == message
    assert seeded_store.seeds.count() == before
    # the same bytes uploaded from the browser get the same message
    with pytest.raises(InputError) as err_bytes:
        load_seeds(content, filename=name)
    assert str(err_bytes.value) == str(err.value)


def test_a_missing_path_says_so(tmp_path):
    with pytest.raises(InputError, match=r"nope\.jsonl: no such file"):
        load_seeds(tmp_path / "nope.jsonl")


def test_binary_bytes_without_a_name_are_reported_as_an_upload():
    with pytest.raises(InputError) as err:
        load_seeds(png_bytes())
    assert str(err.value) == "upload is not a text file (binary content at byte 8)"


def test_jsonl_lines_with_trailing_garbage_or_leading_spaces_are_judged_like_json_loads():
    data = b'{"question": "q1", "answer": "a"} trailing\n   {"question": "q2", "answer": "a"}\n{"question": "q3", "answer": "a",}\n'
    result = load_seeds(data, filename="odd.jsonl")
    with pytest.raises(json.JSONDecodeError) as err:  # its wording changed in Python 3.13
        json.loads(data.splitlines()[2])
    assert result.bad_rows == [
        BadRow(1, "bad JSON: Extra data at column 35"),
        BadRow(3, f"bad JSON: {err.value.msg} at column 34"),
    ]
    assert [s.question for s in result.seeds] == ["q2"]

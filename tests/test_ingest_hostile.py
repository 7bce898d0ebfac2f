"""Input that cannot hurt (issue 9): nesting, surrogates, NUL bytes and bytes that are not
UTF-8 are bad rows with their line and reason in every format, every error is one line
naming the file, and CSV and JSON stream instead of being read whole."""

from __future__ import annotations

import gzip
import json

import pytest

from ingest_fixtures import csv_bytes, jsonl_bytes, sample_rows  # noqa: F401
from linkqa_core.errors import InputError
from linkqa_core.ingest import sources
from linkqa_core.ingest.load import ingest, load_seeds
from linkqa_core.records import BadRow
from linkqa_core.store import Store

GOOD = b'{"question": "What is 2+2?", "answer": "4"}\n'
GOOD2 = b'{"question": "What is 3+3?", "answer": "6"}\n'
DEEP = b'{"question": ' + b"[" * 10000 + b"]" * 10000 + b', "answer": "x"}\n'
DEEP_REASON = "bad JSON: nested deeper than 200 levels"


def test_ten_thousand_levels_of_nesting_is_one_bad_row_in_jsonl(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_bytes(GOOD + DEEP + GOOD2)
    result = load_seeds(path)
    assert result.bad_rows == [BadRow(2, DEEP_REASON)]
    assert [s.question for s in result.seeds] == ["What is 2+2?", "What is 3+3?"]


def test_deep_nesting_in_metadata_is_a_bad_row_too():
    line = b'{"question": "q?", "answer": "a", "extra": ' + b"{\"k\": " * 5000 + b"1" + b"}" * 5000 + b"}\n"
    assert load_seeds(GOOD + line, filename="m.jsonl").bad_rows == [BadRow(2, DEEP_REASON)]


@pytest.mark.parametrize("parallel", [False, True])
def test_deep_nesting_and_a_surrogate_are_bad_rows_when_ingested_in_and_out_of_process(tmp_path, parallel):
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(GOOD + DEEP + b'{"question": "\\ud800", "answer": "x"}\n' + GOOD2)
    report = ingest(Store(tmp_path / "h.db"), path, parallel=parallel)
    assert report.bad_rows == [BadRow(2, DEEP_REASON),
                               BadRow(3, "lone surrogate \\ud800 in the text (half of a UTF-16 pair)")]
    assert report.added == 2


def test_a_lone_surrogate_is_a_bad_row_but_a_surrogate_pair_is_a_character():
    data = (b'{"question": "smile \\ud83d\\ude00?", "answer": "yes"}\n'
            b'{"question": "half \\udc00", "answer": "no"}\n'
            b'{"question": "ok?", "answer": "x", "note": "\\uD800 in metadata"}\n')
    result = load_seeds(data, filename="s.jsonl")
    assert [s.question for s in result.seeds] == ["smile \U0001f600?"]
    assert result.bad_rows == [BadRow(2, "lone surrogate \\udc00 in the text (half of a UTF-16 pair)"),
                               BadRow(3, "lone surrogate \\ud800 in the text (half of a UTF-16 pair)")]


def test_a_nul_byte_on_the_first_line_is_a_bad_row_not_a_refused_file():
    data = b'{"question": "a\x00b", "answer": "x"}\n' + GOOD
    result = load_seeds(data, filename="nul.jsonl")
    assert result.bad_rows == [BadRow(1, "NUL byte at column 16")]
    assert len(result.seeds) == 1


def test_an_escaped_nul_character_is_a_bad_row():
    result = load_seeds(GOOD + b'{"question": "a\\u0000b", "answer": "x"}\n', filename="nul.jsonl")
    assert result.bad_rows == [BadRow(2, "NUL character (\\u0000) in the text")]


def test_nul_bytes_in_csv_are_bad_rows_early_and_late(tmp_path):
    body = b"".join(b"q%d?,a\n" % i for i in range(3000))
    data = b"question,answer\nfirst?,a\x00b\n" + body + b"late?,x\x00\n"
    result = load_seeds(data, filename="nul.csv")
    assert result.bad_rows == [BadRow(2, "NUL byte at column 9"), BadRow(3003, "NUL byte at column 8")]
    assert len(result.seeds) == 3000 and all("\x00" not in s.answer for s in result.seeds)


def test_a_line_that_is_not_utf8_in_a_utf8_csv_is_a_bad_row_and_the_rest_keep_their_accents():
    data = "question,answer\nCafé?,oui\nNaïve?,yes\n".encode() + b"Cr\xe8me?,non\n" + "Über?,ja\n".encode()
    result = load_seeds(data, filename="mixed.csv")
    assert result.encoding == "utf-8"
    assert result.bad_rows == [BadRow(4, "not UTF-8 text (byte 0xe8 at column 3)")]
    assert [s.question for s in result.seeds] == ["Café?", "Naïve?", "Über?"]


def test_a_damaged_line_inside_a_quoted_multiline_csv_record_fails_that_record_only():
    data = b'question,answer\n"two\nli\x00nes?",a\nnext?,b\n'
    result = load_seeds(data, filename="q.csv")
    assert result.bad_rows == [BadRow(2, "line 3: NUL byte at column 3")]
    assert [s.question for s in result.seeds] == ["next?"]


def test_a_csv_with_lone_cr_line_ends_loads():
    result = load_seeds(b"question,answer\rq1?,a\rq2?,b\r", filename="mac.csv")
    assert [s.question for s in result.seeds] == ["q1?", "q2?"]


def test_json_array_records_with_nesting_surrogates_and_bad_bytes_are_numbered_bad_rows():
    data = ('[{"question": "Crème?", "answer": "a"},\n {"question": '.encode() + b"[" * 10000 + b"]" * 10000 +
            b'},\n {"question": "\\ud800", "answer": "a"},\n {"question": "caf\xe9?", "answer": "a"},\n'
            + "{\"question\": \"Naïve?\", \"answer\": \"a\"}]".encode())
    result = load_seeds(data, filename="arr.json")
    assert result.bad_rows == [
        BadRow(2, DEEP_REASON),
        BadRow(3, "lone surrogate \\ud800 in the text (half of a UTF-16 pair)"),
        BadRow(4, "not UTF-8 text (byte 0xe9)"),
    ]
    assert [s.question for s in result.seeds] == ["Crème?", "Naïve?"]


def test_a_json_syntax_error_far_into_a_big_file_has_json_loads_words_and_position():
    rows = [{"question": f"question {i}?", "answer": "x" * 50} for i in range(40000)]
    text = json.dumps(rows, indent=1)
    at = text.rfind("},", 0, len(text) - 5000) + 2
    cut = text[:at] + "?" + text[at:]  # a stray character, 4 MB in
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(cut)
    with pytest.raises(InputError) as err:
        load_seeds(cut.encode(), filename="big.json")
    e = expected.value
    assert str(err.value) == f"big.json is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"


def test_a_windows_1252_json_file_loads_as_a_whole():
    data = json.dumps([{"question": "Café?", "answer": "oui"}], ensure_ascii=False).encode("cp1252")
    result = load_seeds(data, filename="w.json")
    assert result.encoding == "cp1252" and result.seeds[0].question == "Café?"


def test_csv_and_json_stream_and_are_never_read_whole(monkeypatch, tmp_path):
    def refuse(self):
        raise AssertionError("read whole")

    monkeypatch.setattr(sources.Source, "read_all", refuse)
    rows = sample_rows(30)
    (tmp_path / "s.json").write_text(json.dumps(rows))
    (tmp_path / "s.csv.gz").write_bytes(gzip.compress(csv_bytes(["question", "answer"], [[r["question"], "x"] for r in rows])))
    assert len(load_seeds(tmp_path / "s.json").seeds) == 30
    assert len(load_seeds(tmp_path / "s.csv.gz").seeds) == 30


HOSTILE = {
    "deep.jsonl": DEEP * 3,
    "surrogates.jsonl": b'{"question": "\\ud800", "answer": "x"}\n' * 2,
    "nul.jsonl": b'{"question": "\x00", "answer": "x"}\n' * 2,
    "latin.jsonl": b'{"question": "caf\xe9", "answer": "x"}\n',
    "deep.json": b"[" * 50000 + b"]" * 50000,
    "deeprec.json": b'[{"q": ' + b"[" * 50000 + b"]" * 50000 + b"}]",
    "cut.json": b'[{"question": "q", "answer": "a"}, {"quest',
    "garbage.json": b'[{"question": "q", "answer": "a"} {"x": 1}]',
    "object.json": b'{"train": [{"question": "q"}], "test": 5, ',
    "nul.csv": b"question,answer\n\x00,\x00\n",
    "bad_header.csv": b"ques\x00tion,answer\nq,a\n",
    "quote.csv": b'question,answer\n"never closed,a\n',
    "utf16.csv": b"\xff\xfeq\x00,\x00\n\x00\xd8",
    "tiny.parquet": b"PAR1PAR1",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_every_hostile_file_ends_in_one_line_naming_the_file_never_a_traceback(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(HOSTILE[name])
    store = Store(tmp_path / "s.db")
    try:
        report = ingest(store, path)
    except InputError as err:
        message = str(err)
        assert "\n" not in message and message.startswith(name), message
        assert store.seeds.count() == 0
    else:
        assert all("\n" not in b.reason for b in report.bad_rows)


def test_a_five_thousand_digit_answer_next_to_options_is_a_bad_row():
    rows = [{"question": "Which?", "options": ["1", "2"], "answer": "9" * 5000},
            {"question": "Which?", "options": ["1", "2"], "answer": "2"}]
    result = load_seeds(jsonl_bytes(rows), filename="digits.jsonl")
    assert result.bad_rows == [BadRow(1, "answer '" + "9" * 39 + "…' matches none of the 2 options")]
    assert [s.answer_letter for s in result.seeds] == ["B"]


@pytest.mark.parametrize("name", ["mixed.jsonl", None])
def test_a_stray_bracket_line_before_json_lines_is_one_bad_row_not_a_refused_file(name):
    # found by Hypothesis (test_good_json_lines_next_to_garbage_lines_are_never_lost): a first
    # line "[" made the whole file a JSON array, refused as invalid, and its good rows were lost
    from linkqa_core.ingest.load import load_seeds

    data = b'[\n{"question": "What is 2+2?", "answer": "4"}\n{"question": "Capital of France?", "answer": "Paris"}\n'
    out = load_seeds(data, filename=name)
    assert [s.question for s in out.seeds] == ["What is 2+2?", "Capital of France?"]
    assert [b.line for b in out.bad_rows] == [1]


@pytest.mark.parametrize("data", [
    b'[\n  {"question": "What is 2+2?", "answer": "4"},\n  {"question": "Capital of France?", "answer": "Paris"}\n]\n',
    b'[{"question": "What is 2+2?", "answer": "4"}, {"question": "Capital of France?", "answer": "Paris"}]\n',
])
def test_a_json_array_saved_as_jsonl_is_still_read_as_an_array(data):
    from linkqa_core.ingest.load import load_seeds

    out = load_seeds(data, filename="array.jsonl")
    assert [s.question for s in out.seeds] == ["What is 2+2?", "Capital of France?"] and out.bad_rows == []

"""Property-based tests of the file readers and the row builder (issue 14): whatever the
bytes, nesting, surrogates or field sizes, loading ends in a result or an InputError
(never another exception), and a good row next to garbage is never lost."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkqa_core.errors import InputError
from linkqa_core.ingest.columnar import Columnar
from linkqa_core.ingest.load import _Load, load_seeds
from linkqa_core.ingest.mapping import resolve_plan
from linkqa_core.ingest.read_jsonl import jsonl_records
from linkqa_core.ingest.rows import make_builder
from linkqa_core.ingest.sources import binary_offset
from linkqa_core.ingest.text import MAX_DEPTH

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["x.jsonl", "x.json", "x.csv", "x.tsv", "x.parquet", "x.jsonl.gz", None]

# text a good row may hold: no NUL, no lone surrogate (each is a bad row by design), something
# left after strip()
good_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                    max_size=40).filter(lambda t: t.strip())
ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters='",;|\t'),
                     min_size=1, max_size=30).filter(lambda t: t.strip())
garbage = st.binary(max_size=120).filter(lambda b: b"\n" not in b)


def _refused_whole(data: bytes) -> bool:
    """A file judged not text as a whole: binary content, or gzip's magic number first."""
    return binary_offset(data[:65536]) is not None or data.startswith(b"\x1f\x8b")


def _load(data: bytes, name: str | None):
    try:
        return load_seeds(data, filename=name)
    except InputError as err:
        assert "\n" not in str(err)
        return err


@SETTINGS
@given(st.binary(max_size=3000), st.sampled_from(NAMES))
def test_arbitrary_bytes_give_a_result_or_an_input_error(data, name):
    _load(data, name)


@SETTINGS
@given(st.lists(st.one_of(st.tuples(good_text, good_text), garbage), min_size=1, max_size=25))
def test_good_json_lines_next_to_garbage_lines_are_never_lost(items):
    lines, good, junk = [], [], set()
    for i, item in enumerate(items, 1):
        if isinstance(item, tuple):
            lines.append(json.dumps({"question": item[0], "answer": item[1]}).encode())
            good.append(item[0].strip())
        else:
            lines.append(item)
            junk.add(i)
    data = b"\n".join(lines) + b"\n"
    out = _load(data, "mixed.jsonl")
    if isinstance(out, InputError):  # only a file that looks binary, or one without a good row
        assert _refused_whole(data) or not good, str(out)
        return
    questions = [s.question for s in out.seeds]
    for q in good:
        assert q in questions
    assert {b.line for b in out.bad_rows} <= junk


@SETTINGS
@given(st.lists(st.one_of(st.tuples(ascii_text, ascii_text), garbage.filter(lambda b: b'"' not in b and b"\r" not in b)),
                min_size=1, max_size=25))
def test_good_csv_rows_next_to_garbage_lines_are_never_lost(items):
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["question", "answer"])
    body, good = [], []
    for item in items:
        if isinstance(item, tuple):
            row = io.StringIO(newline="")
            csv.writer(row, lineterminator="\n").writerow(item)
            body.append(row.getvalue().encode())
            good.append(item[0].strip())
        else:
            body.append(item + b"\n")
    data = buf.getvalue().encode() + b"".join(body)
    out = _load(data, "mixed.csv")
    if isinstance(out, InputError):
        assert _refused_whole(data) or not good, str(out)
        return
    questions = [s.question for s in out.seeds]
    for q in good:
        assert q in questions


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 20000), st.sampled_from(["[", "{\"k\": "]), st.sampled_from(["question", "extra"]),
       st.sampled_from(["x.jsonl", "x.json"]))
def test_any_nesting_depth_is_a_row_or_a_bad_row(depth, opener, where, name):
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    row = f'{{"question": "q?", "answer": "a", "{where}": {nested}}}'
    data = (row if name.endswith("jsonl") else f"[{row}]").encode()
    out = _load(data, name)
    if depth + 1 > MAX_DEPTH:  # the row itself is one level
        assert isinstance(out, InputError) or out.bad_rows[0].reason == f"bad JSON: nested deeper than {MAX_DEPTH} levels"
    elif where == "extra":
        assert not isinstance(out, InputError) and len(out.seeds) == 1


@SETTINGS
@given(st.lists(st.integers(0xD800, 0xDFFF), min_size=1, max_size=3), st.sampled_from(["x.jsonl", "x.json"]))
def test_surrogate_escapes_are_characters_in_pairs_and_bad_rows_alone(codes, name):
    escaped = "".join(f"\\u{c:04x}" for c in codes)
    row = f'{{"question": "q{escaped}?", "answer": "a"}}'
    data = (row if name.endswith("jsonl") else f"[{row}]").encode()
    text = json.loads(row)["question"]
    try:
        text.encode("utf-8")
        whole = True
    except UnicodeEncodeError:
        whole = False
    out = _load(data, name)
    if whole:
        assert out.seeds[0].question == text
    else:
        assert isinstance(out, InputError) and "lone surrogate" in str(out)


@settings(max_examples=4, deadline=None)
@given(st.integers(1, 3), st.sampled_from(["x.jsonl", "x.json", "x.csv"]))
def test_megabyte_fields_load_in_every_format(megabytes, name):
    question = ("why " * (megabytes * 262144)) + "?"
    if name.endswith("csv"):
        data = f"question,answer\n{question},yes\n".encode()
    else:
        row = json.dumps({"question": question, "answer": "yes"})
        data = (row if name.endswith("jsonl") else f"[{row}]").encode()
    assert load_seeds(data, filename=name).seeds[0].question == question.strip()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.sampled_from(["9" * 5000, "B", "(c)", "  ", "1e999", "Level 3", 10 ** 4000]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
COLUMNS = ["question", "answer", "options", "answer_a", "answer_b", "correct_answer", "topic", "discipline",
           "difficulty", "source", "cop", "opa", "opb"]


@SETTINGS
@given(st.dictionaries(st.sampled_from(COLUMNS) | st.text(max_size=6), json_values, max_size=8),
       st.sampled_from([["question", "answer", "options", "topic", "difficulty"],
                        ["question", "answer_a", "answer_b", "correct_answer", "answer", "discipline"],
                        ["question", "opa", "opb", "cop", "source"]]))
def test_the_row_builder_returns_fields_or_a_reason_for_any_row(rec, columns):
    plan = resolve_plan(columns, None, "x.jsonl", [rec])
    out = make_builder(plan, "x.jsonl", None, sanitize=False)(rec)
    assert isinstance(out, (tuple, str))


mmlu_rows = st.fixed_dictionaries(
    {"question": st.one_of(good_text, st.just(""), st.just("  a  b\t c "), st.none()),
     "answer_a": st.one_of(good_text, st.just("")), "answer_b": good_text, "answer_c": good_text,
     "answer_d": st.one_of(good_text, st.just('say "hi" \\ now')),
     "correct_answer": st.sampled_from(["A", "B", "c", "(D)", "E", "x", "", " B "]),
     "topic": st.one_of(st.sampled_from(["marketing", "law", " Philosophy ", ""]), good_text),
     "difficulty": st.one_of(st.none(), st.integers(-2, 8), st.floats(0, 6), st.just("hard"))})


@SETTINGS
@given(st.lists(st.one_of(mmlu_rows.map(json.dumps), mmlu_rows.map(lambda r: json.dumps(r, ensure_ascii=False)),
                          garbage.map(lambda b: b.decode("latin-1"))), min_size=1, max_size=40))
def test_a_block_built_column_wise_equals_the_row_path(lines):
    head = json.dumps({"question": "q", "answer_a": "a", "answer_b": "b", "answer_c": "c", "answer_d": "d",
                       "correct_answer": "A", "topic": "t", "difficulty": 1})
    block = ("\n".join([head, *lines]) + "\n").encode("utf-8", "surrogatepass")
    try:
        load = _Load(block, filename="b.jsonl", format="jsonl", mapping=None, discipline_map=None, source_name=None)
    except InputError:
        return
    columnar = Columnar.for_load(load, 1.0)
    assert columnar is not None
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    rows, bad, read = columnar.rows(block, ends, 0)
    expected = list(load.rows(1.0, jsonl_records(line + b"\n" for line in block.split(b"\n")[:-1])))
    assert rows == expected
    assert bad == load.bad_rows and read == load.rows_read

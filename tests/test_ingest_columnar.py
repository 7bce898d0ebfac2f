"""The columnar (Arrow) path stores exactly what the row-by-row path stores, with the same
bad-row reports, on broken files and on generated ones (issue 13); and the bulk load into
an empty table (index built once) keeps the first of each repeated item."""

from __future__ import annotations

import json
import random

import pytest

import linkqa_core.ingest.load as load_module
from ingest_fixtures import sample_rows
from linkqa_core.ingest import columnar as columnar_module
from linkqa_core.ingest.columnar import Columnar
from linkqa_core.ingest.load import ingest
from linkqa_core.store import Store

COLUMNS = ("id, question, answer, options, answer_letter, discipline, subject, difficulty,"
           " difficulty_estimated, source, metadata")


def stored(store: Store) -> list[tuple]:
    return [tuple(r) for r in store.query(f"SELECT {COLUMNS} FROM seeds ORDER BY rid")]


@pytest.fixture
def spy(monkeypatch):
    """Counts of lines the columnar path built itself and handed to the row path."""
    counts = {"blocks": 0, "row_path": 0}
    real_segments, real_row_path = Columnar.segments, Columnar._row_path

    def segments(self, block, ends, before):
        counts["blocks"] += 1
        return real_segments(self, block, ends, before)

    def row_path(self, lines, before, i):
        counts["row_path"] += 1
        return real_row_path(self, lines, before, i)

    monkeypatch.setattr(Columnar, "segments", segments)
    monkeypatch.setattr(Columnar, "_row_path", row_path)
    return counts


def both_paths(tmp_path, data: bytes, monkeypatch, name="f.jsonl", **kw):
    """(rows, report) of a columnar ingest and of a row-path-only ingest of the same bytes."""
    path = tmp_path / name
    path.write_bytes(data)
    fast_store = Store(tmp_path / "fast.db")
    fast = ingest(fast_store, path, parallel=False, **kw)
    with monkeypatch.context() as m:
        m.setattr(Columnar, "for_load", classmethod(lambda cls, load, added_at, threads=True: None))
        slow_store = Store(tmp_path / "slow.db")
        slow = ingest(slow_store, path, parallel=False, **kw)
    return (stored(fast_store), fast), (stored(slow_store), slow)


def mmlu_line(rng: random.Random, i: int) -> dict:
    words = ["alpha", "beta", "gamma", "delta", "Ünïcode", "naïve café", "x" * 30, "tab\there", "quote\"d",
             "back\\slash", "new\nline", "  spaced  ", "\u3000ideographic", "\x1cfile sep", "emoji 😀"]
    q = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) + f" item {i}?"
    opts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 3))) for _ in range(4)]
    row = {"question": q, "answer_a": opts[0], "answer_b": opts[1], "answer_c": opts[2], "answer_d": opts[3],
           "correct_answer": rng.choice(["A", "B", "C", "D", "b", "(C)", "D.", " A ", "E", "Paris", ""]),
           "topic": rng.choice(["high school biology", "marketing", " law ", "", "Knitting"]),
           "difficulty": rng.choice([1, 2, 3, 4, 5, 2.5, 0, 7, 5.000001, None, float("nan")])}
    if rng.random() < 0.05:
        row["answer_" + rng.choice("abcd")] = rng.choice(["", None, "   "])
    if rng.random() < 0.03:
        row["question"] = rng.choice(["", None, "   ", 12])
    if rng.random() < 0.02:
        row["extra"] = {"k": [1, 2]}
    if rng.random() < 0.02:
        row["difficulty"] = rng.choice(["easy", "Level 3", True])
    return row


def generated(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        line = json.dumps(mmlu_line(rng, i), ensure_ascii=rng.random() < 0.5)
        r = rng.random()
        if r < 0.01:
            line = "  " + line
        elif r < 0.02:
            line = ""
        elif r < 0.025:
            line = line[: len(line) // 2]
        elif r < 0.03:
            line = "null"
        elif r < 0.035:
            line = line + " " + line
        lines.append(line)
        if rng.random() < 0.01:
            lines.append(lines[rng.randrange(len(lines))])  # a repeat
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_files_give_the_same_rows_and_bad_rows_on_both_paths(tmp_path, monkeypatch, spy, seed):
    monkeypatch.setattr(load_module, "BATCH", 97)
    (fast_rows, fast), (slow_rows, slow) = both_paths(tmp_path, generated(1500, seed), monkeypatch)
    assert fast_rows == slow_rows
    assert fast.bad_rows == slow.bad_rows and len(slow.bad_rows) > 50
    assert (fast.added, fast.duplicates, fast.rows_read) == (slow.added, slow.duplicates, slow.rows_read)
    assert spy["blocks"] > 10


def test_a_clean_file_is_built_column_wise_and_equals_the_row_path(tmp_path, monkeypatch, spy):
    rows = sample_rows()
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    (fast_rows, fast), (slow_rows, slow) = both_paths(tmp_path, data, monkeypatch, name="mmlu.jsonl")
    assert fast_rows == slow_rows and fast.bad_rows == slow.bad_rows == []
    assert spy["blocks"] == 1 and spy["row_path"] == 0  # every row built column-wise


def test_runs_of_spaces_in_questions_and_options_give_the_row_paths_ids(tmp_path, monkeypatch, spy):
    # runs of spaces at the edges (trimmed), inside a question, inside an option: the ids are
    # seed_id's, which collapses the inner runs, as the row path's are
    questions = ["an option has a run", "  starts with two", "a   run of three", "none here", "x  y", " one ", "  "]
    rows = [{"question": q, "choices": ["a  b", "b ", "c", "d"] if i == 0 else ["a", "b", "c", "d"],
             "answer": i % 4, "subject": "physics"} for i, q in enumerate(questions)]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    (fast_rows, fast), (slow_rows, slow) = both_paths(tmp_path, data, monkeypatch)
    assert [r[0] for r in fast_rows] == [r[0] for r in slow_rows] and len(fast_rows) == len(questions) - 1
    assert fast_rows == slow_rows and spy["row_path"] == 0


def test_the_broken_corpus_of_the_parallel_tests_gives_the_same_on_both_paths(tmp_path, monkeypatch, spy):
    from test_ingest_parallel import messy_jsonl

    monkeypatch.setattr(load_module, "BATCH", 37)
    hostile = (b'{"question": ' + b"[" * 3000 + b"]" * 3000 + b', "answer": "x"}\n'
               b'{"question": "\\ud800", "answer": "x"}\n{"question": "n\\u0000l", "answer": "x"}\n'
               b'{"question": "a\x00b", "answer": "x"}\n{"question": "q", "question": "dup", "answer": "k"}\n')
    (fast_rows, fast), (slow_rows, slow) = both_paths(tmp_path, messy_jsonl() + hostile, monkeypatch)
    assert fast_rows == slow_rows and fast.bad_rows == slow.bad_rows
    assert fast.rows_read == slow.rows_read


def test_a_mapping_discipline_column_and_source_column_take_the_columnar_path_the_same(tmp_path, monkeypatch, spy):
    rows = [{"stem": f"q{i}?", "o1": "x", "o2": "y", "key": "AB"[i % 2], "area": ["philosophy", "Earth science", ""][i % 3],
             "topic": "law", "source": ["book", ""][i % 2], "level": [1, 9][i % 7 == 0]} for i in range(300)]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    kw = dict(mapping={"question": "stem", "options": "o1,o2", "answer": "key", "discipline": "area",
                       "difficulty": "level"}, discipline_map={"Earth science": "Physics"})
    (fast_rows, fast), (slow_rows, slow) = both_paths(tmp_path, data, monkeypatch, **kw)
    assert fast_rows == slow_rows and fast.bad_rows == slow.bad_rows and len(fast.bad_rows) == 43
    assert spy["row_path"] == 43


# -- the bulk load ---------------------------------------------------------------------------


def test_repeats_in_a_file_loaded_into_an_empty_table_keep_the_first_and_the_id_stays_unique(tmp_path):
    rows = [{"question": f"q{i % 7}?", "answer": "a", "n": i} for i in range(30)]
    store = Store(tmp_path / "b.db")
    report = ingest(store, "".join(json.dumps(r) + "\n" for r in rows).encode(), filename="r.jsonl")
    assert (report.added, report.duplicates) == (7, 23)
    assert [json.loads(r[0])["n"] for r in store.query("SELECT metadata FROM seeds ORDER BY rid")] == list(range(7))
    assert store.scalar("SELECT count(*) FROM pragma_index_list('seeds') WHERE name = 'seeds_id' AND \"unique\"") == 1
    again = ingest(store, "".join(json.dumps(r) + "\n" for r in rows).encode(), filename="r.jsonl")
    assert (again.added, again.duplicates) == (0, 30)


def test_a_failed_bulk_load_inside_a_callers_transaction_leaves_the_table_and_index_as_they_were(tmp_path):
    from linkqa_core.errors import InputError

    store = Store(tmp_path / "t.db")
    bad = b'{"question": "", "answer": "x"}\n' * 3
    good = b'{"question": "q?", "answer": "x"}\n{"question": "q?", "answer": "x"}\n'
    with store.transaction():
        with pytest.raises(InputError):
            with store.seeds.bulk():
                store.seeds.add_rows(list(load_module._Load(good, filename="g.jsonl", format=None, mapping=None,
                                                            discipline_map=None, source_name=None).rows(0.0)))
                ingest(store, bad, filename="bad.jsonl")
        assert store.seeds.count() == 0
        assert store.scalar("SELECT count(*) FROM pragma_index_list('seeds') WHERE name = 'seeds_id'") == 1
    assert ingest(store, good, filename="g.jsonl").added == 1


def test_a_database_of_schema_5_gets_the_named_index_and_keeps_its_seeds(tmp_path):
    import sqlite3

    import sqlite_utils

    from linkqa_core.store.schema import MIGRATIONS, run_script

    path = tmp_path / "v5.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:5]:
        run_script(conn, step) if isinstance(step, str) else step(sqlite_utils.Database(conn))
    conn.execute("PRAGMA user_version=5")
    conn.execute("INSERT INTO seeds (rid, id, question, answer, discipline, added_at) VALUES (7, 'abc', 'q?', 'a', 'Law', 1)")
    conn.close()
    store = Store(path)
    assert [tuple(r) for r in store.query("SELECT rid, id, question FROM seeds")] == [(7, "abc", "q?")]
    with pytest.raises(Exception, match="UNIQUE"):
        with store.transaction() as c:
            c.execute("INSERT INTO seeds (id, question, answer, discipline, added_at) VALUES ('abc', 'q', 'a', 'Law', 1)")
    assert not hasattr(columnar_module, "nothing")


@pytest.mark.parametrize("read_bytes", [8 << 20, 997, 1, 4096])
@pytest.mark.parametrize("last_newline", [False, True])
def test_blocks_and_chunks_cut_a_file_at_the_same_lines_by_count_and_by_size(tmp_path, monkeypatch, read_bytes,
                                                                            last_newline):
    from linkqa_core.ingest import read_jsonl
    from linkqa_core.ingest.sources import Source

    monkeypatch.setattr(read_jsonl, "CHUNK_BYTES", 1000)
    monkeypatch.setattr(read_jsonl, "READ_BYTES", read_bytes)  # file reads that end inside lines
    rng = random.Random(5)
    lines = [json.dumps({"question": "q" * rng.choice([5, 50, 400, 1500]), "answer": "a"}) for _ in range(300)]
    path = tmp_path / "cut.jsonl"
    path.write_bytes(("\n".join(lines) + ("\n" if last_newline else "")).encode())
    reader = read_jsonl.JsonlReader(Source(path, None))
    chunks = [(before, b"".join(part)) for before, part in reader.chunks(7)]
    got = list(reader.blocks(7))
    blocks = [(before, block) for before, block, _ in got]
    assert chunks == blocks and len(blocks) > 300 / 7
    assert b"".join(b for _, b in blocks) == path.read_bytes()
    for _, block, ends in got:  # a line end is a newline, or the end of the file's last line
        assert [block[e:e + 1] for e in ends.tolist()] == [b"\n"] * (len(ends) - 1) + [block[ends[-1]:ends[-1] + 1]]
        assert block.count(b"\n") == len(ends) - (0 if block.endswith(b"\n") else 1)


@pytest.mark.parametrize("seed", range(4))
def test_runs_of_two_spaces_are_found_in_each_text_and_never_across_two(seed):
    import pyarrow as pa

    rng = random.Random(seed)
    pieces = [" ", "  ", "a", "é", "😀", "b ", " c", "\t", ""]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randrange(0, 6))) for _ in range(400)]
    # texts ending and starting in one space: neighbours in the buffer, no run in either
    texts += ["ends ", " starts", "x", "  ", "", " "]
    arr = pa.array(texts)
    for start in (0, 1, 7):  # a slice starts at an odd byte of the buffer and at another row
        part = arr.slice(start)
        want = [("  " in t) for t in texts[start:]]
        assert columnar_module._double_spaces(part).tolist() == want
    assert columnar_module._double_spaces(pa.chunked_array([arr[:5], arr[5:9]])).tolist() == [
        "  " in t for t in texts[:9]]
    assert columnar_module._double_spaces(pa.array([], pa.string())).tolist() == []


# -- pinned by the survivors of a mutation run (docs/testing.md, "linkqa_core/ingest/columnar.py")

def lines_of(block: bytes) -> columnar_module._Lines:
    """A block's lines as segments cuts them: each ends at its newline, the last one maybe at the block's end."""
    import numpy as np

    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    if not block.endswith(b"\n"):
        ends = np.append(ends, len(block) - 1)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    return columnar_module._Lines(block, starts, ends)


@pytest.mark.parametrize("last_newline", [False, True])
def test_joined_lines_are_exactly_the_chosen_lines_each_ending_in_a_newline(last_newline):
    import itertools

    import numpy as np

    block = b"l0\nline 1\nl2\n\nl4\nlast" + (b"\n" if last_newline else b"")
    lines = lines_of(block)
    n = len(lines.ends)
    assert [lines[i] for i in range(n)][-2:] == [b"l4\n", b"last" + (b"\n" if last_newline else b"")]
    for k in range(1, n + 1):
        for which in itertools.combinations(range(n), k):
            want = b"".join(lines[i] for i in which)
            got = lines.join(np.array(which))
            assert got == (want if want.endswith(b"\n") else want + b"\n"), which
    assert lines.join(np.array([1, 2, 4])) == b"line 1\nl2\nl4\n"
    assert lines.join(np.arange(n)) == b"l0\nline 1\nl2\n\nl4\nlast\n"


def test_lines_containing_a_needle_are_every_line_that_holds_it_from_the_first_byte_on():
    block = (b'\\u0000 first\n{"q": "x"}\n{"q": "\\u0000"}\n{"q": "y\\u0000 \\u0000"}\n{"q": "z"}\n'
             b'{"q": "\\u0000"}\n')
    assert lines_of(block).containing(block, b"\\u0000").tolist() == [0, 2, 3, 5]


def test_a_non_ascii_block_without_backslashes_gives_the_row_paths_ids(tmp_path, monkeypatch, spy):
    # written raw (no \u escapes, no backslash at all): whitespace other than the ASCII space
    # inside a text is still collapsed by seed_id, so the key must be normalised here too
    rows = [{"question": f"naïve\u3000question {i}\u00a0 here?", "answer": "B",
             "answer_a": "café", "answer_b": f"opt\u2003{i}", "answer_c": "c", "answer_d": "d"} for i in range(6)]
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    assert b"\\" not in data and not data.isascii()
    (fast_rows, fast), (slow_rows, slow) = both_paths(tmp_path, data, monkeypatch)
    assert [r[0] for r in fast_rows] == [r[0] for r in slow_rows] and len(fast_rows) == len(rows)
    assert fast_rows == slow_rows and spy["row_path"] == 0


def test_rows_without_options_are_built_column_wise_with_the_row_paths_ids(tmp_path, monkeypatch, spy):
    rows = [{"question": q, "answer": a} for q, a in
            [("What is 2+2?", "4"), ("a  run", "b  c"), ("Capital of France?", "Paris"), ("q", "a"),
             ("qa", ""), ("", "x"), ("same", "answer"), ("sam", "eanswer")]]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    (fast_rows, fast), (slow_rows, slow) = both_paths(tmp_path, data, monkeypatch)
    assert [r[0] for r in fast_rows] == [r[0] for r in slow_rows] and len(fast_rows) == 6
    assert fast_rows == slow_rows and fast.bad_rows == slow.bad_rows and len(slow.bad_rows) == 2
    assert spy["row_path"] == 2  # only the two bad rows


def test_options_without_quotes_or_backslashes_are_never_encoded_again_one_by_one(tmp_path, monkeypatch, spy):
    encoded = []
    real = columnar_module._dumps

    def dumps(cells):
        encoded.append(cells)
        return real(cells)

    monkeypatch.setattr(columnar_module, "_dumps", dumps)
    rows = [{"question": f"back\\slash {i}?", "answer_a": "a", "answer_b": f"b{i}", "answer_c": "c",
             "answer_d": "d", "correct_answer": "A"} for i in range(8)]
    rows[5]["answer_c"] = 'a "quoted" option'
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    (fast_rows, _), (slow_rows, _) = both_paths(tmp_path, data, monkeypatch)
    assert fast_rows == slow_rows and spy["row_path"] == 0
    assert encoded == [["a", "b5", 'a "quoted" option', "d"]]


def test_runs_of_two_spaces_in_one_text_a_last_pair_and_a_middle_slice():
    import pyarrow as pa

    double = columnar_module._double_spaces
    assert double(pa.array(["a  b"])).tolist() == [True]
    assert double(pa.array(["abc  "])).tolist() == [True]  # odd length: the last pair starts at an odd byte
    assert double(pa.array(["ab  c"])).tolist() == [True]
    assert double(pa.array(["a b"])).tolist() == [False]
    arr = pa.array(["x", "no run", "y", "a  run after the slice"])
    assert double(arr.slice(1, 2)).tolist() == [False, False]
    assert double(arr.slice(2, 2)).tolist() == [False, True]


def test_chunked_and_sliced_arrays_are_coded_and_packed_as_the_whole_texts():
    import pyarrow as pa

    texts = ["b", None, "a", "b", "é  x"]
    whole = pa.array(texts)
    chunked = pa.chunked_array([whole[:2], whole[2:]])
    codes, values = columnar_module._dictionary(chunked)
    assert [values[c] for c in codes.tolist()] == texts and values[-1] is None
    assert columnar_module._packed(pa.chunked_array([pa.array(["b", "a"]), pa.array(["é  x"])])).texts() == [
        "b", "a", "é  x"]
    assert columnar_module._packed(pa.array(["x", "yz", "w", "v"]).slice(1, 2)).texts() == ["yz", "w"]


def columnar_for(block: bytes) -> Columnar:
    from linkqa_core.ingest.load import _Load

    load = _Load(block, filename="b.jsonl", format="jsonl", mapping=None, discipline_map=None, source_name="set")
    columnar = Columnar.for_load(load, 7.5)
    assert columnar is not None
    return columnar


def segments_of(block: bytes, before: int = 0):
    return columnar_for(block).segments(block, lines_of(block).ends, before)


def test_a_block_comes_back_as_runs_in_file_order_built_runs_unbroken_between_row_path_rows():
    from linkqa_core.store.packed import PackedRows

    good = [json.dumps({"question": f"q{i}?", "answer": "A", "answer_a": "x", "answer_b": f"y{i}"}) for i in range(25)]
    lines = good[:10] + ["  " + good[10]] + good[11:20] + ["null"] + good[20:]  # row path: a good row, a bad one
    parts, bad, read = segments_of(("\n".join(lines) + "\n").encode(), before=100)
    assert [type(p) for p in parts] == [PackedRows, list, PackedRows]
    assert [len(p) for p in parts] == [10, 1, 14]
    assert [b.line for b in bad] == [121] and read == 26
    clean = ("\n".join(good) + "\n").encode()
    whole = columnar_for(clean).rows(clean, lines_of(clean).ends, 0)[0]
    assert parts[0].tuples() + parts[1] + parts[2].tuples() == whole[:10] + [whole[10]] + whole[11:]


def test_an_empty_block_gives_no_rows():
    import numpy as np

    columnar = columnar_for(b'{"question": "q?", "answer": "a"}\n')
    assert columnar.segments(b"", np.zeros(0, dtype=np.int64), 0) == ([], [], 0)


def test_only_lines_that_are_one_utf8_object_without_an_escaped_nul_go_to_arrow():
    lines = [b'{"question": "q", "answer": "a"}', b'  {"question": "q", "answer": "a"}', b"", b"null",
             b'{"question": "q", "answer": "a"} ', b'{"question": "\\u0000", "answer": "a"}',
             b'{"question": "caf\xe9", "answer": "a"}', b"{}", b'["a"]', b'{"question": "\xc3\xa9", "answer": "a"}']
    block = b"\n".join(lines) + b"\n"
    want = [True, False, False, False, False, False, False, True, False, True]
    columnar = columnar_for(lines[0] + b"\n")
    assert columnar._candidates(block, lines_of(block), 0).tolist() == want
    # a file's first line after a byte-order mark takes the row path, which strips the mark
    marked = b"\xef\xbb\xbf" + b"\n".join([lines[0], lines[0], lines[7]]) + b"\n"
    assert columnar._candidates(marked, lines_of(marked), 0).tolist() == [False, True, True]


def test_a_block_with_more_combinations_than_an_int64_code_holds_gives_the_row_paths_rows():
    # 8 answer letters x 40,001 subjects, disciplines, sources and difficulties (each with
    # None) is about 2 x 10^19 combinations, past 2^63: the codes cannot be one int64 sum
    from linkqa_core.ingest.load import _Load

    n = 40_000
    rows = [{"stem": f"q{i}?", **{f"o{k}": f"x{k}" for k in range(1, 9)}, "key": "ABCDEFGH"[i % 8],
             "topic": f"t{i}", "area": f"a{i}", "source": f"s{i}", "level": 1 + i / 10**5} for i in range(n)]
    block = "".join(json.dumps(r) + "\n" for r in rows).encode()
    mapping = {"question": "stem", "options": [f"o{k}" for k in range(1, 9)], "answer": "key", "subject": "topic",
               "discipline": "area", "difficulty": "level", "source": "source"}
    load = _Load(block, filename="b.jsonl", format="jsonl", mapping=mapping, discipline_map=None, source_name="set")
    columnar = Columnar.for_load(load, 7.5)
    assert columnar is not None
    lines = lines_of(block)
    got, bad, read = columnar.rows(block, lines.ends, 0)
    assert (bad, read, len(got)) == ([], n, n)
    # every row's combination, and whole rows (the row path's) for a sample
    assert [(r[4], r[6], r[7], r[9]) for r in got] == [
        ("ABCDEFGH"[i % 8], f"t{i}", 1 + i / 10**5, f"s{i}") for i in range(n)]
    sample = [*range(0, n, 397), n - 1]
    assert [got[i] for i in sample] == [r for i in sample for r in columnar._row_path(lines, 0, i)[0]]


def test_arrow_uses_its_own_threads_unless_the_columnar_path_is_told_not_to(monkeypatch):
    import pyarrow.json as pj

    from linkqa_core.ingest.load import _Load

    seen = []
    real = pj.read_json

    def read_json(source, read_options=None, **kw):
        seen.append(read_options.use_threads)
        return real(source, read_options=read_options, **kw)

    monkeypatch.setattr(pj, "read_json", read_json)
    block = b'{"question": "q?", "answer": "a"}\n'
    load = _Load(block, filename="b.jsonl", format="jsonl", mapping=None, discipline_map=None, source_name="set")
    for columnar in (Columnar.for_load(load, 7.5), Columnar(load, 7.5), Columnar.for_load(load, 7.5, threads=False)):
        rows, bad, read = columnar.rows(block, lines_of(block).ends, 0)
        assert len(rows) == read == 1 and rows[0][-1] == 7.5  # the load's added_at
    assert seen == [True, True, False]


def test_a_line_longer_than_arrows_default_block_is_still_read_column_wise():
    # Arrow refuses an object spread over three of its blocks: the block is half the data,
    # so even a line that is nearly all of it spans two at most (a 1 MiB block would not do)
    from linkqa_core.store.packed import PackedRows

    long_line, others = 3_200_000, 100
    rows = [{"question": "q" * long_line + "?", "answer": "a"}]
    rows += [{"question": f"question {i} " + "x" * 1_000, "answer": "b"} for i in range(others)]
    block = "".join(json.dumps(r) + "\n" for r in rows).encode()
    parts, bad, read = segments_of(block)
    assert len(parts) == 1 and isinstance(parts[0], PackedRows) and len(parts[0]) == read == len(rows)


def test_a_part_arrow_refuses_is_halved_until_its_parts_are_sixteen_lines_or_fewer(monkeypatch):
    sizes = []
    real = Columnar._parse

    def parse(self, lines, which):
        sizes.append(len(which))
        return real(self, lines, which)

    monkeypatch.setattr(Columnar, "_parse", parse)
    line = json.dumps({"question": "q?", "answer": "a", "unknown": 1})  # a column the schema lacks
    columnar = columnar_for(b'{"question": "q?", "answer": "a"}\n')
    for n, want in [(64, [64, 32, 16, 16, 32, 16, 16]), (16, [16]), (17, [17, 8, 9])]:
        sizes.clear()
        block = ("\n".join([line] * n) + "\n").encode()
        rows, bad, read = columnar.rows(block, lines_of(block).ends, 0)
        assert sizes == want and read == n and len(rows) == n


def test_the_columnar_path_takes_json_lines_with_two_to_eight_option_columns_only():
    from linkqa_core.ingest.load import _Load

    def load(n_options: int, format: str = "jsonl"):
        row = {"q": "q?", "key": "A", **{f"o{k}": f"x{k}" for k in range(n_options)}}
        mapping = {"question": "q", "answer": "key", "options": [f"o{k}" for k in range(n_options)]}
        if format == "csv":
            data = (",".join(row) + "\n" + ",".join(str(v) for v in row.values()) + "\n").encode()
        else:
            data = (json.dumps(row) + "\n").encode()
        return _Load(data, filename=f"b.{format}", format=format, mapping=mapping, discipline_map=None,
                     source_name="set")

    assert [Columnar.for_load(load(n), 1.0) is not None for n in (1, 2, 8, 9)] == [False, True, True, False]
    assert Columnar.for_load(load(4, "csv"), 1.0) is None


def test_a_plan_without_one_question_and_one_answer_column_is_not_taken_column_wise():
    # _Load refuses such a file before (no answer column found); for_load checks it itself
    from types import SimpleNamespace

    def plan(question, answer):
        return SimpleNamespace(format="jsonl", plan=SimpleNamespace(fallbacks={}), discipline_map=None,
                               source_name="set", mapping={"question": question, "answer": answer})

    assert Columnar.for_load(plan("q", "a"), 1.0) is not None
    assert [Columnar.for_load(plan(q, a), 1.0) for q, a in [("q", None), (None, "a"), ("q", ["a", "b"])]] == [None] * 3

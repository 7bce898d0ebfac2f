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

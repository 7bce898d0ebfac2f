"""Fixtures and file writers for the seed-loading tests (conftest.py holds the shared ones).

Import what a test file needs: ``from ingest_fixtures import seeded_store, write_as``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from linkqa_core.ingest.load import ingest, sample_path
from linkqa_core.store import Store
from linkqa_core.store.seeds import SeedStore

LETTERS = "ABCD"


def sample_rows(n: int | None = None) -> list[dict[str, Any]]:
    """The bundled sample's rows as dicts (MMLU layout: answer_a..d, correct_answer, topic)."""
    with open(sample_path(), encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return rows if n is None else rows[:n]


def jsonl_bytes(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def csv_bytes(header: list[str], rows: list[list[Any]], encoding: str = "utf-8") -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)


def parquet_bytes(columns: dict[str, list[Any]]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def as_format(rows: list[dict[str, Any]], kind: str) -> tuple[str, bytes]:
    """MMLU-layout rows written as ``kind``; returns (file name, content)."""
    if kind == "jsonl":
        return "seeds.jsonl", jsonl_bytes(rows)
    if kind == "json_array":
        return "seeds.json", json.dumps(rows).encode("utf-8")
    if kind == "json_splits":
        half = len(rows) // 2
        return "seeds.json", json.dumps({"train": rows[:half], "test": rows[half:]}).encode("utf-8")
    if kind == "csv_letters":
        header = ["question", "A", "B", "C", "D", "answer", "subject"]
        body = [
            [r["question"], r["answer_a"], r["answer_b"], r["answer_c"], r["answer_d"], r["correct_answer"], r["topic"]]
            for r in rows
        ]
        return "seeds.csv", csv_bytes(header, body)
    if kind == "parquet":
        return "seeds.parquet", parquet_bytes(
            {
                "question": [r["question"] for r in rows],
                "choices": [[r[f"answer_{x.lower()}"] for x in LETTERS] for r in rows],
                "answer": [r["correct_answer"] for r in rows],
                "topic": [r["topic"] for r in rows],
            }
        )
    raise ValueError(kind)


def write_as(tmp_path: Path, rows: list[dict[str, Any]], kind: str) -> Path:
    name, data = as_format(rows, kind)
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture
def seeded_store(tmp_path) -> Store:
    """A real SQLite file already holding the bundled sample, to check that errors change nothing."""
    store = Store(tmp_path / "seeded.db")
    ingest(store, sample_path())
    yield store
    store.close()


def fail_add_rows_on_call(monkeypatch, call: int) -> list[int]:
    """Make ``SeedStore.add_rows`` raise "disk on fire" on its ``call``-th call; the list
    returned fills with the batch sizes it was given."""
    real_add = SeedStore.add_rows
    sizes: list[int] = []

    def failing_add(self, rows):
        sizes.append(len(rows))
        if len(sizes) == call:
            raise RuntimeError("disk on fire")
        return real_add(self, rows)

    monkeypatch.setattr(SeedStore, "add_rows", failing_add)
    return sizes

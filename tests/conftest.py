"""Shared fixtures: real SQLite files in temporary folders, the bundled sample, the full MMLU file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from linkqa_core.kps.extract import run_extraction
from linkqa_core.ingest.load import ingest, sample_path
from linkqa_core.store import Store

ROOT = Path(__file__).resolve().parents[1]


def mmlu_file() -> Path | None:
    env = os.environ.get("LINKQA_MMLU")
    for candidate in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data" / "mmlu_test.jsonl"]:
        if candidate.is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def _sample_db_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "sample.db"
    with Store(path) as store:
        ingest(store, sample_path())
        run_extraction(store)
    return path


@pytest.fixture
def sample_store(_sample_db_template, tmp_path) -> Store:
    """A fresh copy of a database holding the bundled sample with its KPs extracted."""
    path = tmp_path / "linkqa.db"
    shutil.copy(_sample_db_template, path)
    store = Store(path)
    yield store
    store.close()


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "linkqa.db")
    yield s
    s.close()


@pytest.fixture(scope="session")
def mmlu_path() -> Path:
    path = mmlu_file()
    if path is None:
        pytest.skip("the full MMLU file is absent: set LINKQA_MMLU or place it at ../shared/data/mmlu_test.jsonl")
    return path


@pytest.fixture(scope="session")
def mmlu_db(mmlu_path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mmlu") / "mmlu.db"
    with Store(path) as s:
        ingest(s, mmlu_path)
        run_extraction(s)
    return path

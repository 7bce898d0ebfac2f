"""Shared fixtures: real SQLite files in temporary folders, the bundled sample, the full MMLU file.

With ``CI=true`` a skipped test fails (tests/skip_policy.py): a missing prerequisite must not
hide a regression there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from linkqa_core.kps.extract import run_extraction
from linkqa_core.ingest.load import ingest, sample_path
from linkqa_core.store import Store
from skip_policy import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 - hooks

ROOT = Path(__file__).resolve().parents[1]


SHARED = ROOT.parent / "shared"


def mmlu_file() -> Path | None:
    env = os.environ.get("LINKQA_MMLU")
    for candidate in ([Path(env)] if env else []) + [SHARED / "data" / "mmlu_test.jsonl"]:
        if candidate.is_file():
            return candidate
    return None


def mmlu_missing_reason() -> str:
    """Why the full-MMLU tests cannot run; worded so that tests/skip_policy.py lets CI skip
    them only when the checkout has no ../shared folder at all."""
    env = os.environ.get("LINKQA_MMLU")
    if env:
        return f"the full MMLU file is absent: LINKQA_MMLU={env} is not a file"
    if SHARED.is_dir():
        return f"the full MMLU file is absent: {SHARED} exists but has no data/mmlu_test.jsonl"
    return (f"the full MMLU file is absent and there is no ../shared folder ({SHARED}): "
            "set LINKQA_MMLU or place it at ../shared/data/mmlu_test.jsonl")


@pytest.fixture(scope="session")
def _sample_db_template(tmp_path_factory) -> Path:
    """The bundled sample with its KPs, built once per session.

    ``LINKQA_TEST_CACHE`` (set by scripts/mutation) keeps it across sessions: a mutation run
    starts a pytest session per mutant, and the data a fixture starts from is then built
    once by the unmutated code rather than again, by mutated code, for each mutant.
    """
    cache = os.environ.get("LINKQA_TEST_CACHE")
    path = Path(cache) / "sample.db" if cache else tmp_path_factory.mktemp("template") / "sample.db"
    if path.exists():
        return path
    building = tmp_path_factory.mktemp("building") / "sample.db"
    with Store(building) as store:
        ingest(store, sample_path())
        run_extraction(store)
        store.checkpoint()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(building, path)
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
        pytest.skip(mmlu_missing_reason())
    return path


@pytest.fixture(scope="session")
def mmlu_db(mmlu_path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mmlu") / "mmlu.db"
    with Store(path) as s:
        ingest(s, mmlu_path)
        run_extraction(s)
    return path

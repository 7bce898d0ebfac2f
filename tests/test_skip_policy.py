"""With CI=true a skip fails the run (tests/skip_policy.py); without it a skip stays a skip with its reason."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SKIPPING = '''
import importlib.util
import pytest

needs_module = pytest.mark.skipif(importlib.util.find_spec("no_such_module_xyz") is None,
                                  reason="the module no_such_module_xyz is not installed")


@needs_module
def test_marked_skipif():
    pass


def test_skip_inside():
    pytest.skip("no Chromium at /nowhere/chromium (set LINKQA_CHROMIUM)")


@pytest.fixture(scope="session")
def big_file():
    pytest.skip("the full MMLU file is absent: /x/shared exists but has no data/mmlu_test.jsonl")


def test_fixture_skip(big_file):
    pass


def test_allowed_skip():
    pytest.skip("the full MMLU file is absent and there is no ../shared folder (/x/shared): set LINKQA_MMLU")


@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure():
    assert False


def test_passes():
    assert 1 + 1 == 2
'''

IMPORT_SKIP = '''
import pytest
pytest.importorskip("no_such_module_xyz")


def test_never_collected():
    pass
'''


def _run(tmp_path: Path, ci: str | None, *files: tuple[str, str]) -> subprocess.CompletedProcess:
    for name, code in files:
        (tmp_path / name).write_text(textwrap.dedent(code), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(HERE)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "skip_policy", "-p", "no:cacheprovider",
                           "-rA", "-q", str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def _outcomes(out: str) -> dict[str, str]:
    """test name (a skip's reason) -> PASSED / FAILED / ERROR / XFAIL (SKIPPED), from -rA's short summary."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"(PASSED|FAILED|ERROR|XFAIL) \S+::(test_\w+)", line) or \
            re.match(r"(SKIPPED) \[\d+\] \S+:\d+: (.*)", line)
        if m:
            found[m.group(2)] = m.group(1)
    return found


@pytest.mark.parametrize("value, ci", [(None, False), ("", False), ("false", False), ("0", False),
                                       ("true", True), ("1", True), ("TRUE", True), ("yes", True)])
def test_ci_is_read_from_the_ci_variable(monkeypatch, value, ci):
    from skip_policy import in_ci

    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is ci


FILES = (("test_x.py", SKIPPING), ("test_imports.py", IMPORT_SKIP))


def test_outside_ci_skips_stay_skips_with_their_reason(tmp_path):
    out = _run(tmp_path, "false", *FILES)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 5 skipped, 1 xfailed" in out.stdout
    for reason in ("the module no_such_module_xyz is not installed", "no Chromium at /nowhere/chromium",
                   "could not import 'no_such_module_xyz'", "/x/shared exists but has no data/mmlu_test.jsonl"):
        assert reason in out.stdout
    assert "skipped in CI" not in out.stdout


def test_in_ci_a_skip_for_a_missing_prerequisite_fails_and_says_what_is_missing(tmp_path):
    out = _run(tmp_path, "true", ("test_x.py", SKIPPING))
    assert out.returncode != 0
    seen = _outcomes(out.stdout)
    assert seen["test_marked_skipif"] == "ERROR"  # a skipif mark is evaluated in setup
    assert seen["test_skip_inside"] == "FAILED"
    assert seen["test_fixture_skip"] == "ERROR"
    # no ../shared folder at all: listed in CI_MAY_SKIP, stays a skip
    assert seen["the full MMLU file is absent and there is no ../shared folder (/x/shared): set LINKQA_MMLU"] \
        == "SKIPPED"
    assert seen["test_expected_failure"] == "XFAIL"  # xfail is not a skip
    assert seen["test_passes"] == "PASSED"
    for reason in ("the module no_such_module_xyz is not installed", "no Chromium at /nowhere/chromium",
                   "the full MMLU file is absent: /x/shared exists"):
        assert f"skipped in CI: {reason}" in out.stdout


def test_in_ci_a_module_level_importorskip_is_a_collection_error(tmp_path):
    out = _run(tmp_path, "true", ("test_imports.py", IMPORT_SKIP), ("test_ok.py", "def test_ok():\n    pass\n"))
    assert out.returncode == 2  # pytest stops at a collection error: loud, before any test runs
    assert "skipped in CI: could not import 'no_such_module_xyz'" in out.stdout

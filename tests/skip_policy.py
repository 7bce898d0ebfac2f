"""In CI (``CI=true``) a skipped test is a failed test; elsewhere a skip stays a skip with its reason.

A skip in CI means a prerequisite is missing (Chromium, a module, the full MMLU file beside
a checkout that has ../shared), and a test that does not run cannot catch the regression it
is there for. So under CI every skip, from a ``skipif`` mark, ``pytest.skip`` in a test or a
fixture, or ``pytest.importorskip`` at module level, is reported as a failure naming what is
missing. The few skips that hide nothing are listed in :data:`CI_MAY_SKIP` (by the start of
their reason). ``xfail`` is left alone. tests/conftest.py imports the two hooks; a run can
also load this module with ``-p skip_policy``.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["in_ci", "CI_MAY_SKIP", "pytest_runtest_makereport", "pytest_make_collect_report"]

# skips that hide no regression even in CI, by the start of their reason
CI_MAY_SKIP: tuple[str, ...] = (
    # a checkout with no ../shared folder at all has no MMLU file to test on (CI always has one)
    "the full MMLU file is absent and there is no ../shared folder",
)


def in_ci() -> bool:
    """``CI`` is set to a true value, as CI services (and .ci/run's caller) set it."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _reason(longrepr: object) -> str:
    # a skip's longrepr is (path, line, "Skipped: reason")
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = _reason(report.longrepr)
    if any(reason.startswith(ok) for ok in CI_MAY_SKIP):
        return
    report.outcome = "failed"
    report.longrepr = (f"skipped in CI: {reason}. With CI=true a missing "
                       f"prerequisite fails the run instead of hiding a regression: install it "
                       f"(scripts/setup --dev) or, if the skip hides nothing, list it in tests/skip_policy.py")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        _fail_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci():
        _fail_skip(report)

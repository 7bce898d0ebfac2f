"""The real Studio in headless Chromium: every page by its URL, the graph drawn, a preview and a save.

Starts ``streamlit run app.py`` on a free port against a fresh database that the app
fills with the bundled sample on first start (``LINKQA_AUTOLOAD_SAMPLE=1``). Screenshots
go to ``test-artifacts/screenshots/``. Select or skip with ``-m browser`` / ``-m "not browser"``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_support import (  # noqa: E402
    StudioServer,
    chromium,
    chromium_missing_reason,
    exceptions,
    graph_canvas,
    open_page,
    preview_seconds,
    screenshot,
    settled,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_missing_reason() is not None, reason=str(chromium_missing_reason())),
]

TITLES = {
    "home": "LinkQA Studio",
    "seeds": "Seeds",
    "kps": "Knowledge points",
    "graph": "KP graph",
    "sampling": "Path sampling",
    "synthesis": "Synthesis",
    "review": "Review & export",
}


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    db = tmp_path_factory.mktemp("browser") / "studio.db"
    with StudioServer(db, autoload=True) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    p = context.new_page()
    yield p
    context.close()


def title_of(page) -> str:
    return page.locator("h1").first.inner_text().strip()


def test_home_shows_the_counts(studio, page):
    open_page(page, studio, "home")
    assert title_of(page) == "LinkQA Studio"
    seeds = page.locator('[data-testid="stMetric"]').filter(has_text="Seeds")
    assert seeds.locator('[data-testid="stMetricValue"]').inner_text().strip() == "1,139"
    kps = page.locator('[data-testid="stMetric"]').filter(has_text="Knowledge points")
    assert int(kps.locator('[data-testid="stMetricValue"]').inner_text().replace(",", "")) > 1000
    assert "Sample KP paths" in page.inner_text("body")
    assert exceptions(page) == []
    screenshot(page, "home")


@pytest.mark.parametrize("name", ["seeds", "kps", "graph", "sampling", "synthesis", "review"])
def test_each_page_opens_by_its_url(studio, page, name):
    open_page(page, studio, name)
    assert title_of(page) == TITLES[name]
    assert exceptions(page) == []
    screenshot(page, name)


def test_graph_is_drawn_in_its_iframe(studio, page):
    open_page(page, studio, "graph")
    canvas = graph_canvas(page)
    box = canvas.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 300
    # vis.js has nodes to show: the data set inside the frame is not empty
    frame = page.frame_locator('iframe[title="KP graph"]')
    n_nodes = frame.locator("body").evaluate("() => typeof nodes !== 'undefined' ? nodes.length : 0")
    assert n_nodes == 100
    page.wait_for_timeout(800)  # let the layout settle for the picture
    screenshot(page, "graph_drawn")


def metrics_text(page) -> str:
    return page.locator(".st-key-preview_metrics").first.inner_text()


def test_slider_preview_and_save(studio, page):
    open_page(page, studio, "sampling")
    page.get_by_role("button", name="Preview").click()
    page.wait_for_selector(".st-key-preview_metrics")
    settled(page)
    before = metrics_text(page)
    assert "KP coverage" in before and "vs uniform" in before and "kp_coverage" not in before

    w_cov = page.locator('[data-testid="stSlider"]').filter(has_text="Coverage: favour KPs not yet visited")
    slider = w_cov.locator('input[type="range"]')
    assert slider.input_value() == "1"
    slider.focus()
    for _ in range(20):  # 20 steps of 0.05: w_cov 1.00 -> 2.00
        page.keyboard.press("ArrowRight")
    assert w_cov.get_by_test_id("stSliderThumbValue").inner_text().strip() == "2.00"
    page.wait_for_selector("text=The settings changed since", timeout=10_000)

    preview_seconds(page)  # waits until the metrics table changed and every chart is drawn
    after = metrics_text(page)
    assert after != before
    screenshot(page, "sampling_preview")

    page.get_by_role("button", name="Save as run").click()
    saved = page.wait_for_selector("text=/Saved as run \\d+/", timeout=10_000)
    run_id = int(re.search(r"run (\d+)", saved.inner_text()).group(1))
    assert run_id >= 1
    assert page.get_by_role("button", name="Save as run").is_disabled()
    assert exceptions(page) == []
    screenshot(page, "sampling_saved")


def test_bad_upload_shows_a_clear_error(studio, page, tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_bytes(b"\x00\x01\x02\x03 not a seed file \xff\xfe" * 20)
    open_page(page, studio, "seeds")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(bad))
    error = page.wait_for_selector('[data-testid="stAlert"]:has-text("broken.jsonl")', timeout=15_000)
    assert "broken.jsonl" in error.inner_text()
    assert exceptions(page) == []
    screenshot(page, "seeds_bad_upload")


def test_two_tabs_on_one_database_while_a_long_synthesis_runs(studio, browser):
    """One tab runs a big offline synthesis in the background; the other previews and saves."""
    import sqlite3

    from linkqa_core.graph.sampling import sample
    from linkqa_core.store import Store
    from linkqa_core.graph.walks import WalkParams

    a = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
    b = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
    open_page(a, studio, "home")  # the first visit loads the bundled sample
    with Store(studio.db_path) as store:  # a third writer: this test process
        run_id = sample(store, WalkParams(), 30, seed=11, save=True, name="two tabs").run_id
    open_page(a, studio, "synthesis")
    assert a.get_by_role("combobox", name="Run").input_value().startswith(f"run {run_id} · two tabs")
    items = a.get_by_role("spinbutton", name="Items wanted")
    items.fill("1000")  # the sample holds ~1,800 distinct offline pairs
    items.press("Enter")
    settled(a)
    a.get_by_role("button", name="Start synthesis").click()

    open_page(b, studio, "sampling")  # the other tab keeps working while the job runs
    b.get_by_role("button", name="Preview").click()
    b.wait_for_selector(".st-key-preview_metrics", timeout=20_000)  # fails if it waits behind the job
    b.get_by_role("button", name="Save as run").click()
    b.wait_for_selector("text=/Saved as run \\d+/", timeout=20_000)

    a.wait_for_selector("text=/Done: 1,000 of 1,000 items/", timeout=120_000)
    settled(a)
    screenshot(a, "two_tabs_synthesis")
    screenshot(b, "two_tabs_sampling")
    assert exceptions(a) == [] and exceptions(b) == []
    assert "Thread" not in studio.log() and "ProgrammingError" not in studio.log()
    with sqlite3.connect(studio.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        good = conn.execute("SELECT count(*) FROM items WHERE run_id = ? AND status != 'failed'", (run_id,)).fetchone()[0]
        rows, slots = conn.execute("SELECT count(*), count(DISTINCT slot) FROM items WHERE run_id = ?",
                                   (run_id,)).fetchone()
    assert good == 1000 and rows == slots  # every item stored once

"""Start the real Studio (`streamlit run app.py`) on a free port and drive it with Chromium.

Used by ``tests/test_browser.py`` and by hand for timings and screenshots::

    with StudioServer(db_path) as server, chromium() as browser:
        page = browser.new_page()
        page.goto(server.url("Path_sampling"))

Playwright cannot download its own browser here; the Debian ``/usr/bin/chromium`` is
used (override with ``LINKQA_CHROMIUM``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("LINKQA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# URL path of each page (studio.ui.PAGE_SPECS names them for st.navigation)
PAGE_URLS = {
    "home": "",
    "seeds": "Seeds",
    "kps": "Knowledge_points",
    "graph": "KP_graph",
    "sampling": "Path_sampling",
    "synthesis": "Synthesis",
    "review": "Review_and_export",
}


def chromium_missing_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (set LINKQA_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StudioServer:
    """``streamlit run app.py`` in a subprocess, on its own port and database."""

    def __init__(self, db_path: str | Path, *, autoload: bool = True, env: dict[str, str] | None = None,
                 timeout: float = 60.0):
        self.db_path = str(db_path)
        self.port = free_port()
        self.timeout = timeout
        self.log_path = Path(self.db_path).with_suffix(".streamlit.log")
        self.env = {
            **os.environ,
            "LINKQA_DB": self.db_path,
            "LINKQA_AUTOLOAD_SAMPLE": "1" if autoload else "0",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LINKQA_MODEL"):
            if env is None or key not in env:
                self.env.pop(key, None)
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, page: str = "") -> str:
        return f"{self.base_url}/{PAGE_URLS.get(page, page)}"

    def start(self) -> "StudioServer":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200 and resp.read().strip() == b"ok":
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"streamlit not healthy after {self.timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> "StudioServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def chromium() -> Iterator["object"]:
    """A headless Chromium (Playwright) using the system binary."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# What "the main content is visible" means on each page, for waits and timings: the
# page's last element (Streamlit draws top to bottom) or the notice that stands in for
# it when an earlier stage is missing. The graph page also waits for its canvas.
_PLOTS = "document.querySelectorAll('.js-plotly-plot').length"
_ALERT = "[...document.querySelectorAll('[data-testid=\"stAlert\"]')].some(a => a.innerText.includes({!r}))"
_BUTTON = "[...document.querySelectorAll('button')].some(b => b.innerText.trim() === {!r})"
READY = {
    "home": _BUTTON.format("Test connection"),
    "seeds": f"{_PLOTS} >= 2 || " + _ALERT.format("No seeds yet"),
    "kps": f"{_PLOTS} >= 1 || " + _ALERT.format("No knowledge points yet") + " || " + _ALERT.format("no seeds yet"),
    "graph": f"{_PLOTS} >= 1 || " + _ALERT.format("No knowledge points yet") + " || " + _ALERT.format("no seeds yet"),
    "sampling": _BUTTON.format("Preview") + " || " + _ALERT.format("No knowledge points yet")
    + " || " + _ALERT.format("no seeds yet"),
}
# any other page: its title, then no skeleton left (see open_page)


def settled(page, timeout: float = 30_000) -> None:
    """Until no element is a loading skeleton and every plotly chart has drawn."""
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"
        " && document.querySelector('[data-testid=\"stMainBlockContainer\"]') !== null"
        " && !document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid=\"stAppRunningIcon\"]')",
        timeout=timeout,
    )


IDLE = (
    "() => document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state') === 'notRunning'"
    " && document.querySelector('[data-testid=\"stMainBlockContainer\"]') !== null"
    " && document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"
    " && !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')"
    " && !document.querySelector('[data-stale=\"true\"]')"
)


def idle(page, timeout: float = 30_000) -> None:
    """Until the script run is over (the app root's ``data-test-script-state`` is
    ``notRunning``): no running icon, no skeleton, no stale (faded) element.

    Call it after waiting for something the run must show; right after a click the
    rerun may not have started yet.
    """
    page.wait_for_function(IDLE, timeout=timeout)


def open_page(page, server: StudioServer, name: str, timeout: float = 60_000) -> float:
    """Go to a page by URL and wait until its main content is visible; returns the seconds taken."""
    t = time.perf_counter()
    page.goto(server.url(name))
    if name in READY:
        page.wait_for_function(f"() => {READY[name]}", timeout=timeout)
    else:
        page.wait_for_selector("h1", state="visible", timeout=timeout)
    if name == "graph" and page.locator('iframe[title="KP graph"]').count():
        graph_canvas(page, timeout)
    settled(page, timeout)
    return time.perf_counter() - t


def graph_canvas(page, timeout: float = 30_000):
    """The vis.js canvas inside the pyvis iframe, once drawn."""
    frame = page.frame_locator('iframe[title="KP graph"]')
    canvas = frame.locator("canvas").first
    canvas.wait_for(state="visible", timeout=timeout)
    return canvas


def exceptions(page) -> list[str]:
    return page.locator('[data-testid="stException"]').all_inner_texts()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def tall_screenshot(page, name: str, max_height: int = 8000) -> Path:
    """Like :func:`screenshot`, but of the whole page: Streamlit scrolls inside its main
    section, so ``full_page`` alone stops at the viewport. The viewport is stretched to
    the content's height for the picture, then put back."""
    size = page.viewport_size or {"width": 1400, "height": 1600}
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]'); return m ? m.scrollHeight : 0; }")
    if height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, max_height)})
        page.wait_for_timeout(250)
    try:
        return screenshot(page, name)
    finally:
        page.set_viewport_size(size)


def copy_db(src: str | Path, dst: str | Path) -> Path:
    """Copy a database file (its WAL, if any, and the results kept beside it: the KP graph,
    the summaries) for a test that must not touch the original."""
    dst = Path(dst)
    shutil.copy(src, dst)
    for suffix in ("-wal", "-shm"):
        if Path(str(src) + suffix).exists():
            shutil.copy(str(src) + suffix, str(dst) + suffix)
    if Path(str(src) + "-derived").is_dir():
        shutil.copytree(str(src) + "-derived", str(dst) + "-derived")
    return dst


# -- timings: python tests/browser_support.py --db PATH -----------------------------------


METRICS = ".st-key-preview_metrics"  # the preview's metric tiles (st.container(key="preview_metrics"))


def preview_seconds(page) -> tuple[float, float]:
    """Click Preview; seconds until the metric tiles changed, and until every chart and path is drawn."""
    tiles = page.locator(METRICS)
    before = tiles.first.inner_text() if tiles.count() else ""
    t = time.perf_counter()
    page.get_by_role("button", name="Preview").click()
    page.wait_for_function(
        "(b) => { const t = document.querySelector('.st-key-preview_metrics'); return t && t.innerText !== b; }",
        arg=before, timeout=60_000,
    )
    first = time.perf_counter() - t
    page.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot').length >= 3"
        " && document.querySelectorAll('[data-testid=\"stExpander\"]').length >= 10",
        timeout=60_000,
    )
    settled(page)
    return first, time.perf_counter() - t


def preview_rounds(page, server: StudioServer, previews: int) -> list[tuple[float, float]]:
    """Click Preview ``previews`` times on the sampling page, a new random seed each time."""
    open_page(page, server, "sampling")
    seed = page.get_by_role("spinbutton", name="Random seed")
    times = []
    for i in range(previews):
        if i:
            seed.fill(str(i))
            seed.press("Enter")
            page.wait_for_timeout(500)
            settled(page)
        times.append(preview_seconds(page))
    return times


def measure(db_path: str, rounds: int = 5, previews: int = 5) -> dict:
    """Page load times (URL to main content visible) and 1,000-path preview times on a database."""
    import statistics

    names = ["home", "seeds", "kps", "graph", "sampling"]
    out: dict = {"db": db_path, "cold_s": {}, "warm_median_s": {}, "warm_max_s": {}, "preview_s": []}
    with StudioServer(db_path, autoload=False) as server, chromium() as browser:
        page = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
        for name in names:
            out["cold_s"][name] = round(open_page(page, server, name), 2)
        runs: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(rounds):
            for name in names:
                runs[name].append(open_page(page, server, name))
        out["warm_median_s"] = {n: round(statistics.median(v), 2) for n, v in runs.items()}
        out["warm_max_s"] = {n: round(max(v), 2) for n, v in runs.items()}
        for table, everything in preview_rounds(page, server, previews):
            out["preview_s"].append({"metrics_table": round(table, 2), "all_drawn": round(everything, 2)})
    return out


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Time the Studio's pages in headless Chromium.")
    parser.add_argument("--db", required=True, help="a LinkQA database (e.g. the full MMLU, ingested and extracted)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.db, rounds=args.rounds), indent=2))

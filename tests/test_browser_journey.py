"""A curator's whole journey through the real Studio in headless Chromium, with a scripted model.

One test, one browser session, pages reached through the sidebar as a person would:

1. home, on an empty database (no autoload): load the bundled sample;
2. Knowledge points: re-extract every seed;
3. KP graph: the pyvis graph is drawn (a canvas inside its iframe);
4. Path sampling: a small preview, move the ``w_cov`` slider by keyboard, preview again
   (``kp_coverage`` changes), save the run;
5. Synthesis: pick that run, preview one bundle (the model's reasoning is shown), start
   the batch against a :class:`FakeOpenAI` server and wait for "Done:";
6. Review & export: accept a few items with the keyboard (A), download the accepted ones
   from the Export tab as JSONL and check each record's provenance.

The API key given to the app must never reach a page, the download, the server log or
the database file (and its WAL). Screenshots: ``test-artifacts/screenshots/journey_*.png``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_support import (  # noqa: E402
    PAGE_URLS,
    StudioServer,
    chromium,
    chromium_missing_reason,
    exceptions,
    graph_canvas,
    screenshot,
    idle,
    tall_screenshot,
)
from openai_server import Answer, FakeOpenAI  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_missing_reason() is not None, reason=str(chromium_missing_reason())),
]

KEY = "sk-test-journey-SECRET-123456"
MODEL = "fake-r1"
# A small preview, yet large enough for w_cov to matter: coverage c(v) only differs between
# KPs once some path has visited them, and the first dozen or so fresh-ledger paths over
# the sample's ~4,000 KPs are the same whatever w_cov is (at 4 paths kp_coverage is 0.0039
# for every w_cov from 0 to 5).
N_PATHS = 20
N_ITEMS = 8  # items wanted from the run: 4 bundles of 2, so 4 requests to the model
N_ACCEPT = 3
LONG = 60_000  # ms: the most any single step may take (loading the sample, a synthesis batch)
SHORT = 20_000

TITLES = {
    "home": "LinkQA Studio",  # "Home" in the sidebar
    "kps": "Knowledge points",
    "graph": "KP graph",
    "sampling": "Path sampling",
    "synthesis": "Synthesis",
    "review": "Review & export",
}


# -- the scripted model --------------------------------------------------------------------


def two_items(body) -> Answer:
    """Two valid multiple-choice items per prompt; the text depends on the prompt only."""
    prompt = body["messages"][-1]["content"]
    tag = hashlib.sha1(prompt.encode()).hexdigest()[:8]
    items = [{
        "question": f"Journey item {tag}-{i}: which choice links the path's ideas correctly?",
        "options": [f"first {tag}", f"second {tag}", f"third {tag}", f"fourth {tag}"],
        "answer": "B",
        "solution": f"Because the second choice ({tag}) joins both knowledge points.",
        "kps_used": ["first idea", "second idea"],
        "difficulty": 3 + i,
    } for i in range(2)]
    return Answer(json.dumps({"items": items}), reasoning_content=f"Thinking about bundle {tag} step by step.")


# -- helpers -------------------------------------------------------------------------------


class Journey:
    """The page, the server, and a numbered screenshot per step."""

    def __init__(self, page, server: StudioServer):
        self.page = page
        self.server = server
        self.shots = 0

    def shot(self, name: str) -> None:
        self.shots += 1
        self.no_secret_on_page()
        tall_screenshot(self.page, f"journey_{self.shots:02d}_{name}")

    def no_secret_on_page(self) -> None:
        assert KEY not in self.page.content(), "the API key is shown on a page"
        assert exceptions(self.page) == []

    def goto_sidebar(self, name: str) -> None:
        """Open a page from the sidebar (same browser session, as a curator would)."""
        link = self.page.locator(f'[data-testid="stSidebarNav"] a[href$="/{PAGE_URLS[name]}"]')
        link.click()
        self.page.wait_for_function(
            "(t) => { const h = document.querySelector('h1'); return h && h.innerText.trim() === t; }",
            arg=TITLES[name], timeout=LONG,
        )
        idle(self.page, LONG)

    def text_appears(self, pattern: str, timeout: float = SHORT):
        """The first element whose text matches the regex, once visible."""
        loc = self.page.get_by_text(re.compile(pattern)).first
        loc.wait_for(state="visible", timeout=timeout)
        return loc

    def choose(self, testid: str, label: str, option) -> str:
        """Open a selectbox or multiselect by its label, click the first option matching
        ``option`` (a regex or text), close the list; returns the option's text."""
        widget = self.page.locator(f'[data-testid="{testid}"]').filter(
            has=self.page.get_by_role("combobox", name=label, exact=True))
        widget.get_by_role("button", name="Open", exact=True).click()
        listbox = self.page.get_by_role("listbox", name=label)
        listbox.wait_for(state="visible", timeout=SHORT)
        choice = listbox.get_by_role("option", name=option).first
        text = choice.inner_text().strip()
        choice.click()
        if listbox.is_visible():  # a multiselect stays open
            self.page.keyboard.press("Escape")
        listbox.wait_for(state="hidden", timeout=SHORT)
        return text

    def metric(self, label: str) -> str:
        m = self.page.locator('[data-testid="stMetric"]').filter(
            has=self.page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(f"^{re.escape(label)}$")))
        return m.locator('[data-testid="stMetricValue"]').inner_text().strip()



def secret_free(path: Path) -> None:
    for f in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm")):
        if f.exists():
            assert KEY.encode() not in f.read_bytes(), f"the API key is stored in {f.name}"


# -- the journey ---------------------------------------------------------------------------


def test_curator_journey_from_empty_database_to_jsonl(tmp_path):
    t0 = time.perf_counter()
    db = tmp_path / "journey.db"
    # the FakeOpenAI server checks the key: a request without it gets a 401
    with FakeOpenAI(two_items, api_key=KEY, models=(MODEL,)) as srv, chromium() as browser:
        env = {"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": KEY, "LINKQA_MODEL": MODEL}
        with StudioServer(db, autoload=False, env=env) as server:
            context = browser.new_context(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
            page = context.new_page()
            j = Journey(page, server)
            try:
                _walk(j, srv, db, tmp_path)
            except BaseException:
                try:
                    screenshot(page, "journey_FAILED")
                except Exception:  # the page itself may be gone
                    pass
                print("---- streamlit log ----\n" + server.log())
                raise
            finally:
                context.close()
            assert KEY not in server.log(), "the API key is in the app's log"
        secret_free(db)
    seconds = time.perf_counter() - t0
    print(f"journey took {seconds:.1f} s")
    assert seconds < 180, f"the journey took {seconds:.0f} s (about 35 s is usual)"


def _walk(j: Journey, srv: FakeOpenAI, db: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = j.page

    # 1. home, empty database: load the bundled sample ------------------------------------------
    page.goto(j.server.url("home"))
    load = page.get_by_role("button", name="Load the bundled sample", exact=True)
    load.wait_for(state="visible", timeout=LONG)
    idle(page, LONG)
    assert j.metric("Seeds") == "0"
    assert "Configured (from environment)" in page.inner_text("body")
    j.shot("home_empty")
    load.click()
    j.text_appears(r"Loaded the bundled sample: 1,139 seeds added", LONG)
    idle(page, LONG)
    assert j.metric("Seeds") == "1,139"
    assert int(j.metric("Knowledge points").replace(",", "")) > 1000
    assert "Sample KP paths" in page.inner_text("body")  # the next step
    j.shot("home_loaded")

    # 2. knowledge points: the sample load extracted them; re-extract every seed ---------------
    j.goto_sidebar("kps")
    only_missing = page.get_by_role("checkbox", name="Only seeds without KPs")
    assert only_missing.is_checked()
    page.locator('[data-testid="stCheckbox"]').filter(has_text="Only seeds without KPs").locator("label").click()
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stCheckbox\"] input').checked", timeout=SHORT)
    idle(page)
    page.get_by_role("button", name="Extract knowledge points", exact=True).click()
    flash = j.text_appears(r"extractor: 1,139 seeds linked; [\d,]+ KPs in the database", LONG)
    n_kps = int(re.search(r"([\d,]+) KPs in the database", flash.inner_text()).group(1).replace(",", ""))
    assert n_kps > 1000
    idle(page, LONG)
    counts = page.get_by_text(re.compile(r"seeds, .* with KPs; .* KPs")).first.inner_text()
    assert f"{n_kps:,} KPs" in counts and "1,139 with KPs" in counts
    j.shot("kps_reextracted")

    # 3. KP graph: drawn in its iframe ------------------------------------------------------------
    j.goto_sidebar("graph")
    canvas = graph_canvas(page, LONG)
    box = canvas.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 300
    n_nodes = page.frame_locator('iframe[title="KP graph"]').locator("body").evaluate(
        "() => typeof nodes !== 'undefined' ? nodes.length : 0")
    assert n_nodes > 10
    page.wait_for_timeout(800)  # let the layout settle for the picture
    j.shot("graph")

    # 4. path sampling: small preview, move w_cov, preview again, save -----------------------------
    j.goto_sidebar("sampling")
    n_paths = page.get_by_role("spinbutton", name="Number of paths")
    n_paths.fill(str(N_PATHS))
    n_paths.press("Enter")
    page.wait_for_function(
        "(v) => [...document.querySelectorAll('input')].some(i => i.getAttribute('aria-label') === 'Number of paths'"
        " && i.value === v)", arg=str(N_PATHS), timeout=SHORT)
    idle(page)
    page.get_by_role("button", name="Preview", exact=True).click()
    j.text_appears(rf"Preview: {N_PATHS} paths", LONG)
    idle(page, LONG)
    assert j.metric("KP coverage").endswith("%")
    before = j.metric("KPs visited")  # exact, where the coverage tile rounds to 0.1 %
    assert int(before.replace(",", "")) > 0
    assert j.metric("Paths") == str(N_PATHS)
    j.shot("sampling_preview")

    w_cov = page.locator('[data-testid="stSlider"]').filter(has_text="Coverage: favour KPs not yet visited")
    thumb = w_cov.locator('input[type="range"]')
    assert thumb.input_value() == "1"
    thumb.focus()
    for _ in range(20):  # 20 steps of 0.05: w_cov 1.00 -> 0.00 (coverage left out of V)
        page.keyboard.press("ArrowLeft")
    value = w_cov.get_by_test_id("stSliderThumbValue")
    page.wait_for_function("(el) => el.innerText.trim() === '0.00'", arg=value.element_handle(), timeout=SHORT)
    moved = value.inner_text().strip()
    j.text_appears(r"The settings changed since", SHORT)
    idle(page)
    page.get_by_role("button", name="Preview", exact=True).click()
    page.wait_for_function(
        "() => !document.body.innerText.includes('The settings changed since')", timeout=LONG)
    idle(page, LONG)
    after = j.metric("KPs visited")
    assert after != before, f"KPs visited {before} -> {after} after w_cov 1.00 -> {moved}"
    j.shot("sampling_w_cov")

    page.get_by_role("button", name="Save as run", exact=True).click()
    saved = j.text_appears(r"Saved as run \d+", SHORT)
    run_id = int(re.search(r"run (\d+)", saved.inner_text()).group(1))
    idle(page)
    assert page.get_by_role("button", name="Save as run", exact=True).is_disabled()
    j.shot("sampling_saved")

    # home: the next step is now synthesis, with the configured model
    j.goto_sidebar("home")
    assert j.metric("Saved runs") == "1" and j.metric("Saved paths") == str(N_PATHS)
    body = page.inner_text("body")
    assert "Synthesise QA" in body and "offline composer" in body
    assert f"Synthesis will ask the model {MODEL} at the configured endpoint" in body
    j.shot("home_next_synthesis")

    # 5. synthesis: pick the run, preview one bundle, run the batch on the scripted model -----------
    j.goto_sidebar("synthesis")
    j.text_appears(rf"Model `?{MODEL}`? at 1 endpoint", SHORT)
    j.choose("stSelectbox", "Run", re.compile(rf"^run {run_id} ·"))
    expect(page.get_by_role("combobox", name="Run", exact=True)).to_have_value(
        re.compile(rf"^run {run_id} · "), timeout=SHORT)
    j.text_appears(rf"^{N_PATHS} paths · 0 items", SHORT)
    idle(page)
    assert j.metric("Requests") == str(N_PATHS)  # default: every bundle, 2 items each
    wanted = page.get_by_role("spinbutton", name="Items wanted")
    wanted.fill(str(N_ITEMS))
    wanted.press("Enter")
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('[data-testid=\"stMetric\"]')].some("
        "m => m.innerText.includes('Requests') && m.querySelector('[data-testid=\"stMetricValue\"]').innerText.trim() === n)",
        arg=str(N_ITEMS // 2), timeout=SHORT)
    idle(page)

    page.get_by_role("button", name="Preview prompt and answer", exact=True).click()
    reasoning = page.locator('[data-testid="stExpander"]').filter(has_text="Model reasoning")
    reasoning.wait_for(state="visible", timeout=LONG)
    idle(page)
    reasoning.locator("summary").click()
    thought = j.text_appears(r"Thinking about bundle [0-9a-f]{8}", SHORT)
    page.wait_for_function("(el) => el.getBoundingClientRect().height > 10", arg=thought.element_handle(),
                           timeout=SHORT)  # the expander has finished opening
    assert page.get_by_text(re.compile(r"^Journey item [0-9a-f]{8}-0")).count() >= 1
    n_preview = len(srv.chat_requests)
    assert n_preview >= 1
    j.shot("synthesis_preview")

    page.get_by_role("button", name="Start synthesis", exact=True).click()
    done = j.text_appears(r"Done: [\d,]+ of [\d,]+ items synthesised by", LONG)
    assert f"Done: {N_ITEMS} of {N_ITEMS} items synthesised by {MODEL}" in done.inner_text()
    n_batch = len(srv.chat_requests) - n_preview
    assert N_ITEMS // 2 - 1 <= n_batch <= N_ITEMS // 2  # the previewed bundle may come from the cache
    sent = srv.chat_requests[-1]
    assert sent.json["model"] == MODEL
    assert sent.headers.get("authorization") == f"Bearer {KEY}"
    secret_free(db)
    idle(page)
    j.shot("synthesis_done")

    # 6. review & export: accept a few with the keyboard, download the accepted ones ----------------
    j.goto_sidebar("review")
    j.text_appears(rf"to review {N_ITEMS}", SHORT)
    chosen = []
    for _ in range(N_ACCEPT):
        card = j.text_appears(r"^Item #\d+ · ", SHORT).inner_text()
        chosen.append("#" + re.match(r"Item #(\d+)", card).group(1))
        page.keyboard.press("a")  # accept; the card moves on to the next item
        page.wait_for_function("(c) => ![...document.querySelectorAll('[data-testid=\"stCaptionContainer\"]')]"
                               ".some(e => e.innerText.trim() === c)", arg=card.strip(), timeout=SHORT)
        idle(page)
    assert len(set(chosen)) == N_ACCEPT, chosen
    j.text_appears(rf"accepted {N_ACCEPT}", SHORT)

    page.get_by_role("tab", name="Export").click()
    items_radio = page.get_by_role("radiogroup", name="Which items", exact=True)
    items_radio.wait_for(state="visible", timeout=SHORT)
    items_radio.locator('[data-testid="stRadioOption"]').filter(has_text="Everything").click()
    j.text_appears(rf"Download {N_ITEMS} item\(s\) as JSONL", SHORT)
    idle(page)
    items_radio.locator('[data-testid="stRadioOption"]').filter(has_text="Accepted only").click()
    download_button = page.get_by_role("button", name=f"Download {N_ACCEPT} item(s) as JSONL", exact=True)
    download_button.wait_for(state="visible", timeout=SHORT)
    idle(page)
    j.shot("review_accepted")

    with page.expect_download(timeout=SHORT) as info:
        download_button.click()
    download = info.value
    assert download.suggested_filename == f"linkqa-run{run_id}-accepted-records.jsonl"
    target = tmp_path / download.suggested_filename
    download.save_as(str(target))
    raw = target.read_text(encoding="utf-8")
    assert KEY not in raw, "the API key is in the export"
    lines = [line for line in raw.splitlines() if line.strip()]
    assert len(lines) == N_ACCEPT
    ids = set()
    for line in lines:
        rec = json.loads(line)
        assert rec["question"].startswith("Journey item ")
        assert rec["options"] and len(rec["options"]) == 4
        assert rec["answer"] == rec["options"][1] and rec["answer_letter"] == "B"
        assert rec["status"] == "accepted"
        prov = rec["provenance"]
        assert prov["run_id"] == run_id
        assert prov["model"] == MODEL and prov["offline"] is False
        assert prov["seed_ids"], rec
        ids.add(f"#{prov['item_id']}")
    assert ids == set(chosen)
    secret_free(db)
    j.shot("review_downloaded")

    # home: every stage has something; the next step is the export
    j.goto_sidebar("home")
    assert j.metric("QA items") == str(N_ITEMS)
    assert "Export accepted QA" in page.inner_text("body")
    j.shot("home_done")

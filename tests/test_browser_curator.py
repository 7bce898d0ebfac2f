"""What a curator does in the real Studio, in headless Chromium.

- the review queue with the keyboard only: ten items decided, one edited, the export
  checked for the edit record;
- a seed file planted with HTML, Markdown links and images, autolinks and script tags:
  on every page, nothing from it becomes an element, a request or a dialog;
- a CSV with the columns ``Prompt, Choice1..Choice4, Key, Area``, mapped by guessing;
- renaming a KP: the curator's spelling is kept and the confirmation shows beside the form;
- subjects matched to disciplines in a table the curator corrects before importing.

Screenshots go to ``test-artifacts/screenshots/curator_*.png``.
"""

from __future__ import annotations

import json
import re
import sqlite3
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
    idle,
    open_page,
    tall_screenshot,
)

from linkqa_core.curation.review import edit_item  # noqa: E402
from linkqa_core.graph.sampling import sample  # noqa: E402
from linkqa_core.graph.walks import WalkParams  # noqa: E402
from linkqa_core.ingest.load import ingest  # noqa: E402
from linkqa_core.kps.curate import kp_table, rename_kp  # noqa: E402
from linkqa_core.kps.extract import run_extraction  # noqa: E402
from linkqa_core.store import Store  # noqa: E402
from linkqa_core.synthesis.run import SynthesisConfig, synthesize  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_missing_reason() is not None, reason=str(chromium_missing_reason())),
]

SHORT = 20_000
LONG = 60_000


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def new_page(browser, height: int = 1100):
    return browser.new_context(viewport={"width": 1400, "height": height}, accept_downloads=True).new_page()


def with_items(db: Path, n_paths: int = 8) -> int:
    """The sample's seeds and KPs are there (autoload); add a run with offline items."""
    with Store(db) as store:
        run_id = sample(store, WalkParams(), n_paths, seed=4, save=True, name="queue").run_id
        synthesize(store, run_id, SynthesisConfig(per_bundle=2))
    return run_id


def card_item(page) -> int:
    caption = page.get_by_text(re.compile(r"^Item #\d+ · \d+ of \d+ in this queue$")).first
    caption.wait_for(state="visible", timeout=SHORT)
    return int(re.match(r"Item #(\d+)", caption.inner_text()).group(1))


def press(page, key: str) -> None:
    page.keyboard.press(key)
    page.wait_for_timeout(250)
    idle(page)


# -- the review queue, keyboard only -------------------------------------------------------------


def test_review_queue_by_keyboard_only_ten_decisions_one_edit_and_the_export(tmp_path, browser):
    db = tmp_path / "queue.db"
    with StudioServer(db, autoload=True) as server:
        page = new_page(browser)
        open_page(page, server, "home")  # the first visit loads the bundled sample
        run_id = with_items(db)
        open_page(page, server, "review")
        first = card_item(page)
        plan = ["a", "x", "a", "a", "x", "a", "a", "x", "a"]  # nine decisions by key, the tenth with the edit
        decided: dict[int, str] = {}
        for key in plan:
            here = card_item(page)
            press(page, key)
            decided[here] = "accepted" if key == "a" else "rejected"
            page.wait_for_function("(n) => !document.body.innerText.includes(`Item #${n} · `)", arg=here,
                                   timeout=SHORT)  # auto-advance: the card moved on
        press(page, "ArrowRight")  # skip one without deciding
        skipped = card_item(page)
        press(page, "ArrowLeft")
        press(page, "ArrowRight")
        assert card_item(page) == skipped
        press(page, "s")
        edited = card_item(page)
        assert edited != skipped
        press(page, "e")
        page.get_by_label("Solution").wait_for(state="visible", timeout=SHORT)
        for _ in range(150):  # Tab to the solution box: no mouse
            if page.evaluate("() => document.activeElement && document.activeElement.getAttribute('aria-label')")\
                    == "Solution":
                break
            page.keyboard.press("Tab")
        else:
            pytest.fail("the Solution box cannot be reached with Tab")
        page.keyboard.press("Control+End")
        page.keyboard.type(" Checked by a curator.")
        idle(page)
        page.keyboard.press("Control+Enter")  # in the form: save and accept
        saved = page.get_by_text(re.compile(rf"Item #{edited} saved .* and accepted"))
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            saved.wait_for(timeout=SHORT)
        except PlaywrightTimeout:
            # seen in full-suite runs: the message never showed, and a second press did not help —
            # the save's one-shot message was lost when another event interrupted the run that took
            # it (the card's last decision now stays in view); if the key was not taken, press again
            page.keyboard.press("Control+Enter")
            saved.wait_for(timeout=LONG)
        idle(page)
        decided[edited] = "accepted"
        tall_screenshot(page, "curator_queue_keyboard")
        assert exceptions(page) == []

        with sqlite3.connect(db) as conn:
            status = dict(conn.execute("SELECT id, status FROM items WHERE run_id = ?", (run_id,)).fetchall())
            solution, original = conn.execute("SELECT solution, original FROM items WHERE id = ?",
                                              (edited,)).fetchone()
        assert len(decided) == 10 and first in decided
        assert {i: status[i] for i in decided} == decided
        assert status[skipped] == "generated"
        assert solution.endswith("Checked by a curator.") and json.loads(original)["solution"] + " Checked by a " \
            "curator." == solution

        page.get_by_role("tab", name="Export").click()
        radio = page.get_by_role("radiogroup", name="Which items", exact=True)
        radio.wait_for(state="visible", timeout=SHORT)
        accepted = sum(1 for s in decided.values() if s == "accepted")
        button = page.get_by_role("button", name=f"Download {accepted} item(s) as JSONL", exact=True)
        button.wait_for(state="visible", timeout=SHORT)
        with page.expect_download(timeout=SHORT) as info:
            button.click()
        rows = [json.loads(x) for x in Path(info.value.path()).read_text(encoding="utf-8").splitlines() if x]
        by_id = {r["provenance"]["item_id"]: r for r in rows}
        assert set(by_id) == {i for i, s in decided.items() if s == "accepted"}
        prov = by_id[edited]["provenance"]
        assert prov["edited"] is True and prov["edited_at"] and prov["original"]["solution"] + \
            " Checked by a curator." == by_id[edited]["solution"]
        assert all(not r["provenance"]["edited"] for i, r in by_id.items() if i != edited)


# -- nothing from data renders as markup ----------------------------------------------------------

TRAP = "127.0.0.1:9"  # nothing listens there: a request to it can only come from planted text
PLANTED = (
    "Click to re-login [here](http://127.0.0.1:9/planted-md-link) "
    "![logo](http://127.0.0.1:9/planted-md-image.png) "
    "<img id=\"planted-img\" src=\"http://127.0.0.1:9/planted-html-image.png\"> "
    "<img id=\"planted-onerror\" src=\"x\" onerror=\"alert('planted-onerror')\"> "
    "<script>alert('planted-script')</script> "
    "<b id=\"planted-b\">bold</b> <a id=\"planted-a\" href=\"http://127.0.0.1:9/planted-a\">login</a> "
    "https://127.0.0.1:9/planted-autolink www.planted-www.example planted@planted-mail.example "
    ":red[planted-red] :material/warning: $\\planted$ **planted-bold** <iframe src=\"http://127.0.0.1:9/planted-frame\">"
)


def planted_file(path: Path) -> Path:
    rows = []
    for i in range(6):
        options = [f"{PLANTED} option {j}" for j in range(4)]
        rows.append({"question": f"Photosynthesis and chlorophyll question {i}: {PLANTED}",
                     "options": options, "answer": options[i % 4],
                     "subject": f"<b>biology</b> [x](http://127.0.0.1:9/planted-subject-{i})"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


PLANTED_SELECTOR = ("[id^='planted'], a[href*='planted'], img[src*='planted'], iframe[src*='planted'], "
                    "[href*='127.0.0.1:9'], [src*='127.0.0.1:9'], .katex")


def planted_elements(page) -> list[str]:
    """Elements in the page or any of its frames that planted markup would have made."""
    found = []
    for frame in page.frames:
        try:
            found += frame.evaluate(
                "(sel) => [...document.querySelectorAll(sel)].map(e => e.outerHTML.slice(0, 120))", PLANTED_SELECTOR)
            # data inside a script (pyvis's nodes, JSON with < escaped) is fine; a planted script is not
            found += frame.evaluate(
                "() => [...document.querySelectorAll('script')].filter(s => (s.textContent || '').includes("
                "\"alert('planted\")).map(s => s.outerHTML.slice(0, 80))")
        except Exception:  # a frame that went away meanwhile
            continue
    return found


def test_planted_markup_stays_text_on_every_page(tmp_path, browser):
    db = tmp_path / "planted.db"
    with StudioServer(db, autoload=True) as server:
        page = new_page(browser, height=1600)
        requests: list[str] = []
        dialogs: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        open_page(page, server, "home")

        # the planted file goes in through the upload, with its subjects matched to disciplines
        open_page(page, server, "seeds")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
            str(planted_file(tmp_path / "planted.jsonl")))
        page.get_by_role("button", name="Import").wait_for(state="visible", timeout=LONG)
        idle(page)
        page.get_by_role("button", name="Import").click()
        page.get_by_text(re.compile(r"planted\.jsonl: 6 seeds added")).wait_for(timeout=LONG)
        idle(page)
        tall_screenshot(page, "curator_planted_seeds")
        assert planted_elements(page) == []

        # as the command line could store them: a discipline written as markup, KPs named in markup,
        # model output carrying markup
        with Store(db) as store:
            ingest(store, json.dumps({"question": "Which pigment absorbs red light?", "answer": "chlorophyll",
                                      "discipline": PLANTED}).encode() + b"\n", filename="cli.jsonl")
            run_extraction(store)
            top = kp_table(store, limit=1)[0]["name"]
            rename_kp(store, top, f"{PLANTED} kp")
            run_id = sample(store, WalkParams(), 12, seed=1, save=True, name=PLANTED[:40]).run_id
            synthesize(store, run_id, SynthesisConfig(per_bundle=1))
            first = store.items.ids(run_id, ["generated"])[0]
            edit_item(store, first, solution=f"Model says: {PLANTED}")

        for name in ("home", "seeds", "kps", "graph", "sampling", "synthesis", "review"):
            open_page(page, server, name)
            if name == "graph":
                graph_canvas(page)
                page.wait_for_timeout(500)
            if name == "sampling":
                page.get_by_role("button", name="Preview").click()
                page.wait_for_selector(".st-key-preview_metrics", timeout=LONG)
                idle(page)
                for summary in page.locator('[data-testid="stExpander"] summary').all()[:6]:
                    summary.click()
                idle(page)
            if name == "synthesis":
                page.get_by_role("button", name="Preview prompt and answer").click()
                page.get_by_text("Prompt", exact=True).first.wait_for(timeout=LONG)
                idle(page)
            if name == "review":
                for summary in page.locator('[data-testid="stExpander"] summary').all():
                    summary.click()
                idle(page)
                page.get_by_role("tab", name="Export").click()
                radio = page.get_by_role("radiogroup", name="Which items")
                radio.wait_for(timeout=SHORT)
                radio.locator('[data-testid="stRadioOption"]').filter(has_text="Everything").click()
                record = page.locator('[data-testid="stExpander"]').filter(has_text="The first record")
                record.wait_for(timeout=SHORT)
                idle(page)
                record.locator("summary").click()
                idle(page)
            assert exceptions(page) == [], name
            assert planted_elements(page) == [], name
            tall_screenshot(page, f"curator_planted_{name}")
        assert "Click to re-login" in page.content()  # the planted text is there, as text
        assert [u for u in requests if TRAP in u or "planted" in u] == []
        assert dialogs == []


# -- a CSV mapped by guessing ------------------------------------------------------------------------

QUIZ_CSV = (b"Prompt,Choice1,Choice2,Choice3,Choice4,Key,Area\n"
            b"What is the SI unit of force?,joule,newton,watt,pascal,B,physics\n"
            b"Which organelle makes ATP?,nucleus,ribosome,mitochondrion,vacuole,C,biology\n"
            b"What is 2 + 2?,3,4,5,6,B,mathematics\n")


def test_quiz_csv_is_mapped_by_guessing_and_imports(tmp_path, browser):
    db = tmp_path / "quiz.db"
    csv = tmp_path / "quiz.csv"
    csv.write_bytes(QUIZ_CSV)
    with StudioServer(db, autoload=False) as server:
        page = new_page(browser, height=1400)
        open_page(page, server, "seeds")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(csv))
        page.get_by_role("button", name="Import").wait_for(state="visible", timeout=LONG)
        idle(page)
        for label, column in (("Question", "Prompt"), ("Answer", "Key"), ("Subject", "(none)"), ("Discipline", "Area")):
            box = page.get_by_role("combobox", name=label, exact=True)
            assert box.input_value() == column, f"{label}: {box.input_value()!r}"
        chips = page.locator('[data-testid="stMultiSelectTagsContainer"] [data-tag]').all_inner_texts()
        assert [c.strip() for c in chips] == [f"Choice{i}" for i in range(1, 5)]  # whole names, in order
        tall_screenshot(page, "curator_quiz_mapping")
        page.get_by_role("button", name="Import").click()
        page.get_by_text(re.compile(r"quiz\.csv: 3 seeds added")).wait_for(timeout=LONG)
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT answer, discipline FROM seeds ORDER BY question").fetchall()
        assert rows == [("4", "Mathematics"), ("newton", "Physics"), ("mitochondrion", "Biology")]


def test_an_open_tab_uploads_after_the_studio_restarts(tmp_path, browser):
    """A curator's tab stays open while the studio restarts: the reconnected tab (the new
    process's first session) maps and imports an upload like a fresh one."""
    db = tmp_path / "restart.db"
    csv = tmp_path / "quiz.csv"
    csv.write_bytes(QUIZ_CSV)
    server = StudioServer(db, autoload=False).start()
    try:
        page = new_page(browser, height=1400)
        open_page(page, server, "seeds")
        server.stop()
        with page.expect_websocket(timeout=LONG):  # the open tab reconnects to the new process
            server.start()  # on the same port
        page.get_by_role("heading", name="Seeds").first.wait_for(timeout=LONG)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(csv))
        page.get_by_role("button", name="Import").wait_for(state="visible", timeout=LONG)
        idle(page)
        page.get_by_role("button", name="Import").click()
        page.get_by_text(re.compile(r"quiz\.csv: 3 seeds added")).wait_for(timeout=LONG)
    finally:
        server.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM seeds").fetchone()[0] == 3


def test_long_option_column_names_show_whole_in_the_mapping(tmp_path, browser):
    """The options selector shows full column names (no "hoice3")."""
    db = tmp_path / "chips.db"
    csv = tmp_path / "long.csv"
    names = [f"answer_option_number_{i}_with_a_long_name" for i in "abcd"]
    csv.write_text("question,correct," + ",".join(names) + "\nWhat is 1+1?,2,1,2,3,4\n", encoding="utf-8")
    with StudioServer(db, autoload=False) as server:
        page = new_page(browser, height=1300)
        open_page(page, server, "seeds")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(csv))
        page.get_by_role("button", name="Import").wait_for(state="visible", timeout=LONG)
        idle(page)
        options = page.locator('[data-testid="stMultiSelect"]')
        options.get_by_role("combobox").click()
        for name in names:
            page.get_by_role("option", name=name, exact=True).click()
        page.keyboard.press("Escape")
        idle(page)
        tags = options.locator('[data-testid="stMultiSelectTagsContainer"] [data-tag]')
        assert tags.count() == 4
        for i in range(4):  # every chip shows its whole name: nothing cut off
            assert tags.nth(i).inner_text().strip() == names[i]
            assert tags.nth(i).evaluate("(t) => [...t.querySelectorAll('span')].every("
                                        "s => s.scrollWidth <= s.clientWidth + 1)"), names[i]
        caption = page.get_by_text(re.compile(r"^A = answer_option_number_a_with_a_long_name"))
        assert caption.count() == 1
        tall_screenshot(page, "curator_long_option_names")


# -- rename a KP -------------------------------------------------------------------------------------


def test_rename_keeps_the_spelling_and_confirms_beside_the_form(tmp_path, browser):
    db = tmp_path / "rename.db"
    with StudioServer(db, autoload=True) as server:
        page = new_page(browser, height=1100)
        open_page(page, server, "home")
        with Store(db) as store:
            old = kp_table(store, limit=5)[2]["name"]
        open_page(page, server, "kps")
        form = page.locator('[data-testid="stForm"]').filter(has_text="Rename a KP")
        form.scroll_into_view_if_needed()
        form.get_by_role("combobox", name="KP").click()
        page.get_by_role("option", name=old, exact=True).click()
        form.get_by_label("New name (an existing name merges the two)").fill("Le Chatelier's Principle")
        form.get_by_role("button", name="Rename").click()
        notice = page.get_by_text(f"Renamed '{old}' to 'Le Chatelier's Principle'.")
        notice.wait_for(state="visible", timeout=SHORT)
        idle(page)
        f, n = form.bounding_box(), notice.bounding_box()
        assert 0 <= n["y"] - (f["y"] + f["height"]) < 120, "the confirmation sits right under the rename form"
        assert abs(n["x"] - f["x"]) < 40
        assert notice.evaluate("(e) => { const r = e.getBoundingClientRect(); "
                               "return r.top >= 0 && r.bottom <= window.innerHeight; }"), "in view without scrolling"
        tall_screenshot(page, "curator_rename")
        with Store(db) as store:
            names = [r["name"] for r in kp_table(store, limit=50)]
        assert "Le Chatelier's Principle" in names and old not in names  # as the curator wrote it


# -- subjects matched to disciplines ------------------------------------------------------------------


def test_subjects_are_matched_to_disciplines_and_the_curator_corrects_one(tmp_path, browser):
    db = tmp_path / "disciplines.db"
    csv = tmp_path / "subjects.csv"
    csv.write_text(
        "question,answer,subject\n"
        "What is the pH of pure water at 25 C?,7,organic chemistry\n"
        "Which market structure has one seller?,monopoly,ECONOMICS AND BUSINESS\n"
        "What is 7 times 8?,56,Maths\n"
        "How many strands are in a basket weave?,three,Underwater basket weaving\n"
        "Which organ pumps blood?,the heart,Medicine and Health\n"
        "What is the derivative of x squared?,2x,Maths\n", encoding="utf-8")
    with StudioServer(db, autoload=False) as server:
        page = new_page(browser, height=1300)
        open_page(page, server, "seeds")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(csv))
        page.get_by_text("5 distinct values in column subject; 1 with no good match (proposed: Other)").wait_for(
            timeout=LONG)
        idle(page)
        table = page.locator('[data-testid="stDataFrame"]').last  # drawn on a canvas: checked by what it imports
        # rows: most rows first, then by value; "Underwater basket weaving" is the 4th; edit its discipline
        table.scroll_into_view_if_needed()
        box = table.bounding_box()
        header = 35
        page.mouse.dblclick(box["x"] + box["width"] * 0.70, box["y"] + header + 3 * 35 + 17)
        page.wait_for_timeout(800)  # the cell's option list opens
        page.keyboard.type("Engineering")
        page.wait_for_timeout(300)
        page.keyboard.press("Enter")
        page.wait_for_timeout(500)
        idle(page)
        tall_screenshot(page, "curator_disciplines")
        page.get_by_role("button", name="Import").click()
        page.get_by_text(re.compile(r"subjects\.csv: 6 seeds added")).wait_for(timeout=LONG)
        with sqlite3.connect(db) as conn:
            got = dict(conn.execute("SELECT DISTINCT subject, discipline FROM seeds").fetchall())
        assert got == {"organic chemistry": "Chemistry", "ECONOMICS AND BUSINESS": "Economics & Business",
                       "Maths": "Mathematics", "Underwater basket weaving": "Engineering",
                       "Medicine and Health": "Medicine & Health"}


def test_a_ray_jobs_progress_follows_its_manifest_without_a_click(tmp_path, browser):
    import time

    db, storage = tmp_path / "ray.db", tmp_path / "storage"
    with StudioServer(db, autoload=True) as server:
        page = new_page(browser)
        open_page(page, server, "home")  # the first visit loads the bundled sample
        with Store(db) as store:
            run_id = sample(store, WalkParams(), 6, seed=2, save=True).run_id
            run = store.runs.get(run_id)
            store.runs.update(run_id, config={**run.config, "backend": {"kind": "ray", "storage": str(storage)}},
                              status="synthesizing")

        def manifest(done: int) -> None:  # what the job's driver rewrites about once a second
            (storage / f"run-{run_id}").mkdir(parents=True, exist_ok=True)
            (storage / f"run-{run_id}" / "manifest.json").write_text(json.dumps({"updated_at": time.time(), "synthesis": {
                "state": "running", "asked": 400, "done": done, "failed": 1, "in_flight": 16, "tokens": 1234}}))

        manifest(10)
        open_page(page, server, "synthesis")
        page.get_by_text("On the cluster").wait_for(timeout=SHORT)
        page.get_by_text("10 / 400").wait_for(timeout=SHORT)
        manifest(250)  # no click, no reload: the panel rereads the manifest by itself
        page.get_by_text("250 / 400").wait_for(timeout=SHORT)
        assert exceptions(page) == []

"""Pages 5 (Synthesis) and 6 (Review & export) under Streamlit's AppTest, offline.

Every button a curator presses here is pressed: start, stop, enhance, apply gates; on the
review page accept, reject, edit, skip, next and previous, the bulk actions with their
confirmation, the filters, and the export tab. What a press changes is read back from the
database, not from the page.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from studio.jobs import JOBS
from linkqa_core.curation.export import item_records
from linkqa_core.curation.review import CURATOR_REASON, set_status
from linkqa_core.graph.sampling import sample
from linkqa_core.graph.walks import WalkParams
from linkqa_core.store import Store
from linkqa_core.synthesis.run import SynthesisConfig, synthesize

ROOT = Path(__file__).resolve().parents[1]
SYNTH = "pages/5_Synthesis.py"
REVIEW = "pages/6_Review_and_export.py"


@pytest.fixture
def db_with_run(_sample_db_template, tmp_path, monkeypatch) -> Path:
    path = tmp_path / "studio.db"
    shutil.copy(_sample_db_template, path)
    with Store(path) as store:
        sample(store, WalkParams(), 6, seed=2, save=True, name="six paths")
    monkeypatch.setenv("LINKQA_DB", str(path))
    for key in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LINKQA_MODEL"):
        monkeypatch.delenv(key, raising=False)
    return path


@pytest.fixture
def db_with_items(db_with_run) -> Path:
    """Run 1 with 12 offline items (2 per path), none decided."""
    with Store(db_with_run) as store:
        synthesize(store, 1, SynthesisConfig(per_bundle=2))
    return db_with_run


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(markdown: str) -> str:
    """Markdown as read: without the escapes and word joiners of ``ui.plain``."""
    return re.sub(r"\\(.)", r"\1", str(markdown)).replace("\u2060", "")


def statuses(db: Path) -> dict[int, str]:
    with Store(db) as store:
        return {int(r[0]): r[1] for r in store.query("SELECT id, status FROM items ORDER BY id")}


def card_item(at: AppTest) -> int:
    """The id of the item on the review card (its caption says "Item #N · k of n …")."""
    caption = next(c.value for c in at.caption if shown(c.value).startswith("Item #"))
    return int(re.match(r"Item #(\d+)", shown(caption)).group(1))


def job_for(db: Path, kind: str):
    key = f"{kind}:{db.resolve()}:1"
    job = JOBS.get(key)
    assert job is not None, f"no {kind} job started"
    return job


# -- synthesis ----------------------------------------------------------------------------------------


def test_synthesis_page_without_runs_points_to_path_sampling(_sample_db_template, tmp_path, monkeypatch):
    path = tmp_path / "norun.db"
    shutil.copy(_sample_db_template, path)
    monkeypatch.setenv("LINKQA_DB", str(path))
    at = run_page(SYNTH)
    assert any("No saved run yet" in i.value for i in at.info)


def test_synthesis_page_says_offline_and_estimates_cost(db_with_run):
    at = run_page(SYNTH)
    assert any("offline composer" in i.value for i in at.info)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests"] == "6" and metrics["Cost (estimate)"] == "free (offline)"


def test_bad_template_is_explained_and_blocks_the_run(db_with_run):
    at = run_page(SYNTH)
    next(t for t in at.text_area if t.label == "Prompt template").set_value("{kps} {seeds} {nonsense}").run()
    assert any("unknown field(s) {nonsense}" in shown(e.value) for e in at.error)
    assert at.button(key="start_synth").disabled


def test_preview_shows_prompt_and_items_without_storing(db_with_run):
    at = run_page(SYNTH)
    at.button(key="preview_btn").click().run()
    preview = at.session_state["synth_preview"]
    assert "Seed 1" in preview["prompt"] and preview["items"]
    assert any(preview["items"][0]["question"] == t.value for t in at.text)  # shown as plain text
    with Store(db_with_run) as store:
        assert store.scalar("SELECT count(*) FROM items") == 0


def test_starting_synthesis_runs_in_the_background_and_the_page_reattaches(db_with_run):
    at = run_page(SYNTH)
    at.button(key="start_synth").click().run()
    job = job_for(db_with_run, "synth")
    job.thread.join(60)
    assert job.error is None and job.result.items_ok == 12
    again = run_page(SYNTH)  # a reload: the finished job is found again, with one counter
    done = [shown(s.value) for s in again.success]
    assert any("Done: 12 of 12 items synthesised by offline-composer" in d for d in done), done


def test_stop_button_stops_a_running_synthesis_and_says_how_far_it_got(db_with_run):
    at = run_page(SYNTH)
    at.number_input(key="target_items").set_value(200_000).run()
    at.button(key="start_synth").click().run()
    job = job_for(db_with_run, "synth")
    assert job.running, "the batch ended before Stop could be pressed"
    at.run()
    at.button(key="stop_synth").click().run()
    job.thread.join(60)
    assert job.result.stopped == "stopped by the curator"
    assert job.result.items_ok < 200_000
    with Store(db_with_run) as store:
        stored = store.items.good_count(1)
        assert store.runs.get(1).status == "stopped"
    at.run()
    warning = " ".join(shown(w.value) for w in at.warning)
    assert f"with {stored:,} of 200,000 items" in warning and "start again" in warning


def test_enhance_button_rewrites_items_and_reports_as_metrics(db_with_items):
    at = run_page(SYNTH)
    editor = at.data_editor
    assert editor and list(editor[0].value.columns) == ["discipline", "1", "2", "3", "4", "5"]
    at.button(key="enhance_btn").click().run()
    job = job_for(db_with_items, "enhance")
    job.thread.join(120)
    assert job.error is None, job.error
    at.run()
    at.run()
    assert not at.exception
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Rewrites kept"] == f"{job.result.kept:,}"
    assert not any("{" in shown(t.value) and "'kept'" in shown(t.value) for t in at.markdown)  # no Python reprs
    with Store(db_with_items) as store:
        rewrites = store.scalar("SELECT count(*) FROM items WHERE parent_id IS NOT NULL")
    assert rewrites == job.result.attempted
    if job.result.eliminated:
        assert any("were not kept" in w.value for w in at.warning)


def test_apply_gates_button_warns_with_the_rejections_as_a_table(db_with_items):
    with Store(db_with_items) as store:  # plant an exact duplicate of item 1 as item 2
        first = store.items.get(1)
        store.query("SELECT 1")
        with store.transaction() as conn:
            conn.execute("UPDATE items SET question = ?, options = (SELECT options FROM items WHERE id = 1),"
                         " answer = ? WHERE id = 2", (first.question, first.answer))
    at = run_page(SYNTH)
    at.button(key="gates_btn").click().run()
    assert not at.exception
    assert not at.success, "rejections must not be shown as a success"
    assert any("The gates rejected" in w.value for w in at.warning)
    table = next(df.value for df in at.dataframe if "items rejected" in df.value.columns)
    assert "exact duplicate" in set(table["gate"])
    assert statuses(db_with_items)[2] == "rejected"


def test_apply_gates_with_nothing_to_reject_says_so(db_with_items):
    at = run_page(SYNTH)
    at.slider(key="near_dup").set_value(1.0)
    at.button(key="gates_btn").click().run()
    rejected = [s for s in statuses(db_with_items).values() if s == "rejected"]
    if rejected:
        assert any("The gates rejected" in w.value for w in at.warning)
    else:
        assert any("Every item passed" in s.value for s in at.success)


# -- review: the queue -----------------------------------------------------------------------------


def test_review_queue_opens_on_the_first_undecided_item_with_its_card(db_with_items):
    at = run_page(REVIEW)
    assert card_item(at) == 1
    table = at.dataframe[0].value
    assert list(table.columns[:4]) == ["#", "status", "gate reason", "question"]  # the gate reason is in view
    assert len(table) == 12
    with Store(db_with_items) as store:
        item = store.items.get(1)
    assert item.question in [t.value for t in at.text]  # the question as plain text, not Markdown
    assert any(e.label.startswith("Path of") for e in at.expander)
    assert at.get("imgs") or at.get("image"), "the path is drawn"
    shortcuts = {b.key: b.proto.shortcut for b in at.button if b.key and b.key.startswith("q_")}
    assert shortcuts == {"q_prev": "left", "q_skip": "s", "q_next": "right", "q_accept": "a", "q_reject": "x",
                         "q_edit": "e", "q_undo": "u"}


def test_accept_decides_the_item_and_moves_on(db_with_items):
    at = run_page(REVIEW)
    at.button(key="q_accept").click().run()
    assert statuses(db_with_items)[1] == "accepted"
    assert card_item(at) == 2
    assert any("Item #1 accepted" in shown(s.value) for s in at.success)
    assert len(at.dataframe[0].value) == 11  # the default queue is "to review": #1 left it


def test_the_last_decision_stays_in_view_until_the_next_one(db_with_items):
    """A one-shot message is lost when a second event interrupts the run that took it; the
    queue's last decision is shown on every run until the next decision replaces it."""
    at = run_page(REVIEW)
    at.button(key="q_accept").click().run()
    at.button(key="q_next").click().run()  # a run with no decision in it
    assert any("Item #1 accepted" in shown(s.value) for s in at.success)
    at.button(key="q_reject").click().run()
    messages = [shown(m.value) for m in [*at.success, *at.warning, *at.info]]
    assert not any("Item #1 accepted" in m for m in messages)
    assert any("Item #3 rejected" in m for m in messages), messages


def test_reject_records_the_curator_and_warns(db_with_items):
    at = run_page(REVIEW)
    at.button(key="q_next").click().run()
    assert card_item(at) == 2
    at.button(key="q_reject").click().run()
    with Store(db_with_items) as store:
        item = store.items.get(2)
    assert item.status == "rejected" and item.gate_reason == CURATOR_REASON
    assert any("Item #2 rejected" in shown(w.value) for w in at.warning)
    assert card_item(at) == 3


def test_skip_next_and_previous_move_without_deciding(db_with_items):
    at = run_page(REVIEW)
    at.button(key="q_skip").click().run()
    at.button(key="q_next").click().run()
    assert card_item(at) == 3
    at.button(key="q_prev").click().run()
    assert card_item(at) == 2
    assert set(statuses(db_with_items).values()) == {"generated"}
    assert at.button(key="q_prev").disabled is False


def test_undecided_puts_an_item_back_to_review(db_with_items):
    with Store(db_with_items) as store:
        set_status(store, [1], "accepted")
    at = run_page(REVIEW)
    at.multiselect(key="rv_status").set_value(["accepted"]).run()
    assert card_item(at) == 1
    at.button(key="q_undo").click().run()
    assert statuses(db_with_items)[1] == "generated"


def test_clicking_a_row_opens_that_item(db_with_items):
    at = run_page(REVIEW)
    table_ids = list(at.dataframe[0].value["#"])
    at.session_state["rv_table"] = {"selection": {"rows": [4], "columns": [], "cells": []}}
    at.run()
    assert card_item(at) == table_ids[4]


def test_edit_is_saved_with_the_original_kept_and_exported(db_with_items):
    at = run_page(REVIEW)
    at.button(key="q_edit").click().run()
    solution = next(t for t in at.text_area if t.label == "Solution")
    solution.set_value("A curator's worked solution.")
    next(b for b in at.button if b.label == "Save and accept").click().run()
    assert not at.exception
    with Store(db_with_items) as store:
        item = store.items.get(1)
        assert item.solution == "A curator's worked solution." and item.status == "accepted"
        assert item.edited and item.original["solution"] != item.solution and item.edited_at
        records = list(item_records(store, 1, fmt="records", status="accepted"))
        messages = list(item_records(store, 1, fmt="messages", status="accepted"))
    assert [r["provenance"]["edited"] for r in records] == [True]
    assert records[0]["provenance"]["original"]["solution"] == item.original["solution"]
    assert [m["role"] for m in messages[0]["messages"]] == ["user", "assistant"]
    assert "A curator's worked solution." in messages[0]["messages"][1]["content"]
    assert messages[0]["metadata"]["edited"] is True
    assert not any("provenance" in m["content"] or "run_id" in m["content"] for m in messages[0]["messages"])
    assert card_item(at) == 2  # saved and accepted: on to the next item
    at.multiselect(key="rv_status").set_value(["accepted"]).run()
    assert card_item(at) == 1
    assert any(e.label == "As generated, before the edit" for e in at.expander)
    assert any("Edited by a curator" in shown(c.value) for c in at.caption)


def test_edit_refuses_an_answer_outside_the_options(db_with_items):
    at = run_page(REVIEW)
    at.button(key="q_edit").click().run()
    next(t for t in at.text_input if t.label.startswith("Answer")).set_value("not an option at all")
    next(b for b in at.button if b.label == "Save").click().run()
    assert any("is not one of the" in shown(e.value) for e in at.error)
    with Store(db_with_items) as store:
        assert not store.items.get(1).edited


# -- review: filters and bulk actions --------------------------------------------------------------


def test_filters_narrow_the_queue_and_stay_put(db_with_items):
    with Store(db_with_items) as store:
        set_status(store, [3, 4], "rejected", reason="near-duplicate of item 1 (Jaccard 0.91)")
        set_status(store, [5], "rejected", reason="question too long (5000 > 4000 characters)")
        disc = store.items.get(6).discipline
        word = store.items.get(6).question.split()[-1]
    at = run_page(REVIEW)
    at.multiselect(key="rv_status").set_value(["rejected"]).run()
    assert list(at.dataframe[0].value["#"]) == [3, 4, 5]
    gate = at.selectbox(key="rv_gate")
    assert gate.options[1] == "near-duplicate of item … (Jaccard …)"  # most frequent first
    gate.set_value("near-duplicate of item … (Jaccard …)").run()
    assert list(at.dataframe[0].value["#"]) == [3, 4]
    at.button(key="q_next").click().run()  # a decision or a move keeps the filters
    assert at.multiselect(key="rv_status").value == ["rejected"]
    assert list(at.dataframe[0].value["#"]) == [3, 4]
    at.selectbox(key="rv_gate").set_value("(any)")
    at.multiselect(key="rv_status").set_value(["generated"])
    at.selectbox(key="rv_disc").set_value(disc).run()
    assert set(at.dataframe[0].value["discipline"]) == {disc}
    at.text_input(key="rv_search").set_value(word).run()
    assert 6 in list(at.dataframe[0].value["#"])
    at.switch_page(SYNTH).run()
    at.switch_page(REVIEW).run()  # back from another page: the same filters
    assert at.text_input(key="rv_search").value == word and at.selectbox(key="rv_disc").value == disc


def test_bulk_accept_asks_for_confirmation_with_the_count(db_with_items):
    at = run_page(REVIEW)
    at.text_input(key="rv_search").set_value("United").run()  # some of the 12 items, not all
    n = len(at.dataframe[0].value)
    assert 0 < n < 12
    at.button(key="bulk_accept").click().run()
    assert set(statuses(db_with_items).values()) == {"generated"}, "nothing changes before the confirmation"
    confirm = at.button(key="bulk_confirm")
    assert confirm.label == f"Accept {n:,} item(s)"
    confirm.click().run()
    assert list(statuses(db_with_items).values()).count("accepted") == n
    assert any(f"Accepted: {n:,} item(s)" in shown(s.value) for s in at.success)


def test_bulk_reject_can_be_cancelled_then_confirmed(db_with_items):
    at = run_page(REVIEW)
    at.button(key="bulk_reject").click().run()
    at.button(key="bulk_cancel").click().run()
    assert set(statuses(db_with_items).values()) == {"generated"}
    at.button(key="bulk_reject").click().run()
    at.button(key="bulk_confirm").click().run()
    assert set(statuses(db_with_items).values()) == {"rejected"}
    assert any("Rejected: 12 item(s)" in shown(w.value) for w in at.warning)
    assert any("No item matches" in i.value for i in at.info)


# -- export ------------------------------------------------------------------------------------------


def test_export_tab_names_the_status_filter_and_counts(db_with_items):
    with Store(db_with_items) as store:
        set_status(store, [1, 2, 3], "accepted")
        set_status(store, [4], "rejected", reason="curator")
    at = run_page(REVIEW)
    at.session_state["review_tab"] = "Export"
    at.run()
    which = at.radio(key="exp_status")
    assert which.options == ["Accepted only", "Accepted and not yet reviewed",
                             "Everything, rejected and replaced items too"]
    assert list(which.proto.captions) == ["3 item(s)", "11 item(s)", "12 item(s)"]
    assert "Download 3 item(s) as JSONL" in at.get("download_button")[0].proto.label
    which.set_value("all").run()
    assert "Download 12 item(s) as JSONL" in at.get("download_button")[0].proto.label
    at.radio(key="exp_fmt").set_value("messages").run()
    assert not any(c.language == "json" for c in at.code)  # built only when its expander is opened
    at.session_state["first_record_open"] = True
    at.run()
    first = json.loads(next(c.value for c in at.code if c.language == "json"))
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["metadata"]["status"] in ("accepted", "generated", "rejected")


def test_history_compares_two_runs_settings(db_with_run):
    with Store(db_with_run) as store:
        sample(store, WalkParams(w_cov=3.0), 6, seed=2, save=True, name="cov")
    at = run_page(REVIEW)
    rows = at.dataframe[-1].value
    assert "config" in set(rows["section"]) and "w_cov" in set(rows["setting / metric"])


# -- a job on a Ray cluster: its progress from the manifest -----------------------------------------


def _on_ray(db: Path, storage: Path) -> None:
    with Store(db) as store:
        run = store.runs.get(1)
        store.runs.update(1, config={**run.config, "backend": {"kind": "ray", "storage": str(storage)}},
                          status="synthesizing")


def _manifest(storage: Path, **synthesis) -> None:
    import time

    folder = storage / "run-1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({
        "run_id": 1, "updated_at": time.time(),
        "synthesis": {"state": "running", "asked": 400, "done": 120, "failed": 3, "in_flight": 64, "requests": 187,
                      "cached": 5, "tokens": 91234, **synthesis}}))


def test_a_job_on_ray_shows_its_progress_from_the_manifest_and_follows_it(db_with_run, tmp_path):
    storage = tmp_path / "storage"
    _on_ray(db_with_run, storage)
    _manifest(storage)
    at = run_page(SYNTH)
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Done"], metrics["In flight"], metrics["Failed"], metrics["Tokens"]) == ("120 / 400", "64", "3",
                                                                                             "91,234")
    assert any("synthesis running: 120 of 400 requests done" in str(p.proto.text) for p in at.get("progress"))
    _manifest(storage, state="finished", done=400, in_flight=0)
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Done"], metrics["In flight"]) == ("400 / 400", "0")


def test_a_run_on_ray_without_a_manifest_yet_says_so_and_a_local_run_shows_no_panel(db_with_run, tmp_path):
    at = run_page(SYNTH)
    assert not any(s.value == "On the cluster" for s in at.subheader)
    _on_ray(db_with_run, tmp_path / "empty")
    at = run_page(SYNTH)
    assert any("no progress is recorded there yet" in i.value for i in at.info)


def test_a_stalled_job_on_ray_is_called_out(db_with_run, tmp_path):
    import time

    storage = tmp_path / "storage"
    _on_ray(db_with_run, storage)
    _manifest(storage)
    path = storage / "run-1" / "manifest.json"
    data = json.loads(path.read_text())
    data["updated_at"] = time.time() - 600
    path.write_text(json.dumps(data))
    at = run_page(SYNTH)
    assert any("has not reported for 10 min" in w.value for w in at.warning)

"""Pages 5 (Synthesis) and 6 (Review & export) under Streamlit's AppTest, offline and with a scripted model."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from studio.jobs import JOBS
from linkqa_core.curation.review import list_items, set_status
from linkqa_core.graph.sampling import sample
from linkqa_core.store import Store
from linkqa_core.synthesis.run import SynthesisConfig, synthesize
from linkqa_core.graph.walks import WalkParams

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


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


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
    assert any("unknown field(s) {nonsense}" in e.value for e in at.error)
    assert at.button(key="start_synth").disabled


def test_preview_shows_prompt_and_items_without_storing(db_with_run):
    at = run_page(SYNTH)
    at.button(key="preview_btn").click().run()
    preview = at.session_state["synth_preview"]
    assert "Seed 1" in preview["prompt"] and preview["items"]
    with Store(db_with_run) as store:
        assert store.scalar("SELECT count(*) FROM items") == 0


def test_starting_synthesis_runs_in_the_background_and_the_page_reattaches(db_with_run):
    at = run_page(SYNTH)
    at.button(key="start_synth").click().run()
    key = f"synth:{str(db_with_run.resolve())}:1"
    job = JOBS.get(key) or next(j for k, j in JOBS._jobs.items() if k.endswith(":1") and str(db_with_run) in k)
    job.thread.join(60)
    assert job.error is None and job.result.items_ok == 12
    again = run_page(SYNTH)  # a reload: the finished job is found again
    assert any("Done: 12 items" in s.value for s in again.success)


def test_review_page_accepts_edits_and_exports(db_with_run):
    with Store(db_with_run) as store:
        synthesize(store, 1, SynthesisConfig(per_bundle=2))
    at = run_page(REVIEW)
    assert len(at.dataframe[0].value) == 12
    first_ids = at.multiselect(key="chosen_ids").options[:3]
    at.multiselect(key="chosen_ids").set_value([int(i.strip("#")) for i in first_ids]).run()
    at.button(key="accept_sel").click().run()
    with Store(db_with_run) as store:
        assert len(list_items(store, 1, status="accepted")) == 3
    at = run_page(REVIEW)
    at.radio(key="exp_status").set_value("accepted").run()
    assert "Download 3 item(s) (accepted)" in at.get("download_button")[0].proto.label


def test_review_edit_refuses_an_answer_outside_the_options(db_with_run):
    with Store(db_with_run) as store:
        synthesize(store, 1, SynthesisConfig(per_bundle=1))
    at = run_page(REVIEW)
    form_answer = next(t for t in at.text_input if t.label == "Answer")
    form_answer.set_value("not an option at all")
    next(b for b in at.button if b.label == "Save edits").click().run()
    assert any("is not one of the" in e.value for e in at.error)


def test_history_compares_two_runs_settings(db_with_run):
    with Store(db_with_run) as store:
        sample(store, WalkParams(w_cov=3.0), 6, seed=2, save=True, name="cov")
    at = run_page(REVIEW)
    rows = at.dataframe[-1].value
    assert "config" in set(rows["section"]) and "w_cov" in set(rows["setting / metric"])

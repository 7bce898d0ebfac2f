"""The Studio's home page and pages 1–4, run headless with Streamlit's AppTest.

Each test points ``LINKQA_DB`` at its own database file; the bundled sample is loaded
once per module and copied, so tests that merge or save do not disturb each other.
"""

from __future__ import annotations

import re
import os
import shutil
import sys
from pathlib import Path

import pytest

from linkqa_core.kps.names import normalize_kp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from studio import ui as studio_ui  # noqa: E402
from studio import drawing, support, uploads, words  # noqa: E402
from linkqa_core.errors import InputError  # noqa: E402
from linkqa_core.graph.build import build_graph  # noqa: E402
from linkqa_core.kps.curate import kp_table, merge_kps, rename_kp  # noqa: E402
from linkqa_core.graph.metrics import METRIC_NAMES  # noqa: E402
from linkqa_core.ingest.load import ingest, sample_path  # noqa: E402
from linkqa_core.store import Store  # noqa: E402

PAGES = {name: path for name, path in studio_ui.PAGES.items() if name != "home"}
SECRET = "sk-test-DO-NOT-SHOW-0123456789abcdef"

GOOD_CSV = (
    b"question,answer_a,answer_b,answer_c,correct_answer,topic\n"
    b"What is the SI unit of force?,newton,joule,watt,A,high school physics\n"
    b"Which gas do plants take in for photosynthesis?,oxygen,carbon dioxide,nitrogen,B,high school biology\n"
    b"Who wrote the Republic?,,,,,philosophy\n"
)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory) -> Path:
    """The bundled sample, ingested and extracted once for the module."""
    path = tmp_path_factory.mktemp("sample") / "sample.db"
    with Store(path) as store:
        support.load_sample(store)
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in ("LINKQA_DB", "LINKQA_AUTOLOAD_SAMPLE", "OPENAI_API_KEY", "OPENAI_BASE_URL", "LINKQA_MODEL"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def db(tmp_path, sample_db, monkeypatch) -> Path:
    """A private copy of the sample database, served by the app."""
    path = tmp_path / "studio.db"
    shutil.copy(sample_db, path)
    monkeypatch.setenv("LINKQA_DB", str(path))
    return path


@pytest.fixture
def empty_db(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "empty.db"
    monkeypatch.setenv("LINKQA_DB", str(path))
    return path


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    if page:
        at.switch_page(PAGES.get(page, page))
        at.run()
    assert_ok(at)
    return at


def assert_ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def shown(markdown: str) -> str:
    """A Markdown string as the curator reads it: data goes through ``ui.plain``, whose
    backslash escapes and invisible word joiners are not part of the text."""
    return re.sub(r"\\(.)", r"\1", str(markdown)).replace("\u2060", "")


def texts(at: AppTest) -> str:
    """Every text the page shows (markdown, captions, alerts, titles, code, plain text, metrics), as read."""
    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "success", "info", "warning", "error", "code", "text"):
        parts += [shown(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    return "\n".join(parts)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


FRAMES = {  # a dataframe is found by its columns (display-only dataframes keep no key)
    "bad_rows": ["line", "reason"],
    "seeds_table": ["question", "answer"],
    "kp_table": ["name", "freq"],
}


def frame(at: AppTest, name: str):
    want = FRAMES[name]
    for df in at.dataframe:
        value = df.value
        if list(value.columns[: len(want)]) == want:
            return value
    raise AssertionError(f"no {name} dataframe on the page")


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


# -- home ----------------------------------------------------------------------------------


def test_home_shows_counts_and_next_step(db):
    at = open_app()
    assert at.title[0].value == "LinkQA Studio"
    assert metric(at, "Seeds") == "1,139"
    assert int(metric(at, "Knowledge points").replace(",", "")) > 1000
    assert str(db) in texts(at)
    assert "Sample KP paths" in texts(at)
    assert not any(b.key == "load_sample" for b in at.button)


def test_home_offers_the_sample_and_loads_it(empty_db):
    at = open_app()
    assert metric(at, "Seeds") == "0"
    load = at.button(key="load_sample")
    load.click().run()
    assert_ok(at)
    assert metric(at, "Seeds") == "1,139"
    assert "Loaded the bundled sample" in texts(at)
    assert not any(b.key == "load_sample" for b in at.button)


def test_home_autoloads_the_sample_when_asked(empty_db, monkeypatch):
    monkeypatch.setenv("LINKQA_AUTOLOAD_SAMPLE", "1")
    at = open_app()
    assert metric(at, "Seeds") == "1,139"
    assert int(metric(at, "Knowledge points").replace(",", "")) > 1000


def test_home_without_llm_settings_says_so(db):
    at = open_app()
    assert "No LLM endpoint configured" in texts(at)
    assert at.button(key="test_connection").disabled



def use_endpoint(monkeypatch, base_url: str, model: str) -> None:
    """Configure the app's LLM endpoint through the environment, with the test key."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("LINKQA_MODEL", model)

def test_home_never_shows_the_key(db, monkeypatch):
    use_endpoint(monkeypatch, "http://127.0.0.1:9/v1", "tiny-model")
    at = open_app()
    shown = texts(at)
    assert "Configured (from environment)" in shown
    assert "set (hidden)" in shown and "tiny-model" in shown
    assert SECRET not in shown
    assert not at.button(key="test_connection").disabled


def test_home_reads_llm_settings_from_secrets(db):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["OPENAI_API_KEY"] = SECRET
    at.secrets["LINKQA_MODEL"] = "model-from-secrets"
    at.run()
    assert_ok(at)
    shown = texts(at)
    assert "Configured (from secrets.toml)" in shown and "model-from-secrets" in shown
    assert SECRET not in shown


def test_test_connection_succeeds_against_a_local_endpoint(db, monkeypatch):
    from openai_server import FakeOpenAI

    with FakeOpenAI(api_key=SECRET, models=("tiny-model",)) as server:
        use_endpoint(monkeypatch, server.base_url, "tiny-model")
        at = open_app()
        at.button(key="test_connection").click().run(timeout=60)
        assert_ok(at)
        assert at.success and not at.error
        assert SECRET not in texts(at)


def test_test_connection_failure_is_shown_without_the_key(db, monkeypatch):
    from openai_server import FakeOpenAI

    with FakeOpenAI(api_key="the-right-key") as server:  # answers 401 quoting the key it got
        use_endpoint(monkeypatch, server.base_url, "fake-model")
        at = open_app()
        at.button(key="test_connection").click().run(timeout=60)
        assert_ok(at)
        assert at.error
        assert SECRET not in texts(at)


def test_secrets_mapping_is_read_and_key_scrubbed():
    config = support.llm_config({}, {"llm": {"api_key": SECRET, "model": "m", "base_url": "http://x/v1"}})
    assert config["configured"] and config["has_key"] and config["model"] == "m"
    assert config["origin"]["OPENAI_API_KEY"] == "secrets.toml"
    env_wins = support.llm_config({"LINKQA_MODEL": "from-env"}, {"LINKQA_MODEL": "from-secrets"})
    assert env_wins["model"] == "from-env"
    assert SECRET not in support._scrub(f"bad key {SECRET}", config)


# -- page 1: seeds -------------------------------------------------------------------------------


def test_upload_guesses_mapping_and_reports_bad_rows(empty_db):
    at = open_app("seeds")
    at.file_uploader(key="seed_upload").set_value(("physics.csv", GOOD_CSV, "text/csv")).run()
    assert_ok(at)
    mapped = {s.label: s.value for s in at.selectbox}
    assert mapped["Question"] == "question"
    assert mapped["Answer"] == "correct_answer"
    assert mapped["Subject"] == "topic"
    assert at.multiselect[0].value == ["answer_a", "answer_b", "answer_c"]
    assert "A = answer_a · B = answer_b · C = answer_c" in " ".join(texts(at).split())
    button(at, "Import").click().run()
    assert_ok(at)
    assert "2 seeds added" in shown(at.success[0].value)
    bad = frame(at, "bad_rows")
    assert list(bad.columns) == ["line", "reason"]
    assert bad.iloc[0]["line"] == 4 and "answer" in bad.iloc[0]["reason"]
    assert "2 matching seeds" in texts(at)


def test_mapping_can_be_corrected_before_import(empty_db):
    data = b"prompt,reply,area\nWhat is 2+2?,4,elementary mathematics\nName a noble gas.,neon,high school chemistry\n"
    at = open_app("seeds")
    at.file_uploader(key="seed_upload").set_value(("odd.csv", data, "text/csv")).run()
    by_label = {s.label: s for s in at.selectbox}
    assert by_label["Answer"].value == "(none)"  # 'reply' is not a known answer column
    by_label["Answer"].set_value("reply")
    by_label["Subject"].set_value("area").run()
    button(at, "Import").click().run()
    assert_ok(at)
    assert "2 seeds added" in shown(at.success[0].value)
    with Store(empty_db) as store:
        assert {r[0] for r in store.query("SELECT discipline FROM seeds")} == {"Mathematics", "Chemistry"}


def test_bad_upload_shows_the_engines_error(empty_db):
    data = b"\x00\x01\x02\x03 not a seed file \xff\xfe" * 20
    with pytest.raises(InputError) as raised:
        uploads.preview_upload(data, "broken.jsonl")
    at = open_app("seeds")
    at.file_uploader(key="seed_upload").set_value(("broken.jsonl", data, "application/json")).run()
    assert_ok(at)
    assert [shown(e.value) for e in at.error] == [str(raised.value)]
    assert not any(b.label == "Import" for b in at.button)


def test_unusable_mapping_shows_the_error_and_imports_nothing(empty_db):
    at = open_app("seeds")
    at.file_uploader(key="seed_upload").set_value(("physics.csv", GOOD_CSV, "text/csv")).run()
    next(s for s in at.selectbox if s.label == "Answer").set_value("(none)").run()
    button(at, "Import").click().run()
    assert_ok(at)
    assert "no answer column found" in shown(at.error[0].value)
    with Store(empty_db) as store:
        assert store.seeds.count() == 0


def test_bundled_sample_button_on_seeds_page(empty_db):
    at = open_app("seeds")
    assert "No seeds yet" in texts(at)
    at.button(key="seeds_load_sample").click().run()
    assert_ok(at)
    assert "1,139 seeds added" in shown(at.success[0].value)
    assert "Every row was usable" in texts(at)


def test_seed_table_filters_and_pages(db):
    at = open_app("seeds")
    assert len(frame(at, "seeds_table")) == 50
    assert "1,139 matching seeds" in texts(at)
    at.multiselect(key="f_discipline").set_value(["Physics"]).run()
    with Store(db) as store:
        physics = store.scalar("SELECT count(*) FROM seeds WHERE discipline = 'Physics'")
    assert f"{physics:,} matching seeds" in texts(at)
    assert set(frame(at, "seeds_table")["discipline"]) == {"Physics"}
    at.text_input(key="f_search").set_value("zzzz-no-such-text").run()
    assert "0 matching seeds" in texts(at)
    assert_ok(at)


# -- page 2: knowledge points ---------------------------------------------------------------------


def test_extraction_runs_from_the_page(empty_db):
    with Store(empty_db) as store:
        ingest(store, sample_path())
    at = open_app("kps")
    assert "No knowledge points yet" in texts(at)
    at.button(key="run_extraction").click().run(timeout=120)
    assert_ok(at)
    assert "offline extractor: 1,139 seeds linked" in shown(at.success[0].value)
    assert len(frame(at, "kp_table")) == 100


def test_llm_extractor_is_disabled_with_a_reason(db):
    at = open_app("kps")
    at.radio(key="extractor").set_value("llm").run()
    assert_ok(at)
    ok, why = support.llm_extractor_status(support.llm_config({}, {}))
    assert not ok
    assert at.button(key="run_extraction").disabled
    assert why in texts(at)


def test_llm_extractor_is_offered_when_configured(db, monkeypatch):
    use_endpoint(monkeypatch, "http://127.0.0.1:9/v1", "tiny-model")
    at = open_app("kps")
    at.radio(key="extractor").set_value("llm").run()
    assert_ok(at)
    assert not at.button(key="run_extraction").disabled
    assert SECRET not in texts(at)


def test_merge_kps_changes_the_table(db):
    at = open_app("kps")
    table = frame(at, "kp_table")
    a, b = table["name"].iloc[5], table["name"].iloc[6]
    freq_a, freq_b = int(table["freq"].iloc[5]), int(table["freq"].iloc[6])
    at.multiselect(key="merge_sources").set_value([a, b])
    at.text_input(key="merge_target").set_value("merged test concept")
    button(at, "Merge").click().run()
    assert_ok(at)
    assert "Merged" in shown(at.success[0].value)
    names = list(frame(at, "kp_table")["name"])
    assert a not in names and b not in names
    assert "merged test concept" in names
    with Store(db) as store:
        row = kp_table(store, search="merged test concept")[0]
    assert freq_a <= row["freq"] <= freq_a + freq_b


def test_rename_kp_from_the_page(db):
    at = open_app("kps")
    old = frame(at, "kp_table")["name"].iloc[0]
    at.selectbox(key="rename_old").set_value(old)
    at.text_input(key="rename_new").set_value("Renamed Concept")
    button(at, "Rename").click().run()
    assert_ok(at)
    names = list(frame(at, "kp_table")["name"])
    assert "Renamed Concept" in names and old not in names  # the curator's spelling is shown


def test_merge_needs_two_kps(db):
    at = open_app("kps")
    at.multiselect(key="merge_sources").set_value([frame(at, "kp_table")["name"].iloc[0]])
    button(at, "Merge").click().run()
    assert_ok(at)
    assert "at least two KPs" in shown(at.error[0].value)


def test_kp_search(db):
    at = open_app("kps")
    at.text_input(key="kp_search").set_value("theory").run()
    names = frame(at, "kp_table")["name"]
    assert len(names) > 0 and all("theory" in normalize_kp(n) for n in names)  # label or matching key


# -- page 3: KP graph ---------------------------------------------------------------------------


def iframe_html(at: AppTest) -> str:
    frames = at.get("iframe")
    assert frames, "no iframe drawn"
    return frames[0].proto.srcdoc


def test_graph_page_draws_top_kps_offline(db):
    at = open_app("graph")
    html = iframe_html(at)
    assert "vis.Network" in html and "new vis.DataSet" in html
    assert "cdn.jsdelivr" not in html and "cdnjs.cloudflare" not in html
    assert "**Drawn:** 100 KPs" in texts(at)
    assert metric(at, "KPs") == f"{build_graph(Store(db)).n_nodes:,}"


@pytest.mark.parametrize("view", ["One discipline", "Around a KP", "A sampled path"])
def test_graph_page_views(db, view):
    at = open_app("graph")
    at.radio(key="g_view").set_value(view).run()
    assert_ok(at)
    html = iframe_html(at)
    assert "vis.Network" in html
    if view == "A sampled path":
        assert "Path: " in texts(at)
        assert "#d62728" in html  # the path is highlighted
        at.button(key="g_next_path").click().run()
        assert_ok(at)


def test_graph_page_neighbourhood_of_a_searched_kp(db):
    at = open_app("graph")
    at.radio(key="g_view").set_value("Around a KP").run()
    with Store(db) as store:
        name = kp_table(store, limit=30)[-1]["name"]
    at.text_input(key="g_search").set_value(name.upper()).run()  # exact match first, any case
    assert_ok(at)
    assert f"'{name}' and its neighbours" in texts(at)
    at.radio(key="g_hops").set_value(2).run()
    assert_ok(at)
    at.text_input(key="g_search").set_value("zzzz-no-such-kp").run()
    assert "No KP name contains" in shown(at.warning[0].value)


def test_graph_page_community_colours(db):
    at = open_app("graph")
    at.radio(key="g_colour").set_value("community").run()
    assert_ok(at)
    assert "community 1" in iframe_html(at)


def test_graph_page_path_of_a_saved_run(db):
    at = open_app("sampling")
    at.button(key="preview").click().run()
    at.button(key="save_run").click().run()
    at.switch_page(PAGES["graph"]).run()
    at.radio(key="g_view").set_value("A sampled path").run()
    at.radio(key="g_path_source").set_value("From a saved run").run()
    assert_ok(at)
    assert "Path: " in texts(at)


# -- page 4: path sampling ------------------------------------------------------------------------


def metrics_table(at: AppTest):
    """The preview's numbers (the "All the numbers" table), indexed by the metric's name."""
    for df in at.dataframe:
        if list(df.value.columns[:2]) == ["metric", "measure"]:
            return df.value.set_index("metric")
    raise AssertionError("no metrics table")


def test_sliders_come_from_knobs_in_words_with_their_names_in_the_help(db):
    from linkqa_core.graph.walks import KNOBS

    at = open_app("sampling")
    knob_sliders = at.slider[: len(KNOBS)]
    assert [s.key for s in knob_sliders] == [f"knob_{k[0]}" for k in KNOBS]
    assert [s.label for s in knob_sliders] == [words.knob_label(k[0]) for k in KNOBS]
    for (name, *_), slider in zip(KNOBS, knob_sliders):
        assert "_" not in slider.label or name == slider.label, slider.label  # words, not the knob's name
        assert f"`{name}`" in slider.help and len(slider.help.split()) > 8
    assert words.knob_label("w_cov") == "Coverage: favour KPs not yet visited"
    assert not any(m.label == "KP coverage" for m in at.metric)
    assert "press **Preview**" in shown(at.info[0].value)
    assert "exp((*V*" in texts(at)  # the formula, in its expander


def test_metric_tiles_are_words_with_the_exact_definition_and_the_linkage_metrics(db):
    at = open_app("sampling")
    at.button(key="preview").click().run()
    tiles = {m.label: m for m in at.metric}
    for name in ("kp_coverage", "bundle_share_2plus", "bundle_share_3plus", "bundles_below_min_seeds",
                 "mean_shared_kps", "discipline_tv_distance"):
        label, definition, _, _ = words.METRIC_WORDS[name]
        assert "_" not in label
        assert label in tiles and definition in tiles[label].proto.help and f"`{name}`" in tiles[label].proto.help
    assert tiles["KP coverage"].value.endswith("%")
    assert "vs uniform" in tiles["KP coverage"].proto.body or tiles["KP coverage"].proto.delta


def test_discipline_shares_always_add_up_to_100(db):
    at = open_app("sampling")
    shares = {s.key: s for s in at.slider if s.key.startswith("share_")}
    assert len(shares) >= 10
    assert abs(sum(s.value for s in shares.values()) - 100) < 0.05
    at.slider(key="share_Mathematics").set_value(50.0).run()
    assert_ok(at)
    now = {s.key: s.value for s in at.slider if s.key.startswith("share_")}
    assert now["share_Mathematics"] == 50.0
    assert abs(sum(now.values()) - 100) < 0.05
    assert "In all: 100.0 %" in texts(at)
    at.button(key="preview").click().run()
    assert_ok(at)
    targets = at.session_state["sample_preview"]["result"].metrics["target_shares"]
    assert abs(targets["Mathematics"] - 0.5) < 0.001  # the walk was asked for what the sliders show


def test_preview_shows_metrics_paths_and_saves_a_run(db):
    at = open_app("sampling")
    at.button(key="preview").click().run()
    assert_ok(at)
    table = metrics_table(at)
    assert set(METRIC_NAMES) <= set(table.index)
    assert list(table.columns) == ["measure", "value walk", "uniform baseline", "difference"]
    assert table.loc["kp_coverage", "measure"] == "KP coverage"
    assert table.loc["n_paths", "value walk"] == 1000
    assert len(at.expander) >= 10
    assert "names" in texts(at)  # bundle seeds are listed with their link strength
    at.text_input(key="run_name").set_value("from the test")
    at.button(key="save_run").click().run()
    assert_ok(at)
    assert "Saved as run 1." in [shown(s.value) for s in at.success]
    with Store(db) as store:
        run = store.runs.get(1)
        assert run.name == "from the test"
        assert store.scalar("SELECT count(*) FROM paths WHERE run_id = 1") == 1000
    assert at.button(key="save_run").disabled


def test_moving_a_knob_changes_the_metrics(db):
    at = open_app("sampling")
    at.number_input(key="n_paths").set_value(300)
    at.button(key="preview").click().run()
    before = metrics_table(at)["value walk"].copy()
    at.slider(key="knob_w_cov").set_value(4.0).run()
    assert "settings changed" in texts(at)
    at.button(key="preview").click().run()
    after = metrics_table(at)["value walk"]
    assert after.loc["kp_coverage"] != before.loc["kp_coverage"]


def test_inconsistent_knobs_show_the_engines_error(db):
    at = open_app("sampling")
    at.slider(key="knob_min_len").set_value(6)
    at.slider(key="knob_max_len").set_value(4).run()
    assert_ok(at)
    assert "min_len (6) is larger than max_len (4)" in shown(at.error[0].value)
    assert at.button(key="preview").disabled


def test_ledger_all_after_a_saved_run(db):
    at = open_app("sampling")
    at.button(key="preview").click().run()
    at.button(key="save_run").click().run()
    at.radio(key="ledger").set_value("all")
    at.button(key="preview").click().run()
    assert_ok(at)
    assert "ledger all" in texts(at)


def test_sampling_page_without_kps_points_back(empty_db):
    with Store(empty_db) as store:
        ingest(store, sample_path())
    at = open_app("sampling")
    assert "No knowledge points yet" in texts(at)
    assert not at.slider


def test_page_without_seeds_offers_the_sample(empty_db):
    at = open_app("graph")
    assert "no seeds yet" in texts(at)
    at.button(key="need_load_sample").click().run()
    assert_ok(at)
    assert iframe_html(at)


def test_every_page_opens_by_its_path(db):
    """Like opening a page's URL in a fresh browser tab: no home page run first."""
    for page in PAGES.values():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.switch_page(page).run()
        assert_ok(at)
        assert at.title and at.title[0].value != "LinkQA Studio", page


# -- helpers behind the pages ----------------------------------------------------------------------


def test_graph_key_changes_with_curation(db):
    with Store(db) as store:
        before = support.graph_key(store)
        top = [r["name"] for r in kp_table(store, limit=3)]
        rename_kp(store, top[0], "a brand new name")
        after_rename = support.graph_key(store)
        merge_kps(store, [top[1]], top[2])
        after_merge = support.graph_key(store)
    assert len({before, after_rename, after_merge}) == 3


def test_subgraph_helpers_respect_the_cap(db):
    with Store(db) as store:
        g = build_graph(store)
    hub = int(g.degree.argmax())
    nodes = drawing.neighbourhood(g, hub, hops=2, cap=50)
    assert len(nodes) == 50 and nodes[0] == hub
    src, dst, w = drawing.subgraph_edges(g, nodes)
    assert (src < dst).all() and len(src) == len(w) > 0
    html = drawing.pyvis_html(g, drawing.top_nodes(g, 500))
    assert html.count('"shape": "dot"') <= drawing.MAX_DRAW_NODES
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", html)  # works offline


def test_kp_page_shows_the_quality_of_the_stored_kps(db):
    at = open_app("kps")
    with Store(db) as store:
        q = support.stored_kp_quality(store)
    assert metric(at, "Named by one seed only") == f"{q.singleton_share:.0%}"
    assert metric(at, f"Everyday words in the top {q.top}") == f"{q.general_word_share:.0%}"
    assert metric(at, "KPs per seed") == f"{q.kps_per_seed_mean:.2f}"
    assert not any("top KPs (seeds)" in df.value.columns for df in at.dataframe)  # drawn when opened
    at.session_state["top_by_discipline_open"] = True
    at.run()
    table = next(df.value for df in at.dataframe if "top KPs (seeds)" in df.value.columns)
    assert set(table["discipline"]) == set(q.top_by_discipline)


def test_rename_confirms_under_its_form_not_at_the_top(db):
    at = open_app("kps")
    with Store(db) as store:
        old = kp_table(store, limit=3)[1]["name"]
    at.selectbox(key="rename_old").set_value(old)
    at.text_input(key="rename_new").set_value("Le Chatelier's Principle")
    next(b for b in at.button if b.label == "Rename").click().run()
    assert_ok(at)
    assert [shown(s.value) for s in at.success] == [f"Renamed '{old}' to 'Le Chatelier's Principle'."]
    with Store(db) as store:
        assert "Le Chatelier's Principle" in [r["name"] for r in kp_table(store, limit=20)]

"""Streamlit helpers shared by the Studio pages: the store, the cached graph, page set-up.

Lives at the top level (not in ``pages/`` with the pages, and not in
``linkqa_core``, which never imports Streamlit). Over ~500 lines because it is the one
place for what every page shares: navigation, the cached store and graph, the background
warm-up, settings that stay put, messages beside their controls, and data shown as text.
The charts are in :mod:`studio.charts`, drawings in :mod:`studio.drawing`.

- :func:`get_store` opens the database once per process (``st.cache_resource``); the
  :class:`~linkqa_core.store.Store` is shared by every session: each thread reads on its own
  connection, writes take turns on the one writer.
- :func:`get_graph` builds the KP graph once per state of the data: the cache key is
  :func:`linkqa_core.support.graph_key`, which changes after an ingest, an
  extraction, a merge or a rename.
- :func:`get_store` also starts, once per process, a background warm-up (see
  :func:`_warm_up`): the imports, numba kernels, plotly validators and cached results
  that the pages' first visits would otherwise pay for. It only works while no page
  script is running, one short step at a time, so it never slows a page down by more
  than one step; a page that needs something the warm-up is still doing waits for it
  (an import lock or the cache's per-key lock) instead of doing it twice.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import streamlit as st

from studio import drawing, support
from studio.charts import bar_figure, for_plotly, line_figure  # noqa: F401 (the pages draw through ui)
from linkqa_core.errors import LinkQAError
from linkqa_core.store import Store, default_db_path

if TYPE_CHECKING:  # linkqa_core.graph imports numba: the home page does without it
    from linkqa_core.graph.build import KPGraph

_LOG = logging.getLogger(__name__)


# name -> (file, title in the navigation, icon, URL path); the Home page is the rest of app.py
PAGE_SPECS: dict[str, tuple[str, str, str, str]] = {
    "seeds": ("pages/1_Seeds.py", "Seeds", ":material/upload_file:", "Seeds"),
    "kps": ("pages/2_Knowledge_points.py", "Knowledge points", ":material/label:", "Knowledge_points"),
    "graph": ("pages/3_KP_graph.py", "KP graph", ":material/hub:", "KP_graph"),
    "sampling": ("pages/4_Path_sampling.py", "Path sampling", ":material/route:", "Path_sampling"),
    "synthesis": ("pages/5_Synthesis.py", "Synthesis", ":material/edit_note:", "Synthesis"),
    "review": ("pages/6_Review_and_export.py", "Review & export", ":material/fact_check:", "Review_and_export"),
}
PAGES = {"home": "app.py", **{name: spec[0] for name, spec in PAGE_SPECS.items()}}
HOME_TITLE = "Home"


def _home() -> None:
    """The Home page: drawn by the rest of ``app.py`` once :func:`navigation` has returned it."""


def navigation() -> Any:
    """Name the pages (Home first, then the stages in order) and return the one to show.

    ``st.navigation`` replaces the automatic page listing, which called the home page
    "app". app.py runs the page it returns and draws Home itself.

    The page files live in ``pages/`` next to app.py, as the client's layout has it;
    ``st.navigation`` names them, so Streamlit's own listing of that folder is not used.
    A tab left open across a restart reconnects and still uploads (a browser test).
    """
    st.set_page_config(page_title="LinkQA Studio", page_icon="🔗", layout="wide")
    home = st.Page(_home, title=HOME_TITLE, icon=":material/home:", default=True)
    pages = [st.Page(f, title=t, icon=i, url_path=u) for f, t, i, u in PAGE_SPECS.values()]
    return st.navigation([home, *pages])


def is_home(page: Any) -> bool:
    return page.title == HOME_TITLE


def link(name: str, label: str, icon: str | None = None) -> None:
    """A link to a page by its name in :data:`PAGES` (plain text label)."""
    st.page_link(PAGES[name], label=plain(label), icon=icon)


def db_path() -> str:
    """The database this process serves: ``$LINKQA_DB`` or ``data/linkqa.db``, absolute."""
    return str(Path(default_db_path()).expanduser().resolve())


@st.cache_resource(show_spinner=False, max_entries=8)
def _open_store(path: str) -> Store:
    return Store(path)


@st.cache_resource(show_spinner="Loading the bundled sample (first start)…", max_entries=8)
def _autoload(path: str) -> bool:
    """Load the bundled sample into an empty database, once per process and database."""
    store = _open_store(path)
    if store.seeds.count():
        return False
    support.load_sample(store)
    return True


# -- background warm-up ---------------------------------------------------------------------

# The threads that ran a page script (registered by get_store, the first thing every page
# does). Streamlit runs each script run in a thread of its own that ends with the run, so
# "some registered thread is alive" means a page is being drawn (or cleaned up after).
# A thread older than _BUSY_AT_MOST_S no longer counts, should a release keep them alive.
_page_threads: "weakref.WeakKeyDictionary[threading.Thread, float]" = weakref.WeakKeyDictionary()
_page_threads_lock = threading.Lock()
_BUSY_AT_MOST_S = 60.0


def _register_page_thread() -> None:
    with _page_threads_lock:
        _page_threads[threading.current_thread()] = time.monotonic()


def _page_running() -> bool:
    """True while some session's page script (or its post-run clean-up) is running."""
    now = time.monotonic()
    with _page_threads_lock:
        return any(t.is_alive() and now - started < _BUSY_AT_MOST_S for t, started in _page_threads.items())


def _warm_plotly() -> None:
    # plotly builds a validator object for each property it meets, on first use (~0.1 s
    # for the first figure): prime the ones the pages' charts use
    import plotly.graph_objects as go

    bar_figure([{"x": "a", "y": 1, "c": "p"}], "x", "y", colour="c", order={"x": ["a"]}, log_y=True,
               title="t", height=300, percent=True, margin=dict(l=0, r=0, t=40, b=0)).to_json()
    bar_figure([{"x": 1, "y": "a"}], "x", "y", orientation="h", height=300, y_title=None).to_json()
    line_figure({"a": [(1, 0.5), (2, 0.6)]}, x="x", y="y", colours={"a": "#4e79a7"}, percent=True).to_json()
    fig = go.Figure(go.Scatter(x=[1, 2], y=[1, 2], mode="markers", name="a", opacity=0.5, text=["a", "b"],
                               marker=dict(size=5, color="#4e79a7"), hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title="t", height=300, xaxis=dict(type="log", dtick=1), yaxis=dict(type="log", dtick=1),
                      xaxis_title="x", yaxis_title="y", margin=dict(l=0, r=0, t=40, b=0),
                      legend=dict(orientation="h", y=-0.2))
    fig.to_json()


def _warm_arrow() -> None:
    # st.dataframe and st.table send pandas frames as Arrow; st.table of a Styler also loads
    # pandas' Styler and its jinja templates (~0.1 s on first use)
    import pandas as pd
    import pyarrow as pa

    frame = pd.DataFrame({"a": ["x", "y"], "b": [1.5, None], "c": [True, False]})
    table = pa.Table.from_pandas(frame)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:  # what st.dataframe sends: an Arrow IPC stream
        writer.write_table(table)
    frame[["b"]].style.format("{:.4g}", na_rep="—").to_html()


def _warm_imports(*modules: str) -> Callable[[], None]:
    def step() -> None:
        import importlib

        for name in modules:
            importlib.import_module(name)

    return step


# How long no page may have run before the bulk of the warm-up goes on: a first visit in a
# fresh browser keeps it busy drawing for up to ~1.5 s after the page's script has ended
# (plotly.js alone), and on a small machine a warm-up then would take CPU from it.
QUIET_S = 1.5
# seeds from which the warm-up does not wait for a quiet moment (see _warm_steps)
BIG_SEEDS = 100_000


def _warm_steps(path: str) -> list[tuple[str, bool, Callable[[], Any]]]:
    """``(name, soon, step)`` in the order a curator usually opens the pages; each step is short.

    ``soon`` steps run as soon as no page script runs (the next page likely needs them:
    ~0.3 s in all); the others wait for the server to have been quiet for :data:`QUIET_S`
    once (see :func:`_warm_up`), except on a database of :data:`BIG_SEEDS` seeds or more.
    """

    def key() -> tuple:
        return support.graph_key(_open_store(path))

    def graph_page_view() -> None:  # the KP graph page's default view: the 100 most frequent KPs
        k = key()
        nodes = drawing.top_nodes(_graph(k), 100)
        _graph_html(k, tuple(int(v) for v in nodes), "discipline", ())

    store = _open_store(path)
    # on a big database the data steps cannot wait for a quiet moment: a first visit would
    # otherwise scan a million seeds itself (or build the graph: 4 s at 1M seeds); their
    # SQL runs outside the GIL, beside the page being drawn
    try:
        big = store.counts()["seeds"] >= BIG_SEEDS
    except Exception:  # a damaged or busy file: the pages say so themselves
        big = False
    return [
        ("plotly", True, _warm_plotly),
        ("arrow", True, _warm_arrow),
        # the pages' order: the data the Seeds and Knowledge points pages read comes before
        # numba's import, which only the graph needs
        ("seed summary", big, store.seeds.attributes),  # the Seeds page's filters and charts, the KP table
        ("kp frequencies", big, store.kps.frequencies),
        ("kp table", big, lambda: _kp_table(key(), 100, "")),
        ("kp quality", big, lambda: _kp_quality(key())),  # wordfreq's first use: ~0.7 s
        ("merge suggestions", big, lambda: _suggestions(key())),
        ("numba", True, _warm_imports("numba", "linkqa_core.graph.build")),
        ("graph", big, lambda: _graph(key())),  # the first numba call (~0.3 s of numba's own set-up)
        ("pyvis", big, _warm_imports("networkx", "pyvis.network")),
        ("graph statistics", big, lambda: _stats(key())),
        ("graph drawing", big, graph_page_view),
        ("walk kernels", big, support.warm_up),
        ("synthesis and review", False, _warm_imports("linkqa_core.synthesis.run", "linkqa_core.difficulty.enhance",
                                                      "linkqa_core.quality.gates", "linkqa_core.curation.review",
                                                      "linkqa_core.curation.export", "studio.jobs")),
    ]


def _warm_up(path: str) -> None:
    """Run the warm-up steps in the background, each only while no page script runs.

    The ``soon`` steps go first; the rest wait until the server has been quiet for
    :data:`QUIET_S` once, then go on between page runs. After every step the objects
    made so far are frozen out of the garbage collector (see :func:`_freeze`).
    """
    last_busy = time.monotonic()
    quiet_seen = False
    for name, soon, step in _warm_steps(path):
        while True:
            now = time.monotonic()
            if _page_running():
                last_busy = now
            elif soon or quiet_seen or now - last_busy >= QUIET_S:
                break
            time.sleep(0.02)
        quiet_seen = quiet_seen or not soon
        t = time.perf_counter()
        try:
            step()
        except Exception:  # a warm-up is an optimisation: the page does the work itself if this fails
            _LOG.debug("warm-up step %s failed", name, exc_info=True)
        _freeze()
        _LOG.debug("warm-up step %s: %.3f s", name, time.perf_counter() - t)


_frozen_at = 0  # len(sys.modules) at the last gc.freeze()


def _freeze(min_new_modules: int = 0) -> None:
    """Move every object alive now (mostly modules: pandas, plotly, numba…) out of the
    garbage collector's reach, when enough modules were imported since the last time.

    Streamlit runs a full ``gc.collect()`` after every script run, holding the GIL while it
    walks every object, so the page's last messages wait for it: with the libraries loaded
    that took 0.1–0.2 s of every page view. Frozen objects are still freed when unreferenced;
    only cyclic garbage among them is never collected, which is why this runs a bounded
    number of times (when the set of modules grew), not on every run.
    """
    global _frozen_at
    if len(sys.modules) - _frozen_at >= min_new_modules:
        _frozen_at = len(sys.modules)
        gc.freeze()


class _WarmUpContextFilter(logging.Filter):
    """Drop Streamlit's "missing ScriptRunContext" warning for the warm-up thread only: it
    fills the caches outside any page run on purpose (a spinner has nowhere to show)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName == _WARM_UP_THREAD and "missing ScriptRunContext" in record.getMessage())


_WARM_UP_THREAD = "linkqa-warm-up"
_warm_up_lock = threading.Lock()
_warm_up_started = False


def _start_warm_up(path: str) -> None:
    """Start the background warm-up once per process (for the first database it serves)."""
    global _warm_up_started
    if _warm_up_started:
        return
    with _warm_up_lock:
        if _warm_up_started:
            return
        _warm_up_started = True
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(_WarmUpContextFilter())
    threading.Thread(target=_warm_up, args=(path,), name=_WARM_UP_THREAD, daemon=True).start()


def get_store() -> Store:
    """The process-wide Store; stops the page with a clear error if the file is not usable."""
    _register_page_thread()
    path = db_path()
    try:
        store = _open_store(path)
        if support.autoload_requested():
            _autoload(path)
    except LinkQAError as err:
        st.error(str(err))
        st.stop()
    _freeze(min_new_modules=100)  # this page's imports (the first page: sqlite_utils, pandas, numpy…)
    _start_warm_up(path)
    return store


@st.cache_resource(show_spinner="Loading the KP graph…", max_entries=2)
def _graph(key: tuple) -> KPGraph:
    from linkqa_core.graph.stored import current_graph

    return current_graph(_open_store(key[0]))  # kept in the file: a new server loads it, not builds it


def get_graph(store: Store) -> KPGraph:
    """The KP graph of the current data, from cache (rebuilt only when the data changed)."""
    return _graph(support.graph_key(store))


@st.cache_data(show_spinner="Computing graph statistics…", max_entries=4)
def _stats(key: tuple) -> dict[str, Any]:
    from linkqa_core.graph.stored import current_stats

    return current_stats(_open_store(key[0]), _graph(key))


def get_graph_stats(store: Store) -> dict[str, Any]:
    return _stats(support.graph_key(store))


@st.cache_data(show_spinner=False, max_entries=16)
def _communities(key: tuple, nodes: tuple[int, ...]) -> dict[int, int]:
    from linkqa_core.graph.stats import community_labels

    return community_labels(_graph(key), list(nodes))


@st.cache_data(show_spinner=False, max_entries=32)
def _kp_table(key: tuple, limit: int, search: str) -> list[dict]:
    from linkqa_core.kps.curate import kp_table

    return kp_table(_open_store(key[0]), limit=limit, search=search or None)


def get_kp_table(store: Store, limit: int, search: str = "") -> list[dict]:
    return _kp_table(support.graph_key(store), int(limit), search.strip())


@st.cache_data(show_spinner=False, max_entries=4)
def _suggestions(key: tuple) -> list[tuple[str, str]]:
    from linkqa_core.kps.curate import MERGE_SUGGESTIONS, suggest_merges

    return suggest_merges(_open_store(key[0]), limit=MERGE_SUGGESTIONS)


def get_merge_suggestions(store: Store) -> list[tuple[str, str]]:
    return _suggestions(support.graph_key(store))


@st.cache_data(show_spinner="Measuring the KPs…", max_entries=4)
def _kp_quality(key: tuple) -> Any:
    return support.stored_kp_quality(_open_store(key[0]), by_discipline=False)


def get_kp_quality(store: Store) -> Any:
    """The stored KPs' quality measures, recomputed only when the KPs changed (without
    the top KPs of each discipline: :func:`get_top_by_discipline`)."""
    return _kp_quality(support.graph_key(store))


def get_top_by_discipline(store: Store, per_discipline: int = 10) -> dict[str, list[tuple[str, int]]]:
    """discipline -> its most named KPs ``(label, seeds)``; the store keeps it per data version."""
    return store.kps.top_by_discipline(per_discipline)


def get_kp_frequencies(store: Store) -> list[tuple[int, int]]:
    """``(seeds naming a KP, KPs)`` for the frequency chart, from an SQL aggregate the store
    keeps per data version (no graph needed)."""
    return store.kps.frequency_histogram()


def read_secrets() -> dict[str, Any]:
    """``st.secrets`` as a dict, or {} when there is no secrets.toml (never raises)."""
    try:
        return {k: (dict(v) if hasattr(v, "items") else v) for k, v in st.secrets.items()}
    except Exception:  # no file, or a file that does not parse: treat as no secrets
        return {}


def get_llm_config() -> dict[str, Any]:
    return support.llm_config(os.environ, read_secrets())


def page_setup(title: str, icon: str = "🔗", *, caption: str | None = None) -> Store:
    """Page title, caption and sidebar status; returns the store."""
    st.set_page_config(page_title=f"{title} · LinkQA Studio", page_icon=icon, layout="wide")
    store = get_store()
    st.title(title)
    if caption:
        st.caption(caption)
    with st.sidebar:
        st.caption("Database: " + plain(store.path))
    return store


def progress_callback(bar: Any) -> Callable[[int, int, str], None]:
    """An engine ``progress(done, total, message)`` that feeds an ``st.progress`` bar."""

    def update(done: int, total: int, message: str = "") -> None:
        share = min(max(done / total, 0.0), 1.0) if total else 1.0
        bar.progress(share, text=message or None)

    return update


def show_error(err: BaseException) -> None:
    """An engine error as the curator should read it (it may quote data: shown as plain text)."""
    st.error(plain(str(err) if isinstance(err, LinkQAError) else f"{type(err).__name__}: {err}"))


def need(store: Store, what: str) -> None:
    """Stop a page early, with a pointer, when an earlier stage has not been done."""
    counts = store.counts()
    if what in ("seeds", "kps") and not counts["seeds"]:
        st.info("The database has no seeds yet. Load some first.")
        link("seeds", "Go to Seeds", icon="➡️")
        if st.button("Load the bundled sample", key="need_load_sample"):
            load_sample_with_progress(store)
            st.rerun()
        st.stop()
    if what == "kps" and not counts["kps"]:
        st.info("No knowledge points yet: extract them before looking at the graph or sampling paths.")
        link("kps", "Go to Knowledge points", icon="➡️")
        st.stop()


def load_sample_with_progress(store: Store) -> None:
    bar = st.progress(0.0, text="Loading the bundled sample…")
    try:
        report, extraction = support.load_sample(store, progress=progress_callback(bar))
    except LinkQAError as err:
        bar.empty()
        show_error(err)
        return
    bar.empty()
    st.session_state["flash"] = (
        f"Loaded the bundled sample: {report.added:,} seeds added "
        f"({report.duplicates:,} already stored), {extraction.kps:,} knowledge points."
    )


def flash() -> None:
    """Show (once) a message left by the previous run for the top of the page (the sample loaded)."""
    message = st.session_state.pop("flash", None)
    if message:
        st.success(plain(message))


def rerun_part() -> None:
    """Rerun the fragment this runs in (the rest of the page keeps its place), or the
    whole page when this run is not a fragment's own (a full run, or AppTest)."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.rerun(scope="fragment")
    except StreamlitAPIException:
        st.rerun()


# -- settings that stay put -----------------------------------------------------------------

_KEPT = "kept:"


def remember(key: str, default: Any) -> None:
    """Call before drawing the widget ``key`` (without a default of its own): its value
    survives a visit to another page, where Streamlit forgets the state of widgets it did
    not draw. The value last seen is kept apart; a new visit starts from it.

    The value is handed to the widget on every run (not only the first): a widget the
    browser has not mounted yet (inside a closed popover) would otherwise be drawn, when
    opened, at the widget's own default instead of the value the page works with.
    """
    value = st.session_state[key] if key in st.session_state else st.session_state.get(_KEPT + key, default)
    st.session_state[key] = value
    st.session_state[_KEPT + key] = value


# -- confirmations next to the control that caused them --------------------------------------

_NOTICE = "notice:"
_KINDS = {"success": st.success, "info": st.info, "warning": st.warning, "error": st.error}


def say(slot: str, text: str, kind: str = "success") -> None:
    """Leave a message for :func:`notice` ``(slot)`` to show on the next run, where the control is."""
    st.session_state[_NOTICE + slot] = (kind, text)


def notice(slot: str, *, keep: bool = False) -> None:
    """Show the message an action left for this place (under its button or form): once, or
    with ``keep`` on every run until the next action's message replaces it.

    A page reruns from the top after an action; a message shown at the top would be out
    of view of the control that caused it, so each control has its own slot. ``keep`` is
    for a place that always has a last action (the review queue's card): a message shown
    once is lost when a second event (a shortcut and the form's own Ctrl+Enter arriving
    together) interrupts the run that took it, and the curator never learns what happened.
    """
    got = st.session_state.get if keep else st.session_state.pop
    kind, text = got(_NOTICE + slot, (None, None))
    if text:
        _KINDS.get(kind, st.info)(plain(text))


# -- data shown as text, never as markup ----------------------------------------------------

_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_ESCAPE_ALL = str.maketrans({c: "\\" + c for c in _PUNCTUATION})
_JOINER = "\u2060"  # WORD JOINER: invisible, and no letter, digit or slash
_AUTOLINK = re.compile(r"(?i)(://|www(?=\.)|@)")


def plain(text: Any) -> str:
    """``text`` for a place that reads Markdown (labels, alerts, captions), shown literally.

    Every ASCII punctuation mark is backslash-escaped (CommonMark allows it for each), so
    nothing in data becomes a link, an image, emphasis, HTML, a directive (``:red[…]``)
    or LaTeX. Escapes do not stop GitHub's *autolinks* (Streamlit finds ``https://…``,
    ``www.…`` and ``name@host`` in the text itself), so an invisible word joiner goes
    after ``://``, ``www`` and ``@``. Runs of whitespace become one space (a label is one
    line). Where a whole text is data, prefer a plain-text element (``st.text``,
    ``st.code``, a dataframe): this is for labels and messages that quote data.
    """
    text = _AUTOLINK.sub(lambda m: m.group(1) + _JOINER, " ".join(str(text).split()))
    return text.translate(_ESCAPE_ALL)


md = plain  # the name the pages used for their first, partial escaper


def text_block(text: Any, *, empty: str = "—") -> None:
    """A multi-line text from data, shown as written (no Markdown, no HTML)."""
    st.text(str(text) if text not in (None, "") else empty)


def seed_text(seed: Any) -> None:
    """A seed's question, then its options with the answer ticked (or its answer alone), as text.

    One rendering for every place a curator reads a seed, so the path preview and the review
    card show a seed alike.
    """
    text_block(seed.question)
    if seed.options:
        text_block("\n".join(f"{'✓' if o == seed.answer else ' '} {chr(65 + i)}. {o}"
                              for i, o in enumerate(seed.options)))
    else:
        text_block(f"Answer: {seed.answer}")


@st.cache_data(show_spinner=False, max_entries=24)
def _graph_html(key: tuple, nodes: tuple[int, ...], colour_by: str, path: tuple[int, ...]) -> str:
    g = _graph(key)
    communities = _communities(key, nodes) if colour_by == "community" else None
    return drawing.pyvis_html(g, list(nodes), colour_by=colour_by, communities=communities, path=list(path),
                                 height=640)


def get_graph_html(store: Store, nodes: Any, colour_by: str, path: Any = ()) -> str:
    """The pyvis page of a subgraph, cached by data state and selection (it is ~1 MB with vis.js inlined)."""
    return _graph_html(support.graph_key(store), tuple(int(v) for v in nodes), colour_by,
                       tuple(int(v) for v in path))

"""Streamlit helpers shared by the Studio pages: the store, the cached graph, page set-up.

Lives at the top level (not in ``pages/``, where Streamlit would list it as a page, and
not in ``linkqa_core``, which never imports Streamlit).

- :func:`get_store` opens the database once per process (``st.cache_resource``); the
  :class:`~linkqa_core.store.Store` is shared by every session, safely, through its lock.
- :func:`get_graph` builds the KP graph once per state of the data: the cache key is
  :func:`linkqa_core.appsupport.graph_key`, which changes after an ingest, an
  extraction, a merge or a rename.
- the numba walk kernels are warmed up in a background thread on first use.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from linkqa_core import appsupport
from linkqa_core.errors import LinkQAError
from linkqa_core.graph import KPGraph, build_graph, community_labels, graph_stats
from linkqa_core.store import Store, default_db_path

PAGES = {
    "home": "app.py",
    "seeds": "pages/1_Seeds.py",
    "kps": "pages/2_Knowledge_points.py",
    "graph": "pages/3_KP_graph.py",
    "sampling": "pages/4_Path_sampling.py",
    "synthesis": "pages/5_Synthesis.py",
    "review": "pages/6_Review_and_export.py",
}


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
    if store.seed_count():
        return False
    appsupport.load_sample(store)
    return True


def _warm_up() -> None:
    appsupport.warm_up()
    # plotly builds its validators on the first figure (~0.5 s): do it before the first preview
    import plotly.express as px
    import plotly.graph_objects as go
    import plotly.io as pio

    fig = px.line(x=[1, 2], y=[1, 2], color=["a", "b"])
    fig.add_trace(go.Scatter(x=[1], y=[1], mode="markers"))
    fig.update_layout(xaxis=dict(type="log", dtick=1), yaxis_tickformat=".0%")
    pio.to_json(px.bar(x=["a"], y=[1], color=["a"], barmode="group"))
    pio.to_json(fig)


@st.cache_resource(show_spinner=False)
def _warm_up_thread() -> threading.Thread:
    """Compile the numba walk kernels and prime plotly once per process, off the script thread."""
    thread = threading.Thread(target=_warm_up, name="linkqa-warm-up", daemon=True)
    thread.start()
    return thread


def get_store() -> Store:
    """The process-wide Store; stops the page with a clear error if the file is not usable."""
    path = db_path()
    try:
        store = _open_store(path)
        if appsupport.autoload_requested():
            _autoload(path)
    except LinkQAError as err:
        st.error(str(err))
        st.stop()
    _warm_up_thread()
    return store


@st.cache_resource(show_spinner="Building the KP graph…", max_entries=2)
def _graph(key: tuple) -> KPGraph:
    return build_graph(_open_store(key[0]))


def get_graph(store: Store) -> KPGraph:
    """The KP graph of the current data, from cache (rebuilt only when the data changed)."""
    return _graph(appsupport.graph_key(store))


@st.cache_data(show_spinner="Computing graph statistics…", max_entries=4)
def _stats(key: tuple) -> dict[str, Any]:
    return graph_stats(_graph(key))


def get_graph_stats(store: Store) -> dict[str, Any]:
    return _stats(appsupport.graph_key(store))


@st.cache_data(show_spinner=False, max_entries=16)
def _communities(key: tuple, nodes: tuple[int, ...]) -> dict[int, int]:
    return community_labels(_graph(key), list(nodes))


@st.cache_data(show_spinner=False, max_entries=32)
def _kp_table(key: tuple, limit: int, search: str) -> list[dict]:
    from linkqa_core.kps import kp_table

    return kp_table(_open_store(key[0]), limit=limit, search=search or None)


def get_kp_table(store: Store, limit: int, search: str = "") -> list[dict]:
    return _kp_table(appsupport.graph_key(store), int(limit), search.strip())


@st.cache_data(show_spinner=False, max_entries=4)
def _suggestions(key: tuple) -> list[tuple[str, str]]:
    from linkqa_core.kps import suggest_merges

    return suggest_merges(_open_store(key[0]), limit=200)


def get_merge_suggestions(store: Store) -> list[tuple[str, str]]:
    return _suggestions(appsupport.graph_key(store))


def read_secrets() -> dict[str, Any]:
    """``st.secrets`` as a dict, or {} when there is no secrets.toml (never raises)."""
    try:
        return {k: (dict(v) if hasattr(v, "items") else v) for k, v in st.secrets.items()}
    except Exception:  # no file, or a file that does not parse: treat as no secrets
        return {}


def get_llm_config() -> dict[str, Any]:
    return appsupport.llm_config(os.environ, read_secrets())


def page_setup(title: str, icon: str = "🔗", *, caption: str | None = None) -> Store:
    """Page config, title, sidebar status; returns the store."""
    st.set_page_config(page_title=f"{title} · LinkQA Studio", page_icon=icon, layout="wide")
    store = get_store()
    st.title(title)
    if caption:
        st.caption(caption)
    with st.sidebar:
        st.caption(f"Database: `{store.path}`")
    return store


def progress_callback(bar: Any) -> Callable[[int, int, str], None]:
    """An engine ``progress(done, total, message)`` that feeds an ``st.progress`` bar."""

    def update(done: int, total: int, message: str = "") -> None:
        share = min(max(done / total, 0.0), 1.0) if total else 1.0
        bar.progress(share, text=message or None)

    return update


def show_error(err: BaseException) -> None:
    """An engine error as the curator should read it."""
    st.error(str(err) if isinstance(err, LinkQAError) else f"{type(err).__name__}: {err}")


def need(store: Store, what: str) -> None:
    """Stop a page early, with a pointer, when an earlier stage has not been done."""
    counts = store.counts()
    if what in ("seeds", "kps") and not counts["seeds"]:
        st.info("The database has no seeds yet. Load some first.")
        st.page_link(PAGES["seeds"], label="Go to Seeds", icon="➡️")
        if st.button("Load the bundled sample", key="need_load_sample"):
            load_sample_with_progress(store)
            st.rerun()
        st.stop()
    if what == "kps" and not counts["kps"]:
        st.info("No knowledge points yet: extract them before looking at the graph or sampling paths.")
        st.page_link(PAGES["kps"], label="Go to Knowledge points", icon="➡️")
        st.stop()


def load_sample_with_progress(store: Store) -> None:
    bar = st.progress(0.0, text="Loading the bundled sample…")
    try:
        report, extraction = appsupport.load_sample(store, progress=progress_callback(bar))
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
    """Show (once) a success message left by the previous run."""
    message = st.session_state.pop("flash", None)
    if message:
        st.success(message)


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]<>#|$~"})


def md(text: str) -> str:
    """Seed text shown as Markdown literally (no stray italics, links or LaTeX from `$`)."""
    return str(text).translate(_MD_SPECIAL)


@st.cache_data(show_spinner=False, max_entries=24)
def _graph_html(key: tuple, nodes: tuple[int, ...], colour_by: str, path: tuple[int, ...]) -> str:
    g = _graph(key)
    communities = _communities(key, nodes) if colour_by == "community" else None
    return appsupport.pyvis_html(g, list(nodes), colour_by=colour_by, communities=communities, path=list(path),
                                 height=640)


def get_graph_html(store: Store, nodes: Any, colour_by: str, path: Any = ()) -> str:
    """The pyvis page of a subgraph, cached by data state and selection (it is ~1 MB with vis.js inlined)."""
    return _graph_html(appsupport.graph_key(store), tuple(int(v) for v in nodes), colour_by,
                       tuple(int(v) for v in path))

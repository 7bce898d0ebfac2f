"""UI-free helpers for the Studio pages: queries, upload handling, subgraphs, pyvis HTML.

Everything here is plain Python over the engine (no Streamlit import), so the pages
stay thin and these functions can be tested and timed on their own.

>>> from linkqa_core.store import Store
>>> store = Store(":memory:")
>>> next_step(store.counts())["page"]
'pages/1_Seeds.py'
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from linkqa_core.errors import InputError, LinkQAError
from linkqa_core.records import ExtractReport, IngestReport
from linkqa_core.store import Store

if TYPE_CHECKING:  # graph.py imports numba (~0.1 s): only the pages that draw or walk the graph need it
    from linkqa_core.graph.build import KPGraph

__all__ = [
    "AUTOLOAD_ENV",
    "LLM_KEYS",
    "MAX_DRAW_NODES",
    "UploadPreview",
    "autoload_requested",
    "load_sample",
    "graph_key",
    "next_step",
    "llm_config",
    "llm_settings",
    "llm_extractor_status",
    "make_llm_extractor",
    "test_llm_connection",
    "llm_modes",
    "preview_upload",
    "import_upload",
    "mapping_from_choices",
    "bad_rows_table",
    "freq_histogram",
    "search_kp_names",
    "top_nodes",
    "neighbourhood",
    "path_context",
    "subgraph_edges",
    "pyvis_html",
    "discipline_colours",
    "knob_step",
    "metrics_rows",
    "visit_points",
    "warm_up",
]

AUTOLOAD_ENV = "LINKQA_AUTOLOAD_SAMPLE"
LLM_KEYS = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LINKQA_MODEL")
MAX_DRAW_NODES = 300

Progress = Callable[[int, int, str], None]


# -- start-up ---------------------------------------------------------------------------


def autoload_requested(env: Mapping[str, str] | None = None) -> bool:
    """True when ``LINKQA_AUTOLOAD_SAMPLE`` asks to load the bundled sample into an empty DB."""
    value = (env if env is not None else os.environ).get(AUTOLOAD_ENV, "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_sample(store: Store, progress: Progress | None = None) -> tuple[IngestReport, ExtractReport]:
    """Ingest the bundled MMLU sample and extract its KPs (what ``init-sample`` does).

    ``progress(done, total, message)`` runs from 0 to 100 over both stages.
    """
    from linkqa_core.kps.extract import run_extraction
    from linkqa_core.ingest.load import ingest, sample_path

    def scaled(lo: float, hi: float) -> Progress | None:
        if progress is None:
            return None

        def cb(done: int, total: int, message: str = "") -> None:
            share = done / total if total else 1.0
            progress(int(lo + (hi - lo) * min(max(share, 0.0), 1.0)), 100, message)

        return cb

    report = ingest(store, sample_path(), progress=scaled(0, 30))
    extraction = run_extraction(store, progress=scaled(30, 100))
    return report, extraction


def graph_key(store: Store) -> tuple:
    """What the KP graph is built from, as a cache key: the store's graph version.

    The store counts every ingest, extraction, merge and rename (even by another
    process on the same file), so reading one row tells whether a cached graph, its
    statistics or the KP table are stale — no scan of millions of links per rerun.
    """
    return (store.path, store.version())


def next_step(counts: Mapping[str, int]) -> dict[str, str]:
    """What the curator should do next, given :meth:`Store.counts`.

    Seeds, then KPs, then a saved run of paths, then synthesis, then review and export:
    the first stage with nothing in it is the next step.
    """
    if not counts.get("seeds"):
        return {"page": "pages/1_Seeds.py", "title": "Seeds", "label": "Load seeds",
                "why": "The database holds no seeds yet: upload a file or load the bundled sample."}
    if not counts.get("kps"):
        return {"page": "pages/2_Knowledge_points.py", "title": "Knowledge points", "label": "Extract knowledge points",
                "why": "Seeds are loaded; name their knowledge points to build the KP graph."}
    if not counts.get("runs"):
        return {"page": "pages/4_Path_sampling.py", "title": "Path sampling", "label": "Sample KP paths",
                "why": "The KP graph is ready: look at it, then preview and save a sample of paths."}
    if not counts.get("items"):
        return {"page": "pages/5_Synthesis.py", "title": "Synthesis", "label": "Synthesise QA",
                "why": "Paths are saved: write new QA items from the seed bundles of a saved run. With an "
                       "OpenAI-compatible endpoint configured (see LLM endpoint) a model writes them; without one the "
                       "offline composer writes simple two-part items, so the pipeline runs with no key."}
    if not counts.get("accepted_items"):
        return {"page": "pages/6_Review_and_export.py", "title": "Review & export", "label": "Review the generated QA",
                "why": "Items are generated: accept, reject or edit them, then export the accepted ones as JSONL."}
    return {"page": "pages/6_Review_and_export.py", "title": "Review & export", "label": "Export accepted QA",
            "why": "Accepted items are ready: export them as JSONL with their provenance (run, path, seeds, model)."}


# -- LLM endpoint -----------------------------------------------------------------------


_ORIGIN_KEYS = {"base_urls": "OPENAI_BASE_URL", "api_key": "OPENAI_API_KEY", "model": "LINKQA_MODEL"}
_SOURCE_LABELS = {"environment": "environment", "secrets.toml": "secrets.toml"}


def _llm_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment variables that are LLM settings (nothing else is kept)."""
    return {k: v for k, v in env.items() if k.upper().startswith(("OPENAI_", "LINKQA_"))}


def llm_config(env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The endpoint settings as the engine's one loader reads them (secrets.toml, then the
    environment, which wins), in a form a page can show.

    ``base_url`` is masked (credentials in the URL become ``***``); the key is never
    returned for display (``has_key``); ``error`` is the one-line reason the settings
    cannot work, if any. ``sources`` is for :func:`llm_settings` only, never shown.
    """
    from linkqa_core.errors import ConfigError
    from linkqa_core.llm.scrub import mask_url
    from linkqa_core.llm.settings import gather_settings

    env = _llm_env(os.environ if env is None else env)
    secrets = dict(secrets or {})
    error = None
    try:
        values, origin = gather_settings(env=env, secrets=secrets)
    except ConfigError as err:
        values, origin, error = {}, {}, str(err)
    urls = values.get("base_urls")
    urls = [u.strip() for u in urls.split(",")] if isinstance(urls, str) else list(urls or [])
    shown = {_ORIGIN_KEYS[k]: _SOURCE_LABELS.get(v, v) for k, v in origin.items() if k in _ORIGIN_KEYS}
    if error is None:
        try:
            llm_settings({"sources": {"env": env, "secrets": secrets}})
        except ConfigError as err:
            error = str(err)
    configured = bool(values.get("api_key") or urls)
    return {
        "sources": {"env": env, "secrets": secrets},
        "origin": shown,
        "configured": configured,
        "base_url": ", ".join(mask_url(u) for u in urls if u) or None,
        "model": values.get("model"),
        "has_key": bool(values.get("api_key")),
        "structured_output": values.get("structured_output", "auto"),
        "missing": [k for k in LLM_KEYS if k not in shown],
        "error": error,
    }


def llm_settings(config: Mapping[str, Any]) -> Any:
    """Engine settings for ``config`` (from :func:`llm_config`), through the engine's one loader."""
    from linkqa_core.llm.settings import load_settings

    sources = config.get("sources", {})
    return load_settings(env=sources.get("env", {}), secrets=sources.get("secrets", {}))


def _scrub(text: str, config: Mapping[str, Any]) -> str:
    """The engine's one scrubber, for the settings of ``config``."""
    from linkqa_core.llm.scrub import Scrubber, scrubber_for

    try:
        return scrubber_for(llm_settings(config))(text)
    except LinkQAError:
        sources = config.get("sources", {})
        secrets = [v for m in (sources.get("env", {}), sources.get("secrets", {})) for v in m.values()
                   if isinstance(v, str)]
        return Scrubber(secrets)(text)


def test_llm_connection(config: Mapping[str, Any], store: Store | None = None) -> tuple[bool, str]:
    """Ask the endpoint whether it works and how it takes JSON; ``(ok, message)`` with the
    key never in the message. With ``store`` the structured-output mode found is stored."""
    from linkqa_core.llm.probe import test_connection

    try:
        ok, message = test_connection(llm_settings(config), store=store)
    except LinkQAError as err:
        return False, _scrub(str(err), config)
    return ok, _scrub(message, config)


test_llm_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def llm_modes(store: Store, config: Mapping[str, Any]) -> list[dict[str, str]]:
    """The structured-output mode each configured endpoint settled on for the model (for
    the home page): endpoint (no credentials), model, mode, what it means, why."""
    from linkqa_core.llm.modes import describe
    from linkqa_core.llm.scrub import display_url

    try:
        settings = llm_settings(config)
    except LinkQAError:
        return []
    endpoints = {display_url(u) for u in settings.base_urls}
    return [{"endpoint": r["endpoint"], "model": r["model"], "mode": r["mode"], "means": describe(r["mode"]),
             "why": _scrub(r.get("detail") or "", config)}
            for r in store.llm.modes() if r["endpoint"] in endpoints and r["model"] == settings.model]


def llm_extractor_status(config: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the LLM extractor can run here, and if not, why (for the KP page)."""
    if config.get("error"):
        return False, f"The LLM settings cannot work: {config['error']}"
    if not config.get("configured") or not config.get("model"):
        return False, ("No LLM endpoint is configured: set OPENAI_BASE_URL, OPENAI_API_KEY and LINKQA_MODEL "
                       "in the environment or in .streamlit/secrets.toml.")
    return True, ""


def make_llm_extractor(store: Store, config: Mapping[str, Any], batch_size: int = 8) -> Any:
    from linkqa_core.kps.llm import LLMExtractor

    return LLMExtractor(llm_settings(config), store=store, batch_size=batch_size)


# -- seeds: uploads ---------------------------------------------------------------------


@dataclass
class UploadPreview:
    """What an uploaded file looks like before import."""

    filename: str
    columns: list[str]
    rows: list[dict[str, Any]]
    mapping: dict[str, Any]  # the guessed mapping, field -> column or [columns]
    size: int = 0
    options_hint: str = field(default="")


def preview_upload(data: bytes, filename: str, n: int = 5) -> UploadPreview:
    """Columns, first rows and the guessed mapping of an uploaded file; InputError if unreadable."""
    from linkqa_core.ingest.load import guess_mapping, peek

    if not data:
        raise InputError(f"{filename} is empty")
    columns, rows = peek(data, filename=filename, n=n)
    mapping = guess_mapping(columns) if columns else {}
    return UploadPreview(filename, [str(c) for c in columns], rows, dict(mapping), len(data))


def mapping_from_choices(choices: Mapping[str, Any]) -> dict[str, Any]:
    """Selectbox choices (``"(none)"`` or ``None`` = unmapped) as an explicit ``mapping=``."""
    out: dict[str, Any] = {}
    for fld, value in choices.items():
        if value in (None, "", "(none)") or value == []:
            out[fld] = ""
        elif isinstance(value, (list, tuple)):
            out[fld] = list(value)
        else:
            out[fld] = str(value)
    return out


def import_upload(store: Store, data: bytes, filename: str, mapping: Mapping[str, Any] | None = None,
                  progress: Progress | None = None) -> IngestReport:
    """Ingest uploaded bytes; the whole file or nothing (raises InputError on a bad file)."""
    from linkqa_core.ingest.load import ingest

    if not data:
        raise InputError(f"{filename} is empty")
    return ingest(store, data, filename=filename, mapping=dict(mapping) if mapping else None, progress=progress)


def bad_rows_table(report: IngestReport, limit: int = 5000) -> list[dict[str, Any]]:
    return [{"line": b.line, "reason": b.reason} for b in report.bad_rows[:limit]]


# -- knowledge points -------------------------------------------------------------------


def freq_histogram(freq: np.ndarray) -> list[dict[str, Any]]:
    """KPs per frequency band (1, 2, 3-4, 5-8, … doubling), for a log-scale chart."""
    freq = np.asarray(freq)
    if freq.size == 0:
        return []
    edges = [1, 2, 3]
    while edges[-1] <= freq.max():
        edges.append((edges[-1] - 1) * 2 + 1)
    counts, _ = np.histogram(freq, bins=edges)
    out = []
    for lo, hi, c in zip(edges[:-1], edges[1:], counts):
        label = str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}"
        out.append({"seeds naming the KP": label, "KPs": int(c), "low": lo})
    return out


def search_kp_names(g: KPGraph, text: str, limit: int = 50) -> list[int]:
    """Dense indices of KPs whose name contains ``text``, most frequent first."""
    text = text.strip().casefold()
    if not text:
        return []
    exact = g.index_of_name(text)
    hits = [i for i, n in enumerate(g.names) if text in n.casefold()]
    hits.sort(key=lambda i: (-int(g.freq[i]), g.names[i]))
    if exact is not None:
        hits.remove(exact)
        hits.insert(0, exact)
    return hits[:limit]


# -- subgraphs for drawing ----------------------------------------------------------------


def top_nodes(g: KPGraph, n: int, discipline: str | None = None) -> np.ndarray:
    """The ``n`` most frequent KPs, overall or of one discipline (ties by name order)."""
    idx = np.arange(g.n_nodes)
    if discipline is not None:
        if discipline not in g.disciplines:
            return np.zeros(0, dtype=np.int64)
        idx = idx[g.discipline == g.disciplines.index(discipline)]
    order = np.lexsort((idx, -g.freq[idx]))
    return idx[order][: max(0, int(n))]


def neighbourhood(g: KPGraph, centre: int, hops: int = 1, cap: int = MAX_DRAW_NODES) -> np.ndarray:
    """``centre`` and its neighbours up to ``hops`` away, strongest links first, at most ``cap``."""
    chosen = [int(centre)]
    seen = {int(centre)}
    frontier = [int(centre)]
    for _ in range(max(1, hops)):
        scores: dict[int, float] = {}
        for u in frontier:
            nbrs, w = g.neighbors(u)
            for v, wt in zip(nbrs.tolist(), w.tolist()):
                if v not in seen:
                    scores[v] = scores.get(v, 0.0) + wt
        ranked = sorted(scores, key=lambda v: (-scores[v], -int(g.freq[v]), v))
        room = cap - len(chosen)
        ranked = ranked[: max(0, room)]
        chosen.extend(ranked)
        seen.update(ranked)
        frontier = ranked
        if len(chosen) >= cap or not frontier:
            break
    return np.asarray(chosen, dtype=np.int64)


def path_context(g: KPGraph, path: Sequence[int], cap: int = 60) -> np.ndarray:
    """A path's KPs plus their strongest neighbours, up to ``cap`` nodes, path first."""
    chosen = list(dict.fromkeys(int(v) for v in path))
    seen = set(chosen)
    scores: dict[int, float] = {}
    for u in chosen:
        nbrs, w = g.neighbors(u)
        for v, wt in zip(nbrs.tolist(), w.tolist()):
            if v not in seen:
                scores[v] = scores.get(v, 0.0) + wt
    ranked = sorted(scores, key=lambda v: (-scores[v], -int(g.freq[v]), v))
    chosen.extend(ranked[: max(0, cap - len(chosen))])
    return np.asarray(chosen, dtype=np.int64)


def subgraph_edges(g: KPGraph, nodes: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges among ``nodes`` as ``(src, dst, weight)`` arrays, each edge once (src < dst)."""
    keep = np.unique(np.asarray(nodes, dtype=np.int64))
    if keep.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    inside = np.zeros(g.n_nodes, dtype=bool)
    inside[keep] = True
    starts, ends = g.indptr[keep], g.indptr[keep + 1]
    lengths = ends - starts
    src = np.repeat(keep, lengths)
    pos = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if lengths.sum() else np.zeros(0, np.int64)
    dst = g.indices[pos].astype(np.int64)
    w = g.weights[pos]
    mask = inside[dst] & (dst > src)
    return src[mask], dst[mask], w[mask]


_PALETTE = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f", "#d62728",
    "#2ca02c", "#9467bd", "#aec7e8", "#ffbb78",
]


def discipline_colours(disciplines: Sequence[str]) -> dict[str, str]:
    """A stable colour per discipline (by position in the sorted list)."""
    return {d: _PALETTE[i % len(_PALETTE)] for i, d in enumerate(sorted(disciplines))}


def pyvis_html(
    g: KPGraph,
    nodes: Sequence[int],
    *,
    colour_by: str = "discipline",
    communities: Mapping[int, int] | None = None,
    path: Sequence[int] | None = None,
    height: int = 620,
) -> str:
    """A self-contained (offline) pyvis page of the subgraph on ``nodes``.

    Nodes and edges are appended to the pyvis network directly (its ``add_edge`` scans
    all edges, and ``from_nx`` is quadratic); vis.js is inlined; physics stabilises in a
    bounded number of iterations and is then switched off so the view stays still.
    """
    from pyvis.network import Network

    nodes = list(dict.fromkeys(int(v) for v in nodes))[:MAX_DRAW_NODES]
    path = [int(v) for v in (path or [])]
    on_path = {v: i for i, v in enumerate(path)}
    path_edges = {tuple(sorted((a, b))) for a, b in zip(path, path[1:])}
    net = Network(height=f"{height - 20}px", width="100%", cdn_resources="in_line", bgcolor="#ffffff")
    colours = discipline_colours(g.disciplines)
    fmax = float(max(int(g.freq[nodes].max()) if nodes else 1, 1))
    for v in nodes:
        name = g.names[v]
        disc = g.disciplines[int(g.discipline[v])]
        freq = int(g.freq[v])
        if colour_by == "community" and communities is not None:
            colour = _PALETTE[communities.get(v, 0) % len(_PALETTE)]
            group = f"community {communities.get(v, 0) + 1}"
        else:
            colour = colours.get(disc, "#999999")
            group = disc
        title = f"{name}\n{freq} seed(s) · {disc}\ndegree {int(g.degree[v])} · difficulty {g.difficulty[v]:.1f}"
        if colour_by == "community" and communities is not None:
            title += f"\n{group}"
        size = 8 + 32 * math.sqrt(freq / fmax)
        node = {
            "id": v, "label": name, "title": title, "color": colour, "shape": "dot", "size": round(size, 1),
            "font": {"size": 22 if freq / fmax > 0.25 else 16},
        }
        if v in on_path:
            node.update(label=f"{on_path[v] + 1}. {name}", borderWidth=4,
                        color={"background": colour, "border": "#d62728"}, font={"size": 24, "strokeWidth": 4})
        net.nodes.append(node)
        net.node_ids.append(v)
        net.node_map[v] = node
    src, dst, w = subgraph_edges(g, nodes)
    wmax = float(w.max()) if w.size else 1.0
    drawn = set()
    for a, b, wt in zip(src.tolist(), dst.tolist(), w.tolist()):
        edge = {"from": a, "to": b, "title": f"{int(wt)} seed(s) name both",
                "width": round(1 + 4 * math.log1p(wt) / math.log1p(wmax), 2), "color": "#c8c8c8"}
        if (a, b) in path_edges:
            edge.update(color="#d62728", width=5)
            drawn.add((a, b))
        net.edges.append(edge)
    for a, b in path_edges - drawn:  # e.g. a saved path whose KPs were merged since: still show the step
        if a in net.node_map and b in net.node_map:
            net.edges.append({"from": a, "to": b, "color": "#d62728", "width": 3, "dashes": True})
    iterations = 150 if len(nodes) <= 100 else 100
    net.set_options(json.dumps({
        "physics": {
            "enabled": True,
            "solver": "forceAtlas2Based",
            "forceAtlas2Based": {"gravitationalConstant": -60, "springLength": 90, "springConstant": 0.06,
                                 "avoidOverlap": 0.4},
            "stabilization": {"enabled": True, "iterations": iterations, "fit": True, "updateInterval": 25},
        },
        "interaction": {"hover": True, "tooltipDelay": 120, "hideEdgesOnDrag": len(nodes) > 150},
        "edges": {"smooth": False},
        "nodes": {"borderWidth": 1},
    }))
    page = net.generate_html()
    # pyvis's template also pulls bootstrap from a CDN for styling we do not use: drop it
    page = re.sub(r"<link[^>]*cdn\.jsdelivr\.net[^>]*/>", "", page, flags=re.S)
    page = re.sub(r"<script[^>]*cdn\.jsdelivr\.net[^>]*>\s*</script>", "", page, flags=re.S)
    page = page.replace("<center>\n<h1></h1>\n</center>", "").replace("<center>\n          <h1></h1>\n        </center>", "")
    freeze = ("<script>if (typeof network !== 'undefined') { network.once('stabilizationIterationsDone', "
              "function () { network.setOptions({physics: false}); }); }</script>")
    page = page.replace("</body>", freeze + "\n</body>")
    page = page.replace("<body>", "<body style=\"margin:0\">", 1)
    return page


# -- sampling ---------------------------------------------------------------------------


def knob_step(name: str, low: float, high: float, default: float) -> float | int:
    """Slider step for a knob: whole numbers for lengths, else a hundredth-ish of its range."""
    if isinstance(default, int) and float(low).is_integer() and float(high).is_integer():
        return 1
    if name == "tau":
        return 0.01
    if name == "difficulty_target":
        return 0.1
    return 0.05


def metrics_rows(metrics: Mapping[str, Any], baseline: Mapping[str, Any], names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per metric: the value walk, the uniform baseline and the difference."""
    rows = []
    for name in names:
        a, b = metrics.get(name), baseline.get(name)
        if not isinstance(a, (int, float)):
            continue
        rows.append({
            "metric": name,
            "value walk": a,
            "uniform baseline": b if isinstance(b, (int, float)) else None,
            "difference": round(a - b, 4) if isinstance(b, (int, float)) else None,
        })
    return rows


def visit_points(g: KPGraph, visits: np.ndarray, examples: int = 3) -> dict[str, list]:
    """The visited KPs as one point per distinct (frequency, visits) pair, for a scatter.

    Frequencies and visit counts are small integers, so thousands of visited KPs fall on a
    few hundred points (~160 for 1,000 paths on MMLU): drawing one marker per pair instead
    of one per KP keeps every KP in the picture with ~20x fewer SVG elements. Each point
    says how many KPs it stands for and names the ``examples`` most frequent ones
    (``x``, ``y``, ``count``, ``label``; points sorted by x, then y).
    """
    visits = np.asarray(visits)
    seen = np.flatnonzero(visits > 0)
    out: dict[str, list] = {"x": [], "y": [], "count": [], "label": []}
    if seen.size == 0:
        return out
    x, y = g.freq[seen].astype(np.int64), visits[seen].astype(np.int64)
    order = np.lexsort((seen, -x, y, x))  # by pair, then the KP's own frequency (highest first), then index
    x, y, seen = x[order], y[order], seen[order]
    starts = np.flatnonzero(np.r_[True, (x[1:] != x[:-1]) | (y[1:] != y[:-1])])
    ends = np.r_[starts[1:], seen.size]
    for a, b in zip(starts.tolist(), ends.tolist()):
        names = [g.names[int(i)] for i in seen[a : min(b, a + examples)]]
        more = b - a - len(names)
        out["x"].append(int(x[a]))
        out["y"].append(int(y[a]))
        out["count"].append(b - a)
        out["label"].append(", ".join(names) + (f" and {more:,} more" if more else ""))
    return out


def warm_up() -> float:
    """Compile (or load from numba's cache) the walk and bundle kernels on a 3-KP graph.

    Run once per process in the background so the first preview is not slow; returns
    the seconds it took.
    """
    import time

    from linkqa_core.graph.bundles import choose_bundles
    from linkqa_core.graph.build import graph_from_links
    from linkqa_core.graph.metrics import coverage_curve, sample_metrics
    from linkqa_core.graph.walks import WalkParams, uniform_walks, value_walks

    t = time.perf_counter()
    g = graph_from_links(
        np.array([1, 1, 1, 2, 2], dtype=np.int64), np.array([1, 2, 3, 1, 2], dtype=np.int64),
        np.zeros(3, dtype=np.int16), np.array([np.nan, 3.0, np.nan]), ["Other"],
    )
    params = WalkParams(min_len=2, max_len=3)
    walks = value_walks(g, params, 4, seed=0)
    value_walks(g, params, 4, seed=1, prior_visits=np.zeros(g.n_nodes, dtype=np.int64))
    base = uniform_walks(g, params, 4, seed=0)
    bundles = choose_bundles(g, walks)
    sample_metrics(g, walks, bundles)
    sample_metrics(g, base, choose_bundles(g, base))
    coverage_curve(g, walks)
    return time.perf_counter() - t

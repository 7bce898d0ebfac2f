"""UI-free helpers for the Studio pages: queries, upload handling, subgraphs, pyvis HTML.

Everything here is plain Python over the engine (no Streamlit import), so the pages
stay thin and these functions can be tested and timed on their own.

>>> from linkqa_core.store import Store
>>> store = Store(":memory:")
>>> next_step(store.counts())["page"]
'app_pages/1_Seeds.py'
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
    "resume_command",
    "difficulty_targets",
    "llm_config",
    "llm_settings",
    "llm_extractor_status",
    "make_llm_extractor",
    "test_llm_connection",
    "preview_upload",
    "import_upload",
    "DisciplineValue",
    "discipline_plan",
    "ingest_mapping",
    "mapping_from_choices",
    "bad_rows_table",
    "freq_histogram",
    "search_kp_names",
    "stored_kp_quality",
    "top_nodes",
    "neighbourhood",
    "path_context",
    "subgraph_edges",
    "pyvis_html",
    "path_svg",
    "discipline_colours",
    "knob_step",
    "knob_label",
    "knob_help",
    "KNOB_WORDS",
    "METRIC_WORDS",
    "metric_value",
    "metric_delta",
    "rebalance",
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
        return {"page": "app_pages/1_Seeds.py", "title": "Seeds", "label": "Load seeds",
                "why": "The database holds no seeds yet: upload a file or load the bundled sample."}
    if not counts.get("kps"):
        return {"page": "app_pages/2_Knowledge_points.py", "title": "Knowledge points", "label": "Extract knowledge points",
                "why": "Seeds are loaded; name their knowledge points to build the KP graph."}
    if not counts.get("runs"):
        return {"page": "app_pages/4_Path_sampling.py", "title": "Path sampling", "label": "Sample KP paths",
                "why": "The KP graph is ready: look at it, then preview and save a sample of paths."}
    if not counts.get("items"):
        return {"page": "app_pages/5_Synthesis.py", "title": "Synthesis", "label": "Synthesise QA",
                "why": "Paths are saved: write new QA items from the seed bundles of a saved run. With an "
                       "OpenAI-compatible endpoint configured (see LLM endpoint) a model writes them; without one the "
                       "offline composer writes simple two-part items, so the pipeline runs with no key."}
    if not counts.get("accepted_items"):
        return {"page": "app_pages/6_Review_and_export.py", "title": "Review & export", "label": "Review the generated QA",
                "why": "Items are generated: accept, reject or edit them, then export the accepted ones as JSONL."}
    return {"page": "app_pages/6_Review_and_export.py", "title": "Review & export", "label": "Export accepted QA",
            "why": "Accepted items are ready: export them as JSONL with their provenance (run, path, seeds, model)."}


def resume_command(store: Store, run_id: int) -> str:
    """The command that finishes an interrupted run (synthesis or enhancement) from a terminal."""
    import shlex

    verb = "enhance" if store.runs.stored_status(run_id) == "enhancing" else "synthesize"
    return f"python -m linkqa_core {verb} --run {run_id} --db {shlex.quote(str(store.path))}"


def difficulty_targets(rows: Sequence[Mapping[str, Any]], default_name: str) -> Any:
    """:class:`~linkqa_core.difficulty.targets.DifficultyTargets` from the page's table:
    one row per discipline with a percentage per level ("1" … "5"); the row named
    ``default_name`` is the default, and a discipline whose row equals it uses it."""
    from linkqa_core.difficulty.targets import LEVELS, DifficultyTargets

    def mix(row: Mapping[str, Any]) -> dict[int, float]:
        out = {}
        for lvl in LEVELS:
            v = row.get(str(lvl))
            out[lvl] = 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
        return out

    default = next((mix(r) for r in rows if r.get("discipline") == default_name), None)
    if default is None:
        raise InputError(f"the difficulty table has no '{default_name}' row")
    per = {r["discipline"]: mix(r) for r in rows if r.get("discipline") != default_name and mix(r) != default}
    return DifficultyTargets(default=default, per_discipline=per)


# -- LLM endpoint -----------------------------------------------------------------------


def _flatten_secrets(secrets: Mapping[str, Any] | None) -> dict[str, str]:
    """Top-level keys, plus those of an ``[llm]`` or ``[openai]`` table, upper-cased."""
    out: dict[str, str] = {}
    if not secrets:
        return out
    for section in ("llm", "openai"):
        table = secrets.get(section) if hasattr(secrets, "get") else None
        if isinstance(table, Mapping):
            for k, v in table.items():
                if isinstance(v, (str, int, float)):
                    name = str(k).upper()
                    name = {"BASE_URL": "OPENAI_BASE_URL", "API_KEY": "OPENAI_API_KEY", "MODEL": "LINKQA_MODEL"}.get(
                        name, name)
                    out.setdefault(name, str(v))
    for k, v in secrets.items():
        if isinstance(v, (str, int, float)):
            out[str(k).upper()] = str(v)
    return out


def llm_config(env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The endpoint settings from the environment, else from ``st.secrets`` (already read).

    Returns the values (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``LINKQA_MODEL``) and where
    each came from. The key is returned for the engine only: pages show ``has_key``.
    """
    env = os.environ if env is None else env
    flat = _flatten_secrets(secrets)
    values: dict[str, str] = {}
    origin: dict[str, str] = {}
    for key in LLM_KEYS:
        if env.get(key, "").strip():
            values[key], origin[key] = env[key].strip(), "environment"
        elif flat.get(key, "").strip():
            values[key], origin[key] = flat[key].strip(), "secrets.toml"
    configured = bool(values.get("OPENAI_API_KEY") or values.get("OPENAI_BASE_URL"))
    return {
        "values": values,
        "secrets": dict(secrets or {}),  # for the engine's own settings (concurrency…); never shown
        "origin": origin,
        "configured": configured,
        "base_url": values.get("OPENAI_BASE_URL"),
        "model": values.get("LINKQA_MODEL"),
        "has_key": bool(values.get("OPENAI_API_KEY")),
        "missing": [k for k in LLM_KEYS if k not in values],
    }


def llm_settings(config: Mapping[str, Any]) -> Any:
    """Engine settings for ``config`` (from :func:`llm_config`): environment over secrets.toml."""
    from linkqa_core.llm.client import settings_from_mapping

    values = dict(config.get("values", {}))
    return settings_from_mapping({**config.get("secrets", {}), **values})


def _scrub(text: str, config: Mapping[str, Any]) -> str:
    key = config.get("values", {}).get("OPENAI_API_KEY")
    if key:
        text = text.replace(key, "***")
    return re.sub(r"\b(sk-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]+", r"\1***", text)


def test_llm_connection(config: Mapping[str, Any]) -> tuple[bool, str]:
    """Ask the endpoint one tiny question; ``(ok, message)`` with the key never in the message."""
    from linkqa_core.llm.client import test_connection

    try:
        ok, message = test_connection(llm_settings(config))
    except LinkQAError as err:
        return False, _scrub(str(err), config)
    return ok, _scrub(message, config)


test_llm_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def llm_extractor_status(config: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the LLM extractor can run here, and if not, why (for the KP page).

    Nothing of the LLM engine is imported here: importing it (the openai client and its
    types) took ~0.4 s of every first visit of the KP page.
    """
    if not config.get("configured"):
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
                  progress: Progress | None = None, discipline_map: Mapping[str, str] | None = None) -> IngestReport:
    """Ingest uploaded bytes; the whole file or nothing (raises InputError on a bad file).

    ``discipline_map`` sets the discipline of rows by their subject/discipline value.
    """
    from linkqa_core.ingest.load import ingest

    if not data:
        raise InputError(f"{filename} is empty")
    mapping, discipline_map = ingest_mapping(mapping or {}, discipline_map or {})
    return ingest(store, data, filename=filename, mapping=mapping or None, progress=progress,
                  discipline_map=discipline_map or None)


@dataclass(frozen=True)
class DisciplineValue:
    """A subject or discipline value of an uploaded file: how many rows carry it and the
    discipline proposed for it (``None``: no good match, such rows go to "Other")."""

    value: str
    rows: int
    proposed: str | None


def _match_discipline(value: str) -> str | None:
    """The taxonomy's matcher when the engine has it, else the subject table / keywords."""
    from linkqa_core import taxonomy

    match = getattr(taxonomy, "match_discipline", None)
    if match is not None:
        return match(value)
    found = taxonomy.discipline_for(value)
    return None if found == "Other" and " ".join(value.split()).lower() != "other" else found


def discipline_plan(data: bytes, filename: str, mapping: Mapping[str, Any] | None,
                    limit: int = 200) -> tuple[list[DisciplineValue], str | None]:
    """The distinct subject/discipline values of an upload with their rows and proposals,
    and the column they come from (``None`` when the mapping names neither).

    Uses ``linkqa_core.ingest.load.discipline_values`` when the engine has it; else reads
    the file once here (the same rows :func:`import_upload` would keep).
    """
    from linkqa_core.ingest import load

    mapping = dict(mapping or {})
    column = mapping.get("discipline") or mapping.get("subject") or None
    if not column:
        return [], None
    engine = getattr(load, "discipline_values", None)
    if engine is not None:
        rows = engine(data, filename=filename, mapping=mapping, limit=limit)
        return [DisciplineValue(str(v), int(n), d) for v, n, d in rows], column
    result = load.load_seeds(data, filename=filename, mapping=mapping)
    counts: dict[str, int] = {}
    for seed in result.seeds:
        value = seed.discipline if mapping.get("discipline") else seed.subject
        if value:
            counts[value] = counts.get(value, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [DisciplineValue(v, n, _match_discipline(v)) for v, n in ranked], column


def ingest_mapping(mapping: Mapping[str, Any], discipline_map: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The column mapping and ``discipline_map`` to give :func:`import_upload`.

    An engine without ``discipline_values`` applies ``discipline_map`` to subjects only
    (a discipline column wins as written): a file with a discipline column and no subject
    column then has that column read as the subject, so the curator's choices apply.
    """
    from linkqa_core.ingest import load

    mapping = dict(mapping)
    if (discipline_map and not hasattr(load, "discipline_values") and mapping.get("discipline")
            and not mapping.get("subject")):
        mapping["subject"], mapping["discipline"] = mapping["discipline"], ""
    return mapping, dict(discipline_map)


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


def stored_kp_quality(store: Store, *, top: int = 200, per_discipline: int = 10) -> Any:
    """:class:`~linkqa_core.kps.quality.KPQuality` of the KPs stored now, from SQL counts
    (:meth:`KPStore.quality_counts`): the same measures the extraction report gives,
    without extracting again. The KP page caches it on the store's version."""
    from linkqa_core.kps.names import MAX_KPS, MIN_KPS
    from linkqa_core.kps.quality import KPQuality, is_general_word

    c = store.kps.quality_counts(top=top, per_discipline=per_discipline, min_kps=MIN_KPS, max_kps=MAX_KPS)
    general = tuple(label for key, label, _ in c["top"] if is_general_word(key))
    n = c["kps"]
    return KPQuality(
        seeds=c["seeds"], kps=n, links=c["links"], kps_per_seed_min=c["kps_per_seed_min"],
        kps_per_seed_max=c["kps_per_seed_max"], kps_per_seed_mean=round(c["kps_per_seed_mean"], 4),
        seeds_outside_bounds=c["seeds_outside_bounds"],
        singleton_share=round(c["singletons"] / n, 4) if n else 0.0,
        multiword_share=round(c["multiword"] / n, 4) if n else 0.0,
        top=len(c["top"]), general_word_share=round(len(general) / len(c["top"]), 4) if c["top"] else 0.0,
        general_words=general, top_kps=tuple((label, f) for _, label, f in c["top"][:30]),
        top_by_discipline={d: tuple(v) for d, v in c["top_by_discipline"].items()},
    )


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


NO_ARROWS = {"to": {"enabled": False}}  # pyvis gives each edge of a directed network an arrow


def _no_link_template(text: str) -> str:
    """pyvis switches its tooltips to ``innerHTML`` when any node title contains "href";
    a word joiner inside the word keeps data from turning that on (vis.js itself shows
    titles as text)."""
    return text.replace("href", "hr\u2060ef").replace("HREF", "HR\u2060EF")


def pyvis_html(
    g: KPGraph,
    nodes: Sequence[int],
    *,
    colour_by: str = "discipline",
    communities: Mapping[int, int] | None = None,
    path: Sequence[int] | None = None,
    height: int = 620,
) -> str:
    """A self-contained (offline) pyvis page of the subgraph on ``nodes``, with its legend.

    Built with pyvis's public calls only. The network is *directed* for pyvis, because
    an undirected network's ``add_edge`` scans every edge for a duplicate (quadratic;
    the edges here are unique already); arrows are switched off, so it reads as
    undirected. vis.js is inlined; physics stabilises in a bounded number of iterations
    and is then switched off so the view stays still. Names are data: vis.js draws
    labels on the canvas and shows titles as text, and the legend is HTML-escaped.
    """
    from pyvis.network import Network

    nodes = list(dict.fromkeys(int(v) for v in nodes))[:MAX_DRAW_NODES]
    path = [int(v) for v in (path or [])]
    on_path = {v: i for i, v in enumerate(path)}
    path_edges = {tuple(sorted((a, b))) for a, b in zip(path, path[1:])}
    net = Network(height=f"{height - 60}px", width="100%", cdn_resources="in_line", bgcolor="#ffffff",
                  directed=True)
    colours = discipline_colours(g.disciplines)
    fmax = float(max(int(g.freq[nodes].max()) if nodes else 1, 1))
    legend: dict[str, str] = {}
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
        legend.setdefault(group, colour)
        title = f"{name}\n{freq} seed(s) · {disc}\ndegree {int(g.degree[v])} · difficulty {g.difficulty[v]:.1f}"
        if colour_by == "community" and communities is not None:
            title += f"\n{group}"
        size = 8 + 32 * math.sqrt(freq / fmax)
        options: dict[str, Any] = {"title": _no_link_template(title), "size": round(size, 1),
                                   "font": {"size": 22 if freq / fmax > 0.25 else 16}}
        label = name
        if v in on_path:
            label = f"{on_path[v] + 1}. {name}"
            options.update(borderWidth=4, font={"size": 24, "strokeWidth": 4})
            colour = {"background": colour, "border": "#d62728"}  # type: ignore[assignment]
        net.add_node(v, label=label, shape="dot", color=colour, **options)
    src, dst, w = subgraph_edges(g, nodes)
    wmax = float(w.max()) if w.size else 1.0
    drawn = set()
    for a, b, wt in zip(src.tolist(), dst.tolist(), w.tolist()):
        edge: dict[str, Any] = {"title": f"{int(wt)} seed(s) name both", "arrows": NO_ARROWS,
                                "width": round(1 + 4 * math.log1p(wt) / math.log1p(wmax), 2), "color": "#c8c8c8"}
        if (a, b) in path_edges:
            edge.update(color="#d62728", width=5)
            drawn.add((a, b))
        net.add_edge(a, b, **edge)
    shown = set(nodes)
    for a, b in path_edges - drawn:  # e.g. a saved path whose KPs were merged since: still show the step
        if a in shown and b in shown:
            net.add_edge(a, b, color="#d62728", width=3, dashes=True, arrows=NO_ARROWS)
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
        "edges": {"smooth": False, "arrows": {"to": {"enabled": False}}},
        "nodes": {"borderWidth": 1},
    }))
    page = net.generate_html()
    # pyvis's template also pulls bootstrap from a CDN for styling we do not use: drop it
    page = re.sub(r"<link[^>]*cdn\.jsdelivr\.net[^>]*/>", "", page, flags=re.S)
    page = re.sub(r"<script[^>]*cdn\.jsdelivr\.net[^>]*>\s*</script>", "", page, flags=re.S)
    page = page.replace("<center>\n<h1></h1>\n</center>", "").replace("<center>\n          <h1></h1>\n        </center>", "")
    freeze = ("<script>if (typeof network !== 'undefined') { network.once('stabilizationIterationsDone', "
              "function () { network.setOptions({physics: false}); }); }</script>")
    page = page.replace("</body>", _legend_html(legend) + freeze + "\n</body>")
    page = page.replace("<body>", "<body style=\"margin:0\">", 1)
    return page


def _legend_html(colours: Mapping[str, str]) -> str:
    """Coloured dots and names under the drawing; every name HTML-escaped (names are data)."""
    import html

    items = " ".join(  # the spaces between items are where the legend wraps
        f'<span style="margin-right:10px;white-space:nowrap"><span style="color:{html.escape(c)}">●</span> '
        f"{html.escape(name)}</span>"
        for name, c in sorted(colours.items(), key=lambda kv: kv[0].casefold()))
    return (f'<div id="legend" style="font:13px sans-serif;color:#333;padding:6px 8px;line-height:1.7">'
            f"{items}</div>")




def path_svg(kps: Sequence[str], seed_kps: Sequence[set[str]], *, width: int = 560) -> str:
    """A small drawing of a path and its bundle, as SVG text: the KPs in walk order along
    the top, the seeds below, a line from each seed to each path KP it names.

    ``seed_kps[i]`` holds the matching keys (:func:`~linkqa_core.kps.names.normalize_kp`)
    of seed ``i``'s KPs. Every text is XML-escaped; shown as an image (``st.image``), an
    SVG can neither run scripts nor load anything.

    >>> svg = path_svg(["<b>a</b>", "b"], [{"b"}])
    >>> "&lt;b&gt;a&lt;/b&gt;" in svg and svg.count("<line") == 2
    True
    """
    from xml.sax.saxutils import escape

    from linkqa_core.kps.names import normalize_kp

    n, m = len(kps), len(seed_kps)
    height = 150 if m else 80
    pad = 40
    xs = [pad + (width - 2 * pad) * (i / max(n - 1, 1)) if n > 1 else width / 2 for i in range(n)]
    sx = [pad + (width - 2 * pad) * (j / max(m - 1, 1)) if m > 1 else width / 2 for j in range(m)]
    keys = [normalize_kp(k) for k in kps]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">']
    for j, named in enumerate(seed_kps):
        for i, key in enumerate(keys):
            if key in named:
                parts.append(f'<line x1="{sx[j]:.1f}" y1="118" x2="{xs[i]:.1f}" y2="30" stroke="#9ecae1" '
                             'stroke-width="1.5"/>')
    for i in range(n - 1):
        parts.append(f'<line x1="{xs[i]:.1f}" y1="30" x2="{xs[i + 1]:.1f}" y2="30" stroke="#d62728" stroke-width="3"/>')
    for i, name in enumerate(kps):
        label = name if len(name) <= 22 else name[:21] + "…"
        y = 14 if i % 2 else 54  # labels alternate above and below, so neighbours do not overlap
        parts.append(f'<circle cx="{xs[i]:.1f}" cy="30" r="8" fill="#4e79a7" stroke="#d62728" stroke-width="2"/>')
        parts.append(f'<text x="{xs[i]:.1f}" y="34" text-anchor="middle" fill="#fff" font-size="9">{i + 1}</text>')
        parts.append(f'<text x="{xs[i]:.1f}" y="{y}" text-anchor="middle" fill="#333">{escape(label)}</text>')
    for j in range(m):
        parts.append(f'<rect x="{sx[j] - 11:.1f}" y="118" width="22" height="16" rx="3" fill="#f28e2b"/>')
        parts.append(f'<text x="{sx[j]:.1f}" y="130" text-anchor="middle" fill="#fff">S{j + 1}</text>')
    parts.append("</svg>")
    return "".join(parts)


# -- sampling ---------------------------------------------------------------------------


# Each knob's words on the sliders: (label, what moving it does). The knob's one name
# (engine, CLI flag, stored config, export) closes the help text.
KNOB_WORDS: dict[str, tuple[str, str]] = {
    "w_pop": ("Popularity: favour KPs many seeds name",
              "Up: paths prefer frequent KPs (well linked, many seeds to bundle). Down: rare KPs get their turn."),
    "w_cov": ("Coverage: favour KPs not yet visited",
              "Up: each path goes where earlier paths have not been, so more KPs get covered."),
    "w_diff": ("Difficulty fit: favour KPs near the target difficulty",
               "Up: paths keep to KPs whose seeds are about as hard as the target difficulty below."),
    "alpha": ("Link pull: follow strong links",
              "Up: a step prefers the neighbour that most seeds share with the current KP. 0: link strength "
              "does not matter."),
    "tau": ("Randomness",
            "Low: always take the best-valued KP (greedy, repetitive). High: close to a uniform random walk."),
    "gamma": ("Coverage decay: how fast a visited KP loses appeal",
              "Up: a KP visited once is already far less attractive. Down: KPs are revisited more before "
              "coverage stops favouring them."),
    "min_len": ("Shortest path (KPs)", "Each path has at least this many KPs (fewer at a dead end)."),
    "max_len": ("Longest path (KPs)", "Each path has at most this many KPs; lengths are drawn evenly in between."),
    "difficulty_target": ("Target difficulty (1 easy – 5 hard)",
                          "The difficulty that the difficulty-fit term rewards."),
    "w_link": ("Linkage: favour KPs that bring in a new seed",
               "Up: the next KP is one a seed not yet in the bundle names, so each bundle joins several seeds "
               "that share KPs. 0: off (more coverage, looser bundles)."),
}


def knob_label(name: str) -> str:
    return KNOB_WORDS.get(name, (name, ""))[0]


def knob_help(name: str, engine_help: str = "") -> str:
    """What moving the knob does, then its name and meaning in the engine."""
    words = KNOB_WORDS.get(name, ("", ""))[1]
    return f"{words}\n\n`{name}` (CLI `--{name.replace('_', '-')}`): {engine_help}".strip()


# name -> (words, exact definition, which way is better: "up", "down" or "" , shown as "%", "int" or "num")
METRIC_WORDS: dict[str, tuple[str, str, str, str]] = {
    "n_paths": ("Paths", "paths sampled", "", "int"),
    "mean_path_length": ("KPs per path", "mean number of KPs on a path", "", "num"),
    "kps_visited": ("KPs visited", "distinct KPs on at least one path", "up", "int"),
    "kp_coverage": ("KP coverage", "share of all KPs of the graph visited by at least one path", "up", "%"),
    "popularity_weighted_coverage": ("Links covered", "share of seed–KP links whose KP some path visited "
                                     "(coverage weighted by how many seeds name each KP)", "up", "%"),
    "visit_entropy": ("Evenness of visits", "entropy of the visit counts divided by log(number of KPs): 1 when "
                      "every KP is visited equally often, 0 when one KP gets every visit", "up", "num"),
    "popularity_rank_correlation": ("Popularity bias", "Spearman rank correlation between a KP's visits and the "
                                    "number of seeds naming it: lower = less drawn to popular KPs", "down", "num"),
    "discipline_tv_distance": ("Off target", "total-variation distance between the realised and "
                               "the target discipline shares of paths: 0 = on target, 1 = disjoint", "down", "%"),
    "mean_seeds_per_path": ("Seeds per bundle", "mean number of seeds given together to the model per path",
                            "up", "num"),
    "mean_link_strength": ("Link strength", "path KPs named per chosen seed, averaged: higher = bundles whose "
                           "seeds cover more of the path each", "up", "num"),
    "bundle_share_2plus": ("Bundles of 2+ seeds", "share of bundles with at least 2 seeds", "up", "%"),
    "bundle_share_3plus": ("Bundles of 3+ seeds", "share of bundles with at least 3 seeds", "up", "%"),
    "bundles_below_min_seeds": ("Short bundles", "bundles with fewer seeds than asked for, because "
                                "fewer seeds name the path's KPs", "down", "int"),
    "mean_shared_kps": ("Shared KPs", "per bundle, the path KPs named by two or more of its seeds "
                        "(concept KPs only, not everyday words), averaged", "up", "num"),
}


def metric_value(name: str, value: Any) -> str:
    """A metric as a curator reads it: percentages, whole numbers, or 3 significant digits."""
    kind = METRIC_WORDS.get(name, ("", "", "", "num"))[3]
    if not isinstance(value, (int, float)):
        return "—"
    if kind == "%":
        return f"{value:.1%}"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:.3g}"


def metric_delta(name: str, value: Any, baseline: Any) -> str | None:
    """The difference to the uniform walk, in the metric's own unit (percentage points for shares)."""
    if not isinstance(value, (int, float)) or not isinstance(baseline, (int, float)):
        return None
    kind = METRIC_WORDS.get(name, ("", "", "", "num"))[3]
    d = value - baseline
    if kind == "%":
        return f"{d * 100:+.1f} pts vs uniform"
    if kind == "int":
        return f"{int(round(d)):+,} vs uniform"
    return f"{d:+.3g} vs uniform"


def rebalance(shares: Mapping[str, float], changed: str, value: float, step: float = 0.1) -> dict[str, float]:
    """Shares (in %) that add up to 100 after ``changed`` was set to ``value``: the others
    take the rest in proportion to what they had (evenly when they had nothing), rounded
    to ``step``, the rounding left over given to the largest of them.

    >>> rebalance({"a": 50.0, "b": 30.0, "c": 20.0}, "a", 80.0)
    {'a': 80.0, 'b': 12.0, 'c': 8.0}
    """
    value = min(max(float(value), 0.0), 100.0)
    others = [d for d in shares if d != changed]
    out = {changed: value}
    if not others:
        return {changed: 100.0}
    rest = 100.0 - value
    before = sum(max(float(shares[d]), 0.0) for d in others)
    for d in others:
        part = rest * max(float(shares[d]), 0.0) / before if before > 0 else rest / len(others)
        out[d] = round(round(part / step) * step, 6)
    left = round(100.0 - sum(out.values()), 6)
    if left:
        top = max(others, key=lambda d: (out[d], d))
        if out[top] + left >= 0:
            out[top] = round(out[top] + left, 6)
    return {d: out[d] for d in shares}


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

"""UI-free helpers for the Studio pages: start-up, the next step, the LLM endpoint, KPs,
sampling charts, the KP measures from the store.

Uploads are in :mod:`studio.uploads`, subgraphs and their drawings in :mod:`studio.drawing`,
the words a curator reads for knobs and metrics in :mod:`studio.words`.

Everything here is plain Python over the engine (no Streamlit import), so the pages
stay thin and these functions can be tested and timed on their own.

>>> from linkqa_core.store import Store
>>> store = Store(":memory:")
>>> next_step(store.counts())["page"]
'pages/1_Seeds.py'
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from linkqa_core.errors import LinkQAError
from linkqa_core.records import ExtractReport, IngestReport
from linkqa_core.store import Store

if TYPE_CHECKING:  # graph.py imports numba (~0.1 s): only the pages that draw or walk the graph need it
    from linkqa_core.graph.build import KPGraph

__all__ = [
    "AUTOLOAD_ENV",
    "LLM_KEYS",
    "autoload_requested",
    "load_sample",
    "graph_key",
    "next_step",
    "resume_command",
    "llm_config",
    "llm_settings",
    "llm_extractor_status",
    "make_llm_extractor",
    "test_llm_connection",
    "llm_modes",
    "freq_histogram",
    "search_kp_names",
    "stored_kp_quality",
    "knob_step",
    "metrics_rows",
    "visit_points",
    "warm_up",
]

AUTOLOAD_ENV = "LINKQA_AUTOLOAD_SAMPLE"
LLM_KEYS = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LINKQA_MODEL")

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
                       "offline composer asks two linked seeds together, so the pipeline runs with no key."}
    if not counts.get("accepted_items"):
        return {"page": "pages/6_Review_and_export.py", "title": "Review & export", "label": "Review the generated QA",
                "why": "Items are generated: accept, reject or edit them, then export the accepted ones as JSONL."}
    return {"page": "pages/6_Review_and_export.py", "title": "Review & export", "label": "Export accepted QA",
            "why": "Accepted items are ready: export them as JSONL with their provenance (run, path, seeds, model)."}


def resume_command(store: Store, run_id: int) -> str:
    """The command that finishes an interrupted run (synthesis or enhancement) from a terminal."""
    import shlex

    verb = "enhance" if store.runs.stored_status(run_id) == "enhancing" else "synthesize"
    return f"python -m linkqa_core {verb} --run {run_id} --db {shlex.quote(str(store.path))}"


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


# -- knowledge points -------------------------------------------------------------------


def freq_histogram(freq: np.ndarray, weights: np.ndarray | None = None) -> list[dict[str, Any]]:
    """KPs per frequency band (1, 2, 3-4, 5-8, … doubling), for a log-scale chart.

    ``freq`` holds one frequency per KP, or with ``weights`` each distinct frequency
    once and how many KPs have it (:meth:`KPStore.frequency_histogram`, an aggregate)."""
    freq = np.asarray(freq)
    if freq.size == 0:
        return []
    edges = [1, 2, 3]
    while edges[-1] <= freq.max():
        edges.append((edges[-1] - 1) * 2 + 1)
    counts, _ = np.histogram(freq, bins=edges, weights=weights)
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


def stored_kp_quality(store: Store, *, top: int = 200, per_discipline: int = 10, by_discipline: bool = True) -> Any:
    """:class:`~linkqa_core.kps.quality.KPQuality` of the KPs stored now, from SQL counts
    (:meth:`KPStore.quality_counts`): the same measures the extraction report gives,
    without extracting again. The KP page caches it on the store's version, and asks for
    the top KPs of each discipline (every link counted by its seed's discipline) apart,
    when that table is opened (``by_discipline=False`` leaves it empty)."""
    from linkqa_core.kps.names import MAX_KPS, MIN_KPS
    from linkqa_core.kps.quality import KPQuality, is_general_word

    c = store.kps.quality_counts(top=top, per_discipline=per_discipline, min_kps=MIN_KPS, max_kps=MAX_KPS,
                                 by_discipline=by_discipline)
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

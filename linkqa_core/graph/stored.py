"""The KP graph and its statistics, kept beside the database under the data version they came from.

Every process that needs the graph (a studio server, ``sample``, a pipeline run) used to
build it from the links again: 3.5 s at a million seeds, 43 CPU-s at ten million, which
was most of a first visit of the graph page. :func:`current_graph` loads the copy kept
under the data version it sees (:mod:`linkqa_core.store.derived`; any ingest, extraction,
merge or rename moves the version, so a stale copy is never used), its arrays mapped from
their files rather than read, and otherwise builds the graph and keeps it for the next
process. Extraction keeps it at its end (:func:`linkqa_core.kps.extract.run_extraction`).

>>> from linkqa_core.store import Store
>>> store = Store(":memory:")
>>> current_graph(store).n_nodes
0
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ..store import Store
from .build import KPGraph, build_graph

__all__ = ["current_graph", "current_stats", "load_graph", "save_graph"]

GRAPH_SET = "kp_graph"
STATS_SET = "kp_graph_stats"
FORMAT = 1  # bump when the arrays a KPGraph is kept as change
_ARRAYS = ("kp_ids", "freq", "discipline", "difficulty", "indptr", "indices", "weights", "seed_indptr",
           "seed_rids", "discipline_counts")


def save_graph(store: Store, graph: KPGraph, version: int) -> bool:
    """Keep ``graph`` as the graph of data version ``version``; False when it was not kept.

    A read-only or full disk only costs the next process a build, so a refusal is logged
    (by ``store.derived``), not raised.
    """
    arrays = {k: getattr(graph, k) for k in _ARRAYS}
    names = json.dumps(graph.names, ensure_ascii=False).encode("utf-8")
    arrays["names"] = np.frombuffer(names, dtype=np.uint8)
    header = {"format": FORMAT, "disciplines": graph.disciplines,
              "dtypes": {k: getattr(graph, k).dtype.str for k in _ARRAYS}}
    return store.derived.save(GRAPH_SET, version, header, arrays)


def load_graph(store: Store, version: int | None = None) -> KPGraph | None:
    """The graph kept under ``version`` (default: the data's current one), or None."""
    found = store.derived.load(GRAPH_SET, store.version() if version is None else version)
    if found is None:
        return None
    header, arrays = found
    if header.get("format") != FORMAT or set(arrays) != {*_ARRAYS, "names"}:
        return None
    if any(arrays[k].dtype.str != header["dtypes"].get(k) for k in _ARRAYS):
        return None
    fields: dict[str, Any] = {k: arrays[k] for k in _ARRAYS}
    return KPGraph(names=json.loads(arrays["names"].tobytes()), disciplines=list(header["disciplines"]), **fields)


def current_graph(store: Store, *, keep: bool = True) -> KPGraph:
    """The graph of the data as it is now: the kept copy if it is current, else built (and kept when ``keep``).

    The version is read before building: a write that lands during the build leaves the
    graph kept under the older version, and the next caller builds again.
    """
    version = store.version()
    graph = load_graph(store, version)
    if graph is None:
        graph = build_graph(store)
        if keep:
            save_graph(store, graph, version)
    return graph


def current_stats(store: Store, graph: KPGraph | None = None, **options: Any) -> dict[str, Any]:
    """:func:`~linkqa_core.graph.stats.graph_stats` of the current graph, kept like the graph.

    At ten million seeds the statistics (components, degree percentiles) take seconds;
    they change only with the data, so a new process reads them back. ``options`` go to
    ``graph_stats`` and are part of what is kept.
    """
    from .stats import graph_stats

    version = store.version()
    name = _stats_set(options)
    found = store.derived.load(name, version)
    if found is not None and found[0].get("options") == options:
        return found[0]["stats"]
    stats = graph_stats(graph if graph is not None else current_graph(store), **options)
    store.derived.save(name, version, {"options": options, "stats": stats}, {})
    return stats


def _stats_set(options: dict[str, Any]) -> str:
    """One kept set per choice of options: the page's defaults, ``graph --no-communities``."""
    if not options:
        return STATS_SET
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{STATS_SET}.{digest}"

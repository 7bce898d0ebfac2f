"""Parts of the KP graph to draw, and the drawings: a pyvis page (vis.js inlined, offline)
and a path with its bundle as a small SVG. UI-free; every name in them is data, kept as
text (see :func:`pyvis_html` and :func:`path_svg`).
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # graph.py imports numba (~0.1 s): only the pages that draw or walk the graph need it
    from linkqa_core.graph.build import KPGraph

__all__ = ["MAX_DRAW_NODES", "top_nodes", "neighbourhood", "path_context", "subgraph_edges", "discipline_colours",
           "pyvis_html", "path_svg"]

MAX_DRAW_NODES = 300


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

"""The pages' charts, built with plotly's graph objects (see the note below) and with every
text from data escaped for plotly, which reads tags such as ``<a href>`` in its labels.
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["bar_figure", "line_figure", "for_plotly"]


def for_plotly(text: Any) -> str:
    """A label for a plotly chart: plotly reads ``<b>``, ``<a href>``… in texts and hovers;
    entities it shows as the characters they stand for."""
    return html.escape(str(text), quote=False)


# Built with plotly's graph objects, not plotly express: px costs ~0.35 s on its first
# figure in a process (its import and set-up) and ~30–40 ms on every figure after; these
# take ~3 ms. They mirror what the pages asked of px (hover labels, legend title, order).


def bar_figure(rows: Any, x: str, y: str, *, colour: str | None = None, order: dict[str, list] | None = None,
               colours: dict[str, str] | None = None, barmode: str = "relative", orientation: str = "v",
               log_y: bool = False, percent: bool = False, title: str | None = None, height: int = 360,
               x_title: str | None = "", y_title: str | None = "", margin: dict | None = None,
               legend: dict | None = None, bar_colour: str | None = None) -> Any:
    """Bars of ``rows`` (dicts), one trace per value of ``colour`` (like ``px.bar``).

    ``order`` gives the order of values of ``x`` (category axis) or ``colour`` (traces);
    ``colours`` maps ``colour`` values to colours, ``bar_colour`` colours a single trace;
    axis titles default to the column names, ``None`` hides one. Text values (categories,
    trace names: data, such as disciplines) are escaped for plotly (:func:`for_plotly`).
    """
    import plotly.graph_objects as go

    def esc(v: Any) -> Any:
        return for_plotly(v) if isinstance(v, str) else v

    order = order or {}
    groups: dict[Any, list] = {}
    for r in rows:
        groups.setdefault(r[colour] if colour else None, []).append(r)
    names = list(groups)
    if colour and colour in order:
        rank = {v: i for i, v in enumerate(order[colour])}
        names.sort(key=lambda v: rank.get(v, len(rank)))
    hover = f"{x}=%{{x}}<br>{y}=%{{y}}"
    traces = []
    for name in names:
        part = groups[name]
        traces.append(go.Bar(
            x=[esc(r[x]) for r in part], y=[esc(r[y]) for r in part], orientation=orientation,
            name=for_plotly(name) if colour else "", showlegend=bool(colour),
            marker_color=(colours or {}).get(name) if colour else bar_colour,
            hovertemplate=hover + (f"<br>{colour}={for_plotly(name)}" if colour else "") + "<extra></extra>",
        ))
    value_axis = "xaxis" if orientation == "h" else "yaxis"
    category_axis = "yaxis" if orientation == "h" else "xaxis"
    layout: dict[str, Any] = {
        "barmode": barmode, "height": height, "title": title, "margin": margin or dict(l=10, r=10, t=40, b=10),
        "xaxis": {"title": {"text": x if x_title == "" else x_title}},
        "yaxis": {"title": {"text": y if y_title == "" else y_title}},
        "legend": legend if legend is not None else ({"title": {"text": colour}} if colour else {}),
    }
    if log_y:
        layout[value_axis]["type"] = "log"
    if percent:
        layout[value_axis]["tickformat"] = ".0%"
    cat = y if orientation == "h" else x
    if cat in order:
        layout[category_axis].update(type="category", categoryorder="array",
                                     categoryarray=[esc(v) for v in order[cat]])
    return go.Figure(data=traces, layout=layout)


def line_figure(series: dict[str, Any], *, x: str, y: str, colours: dict[str, str] | None = None,
                title: str | None = None, height: int = 360, percent: bool = False, legend: dict | None = None,
                margin: dict | None = None) -> Any:
    """One line per entry of ``series`` (name -> [(x, y), …]), like ``px.line``."""
    import plotly.graph_objects as go

    traces = [
        go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", name=name,
                   line={"color": (colours or {}).get(name)},
                   hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<extra>{name}</extra>")
        for name, points in series.items()
    ]
    layout: dict[str, Any] = {
        "height": height, "title": title, "margin": margin or dict(l=0, r=0, t=40, b=0),
        "xaxis": {"title": {"text": x}}, "yaxis": {"title": {"text": y}},
        "legend": legend or {},
    }
    if percent:
        layout["yaxis"]["tickformat"] = ".0%"
    return go.Figure(data=traces, layout=layout)

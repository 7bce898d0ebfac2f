"""The Studio's chart helpers: the preview scatter's points and the plotly figure builders."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

import studio.ui as ui
from studio.support import visit_points


def graph(freq: list[int]) -> SimpleNamespace:
    return SimpleNamespace(freq=np.array(freq), names=[f"kp{i}" for i in range(len(freq))])


def test_visit_points_stand_for_every_visited_kp_once_per_frequency_visits_pair():
    g = graph([5, 5, 5, 2, 2, 9, 1])
    visits = np.array([3, 3, 1, 3, 3, 0, 2])
    pts = visit_points(g, visits)
    pairs = list(zip(pts["x"], pts["y"]))
    assert pairs == sorted(set(pairs)) == [(1, 2), (2, 3), (5, 1), (5, 3)]
    assert sum(pts["count"]) == int((visits > 0).sum())  # kp5 (no visits) is left out
    assert dict(zip(pairs, pts["count"])) == {(1, 2): 1, (2, 3): 2, (5, 1): 1, (5, 3): 2}


def test_visit_points_name_a_few_kps_and_count_the_rest():
    g = graph([4] * 6)
    pts = visit_points(g, np.ones(6, dtype=int), examples=2)
    assert pts["label"] == ["kp0, kp1 and 4 more"]
    assert visit_points(g, np.zeros(6, dtype=int)) == {"x": [], "y": [], "count": [], "label": []}


def test_bar_figure_makes_one_trace_per_colour_in_the_given_order():
    rows = [{"d": "Law", "n": 3, "walk": "uniform"}, {"d": "Math", "n": 5, "walk": "value"},
            {"d": "Law", "n": 4, "walk": "value"}]
    fig = ui.bar_figure(rows, "d", "n", colour="walk", order={"walk": ["value", "uniform"], "d": ["Math", "Law"]},
                        colours={"value": "#111111"}, percent=True, log_y=True)
    assert [t.name for t in fig.data] == ["value", "uniform"]
    assert list(fig.data[0].x) == ["Math", "Law"] and list(fig.data[0].y) == [5, 4]
    assert fig.data[0].marker.color == "#111111"
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.tickformat == ".0%"
    assert list(fig.layout.xaxis.categoryarray) == ["Math", "Law"]


def test_horizontal_bar_figure_puts_values_on_x_and_hides_a_none_title():
    fig = ui.bar_figure([{"kp": "a", "seeds": 2}], "seeds", "kp", orientation="h", percent=True, y_title=None)
    assert fig.data[0].orientation == "h" and not fig.data[0].showlegend
    assert fig.layout.xaxis.tickformat == ".0%" and fig.layout.yaxis.title.text is None


def test_line_figure_draws_each_series_with_its_colour():
    fig = ui.line_figure({"value walk": [(1, 0.1), (2, 0.3)], "uniform": [(1, 0.1)]}, x="paths", y="coverage",
                         colours={"value walk": "#4e79a7"}, percent=True)
    assert [t.name for t in fig.data] == ["value walk", "uniform"]
    assert list(fig.data[0].y) == [0.1, 0.3] and fig.data[0].line.color == "#4e79a7"
    assert fig.layout.yaxis.tickformat == ".0%" and fig.layout.xaxis.title.text == "paths"

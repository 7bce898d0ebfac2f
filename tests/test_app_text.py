"""The studio's UI-free helpers for what a curator reads: data kept as text, knobs and
metrics in words, shares that add up, the graph drawing's escaping, the KP measures from
the stored links, the resume command of an interrupted run."""

from __future__ import annotations

import json
import re

import pytest

from linkqa_core.graph.build import build_graph
from linkqa_core.graph.metrics import METRIC_NAMES
from linkqa_core.graph.walks import KNOBS
from linkqa_core.ingest.load import ingest
from linkqa_core.kps.curate import kp_table, rename_kp
from linkqa_core.kps.quality import kp_quality
from linkqa_core.records import Extraction
from studio import drawing, support, words
from studio import ui

MARKUP = ("<b>x</b> [link](http://127.0.0.1:9/a) ![i](http://127.0.0.1:9/i.png) https://e.example/x "
          "www.e.example a@e.example :red[r] $x$ **b** `c` # h")


def test_plain_escapes_every_punctuation_mark_and_breaks_autolinks():
    out = ui.plain(MARKUP)
    assert not re.search(r"(?<!\\)[\[\]<>*`#$:]", out.replace("\\\\", "")), out  # none left unescaped
    assert "https\\:\\/\\/\u2060" in out and "www\u2060\\." in out and "a\\@\u2060e" in out
    assert ui.plain("two\n\nlines   here") == "two lines here"
    assert re.sub(r"\\(.)", r"\1", out).replace("\u2060", "") == " ".join(MARKUP.split())  # reads the same


def test_for_plotly_escapes_tags_and_ampersands():
    assert ui.for_plotly('<a href="x">R&D</a>') == '&lt;a href="x"&gt;R&amp;D&lt;/a&gt;'


def test_every_knob_and_metric_has_words_and_a_definition():
    for name, *_ in KNOBS:
        label, effect = words.KNOB_WORDS[name]
        assert label and "_" not in label and len(effect.split()) >= 6, name
        tip = words.knob_help(name, "engine help")
        assert tip.startswith(effect) and f"`{name}`" in tip and "engine help" in tip
    for name in (*METRIC_NAMES, "bundles_below_min_seeds", "n_paths", "mean_path_length", "kps_visited"):
        label, definition, better, kind = words.METRIC_WORDS[name]
        assert "_" not in label and definition and better in ("up", "down", "") and kind in ("%", "int", "num")


@pytest.mark.parametrize("name, value, baseline, shown, delta", [
    ("kp_coverage", 0.4963, 0.7466, "49.6%", "-25.0 pts vs uniform"),
    ("bundles_below_min_seeds", 213, 665, "213", "-452 vs uniform"),
    ("visit_entropy", 0.8712, 0.9389, "0.871", "-0.0677 vs uniform"),
    ("visit_entropy", None, 0.9, "—", None),
])
def test_metric_values_and_deltas_read_as_their_unit(name, value, baseline, shown, delta):
    assert words.metric_value(name, value) == shown
    assert words.metric_delta(name, value, baseline) == delta


@pytest.mark.parametrize("shares, changed, value", [
    ({"a": 50.0, "b": 30.0, "c": 20.0}, "a", 80.0),
    ({"a": 33.3, "b": 33.3, "c": 33.4}, "b", 10.0),
    ({"a": 100.0, "b": 0.0, "c": 0.0}, "a", 70.0),  # the others had nothing: they share the rest evenly
    ({f"d{i}": 7.7 for i in range(13)}, "d3", 33.3),
    ({"a": 50.0, "b": 50.0}, "a", 0.0),
    ({"a": 50.0, "b": 50.0}, "a", 140.0),  # clamped
])
def test_rebalance_always_adds_up_to_100(shares, changed, value):
    out = words.rebalance(shares, changed, value)
    assert list(out) == list(shares)
    assert out[changed] == min(value, 100.0)
    assert sum(out.values()) == pytest.approx(100.0, abs=1e-6)
    assert all(v >= 0 for v in out.values())


def test_rebalance_keeps_the_others_in_proportion():
    assert words.rebalance({"a": 50.0, "b": 30.0, "c": 20.0}, "a", 80.0) == {"a": 80.0, "b": 12.0, "c": 8.0}
    assert words.rebalance({"only": 40.0}, "only", 10.0) == {"only": 100.0}


def test_difficulty_targets_come_from_the_table_rows():
    rows = [{"discipline": "All disciplines", "1": 0, "2": 0, "3": 30, "4": 40, "5": 30},
            {"discipline": "Law", "1": 0, "2": 0, "3": 30, "4": 40, "5": 30},  # same as the default: uses it
            {"discipline": "Mathematics", "1": None, "2": 0, "3": 0, "4": 50, "5": 50}]
    targets = words.difficulty_targets(rows, "All disciplines")
    assert targets.for_discipline("Law") == {1: 0.0, 2: 0.0, 3: 0.3, 4: 0.4, 5: 0.3}
    assert targets.for_discipline("Mathematics") == {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.5, 5: 0.5}
    assert set(targets.per_discipline) == {"Mathematics"}
    with pytest.raises(Exception, match="the shares add up to 0"):
        words.difficulty_targets([{"discipline": "All disciplines", "1": 0, "2": 0, "3": 0, "4": 0, "5": 0}],
                                   "All disciplines")


def test_path_svg_escapes_names_and_links_seeds_to_the_kps_they_name():
    svg = drawing.path_svg(["<script>x</script>", "enzyme kinetics", "pH"], [{"enzyme kinetics", "ph"}, set()])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count('stroke="#9ecae1"') == 2  # seed 1 names two of the path's KPs, seed 2 none
    assert svg.count('stroke="#d62728" stroke-width="3"') == 2  # the path's two steps


def test_graph_drawing_escapes_the_legend_and_keeps_tooltips_as_text(sample_store):
    ingest(sample_store, json.dumps({"question": "Which pigment absorbs red light in leaves?",
                                     "answer": "chlorophyll", "discipline": MARKUP}).encode() + b"\n",
           filename="cli.jsonl")
    from linkqa_core.kps.extract import run_extraction

    run_extraction(sample_store)
    top = kp_table(sample_store, limit=1)[0]["name"]
    rename_kp(sample_store, top, 'see <a href="http://127.0.0.1:9/x">here</a>')
    g = build_graph(sample_store)
    nodes = [i for i in range(g.n_nodes) if g.disciplines[int(g.discipline[i])] == MARKUP][:3]
    nodes += list(drawing.top_nodes(g, 20))
    page = drawing.pyvis_html(g, nodes)
    legend = page[page.index('<div id="legend"'):]
    assert "<b>x</b>" not in legend and "&lt;b&gt;x&lt;/b&gt;" in legend
    data = page[page.index("nodes = new vis.DataSet(") + len("nodes = new vis.DataSet("):]
    data = data[: data.index(");")]
    assert "<a " not in data  # tags in data are JSON-escaped inside the script
    drawn = json.loads(data)
    assert any("href" in n["label"] for n in drawn)  # labels are drawn on the canvas, as text
    assert not any("href" in n["title"] for n in drawn)  # with "href" in a title pyvis turns tooltips into HTML
    assert '"arrows": {"to": {"enabled": false}}' in page  # undirected as drawn


def test_stored_kp_quality_agrees_with_the_measures_of_the_extractions(sample_store):
    stored = support.stored_kp_quality(sample_store)
    seeds = [s for _, s in sample_store.seeds.iter()]
    names = sample_store.seeds.kp_names([s.id for s in seeds])
    fresh = kp_quality([Extraction(s.id, tuple(sorted(names.get(s.id, ())))) for s in seeds], seeds)
    for field in ("seeds", "kps", "links", "kps_per_seed_min", "kps_per_seed_max", "kps_per_seed_mean",
                  "seeds_outside_bounds", "singleton_share", "multiword_share", "top", "general_word_share"):
        assert getattr(stored, field) == getattr(fresh, field), field
    assert [n for _, n in stored.top_kps] == [n for _, n in fresh.top_kps]
    assert {d: [n for _, n in v] for d, v in stored.top_by_discipline.items()} == \
        {d: [n for _, n in v] for d, v in fresh.top_by_discipline.items()}


def test_resume_command_names_the_step_that_was_cut_short(sample_store):
    from linkqa_core.graph.sampling import sample
    from linkqa_core.graph.walks import WalkParams

    rid = sample(sample_store, WalkParams(), 3, seed=1, save=True).run_id
    sample_store.runs.update(rid, status="synthesizing")
    assert sample_store.runs.get(rid).status == "interrupted"  # no process holds its lease
    assert support.resume_command(sample_store, rid).startswith(f"python -m linkqa_core synthesize --run {rid} --db ")
    sample_store.runs.update(rid, status="enhancing")
    assert support.resume_command(sample_store, rid).startswith(f"python -m linkqa_core enhance --run {rid} --db ")

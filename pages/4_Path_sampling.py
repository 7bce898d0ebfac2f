"""Path sampling: tune the value function, preview paths and their seed bundles, save a run."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import studio.ui as ui
from studio import support, words
from linkqa_core.errors import LinkQAError
from linkqa_core.graph.metrics import METRIC_NAMES
from linkqa_core.graph.sampling import LEDGERS, sample, save_sample
from linkqa_core.graph.walks import KNOBS, WalkParams, target_shares


store = ui.page_setup(
    "Path sampling", "🧭",
    caption="Paths walk the KP graph guided by a value for each KP; each path gets a bundle of seeds that together "
            "name its KPs. Move the settings, preview against a uniform random walk, save what you like as a run.",
)
with st.expander("How paths are chosen (the formula)", expanded=False):
    st.markdown(
        "For a KP *v*: popularity *p(v)* = log(1 + seeds naming *v*) / log(1 + most seeds naming a KP); "
        "coverage *c(v)* = (1 + visits(*v*))^−gamma; difficulty fit *h(v)* = 1 − |difficulty(*v*) − target| / 4; "
        "value *V(v)* = w_pop·*p* + w_cov·*c* + w_diff·*h*. A path starts in the discipline furthest below its "
        "target share, at a KP drawn ∝ exp((*V* + w_link·*l*)/tau), and steps to a neighbour drawn ∝ "
        "weight^alpha · exp((*V* + w_link·*l*)/tau), where *l* = 1 when the KP brings in a seed the bundle lacks. "
        "See docs/method.md.")
ui.need(store, "kps")
g = ui.get_graph(store)

SHOW_METRICS = ("n_paths", "mean_path_length", "kps_visited", *METRIC_NAMES, "bundles_below_min_seeds")
WALK_COLOURS = {"value walk": "#4e79a7", "uniform baseline": "#f28e2b"}
SHARE = "share_"  # session keys of the discipline share sliders


def save_preview() -> None:
    """Store the preview on screen as a run (a callback, so the button redraws as done)."""
    preview = st.session_state.get("sample_preview")
    if preview is None or preview["result"].run_id is not None:
        return
    try:
        save_sample(store, preview["result"], name=(st.session_state.get("run_name") or "").strip() or None)
    except LinkQAError as err:
        st.session_state["save_error"] = str(err)


# -- settings -------------------------------------------------------------------------------------

def _share_moved(changed: str) -> None:
    """A discipline's share moved: the others make room (or fill in), so all add up to 100 %."""
    now = {k[len(SHARE):]: float(v) for k, v in st.session_state.items() if str(k).startswith(SHARE)}
    for d, v in words.rebalance(now, changed, now[changed]).items():
        st.session_state[SHARE + d] = v


def _reset_shares(defaults: dict[str, float]) -> None:
    for d, v in defaults.items():
        st.session_state[SHARE + d] = v


knobs_col, out_col = st.columns([1, 2.4], gap="large")
with knobs_col:
    st.subheader("Settings")
    knobs = {}
    for name, default, low, high, help_text in KNOBS:
        step = support.knob_step(name, low, high, default)
        label, tip = words.knob_label(name), words.knob_help(name, help_text)
        if step == 1:
            knobs[name] = st.slider(label, int(low), int(high), int(default), step=1, help=tip, key=f"knob_{name}")
        else:
            knobs[name] = st.slider(label, float(low), float(high), float(default), step=float(step), help=tip,
                                    key=f"knob_{name}")
    n_paths = st.number_input("Number of paths", 1, 1_000_000, 1000, step=100, key="n_paths")
    seed = st.number_input("Random seed", 0, 2**31 - 1, 0, step=1, key="seed",
                           help="same settings and seed, same paths")
    ledger = st.radio("Coverage counts", LEDGERS, horizontal=True, key="ledger",
                      format_func={"fresh": "this sample only", "all": "every saved run too"}.get,
                      help="every saved run too: KPs that saved runs visited count as already covered, so a new "
                           "run goes elsewhere (`--ledger all`)")
    default_shares = target_shares(g, WalkParams())
    has_kps = np.bincount(g.discipline, minlength=len(g.disciplines)) > 0
    present = [d for d, k in zip(g.disciplines, has_kps) if k]
    data_shares = dict(zip(present, words.rebalance(
        {d: float(s) * 100 for d, s, k in zip(g.disciplines, default_shares, has_kps) if k},
        present[0], float(default_shares[g.disciplines.index(present[0])]) * 100).values())) if present else {}
    for d, v in data_shares.items():
        ui.remember(SHARE + d, v)
    for key in [k for k in st.session_state if str(k).startswith(SHARE) and k[len(SHARE):] not in data_shares]:
        del st.session_state[key]  # a discipline no longer in the data
    custom = any(abs(st.session_state[SHARE + d] - v) > 0.05 for d, v in data_shares.items())
    with st.popover("Discipline shares: " + ("your own" if custom else "as in the data"), width="stretch",
                    key="shares_popover"):
        st.caption("The share of paths that start in each discipline. Move one and the others make room, so "
                   "they always add up to 100 %. Set one to 0 to leave a discipline out.")
        for d in present:
            st.slider(ui.plain(d), 0.0, 100.0, step=0.1, format="%.1f %%", key=SHARE + d,
                      on_change=_share_moved, args=(d,))
        st.caption(f"In all: {sum(st.session_state[SHARE + d] for d in present):.1f} %")
        st.button("Back to the data's shares", key="reset_shares", on_click=_reset_shares, args=(data_shares,))
    mix = tuple((d, float(st.session_state[SHARE + d])) for d in present) if custom else None

    try:
        params = WalkParams(**knobs, mix=mix)
        settings_error = None
    except LinkQAError as err:
        params, settings_error = None, str(err)
    if settings_error:
        st.error(ui.plain(f"{settings_error} (see the sliders' help for each name)"))
    preview_clicked = st.button("Preview", type="primary", disabled=params is None, key="preview",
                                width="stretch")

current = {"params": params.to_dict() if params else None, "n_paths": int(n_paths), "seed": int(seed),
           "ledger": ledger}

if preview_clicked and params is not None:
    t = time.perf_counter()
    try:
        result = sample(store, params, int(n_paths), seed=int(seed), ledger=ledger, graph=g)
    except LinkQAError as err:
        st.session_state["preview_error"] = str(err)
    else:
        st.session_state.pop("preview_error", None)
        st.session_state["sample_preview"] = {"result": result, "config": current, "seconds": time.perf_counter() - t}

# -- results --------------------------------------------------------------------------------------

with out_col:
    if st.session_state.get("preview_error"):
        st.error(st.session_state["preview_error"])
    preview = st.session_state.get("sample_preview")
    if preview is not None and preview["result"].graph is not g:
        # the data changed since (new KPs, a merge): the old preview's indices no longer fit
        preview = None
        st.session_state.pop("sample_preview", None)
    if preview is None:
        st.subheader("Preview")
        st.info("Set the knobs on the left and press **Preview** to sample paths; nothing is stored until you "
                "save the preview as a run.")
        now = target_shares(g, params) if params is not None else default_shares
        shown = [{"discipline": d, "share": float(v)} for d, v, k in zip(g.disciplines, now, has_kps) if k]
        fig = ui.bar_figure(shown, "discipline", "share", height=360, title="Target discipline shares of paths",
                            bar_colour="#bab0ac", percent=True, x_title=None, margin=dict(l=0, r=0, t=40, b=0))
        st.plotly_chart(fig, key="target_shares_chart")
        st.stop()

    result = preview["result"]
    m, b = result.metrics, result.baseline
    st.subheader(f"Preview: {result.n_paths:,} paths")
    stale = preview["config"] != current
    st.caption(f"Sampled in {preview['seconds']:.2f} s (value walk and uniform baseline), seed {result.seed}, "
               f"ledger {result.ledger}." + (" **The settings changed since: press Preview to update.**"
                                              if stale else ""))

    s1, s2, s3 = st.columns([3, 1.4, 2], vertical_alignment="bottom")
    s1.text_input("Run name (optional)", key="run_name", placeholder="e.g. balanced-w_cov2")
    s2.button("Save as run", type="primary", key="save_run", disabled=result.run_id is not None,
              on_click=save_preview, help="store these paths and bundles with their settings and metrics")
    if st.session_state.get("save_error"):
        st.error(st.session_state.pop("save_error"))
    if result.run_id is not None:
        s3.success(f"Saved as run {result.run_id}.")
        st.page_link(ui.PAGES["synthesis"], label=f"Next: synthesise QA from run {result.run_id}", icon="➡️")

    with st.container(key="preview_metrics"):
        cols = st.columns(4)
        for i, name in enumerate(n for n in SHOW_METRICS if isinstance(m.get(n), (int, float))):
            label, definition, better, _ = words.METRIC_WORDS.get(name, (name, "", "", "num"))
            cols[i % 4].metric(
                label, words.metric_value(name, m[name]),
                delta=words.metric_delta(name, m[name], b.get(name)) if better else None,
                delta_color={"up": "normal", "down": "inverse"}.get(better, "off"),
                help=f"{definition}. Uniform random walk: {words.metric_value(name, b.get(name))}. (`{name}`)")
    with st.expander("All the numbers", expanded=False):
        rows = support.metrics_rows(m, b, SHOW_METRICS)
        table = pd.DataFrame(rows)
        table.insert(1, "measure", [words.METRIC_WORDS.get(r["metric"], (r["metric"],))[0] for r in rows])
        st.dataframe(table, hide_index=True, width="stretch", key="metrics_table",
                     column_config={"metric": st.column_config.TextColumn("name", help="the name in exports and "
                                                                          "the CLI's --json output")})

    c1, c2 = st.columns(2)
    fig = ui.line_figure({"value walk": m.get("coverage_curve", []), "uniform baseline": b.get("coverage_curve", [])},
                         x="paths", y="KP coverage", title="Coverage as paths grow", height=360, percent=True,
                         colours=WALK_COLOURS, legend=dict(orientation="h", y=-0.2))
    c1.plotly_chart(fig, key="coverage_curve")

    fig = go.Figure()
    for label, visits in (("value walk", result.walks.visits), ("uniform baseline", result.baseline_walks.visits)):
        pts = support.visit_points(g, visits)  # one marker per (frequency, visits) pair, sized by its KPs
        fig.add_trace(go.Scatter(x=pts["x"], y=pts["y"], mode="markers", name=label, opacity=0.6,
                                 marker=dict(size=[5 + 1.5 * np.log2(c) for c in pts["count"]],
                                             color=WALK_COLOURS[label]),
                                 customdata=pts["count"], text=[ui.for_plotly(t) for t in pts["label"]],
                                 hovertemplate="%{customdata:,} KP(s): %{text}<br>freq %{x}, visits %{y}"
                                               "<extra></extra>"))
    fig.update_layout(title="Visits vs KP frequency (log axes; size: KPs)", height=360,
                      xaxis=dict(type="log", dtick=1), yaxis=dict(type="log", dtick=1),
                      xaxis_title="seeds naming the KP", yaxis_title="visits",
                      margin=dict(l=0, r=0, t=40, b=0), legend=dict(orientation="h", y=-0.2))
    c2.plotly_chart(fig, key="visits_scatter")

    shares = []
    for label, source in (("target", m.get("target_shares", {})), ("value walk", m.get("discipline_shares", {})),
                          ("uniform baseline", b.get("discipline_shares", {}))):
        shares += [{"discipline": d, "share": s, "of": label} for d, s in source.items()]
    fig = ui.bar_figure(shares, "discipline", "share", colour="of", barmode="group", height=360,
                        title="Discipline shares of paths: realised vs target",
                        colours={"target": "#bab0ac", **WALK_COLOURS}, percent=True, x_title=None, legend={},
                        margin=dict(l=0, r=0, t=40, b=0))
    st.plotly_chart(fig, key="shares_bar")

    st.subheader("Paths and their seed bundles")
    show = st.selectbox("Show the first", [10, 25, 50], index=0, key="show_paths", format_func=lambda n: f"{n} paths")
    records = result.paths(store, limit=int(show))
    seeds = {s.id: s for s in store.seeds.get(sorted({i for r in records for i in r.seed_ids}))}
    for rec in records:
        strength = np.mean(rec.link_strength) if rec.link_strength else 0.0
        with st.expander(ui.plain(f"#{rec.index + 1} · {rec.discipline} · {' → '.join(rec.kps)} "
                                  f"({len(rec.seed_ids)} seeds, link strength {strength:.1f})")):
            for sid, link in zip(rec.seed_ids, rec.link_strength):
                s = seeds.get(sid)
                if s is None:
                    continue
                st.caption(ui.plain(f"{s.subject or s.discipline} · names {link} of the path's KPs · {sid}"))
                ui.seed_text(s)

"""Path sampling: tune the value function, preview paths and their seed bundles, save a run."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import studio.ui as ui
from studio import support
from linkqa_core.errors import LinkQAError
from linkqa_core.graph.metrics import METRIC_NAMES
from linkqa_core.graph.sampling import LEDGERS, sample, save_sample
from linkqa_core.graph.walks import KNOBS, WalkParams, target_shares

store = ui.page_setup(
    "Path sampling", "🧭",
    caption="Value-guided walks over the KP graph: V(v) = w_pop·popularity + w_cov·coverage + w_diff·difficulty "
            "fit; start ∝ exp(V/tau) in the discipline furthest below its target share; step ∝ "
            "weight^alpha · exp(V/tau). Each path gets a bundle of seeds that together name its KPs.",
)
ui.need(store, "kps")
g = ui.get_graph(store)

METRIC_HELP = {
    "kp_coverage": "share of all KPs visited by some path",
    "popularity_weighted_coverage": "share of seed–KP links whose KP was visited",
    "visit_entropy": "evenness of visits (1 = every KP equally often)",
    "popularity_rank_correlation": "Spearman correlation of visits with KP frequency (lower = less popularity bias)",
    "discipline_tv_distance": "total-variation distance between realised and target discipline shares (0 = on target)",
    "mean_seeds_per_path": "seeds in a path's bundle, on average",
    "mean_link_strength": "path KPs named per chosen seed (higher = more strongly linked bundles)",
}
SHOW_METRICS = ("n_paths", "mean_path_length", "kps_visited", *METRIC_NAMES)
WALK_COLOURS = {"value walk": "#4e79a7", "uniform baseline": "#f28e2b"}


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

knobs_col, out_col = st.columns([1, 2.4], gap="large")
with knobs_col:
    st.subheader("Settings")
    knobs = {}
    for name, default, low, high, help_text in KNOBS:
        step = support.knob_step(name, low, high, default)
        if step == 1:
            knobs[name] = st.slider(name, int(low), int(high), int(default), step=1, help=help_text,
                                    key=f"knob_{name}")
        else:
            knobs[name] = st.slider(name, float(low), float(high), float(default), step=float(step),
                                    help=help_text, key=f"knob_{name}")
    n_paths = st.number_input("Number of paths", 1, 1_000_000, 1000, step=100, key="n_paths")
    seed = st.number_input("Random seed", 0, 2**31 - 1, 0, step=1, key="seed",
                           help="same settings and seed, same paths")
    ledger = st.radio("Coverage ledger", LEDGERS, horizontal=True, key="ledger",
                      help="fresh: coverage counts this sample only; all: KPs visited by saved runs count as "
                           "already covered, so a new run goes elsewhere")
    default_shares = target_shares(g, WalkParams())
    has_kps = np.bincount(g.discipline, minlength=len(g.disciplines)) > 0
    base_df = pd.DataFrame({
        "discipline": [d for d, k in zip(g.disciplines, has_kps) if k],
        "target %": [round(float(s) * 100, 1) for s, k in zip(default_shares, has_kps) if k],
    })
    with st.expander("Discipline target shares", expanded=False):
        st.caption("Default: as in the data (by seed–KP links). Shares are normalised, so they need not add "
                   "up to 100; set one to 0 to leave a discipline out.")
        shares_df = st.data_editor(base_df, hide_index=True, disabled=["discipline"], key="shares_editor",
                                   column_config={"target %": st.column_config.NumberColumn(min_value=0.0,
                                                                                            step=0.5)})
        st.button("Reset to the data's shares", key="reset_shares",
                  on_click=lambda: st.session_state.pop("shares_editor", None))
    edited = shares_df["target %"].fillna(0).astype(float).to_numpy()
    mix = None
    if not np.allclose(edited, base_df["target %"].to_numpy()):
        mix = tuple((d, float(s)) for d, s in zip(shares_df["discipline"], edited))

    try:
        params = WalkParams(**knobs, mix=mix)
        settings_error = None
    except LinkQAError as err:
        params, settings_error = None, str(err)
    if settings_error:
        st.error(settings_error)
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

    rows = support.metrics_rows(m, b, SHOW_METRICS)
    table = pd.DataFrame(rows).set_index("metric")
    st.table(table.style.format("{:.4g}", na_rep="—"))
    with st.expander("What the metrics mean"):
        st.markdown("\n".join(f"- **{k}**: {v}" for k, v in METRIC_HELP.items()))

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
                                 customdata=pts["count"], text=pts["label"],
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
        with st.expander(f"#{rec.index + 1} · {rec.discipline} · {' → '.join(rec.kps)}  "
                         f"({len(rec.seed_ids)} seeds, link strength {strength:.1f})"):
            for sid, link in zip(rec.seed_ids, rec.link_strength):
                s = seeds.get(sid)
                if s is None:
                    continue
                st.markdown(f"**{ui.md(s.subject or s.discipline)}** · names {link} of the path's KPs · `{sid}`")
                st.markdown("> " + ui.md(s.question).replace("\n", "\n> "))
                if s.options:
                    st.markdown("\n".join(
                        f"- **{chr(65 + i)}. {ui.md(o)}** ✓" if o == s.answer else f"- {chr(65 + i)}. {ui.md(o)}"
                        for i, o in enumerate(s.options)))
                else:
                    st.markdown(f"Answer: {ui.md(s.answer)}")

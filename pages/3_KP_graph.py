"""KP graph: draw a chosen part of the graph, with its statistics beside it."""

from __future__ import annotations

import numpy as np
import streamlit as st

import studio.ui as ui
from studio import drawing, support
from linkqa_core.errors import LinkQAError
from linkqa_core.graph.walks import WalkParams, value_walks

store = ui.page_setup("KP graph", "🕸️", caption="Nodes are knowledge points (size = seeds naming it); an edge joins "
                      "two KPs named by the same seed (width = how many). Only a part is drawn, at most "
                      f"{drawing.MAX_DRAW_NODES} nodes, so the view stays fast.")
ui.need(store, "kps")
g = ui.get_graph(store)

VIEWS = ["Top KPs", "One discipline", "Around a KP", "A sampled path"]
c1, c2, c3 = st.columns([3, 4, 2])
view = c1.radio("Show", VIEWS, key="g_view")
colour_by = c3.radio("Colour by", ["discipline", "community"], key="g_colour", horizontal=False,
                     help="community = Louvain communities of the drawn subgraph")

nodes: np.ndarray = np.zeros(0, dtype=np.int64)
path: list[int] = []
note = ""
with c2:
    if view == "Top KPs":
        n = st.slider("How many KPs", 10, drawing.MAX_DRAW_NODES, 100, step=10, key="g_top_n")
        nodes = drawing.top_nodes(g, n)
        note = f"The {len(nodes)} most frequent KPs."
    elif view == "One discipline":
        sizes = np.bincount(g.discipline, minlength=len(g.disciplines))
        present = [d for d, s in zip(g.disciplines, sizes) if s > 0]
        disc = st.selectbox("Discipline", present, key="g_discipline",
                            format_func=lambda d: f"{d} ({sizes[g.disciplines.index(d)]:,} KPs)")
        n = st.slider("How many of its KPs", 10, drawing.MAX_DRAW_NODES, 80, step=10, key="g_disc_n")
        nodes = drawing.top_nodes(g, n, disc)
        note = f"The {len(nodes)} most frequent KPs whose main discipline is {disc}."
    elif view == "Around a KP":
        text = st.text_input("Find a KP", value=g.names[int(drawing.top_nodes(g, 1)[0])], key="g_search")
        hits = support.search_kp_names(g, text)
        if not hits:
            st.warning(ui.plain(f"No KP name contains '{text}'."))
        else:
            centre = st.selectbox("KP", hits, key="g_centre",
                                  format_func=lambda i: f"{g.names[i]} ({int(g.freq[i])} seeds)")
            h1, h2 = st.columns(2)
            hops = h1.radio("Hops", [1, 2], horizontal=True, key="g_hops")
            cap = h2.slider("At most", 10, drawing.MAX_DRAW_NODES, 120, step=10, key="g_cap")
            nodes = drawing.neighbourhood(g, int(centre), hops=int(hops), cap=int(cap))
            note = (f"'{g.names[int(centre)]}' and its neighbours up to {hops} hop(s), strongest links first "
                    f"({len(nodes)} KPs; it has {int(g.degree[int(centre)]):,} direct neighbours).")
            path = [int(centre)]
    else:
        runs = store.runs.list(kind="sample")
        source = st.radio("Path", ["Sample one now (default knobs)", "From a saved run"], horizontal=True,
                          key="g_path_source", disabled=False)
        if source.startswith("Sample"):
            s1, s2 = st.columns([2, 1])
            seed = s1.number_input("Random seed", 0, 2**31 - 1, 0, key="g_path_seed")
            s2.button("Another path", key="g_next_path",
                      on_click=lambda: st.session_state.update(g_path_seed=int(st.session_state["g_path_seed"]) + 1))
            try:
                walks = value_walks(g, WalkParams(), 1, seed=int(seed))
                path = [int(v) for v in walks.path(0)]
            except LinkQAError as err:
                ui.show_error(err)
        elif not runs:
            st.info("No saved runs yet: save one on the Path sampling page, or sample a path here.")
        else:
            run_id = st.selectbox("Run", [r.id for r in reversed(runs)], key="g_run",
                                  format_func=lambda i: next(f"run {r.id}" + (f" · {r.name}" if r.name else "")
                                                             + f" · {r.n_paths:,} paths" for r in runs if r.id == i))
            stored = store.runs.paths(int(run_id))
            if stored:
                idx = st.number_input("Path number", 1, len(stored), 1, key="g_run_path")
                rec = stored[int(idx) - 1]
                path = [i for i in (g.index_of_name(k) for k in rec.kps) if i is not None]
                if len(path) < len(rec.kps):
                    st.warning("Some KPs of this path are no longer in the graph (merged or re-extracted).")
        if path:
            cap = st.slider("Neighbours to show around it", 0, 200, 40, step=10, key="g_path_cap")
            nodes = drawing.path_context(g, path, cap=len(path) + int(cap))
            note = "Path: " + " → ".join(g.names[v] for v in path)

left, right = st.columns([3, 1])
with left:
    if len(nodes):
        html = ui.get_graph_html(store, nodes, colour_by, path if view == "A sampled path" else ())
        st.iframe(html, height=640, alt="KP graph")
        st.caption(ui.plain(note))
    else:
        st.info("Nothing to draw for this choice.")

with right:
    stats = ui.get_graph_stats(store)
    st.markdown("**Whole graph**")
    st.metric("KPs", f"{stats['nodes']:,}")
    st.metric("Edges", f"{stats['edges']:,}")
    st.metric("Components", f"{stats['components']:,}",
              help=f"the largest holds {stats['largest_component_share']:.1%} of KPs")
    st.markdown(f"Largest component: **{stats['largest_component_share']:.1%}** of KPs  \n"
                f"Isolated KPs: **{stats['isolated']:,}**  \n"
                f"Mean degree: **{stats['mean_degree']:.2f}** (max {stats['degree'].get('max', 0):,})")
    comm = stats.get("communities")
    if comm:
        st.markdown(f"Communities: **{comm['count']:,}** in the largest component, "
                    f"modularity {comm['modularity']:.3f}")
    elif stats.get("communities_skipped"):
        st.caption(f"Communities not computed for the whole graph: {stats['communities_skipped']}.")
    src, _, _ = drawing.subgraph_edges(g, nodes)
    st.markdown(f"**Drawn:** {len(nodes):,} KPs, {len(src):,} edges")
    hist = stats["degree"].get("histogram", {})
    if hist:
        fig = ui.bar_figure([{"degree": d, "KPs": n} for d, n in hist.items()], "degree", "KPs", log_y=True,
                            height=260, title="Degree distribution", order={"degree": list(hist)},
                            margin=dict(l=0, r=0, t=30, b=0))
        st.plotly_chart(fig, key="degree_hist")

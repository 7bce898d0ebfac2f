"""Knowledge points: extract them, look at them, merge and rename them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import studio.ui as ui
from studio import support
from linkqa_core.errors import LinkQAError
from linkqa_core.kps.curate import merge_kps, rename_kp
from linkqa_core.kps.extract import run_extraction
from linkqa_core.kps.names import normalize_kp

store = ui.page_setup("Knowledge points", "🧩", caption="Each seed gets 2–8 knowledge points (KPs); seeds that "
                      "share a KP are linked in the KP graph. Merge near-duplicates so that links are not lost.")
ui.need(store, "seeds")
ui.flash()  # a sample loaded from the notice above

# -- extraction -------------------------------------------------------------------------------

counts = store.counts()
st.subheader("Extract")
llm_ok, llm_why = support.llm_extractor_status(ui.get_llm_config())
e1, e2 = st.columns([2, 3])
with e1:
    choice = st.radio(
        "Extractor", ["offline", "llm"], horizontal=True, key="extractor",
        format_func=lambda x: "Offline (no model, no network)" if x == "offline" else "LLM",
        captions=["phrase statistics over the whole seed set", "OpenAI-compatible endpoint" if llm_ok else llm_why],
    )
    only_missing = st.checkbox("Only seeds without KPs", value=bool(counts["kps"]), key="only_missing",
                               help="leave unticked to re-extract every seed; merges and renames are kept "
                                    "(they are stored as aliases)")
    blocked = choice == "llm" and not llm_ok
    run = st.button("Extract knowledge points", type="primary", disabled=blocked, key="run_extraction")
    ui.notice("extract")
with e2:
    st.markdown(
        f"**{counts['seeds']:,}** seeds, **{counts['seeds_with_kps']:,}** with KPs; "
        f"**{counts['kps']:,}** KPs, **{counts['seed_kps']:,}** seed–KP links."
    )
    if blocked:
        st.info(llm_why)
if run:
    bar = st.progress(0.0, text="Extracting…")
    try:
        extractor = support.make_llm_extractor(store, ui.get_llm_config()) if choice == "llm" else None
        report = run_extraction(store, extractor, only_missing=only_missing, progress=ui.progress_callback(bar))
    except LinkQAError as err:
        bar.empty()
        ui.show_error(err)
    else:
        bar.empty()
        failed = f"; {len(report.failed):,} seeds failed" if report.failed else ""
        message = (f"{report.extractor} extractor: {report.seeds:,} seeds linked; "
                   f"{report.kps:,} KPs in the database{failed}.")
        if report.seeds == 0 and only_missing:
            message += " Every seed already had KPs: untick 'Only seeds without KPs' to re-extract all."
        ui.say("extract", message, "warning" if report.failed or report.seeds == 0 else "success")
        st.rerun()

if not store.kps.count():
    st.info("No knowledge points yet: press **Extract knowledge points**.")
    st.stop()

# -- table ------------------------------------------------------------------------------------

st.subheader("Knowledge points")
t1, t2 = st.columns([3, 1])
search = t1.text_input("Search KP names", key="kp_search", placeholder="e.g. theory, price, enzyme")
limit = t2.selectbox("Show", [100, 500, 2000], index=0, key="kp_limit", format_func=lambda n: f"top {n:,}")
table = ui.get_kp_table(store, limit, search)
df = pd.DataFrame(table, columns=["name", "freq", "discipline", "n_disciplines", "mean_difficulty"])
st.dataframe(
    df, hide_index=True, height=360, key="kp_table",
    column_config={
        "name": st.column_config.TextColumn("KP", width="large"),
        "freq": st.column_config.NumberColumn("seeds", help="seeds naming the KP"),
        "discipline": st.column_config.TextColumn("main discipline"),
        "n_disciplines": st.column_config.NumberColumn("disciplines", help="distinct disciplines of its seeds"),
        "mean_difficulty": st.column_config.NumberColumn("mean difficulty", format="%.2f"),
    },
)
st.caption(ui.plain(f"{len(df):,} KPs shown" + (f" matching '{search}'" if search else "") + ", most frequent first."))

# -- curation ---------------------------------------------------------------------------------

names = df["name"].tolist()
m1, m2 = st.columns(2)
with m1:
    with st.form("merge_form", clear_on_submit=True):
        st.markdown("**Merge KPs**")
        sources = st.multiselect("KPs to merge (from the table above; search to find others)", names, key="merge_sources")
        target = st.text_input("Into (new or existing name; empty = the most frequent of those chosen)",
                               key="merge_target")
        merge = st.form_submit_button("Merge")
    ui.notice("merge")
    if merge:
        freq_of = dict(zip(df["name"], df["freq"]))
        target_name = target.strip() or (max(sources, key=lambda n: freq_of.get(n, 0)) if sources else "")
        folded = [name for name in sources if normalize_kp(name) != normalize_kp(target_name)]
        if not folded:
            ui.say("merge", "Choose at least two KPs to merge, or one KP and a different target name.", "error")
        else:
            try:
                moved = merge_kps(store, folded, target_name)
            except LinkQAError as err:
                ui.say("merge", str(err), "error")
            else:
                ui.say("merge", f"Merged {', '.join(folded)} into '{target_name}' ({moved:,} links moved).")
        st.rerun()
with m2:
    with st.form("rename_form", clear_on_submit=True):
        st.markdown("**Rename a KP**")
        old = st.selectbox("KP", names, index=None, placeholder="choose a KP from the table", key="rename_old")
        new = st.text_input("New name (an existing name merges the two)", key="rename_new")
        rename = st.form_submit_button("Rename")
    ui.notice("rename")
    if rename:
        if not old or not new.strip():
            ui.say("rename", "Choose a KP and type its new name.", "error")
        else:
            try:
                shown = rename_kp(store, old, new)
            except LinkQAError as err:
                ui.say("rename", str(err), "error")
            else:
                ui.say("rename", f"Renamed '{old}' to '{shown}'.")
        st.rerun()

st.subheader("Merge suggestions")
pairs = ui.get_merge_suggestions(store)
if not pairs:
    st.caption("No KP names that differ only by hyphens, spaces or word order.")
else:
    st.caption("KP names that differ only by hyphens, spaces or word order. Tick the pairs to merge "
               "(the first is folded into the second).")
    sugg = pd.DataFrame([{"merge": False, "merge this": a, "into": b} for a, b in pairs])
    edited = st.data_editor(sugg, hide_index=True, disabled=["merge this", "into"], key="suggestions",
                            height=min(320, 38 + 35 * len(sugg)))
    if st.button("Merge the ticked pairs", key="merge_suggested", disabled=not bool(edited["merge"].any())):
        done = 0
        try:
            for row in edited[edited["merge"]].itertuples(index=False):
                merge_kps(store, [row[1]], row[2])
                done += 1
        except LinkQAError as err:
            ui.say("suggestions", f"Merged {done:,} suggested pairs, then: {err}", "error")
        else:
            ui.say("suggestions", f"Merged {done:,} suggested pairs.")
        st.rerun()
    ui.notice("suggestions")

# -- quality --------------------------------------------------------------------------------------

st.subheader("How good are these KPs?")
q = ui.get_kp_quality(store)
k1, k2, k3, k4 = st.columns(4)
k1.metric("Named by one seed only", f"{q.singleton_share:.0%}",
          help="share of KPs (counted by matching key) that exactly one seed names: such a KP links no seeds "
               "in the graph. Lower is better.")
k2.metric(f"Everyday words in the top {q.top}", f"{q.general_word_share:.0%}",
          help=f"among the {q.top} most frequent KPs, the share that are general-language words: one word with a "
               "Zipf frequency of at least 4.5 in wordfreq's English list (≥ ~32 per million words: 'money', "
               "'patient'). Phrases never count. Lower is better.")
k3.metric("KPs per seed", f"{q.kps_per_seed_mean:.2f}",
          help=f"mean over all {q.seeds:,} seeds (fewest {q.kps_per_seed_min}, most {q.kps_per_seed_max}); "
               f"{q.seeds_outside_bounds:,} seeds have fewer than 2 or more than 8")
k4.metric("Multi-word KPs", f"{q.multiword_share:.0%}", help="share of KPs of two or more words")
if q.general_words:
    st.caption(f"Everyday words among the {q.top} most frequent KPs (merge or rename them into domain terms):")
    ui.text_block(", ".join(q.general_words))
top_of = st.expander("Top KPs of each discipline (by the seeds of that discipline that name them)", expanded=False,
                     key="top_by_discipline_open", on_change="rerun")
if top_of.open:  # drawn when opened: a table costs a visit ~0.1 s of drawing in the browser
    top_of.dataframe(pd.DataFrame([{"discipline": d, "top KPs (seeds)": ", ".join(f"{name} ({n})" for name, n in kps)}
                                   for d, kps in ui.get_top_by_discipline(store).items()]),
                     hide_index=True, width="stretch", key="top_by_discipline",
                     column_config={"top KPs (seeds)": st.column_config.TextColumn(width="large")})

# -- distribution -----------------------------------------------------------------------------

st.subheader("Frequency distribution")
spectrum = ui.get_kp_frequencies(store)  # (seeds naming a KP, KPs): an SQL aggregate, no graph
freq = np.array([f for f, _ in spectrum], dtype=np.int64)
n_of = np.array([n for _, n in spectrum], dtype=np.int64)
n_kps = int(n_of.sum())
hist = support.freq_histogram(freq, n_of)
fig = ui.bar_figure(hist, "seeds naming the KP", "KPs", log_y=True, height=360,
                    order={"seeds naming the KP": [h["seeds naming the KP"] for h in hist]},
                    title=f"{n_kps:,} KPs by how many seeds name them (log scale)")
st.plotly_chart(fig, key="freq_hist")
single = int(n_of[freq == 1].sum()) if n_kps else 0
# the median KP: the first frequency whose cumulative count passes half of the KPs
half = np.cumsum(n_of)
median = float((freq[np.searchsorted(half, (n_kps - 1) // 2, side="right")]
                + freq[np.searchsorted(half, n_kps // 2, side="right")]) / 2) if n_kps else 0.0
st.caption(f"{single:,} KPs ({single / max(n_kps, 1):.0%}) are named by one seed only: they link nothing. "
           f"Median frequency {median:g}, max {int(freq.max()) if n_kps else 0:,}.")

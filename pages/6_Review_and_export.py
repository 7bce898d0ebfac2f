"""Review & export: filter a run's items, accept/reject/edit them, download JSONL, compare runs."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import studio.ui as ui
from linkqa_core.errors import LinkQAError
from linkqa_core.curation.export import EXPORT_STATUSES, item_records
from linkqa_core.curation.review import STATUSES, compare_runs, edit_item, item_card, item_counts, list_items, set_status

store = ui.page_setup("Review & export", "✅",
                      caption="Accept, reject or edit generated items; export the chosen ones with provenance.")
ui.flash()

all_runs = store.runs.list()
with_items = [r for r in all_runs if r.n_items]
tab_review, tab_history = st.tabs(["Items", "Run history"])

with tab_review:
    if not with_items:
        st.info("No run has items yet: synthesise some on the Synthesis page.")
        st.page_link(ui.PAGES["synthesis"], label="Go to Synthesis", icon="➡️")
    else:
        labels = {r.id: f"run {r.id} · {r.name or 'unnamed'} · {r.n_items} items" for r in with_items}
        run_id = st.selectbox("Run", list(labels), format_func=labels.get, index=len(labels) - 1, key="review_run")
        counts = item_counts(store, run_id)
        st.caption(" · ".join(f"{k}: {v:,}" for k, v in sorted(counts.items())))

        f1, f2, f3, f4, f5 = st.columns([1.4, 1.2, 1.2, 1, 1.2])
        statuses = f1.multiselect("Status", STATUSES, default=["generated", "accepted"], key="f_status",
                                  help="accepted items stay in view after you accept them")
        disciplines = store.items.disciplines(run_id)
        discipline = f2.selectbox("Discipline", ["(all)"] + disciplines, key="f_disc")
        lo, hi = f3.slider("Difficulty", 1.0, 5.0, (1.0, 5.0), 0.5, key="f_diff")
        gate = f4.text_input("Gate reason contains", key="f_gate")
        search = f5.text_input("Text contains", key="f_search")
        limit = st.number_input("Show at most", 10, 5000, 200, step=50, key="f_limit")
        try:
            items = list_items(store, run_id, status=statuses or None,
                               discipline=None if discipline == "(all)" else discipline,
                               min_difficulty=lo if lo > 1 else None, max_difficulty=hi if hi < 5 else None,
                               gate=gate or None, search=search or None, limit=int(limit))
        except LinkQAError as err:
            ui.show_error(err)
            items = []
        table = pd.DataFrame([{
            "id": i.id, "status": i.status, "discipline": i.discipline, "difficulty": i.difficulty,
            "question": i.question[:160], "answer": i.answer[:60], "model": i.model,
            "parent": i.parent_id, "gate reason": i.gate_reason,
        } for i in items])
        st.dataframe(table, hide_index=True, width="stretch", height=320, key="items_table")

        ids = [i.id for i in items]
        chosen = st.multiselect("Select items", ids, key="chosen_ids",
                                format_func=lambda i: f"#{i}")
        b1, b2, b3, b4 = st.columns(4)
        if b1.button("Accept selected", disabled=not chosen, key="accept_sel"):
            st.session_state["flash"] = f"Accepted {set_status(store, chosen, 'accepted')} item(s)."
            st.rerun()
        if b2.button("Reject selected", disabled=not chosen, key="reject_sel"):
            st.session_state["flash"] = f"Rejected {set_status(store, chosen, 'rejected', reason='curator')} item(s)."
            st.rerun()
        if b3.button(f"Accept all {len(ids)} shown", disabled=not ids, key="accept_all"):
            st.session_state["flash"] = f"Accepted {set_status(store, ids, 'accepted')} item(s)."
            st.rerun()
        if b4.button(f"Reject all {len(ids)} shown", disabled=not ids, key="reject_all"):
            st.session_state["flash"] = f"Rejected {set_status(store, ids, 'rejected', reason='curator')} item(s)."
            st.rerun()

        st.subheader("One item")
        if ids:
            item_id = st.selectbox("Item", ids, format_func=lambda i: f"#{i}", key="detail_id")
            card = item_card(store, item_id)
            d = card.item
            left, right = st.columns([1.3, 1], gap="large")
            with left:
                st.caption(f"status **{d.status}** · {ui.md(d.discipline)} · difficulty {d.difficulty} · "
                           f"model {ui.md(d.model or '')}" + (f" · operation {d.operation}" if d.operation else "")
                           + (" · edited" if d.edited else ""))
                if d.gate_reason:
                    st.warning(d.gate_reason)
                with st.form(f"edit_{item_id}"):
                    q = st.text_area("Question", d.question, height=160)
                    opts = st.text_area("Options (one a line; empty for an open question)",
                                        "\n".join(d.options or []), height=110)
                    a = st.text_input("Answer", d.answer)
                    sol = st.text_area("Solution", d.solution, height=110)
                    diff = st.slider("Difficulty", 1.0, 5.0, float(d.difficulty or 3.0), 0.5)
                    save_col, acc_col, rej_col = st.columns(3)
                    save = save_col.form_submit_button("Save edits")
                    accept = acc_col.form_submit_button("Save and accept", type="primary")
                    reject = rej_col.form_submit_button("Reject")
                if save or accept:
                    try:
                        options = [o.strip() for o in opts.splitlines() if o.strip()] or None
                        edit_item(store, item_id, question=q, options=options, answer=a, solution=sol, difficulty=diff)
                        if accept:
                            set_status(store, [item_id], "accepted")
                        st.session_state["flash"] = f"Item #{item_id} saved" + (" and accepted." if accept else ".")
                        st.rerun()
                    except LinkQAError as err:
                        ui.show_error(err)
                if reject:
                    set_status(store, [item_id], "rejected", reason="curator")
                    st.session_state["flash"] = f"Item #{item_id} rejected."
                    st.rerun()
            with right:
                st.markdown("**Path:** " + " → ".join(ui.md(k) for k in (card.path.kps if card.path else ())))
                if d.reasoning:
                    with st.expander("Model reasoning", expanded=False):
                        st.text(d.reasoning)
                for s in card.seeds:
                    with st.expander(f"Seed {s.id} · {s.subject or s.discipline}"):
                        st.text(s.question)
                        st.caption(f"answer: {ui.md(s.answer)}")
                if card.lineage:
                    with st.expander(f"Lineage ({len(card.lineage)} parent(s))"):
                        for p in card.lineage:
                            st.caption(f"#{p.id} · difficulty {p.difficulty} · {p.operation or 'original'}")
                            st.text(p.question[:400])
                if d.raw and d.status == "failed":
                    with st.expander("Raw model answer"):
                        st.text(d.raw)

        st.subheader("Export")
        e1, e2 = st.columns(2)
        fmt = e1.radio("Format", ["records", "messages"], horizontal=True, key="exp_fmt",
                       help="records: one QA with provenance a line; messages: chat format for fine-tuning")
        which = e2.radio("Items", list(EXPORT_STATUSES), horizontal=True, key="exp_status",
                         help="accepted only; unrejected: accepted and not yet reviewed; all: rejected and "
                              "superseded too, each with its status")
        n = sum(counts.get(k, 0) for k in EXPORT_STATUSES[which])

        def jsonl(run_id: int = run_id, fmt: str = fmt, which: str = which) -> bytes:
            """Built when the button is clicked, not on every rerun of the page."""
            return "".join(json.dumps(r, ensure_ascii=False) + "\n"
                           for r in item_records(store, run_id, fmt=fmt, status=which)).encode("utf-8")

        st.download_button(f"Download {n:,} item(s) ({which}) as JSONL", jsonl,
                           file_name=f"linkqa-run{run_id}-{which}-{fmt}.jsonl", mime="application/jsonl",
                           disabled=n == 0, key="download")

with tab_history:
    if not all_runs:
        st.info("No runs yet.")
    else:
        hist = pd.DataFrame([{
            "id": r.id, "kind": r.kind, "name": r.name, "status": r.status,
            "paths": r.n_paths, "items": r.n_items,
            "kp_coverage": (r.metrics or {}).get("kp_coverage"),
            "baseline coverage": (r.baseline or {}).get("kp_coverage"),
            "created": pd.to_datetime(r.created_at, unit="s").strftime("%Y-%m-%d %H:%M"),
        } for r in all_runs])
        st.dataframe(hist, hide_index=True, width="stretch", key="history")
        if len(all_runs) >= 2:
            ids = [r.id for r in all_runs]
            c1, c2, c3 = st.columns([1, 1, 1])
            a = c1.selectbox("Compare run", ids, index=len(ids) - 2, key="cmp_a")
            b = c2.selectbox("with run", ids, index=len(ids) - 1, key="cmp_b")
            only_diff = c3.toggle("Only differences", value=True, key="cmp_diff")
            cmp = compare_runs(store, a, b)
            rows = [r for r in cmp["rows"] if r["differs"] or not only_diff]
            frame = pd.DataFrame([{"section": r["section"], "setting / metric": r["key"],
                                   f"run {a}": json.dumps(r["a"], default=str),
                                   f"run {b}": json.dumps(r["b"], default=str)} for r in rows])
            st.dataframe(frame, hide_index=True, width="stretch", key="compare")

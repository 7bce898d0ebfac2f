"""Review & export: a queue of a run's items to accept, reject or edit (keyboard too), the
export of the chosen ones with provenance, and the history of runs."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import studio.ui as ui
from studio import support
from studio.queue import STATUS_WORDS, Filters, show_queue
from linkqa_core.curation.export import EXPORT_STATUSES, item_records
from linkqa_core.curation.review import STATUSES, compare_runs, gate_kinds, gate_pattern, item_counts

store = ui.page_setup("Review & export", "✅",
                      caption="Go through a run's items one by one: accept, reject or edit each (the keyboard "
                              "works too); export the chosen ones with their provenance.")

all_runs = store.runs.list()
with_items = [r for r in all_runs if r.n_items]
if not with_items:
    st.info("No run has items yet: synthesise some on the Synthesis page.")
    ui.link("synthesis", "Go to Synthesis", icon="➡️")
    tabs = st.tabs(["Run history"])
    queue_tab = export_tab = None
    history_tab = tabs[0]
else:
    # labels that do not change while a run grows: a select box keeps its choice by its label
    labels = {r.id: f"run {r.id} · {r.name or 'unnamed'}" for r in with_items}
    if st.session_state.get("kept:review_run") not in labels:
        st.session_state.pop("kept:review_run", None)
    ui.remember("review_run", with_items[-1].id)
    if st.session_state["review_run"] not in labels:
        st.session_state["review_run"] = with_items[-1].id
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="review_run")
    queue_tab, export_tab, history_tab = st.tabs(["Review queue", "Export", "Run history"], key="review_tab",
                                                 on_change="rerun")

# -- the queue ------------------------------------------------------------------------------------

if queue_tab is not None and queue_tab.open is not False:
    with queue_tab:
        disciplines = store.items.disciplines(run_id)
        kinds = gate_kinds(store, run_id)
        for key, default, allowed in (("rv_status", ["generated"], None),
                                      ("rv_disc", "(all)", ["(all)", *disciplines]),
                                      ("rv_gate", "(any)", ["(any)", *(k for k, _ in kinds)]),
                                      ("rv_diff", (1.0, 5.0), None), ("rv_search", "", None)):
            if allowed is not None and st.session_state.get("kept:" + key, default) not in allowed:
                st.session_state["kept:" + key] = default
                st.session_state.pop(key, None)
            ui.remember(key, default)
        f1, f2, f3, f4, f5 = st.columns([1.6, 1.2, 1.6, 1.1, 1.3])
        statuses = f1.multiselect("Status", STATUSES, key="rv_status", format_func=lambda s: STATUS_WORDS.get(s, s),
                                  help="'to review' = generated and not yet decided; empty = every status")
        discipline = f2.selectbox("Discipline", ["(all)", *disciplines], key="rv_disc")
        gate = f3.selectbox("Gate reason", ["(any)", *(k for k, _ in kinds)], key="rv_gate",
                            help="the kind of reason a quality gate, a rewrite check or a curator gave (most "
                                 "frequent first); … stands for an item's particulars")
        lo, hi = f4.slider("Difficulty", 1.0, 5.0, step=0.5, key="rv_diff")
        search = f5.text_input("Text contains", key="rv_search", help="in the question, answer or solution")
        filters = Filters(
            statuses=tuple(statuses),
            discipline=None if discipline == "(all)" else discipline,
            min_difficulty=lo if lo > 1 else None, max_difficulty=hi if hi < 5 else None,
            gate=None if gate == "(any)" else gate_pattern(gate),
            search=search.strip() or None,
        )
        show_queue(store, run_id, filters)

# -- export -----------------------------------------------------------------------------------

STATUS_CHOICES = {
    "accepted": "Accepted only",
    "unrejected": "Accepted and not yet reviewed",
    "all": "Everything, rejected and replaced items too",
}
FORMAT_CHOICES = {
    "records": "Records: one QA a line with its provenance",
    "messages": "Chat messages for fine-tuning (provenance in metadata, never in the messages)",
}

if export_tab is not None and export_tab.open is not False:
    with export_tab:
        counts = item_counts(store, run_id)
        n_of = {k: sum(counts.get(s, 0) for s in v) for k, v in EXPORT_STATUSES.items()}
        e1, e2 = st.columns(2)
        which = e1.radio("Which items", list(EXPORT_STATUSES), key="exp_status", format_func=STATUS_CHOICES.get,
                         captions=[f"{n_of[k]:,} item(s)" for k in EXPORT_STATUSES],
                         help="failed attempts are never exported; each record says its status")
        fmt = e2.radio("Format", list(FORMAT_CHOICES), key="exp_fmt", format_func=FORMAT_CHOICES.get)
        st.caption("Each record carries its provenance: run, path, seeds, model, the run's settings, the export "
                   f"filter ({which}), its lineage and any curator's edit (edited, when, and the version as "
                   "generated).")
        n = n_of[which]

        def jsonl(run_id: int = run_id, fmt: str = fmt, which: str = which) -> bytes:
            """Built when the button is clicked, not on every rerun of the page."""
            return "".join(json.dumps(r, ensure_ascii=False) + "\n"
                           for r in item_records(store, run_id, fmt=fmt, status=which)).encode("utf-8")

        st.download_button(f"Download {n:,} item(s) as JSONL", jsonl,
                           file_name=f"linkqa-run{run_id}-{which}-{fmt}.jsonl", mime="application/jsonl",
                           disabled=n == 0, key="download", type="primary")
        if n:
            first_record = st.expander("The first record, as it will be written", expanded=False,
                                       key="first_record_open", on_change="rerun")
            if first_record.open:  # built and drawn only when opened
                first = next(item_records(store, run_id, fmt=fmt, status=which))
                first_record.code(json.dumps(first, ensure_ascii=False, indent=2), language="json")

# -- history -------------------------------------------------------------------------------------

if history_tab is not None and getattr(history_tab, "open", None) is not False:
    with history_tab:
        if not all_runs:
            st.info("No runs yet.")
        else:
            hist = pd.DataFrame([{
                "id": r.id, "kind": r.kind, "name": r.name, "status": r.status,
                "paths": r.n_paths, "items": r.n_items,
                "KP coverage": (r.metrics or {}).get("kp_coverage"),
                "uniform walk's KP coverage": (r.baseline or {}).get("kp_coverage"),
                "created": pd.to_datetime(r.created_at, unit="s").strftime("%Y-%m-%d %H:%M"),
            } for r in all_runs])
            st.dataframe(hist, hide_index=True, width="stretch", key="history",
                         column_config={"KP coverage": st.column_config.NumberColumn(format="percent"),
                                        "uniform walk's KP coverage": st.column_config.NumberColumn(
                                            format="percent")})
            for r in all_runs:
                if r.status == "interrupted":
                    st.warning(f"Run {r.id} was interrupted; nothing stored is lost. Resume it with:")
                    st.code(support.resume_command(store, r.id), language="bash")
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

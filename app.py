"""LinkQA Studio: the entrypoint, which names the pages, and the Home page.

Run with ``streamlit run app.py``. :func:`studio.ui.navigation` lists Home and the pages
in ``pages/`` (``st.navigation``); a page other than Home runs there, and the rest of
this file is the Home page: where the data is, how far each stage got, what to do next.
"""

from __future__ import annotations

import streamlit as st

import studio.ui as ui
from studio import support

page = ui.navigation()
page.run()
if not ui.is_home(page):
    st.stop()

store = ui.page_setup(
    "LinkQA Studio",
    caption="Seeds → knowledge points → KP graph → value-guided paths → seed bundles → synthesised QA",
)
ui.flash()

counts = store.counts()
step = support.next_step(counts)

st.subheader("Database")
ui.text_block(store.path)

if not counts["seeds"]:
    st.info("This database holds no seeds yet. Load the bundled sample (20 MMLU questions from each of 57 subjects) "
            "to try the whole pipeline, or upload your own file on the Seeds page.")
    if st.button("Load the bundled sample", type="primary", key="load_sample"):
        ui.load_sample_with_progress(store)
        st.rerun()

st.subheader("Stages")
cols = st.columns(6)
cols[0].metric("Seeds", f"{counts['seeds']:,}")
cols[1].metric("Knowledge points", f"{counts['kps']:,}",
               help=f"{counts['seeds_with_kps']:,} seeds have KPs, {counts['seed_kps']:,} seed–KP links")
cols[2].metric("Saved runs", f"{counts['runs']:,}")
cols[3].metric("Saved paths", f"{counts['paths']:,}")
cols[4].metric("Run coverage", f"{store.runs.cumulative_coverage():.1%}",
               help="share of today's KPs that some saved run has visited (the coverage ledger)")
cols[5].metric("QA items", f"{counts['items']:,}", help=f"generated QA items; {counts['accepted_items']:,} accepted")
interrupted = [r for r in store.runs.list() if r.status == "interrupted"]
for r in interrupted:
    st.warning(f"Run {r.id} was interrupted (its process stopped mid-way); nothing stored is lost. Resume it on the "
               "Synthesis page, or from a terminal:")
    st.code(support.resume_command(store, r.id), language="bash")

st.subheader("Next step")
st.markdown(f"**{step['label']}** — {step['why']}")
if step["page"] == ui.PAGES["synthesis"]:
    llm_now = ui.get_llm_config()
    if llm_now["configured"] and llm_now["model"]:
        st.caption(f"Synthesis will ask the model {ui.plain(llm_now['model'])} at the configured endpoint.")
    elif llm_now["configured"]:
        st.caption("An endpoint is set but no model (LINKQA_MODEL): synthesis will use the offline composer.")
    else:
        st.caption("No LLM endpoint is configured: synthesis will use the offline composer.")
st.page_link(step["page"], label=f"Open {step['title']}", icon="➡️")

with st.expander("All pages", expanded=False):
    st.page_link(ui.PAGES["seeds"], label="1 · Seeds: load, check and browse seed QA")
    st.page_link(ui.PAGES["kps"], label="2 · Knowledge points: extract, merge, rename")
    st.page_link(ui.PAGES["graph"], label="3 · KP graph: explore part of the graph")
    st.page_link(ui.PAGES["sampling"], label="4 · Path sampling: tune the value function, preview, save")
    st.page_link(ui.PAGES["synthesis"], label="5 · Synthesis: write new QA from a saved run's seed bundles")
    st.page_link(ui.PAGES["review"], label="6 · Review & export: accept, reject, edit, export JSONL")

st.subheader("LLM endpoint")


def _code(text: str) -> str:
    """A value shown literally in markdown: a code span (which cannot hold a backtick)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


llm = ui.get_llm_config()
if llm["error"]:
    st.error(f"The LLM settings cannot work: {llm['error']}")
elif llm["configured"]:
    origin = ", ".join(sorted(set(llm["origin"].values())))
    st.success(f"Configured (from {origin}).")
else:
    st.warning("No LLM endpoint configured. Every stage still runs offline (the offline KP extractor; synthesis "
               "falls back to a simple offline composer). For model-written QA set OPENAI_BASE_URL, "
               "OPENAI_API_KEY and LINKQA_MODEL in the environment, or copy `.streamlit/secrets.toml.example` "
               "to `.streamlit/secrets.toml` and fill it in.")
st.markdown(
    f"- Base URL: {_code(llm['base_url'] or 'not set (the OpenAI default)')}\n"
    f"- Model: {_code(llm['model'] or 'not set')}\n"
    f"- API key: {'set (hidden)' if llm['has_key'] else 'not set'}\n"
    f"- Structured output: {_code(llm['structured_output'])}"
)
settled = support.llm_modes(store, llm) if llm["configured"] and not llm["error"] else []
for m in settled:
    why = f" ({m['why']})" if m["why"] and m["why"] != "answered" else ""
    st.caption(f"{_code(m['endpoint'])} settled on structured output {_code(m['mode'])}: "
               f"{_code(m['means'] + why)}")
if llm["configured"] and not llm["error"] and not settled:
    st.caption("The structured-output mode of the endpoint is found by the connection test or the first batch.")
if st.button("Test connection", key="test_connection", disabled=not llm["configured"] or bool(llm["error"]),
             help=None if llm["configured"] else "configure an endpoint first"):
    with st.spinner("Asking the endpoint…"):
        ok, message = support.test_llm_connection(llm, store)
    (st.success if ok else st.error)(message)

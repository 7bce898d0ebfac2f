"""Synthesis: pick a run, edit the prompt, preview one bundle, estimate the cost, run the batch
in the background (it survives a reload), enhance difficulty, apply the quality gates."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import streamlit as st

import studio.ui as ui
from studio import support
from linkqa_core.difficulty.enhance import difficulty_mix, enhance
from linkqa_core.difficulty.targets import DifficultyTargets
from linkqa_core.errors import LinkQAError
from studio.jobs import JOBS
from linkqa_core.quality.checks import GateConfig
from linkqa_core.quality.gates import apply_gates
from linkqa_core.quality.reference import load_reference
from linkqa_core.synthesis.offline import OFFLINE_MODEL
from linkqa_core.synthesis.prompt import DEFAULT_TEMPLATE, check_template
from linkqa_core.synthesis.run import SynthesisConfig, estimate_synthesis_cost, preview_bundle, run_progress, synthesize

store = ui.page_setup(
    "Synthesis", "✍️",
    caption="One prompt per seed bundle: the path's KPs in order, its seeds, the discipline and target "
            "difficulty. The model writes new QA that needs several KPs at once.",
)
ui.need(store, "kps")

runs = store.runs.list("sample")
if not runs:
    st.info("No saved run yet: preview a sample on the Path sampling page and save it as a run.")
    st.page_link(ui.PAGES["sampling"], label="Go to Path sampling", icon="➡️")
    st.stop()

labels = {r.id: f"run {r.id} · {r.name or 'unnamed'} · {r.n_paths} paths · {r.n_items} items · "
                f"{r.status}" for r in runs}
run_id = st.selectbox("Run", list(labels), format_func=labels.get, index=len(labels) - 1, key="synth_run")
run = next(r for r in runs if r.id == run_id)

llm = ui.get_llm_config()
settings = None
if llm["configured"]:
    try:
        settings = support.llm_settings(llm)
    except LinkQAError as err:
        ui.show_error(err)
    if settings is not None and not settings.configured:
        st.warning("An endpoint is set but no model: set LINKQA_MODEL. Using the offline composer meanwhile.")
        settings = None
model_label = settings.model if settings is not None else OFFLINE_MODEL
if settings is None:
    st.info("No LLM endpoint configured: the **offline composer** writes two-part items from each bundle, so "
            "the whole pipeline works without a key. Set OPENAI_BASE_URL, OPENAI_API_KEY and LINKQA_MODEL "
            "(environment or .streamlit/secrets.toml) to use a model.")
else:
    st.success(f"Model `{settings.model}` at {len(settings.base_urls)} endpoint(s).")

stored = run.config.get("synthesis") or {}
left, right = st.columns([1, 1.4], gap="large")
with left:
    st.subheader("Settings")
    per_bundle = st.number_input("Items per bundle", 1, 20, int(stored.get("per_bundle", 2)), key="per_bundle")
    default_target = int(stored.get("target_items") or run.n_paths * per_bundle)
    target = st.number_input("Items wanted", 1, 10_000_000, default_target, key="target_items",
                             help="you get this many: more paths are sampled if the run has too few")
    mc = st.toggle("Multiple choice", value=bool(stored.get("multiple_choice", True)), key="mc")
    template = st.text_area("Prompt template", value=stored.get("template", DEFAULT_TEMPLATE), height=320,
                            key=f"template_{run_id}",
                            help="fields: {kps} {seeds} {discipline} {difficulty} {n_items} {format_rules}")
    cfg = None
    try:
        check_template(template)
        cfg = SynthesisConfig(per_bundle=int(per_bundle), target_items=int(target), template=template,
                              multiple_choice=mc)
    except LinkQAError as err:
        ui.show_error(err)

with right:
    st.subheader("Preview one bundle")
    path_number = st.number_input("Path", 1, max(run.n_paths, 1), 1, key="preview_path",
                                  help="path #1 is the run's first path")
    path_index = int(path_number) - 1
    if st.button("Preview prompt and answer", disabled=cfg is None, key="preview_btn"):
        with st.spinner(f"asking {model_label}…"):
            try:
                st.session_state["synth_preview"] = preview_bundle(store, run_id, int(path_index), cfg, settings)
            except LinkQAError as err:
                ui.show_error(err)
    preview = st.session_state.get("synth_preview")
    if preview:
        st.caption(" → ".join(preview["kps"]))
        with st.expander("Prompt", expanded=False):
            st.code(preview["prompt"], language=None)
        if preview.get("reasoning"):
            with st.expander("Model reasoning", expanded=False):
                st.text(preview["reasoning"])
        if preview.get("error"):
            st.error(preview["error"])
        for item in preview.get("items") or []:
            with st.container(border=True):
                st.markdown(ui.md(item["question"]))
                for i, opt in enumerate(item.get("options") or []):
                    mark = "✅" if opt == item["answer"] else "▫️"
                    st.markdown(f"{mark} {chr(65 + i)}. {ui.md(opt)}")
                if not item.get("options"):
                    st.markdown(f"**Answer:** {ui.md(item['answer'])}")
                st.caption(f"difficulty {item.get('difficulty')}, {preview['model']}")

st.divider()
st.subheader("Run the batch")
if cfg is not None:
    try:
        est = estimate_synthesis_cost(store, run_id, cfg, settings)
        c = st.columns(4)
        c[0].metric("Requests", f"{est['requests']:,}")
        c[1].metric("Tokens (estimate)", f"{est['total_tokens']:,}",
                    help="requests × (prompt + output + reasoning tokens); prompt ≈ characters / 4")
        priced = settings is not None and (settings.price_in_per_mtok or settings.price_out_per_mtok)
        c[2].metric("Cost (estimate)", "free (offline)" if settings is None else
                    (f"${est['usd']:,.2f}" if priced else "no price set"),
                    help="set prices per million tokens (price_in_per_mtok, price_out_per_mtok in secrets.toml)")
        c[3].metric("Paths to add", f"{est['paths_to_add']:,}")
    except LinkQAError as err:
        ui.show_error(err)

job_key = f"synth:{store.path}:{run_id}"
job = JOBS.get(job_key)
start_col, stop_col = st.columns([1, 4])
if start_col.button("Start synthesis", type="primary", disabled=cfg is None or (job is not None and job.running),
                    key="start_synth"):
    job = JOBS.start(job_key, synthesize, store, run_id, cfg, settings)
if job is not None and job.running and stop_col.button("Stop", key="stop_synth"):
    job.stop()


@st.fragment(run_every="1s")
def live_progress() -> None:
    """Polls the database, so a reload or another tab sees the same progress."""
    p = run_progress(store, run_id)
    j = JOBS.get(job_key)
    target_items = p["target_items"] or 0
    if target_items:
        st.progress(min(p["items"] / target_items, 1.0),
                    text=f"{p['items']:,} / {target_items:,} items · {p['failed']} failed · "
                         f"{p['prompt_tokens'] + p['completion_tokens']:,} tokens · {p['calls']:,} calls "
                         f"({p['cached_calls']} cached, {p['call_errors']} errors) · status {p['status']}")
    if j is not None and j.running:
        st.caption(f"running in the background: {j.message}")
    elif j is not None and j.error:
        st.error(j.error)
    elif j is not None and j.result is not None:
        r = j.result
        if st.session_state.get("synth_seen_done") != id(j):
            st.session_state["synth_seen_done"] = id(j)
            st.rerun(scope="app")  # refresh run counts and buttons once, when the job ends
        st.success(f"Done: {r.items_ok:,} items by {r.model}" + (f" — stopped: {r.stopped}" if r.stopped else ""))
        if r.errors:
            with st.expander(f"{len(r.errors)} errors"):
                st.text("\n".join(r.errors[:200]))


live_progress()

st.divider()
st.subheader("Difficulty")
mix = difficulty_mix(store, run_id)
if mix:
    rows = [{"discipline": d, "difficulty": str(level), "items": n} for d, levels in mix.items()
            for level, n in levels.items() if n]
    if rows:
        st.plotly_chart(ui.bar_figure(rows, "discipline", "items", colour="difficulty", height=320,
                                      order={"difficulty": ["1", "2", "3", "4", "5"]}),
                        key="mix_chart")
spec = st.text_input("Target difficulty mix", value=DifficultyTargets().spec(), key="targets_spec",
                     help='per discipline, e.g. "default=3:0.3,4:0.4,5:0.3;Mathematics=4:0.5,5:0.5"')
rounds = st.number_input("Rewrite rounds at most", 1, 5, 2, key="rounds")
enh_key = f"enhance:{store.path}:{run_id}"
enh_job = JOBS.get(enh_key)
if st.button("Enhance difficulty", disabled=not mix or (enh_job is not None and enh_job.running), key="enhance_btn"):
    try:
        targets = DifficultyTargets.parse(spec)
        enh_job = JOBS.start(enh_key, enhance, store, run_id, targets, settings, max_rounds=int(rounds))
    except LinkQAError as err:
        ui.show_error(err)


@st.fragment(run_every="1s")
def enhance_progress() -> None:
    j = JOBS.get(enh_key)
    if j is None:
        return
    if j.running:
        st.caption(f"enhancing… {j.message}")
    elif st.session_state.get("enh_seen_done") != id(j):
        st.session_state["enh_seen_done"] = id(j)
        st.rerun(scope="app")
    elif j.error:
        st.error(j.error)
    elif j.result is not None:
        r = j.result.to_dict()
        st.success(f"Kept {r['kept']} of {r['attempted']} rewrites in {r['rounds_done']} round(s); "
                   f"eliminated: {r['eliminated'] or 'none'}")


enhance_progress()

st.divider()
st.subheader("Quality gates")
g1, g2, g3 = st.columns(3)
near = g1.slider("Near-duplicate threshold (Jaccard)", 0.5, 1.0, 0.8, 0.01, key="near_dup")
ngram = g2.number_input("Decontamination n-gram", 5, 50, 13, key="ngram")
ref_file = g3.file_uploader("Reference benchmark (optional)", type=["jsonl", "json", "txt"], key="reference")
if st.button("Apply gates", key="gates_btn"):
    try:
        reference = None
        if ref_file is not None:
            reference = load_reference(ref_file.getvalue(), name=ref_file.name, decontam_ngram=int(ngram))
        summary = apply_gates(store, run_id, reference=reference,
                              cfg=GateConfig(near_dup_threshold=float(near), decontam_ngram=int(ngram)))
        rejected = {k: v for k, v in summary.items() if v}
        st.success("Rejected: " + (", ".join(f"{k} {v}" for k, v in rejected.items()) if rejected else "nothing"))
    except LinkQAError as err:
        ui.show_error(err)
st.page_link(ui.PAGES["review"], label="Review and export the items", icon="➡️")

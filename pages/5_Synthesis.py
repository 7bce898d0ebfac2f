"""Synthesis: pick a run, edit the prompt, preview one bundle, estimate the cost, run the batch
in the background (it survives a reload), enhance difficulty, apply the quality gates."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import studio.ui as ui
from studio import cluster, support, words
from linkqa_core.difficulty.enhance import difficulty_mix, enhance
from linkqa_core.difficulty.targets import DEFAULT_MIX, LEVELS
from linkqa_core.errors import LinkQAError
from studio.jobs import JOBS
from linkqa_core.quality.checks import GateConfig
from linkqa_core.quality.gates import apply_gates
from linkqa_core.quality.reference import load_reference
from linkqa_core.synthesis.offline import OFFLINE_MODEL
from linkqa_core.synthesis.prompt import DEFAULT_TEMPLATE, check_template
from linkqa_core.synthesis.run import SynthesisConfig, estimate_synthesis_cost, preview_bundle, run_progress, synthesize

ALL_DISCIPLINES = "All disciplines"
GATE_WORDS = {"schema": "malformed (schema)", "answer": "answer not among the options", "length": "too short or long",
              "contamination": "shares text with the reference", "exact_duplicate": "exact duplicate",
              "near_duplicate": "near-duplicate", "seed_duplicate": "copies a seed"}

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

# labels that do not change while a run grows: a select box keeps its choice by its label
labels = {r.id: f"run {r.id} · {r.name or 'unnamed'}" for r in runs}
run_id = st.selectbox("Run", list(labels), format_func=labels.get, index=len(labels) - 1, key="synth_run")
run = next(r for r in runs if r.id == run_id)
st.caption(f"{run.n_paths:,} paths · {run.n_items:,} items · status: {run.status}")
if run.status == "interrupted":
    st.warning(f"Run {run_id} was interrupted (its process stopped); nothing stored is lost. Press Start synthesis "
               "below to finish it, or from a terminal:")
    st.code(support.resume_command(store, run_id), language="bash")
cluster.show(run)  # a job on a Ray cluster: its progress, from the manifest it writes

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
    st.info("No LLM endpoint configured: the **offline composer** asks two linked seeds of each bundle together "
            "(no pair twice in a run), so the whole pipeline works without a key. Set OPENAI_BASE_URL, OPENAI_API_KEY and LINKQA_MODEL "
            "(environment or .streamlit/secrets.toml) to use a model.")
else:
    st.success(ui.plain(f"Model {settings.model} at {len(settings.base_urls)} endpoint(s)."))

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
        st.caption(ui.plain(" → ".join(preview["kps"])))
        with st.expander("Prompt", expanded=False):
            st.code(preview["prompt"], language=None)
        if preview.get("reasoning"):
            with st.expander("Model reasoning", expanded=False):
                st.text(preview["reasoning"])
        if preview.get("error"):
            st.error(ui.plain(preview["error"]))
        for item in preview.get("items") or []:
            with st.container(border=True):
                ui.text_block(item["question"])
                if item.get("options"):
                    ui.text_block("\n".join(f"{'✓' if opt == item['answer'] else ' '} {chr(65 + i)}. {opt}"
                                             for i, opt in enumerate(item["options"])))
                else:
                    ui.text_block(f"Answer: {item['answer']}")
                st.caption(ui.plain(f"difficulty {item.get('difficulty')}, {preview['model']}"))

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
if job is not None and job.running and stop_col.button("Stop", key="stop_synth",
                                                        help="stop after the requests under way; resume later"):
    job.stop()
    ui.say("synth", "Stopping after the requests under way; start again to finish the run.", "info")


@st.fragment(run_every="1s")
def live_progress() -> None:
    """Polls the database, so a reload or another tab sees the same progress: one counter,
    the items synthesised (rewrites are counted under Difficulty)."""
    p = run_progress(store, run_id)
    j = JOBS.get(job_key)
    target_items = p["target_items"] or 0
    if target_items:
        st.progress(min(p["items"] / target_items, 1.0),
                    text=f"{p['items']:,} of {target_items:,} items synthesised · {p['failed']:,} failed attempts · "
                         f"{p['calls']:,} model calls ({p['cached_calls']:,} from cache, {p['call_errors']:,} errors) · "
                         f"{p['prompt_tokens'] + p['completion_tokens']:,} tokens")
    ui.notice("synth")
    if j is not None and j.running:
        st.caption(ui.plain(f"Running in the background (safe to reload): {j.message}"))
    elif j is not None and j.error:
        st.error(ui.plain(j.error))
    elif j is not None and j.result is not None:
        r = j.result
        if st.session_state.get("synth_seen_done") != id(j):
            st.session_state["synth_seen_done"] = id(j)
            st.rerun(scope="app")  # refresh run counts and buttons once, when the job ends
        if r.stopped:
            st.warning(ui.plain(f"Stopped ({r.stopped}) with {p['items']:,} of {target_items:,} items; "
                                "start again to finish the run."))
        else:
            st.success(ui.plain(f"Done: {p['items']:,} of {target_items:,} items synthesised by {r.model}."))
        if r.errors:
            with st.expander(f"{len(r.errors):,} errors"):
                ui.text_block("\n".join(r.errors[:200]))


live_progress()

# -- difficulty ------------------------------------------------------------------------------------

st.divider()
st.subheader("Difficulty")
mix = difficulty_mix(store, run_id)
if mix:
    rows = [{"discipline": d, "difficulty": str(level), "items": n} for d, levels in mix.items()
            for level, n in levels.items() if n]
    if rows:
        st.plotly_chart(ui.bar_figure(rows, "discipline", "items", colour="difficulty", height=320,
                                      order={"difficulty": ["1", "2", "3", "4", "5"]},
                                      title="Items by difficulty (1 easy – 5 hard), before enhancement"),
                        key="mix_chart")
st.markdown("**Target difficulty mix** — the share of items wanted at each level. Each row is scaled to 100 %; a "
            "discipline left equal to *All disciplines* uses that row.")
levels = [str(lvl) for lvl in LEVELS]
default_row = {str(lvl): round(DEFAULT_MIX.get(lvl, 0.0) * 100, 1) for lvl in LEVELS}
mix_frame = pd.DataFrame([{"discipline": ALL_DISCIPLINES, **default_row}]
                         + [{"discipline": d, **default_row} for d in sorted(mix)])
edited = st.data_editor(
    mix_frame, hide_index=True, width="stretch", key=f"targets_editor_{run_id}", disabled=["discipline"],
    column_config={"discipline": st.column_config.TextColumn(width="medium"),
                   **{lvl: st.column_config.NumberColumn(f"level {lvl} %", min_value=0.0, max_value=100.0, step=5.0,
                                                         format="%.0f %%") for lvl in levels}},
)
targets, targets_error = None, None
try:
    targets = words.difficulty_targets(edited.to_dict("records"), ALL_DISCIPLINES)
except LinkQAError as err:
    targets_error = str(err)
if targets_error:
    st.error(ui.plain(targets_error))
rounds = st.number_input("Rewrite rounds at most", 1, 5, 2, key="rounds",
                         help="each round rewrites the items below their discipline's target mix into harder ones")
enh_key = f"enhance:{store.path}:{run_id}"
enh_job = JOBS.get(enh_key)
b1, b2 = st.columns([1, 4])
if b1.button("Enhance difficulty", disabled=not mix or targets is None or (enh_job is not None and enh_job.running),
             key="enhance_btn"):
    enh_job = JOBS.start(enh_key, enhance, store, run_id, targets, settings, max_rounds=int(rounds))
if enh_job is not None and enh_job.running and b2.button("Stop", key="stop_enhance",
                                                         help="stop after the rewrites under way"):
    enh_job.stop()


@st.fragment(run_every="1s")
def enhance_progress() -> None:
    j = JOBS.get(enh_key)
    if j is None:
        return
    if j.running:
        st.caption(ui.plain(f"Enhancing in the background: {j.message}"))
    elif st.session_state.get("enh_seen_done") != id(j):
        st.session_state["enh_seen_done"] = id(j)
        st.rerun(scope="app")
    elif j.error:
        st.error(ui.plain(j.error))
    elif j.result is not None:
        r = j.result
        c = st.columns(4)
        c[0].metric("Rewrites kept", f"{r.kept:,}", help=f"of {r.attempted:,} rewrites attempted; a kept rewrite "
                                                         "replaces its parent, which is marked replaced")
        c[1].metric("Rounds", f"{r.rounds:,}", help=f"rewrite rounds run this time; {r.rounds_done} in all for this run")
        c[2].metric("Off the target mix", f"{r.gap_after:.1%}", delta=f"{(r.gap_after - r.gap_before) * 100:+.1f} pts",
                    delta_color="inverse", help="total-variation distance between the items' difficulty mix and the "
                                                "target, averaged over disciplines by items: 0 = on target")
        c[3].metric("Failed requests", f"{r.failed:,}")
        if r.stopped:
            st.warning(ui.plain(f"Stopped: {r.stopped}"))
        elif not r.rounds:
            st.info(f"Nothing was rewritten: the run has had its {r.rounds_done} round(s) already (raise 'Rewrite "
                    "rounds at most' for more), or every discipline meets its target mix.")
        if r.eliminated:
            st.warning(f"{sum(r.eliminated.values()):,} rewrites were not kept:")
            st.dataframe(pd.DataFrame([{"why": k, "rewrites": v} for k, v in r.eliminated.items()]),
                         hide_index=True, key="eliminated")


enhance_progress()

# -- gates -------------------------------------------------------------------------------------------

st.divider()
st.subheader("Quality gates")
st.caption("Checks every item still to review: well-formed (schema), answer among the options, length, copies of "
           "a reference benchmark (contamination), exact and near duplicates among the items and of the seeds. "
           "A rejected item keeps its reason, shown on the review page.")
g1, g2, g3 = st.columns(3)
near = g1.slider("Near-duplicate threshold (Jaccard)", 0.5, 1.0, 0.8, 0.01, key="near_dup",
                 help="two items sharing at least this share of their word triples count as duplicates: lower "
                      "rejects more (`near_dup_threshold`)")
ngram = g2.number_input("Decontamination n-gram (words)", 5, 50, 13, key="ngram",
                        help="an item sharing a run of this many words with the reference counts as contaminated: "
                             "lower rejects more (`decontam_ngram`)")
ref_file = g3.file_uploader("Reference benchmark (optional)", type=["jsonl", "json", "txt"], key="reference")
if st.button("Apply gates", key="gates_btn"):
    try:
        reference = None
        if ref_file is not None:
            reference = load_reference(ref_file.getvalue(), name=ref_file.name, decontam_ngram=int(ngram))
        summary = apply_gates(store, run_id, reference=reference,
                              cfg=GateConfig(near_dup_threshold=float(near), decontam_ngram=int(ngram)))
    except LinkQAError as err:
        ui.show_error(err)
    else:
        st.session_state["gates_summary"] = (run_id, summary)
done = st.session_state.get("gates_summary")
if done and done[0] == run_id:
    rejected = {k: v for k, v in done[1].items() if v}
    if rejected:
        st.warning(f"The gates rejected {sum(rejected.values()):,} item(s):")
        st.dataframe(pd.DataFrame([{"gate": GATE_WORDS.get(k, k), "items rejected": v} for k, v in rejected.items()]),
                     hide_index=True, key="gate_summary")
    else:
        st.success("Every item passed the gates.")
ui.link("review", "Review and export the items", icon="➡️")

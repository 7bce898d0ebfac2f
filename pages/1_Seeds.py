"""Seeds: upload a file (or the bundled sample), check the column mapping, import, browse."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import studio.ui as ui
from studio import uploads
from linkqa_core.errors import LinkQAError
from linkqa_core.ingest.load import FIELDS, FORMATS, ingest, sample_path
from linkqa_core.taxonomy import DISCIPLINES

store = ui.page_setup("Seeds", "📥", caption="Load seed QA items, check how columns map onto seed fields, "
                      "and see every row that could not be used.")
ui.flash()

NONE = "(none)"
FIELD_LABELS = {"question": "Question", "answer": "Answer", "subject": "Subject", "discipline": "Discipline",
                "difficulty": "Difficulty", "source": "Source"}
FIELD_HELP = {
    "question": "the question text (required)",
    "answer": "the answer: its text, or a letter into the options (required)",
    "options": "one column holding a list, or one column per option (answer_a, answer_b, …)",
    "subject": "free-text subject, mapped onto a discipline",
    "discipline": "a discipline name; wins over the subject",
    "difficulty": "1–5, or easy / medium / hard",
    "source": "where the item came from (default: the file name)",
}


def remember_report(name: str, report) -> None:
    st.session_state["ingest_report"] = {
        "name": name, "added": report.added, "duplicates": report.duplicates, "total": report.total_seeds,
        "rows_read": report.rows_read, "bad_rows": uploads.bad_rows_table(report),
        "n_bad": len(report.bad_rows),
    }


@st.cache_data(show_spinner="Reading the file's subjects…", max_entries=8)
def _discipline_plan(data: bytes, filename: str, mapping_json: str) -> tuple[list, str | None, str | None]:
    """The file's subject/discipline values and proposals, once per file and mapping."""
    try:
        values, column = uploads.discipline_plan(data, filename, json.loads(mapping_json))
    except LinkQAError as err:
        return [], None, str(err)
    return values, column, None


@st.fragment
def upload_form(data: bytes, filename: str) -> None:
    """Preview, column mapping, discipline matching and import of one upload; a change here
    redraws this part only (the browse section below is left alone until the import)."""
    try:
        preview = uploads.preview_upload(data, filename)
    except LinkQAError as err:
        st.error(ui.plain(str(err)))
        return
    st.caption(ui.plain(f"{preview.filename} · {preview.size:,} bytes · {len(preview.columns)} columns"))
    if preview.rows:
        st.dataframe(pd.DataFrame(preview.rows).astype(str), hide_index=True, height=180, key="upload_preview")
    tag = f"{filename}_{len(data)}"
    st.markdown("**Column mapping** — guessed from the column names; correct it if needed.")
    choices: dict = {}
    options = [NONE, *preview.columns]
    singles = [f for f in FIELDS if f != "options"]
    cols = st.columns(3)
    for i, fld in enumerate(singles):
        guess = preview.mapping.get(fld)
        with cols[i % 3]:
            choices[fld] = st.selectbox(FIELD_LABELS.get(fld, fld), options,
                                        index=options.index(guess) if guess in options else 0,
                                        help=FIELD_HELP[fld], key=f"map_{fld}_{tag}")
    guess = preview.mapping.get("options")
    default = guess if isinstance(guess, list) else ([guess] if guess else [])
    # a row of its own: chips the width of the page show whole column names
    choices["options"] = st.multiselect("Options (in order: the first is A)", preview.columns, default=default,
                                        help=FIELD_HELP["options"], key=f"map_options_{tag}")
    if choices["options"]:
        st.caption(ui.plain("  ·  ".join(f"{chr(65 + i)} = {c}" for i, c in enumerate(choices["options"]))))
    mapping = uploads.mapping_from_choices(choices)

    values, column, error = _discipline_plan(data, filename, json.dumps(mapping, sort_keys=True))
    discipline_map: dict[str, str] = {}
    if error:
        st.error(ui.plain(error))
    elif column:
        unmatched = sum(1 for v in values if v.proposed is None)
        st.markdown("**Disciplines** — each value of the column is matched to a discipline (case, '&' or 'and', "
                    "close names). Correct any row before importing.")
        st.caption(ui.plain(f"{len(values):,} distinct values in column {column}"
                            + (f"; {unmatched:,} with no good match (proposed: Other)" if unmatched else "")))
        frame = pd.DataFrame([{"value in the file": v.value, "rows": v.rows,
                               "discipline": v.proposed or "Other",
                               "match": "proposed" if v.proposed else "no good match"} for v in values])
        edited = st.data_editor(
            frame, hide_index=True, width="stretch", key=f"disciplines_{tag}",
            disabled=["value in the file", "rows", "match"],
            height=min(420, 38 + 35 * max(len(frame), 1)),
            column_config={
                "value in the file": st.column_config.TextColumn(width="large"),
                "discipline": st.column_config.SelectboxColumn(options=list(DISCIPLINES), required=True,
                                                               width="medium"),
            })
        discipline_map = dict(zip(edited["value in the file"], edited["discipline"]))
    if st.button("Import", type="primary", key=f"import_{tag}"):
        bar = st.progress(0.0, text="Importing…")
        try:
            report = uploads.import_upload(store, data, filename, mapping, progress=ui.progress_callback(bar),
                                           discipline_map=discipline_map)
        except LinkQAError as err:
            bar.empty()
            st.error(ui.plain(str(err)))
        else:
            remember_report(filename, report)
            st.rerun(scope="app")  # the browse section and charts below change


# -- add seeds ------------------------------------------------------------------------------

st.subheader("Add seeds")
upload_tab, sample_tab = st.tabs(["Upload a file", "Bundled sample"])

with upload_tab:
    uploaded = st.file_uploader(
        f"Seed file ({', '.join(f.upper() for f in FORMATS)}; gzip is fine)",
        type=["jsonl", "ndjson", "json", "csv", "tsv", "parquet", "pq", "gz"], key="seed_upload",
    )
    if uploaded is not None:
        upload_form(uploaded.getvalue(), uploaded.name)

with sample_tab:
    st.markdown("20 questions from each of the 57 subjects of the MMLU test split (MIT licence); two of the "
                "1,140 are the same item, so 1,139 seeds load.")
    if st.button("Load the bundled sample", key="seeds_load_sample"):
        bar = st.progress(0.0, text="Importing the sample…")
        try:
            report = ingest(store, sample_path(), progress=ui.progress_callback(bar))
        except LinkQAError as err:
            ui.say("sample", str(err), "error")
        else:
            remember_report(sample_path().name, report)
        bar.empty()
    ui.notice("sample")

rep = st.session_state.get("ingest_report")
if rep:
    st.success(ui.plain(f"{rep['name']}: {rep['added']:,} seeds added, {rep['duplicates']:,} already stored "
                        f"({rep['rows_read']:,} rows read); the database now holds {rep['total']:,} seeds."))
    if rep["n_bad"]:
        st.warning(f"{rep['n_bad']:,} rows could not be used — each with its line and reason:")
        st.dataframe(pd.DataFrame(rep["bad_rows"]), hide_index=True, height=min(400, 38 + 35 * rep["n_bad"]),
                     key="bad_rows")
    else:
        st.caption("Every row was usable.")
    if rep["added"]:
        st.page_link(ui.PAGES["kps"], label="Next: extract knowledge points", icon="➡️")

# -- browse -----------------------------------------------------------------------------------

st.subheader("Browse seeds")
if not store.seeds.count():
    st.info("No seeds yet: upload a file above or load the bundled sample.")
    st.stop()

opts = store.seeds.filter_options()
# The filters sit in a popover, labelled with what they are set to: drawn only when opened,
# they no longer cost a first visit in a fresh browser their four widgets' scripts (~0.15 s).
active = [", ".join(st.session_state.get("f_discipline") or []),
          ", ".join(f"difficulty {d}" for d in st.session_state.get("f_difficulty") or []),
          f"“{ui.plain(st.session_state['f_search'].strip())}”" if (st.session_state.get("f_search") or "").strip() else "",
          f"{st.session_state['f_rows']} rows" if st.session_state.get("f_rows", 50) != 50 else ""]
label = "Filter: " + " · ".join(a for a in active if a) if any(active) else "Filter by discipline, difficulty, text"
with st.popover(label, icon=":material/filter_list:", key="seed_filters"):
    disciplines = st.multiselect("Discipline", opts["disciplines"], key="f_discipline")
    difficulties = st.multiselect("Difficulty", opts["difficulties"], key="f_difficulty",
                                  help="rounded to whole levels; 'unknown' = not given and not yet estimated")
    search = st.text_input("Search question, answer or subject", key="f_search")
    page_size = st.selectbox("Rows per page", [25, 50, 100, 250], index=1, key="f_rows")

_, total = store.seeds.page(disciplines=disciplines, difficulties=difficulties, search=search, limit=0)
pages = max(1, -(-total // page_size))
if st.session_state.get("f_page", 1) > pages:
    st.session_state["f_page"] = 1
p1, p2 = st.columns([1, 5], vertical_alignment="bottom")
page = p1.number_input("Page", min_value=1, max_value=pages, value=1, step=1, key="f_page")
rows, total = store.seeds.page(disciplines=disciplines, difficulties=difficulties, search=search,
                                     limit=page_size, offset=(int(page) - 1) * page_size)
# plain Markdown (no HTML line break): HTML in Markdown makes the browser load one more parser on first visit
p2.markdown(f"{total:,} matching seeds · page {int(page)} of {pages}")
st.dataframe(
    pd.DataFrame(rows, columns=["question", "answer", "options", "discipline", "subject", "difficulty",
                                "estimated", "kps", "source", "id"]),
    hide_index=True,
    key="seeds_table",
    column_config={
        "question": st.column_config.TextColumn(width="large"),
        "difficulty": st.column_config.NumberColumn(format="%.1f"),
        "estimated": st.column_config.CheckboxColumn(help="difficulty estimated by the extractor"),
        "kps": st.column_config.NumberColumn("KPs", help="knowledge points linked to the seed"),
    },
)

c1, c2 = st.columns(2)
disc = sorted(store.seeds.discipline_counts(), key=lambda r: r["seeds"])  # smallest at the bottom
c1.plotly_chart(ui.bar_figure(disc, "seeds", "discipline", orientation="h", title="Seeds per discipline",
                              height=420, y_title=None), key="disc_chart")
c2.plotly_chart(ui.bar_figure(store.seeds.difficulty_counts(), "difficulty", "seeds", colour="kind",
                              order={"difficulty": ["1", "2", "3", "4", "5", "unknown"],
                                     "kind": ["given", "estimated", "missing"]},
                              title="Seeds per difficulty", height=420), key="diff_chart")

"""The review queue on the Review & export page: a table of the matching items beside the
card of the current one, decided with buttons or the keyboard.

The queue is the items matching the page's filters, in id order. Everything here runs in
one ``st.fragment``, so a decision redraws the table and the card only: the page keeps
its place instead of jumping to the top. Keys (buttons' ``shortcut``, public Streamlit):

- ``A`` accept, ``X`` reject (``R`` is Streamlit's own), ``U`` back to undecided;
- ``E`` edit (in the editor ``Ctrl+Enter`` saves and accepts, ``Ctrl+S`` saves, the
  Cancel button closes it);
- bulk accept / reject of the whole queue ask for a confirmation beside their buttons;
- ``S`` skip (leave undecided, go on), ``→`` next, ``←`` previous.

A decision moves on to the next item by itself. Data is shown with plain-text elements
(``st.text``, dataframes, an SVG drawn as an image), never as Markdown or HTML.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
import streamlit as st

from linkqa_core.curation.review import (
    CURATOR_REASON,
    decide,
    edit_item,
    item_card,
    item_counts,
    list_items,
    resume_at,
    step,
)
from linkqa_core.errors import LinkQAError
from linkqa_core.store import Store
from studio import drawing, ui

__all__ = ["Filters", "STATUS_WORDS", "show_queue", "TABLE_ROWS"]

TABLE_ROWS = 100  # rows of the queue in the table at once: the window holding the current item
CURRENT = "rv_current"  # session key: the id of the item on the card
EDITING = "rv_editing"  # session key: the id of the item being edited
TABLE = "rv_table"
STATUS_WORDS = {
    "generated": "to review",
    "accepted": "accepted",
    "rejected": "rejected",
    "superseded": "replaced by a harder rewrite",
    "failed": "failed attempts",
}
DECISION_WORDS = {"accepted": "accepted", "rejected": "rejected", "generated": "put back to review"}


@dataclass(frozen=True)
class Filters:
    """What the queue holds: the page's filters, as :func:`list_items` takes them."""

    statuses: tuple[str, ...]
    discipline: str | None = None
    min_difficulty: float | None = None
    max_difficulty: float | None = None
    gate: str | None = None  # a LIKE pattern (see linkqa_core.curation.review.gate_pattern)
    search: str | None = None

    def query(self) -> dict[str, Any]:
        return {"discipline": self.discipline, "min_difficulty": self.min_difficulty,
                "max_difficulty": self.max_difficulty, "gate": self.gate, "search": self.search}

    def ids(self, store: Store, run_id: int) -> list[int]:
        return store.items.ids(run_id, list(self.statuses) or None, **self.query())

    def items(self, store: Store, run_id: int, offset: int, limit: int) -> list:
        return list_items(store, run_id, status=list(self.statuses) or None, limit=limit, offset=offset,
                          **self.query())


# -- moving along ---------------------------------------------------------------------------


def _go(ids: Sequence[int], offset: int) -> None:
    st.session_state[CURRENT] = step(ids, st.session_state.get(CURRENT), offset)
    st.session_state.pop(EDITING, None)


def _decide(store: Store, ids: Sequence[int], item_id: int, decision: str) -> None:
    """A decision on the card's item, then on to the next one (auto-advance)."""
    try:
        changed = decide(store, [item_id], decision)
    except LinkQAError as err:
        ui.say("card", str(err), "error")
        return
    if not changed:
        ui.say("card", f"Item #{item_id} keeps its status (failed and replaced items cannot be decided).", "warning")
        return
    nxt = step(ids, item_id, +1)
    ui.say("card", f"Item #{item_id} {DECISION_WORDS[decision]}."
           + ("" if nxt != item_id else " That was the last item in this queue."),
           "warning" if decision == "rejected" else "success")
    st.session_state[CURRENT] = nxt if nxt != item_id else item_id
    st.session_state.pop(EDITING, None)


SHOWN = "rv_table_shown"  # session key: (ids of the table's rows, the row shown selected) at the last run


def _clicked_row() -> int | None:
    """The item whose row the curator clicked since the last run, if any.

    The table always shows the card's item as its selected row; a selection that differs
    from the one drawn is a click (read from the selection state, so a test can set it).
    """
    state = st.session_state.get(TABLE) or {}
    rows = list((state.get("selection") or {}).get("rows") or [])
    shown = st.session_state.get(SHOWN)
    if not rows or not shown:
        return None
    table_ids, drawn = shown
    if rows[0] != drawn and rows[0] < len(table_ids):
        return int(table_ids[rows[0]])
    return None


# -- the fragment ----------------------------------------------------------------------------


@st.fragment
def show_queue(store: Store, run_id: int, filters: Filters) -> None:
    """The queue's table (left) and the current item's card (right)."""
    ids = filters.ids(store, run_id)
    counts = item_counts(store, run_id)
    st.caption(f"{len(ids):,} items in this queue · run {run_id}: "
               + " · ".join(f"{STATUS_WORDS.get(k, k)} {v:,}" for k, v in sorted(counts.items())))
    if not ids:
        ui.notice("bulk")
        st.info("No item matches these filters. Widen them above (status, discipline, gate reason, difficulty, text).")
        return
    clicked = _clicked_row()
    if clicked is not None:
        st.session_state[CURRENT] = clicked
        st.session_state.pop(EDITING, None)
    current = resume_at(ids, st.session_state.get(CURRENT))
    st.session_state[CURRENT] = current
    pos = ids.index(current)
    left, right = st.columns([1.1, 1], gap="medium")
    with left:
        _table(store, run_id, filters, ids, pos)
        _bulk(store, ids, filters)
    with right:
        _card(store, ids, current, pos)


def _table(store: Store, run_id: int, filters: Filters, ids: Sequence[int], pos: int) -> None:
    start = (pos // TABLE_ROWS) * TABLE_ROWS
    items = filters.items(store, run_id, start, TABLE_ROWS)
    table_ids = [i.id for i in items]
    frame = pd.DataFrame({
        "#": table_ids,
        "status": [STATUS_WORDS.get(i.status, i.status) for i in items],
        "gate reason": [i.gate_reason or "" for i in items],
        "question": [" ".join(i.question.split())[:160] for i in items],
        "discipline": [i.discipline for i in items],
        "difficulty": [i.difficulty for i in items],
        "edited": [i.edited for i in items],
    })
    # the table shows the current item as its selected row; a click on a row opens that item
    row = table_ids.index(ids[pos]) if ids[pos] in table_ids else None
    st.session_state[TABLE] = {"selection": {"rows": [] if row is None else [row], "columns": [], "cells": []}}
    st.session_state[SHOWN] = (tuple(table_ids), row)
    st.dataframe(
        frame, hide_index=True, height=460, key=TABLE, on_select="rerun",
        selection_mode="single-row", width="stretch",
        column_config={
            "#": st.column_config.NumberColumn(width="small", help="item id"),
            "status": st.column_config.TextColumn(width="small"),
            "gate reason": st.column_config.TextColumn(width="medium",
                                                       help="why a quality gate or a curator rejected it"),
            "difficulty": st.column_config.NumberColumn(format="%.1f", width="small"),
            "edited": st.column_config.CheckboxColumn(width="small", help="a curator changed its text"),
            "question": st.column_config.TextColumn(width="medium"),
        },
    )
    shown_to = start + len(items)
    st.caption(f"Rows {start + 1:,}–{shown_to:,} of {len(ids):,}: click a row to open it. "
               "Keys: A accept · X reject · U undecided · E edit (then Ctrl+Enter save and accept, Ctrl+S save) · "
               "S skip · → next · ← previous.")


BULK = "rv_bulk"  # session key: the bulk decision waiting for its confirmation, with its queue


def _bulk_confirmed(store: Store, decision: str, queued: Sequence[int]) -> None:
    changed = decide(store, list(queued), decision)
    st.session_state.pop(BULK, None)
    ui.say("bulk", f"{DECISION_WORDS[decision].capitalize()}: {changed:,} item(s)"
           + (f"; {len(queued) - changed:,} kept their status (failed or replaced)." if changed < len(queued) else "."),
           "warning" if decision == "rejected" else "success")


def _bulk(store: Store, ids: Sequence[int], filters: Filters) -> None:
    """Accept or reject every item of the queue, after a confirmation beside the buttons
    that says how many items and which filters (callbacks: the run that follows a press
    already draws its outcome)."""
    b1, b2 = st.columns(2)
    b1.button(f"Accept all {len(ids):,}…", key="bulk_accept", help="every item matching the filters",
              on_click=lambda: st.session_state.update({BULK: ("accepted", tuple(ids))}))
    b2.button(f"Reject all {len(ids):,}…", key="bulk_reject", help="every item matching the filters",
              on_click=lambda: st.session_state.update({BULK: ("rejected", tuple(ids))}))
    pending = st.session_state.get(BULK)
    if pending is not None and tuple(pending[1]) != tuple(ids):
        st.session_state.pop(BULK, None)  # the queue changed since: ask again
        pending = None
    if pending is not None:
        decision, queued = pending
        verb = "Accept" if decision == "accepted" else "Reject"
        shown = ", ".join(STATUS_WORDS.get(s, s) for s in filters.statuses) or "any status"
        with st.container(border=True, key="bulk_confirmation"):
            st.warning(f"{verb} {len(queued):,} item(s)? Every item matching the filters (status: {shown}"
                       + (", and the other filters above" if any(v is not None for v in filters.query().values())
                          else "") + ")."
                       + (f" Items without a gate reason get the reason '{CURATOR_REASON}'."
                          if decision == "rejected" else ""))
            c1, c2 = st.columns(2)
            c1.button(f"{verb} {len(queued):,} item(s)", type="primary", key="bulk_confirm",
                      on_click=_bulk_confirmed, args=(store, decision, queued))
            c2.button("Cancel", key="bulk_cancel", on_click=lambda: st.session_state.pop(BULK, None))
    ui.notice("bulk")


# -- the card ----------------------------------------------------------------------------------


def _card(store: Store, ids: Sequence[int], item_id: int, pos: int) -> None:
    card = item_card(store, item_id)
    item = card.item
    editing = st.session_state.get(EDITING) == item_id
    st.caption(f"Item #{item_id} · {pos + 1:,} of {len(ids):,} in this queue")
    nav = st.columns(3)
    nav[0].button("Previous", key="q_prev", shortcut="Left", on_click=_go, args=(ids, -1), disabled=pos == 0,
                  width="stretch")
    nav[1].button("Skip", key="q_skip", shortcut="S", on_click=_go, args=(ids, +1), disabled=pos == len(ids) - 1,
                  help="leave it undecided and go on", width="stretch")
    nav[2].button("Next", key="q_next", shortcut="Right", on_click=_go, args=(ids, +1),
                  disabled=pos == len(ids) - 1, width="stretch")
    act = st.columns(4)
    decidable = item.status not in ("failed", "superseded") and not editing
    act[0].button("Accept", key="q_accept", shortcut="A", type="primary", on_click=_decide,
                  args=(store, ids, item_id, "accepted"), disabled=not decidable or item.status == "accepted",
                  width="stretch")
    act[1].button("Reject", key="q_reject", shortcut="X", on_click=_decide, args=(store, ids, item_id, "rejected"),
                  disabled=not decidable or item.status == "rejected", width="stretch")
    act[2].button("Edit", key="q_edit", shortcut="E", disabled=editing or item.status == "failed",
                  on_click=lambda: st.session_state.update({EDITING: item_id}), width="stretch")
    act[3].button("Undecided", key="q_undo", shortcut="U", on_click=_decide, args=(store, ids, item_id, "generated"),
                  disabled=not decidable or item.status == "generated", help="put it back to review",
                  width="stretch")
    ui.notice("card", keep=True)  # the last decision stays in view until the next one
    if editing:
        _editor(store, item, ids)
    else:
        _read(item)
    _context(store, card)


def _meta(item: Any) -> str:
    parts = [f"status: {STATUS_WORDS.get(item.status, item.status)}", item.discipline,
             f"difficulty {item.difficulty:g}" if item.difficulty is not None else "difficulty not rated",
             f"model {item.model or 'unknown'}"]
    if item.operation:
        parts.append(f"rewrite: {item.operation}")
    return " · ".join(parts)


def _read(item: Any) -> None:
    st.caption(ui.plain(_meta(item)))
    if item.edited_at:
        st.caption(ui.plain(f"Edited by a curator on {time.strftime('%Y-%m-%d %H:%M', time.localtime(item.edited_at))}; "
                            "the version as generated is kept (below and in the export)."))
    if item.gate_reason:
        (st.warning if item.status == "rejected" else st.info)(ui.plain(f"Gate reason: {item.gate_reason}"))
    if item.status == "failed":
        st.error("A failed attempt: the model's reply could not be used.")
        if item.raw:
            with st.expander("The model's reply"):
                ui.text_block(item.raw)
        return
    with st.container(border=True):
        st.caption("Question")
        ui.text_block(item.question)
        if item.options:
            st.caption("Options (✓ = the answer)")
            ui.text_block("\n".join(f"{'✓' if o == item.answer else ' '} {chr(65 + i)}. {o}"
                                    for i, o in enumerate(item.options)))
        else:
            st.caption("Answer")
            ui.text_block(item.answer)
        st.caption("Solution")
        ui.text_block(item.solution)
    if item.reasoning:
        with st.expander("Model reasoning", expanded=False):
            ui.text_block(item.reasoning)
    if item.original:
        with st.expander("As generated, before the edit", expanded=False):
            orig = item.original
            changed = [k for k in ("question", "options", "answer", "solution", "difficulty", "discipline")
                       if _differs(orig.get(k), getattr(item, k))]
            st.caption("Changed: " + (", ".join(changed) if changed else "nothing"))
            for key in changed:
                st.caption(key)
                value = orig.get(key)
                ui.text_block("\n".join(value) if isinstance(value, list) else value)


def _differs(original: Any, now: Any) -> bool:
    if isinstance(now, tuple):
        now = list(now)
    return original != now


def _editor(store: Store, item: Any, ids: Sequence[int]) -> None:
    with st.form(f"edit_{item.id}", border=True):
        q = st.text_area("Question", item.question, height=170)
        opts = st.text_area("Options, one a line (empty for an open question)", "\n".join(item.options or []),
                            height=120)
        a = st.text_input("Answer (for a multiple-choice item: the text of one option)", item.answer)
        sol = st.text_area("Solution", item.solution, height=120)
        diff = st.slider("Difficulty", 1.0, 5.0, float(item.difficulty or 3.0), 0.5)
        # Ctrl+Enter in a text box submits the form with its first button: save and accept
        c1, c2, c3 = st.columns(3)
        accept = c1.form_submit_button("Save and accept", type="primary", shortcut="Ctrl+Enter")
        save = c2.form_submit_button("Save", shortcut="Ctrl+S")
        cancel = c3.form_submit_button("Cancel")
    if cancel:
        st.session_state.pop(EDITING, None)
        ui.rerun_part()
    if save or accept:
        try:
            options = [o.strip() for o in opts.splitlines() if o.strip()] or None
            edit_item(store, item.id, question=q, options=options, answer=a, solution=sol, difficulty=diff)
        except LinkQAError as err:
            ui.show_error(err)
            return
        st.session_state.pop(EDITING, None)
        if accept:
            _decide(store, ids, item.id, "accepted")
            ui.say("card", f"Item #{item.id} saved (the original is kept) and accepted.")
        else:
            ui.say("card", f"Item #{item.id} saved; the version as generated is kept.")
        ui.rerun_part()


def _context(store: Store, card: Any) -> None:
    """Where the item came from: its path drawn small, its seeds, its parents."""
    seeds = card.seeds
    if card.path is not None:
        named = store.seeds.kp_names([s.id for s in seeds])
        with st.expander(f"Path of {len(card.path.kps)} KPs and its {len(seeds)} seed(s)", expanded=True):
            st.image(drawing.path_svg(card.path.kps, [named.get(s.id, set()) for s in seeds]), width="stretch")
            ui.text_block(" → ".join(f"{i + 1}. {k}" for i, k in enumerate(card.path.kps)))
    for j, s in enumerate(seeds):
        with st.expander(f"Seed S{j + 1}", expanded=False):
            st.caption(ui.plain(f"{s.subject or s.discipline} · id {s.id}"))
            ui.seed_text(s)
    if card.lineage:
        with st.expander(f"Lineage: {len(card.lineage)} earlier version(s)", expanded=False):
            for p in card.lineage:
                st.caption(ui.plain(f"#{p.id} · difficulty {p.difficulty} · {p.operation or 'as synthesised'} · "
                                    f"{STATUS_WORDS.get(p.status, p.status)}"))
                ui.text_block(p.question[:600])

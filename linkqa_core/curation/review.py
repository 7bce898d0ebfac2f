"""Curating generated items: list with filters, accept/reject/edit, compare runs.

A curator's edit keeps the item as the model wrote it (``Item.original``) and when it
was edited, so review is traceable and the export can say so.

Review is a queue: the items matching the filters, in id order, one at a time.
:func:`step` moves along it; after a decision :func:`resume_at` finds where to go on
when the decided item has left the queue (it no longer matches the status filter).

>>> step([3, 5, 8], 5, +1), step([3, 5, 8], 8, +1), resume_at([3, 8], 5)
(8, 8, 8)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import ConfigError, InputError
from ..records import ITEM_STATUSES, Item, Path, Seed
from ..store import Store
from ..store.items import EDITABLE

__all__ = ["STATUSES", "DECISIONS", "ItemCard", "list_items", "item_card", "set_status", "edit_item",
           "compare_runs", "item_counts", "decide", "step", "resume_at", "gate_kind", "gate_kinds", "gate_pattern",
           "CURATOR_REASON"]

STATUSES = ITEM_STATUSES
DECISIONS = ("accepted", "rejected", "generated")  # what a curator can set ("generated" = undecided again)
CURATOR_REASON = "rejected by the curator"


@dataclass(frozen=True)
class ItemCard:
    """Everything the review card shows for one item: the item, its path, its seeds, its parents."""

    item: Item
    path: Path | None
    seeds: tuple[Seed, ...]
    lineage: tuple[Item, ...]


def list_items(store: Store, run_id: int, *, status: str | Sequence[str] | None = None,
               discipline: str | None = None, min_difficulty: float | None = None,
               max_difficulty: float | None = None, gate: str | None = None, search: str | None = None,
               limit: int = 200, offset: int = 0) -> list[Item]:
    """A run's items matching the filters, oldest first."""
    store.runs.get(run_id)
    return store.items.of_run(run_id, [status] if isinstance(status, str) else status, discipline=discipline,
                              min_difficulty=min_difficulty, max_difficulty=max_difficulty, gate=gate,
                              search=search, limit=limit, offset=offset)


def item_counts(store: Store, run_id: int) -> dict[str, int]:
    return store.items.counts(run_id)


def item_card(store: Store, item_id: int) -> ItemCard:
    """An item with its path's KPs, its seeds in full and its lineage (nearest parent first)."""
    item = store.items.get(item_id)
    path = store.runs.paths_by_id([item.path_id]).get(item.path_id) if item.path_id is not None else None
    return ItemCard(item, path, tuple(store.seeds.get(item.seed_ids)), tuple(store.items.lineage(item)))


def set_status(store: Store, item_ids: Sequence[int], status: str, *, reason: str | None = None) -> int:
    """Accept or reject items (bulk); failed and superseded items keep their status. Returns how many changed."""
    if status not in DECISIONS:
        raise ConfigError(f"a curator can set {', '.join(DECISIONS)}, not '{status}'")
    return store.items.set_status(item_ids, status, reason=reason)


def decide(store: Store, item_ids: Sequence[int], decision: str) -> int:
    """A curator's decision: accept, reject (the reason says it was the curator unless a
    gate gave one) or put back to undecided ("generated"). Returns how many changed."""
    if decision not in DECISIONS:
        raise ConfigError(f"a curator can set {', '.join(DECISIONS)}, not '{decision}'")
    if decision != "rejected":
        return set_status(store, item_ids, decision)
    gated = {i for i, reason in store.items.reasons(item_ids).items() if reason}
    changed = set_status(store, [i for i in item_ids if i in gated], "rejected")
    return changed + set_status(store, [i for i in item_ids if i not in gated], "rejected", reason=CURATOR_REASON)


def step(ids: Sequence[int], current: int | None, offset: int) -> int | None:
    """The item ``offset`` places from ``current`` in the queue ``ids``, held at either end.

    A ``current`` no longer in the queue counts from where it would stand (see
    :func:`resume_at`); an empty queue has no item.
    """
    if not ids:
        return None
    if current in ids:
        pos = list(ids).index(current)
    else:
        here = resume_at(ids, current)
        pos = list(ids).index(here)
        if offset > 0 and here is not None and current is not None and here > current:
            offset -= 1  # the item after a departed one is already one step on
    return ids[min(max(pos + offset, 0), len(ids) - 1)]


def resume_at(ids: Sequence[int], current: int | None) -> int | None:
    """Where the queue goes on from ``current``: itself while it is in ``ids``, else the
    first item after it, else the last one (``ids`` ascending, as :func:`list_items` gives)."""
    if not ids:
        return None
    if current is None:
        return ids[0]
    for i in ids:
        if i >= current:
            return i
    return ids[-1]


DETAIL = "…"  # what stands for an item's particulars in a gate kind
_QUOTED = re.compile(r"'[^']*'")
_NUMBERISH = re.compile(r"#?\b[\w.]*\d[\w.]*")
_DETAILS = re.compile(f"{DETAIL}(?:[\\s,]*{DETAIL})+")


def gate_kind(reason: str | None) -> str | None:
    """A gate reason with its particulars (quoted text, numbers, ids) as "…", so that
    reasons of one kind read the same: "near-duplicate of item 181 (Jaccard 0.92)" ->
    "near-duplicate of item … (Jaccard …)". :func:`gate_pattern` finds its items again."""
    if not reason or not reason.strip():
        return None
    kind = _NUMBERISH.sub(DETAIL, _QUOTED.sub(f"'{DETAIL}'", " ".join(reason.split())))
    return _DETAILS.sub(DETAIL, kind)


def gate_pattern(kind: str) -> str:
    """The SQL LIKE pattern (inside ``%…%``) matching the reasons of a :func:`gate_kind`."""
    return kind.replace(DETAIL, "%")


def gate_kinds(store: Store, run_id: int) -> list[tuple[str, int]]:
    """The kinds of gate reason among a run's items, with counts, most frequent first."""
    counts: dict[str, int] = {}
    for reason, n in store.items.gate_reasons(run_id):
        kind = gate_kind(reason)
        if kind:
            counts[kind] = counts.get(kind, 0) + n
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def edit_item(store: Store, item_id: int, **fields: Any) -> ItemCard:
    """Edit an item's text; the answer must stay one of the options. The original is kept."""
    bad = set(fields) - set(EDITABLE)
    if bad:
        raise ConfigError(f"cannot edit {sorted(bad)}; editable: {', '.join(EDITABLE)}")
    current = store.items.get(item_id)
    if current.status == "failed":
        raise InputError(f"item {item_id} is a failed attempt with no QA to edit")
    merged = {k: fields[k] if k in fields else getattr(current, k) for k in EDITABLE}
    question = str(merged["question"] or "").strip()
    answer = str(merged["answer"] or "").strip()
    if not question:
        raise InputError("the question cannot be empty")
    if not answer:
        raise InputError("the answer cannot be empty")
    options = [str(o).strip() for o in merged["options"] or () if str(o).strip()] or None
    if options and answer not in options:
        raise InputError(f"the answer '{answer}' is not one of the {len(options)} options")
    difficulty = merged["difficulty"]
    if difficulty is not None and not 1 <= float(difficulty) <= 5:
        raise InputError("difficulty must be between 1 and 5")
    new = {"question": question, "options": options, "answer": answer, "solution": str(merged["solution"] or ""),
           "difficulty": None if difficulty is None else float(difficulty), "discipline": merged["discipline"]}
    old = {k: (list(getattr(current, k)) if k == "options" and getattr(current, k) else getattr(current, k))
           for k in EDITABLE}
    if new != old:
        store.items.edit(item_id, new)
    return item_card(store, item_id)


def compare_runs(store: Store, a: int, b: int) -> dict[str, Any]:
    """Side-by-side settings and metrics of two runs, with the differing keys marked."""
    ra, rb = store.runs.get(a), store.runs.get(b)

    def flat(d: dict | None, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in (d or {}).items():
            if isinstance(v, dict) and k not in ("discipline_shares", "target_shares", "difficulty_histogram", "mix"):
                out.update(flat(v, f"{prefix}{k}."))
            elif k != "coverage_curve":
                out[f"{prefix}{k}"] = v
        return out

    rows = []
    for section in ("config", "metrics", "baseline"):
        fa, fb = flat(getattr(ra, section)), flat(getattr(rb, section))
        for key in sorted(set(fa) | set(fb)):
            if section == "config" and key.endswith("template"):
                va, vb = ("(template)" if fa.get(key) else None), ("(template)" if fb.get(key) else None)
                same = fa.get(key) == fb.get(key)
            else:
                va, vb = fa.get(key), fb.get(key)
                same = va == vb
            rows.append({"section": section, "key": key, "a": va, "b": vb, "differs": not same})
    return {"a": a, "b": b, "rows": rows}

"""Curating generated items: list with filters, accept/reject/edit, compare runs.

A curator's edit keeps the item as the model wrote it (``Item.original``) and when it
was edited, so review is traceable and the export can say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import ConfigError, InputError
from ..records import ITEM_STATUSES, Item, Path, Seed
from ..store import Store
from ..store.items import EDITABLE

__all__ = ["STATUSES", "DECISIONS", "ItemCard", "list_items", "item_card", "set_status", "edit_item",
           "compare_runs", "item_counts"]

STATUSES = ITEM_STATUSES
DECISIONS = ("accepted", "rejected", "generated")  # what a curator can set ("generated" = undecided again)


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

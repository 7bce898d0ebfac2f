"""Curating generated items: list with filters, accept/reject/edit, compare runs."""

from __future__ import annotations

import json
import time
from typing import Any, Sequence

from ..errors import ConfigError, InputError, NotFoundError
from ..store import Store

__all__ = ["STATUSES", "list_items", "item_detail", "set_status", "edit_item", "compare_runs", "item_counts"]

# generated: fresh from synthesis; rejected: a gate or the curator said no; failed: no
# usable answer (raw text kept); superseded: a harder rewrite replaced it.
STATUSES = ("generated", "accepted", "rejected", "failed", "superseded")
_ITEM_COLUMNS = ("question", "options", "answer", "solution", "difficulty", "discipline")


def _item(row) -> dict[str, Any]:
    d = dict(row)
    for key in ("options", "kps_used", "seed_ids"):
        d[key] = json.loads(d[key]) if d.get(key) else None
    return d


def list_items(
    store: Store,
    run_id: int,
    *,
    status: str | Sequence[str] | None = None,
    discipline: str | None = None,
    min_difficulty: float | None = None,
    max_difficulty: float | None = None,
    gate: str | None = None,
    search: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[dict[str, Any]]:
    store.get_run(run_id)
    where, params = ["run_id = ?"], [run_id]
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        bad = set(statuses) - set(STATUSES)
        if bad:
            raise ConfigError(f"unknown status {sorted(bad)}; use {', '.join(STATUSES)}")
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        params += statuses
    if discipline:
        where.append("discipline = ?")
        params.append(discipline)
    if min_difficulty is not None:
        where.append("difficulty >= ?")
        params.append(min_difficulty)
    if max_difficulty is not None:
        where.append("difficulty <= ?")
        params.append(max_difficulty)
    if gate:
        where.append("gate_reason LIKE ?")
        params.append(f"%{gate}%")
    if search:
        where.append("(question LIKE ? OR answer LIKE ?)")
        params += [f"%{search}%", f"%{search}%"]
    rows = store.query(
        f"SELECT * FROM items WHERE {' AND '.join(where)} ORDER BY id LIMIT ? OFFSET ?", (*params, limit, offset)
    )
    return [_item(r) for r in rows]


def item_counts(store: Store, run_id: int) -> dict[str, int]:
    return dict(store.query("SELECT status, count(*) FROM items WHERE run_id = ? GROUP BY status", (run_id,)))


def item_detail(store: Store, item_id: int) -> dict[str, Any]:
    """An item with its path's KPs, its seeds in full and its lineage."""
    rows = store.query("SELECT * FROM items WHERE id = ?", (item_id,))
    if not rows:
        raise NotFoundError(f"no item {item_id}")
    item = _item(rows[0])
    path = store.query("SELECT idx, kps FROM paths WHERE id = ?", (item["path_id"],))
    item["path_index"] = path[0][0] if path else None
    item["path_kps"] = json.loads(path[0][1]) if path else []
    item["seeds"] = [s.__dict__ for s in store.get_seeds(item["seed_ids"] or [])]
    lineage = []
    parent = item["parent_id"]
    while parent is not None and len(lineage) < 20:
        prow = store.query("SELECT id, parent_id, question, difficulty, operation FROM items WHERE id = ?", (parent,))
        if not prow:
            break
        lineage.append(dict(prow[0]))
        parent = prow[0]["parent_id"]
    item["lineage"] = lineage
    return item


def set_status(store: Store, item_ids: Sequence[int], status: str, *, reason: str | None = None) -> int:
    """Accept or reject items (bulk); returns how many changed."""
    if status not in ("accepted", "rejected", "generated"):
        raise ConfigError(f"a curator can set accepted, rejected or generated, not '{status}'")
    ids = [int(i) for i in item_ids]
    if not ids:
        return 0
    changed = 0
    with store.transaction() as conn:
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            marks = ",".join("?" * len(chunk))
            sql = f"UPDATE items SET status = ?, updated_at = ?{', gate_reason = ?' if reason else ''}" \
                  f" WHERE id IN ({marks}) AND status != 'failed'"
            args = [status, time.time()] + ([reason] if reason else []) + chunk
            changed += conn.execute(sql, args).rowcount
    return changed


def edit_item(store: Store, item_id: int, **fields: Any) -> dict[str, Any]:
    """Edit an item's text; the answer must stay one of the options."""
    bad = set(fields) - set(_ITEM_COLUMNS)
    if bad:
        raise ConfigError(f"cannot edit {sorted(bad)}; editable: {', '.join(_ITEM_COLUMNS)}")
    current = item_detail(store, item_id)
    merged = {k: fields.get(k, current[k]) for k in _ITEM_COLUMNS}
    if not str(merged["question"] or "").strip():
        raise InputError("the question cannot be empty")
    if not str(merged["answer"] or "").strip():
        raise InputError("the answer cannot be empty")
    options = merged["options"]
    if options:
        options = [str(o).strip() for o in options if str(o).strip()]
        if merged["answer"].strip() not in options:
            raise InputError(f"the answer '{merged['answer']}' is not one of the {len(options)} options")
    if merged["difficulty"] is not None and not 1 <= float(merged["difficulty"]) <= 5:
        raise InputError("difficulty must be between 1 and 5")
    with store.transaction() as conn:
        conn.execute(
            "UPDATE items SET question = ?, options = ?, answer = ?, solution = ?, difficulty = ?, discipline = ?,"
            " updated_at = ? WHERE id = ?",
            (merged["question"].strip(), json.dumps(options, ensure_ascii=False) if options else None,
             merged["answer"].strip(), merged["solution"], merged["difficulty"], merged["discipline"], time.time(),
             item_id),
        )
    return item_detail(store, item_id)


def compare_runs(store: Store, a: int, b: int) -> dict[str, Any]:
    """Side-by-side settings and metrics of two runs, with the differing keys marked."""
    ra, rb = store.get_run(a), store.get_run(b)

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
        fa, fb = flat(ra.get(section)), flat(rb.get(section))
        for key in sorted(set(fa) | set(fb)):
            if section == "config" and key.endswith("template"):
                va, vb = ("(template)" if fa.get(key) else None), ("(template)" if fb.get(key) else None)
                same = fa.get(key) == fb.get(key)
            else:
                va, vb = fa.get(key), fb.get(key)
                same = va == vb
            rows.append({"section": section, "key": key, "a": va, "b": vb, "differs": not same})
    return {"a": a, "b": b, "rows": rows}

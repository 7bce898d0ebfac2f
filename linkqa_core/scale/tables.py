"""Records as Parquet rows, and the stable ids that make every stage idempotent.

Ids are content hashes (64-bit, as ``int64``), so the same work always has the same id
on any node and in any attempt:

- a bundle: the run, the path's index, its KPs and its seed ids;
- a request: its bundle and the *prompt version* (template, model, items asked, difficulty,
  format), so an edited prompt is new work and an unchanged one is not;
- an item: its request and its sample index ``k``.

A stage skips the requests whose id is already in its results (the skip-done join), and
readers keep the first row of each item id, so a batch written twice (an actor killed
after writing, its batch retried elsewhere) still counts once.

>>> uid("a", 1) == uid("a", 1) != uid("a", 2)
True
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa

from ..records import Bundle, Item, Path, Seed

__all__ = ["uid", "prompt_version", "bundle_uid", "item_uid", "bundle_row", "bundle_from_row", "BUNDLE_SCHEMA",
           "ITEM_SCHEMA", "items_table", "items_from_table", "dedupe_first"]


def uid(*parts: Any) -> int:
    """A 64-bit content id of ``parts`` (their canonical JSON), as a signed int64."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little", signed=True)


def prompt_version(template: str, model: str | None, n_items: int, difficulty: float, multiple_choice: bool) -> int:
    return uid("prompt", template, model or "", n_items, float(difficulty), bool(multiple_choice))


def bundle_uid(run_id: int, path: Path) -> int:
    return uid("bundle", run_id, path.index, list(path.kps), list(path.seed_ids))


def item_uid(request_uid: int, k: int) -> int:
    return uid("item", request_uid, k)


# -- bundles ---------------------------------------------------------------------------

BUNDLE_SCHEMA = pa.schema([
    ("bundle_uid", pa.int64()),
    ("run_id", pa.int64()),
    ("path_id", pa.int64()),
    ("path_index", pa.int64()),
    ("discipline", pa.string()),
    ("kps", pa.string()),       # JSON list, walk order
    ("seed_ids", pa.string()),  # JSON list, strongest first
    ("seeds", pa.string()),     # JSON list of the seeds in full
])


def _seed_json(s: Seed) -> dict[str, Any]:
    return {"id": s.id, "question": s.question, "answer": s.answer,
            "options": list(s.options) if s.options is not None else None, "answer_letter": s.answer_letter,
            "discipline": s.discipline, "subject": s.subject, "difficulty": s.difficulty,
            "difficulty_estimated": s.difficulty_estimated, "source": s.source, "metadata": s.metadata}


def _seed_of(d: dict[str, Any]) -> Seed:
    return Seed(id=d["id"], question=d["question"], answer=d["answer"],
                options=tuple(d["options"]) if d.get("options") is not None else None,
                answer_letter=d.get("answer_letter"), discipline=d.get("discipline") or "Other",
                subject=d.get("subject"), difficulty=d.get("difficulty"),
                difficulty_estimated=bool(d.get("difficulty_estimated")), source=d.get("source"),
                metadata=d.get("metadata") or {})


def bundle_row(run_id: int, bundle: Bundle) -> dict[str, Any]:
    p = bundle.path
    return {"bundle_uid": bundle_uid(run_id, p), "run_id": run_id, "path_id": p.id, "path_index": p.index,
            "discipline": bundle.discipline, "kps": json.dumps(list(p.kps), ensure_ascii=False),
            "seed_ids": json.dumps(list(p.seed_ids)),
            "seeds": json.dumps([_seed_json(s) for s in bundle.seeds], ensure_ascii=False)}


def bundle_from_row(row: dict[str, Any]) -> Bundle:
    path = Path(index=int(row["path_index"]), kps=tuple(json.loads(row["kps"])), discipline=row["discipline"],
                seed_ids=tuple(json.loads(row["seed_ids"])), id=int(row["path_id"]), run_id=int(row["run_id"]))
    return Bundle(path, tuple(_seed_of(d) for d in json.loads(row["seeds"])))


# -- items -----------------------------------------------------------------------------

ITEM_SCHEMA = pa.schema([
    ("uid", pa.int64()),
    ("request_uid", pa.int64()),
    ("order", pa.int64()),       # the run's order: path index * 100 + k (failures: k = 99)
    ("run_id", pa.int64()),
    ("path_id", pa.int64()),
    ("path_index", pa.int64()),
    ("slot", pa.string()),
    ("status", pa.string()),
    ("question", pa.string()),
    ("options", pa.string()),     # JSON list or null
    ("answer", pa.string()),
    ("solution", pa.string()),
    ("kps_used", pa.string()),    # JSON list
    ("discipline", pa.string()),
    ("difficulty", pa.float64()),
    ("seed_ids", pa.string()),    # JSON list
    ("model", pa.string()),
    ("reasoning", pa.string()),
    ("raw", pa.string()),
    ("gate_reason", pa.string()),
    ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("cached", pa.bool_()),
])


def items_table(rows: Sequence[tuple[int, int, int, Item, bool]]) -> pa.Table:
    """``(uid, request uid, order, item, cached)`` rows as an Arrow table of :data:`ITEM_SCHEMA`."""
    cols: dict[str, list[Any]] = {f.name: [] for f in ITEM_SCHEMA}
    for u, ru, order, it, cached in rows:
        cols["uid"].append(u)
        cols["request_uid"].append(ru)
        cols["order"].append(order)
        cols["run_id"].append(it.run_id)
        cols["path_id"].append(it.path_id)
        cols["path_index"].append(order // 100)
        cols["slot"].append(it.slot)
        cols["status"].append(it.status)
        cols["question"].append(it.question)
        cols["options"].append(json.dumps(list(it.options), ensure_ascii=False) if it.options is not None else None)
        cols["answer"].append(it.answer)
        cols["solution"].append(it.solution)
        cols["kps_used"].append(json.dumps(list(it.kps_used), ensure_ascii=False))
        cols["discipline"].append(it.discipline)
        cols["difficulty"].append(it.difficulty)
        cols["seed_ids"].append(json.dumps(list(it.seed_ids)))
        cols["model"].append(it.model)
        cols["reasoning"].append(it.reasoning)
        cols["raw"].append(it.raw)
        cols["gate_reason"].append(it.gate_reason)
        cols["prompt_tokens"].append(it.prompt_tokens)
        cols["completion_tokens"].append(it.completion_tokens)
        cols["cached"].append(bool(cached))
    return pa.table(cols, schema=ITEM_SCHEMA)


def items_from_table(table: pa.Table) -> list[tuple[int, Item]]:
    """``(uid, item)`` pairs of an item table (items carry no database id yet)."""
    out = []
    for r in table.to_pylist():
        options = json.loads(r["options"]) if r.get("options") else None
        out.append((int(r["uid"]), Item(
            question=r["question"] or "", answer=r["answer"] or "",
            options=tuple(options) if options else None, solution=r["solution"] or "",
            kps_used=tuple(json.loads(r["kps_used"] or "[]")), discipline=r["discipline"] or "Other",
            difficulty=r["difficulty"], run_id=r["run_id"], path_id=r["path_id"], slot=r["slot"],
            status=r["status"], seed_ids=tuple(json.loads(r["seed_ids"] or "[]")), model=r["model"],
            reasoning=r["reasoning"], raw=r["raw"], gate_reason=r["gate_reason"],
            prompt_tokens=int(r["prompt_tokens"] or 0), completion_tokens=int(r["completion_tokens"] or 0))))
    return out


def dedupe_first(tables: Iterable[pa.Table], key: str = "uid") -> pa.Table | None:
    """The rows of ``tables`` with the first row of each ``key`` kept, sorted by ``order`` when present."""
    parts = [t for t in tables if t.num_rows]
    if not parts:
        return None
    table = pa.concat_tables(parts, promote_options="default")
    keys = table.column(key).to_numpy()
    _, first = np.unique(keys, return_index=True)
    table = table.take(pa.array(np.sort(first)))
    if "order" in table.column_names:
        table = table.take(pa.array(np.argsort(table.column("order").to_numpy(), kind="stable")))
    return table

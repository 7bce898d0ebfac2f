"""The full export of a Ray run: every item from its Parquet, with the curators' decisions applied.

A run larger than ``import_limit`` has only a review sample in SQLite. Its full export reads
the items from the run's Parquet in the run's order; an item that was imported is exported
as it is in SQLite (the curator's status and edits), any other keeps the gates' verdict
(``rejected`` with its reason) or is ``generated`` (not reviewed). Records have the shape of
:func:`linkqa_core.curation.export.item_records`; ``item_id`` is the database id of an
imported item and ``None`` otherwise, and ``slot`` names every item.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any, Iterator

from ..curation.export import EXPORT_STATUSES, check_export_options, format_prompt, write_jsonl
from ..errors import NotFoundError
from ..graph.sampling import config_hash
from ..records import Item
from ..store import Store
from .gates import VERDICTS
from .importer import result_table
from .storage import Storage
from .tables import items_from_table

__all__ = ["full_records", "export_full"]


def _run_dir(store: Store, run_id: int) -> Storage:
    info = ((store.runs.get(run_id).config.get("scale") or {}).get("synthesis") or {})
    results = info.get("results")
    if not results:
        raise NotFoundError(f"run {run_id} did not run on the ray backend: export it with `export`")
    return Storage(results.rsplit("/results/", 1)[0])


def full_records(store: Store, run_id: int, *, fmt: str = "records", status: str = "accepted"
                 ) -> Iterator[dict[str, Any]]:
    check_export_options(fmt, status)
    run = store.runs.get(run_id)
    run_dir = _run_dir(store, run_id)
    chash = config_hash(run.config)
    wanted = set(EXPORT_STATUSES[status])
    paths = {p.index: p for p in store.runs.paths(run_id)}
    verdict: dict[str, str] = {}
    if run_dir.exists(VERDICTS):
        for t in run_dir.read_tables("gates"):
            for k, passed, reason in zip(t.column("key").to_pylist(), t.column("passed").to_pylist(),
                                         t.column("reason").to_pylist()):
                if not passed:
                    verdict[k] = reason
    table = result_table(run_dir, "synthesis")
    if table is None:
        return
    stored = {it.slot: it for it in store.items.of_run(run_id) if it.parent_id is None}
    for k in range(0, table.num_rows, 5000):
        for _, it in items_from_table(table.slice(k, 5000)):
            if it.status == "failed":
                continue
            item = stored.get(it.slot)
            if item is None:
                reason = verdict.get(it.slot)
                item = it.with_(status="rejected", gate_reason=reason) if reason else it
            if item.status not in wanted:
                continue
            yield _record(run, chash, item, paths.get(int(it.slot[1:].split(":")[0])), fmt)


def _record(run: Any, chash: str, item: Item, path: Any, fmt: str) -> dict[str, Any]:
    provenance = {
        "run_id": run.id, "item_id": item.id, "slot": item.slot, "status": item.status,
        "path_index": path.index if path else None, "path_kps": list(path.kps) if path else [],
        "seed_ids": list(item.seed_ids), "model": item.model, "offline": False, "parent_id": item.parent_id,
        "operation": item.operation, "edited": item.edited, "original": item.original, "edited_at": item.edited_at,
        "config_hash": chash, "settings": run.config,
    }
    if fmt == "messages":
        letter = item.answer_letter
        answer = (item.solution.strip() + "\n\n" if item.solution.strip() else "") + \
            f"Answer: {(letter + '. ') if letter else ''}{item.answer}"
        return {"messages": [{"role": "user", "content": format_prompt(item.question, item.options)},
                             {"role": "assistant", "content": answer}],
                "metadata": {**provenance, "discipline": item.discipline, "difficulty": item.difficulty}}
    return {"id": f"run{run.id}-{item.slot}", "question": item.question,
            "options": list(item.options) if item.options else None, "answer": item.answer,
            "answer_letter": item.answer_letter, "solution": item.solution, "kps_used": list(item.kps_used),
            "discipline": item.discipline, "difficulty": item.difficulty, "status": item.status,
            "reasoning": item.reasoning, "provenance": provenance}


def export_full(store: Store, run_id: int, out: FilePath | str, *, fmt: str = "records",
                status: str = "accepted") -> dict[str, Any]:
    """Write every item of a Ray run (not only the imported sample) to ``out``."""
    n = write_jsonl(full_records(store, run_id, fmt=fmt, status=status), FilePath(out))
    return {"run_id": run_id, "kind": "item", "records": n, "out": str(out), "format": fmt, "status": status,
            "source": "parquet"}


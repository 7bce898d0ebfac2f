"""JSONL records of generated items, each with its provenance."""

from __future__ import annotations

import json
from typing import Any, Iterator

from ..errors import ConfigError
from ..graph.sampling import config_hash
from ..store import Store

__all__ = ["item_records", "format_prompt"]


def format_prompt(question: str, options: list[str] | None) -> str:
    if not options:
        return question
    return question + "\n\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))


def item_records(store: Store, run_id: int, *, fmt: str = "records", status: str = "accepted") -> Iterator[dict[str, Any]]:
    """Items of a run (accepted only, or all that hold a QA); failed attempts are never exported."""
    if status not in ("accepted", "all"):
        raise ConfigError(f"status must be accepted or all, not '{status}'")
    run = store.get_run(run_id)
    config = run["config"] or {}
    chash = config_hash(config)
    where = "i.status = 'accepted'" if status == "accepted" else "i.status NOT IN ('failed')"
    rows = store.query(
        f"SELECT i.*, p.idx AS path_index, p.kps AS path_kps FROM items i LEFT JOIN paths p ON p.id = i.path_id"
        f" WHERE i.run_id = ? AND {where} ORDER BY i.id", (run_id,)
    )
    for r in rows:
        options = json.loads(r["options"]) if r["options"] else None
        letter = chr(65 + options.index(r["answer"])) if options and r["answer"] in options else None
        provenance = {
            "run_id": run_id,
            "item_id": r["id"],
            "path_index": r["path_index"],
            "path_kps": json.loads(r["path_kps"]) if r["path_kps"] else [],
            "seed_ids": json.loads(r["seed_ids"]) if r["seed_ids"] else [],
            "model": r["model"],
            "offline": r["model"] == "offline-composer",
            "parent_id": r["parent_id"],
            "operation": r["operation"],
            "config_hash": chash,
        }
        if fmt == "messages":
            answer = (r["solution"] + "\n\n" if r["solution"] else "") + f"Answer: {(letter + '. ') if letter else ''}{r['answer']}"
            yield {
                "messages": [
                    {"role": "user", "content": format_prompt(r["question"], options)},
                    {"role": "assistant", "content": answer},
                ],
                "metadata": {**provenance, "discipline": r["discipline"], "difficulty": r["difficulty"],
                             "status": r["status"]},
            }
        else:
            yield {
                "id": f"run{run_id}-item{r['id']}",
                "question": r["question"],
                "options": options,
                "answer": r["answer"],
                "answer_letter": letter,
                "solution": r["solution"],
                "kps_used": json.loads(r["kps_used"]) if r["kps_used"] else [],
                "discipline": r["discipline"],
                "difficulty": r["difficulty"],
                "status": r["status"],
                "reasoning": r["reasoning"],
                "provenance": provenance,
            }

"""Export a run to JSONL with its provenance.

A run with generated items exports the items (``records`` or chat ``messages`` format);
a sample run without items exports its paths and bundles. Keys never appear: the
config stored with a run holds no credentials, and nothing else is read.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError
from ..graph.sampling import config_hash, run_paths
from ..store import Store

__all__ = ["export_run", "path_records"]


def path_records(store: Store, run_id: int) -> Iterator[dict[str, Any]]:
    """One record per path: KPs in order, the bundle's seeds in full, provenance."""
    run = store.get_run(run_id)
    chash = config_hash(run["config"])
    for p in run_paths(store, run_id):
        seeds = store.get_seeds(p["seed_ids"])
        yield {
            "type": "path",
            "run_id": run_id,
            "path_index": p["index"],
            "discipline": p["discipline"],
            "kps": p["kps"],
            "seed_ids": p["seed_ids"],
            "mean_link_strength": p["mean_link_strength"],
            "seeds": [
                {"id": s.id, "question": s.question, "options": list(s.options) if s.options else None,
                 "answer": s.answer, "answer_letter": s.answer_letter, "discipline": s.discipline,
                 "subject": s.subject, "difficulty": s.difficulty}
                for s in seeds
            ],
            "provenance": {"run_id": run_id, "config_hash": chash, "config": run["config"]},
        }


def write_jsonl(records: Iterator[dict[str, Any]], out: Path) -> int:
    """Write atomically: a crash mid-export leaves no half file behind."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name, suffix=".part", dir=out.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def export_run(store: Store, run_id: int, out: Path, *, fmt: str = "records", status: str = "all") -> dict[str, Any]:
    if fmt not in ("records", "messages"):
        raise ConfigError(f"unknown export format '{fmt}': use records or messages")
    store.get_run(run_id)
    n_items = store.scalar("SELECT count(*) FROM items WHERE run_id = ?", (run_id,))
    if n_items:
        from .items import item_records  # added with the LLM stages

        n = write_jsonl(item_records(store, run_id, fmt=fmt, status=status), out)
        return {"run_id": run_id, "kind": "item", "records": n, "out": str(out), "format": fmt, "status": status}
    n = write_jsonl(path_records(store, run_id), out)
    return {"run_id": run_id, "kind": "path", "records": n, "out": str(out), "format": "records"}

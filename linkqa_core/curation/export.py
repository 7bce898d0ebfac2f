"""Export a run to JSONL with its provenance.

A run with generated items exports its items, as ``records`` (one QA with provenance a
line) or chat ``messages`` (training data: the question, then the worked solution and
the answer; provenance in ``metadata``, never in the messages). A sample run without
items exports its paths and bundles. Which items: :data:`EXPORT_STATUSES` (default:
the accepted ones). Every record's provenance carries the run's full settings (sampling
and synthesis), the model, the path, the seeds, the lineage and any curator's edit.
Keys never appear: the config stored with a run holds no credentials.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path as FilePath
from typing import Any, Iterator

from ..errors import ConfigError, InputError
from ..graph.sampling import config_hash
from ..records import Item, Run
from ..store import Store

__all__ = ["EXPORT_FORMATS", "EXPORT_STATUSES", "check_export_options", "export_run", "item_records", "path_records", "format_prompt",
           "write_jsonl"]

EXPORT_FORMATS = ("records", "messages")
# which items: accepted only; not rejected (accepted + not yet reviewed); every item with a QA
EXPORT_STATUSES: dict[str, tuple[str, ...]] = {
    "accepted": ("accepted",),
    "unrejected": ("accepted", "generated"),
    "all": ("accepted", "generated", "rejected", "superseded"),
}


def format_prompt(question: str, options: tuple[str, ...] | list[str] | None) -> str:
    if not options:
        return question
    return question + "\n\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))


def _provenance(run: Run, chash: str, item: Item, path_index: int | None, path_kps: list[str]) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "item_id": item.id,
        "status": item.status,
        "path_index": path_index,
        "path_kps": path_kps,
        "seed_ids": list(item.seed_ids),
        "model": item.model,
        "offline": item.model in ("offline-composer", "offline-rewriter"),
        "parent_id": item.parent_id,
        "operation": item.operation,
        "edited": item.edited,
        "original": item.original,
        "edited_at": item.edited_at,
        "config_hash": chash,
        "settings": run.config,
    }


def check_export_options(fmt: str, status: str) -> None:
    """Refuse an unknown format or status with one line, before anything is read (both the
    SQLite export and the Ray backend's full export from Parquet take the same options)."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format '{fmt}': use {' or '.join(EXPORT_FORMATS)}")
    if status not in EXPORT_STATUSES:
        raise ConfigError(f"status must be one of {', '.join(EXPORT_STATUSES)}, not '{status}'")


def item_records(store: Store, run_id: int, *, fmt: str = "records", status: str = "accepted"
                 ) -> Iterator[dict[str, Any]]:
    """Items of a run with the chosen statuses (failed attempts are never exported), streamed."""
    check_export_options(fmt, status)
    run = store.runs.get(run_id)
    chash = config_hash(run.config)
    for item, path_index, path_kps in store.items.for_export(run_id, EXPORT_STATUSES[status]):
        provenance = _provenance(run, chash, item, path_index, path_kps)
        if fmt == "messages":
            letter = item.answer_letter
            answer = (item.solution.strip() + "\n\n" if item.solution.strip() else "") + \
                f"Answer: {(letter + '. ') if letter else ''}{item.answer}"
            yield {
                "messages": [
                    {"role": "user", "content": format_prompt(item.question, item.options)},
                    {"role": "assistant", "content": answer},
                ],
                "metadata": {**provenance, "discipline": item.discipline, "difficulty": item.difficulty},
            }
        else:
            yield {
                "id": f"run{run_id}-item{item.id}",
                "question": item.question,
                "options": list(item.options) if item.options else None,
                "answer": item.answer,
                "answer_letter": item.answer_letter,
                "solution": item.solution,
                "kps_used": list(item.kps_used),
                "discipline": item.discipline,
                "difficulty": item.difficulty,
                "status": item.status,
                "reasoning": item.reasoning,
                "provenance": provenance,
            }


def path_records(store: Store, run_id: int) -> Iterator[dict[str, Any]]:
    """One record per path: KPs in order, the bundle's seeds in full, provenance."""
    run = store.runs.get(run_id)
    chash = config_hash(run.config)
    for p in store.runs.paths(run_id):
        seeds = store.seeds.get(p.seed_ids)
        yield {
            "type": "path",
            "run_id": run_id,
            "path_index": p.index,
            "discipline": p.discipline,
            "kps": list(p.kps),
            "seed_ids": list(p.seed_ids),
            "seeds": [
                {"id": s.id, "question": s.question, "options": list(s.options) if s.options else None,
                 "answer": s.answer, "answer_letter": s.answer_letter, "discipline": s.discipline,
                 "subject": s.subject, "difficulty": s.difficulty}
                for s in seeds
            ],
            "provenance": {"run_id": run_id, "config_hash": chash, "settings": run.config},
        }


def _check_target(out: FilePath | str) -> FilePath:
    if not str(out).strip():
        raise InputError("the export file name is empty: give --out FILE.jsonl")
    out = FilePath(out)
    if out.is_dir():
        raise InputError(f"{out} is a folder: give a file name for the export")
    return out


def write_jsonl(records: Iterator[dict[str, Any]], out: FilePath) -> int:
    """Write atomically (a crash mid-export leaves no half file); the file gets the umask's mode."""
    out = _check_target(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=out.name, suffix=".part", dir=out.parent)
    except OSError as err:
        raise InputError(f"cannot write {out}: {err.strerror or err}") from None
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an export is an ordinary file
        os.replace(tmp, out)
    except OSError as err:
        FilePath(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {out}: {err.strerror or err}") from None
    except BaseException:
        FilePath(tmp).unlink(missing_ok=True)
        raise
    return n


def export_run(store: Store, run_id: int, out: FilePath | str, *, fmt: str = "records",
               status: str = "accepted") -> dict[str, Any]:
    """Write a run's items (or, for a sample run, its paths) to ``out``; returns what was written."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format '{fmt}': use {' or '.join(EXPORT_FORMATS)}")
    store.runs.get(run_id)
    out = _check_target(out)
    if store.items.total(run_id):
        n = write_jsonl(item_records(store, run_id, fmt=fmt, status=status), out)
        return {"run_id": run_id, "kind": "item", "records": n, "out": str(out), "format": fmt, "status": status}
    n = write_jsonl(path_records(store, run_id), out)
    return {"run_id": run_id, "kind": "path", "records": n, "out": str(out), "format": "records"}

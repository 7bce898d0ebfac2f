"""Walks stay on one machine; their paths and bundles go to Parquet for the cluster.

A run's paths (sampled and saved in SQLite on the machine that holds the graph) are
written with their seeds in full to ``bundles/discipline=<d>/`` shards, one shard per
discipline per export, so that the distributed stages read only Parquet. An export writes
the paths not exported yet (a run topped up with more paths adds shards), so it is
idempotent; the manifest remembers how far it got.
"""

from __future__ import annotations

import json
import urllib.parse
from collections import defaultdict
from typing import Any

import pyarrow as pa

from ..records import Bundle
from ..store import Store
from .storage import Storage
from .tables import BUNDLE_SCHEMA, bundle_row

__all__ = ["export_bundles", "export_seeds", "BUNDLES", "SEEDS"]

BUNDLES = "bundles"
SEEDS = "seeds"
_SHARD = 5000


def _bundles(store: Store, paths: list) -> list[Bundle]:
    by_id = {s.id: s for s in store.seeds.get(sorted({sid for p in paths for sid in p.seed_ids}))}
    return [Bundle(p, tuple(by_id[s] for s in p.seed_ids if s in by_id)) for p in paths]


def export_bundles(store: Store, run_id: int, storage: Storage) -> dict[str, Any]:
    """Write the run's paths not exported yet; returns ``{"paths": total exported, "added": new}``."""
    state = storage.read_json("bundles.json") or {}
    upto = int(state.get("next_index", 0))
    paths = [p for p in store.runs.paths(run_id) if p.index >= upto]
    added = 0
    for k in range(0, len(paths), _SHARD):
        chunk = paths[k:k + _SHARD]
        by_disc: dict[str, list[dict]] = defaultdict(list)
        for b in _bundles(store, chunk):
            by_disc[b.discipline].append(bundle_row(run_id, b))
        first = chunk[0].index
        for disc, rows in sorted(by_disc.items()):
            table = pa.Table.from_pylist(rows, schema=BUNDLE_SCHEMA)
            part = urllib.parse.quote(disc, safe="")
            storage.write_table(f"{BUNDLES}/discipline={part}/part-{first:012d}.parquet", table)
        added += len(chunk)
        storage.write_json("bundles.json", {"next_index": chunk[-1].index + 1,
                                            "paths": int(state.get("paths", 0)) + added})
    return {"paths": int(state.get("paths", 0)) + added, "added": added}


def export_seeds(store: Store, storage: Storage, *, shard: int = 200_000) -> int:
    """Every seed's ``(order, id, question, options)`` for the seed-duplicate gate, in the
    order :meth:`~linkqa_core.store.seeds.SeedStore.questions` streams them; written once
    per seed count (a database that gained seeds exports again)."""
    n = store.seeds.count()
    state = storage.read_json("seeds.json") or {}
    if state.get("count") == n and storage.files(SEEDS):
        return n
    for f in storage.files(SEEDS):
        storage.fs.delete_file(f)
    buf: dict[str, list] = {"order": [], "seed_id": [], "question": [], "options": []}
    written = 0

    def flush() -> None:
        nonlocal written
        if buf["order"]:
            storage.write_table(f"{SEEDS}/part-{written:012d}.parquet", pa.table(buf))
            written += len(buf["order"])
            for v in buf.values():
                v.clear()

    for order, (sid, question, options) in enumerate(store.seeds.questions()):
        buf["order"].append(order)
        buf["seed_id"].append(sid)
        buf["question"].append(question)
        buf["options"].append(json.dumps(options, ensure_ascii=False) if options is not None else None)
        if len(buf["order"]) >= shard:
            flush()
    flush()
    storage.write_json("seeds.json", {"count": n})
    return n

"""Results of a Ray run back into the SQLite run, for review and export as for a local run.

Up to ``import_limit`` items every item is imported (in the run's order: path index, then
sample index), so the studio's review, the gates' statistics and ``export`` work on the run
unchanged. Above it, a *stratified review sample* of ``import_limit`` items is imported --
the same share of every (discipline, difficulty level) stratum, chosen by item id so that
it is the same sample on every import -- and the run's config names the Parquet location;
a full export then reads the Parquet and applies the curators' decisions
(:func:`linkqa_core.scale.export.export_full`).

Importing twice adds nothing: items are keyed by ``(run, slot)`` as everywhere else.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa

from ..store import Store
from .settings import ScaleSettings
from .storage import Storage
from .tables import dedupe_first, items_from_table

__all__ = ["result_table", "import_results", "stratified_sample"]

_CHUNK = 5000


def result_table(run_dir: Storage, stage: str, columns: list[str] | None = None) -> pa.Table | None:
    """Every shard of ``results/<stage>``, the first row of each item id kept, in the run's order."""
    cols = None if columns is None else sorted(set(columns) | {"uid", "order"})
    return dedupe_first(run_dir.read_tables(f"results/{stage}", columns=cols))


def _level(d: Any) -> int:
    if d is None or (isinstance(d, float) and math.isnan(d)):
        return 0
    return int(min(5, max(1, math.floor(float(d) + 0.5))))


def stratified_sample(table: pa.Table, size: int) -> np.ndarray:
    """Row positions of a sample of ``size`` rows: every (discipline, difficulty level, failed or
    not) stratum gets its share (largest remainders), rows within a stratum chosen by item id."""
    n = table.num_rows
    if n <= size:
        return np.arange(n)
    disc = table.column("discipline").to_pylist()
    diff = table.column("difficulty").to_pylist()
    status = table.column("status").to_pylist()
    uids = table.column("uid").to_numpy()
    strata: dict[tuple, list[int]] = defaultdict(list)
    for i in range(n):
        strata[(disc[i], _level(diff[i]), status[i] == "failed")].append(i)
    quotas = {k: size * len(v) / n for k, v in strata.items()}
    take = {k: int(math.floor(q)) for k, q in quotas.items()}
    left = size - sum(take.values())
    for k in sorted(quotas, key=lambda k: (-(quotas[k] - take[k]), str(k)))[:left]:
        take[k] += 1
    chosen: list[int] = []
    for k, rows in strata.items():
        rows_sorted = sorted(rows, key=lambda i: int(uids[i]))
        chosen.extend(rows_sorted[: take[k]])
    return np.sort(np.array(chosen, dtype=np.int64))


def import_results(store: Store, run_id: int, run_dir: Storage, scale: ScaleSettings,
                   stage: str = "synthesis") -> dict[str, Any]:
    """Import a stage's results into the run; returns ``{"items", "imported", "sampled", "results"}``."""
    table = result_table(run_dir, stage)
    if table is None:
        return {"items": 0, "imported": 0, "sampled": False, "results": run_dir.uri_of(f"results/{stage}")}
    total = table.num_rows
    sampled = total > scale.import_limit
    if sampled:
        table = table.take(pa.array(stratified_sample(table, scale.import_limit)))
    added = 0
    for k in range(0, table.num_rows, _CHUNK):
        added += store.items.insert([it for _, it in items_from_table(table.slice(k, _CHUNK))])
    info = {"items": total, "imported": table.num_rows, "added": added, "sampled": sampled,
            "results": run_dir.uri_of(f"results/{stage}")}
    config = dict(store.runs.get(run_id).config)
    config["scale"] = {**(config.get("scale") or {}), stage: {k: v for k, v in info.items() if k != "added"}}
    store.runs.update(run_id, config=config)
    return info

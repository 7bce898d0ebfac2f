"""The quality gates of a Ray run: verdicts over its Parquet items, then into the SQLite run.

The candidates are the run's synthesised items in the run's order (path index, then sample
index) -- the order a local run's import gives them, so the verdicts equal those of
:func:`~linkqa_core.quality.gates.apply_gates` on the imported run. Verdicts are written to
``gates/verdicts.parquet`` (keyed by slot; a full export reads them), the statistics to the
manifest, and the rejections of imported items to SQLite, with the reason naming the other
item by its database id as a local run's would (an item that was not imported is named by
its slot, ``p<path>:<k>``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import NotFoundError
from ..quality.checks import GateConfig
from ..quality.gates import GATES
from ..store import Store
from .bundles import SEEDS, export_seeds
from .cluster import connect
from .dedup import gate_table
from .manifest import Manifest
from .settings import ScaleSettings
from .synthesis import STAGE, run_storage

__all__ = ["gates_on_ray", "VERDICTS"]

VERDICTS = "gates/verdicts.parquet"
_ITEM_REF = re.compile(r"\bitem (p\d+:\d+)")


def _first_rows(ray: Any, uri: str) -> Any:
    """The run's items as a dataset, one row per item id (a batch written twice counts once)."""
    import ray.data

    ds = ray.data.read_parquet(uri, include_paths=True, partitioning=None).select_columns(
        ["uid", "order", "slot", "status", "question", "options", "answer", "solution", "path"])
    ids = ds.select_columns(["uid", "path"]).to_pandas()
    dup = ids[ids.duplicated("uid", keep=False)]
    keep = dup.sort_values("path").drop_duplicates("uid") if len(dup) else dup
    chosen = dict(zip(keep["uid"].tolist(), keep["path"].tolist()))

    def first(t: pa.Table) -> pa.Table:
        uids = t.column("uid").to_pylist()
        paths = t.column("path").to_pylist()
        mask = [s != "failed" and (u not in chosen or chosen[u] == p)
                for u, p, s in zip(uids, paths, t.column("status").to_pylist())]
        t = t.filter(pa.array(mask, pa.bool_()))
        return t.rename_columns(["key" if c == "slot" else c for c in t.column_names])

    return ds.map_batches(first, batch_format="pyarrow", batch_size=None)


def gates_on_ray(store: Store, run_id: int, cfg: GateConfig, scale: ScaleSettings, *,
                 reference: str | Path | None = None) -> dict[str, int]:
    """Gate a Ray run's items on the cluster; returns the rejections per gate (as ``apply_gates``)."""
    store.runs.get(run_id)
    _, run_dir = run_storage(scale, run_id)
    if not run_dir.files(f"results/{STAGE}"):
        raise NotFoundError(f"run {run_id} has no results in {run_dir.uri}: synthesize it with --backend ray first")
    ref = (Path(reference).read_bytes(), str(reference)) if reference else None
    with connect(scale) as ray:
        import ray.data

        items = _first_rows(ray, run_dir.uri_of(f"results/{STAGE}"))
        seeds = None
        if cfg.check_seeds:
            export_seeds(store, run_dir)
            seeds = ray.data.read_parquet(run_dir.uri_of(SEEDS), partitioning=None)
        verdicts = gate_table(items, cfg, seeds=seeds, reference=ref)
    run_dir.write_table(VERDICTS, verdicts)
    counts = dict.fromkeys(GATES, 0)
    for g in verdicts.column("gate").to_pylist():
        if g is not None:
            counts[g] += 1
    Manifest(run_dir).update(gates={"config": cfg.to_dict(), "rejected": counts, "items": verdicts.num_rows,
                                    "passed": int(np.sum(verdicts.column("passed").to_numpy(zero_copy_only=False))),
                                    "verdicts": run_dir.uri_of(VERDICTS)})
    apply_verdicts(store, run_id, verdicts)
    return counts


def apply_verdicts(store: Store, run_id: int, verdicts: pa.Table) -> int:
    """Reject the imported items the verdicts reject; other items' names become their database ids."""
    bad = verdicts.filter(pa.array(np.logical_not(verdicts.column("passed").to_numpy(zero_copy_only=False))))
    if not bad.num_rows:
        return 0
    rows = bad.to_pylist()
    ids = store.items.ids_for_slots(run_id, sorted({r["key"] for r in rows} | {r["match"] for r in rows
                                                                             if r["match"]}))

    def named(reason: str) -> str:
        return _ITEM_REF.sub(lambda m: f"item {ids[m.group(1)]}" if m.group(1) in ids else m.group(0), reason)

    return store.items.reject([(ids[r["key"]], named(r["reason"] or r["gate"])) for r in rows if r["key"] in ids])

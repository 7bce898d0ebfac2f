"""The quality gates at scale: the verdicts of :func:`linkqa_core.quality.gates.run_gates`, on Ray.

The standard pattern (datatrove's MinHash stages, Data-Juicer's dedup), arranged so that
every verdict is the one the local gates give on the same items in the same order:

1. **map** (Ray Data tasks): per item, the per-item gates (schema, answer, length), the
   decontamination n-grams (the reference file is broadcast and indexed on each worker:
   Python's string hash differs between processes, so an index is never shipped), the
   exact key, the word shingles and their MinHash with the local gates' permutations,
   cut into the LSH bands of the local index (same threshold, same ``b x r``);
2. **exact duplicates**: a group-by on the exact key; the first item (run order) of a
   group stays;
3. **near duplicates**: a group-by on (band, band value) -- the LSH buckets -- gives star
   edges; the connected components of those edges (scipy, on the driver: an edge is two
   integers) partition the items so that no LSH candidate pair crosses two components.
   The local gate is greedy in run order (an item is compared with the items kept before
   it), which depends only on an item's candidates, so each component is gated by the
   local code itself (one group-by task per component); singletons pass;
4. **seed duplicates**: the surviving items' exact keys and band values are broadcast to
   the map over the seeds, which keeps only the seeds that could match one; the driver
   applies the local rule to those few (an exact match wins, then the highest Jaccard,
   then the earliest seed).

:func:`gate_table` returns one verdict per item (``key``, ``passed``, ``gate``, ``reason``,
``match``, ``similarity``), in input order.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from ..quality.checks import GateConfig, check_answer_consistency, check_length, check_schema
from ..quality.gates import GateResult, run_gates
from ..quality.text import exact_key, fmt_sim, item_shingles, jaccard
from ..records import Item

__all__ = ["lsh_shape", "signature_rows", "gate_table", "VERDICT_SCHEMA"]

_LSH_SLACK = 0.1  # as quality.gates: candidates come from an index tuned this much below the threshold

VERDICT_SCHEMA = pa.schema([("key", pa.string()), ("order", pa.int64()), ("passed", pa.bool_()),
                            ("gate", pa.string()), ("reason", pa.string()), ("match", pa.string()),
                            ("similarity", pa.float64())])


def lsh_shape(cfg: GateConfig) -> tuple[int, int]:
    """``(bands, rows per band)`` of the local gates' LSH index for ``cfg``."""
    from datasketch import MinHashLSH

    t = max(cfg.near_dup_threshold - _LSH_SLACK, cfg.near_dup_threshold / 2)
    lsh = MinHashLSH(threshold=t, num_perm=cfg.num_perm)
    return lsh.b, lsh.r


class _Signer:
    """MinHash bands of a shingle set, exactly as the local index hashes it."""

    def __init__(self, cfg: GateConfig):
        from datasketch import MinHash

        self.cfg = cfg
        self._minhash = MinHash
        self.perm = MinHash(cfg.num_perm).permutations
        self.b, self.r = lsh_shape(cfg)

    def bands(self, sh: set[str]) -> list[bytes]:
        m = self._minhash(self.cfg.num_perm, permutations=self.perm, scheme="affine32")
        m.update_batch([s.encode("utf-8") for s in sorted(sh)])
        hv = m.hashvalues
        return [i.to_bytes(2, "little") + hv[i * self.r:(i + 1) * self.r].tobytes() for i in range(self.b)]


def _options(text: Any) -> tuple[str, ...] | None:
    if text is None:
        return None
    value = json.loads(text) if isinstance(text, str) else text
    return tuple(value) if isinstance(value, (list, tuple)) and value else None


def _hash64(values: Iterable[bytes | str]) -> np.ndarray:
    import hashlib

    out = [int.from_bytes(hashlib.blake2b(v if isinstance(v, bytes) else v.encode("utf-8"), digest_size=8).digest(),
                          "little", signed=True) for v in values]
    return np.array(out, dtype=np.int64)


def signature_rows(table: pa.Table, cfg: GateConfig, reference: tuple[bytes, str] | None = None) -> pa.Table:
    """The map step: per-item verdicts, exact keys and LSH bands of a batch of items.

    Input columns: ``key`` (str), ``order`` (int), ``question``, ``options`` (JSON list or
    null), ``answer``, ``solution``.
    """
    ref = None
    if reference is not None:
        from ..quality.reference import load_reference

        ref = load_reference(reference[0], name=reference[1], decontam_ngram=cfg.decontam_ngram)
    signer = _Signer(cfg)
    out: dict[str, list[Any]] = {k: [] for k in ("key", "order", "gate", "reason", "match", "ekey", "bands",
                                                 "question", "options", "answer")}
    for r in table.to_pylist():
        options = _options(r.get("options"))
        item = Item(question=r.get("question") or "", answer=r.get("answer") or "", options=options,
                    solution=r.get("solution") or "")
        gate = reason = match = None
        reason = check_schema(item)
        gate = "schema"
        if reason is None:
            reason, gate = check_answer_consistency(item), "answer"
        if reason is None:
            reason, gate = check_length(item, cfg), "length"
        if reason is None and ref is not None:
            line = ref.match("\n".join([item.question, *(item.options or ())]))
            if line is not None:
                gate, match = "contamination", str(line)
                reason = f"contaminated: shares a {ref.decontam_ngram}-gram with reference line {line}"
        if reason is None:
            gate = None
        bands: list[bytes] = []
        ekey = None
        if gate is None:
            ekey = exact_key(item.question, item.options)
            sh = item_shingles(item.question, item.options, cfg.shingle_size)
            bands = signer.bands(sh) if sh else []
        for k, v in (("key", str(r["key"])), ("order", int(r["order"])), ("gate", gate), ("reason", reason),
                     ("match", match), ("ekey", ekey), ("bands", bands), ("question", item.question),
                     ("options", r.get("options")), ("answer", item.answer)):
            out[k].append(v)
    return pa.table(out, schema=pa.schema([("key", pa.string()), ("order", pa.int64()), ("gate", pa.string()),
                                           ("reason", pa.string()), ("match", pa.string()), ("ekey", pa.string()),
                                           ("bands", pa.list_(pa.binary())), ("question", pa.string()),
                                           ("options", pa.string()), ("answer", pa.string())]))


# -- group-by steps (each a function of one group) ----------------------------------------


def _exact_group(group: pa.Table) -> pa.Table:
    """Every item of an exact-key group but the first: rejected as its duplicate."""
    order = group.column("order").to_numpy()
    keys = group.column("key").to_pylist()
    pos = np.argsort(order, kind="stable")
    first = keys[pos[0]]
    dup = [keys[i] for i in pos[1:]]
    return pa.table({"key": dup, "match": [first] * len(dup)}, schema=pa.schema([("key", pa.string()),
                                                                                 ("match", pa.string())]))


def _bucket_edges(group: pa.Table) -> pa.Table:
    """An LSH bucket as star edges from its first member."""
    order = np.sort(group.column("order").to_numpy())
    return pa.table({"a": np.repeat(order[:1], len(order) - 1), "b": order[1:]})


def _component(group: pa.Table, cfg: GateConfig) -> pa.Table:
    """The local near-duplicate gate over one component, in run order."""
    rows = sorted(group.to_pylist(), key=lambda r: r["order"])
    # the items passed the per-item gates with this cfg, and no two share an exact key: only
    # the near-duplicate gate can reject one here
    items = [Item(question=r["question"], answer=r["answer"], options=_options(r["options"]), id=r["key"])
             for r in rows]
    results = run_gates(items, cfg=replace(cfg, check_seeds=False))
    bad = [r for r in results if not r.passed]
    return pa.table({"key": [str(r.key) for r in bad], "reason": [r.reason for r in bad],
                     "match": [str(r.match) for r in bad], "similarity": [float(r.similarity or 0) for r in bad]},
                    schema=pa.schema([("key", pa.string()), ("reason", pa.string()), ("match", pa.string()),
                                      ("similarity", pa.float64())]))


def _member(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` found in the sorted array (vectorised binary search, no per-call sort)."""
    if not len(sorted_values) or not len(values):
        return np.zeros(len(values), bool)
    idx = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[idx] == values


def _seed_candidates(table: pa.Table, cfg: GateConfig, ekeys: np.ndarray, bands: np.ndarray) -> pa.Table:
    """Seeds that share an exact key or an LSH band value with a surviving item (a semi-join)."""
    signer = _Signer(cfg)
    rows = []
    for r in table.to_pylist():
        question = r["question"]
        if not isinstance(question, str):
            continue
        options = _options(r.get("options"))
        sh = item_shingles(question, options, cfg.shingle_size)
        rows.append((r, exact_key(question, options), signer.bands(sh) if sh else []))
    exact_hit = _member(ekeys, _hash64([ek for _, ek, _ in rows])) if rows else np.zeros(0, bool)
    flat = [b for _, _, bs in rows for b in bs]
    owner = np.repeat(np.arange(len(rows)), [len(bs) for _, _, bs in rows]) if rows else np.zeros(0, np.int64)
    band_hit = np.zeros(len(rows), bool)
    if flat:
        band_hit[owner[_member(bands, _hash64(flat))]] = True
    out: dict[str, list[Any]] = {"order": [], "seed_id": [], "ekey": [], "bands": [], "question": [], "options": []}
    for (r, ek, bs), hit in zip(rows, exact_hit | band_hit):
        if not hit:
            continue
        out["order"].append(int(r["order"]))
        out["seed_id"].append(str(r["seed_id"]))
        out["ekey"].append(ek)
        out["bands"].append(bs)
        out["question"].append(r["question"])
        out["options"].append(r.get("options"))
    return pa.table(out, schema=pa.schema([("order", pa.int64()), ("seed_id", pa.string()), ("ekey", pa.string()),
                                           ("bands", pa.list_(pa.binary())), ("question", pa.string()),
                                           ("options", pa.string())]))


def _seed_hits(alive: pa.Table, seeds: pa.Table, cfg: GateConfig) -> dict[str, tuple[str, float | None]]:
    """The local seed-duplicate rule over the candidate seeds, in seed order."""
    t = cfg.near_dup_threshold
    by_key: dict[str, list[int]] = {}
    by_band: dict[bytes, list[int]] = {}
    rows = alive.to_pylist()
    sets: dict[int, set[str]] = {}
    for i, r in enumerate(rows):
        by_key.setdefault(r["ekey"], []).append(i)
        if r["bands"]:
            sets[i] = item_shingles(r["question"], _options(r["options"]), cfg.shingle_size)
            for b in r["bands"]:
                by_band.setdefault(b, []).append(i)
    hits: dict[int, tuple[str, float | None]] = {}
    seed_rows = sorted(seeds.to_pylist(), key=lambda r: r["order"])
    for s in seed_rows:
        for i in by_key.get(s["ekey"], ()):
            prev = hits.get(i)
            if prev is None or prev[1] is not None:
                hits[i] = (s["seed_id"], None)
        if not s["bands"]:
            continue
        sh = item_shingles(s["question"], _options(s["options"]), cfg.shingle_size)
        cands = sorted({i for b in s["bands"] for i in by_band.get(b, ())})
        for i in cands:
            sim = jaccard(sh, sets[i])
            prev = hits.get(i)
            if sim >= t and (prev is None or (prev[1] is not None and sim > prev[1])):
                hits[i] = (s["seed_id"], sim)
    return {rows[i]["key"]: hit for i, hit in hits.items()}


# -- the driver ----------------------------------------------------------------------------


def gate_table(ds: Any, cfg: GateConfig = GateConfig(), *, seeds: Any = None,
               reference: tuple[bytes, str] | None = None, n_items: int | None = None) -> pa.Table:
    """Gate a Ray dataset of items; one verdict per item (:data:`VERDICT_SCHEMA`), in order.

    ``ds`` has ``key``, ``order``, ``question``, ``options``, ``answer``, ``solution``;
    ``seeds`` (a dataset of ``order``, ``seed_id``, ``question``, ``options``) is checked
    when ``cfg.check_seeds``; ``reference`` is the benchmark file's bytes and name.
    """
    import ray
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sig = ds.map_batches(signature_rows, fn_kwargs={"cfg": cfg, "reference": reference}, batch_format="pyarrow",
                         batch_size=2000).materialize()
    # hash-shuffle partitions: about one per 50k items (each partition is a task: Ray's default of
    # 200 costs more in task overhead than the grouping itself below millions of items)
    parts = max(1, min(200, -(-sig.count() // 50_000)))
    verdicts: dict[str, GateResult] = {}
    ordered = sig.select_columns(["key", "order", "gate", "reason", "match"]).to_arrow_refs()
    base = pa.concat_tables(ray.get(ordered)) if ordered else pa.table({"key": [], "order": []})
    base = base.sort_by("order")
    for r in base.filter(base.column("gate").is_valid()).to_pylist():
        verdicts[r["key"]] = GateResult(r["key"], False, r["reason"], r["gate"],
                                        int(r["match"]) if r["gate"] == "contamination" else r["match"])
    def passed_item_gates(t: pa.Table) -> pa.Table:
        return t.filter(t.column("gate").is_null())

    survivors = sig.map_batches(passed_item_gates, batch_format="pyarrow", batch_size=None) if verdicts else sig

    # exact duplicates: group by the exact key
    exact = survivors.groupby("ekey", num_partitions=parts).map_groups(_exact_group, batch_format="pyarrow")
    for r in exact.take_all():
        verdicts[r["key"]] = GateResult(r["key"], False, f"exact duplicate of item {r['match']}", "exact_duplicate",
                                        r["match"], 1.0)
    rejected = np.array(sorted(verdicts), dtype=object)

    def not_rejected(t: pa.Table) -> pa.Table:
        import pyarrow.compute as pc

        if not len(rejected):
            return t
        return t.filter(pc.invert(pc.is_in(t.column("key"), value_set=pa.array(list(rejected), pa.string()))))

    live = survivors.map_batches(not_rejected, batch_format="pyarrow", batch_size=None).materialize()

    # near duplicates: LSH buckets -> star edges -> components -> the local gate per component
    def explode(t: pa.Table) -> pa.Table:
        lengths = np.array([len(b) for b in t.column("bands").to_pylist()], dtype=np.int64)
        flat = pa.chunked_array(t.column("bands")).combine_chunks().flatten() if t.num_rows else pa.array([], pa.binary())
        return pa.table({"band": flat, "order": np.repeat(t.column("order").to_numpy(), lengths)})

    edges = live.map_batches(explode, batch_format="pyarrow", batch_size=None).groupby(
        "band", num_partitions=parts).map_groups(
        _bucket_edges, batch_format="pyarrow")
    pairs = [(r["a"], r["b"]) for r in edges.iter_rows()]
    if pairs:
        a = np.array([p[0] for p in pairs], np.int64)
        b = np.array([p[1] for p in pairs], np.int64)
        nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
        m = len(nodes)
        graph = coo_matrix((np.ones(len(a)), (inv[: len(a)], inv[len(a):])), shape=(m, m))
        _, labels = connected_components(graph, directed=False)
        comp_orders, comp_ids = nodes, labels.astype(np.int64)

        def with_component(t: pa.Table) -> pa.Table:
            order = t.column("order").to_numpy()
            pos = np.searchsorted(comp_orders, order)
            pos = np.minimum(pos, len(comp_orders) - 1)
            hit = comp_orders[pos] == order
            t = t.filter(pa.array(hit))
            return t.append_column("component", pa.array(comp_ids[pos[hit]], pa.int64()))

        near = live.map_batches(with_component, batch_format="pyarrow", batch_size=None).groupby(
            "component", num_partitions=parts).map_groups(_component, fn_kwargs={"cfg": cfg}, batch_format="pyarrow")
        for r in near.take_all():
            verdicts[r["key"]] = GateResult(r["key"], False, r["reason"], "near_duplicate", r["match"],
                                            r["similarity"])

    # seed duplicates: broadcast the survivors' keys and bands, keep the seeds that could match
    if cfg.check_seeds and seeds is not None:
        alive = pa.concat_tables(ray.get(live.to_arrow_refs())) if live.count() else None
        if alive is not None:
            alive = alive.filter(pa.array([k not in verdicts for k in alive.column("key").to_pylist()]))
        if alive is not None and alive.num_rows:
            ekeys = np.sort(_hash64(alive.column("ekey").to_pylist()))
            flat = [b for bs in alive.column("bands").to_pylist() for b in bs]
            bands = np.sort(_hash64(flat)) if flat else np.zeros(0, np.int64)
            cands = seeds.map_batches(_seed_candidates, fn_kwargs={"cfg": cfg, "ekeys": ekeys, "bands": bands},
                                      batch_format="pyarrow", batch_size=5000)
            refs = cands.to_arrow_refs()
            seed_table = pa.concat_tables(ray.get(refs)) if refs else None
            if seed_table is not None and seed_table.num_rows:
                for key, (seed_id, sim) in _seed_hits(alive, seed_table, cfg).items():
                    if sim is None:
                        reason, sim = f"exact duplicate of seed {seed_id}", 1.0
                    else:
                        reason = f"near-duplicate of seed {seed_id} (Jaccard {fmt_sim(sim)})"
                    verdicts[key] = GateResult(key, False, reason, "seed_duplicate", seed_id, sim)

    out: dict[str, list[Any]] = {f.name: [] for f in VERDICT_SCHEMA}
    for key, order in zip(base.column("key").to_pylist(), base.column("order").to_pylist()):
        v = verdicts.get(key)
        out["key"].append(key)
        out["order"].append(order)
        out["passed"].append(v is None)
        out["gate"].append(v.gate if v else None)
        out["reason"].append(v.reason if v else None)
        out["match"].append(None if v is None or v.match is None else str(v.match))
        out["similarity"].append(v.similarity if v else None)
    return pa.table(out, schema=VERDICT_SCHEMA)

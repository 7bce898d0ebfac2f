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
4. **seed duplicates**: the surviving items' exact keys, question keys and band values of
   the seed gate's three views (question and options, question alone, the question's
   words as a bag) are broadcast to the map over the seeds, which keeps only the seeds that
   could match one; the driver runs the local seed rule on those few, in seed order.

The MinHash signatures, LSH band shapes and band values are the local index's own
(:mod:`linkqa_core.quality.minhash`): a pair is a candidate on Ray exactly when it is one
locally, which is what makes the verdicts equal, not merely close.

:func:`gate_table` returns one verdict per item (``key``, ``passed``, ``gate``, ``reason``,
``match``, ``similarity``), in input order.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa

from ..quality.checks import GateConfig, check_answer_consistency, check_length, check_schema
from ..quality.copies import VIEWS as SEED_VIEWS
from ..quality.copies import Views as SeedViews
from ..quality.copies import seed_hits, view_thresholds
from ..quality.gates import GateResult, run_gates
from ..quality.minhash import band_values, lsh_shape, signatures
from ..quality.text import exact_key, question_key
from ..records import Item

__all__ = ["signature_rows", "gate_table", "VERDICT_SCHEMA"]

VERDICT_SCHEMA = pa.schema([("key", pa.string()), ("order", pa.int64()), ("passed", pa.bool_()),
                            ("gate", pa.string()), ("reason", pa.string()), ("match", pa.string()),
                            ("similarity", pa.float64())])


class _Signer:
    """LSH band values of shingle sets, from the local gates' own MinHash signatures.

    Why the same signatures (:func:`~linkqa_core.quality.minhash.signatures`) and the same
    band shape: two items are candidates on Ray exactly when they are candidates in the
    local index, so the components hold every pair the local gate compares and the
    verdicts are the same (with datasketch's own hashing 1.2 % of 100k verdicts differed).
    A band value is the local index's own (:func:`~linkqa_core.quality.minhash.band_values`,
    tagged by view so the seed gate's views share one broadcast table), computed for a whole
    batch at once: equal bands give equal values on Ray and locally.
    """

    def __init__(self, cfg: GateConfig):
        self.num_perm = cfg.num_perm
        self.shapes = {how: lsh_shape(t, cfg.num_perm) for how, t in view_thresholds(cfg).items()}

    def bands(self, sets: Sequence[set[str]], how: str = "near") -> np.ndarray:
        """A (sets x bands) int64 array of band values; the rows of empty sets are never read."""
        b, r = self.shapes[how]
        out = np.zeros((len(sets), b), np.int64)
        full = [i for i, sh in enumerate(sets) if sh]
        if full:
            out[full] = band_values(signatures([sets[i] for i in full], self.num_perm), b, r, _VIEW_TAG[how])
        return out


_VIEW_TAG = {"near": 0x1F0A, "question": 0x2E1B, "reordered": 0x3D2C}


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
    null), ``answer``, ``solution``. ``bands`` are the near-duplicate view's band values;
    ``qkey`` and ``seed_bands`` (every view of the seed gate) let the seeds that could
    match an item be found without the items.
    """
    ref = None
    if reference is not None:
        from ..quality.reference import load_reference

        ref = load_reference(reference[0], name=reference[1], decontam_ngram=cfg.decontam_ngram)
    signer = _Signer(cfg)
    out: dict[str, list[Any]] = {k: [] for k in ("key", "order", "gate", "reason", "match", "ekey", "qkey",
                                                 "question", "options", "answer")}
    views: dict[int, SeedViews] = {}
    for n, r in enumerate(table.to_pylist()):
        options = _options(r.get("options"))
        item = Item(question=r.get("question") or "", answer=r.get("answer") or "", options=options,
                    solution=r.get("solution") or "")
        gate, reason, match = _item_gate(item, cfg, ref)
        ekey = qkey = None
        if gate is None:
            ekey, qkey = exact_key(item.question, item.options), question_key(item.question)
            views[n] = SeedViews.of(item.question, item.options, cfg.shingle_size)
        for k, v in (("key", str(r["key"])), ("order", int(r["order"])), ("gate", gate), ("reason", reason),
                     ("match", match), ("ekey", ekey), ("qkey", qkey), ("question", item.question),
                     ("options", r.get("options")), ("answer", item.answer)):
            out[k].append(v)
    bands, seed_bands = _view_bands(signer, views, table.num_rows)
    schema = pa.schema([("key", pa.string()), ("order", pa.int64()), ("gate", pa.string()), ("reason", pa.string()),
                        ("match", pa.string()), ("ekey", pa.string()), ("qkey", pa.string()),
                        ("question", pa.string()), ("options", pa.string()), ("answer", pa.string())])
    return pa.table(out, schema=schema).append_column("bands", bands).append_column("seed_bands", seed_bands)


def _item_gate(item: Item, cfg: GateConfig, ref: Any) -> tuple[str | None, str | None, str | None]:
    """``(gate, reason, match)`` of the per-item gates (schema, answer, length, contamination), as run locally."""
    reason, gate = check_schema(item), "schema"
    if reason is None:
        reason, gate = check_answer_consistency(item), "answer"
    if reason is None:
        reason, gate = check_length(item, cfg), "length"
    if reason is None and ref is not None:
        line = ref.match("\n".join([item.question, *(item.options or ())]))
        if line is not None:
            return "contamination", f"contaminated: shares a {ref.decontam_ngram}-gram with reference line {line}", \
                str(line)
    return (gate, reason, None) if reason is not None else (None, None, None)


def _view_bands(signer: _Signer, views: dict[int, SeedViews], n: int) -> tuple[pa.ListArray, pa.ListArray]:
    """Per row: the near view's band values, and the band values of every view the seed gate
    uses (a row without views, or a view whose set is empty, has none)."""
    rows = sorted(views)
    near: list[np.ndarray] = [_NONE] * n
    every: list[list[np.ndarray]] = [[] for _ in range(n)]
    for how in SEED_VIEWS:
        sets = [getattr(views[i], how) for i in rows]
        for i, sh, got in zip(rows, sets, signer.bands(sets, how)):
            if sh:
                every[i].append(got)
                if how == "near":
                    near[i] = got
    return _list_column(near), _list_column([np.concatenate(parts) if parts else _NONE for parts in every])


_NONE = np.zeros(0, np.int64)


def _list_column(values: list[np.ndarray]) -> pa.ListArray:
    """A list<int64> column from one array per row, without a Python object per element."""
    offsets = np.zeros(len(values) + 1, np.int64)
    np.cumsum([len(v) for v in values], out=offsets[1:])
    flat = np.concatenate(values) if values else _NONE
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat, pa.int64()))


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


def _seed_candidates(table: pa.Table, cfg: GateConfig, ekeys: np.ndarray, qkeys: np.ndarray,
                     bands: np.ndarray) -> pa.Table:
    """Seeds that share an exact key, a question key or an LSH band value of any view with a
    surviving item (a semi-join): the only seeds the seed gate could match."""
    signer = _Signer(cfg)
    rows: list[dict[str, Any]] = []
    views: dict[int, SeedViews] = {}
    for r in table.to_pylist():
        if not isinstance(r["question"], str):
            continue
        views[len(rows)] = SeedViews.of(r["question"], _options(r.get("options")), cfg.shingle_size)
        rows.append(r)
    schema = pa.schema([("order", pa.int64()), ("seed_id", pa.string()), ("question", pa.string()),
                        ("options", pa.string())])
    if not rows:
        return schema.empty_table()
    opts = [_options(r.get("options")) for r in rows]
    hit = _member(ekeys, _hash64([exact_key(r["question"], o) for r, o in zip(rows, opts)]))
    hit |= _member(qkeys, _hash64([question_key(r["question"]) for r in rows]))
    _, every = _view_bands(signer, views, len(rows))
    flat = every.flatten().to_numpy()
    if len(flat):
        lengths = np.diff(every.offsets.to_numpy())
        owner = np.repeat(np.arange(len(rows)), lengths)
        hit[owner[_member(bands, flat)]] = True
    kept = [r for r, h in zip(rows, hit) if h]
    return pa.table({"order": [int(r["order"]) for r in kept], "seed_id": [str(r["seed_id"]) for r in kept],
                     "question": [r["question"] for r in kept], "options": [r.get("options") for r in kept]},
                    schema=schema)


# -- the driver ----------------------------------------------------------------------------


def _seed_verdicts(alive: Any, seeds: Any, cfg: GateConfig) -> dict[str, GateResult]:
    """The seed gate, on the workers: the seeds that could match a surviving item are found
    by a semi-join on broadcast keys and band values, broadcast in turn, and each block of
    items runs the local rule (:func:`~linkqa_core.quality.copies.seed_hits`) against them.

    Exact per block: whether an item copies a seed, and which seed is the best evidence,
    depends on that item and the seeds alone.
    """
    import ray

    refs = alive.map_batches(_seed_keys, batch_format="pyarrow", batch_size=None).to_arrow_refs()
    if not refs:
        return {}
    keys = pa.concat_tables(ray.get(refs))
    ekeys, qkeys, bands = (np.unique(keys.column(c).combine_chunks().flatten().to_numpy())
                           for c in ("ekeys", "qkeys", "bands"))
    if not len(ekeys):
        return {}
    cands = seeds.map_batches(_seed_candidates, fn_kwargs={"cfg": cfg, "ekeys": ekeys, "qkeys": qkeys,
                                                           "bands": bands}, batch_format="pyarrow", batch_size=5000)
    refs = cands.to_arrow_refs()
    table = pa.concat_tables(ray.get(refs)).sort_by("order") if refs else None
    if table is None or not table.num_rows:
        return {}
    shared = ray.put(table)
    # big batches: each one hashes every candidate seed once
    hits = alive.map_batches(_seed_block, fn_kwargs={"cfg": cfg, "seeds": shared}, batch_format="pyarrow",
                             batch_size=SEED_BLOCK)
    return {r["key"]: GateResult(r["key"], False, r["reason"], "seed_duplicate", r["match"], r["similarity"])
            for r in hits.take_all()}


SEED_BLOCK = 50_000  # items per task of the seed gate


def _dropping(keys: Iterable[str]) -> Any:
    """A batch function that drops the rows whose ``key`` is in ``keys`` (taken now, not when it runs)."""
    gone = pa.array(sorted(keys), pa.string())

    def keep(t: pa.Table) -> pa.Table:
        import pyarrow.compute as pc

        return t.filter(pc.invert(pc.is_in(t.column("key"), value_set=gone))) if len(gone) else t

    return keep


def _seed_keys(t: pa.Table) -> pa.Table:
    """One row per block: the hashes of its exact keys, question keys and seed-view band
    values (what the seeds are joined on), as three lists."""
    ekeys = _hash64(t.column("ekey").to_pylist())
    qkeys = _hash64([q for q in t.column("qkey").to_pylist() if q])
    bands = t.column("seed_bands").combine_chunks().flatten().to_numpy() if t.num_rows else _NONE
    return pa.table({"ekeys": _list_column([ekeys]), "qkeys": _list_column([qkeys]), "bands": _list_column([bands])})


def _seed_block(t: pa.Table, cfg: GateConfig, seeds: Any) -> pa.Table:
    """The local seed rule for one block of surviving items against the candidate seeds."""
    import ray

    schema = pa.schema([("key", pa.string()), ("reason", pa.string()), ("match", pa.string()),
                        ("similarity", pa.float64())])
    rows = t.select(["key", "question", "options", "answer", "ekey"]).to_pylist()
    if not rows:
        return schema.empty_table()
    table = ray.get(seeds) if isinstance(seeds, ray.ObjectRef) else seeds
    items = [Item(question=r["question"], answer=r["answer"], options=_options(r["options"]), id=r["key"])
             for r in rows]
    found = seed_hits(items, range(len(items)),
                      ((r["seed_id"], r["question"], _options(r["options"])) for r in table.to_pylist()), cfg,
                      exact_hashes=np.array([hash(r["ekey"]) for r in rows], np.int64))
    got = sorted(found.items())
    return pa.table({"key": [rows[i]["key"] for i, _ in got], "reason": [h.reason() for _, h in got],
                     "match": [str(h.seed_id) for _, h in got], "similarity": [float(h.similarity) for _, h in got]},
                    schema=schema)


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
    live = survivors.map_batches(_dropping(verdicts), batch_format="pyarrow", batch_size=None).materialize()

    # near duplicates: LSH buckets -> star edges -> components -> the local gate per component
    def explode(t: pa.Table) -> pa.Table:
        bands = t.column("bands").combine_chunks()
        lengths = np.diff(bands.offsets.to_numpy()) if t.num_rows else _NONE
        flat = bands.flatten() if t.num_rows else pa.array([], pa.int64())
        return pa.table({"band": flat, "order": np.repeat(t.column("order").to_numpy(), lengths)})

    edges = live.map_batches(explode, batch_format="pyarrow", batch_size=None).groupby(
        "band", num_partitions=parts).map_groups(
        _bucket_edges, batch_format="pyarrow")
    edge_refs = edges.to_arrow_refs()
    pairs = pa.concat_tables(ray.get(edge_refs)) if edge_refs else None
    if pairs is not None and pairs.num_rows:
        a = pairs.column("a").to_numpy().astype(np.int64)
        b = pairs.column("b").to_numpy().astype(np.int64)
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
        verdicts.update(_seed_verdicts(live.map_batches(_dropping(verdicts), batch_format="pyarrow", batch_size=None),
                                       seeds, cfg))

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

"""Quality gates: which generated items are fit to keep, and why the others are not.

A model that writes QA items makes a few kinds of mistake often enough that a curator
should never have to find them by hand: broken JSON fields, an answer that is not among
the options, a one-line stub or a runaway essay, the same question twice, a seed copied
back, or a benchmark question leaked into training data. Each gate below catches one of
them and says so in a sentence; :func:`run_gates` applies them in a fixed order and every
rejected item keeps the first reason it failed on (DESIGN §8).

The gates, in the order they run (:data:`GATES`):

``schema``           question is text, answer present, options (if any) 2–10 distinct strings
``answer``           a multiple-choice answer is one of the options or a letter in range
``length``           question and answer lengths within :class:`GateConfig` bounds
``contamination``    shares a ``decontam_ngram``-word n-gram with a reference benchmark
``exact_duplicate``  same normalised question and options as an earlier item
``near_duplicate``   MinHash LSH candidate, confirmed by the exact Jaccard of word shingles
``seed_duplicate``   the same, against the seed questions

Everything here is pure: no database, no model. :func:`apply_gates` is the one function
that touches a :class:`~linkqa_core.store.Store`.

>>> items = [Item("Which gas do plants take in for photosynthesis?", "CO2", id=1),
...          Item("Which gas do plants take in for photosynthesis?", "Carbon dioxide", id=2)]
>>> [(r.key, r.passed, r.reason) for r in run_gates(items)]
[(1, True, None), (2, False, 'exact duplicate of item 1')]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Hashable, Iterable, Sequence

from datasketch import MinHash, MinHashLSH

from ..errors import ConfigError
from ..records import Item
from .checks import GateConfig, check_answer_consistency, check_length, check_schema
from .reference import Reference
from .text import exact_key, fmt_sim, item_shingles, jaccard

if TYPE_CHECKING:  # the store pulls in sqlite-utils; the gates themselves do not need it
    from ..store import Store

__all__ = ["GATES", "GateResult", "run_gates", "summarize", "apply_gates"]

GATES: tuple[str, ...] = (
    "schema",
    "answer",
    "length",
    "contamination",
    "exact_duplicate",
    "near_duplicate",
    "seed_duplicate",
)
"""Gate names in the order :func:`run_gates` applies them; the values of ``GateResult.gate``."""

# Near-duplicate candidates come from an LSH index tuned this much below the threshold,
# so that pairs just above it are rarely missed; the exact Jaccard then decides.
_LSH_SLACK = 0.1


@dataclass(frozen=True)
class GateResult:
    """The verdict on one candidate.

    ``gate`` names the first gate it failed (one of :data:`GATES`), ``reason`` says why
    in words. ``match`` is what it collided with — the other item's key, the seed id or
    the reference line — and ``similarity`` the exact Jaccard for duplicate gates.
    """

    key: Hashable
    passed: bool
    reason: str | None = None
    gate: str | None = None
    match: Hashable | None = None
    similarity: float | None = None


def _reject(key: Hashable, gate: str, reason: str, match: Hashable | None = None,
            similarity: float | None = None) -> GateResult:
    return GateResult(key, False, reason, gate, match, similarity)



# -- running the gates ------------------------------------------------------------------


class _Index:
    """MinHash LSH over shingle sets, with the sets kept for exact verification."""

    def __init__(self, cfg: GateConfig):
        self.cfg = cfg
        self._perm = MinHash(cfg.num_perm).permutations
        lsh_t = max(cfg.near_dup_threshold - _LSH_SLACK, cfg.near_dup_threshold / 2)
        self.lsh = MinHashLSH(threshold=lsh_t, num_perm=cfg.num_perm)
        self.sets: dict[int, set[str]] = {}

    def minhash(self, sh: set[str]) -> MinHash:
        m = MinHash(self.cfg.num_perm, permutations=self._perm, scheme="affine32")
        m.update_batch([s.encode("utf-8") for s in sorted(sh)])
        return m

    def add(self, idx: int, sh: set[str], m: MinHash | None = None) -> None:
        self.lsh.insert(idx, m if m is not None else self.minhash(sh))
        self.sets[idx] = sh

    def best(self, sh: set[str], m: MinHash | None = None) -> tuple[int, float] | None:
        """The most similar indexed entry at or above the threshold; ties go to the lowest index."""
        found: tuple[int, float] | None = None
        for idx in self.lsh.query(m if m is not None else self.minhash(sh)):
            sim = jaccard(sh, self.sets[idx])
            if sim >= self.cfg.near_dup_threshold and (
                found is None or sim > found[1] or (sim == found[1] and idx < found[0])
            ):
                found = (idx, sim)
        return found


def _seed_parts(seed: Sequence[Any]) -> tuple[Hashable, str, Sequence[str] | None]:
    if len(seed) == 2:
        return seed[0], seed[1], None
    if len(seed) == 3:
        return seed[0], seed[1], seed[2]
    raise ValueError("a seed is (seed_id, question) or (seed_id, question, options)")


def run_gates(
    candidates: Iterable[Item],
    *,
    seeds: Iterable[Sequence[Any]] = (),
    reference: Reference | None = None,
    cfg: GateConfig = GateConfig(),
) -> list[GateResult]:
    """Apply every gate to ``candidates``; one :class:`GateResult` each, in input order.

    Per item: schema, answer, length, contamination (when a ``reference`` is given).
    Then across items, in input order, keeping the first of each group: exact
    duplicates, then near-duplicates. Last, near-duplicates of ``seeds`` (when
    ``cfg.check_seeds``), given as ``(seed_id, question)`` or ``(seed_id, question,
    options)`` — pass the options when seeds have them, since items are compared on
    question and options together. ``seeds`` may be a generator: it is read once, and
    only if some item reaches that gate. The outcome is deterministic.
    """
    cands = list(candidates)
    keys = [c.id for c in cands]
    if len(set(keys)) != len(keys):
        dup = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise ValueError(f"candidate key {dup!r} appears more than once")
    if reference is not None and reference.decontam_ngram != cfg.decontam_ngram:
        raise ConfigError(
            f"the reference {reference.name} was indexed with {reference.decontam_ngram}-grams"
            f" but decontam_ngram is {cfg.decontam_ngram}; load it again with"
            f" decontam_ngram={cfg.decontam_ngram}"
        )
    results: list[GateResult | None] = [None] * len(cands)

    # Per-item gates.
    for i, c in enumerate(cands):
        reason = check_schema(c)
        gate = "schema"
        if reason is None:
            reason, gate = check_answer_consistency(c), "answer"
        if reason is None:
            reason, gate = check_length(c, cfg), "length"
        if reason is not None:
            results[i] = _reject(c.id, gate, reason)
            continue
        if reference is not None:
            line = reference.match(_joined(c))
            if line is not None:
                results[i] = _reject(
                    c.id, "contamination",
                    f"contaminated: shares a {reference.decontam_ngram}-gram with reference line {line}",
                    match=line,
                )

    # Exact duplicates among the survivors.
    exact_keys: dict[int, str] = {}
    first_with: dict[str, int] = {}
    for i, c in enumerate(cands):
        if results[i] is not None:
            continue
        k = exact_key(c.question, c.options)
        exact_keys[i] = k
        if k in first_with:
            j = first_with[k]
            results[i] = _reject(c.id, "exact_duplicate", f"exact duplicate of item {keys[j]}",
                                 match=keys[j], similarity=1.0)
        else:
            first_with[k] = i

    # Near-duplicates among the survivors: each is compared with the ones kept before it.
    index = _Index(cfg)
    sets: dict[int, set[str]] = {}
    hashes: dict[int, MinHash] = {}
    for i, c in enumerate(cands):
        if results[i] is not None:
            continue
        sh = item_shingles(c.question, c.options, cfg.shingle_size)
        if not sh:
            continue
        m = index.minhash(sh)
        hit = index.best(sh, m)
        if hit is not None:
            j, sim = hit
            results[i] = _reject(c.id, "near_duplicate",
                                 f"near-duplicate of item {keys[j]} (Jaccard {fmt_sim(sim)})",
                                 match=keys[j], similarity=sim)
            continue
        index.add(i, sh, m)
        sets[i], hashes[i] = sh, m

    # Near-duplicates of seeds: index the surviving items, stream the seeds past them.
    if cfg.check_seeds:
        alive = [i for i in range(len(cands)) if results[i] is None]
        if alive:
            for i, hit in _seed_hits(alive, exact_keys, sets, hashes, seeds, cfg).items():
                seed_id, sim = hit
                if sim is None:
                    reason, sim = f"exact duplicate of seed {seed_id}", 1.0
                else:
                    reason = f"near-duplicate of seed {seed_id} (Jaccard {fmt_sim(sim)})"
                results[i] = _reject(keys[i], "seed_duplicate", reason, match=seed_id, similarity=sim)

    return [r if r is not None else GateResult(keys[i], True) for i, r in enumerate(results)]


def _joined(c: Item) -> str:
    return "\n".join([c.question, *(c.options or ())])


def _seed_hits(
    alive: list[int],
    exact_keys: dict[int, str],
    sets: dict[int, set[str]],
    hashes: dict[int, MinHash],
    seeds: Iterable[Sequence[Any]],
    cfg: GateConfig,
) -> dict[int, tuple[Hashable, float | None]]:
    """For each surviving item that duplicates a seed: (seed id, Jaccard or None if exact).

    An exact match wins over a near one; among near ones the most similar, then the
    earliest seed. Seeds that share too few shingles with all items together to reach
    the threshold with any one of them are skipped before any MinHash is computed —
    that is what keeps a large seed table cheap.
    """
    t = cfg.near_dup_threshold
    index = _Index(cfg)
    universe: set[str] = set()
    by_key: dict[str, list[int]] = {}
    for i in alive:
        by_key.setdefault(exact_keys[i], []).append(i)
        if i in sets:
            index.add(i, sets[i], hashes[i])
            universe |= sets[i]
    hits: dict[int, tuple[Hashable, float | None]] = {}
    for seed in seeds:
        seed_id, question, options = _seed_parts(seed)
        if not isinstance(question, str):
            continue
        if isinstance(options, str):
            options = None
        for i in by_key.get(exact_key(question, options), ()):
            prev = hits.get(i)
            if prev is None or prev[1] is not None:
                hits[i] = (seed_id, None)
        sh = item_shingles(question, options, cfg.shingle_size)
        if not sh or len(sh & universe) < t * len(sh) - 1e-9:
            continue
        for i in index.lsh.query(index.minhash(sh)):
            sim = jaccard(sh, sets[i])
            prev = hits.get(i)
            if sim >= t and (prev is None or (prev[1] is not None and sim > prev[1])):
                hits[i] = (seed_id, sim)
    return hits


def summarize(results: Iterable[GateResult]) -> dict[str, int]:
    """Rejections per gate, every gate listed in :data:`GATES` order (zeros included).

    >>> summarize([GateResult(1, True), GateResult(2, False, "question is missing", "schema")])["schema"]
    1
    """
    counts = dict.fromkeys(GATES, 0)
    for r in results:
        if not r.passed and r.gate is not None:
            counts[r.gate] = counts.get(r.gate, 0) + 1
    return counts



def apply_gates(
    store: "Store",
    run_id: int,
    *,
    reference: Reference | None = None,
    cfg: GateConfig = GateConfig(),
) -> dict[str, int]:
    """Gate a run's ``generated`` items against each other and all seeds; returns :func:`summarize`.

    Rejected items get status ``rejected`` and their reason in ``gate_reason``; the
    others stay ``generated``. All updates are one transaction, and an item whose
    status changed while the gates ran is left alone.
    """
    store.runs.get(run_id)  # NotFoundError with a clear message when there is no such run
    items = store.items.of_run(run_id, ["generated"])
    seeds = store.seeds.questions() if cfg.check_seeds else ()
    results = run_gates(items, seeds=seeds, reference=reference, cfg=cfg)
    store.items.reject([(r.key, r.reason or r.gate or "rejected") for r in results if not r.passed])
    return summarize(results)

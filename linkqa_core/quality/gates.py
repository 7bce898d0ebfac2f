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
``seed_duplicate``   a copy of a seed: the same or near the same on question and options,
                     on the question alone (a copy that dropped or changed the options),
                     or the same words in another order (:func:`seed_copy`)

Everything here is pure: no database, no model. :func:`apply_gates` is the one function
that touches a :class:`~linkqa_core.store.Store`.

>>> items = [Item("Which gas do plants take in for photosynthesis?", "CO2", id=1),
...          Item("Which gas do plants take in for photosynthesis?", "Carbon dioxide", id=2)]
>>> [(r.key, r.passed, r.reason) for r in run_gates(items)]
[(1, True, None), (2, False, 'exact duplicate of item 1')]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Hashable, Iterable, Sequence

import numpy as np

from ..errors import ConfigError
from ..records import Item
from .checks import GateConfig, check_answer_consistency, check_length, check_schema
from .copies import COPY_KINDS, ItemViews, SeedCopy, reorder_threshold, seed_copy, seed_hits
from .minhash import near_duplicate_matches, set_bands
from .reference import Reference
from .text import exact_key, fmt_sim

if TYPE_CHECKING:  # the store pulls in sqlite-utils; the gates themselves do not need it
    from ..store import Store

__all__ = ["GATES", "GateResult", "SeedCopy", "COPY_KINDS", "reorder_threshold", "run_gates", "seed_copy",
           "summarize", "apply_gates"]

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
    duplicates, then near-duplicates. Last, copies of ``seeds`` (when
    ``cfg.check_seeds``), given as ``(seed_id, question)`` or ``(seed_id, question,
    options)``: on question and options, on the question alone, and as reordered words
    (:func:`seed_copy`). ``seeds`` may be a generator: it is read once, and only if some
    item reaches that gate. The outcome is deterministic.
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

    # Exact duplicates among the survivors. The first item of each key is found by the key's
    # hash (8 bytes an item rather than the key), confirmed on the key itself.
    exact_hashes = np.zeros(len(cands), np.int64)
    first_with: dict[int, int] = {}
    spill: dict[str, int] = {}  # keys whose hash an earlier, different key has
    for i, c in enumerate(cands):
        if results[i] is not None:
            continue
        k = exact_key(c.question, c.options)
        h = exact_hashes[i] = hash(k)
        j = first_with.setdefault(h, i)
        if j != i and exact_key(cands[j].question, cands[j].options) != k:
            j = spill.setdefault(k, i)
        if j != i:
            results[i] = _reject(c.id, "exact_duplicate", f"exact duplicate of item {keys[j]}",
                                 match=keys[j], similarity=1.0)
    del first_with, spill

    # Near-duplicates among the survivors: each is compared with the ones kept before it.
    # The views are kept as hashed sets (quality/minhash.py): verdicts as with string sets.
    surv = [i for i in range(len(cands)) if results[i] is None]
    views = ItemViews.of(cands, surv, cfg.shingle_size)
    has = np.flatnonzero(views.near.sizes())  # rows of views with something to compare
    near_bands = np.zeros((len(surv), 0), np.int64)
    if len(has):
        near = views.near if len(has) == len(surv) else views.near.take(has)
        bands = set_bands(near, cfg.num_perm, cfg.near_dup_threshold)
        match, sim = near_duplicate_matches(near, bands, cfg.near_dup_threshold)
        del near
        near_bands = np.zeros((len(surv), bands.shape[1]), np.int64)
        near_bands[has] = bands
        del bands
        for p in np.flatnonzero(match >= 0).tolist():
            i, j, s = surv[has[p]], surv[has[match[p]]], float(sim[p])
            results[i] = _reject(keys[i], "near_duplicate",
                                 f"near-duplicate of item {keys[j]} (Jaccard {fmt_sim(s)})",
                                 match=keys[j], similarity=s)

    # Copies of seeds: index the surviving items, stream the seeds past them.
    if cfg.check_seeds:
        alive = [i for i in surv if results[i] is None]
        if alive:
            hits = seed_hits(cands, alive, seeds, cfg, exact_hashes=exact_hashes[alive], views=views,
                             near_bands=near_bands if near_bands.shape[1] else None)
            for i, hit in hits.items():
                results[i] = _reject(keys[i], "seed_duplicate", hit.reason(), match=hit.seed_id,
                                     similarity=hit.similarity)

    return [r if r is not None else GateResult(keys[i], True) for i, r in enumerate(results)]


def _joined(c: Item) -> str:
    return "\n".join([c.question, *(c.options or ())])


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
    store.items.reject([(r.key, str(r.reason)) for r in results if not r.passed])  # a rejection always says why
    return summarize(results)

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

from ..errors import ConfigError
from ..records import Item
from .checks import GateConfig, check_answer_consistency, check_length, check_schema
from .reference import Reference
from .minhash import ShingleIndex
from .text import bag_of, exact_key, fmt_sim, jaccard, question_key, shingles, shingles_of, tokens

if TYPE_CHECKING:  # the store pulls in sqlite-utils; the gates themselves do not need it
    from ..store import Store

__all__ = ["GATES", "GateResult", "SeedCopy", "run_gates", "seed_copy", "summarize", "apply_gates"]

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


def _seed_parts(seed: Sequence[Any]) -> tuple[Hashable, str, Sequence[str] | None]:
    if len(seed) == 2:
        return seed[0], seed[1], None
    if len(seed) == 3:
        return seed[0], seed[1], seed[2]
    raise ValueError("a seed is (seed_id, question) or (seed_id, question, options)")


@dataclass(frozen=True)
class _Views:
    """The three ways a question is compared with seeds (see :func:`seed_copy`)."""

    near: set[str]  # shingles of the question and of each option
    question: set[str]  # shingles of the question alone
    reordered: set[str]  # the question's words as a bag

    @classmethod
    def of(cls, question: str, options: Sequence[str] | None, size: int) -> "_Views":
        toks = tokens(question)
        q = shingles_of(toks, size)
        near = set(q)
        for opt in options or ():
            near |= shingles(opt, size)
        return cls(near, q, bag_of(toks))


VIEWS: tuple[str, ...] = ("near", "question", "reordered")


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
    views = {i: _Views.of(cands[i].question, cands[i].options, cfg.shingle_size)
             for i in range(len(cands)) if results[i] is None}
    order = [i for i in views if views[i].near]
    index = ShingleIndex(cfg.num_perm, cfg.near_dup_threshold)
    sketches = dict(zip(order, index.sketches([views[i].near for i in order])))
    for i in order:
        hit = index.best(views[i].near, sketches[i])
        if hit is not None:
            j, sim = hit
            results[i] = _reject(keys[i], "near_duplicate",
                                 f"near-duplicate of item {keys[j]} (Jaccard {fmt_sim(sim)})",
                                 match=keys[j], similarity=sim)
            continue
        index.add(i, views[i].near, sketches[i])

    # Copies of seeds: index the surviving items, stream the seeds past them.
    if cfg.check_seeds:
        alive = [i for i in range(len(cands)) if results[i] is None]
        if alive:
            hits = _seed_hits(cands, {i: views[i] for i in alive}, exact_keys, sketches, seeds, cfg)
            for i, hit in hits.items():
                results[i] = _reject(keys[i], "seed_duplicate", hit.reason(), match=hit.seed_id,
                                     similarity=hit.similarity)

    return [r if r is not None else GateResult(keys[i], True) for i, r in enumerate(results)]


def _joined(c: Item) -> str:
    return "\n".join([c.question, *(c.options or ())])


@dataclass(frozen=True)
class SeedCopy:
    """How an item copies a seed: ``how`` is one of :data:`COPY_KINDS`, ``similarity`` its measure."""

    seed_id: Hashable
    how: str
    similarity: float

    def rank(self) -> tuple[int, float]:
        """Smaller is better evidence: the kind first (:data:`COPY_KINDS` order), then similarity."""
        return (COPY_KINDS.index(self.how), -self.similarity)

    def reason(self) -> str:
        sid, sim = self.seed_id, fmt_sim(self.similarity)
        return {
            "exact": f"exact duplicate of seed {sid}",
            "exact question": f"copies the question of seed {sid} (options aside)",
            "near": f"near-duplicate of seed {sid} (Jaccard {sim})",
            "question": f"near-duplicate of the question of seed {sid}, options aside (Jaccard {sim})",
            "reordered": f"the words of seed {sid}'s question in another order (word Jaccard {sim})",
        }[self.how]


COPY_KINDS: tuple[str, ...] = ("exact", "exact question", "near", "question", "reordered")
"""The ways an item can copy a seed, best evidence first."""


def reorder_threshold(cfg: GateConfig) -> float:
    """Word-bag Jaccard at or above which a question is a seed's words reordered: halfway
    from ``near_dup_threshold`` to 1 (0.9 by default), since word bags of distinct questions
    on one topic overlap more than their shingles do."""
    return (1 + cfg.near_dup_threshold) / 2


def _thresholds(cfg: GateConfig) -> dict[str, float]:
    t = cfg.near_dup_threshold
    return {"near": t, "question": t, "reordered": reorder_threshold(cfg)}


def seed_copy(question: str, options: Sequence[str] | None, seed_question: str,
              seed_options: Sequence[str] | None, cfg: GateConfig = GateConfig(),
              seed_id: Hashable = None) -> SeedCopy | None:
    """How an item copies one seed, or None: the seed gate's rule for a single pair.

    In order: the same question and options (normalised), the same question whatever the
    options, Jaccard of the shingles of question and options at or above
    ``near_dup_threshold``, the same for the question alone (a copy that dropped or
    changed the options), and Jaccard of the question's word bags at or above
    :func:`reorder_threshold` (the same words in another order).

    >>> seed_copy("Which gas do plants take in for photosynthesis", None,
    ...           "Which gas do plants take in for photosynthesis?", ["O2", "CO2"]).how
    'exact question'
    """
    if exact_key(question, options) == exact_key(seed_question, seed_options):
        return SeedCopy(seed_id, "exact", 1.0)
    if question_key(question) and question_key(question) == question_key(seed_question):
        return SeedCopy(seed_id, "exact question", 1.0)
    mine = _Views.of(question, options, cfg.shingle_size)
    theirs = _Views.of(seed_question, seed_options, cfg.shingle_size)
    for how, t in _thresholds(cfg).items():
        sim = jaccard(getattr(mine, how), getattr(theirs, how))
        if sim >= t:
            return SeedCopy(seed_id, how, sim)
    return None


_SEED_BATCH = 4096  # seeds hashed together


def _seed_hits(
    cands: list[Item],
    views: dict[int, _Views],
    exact_keys: dict[int, str],
    near_sketches: dict[int, Any],
    seeds: Iterable[Sequence[Any]],
    cfg: GateConfig,
) -> dict[int, SeedCopy]:
    """For each surviving item that copies a seed: the best evidence of it (:class:`SeedCopy`).

    Evidence ranks by kind (:data:`COPY_KINDS`: exact, then near on question and options,
    on the question alone, reordered words), then similarity, then the earliest seed. The
    three views of the items are indexed with MinHash LSH; a seed that shares too few
    elements with all items together to reach the threshold with any one of them is
    skipped in that view before it is hashed -- that keeps a large seed table cheap -- and
    the others are hashed in batches.
    """
    thresholds = _thresholds(cfg)
    indices = {how: ShingleIndex(cfg.num_perm, t) for how, t in thresholds.items()}
    universe: dict[str, set[str]] = {how: set() for how in thresholds}
    by_key: dict[str, list[int]] = {}
    by_question: dict[str, list[int]] = {}
    for i, v in views.items():
        c = cands[i]
        by_key.setdefault(exact_keys[i], []).append(i)
        qk = question_key(c.question)
        if qk:
            by_question.setdefault(qk, []).append(i)
    for how, index in indices.items():
        todo = [i for i, v in views.items() if getattr(v, how)]
        # an item without options has one set for both shingle views: hash it once
        reuse = {i: near_sketches[i] for i in todo if i in near_sketches and (
            how == "near" or (how == "question" and not cands[i].options))}
        fresh = [i for i in todo if i not in reuse]
        made = dict(zip(fresh, index.sketches([getattr(views[i], how) for i in fresh])))
        for i in todo:
            sh = getattr(views[i], how)
            index.add(i, sh, reuse.get(i, made.get(i)))
            universe[how] |= sh
    hits: dict[int, SeedCopy] = {}

    def offer(i: int, hit: SeedCopy) -> None:
        prev = hits.get(i)
        if prev is None or hit.rank() < prev.rank():
            hits[i] = hit

    batch: list[tuple[Hashable, _Views]] = []

    def flush() -> None:
        for how, index in indices.items():
            t = thresholds[how]
            near = [(sid, getattr(v, how)) for sid, v in batch
                    if getattr(v, how) and len(getattr(v, how) & universe[how]) >= t * len(getattr(v, how)) - 1e-9]
            for (sid, sh), sketch in zip(near, index.sketches([sh for _, sh in near])):
                for i in index.candidates(sketch):
                    sim = jaccard(sh, index.sets[i])
                    if sim >= t:
                        offer(i, SeedCopy(sid, how, sim))
        batch.clear()

    for seed in seeds:
        seed_id, question, options = _seed_parts(seed)
        if not isinstance(question, str):
            continue
        if isinstance(options, str):
            options = None
        for i in by_key.get(exact_key(question, options), ()):
            offer(i, SeedCopy(seed_id, "exact", 1.0))
        for i in by_question.get(question_key(question), ()):
            offer(i, SeedCopy(seed_id, "exact question", 1.0))
        batch.append((seed_id, _Views.of(question, options, cfg.shingle_size)))
        if len(batch) >= _SEED_BATCH:
            flush()
    flush()
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
    store.items.reject([(r.key, str(r.reason)) for r in results if not r.passed])  # a rejection always says why
    return summarize(results)

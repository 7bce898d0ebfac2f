"""Copies of seeds: the seed gate's rule, for one pair (:func:`seed_copy`) and for many items
against a stream of seeds (:func:`seed_hits`).

It has a module of its own because two runners share it: the local gates
(:func:`linkqa_core.quality.gates.run_gates`) and the gates on Ray
(:mod:`linkqa_core.scale.dedup`), which find the few seeds that could match on the cluster
and then apply this same rule to them, so that both give the same verdicts.

An item is compared with a seed in three views (:class:`Views`): the word shingles of the
question and options, those of the question alone, and the question's words as a bag.

>>> seed_copy("Which gas do plants take in for photosynthesis", None,
...           "Which gas do plants take in for photosynthesis?", ["O2", "CO2"]).how
'exact question'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Sequence

import numpy as np

from ..records import Item
from .checks import GateConfig
from .minhash import BandIndex, HashedSets, lsh_shape, set_bands, sorted_unique
from .text import bag_of, exact_key, fmt_sim, jaccard, question_key, shingles, shingles_of, tokens

__all__ = ["Views", "VIEWS", "ItemViews", "SeedCopy", "COPY_KINDS", "reorder_threshold", "view_thresholds",
           "seed_copy", "seed_hits", "seed_parts"]


@dataclass(frozen=True)
class Views:
    """The three ways a question is compared with seeds (see :func:`seed_copy`), as sets of strings."""

    near: set[str]  # shingles of the question and of each option
    question: set[str]  # shingles of the question alone
    reordered: set[str]  # the question's words as a bag

    @classmethod
    def of(cls, question: str, options: Sequence[str] | None, size: int) -> "Views":
        toks = tokens(question)
        q = shingles_of(toks, size)
        near = set(q)
        for opt in options or ():
            near |= shingles(opt, size)
        return cls(near, q, bag_of(toks))


VIEWS: tuple[str, ...] = ("near", "question", "reordered")
"""The names of the views, in the order the seed gate tries them."""


@dataclass(frozen=True)
class ItemViews:
    """The :class:`Views` of many items, each view one :class:`HashedSets` (row ``r`` is the
    ``r``-th item asked for): about 8 bytes a shingle instead of a Python string in a set."""

    rows: np.ndarray  # the item each row describes
    near: HashedSets
    question: HashedSets
    reordered: HashedSets

    @classmethod
    def of(cls, items: Sequence[Item], rows: Sequence[int], size: int, chunk: int = 2_000) -> "ItemViews":
        """The views of ``items[r]`` for ``r`` in ``rows``, made a chunk at a time so the string
        sets of only one small chunk are ever alive (a Python string costs some 60 bytes, a
        hashed element 8); each view's array grows in place."""
        flats = {how: np.empty(1 << 16, np.uint64) for how in VIEWS}
        used = dict.fromkeys(VIEWS, 0)
        offsets: dict[str, list[np.ndarray]] = {how: [np.zeros(1, np.int64)] for how in VIEWS}
        for c in range(0, len(rows), chunk):
            views = [Views.of(items[r].question, items[r].options, size) for r in rows[c: c + chunk]]
            for how in VIEWS:
                part = HashedSets.of([getattr(v, how) for v in views])
                flat, n, end = flats[how], used[how], used[how] + len(part.flat)
                if end > len(flat):  # grow in place (realloc): no chunk list and joined copy side by side
                    flat.resize(max(end, len(flat) * 3 // 2), refcheck=False)
                flat[n:end] = part.flat
                offsets[how].append(part.offsets[1:] + n)
                used[how] = end
            del views
        for how in VIEWS:
            flats[how].resize(used[how], refcheck=False)
        return cls(np.asarray(rows, np.int64),
                   *(HashedSets(flats[how], np.concatenate(offsets[how])) for how in VIEWS))

    def __len__(self) -> int:
        return len(self.rows)


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


def view_thresholds(cfg: GateConfig) -> dict[str, float]:
    """The Jaccard threshold of each view, in :data:`VIEWS` order."""
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
    """
    if exact_key(question, options) == exact_key(seed_question, seed_options):
        return SeedCopy(seed_id, "exact", 1.0)
    if question_key(question) and question_key(question) == question_key(seed_question):
        return SeedCopy(seed_id, "exact question", 1.0)
    mine = Views.of(question, options, cfg.shingle_size)
    theirs = Views.of(seed_question, seed_options, cfg.shingle_size)
    for how, t in view_thresholds(cfg).items():
        sim = jaccard(getattr(mine, how), getattr(theirs, how))
        if sim >= t:
            return SeedCopy(seed_id, how, sim)
    return None


def seed_parts(seed: Sequence[Any]) -> tuple[Hashable, str, Sequence[str] | None]:
    """``(seed_id, question, options)`` of a seed given as a pair or a triple."""
    if len(seed) == 2:
        return seed[0], seed[1], None
    if len(seed) == 3:
        return seed[0], seed[1], seed[2]
    raise ValueError("a seed is (seed_id, question) or (seed_id, question, options)")


SEED_BATCH = 4096  # seeds hashed together
_NOT_INDEXED = "the views given to seed_hits must include every row checked"


def _hashes(keys: Iterable[str], n: int) -> np.ndarray:
    """Python's string hash of each key (this process only): a lookup table that costs 8 bytes
    an item instead of the string, each hit confirmed on the string itself."""
    return np.fromiter((hash(k) for k in keys), np.int64, count=n)


def _lookup(sorted_hashes: np.ndarray, rows: np.ndarray, keys: list[str]) -> list[tuple[int, int]]:
    """``(k, row)`` for every key ``keys[k]`` whose hash some row has (a vectorised join)."""
    h = _hashes(keys, len(keys))
    lo, hi = np.searchsorted(sorted_hashes, h), np.searchsorted(sorted_hashes, h, side="right")
    return [(k, int(r)) for k in np.flatnonzero(hi > lo).tolist() for r in rows[lo[k]: hi[k]]]


def seed_hits(
    cands: Sequence[Item],
    rows: Sequence[int],
    seeds: Iterable[Sequence[Any]],
    cfg: GateConfig,
    *,
    exact_hashes: np.ndarray | None = None,
    views: ItemViews | None = None,
    near_bands: np.ndarray | None = None,
) -> dict[int, SeedCopy]:
    """For each item ``cands[r]`` (``r`` in ``rows``) that copies a seed: the best evidence of it.

    Evidence ranks by kind (:data:`COPY_KINDS`: exact, then near on question and options,
    on the question alone, reordered words), then similarity, then the earliest seed.
    Made here when not given: ``exact_hashes`` (``hash`` of each row's
    :func:`~linkqa_core.quality.text.exact_key`, in ``rows`` order), ``views`` (of any items
    that include ``rows``) and ``near_bands`` (the near view's band values at
    ``near_dup_threshold``, aligned with ``views``). The three views of the items are
    indexed by LSH band value; a seed that shares too few elements with all items together
    to reach the threshold with any one of them is skipped in that view before it is signed
    -- that keeps a large seed table cheap -- and the others are signed in batches.
    """
    thresholds = view_thresholds(cfg)
    rows = np.asarray(rows, np.int64)
    if views is None:
        views, near_bands = ItemViews.of(cands, rows, cfg.shingle_size), None
    if exact_hashes is None:
        exact_hashes = _hashes((exact_key(cands[r].question, cands[r].options) for r in rows.tolist()), len(rows))
    order = np.argsort(exact_hashes, kind="stable")
    by_key, key_rows = exact_hashes[order], rows[order]
    qkeys = [question_key(cands[r].question) for r in rows.tolist()]
    asked = np.array([bool(q) for q in qkeys], bool)
    q_hashes = _hashes((q for q in qkeys if q), int(asked.sum()))
    del qkeys
    order = np.argsort(q_hashes, kind="stable")
    by_question, question_rows = q_hashes[order], rows[asked][order]
    # which rows of the views are indexed: those of ``rows``
    by_row = np.argsort(views.rows, kind="stable")
    if len(rows) and not len(views):  # checked before indexing ``by_row``, which is then empty
        raise ValueError(_NOT_INDEXED)
    where = by_row[np.minimum(np.searchsorted(views.rows[by_row], rows), len(views) - 1)]
    if (views.rows[where] != rows).any():
        raise ValueError(_NOT_INDEXED)
    indexed = np.zeros(len(views), bool)
    indexed[where] = True
    indices: dict[str, BandIndex] = {}
    universe: dict[str, np.ndarray] = {}
    for how, t in thresholds.items():
        sets = getattr(views, how)
        if near_bands is not None and how == "near":
            bands = near_bands
        elif near_bands is not None and how == "question":
            # the question's shingles are a subset of the near view's: the same size means the
            # same set (an item without options), whose bands are known
            bands = near_bands.copy()
            other = np.flatnonzero((sets.sizes() != views.near.sizes()) & indexed)
            if len(other):
                bands[other] = set_bands(sets.take(other), cfg.num_perm, t)
        else:
            other = np.flatnonzero(indexed)
            bands = np.zeros((len(sets), lsh_shape(t, cfg.num_perm)[0]), np.int64)
            bands[other] = set_bands(sets.take(other), cfg.num_perm, t)
        indices[how] = BandIndex(sets, bands, t, indexed)
        del bands
        universe[how] = sorted_unique(sets.flat[np.repeat(indexed, sets.sizes())], in_place=True)
    best: dict[int, tuple[tuple[int, float], int, SeedCopy]] = {}

    def offer(r: int, pos: int, hit: SeedCopy) -> None:
        prev = best.get(r)
        if prev is None or (hit.rank(), pos) < (prev[0], prev[1]):
            best[r] = (hit.rank(), pos, hit)

    batch: list[tuple[int, Hashable, Views]] = []
    batch_keys: list[str] = []
    batch_questions: list[str] = []

    def flush() -> None:
        for k, r in _lookup(by_key, key_rows, batch_keys):
            if exact_key(cands[r].question, cands[r].options) == batch_keys[k]:
                offer(r, batch[k][0], SeedCopy(batch[k][1], "exact", 1.0))
        for k, r in _lookup(by_question, question_rows, batch_questions):
            if question_key(cands[r].question) == batch_questions[k]:
                offer(r, batch[k][0], SeedCopy(batch[k][1], "exact question", 1.0))
        for how, index in indices.items():
            t = thresholds[how]
            sets = HashedSets.of([getattr(v, how) for _, _, v in batch])
            sizes = sets.sizes()
            pos = np.minimum(np.searchsorted(universe[how], sets.flat), max(0, len(universe[how]) - 1))
            known = np.zeros(len(sets.flat) + 1, np.int64)
            if len(universe[how]):
                np.cumsum(universe[how][pos] == sets.flat, out=known[1:])
            shared = known[sets.offsets[1:]] - known[sets.offsets[:-1]]
            keep = np.flatnonzero((sizes > 0) & (shared >= t * sizes - 1e-9))
            if not len(keep):
                continue
            chosen = sets.take(keep)
            q, m, sim = index.matches(chosen, set_bands(chosen, cfg.num_perm, t))
            for qi, mi, s in zip(q.tolist(), m.tolist(), sim.tolist()):
                at, sid, _ = batch[keep[qi]]
                offer(int(views.rows[mi]), at, SeedCopy(sid, how, s))
        batch.clear()
        batch_keys.clear()
        batch_questions.clear()

    for at, seed in enumerate(seeds):
        seed_id, question, options = seed_parts(seed)
        if not isinstance(question, str):
            continue
        if isinstance(options, str):
            options = None
        batch.append((at, seed_id, Views.of(question, options, cfg.shingle_size)))
        batch_keys.append(exact_key(question, options))
        batch_questions.append(question_key(question))
        if len(batch) >= SEED_BATCH:
            flush()
    flush()
    return {r: hit for r, (_, _, hit) in best.items()}

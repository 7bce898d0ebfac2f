"""MinHash signatures of many sets at once, and an LSH index that verifies with the exact Jaccard.

The gates compare every item with every earlier item and every seed, in three views
each; hashing one set at a time (a SHA-1 per shingle, one numpy call per set) was most of
their time. Here every element is hashed once with CRC-32 and the signatures of a whole
batch come from one compiled loop (numba) applying a multiply-shift per permutation,
``h_k(x) = (a_k x + b_k) >> 32`` with odd 64-bit ``a_k`` (a universal family), keeping the
minimum per set: no (elements x permutations) array is ever made. Candidates come from datasketch's :class:`MinHashLSH`; the exact
Jaccard of the kept sets decides.

>>> index = ShingleIndex(num_perm=64, threshold=0.5)
>>> a, b = {"the cat sat", "cat sat on"}, {"the cat sat", "cat sat on", "sat on it"}
>>> index.add(0, a)
>>> index.best(b)
(0, 0.6666666666666666)
"""

from __future__ import annotations

from typing import Hashable, Sequence
from zlib import crc32

import numpy as np
from datasketch import LeanMinHash, MinHashLSH
from numba import njit

from .text import jaccard

__all__ = ["signatures", "ShingleIndex", "LSH_SLACK"]

LSH_SLACK = 0.1
"""The LSH index is tuned this much below the threshold, so that pairs just above it are
rarely missed; the exact Jaccard then decides."""
_SCHEME = "affine32"  # datasketch labels sketches by scheme; ours are 32-bit values like affine32's
_PERMS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed odd multipliers and offsets, made once per size, so every run hashes alike."""
    if num_perm not in _PERMS:
        gen = np.random.RandomState(1)
        a = gen.randint(0, 1 << 62, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        b = gen.randint(0, 1 << 62, size=num_perm, dtype=np.uint64)
        _PERMS[num_perm] = (a, b)
    return _PERMS[num_perm]


def signatures(sets: Sequence[set[str]], num_perm: int) -> np.ndarray:
    """MinHash signatures of non-empty ``sets``: an array of shape (len(sets), num_perm).

    >>> s = signatures([{"a", "b"}, {"b", "a"}, {"c"}], 16)
    >>> bool((s[0] == s[1]).all()), bool((s[0] == s[2]).all())
    (True, False)
    """
    a, b = _permutations(num_perm)
    lens = np.fromiter((len(s) for s in sets), dtype=np.int64, count=len(sets))
    if (lens == 0).any():
        raise ValueError("cannot sign an empty set")
    hv = np.fromiter((crc32(x.encode("utf-8")) for s in sets for x in s), dtype=np.uint64, count=int(lens.sum()))
    starts = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64)
    out = np.empty((len(sets), num_perm), dtype=np.uint64)
    _sign(hv, starts, lens, a, b, out)
    return out


@njit(cache=True, nogil=True)
def _sign(hv, starts, lens, a, b, out):  # pragma: no cover - compiled
    """out[s, k] = min over the elements x of set s of (a[k] * x + b[k]) >> 32 (uint64 wraps)."""
    shift = np.uint64(32)
    for s in range(starts.shape[0]):
        for k in range(a.shape[0]):
            out[s, k] = np.uint64(0xFFFFFFFFFFFFFFFF)
        for e in range(starts[s], starts[s] + lens[s]):
            x = hv[e]
            for k in range(a.shape[0]):
                v = (a[k] * x + b[k]) >> shift
                if v < out[s, k]:
                    out[s, k] = v


class ShingleIndex:
    """MinHash LSH over sets, with the sets kept for exact verification."""

    def __init__(self, num_perm: int, threshold: float):
        self.num_perm = num_perm
        self.threshold = threshold
        lsh_t = max(threshold - LSH_SLACK, threshold / 2)
        self.lsh = MinHashLSH(threshold=lsh_t, num_perm=num_perm)
        self.sets: dict[Hashable, set[str]] = {}

    def sketches(self, sets: Sequence[set[str]]) -> list[LeanMinHash]:
        """One sketch per non-empty set, hashed together."""
        if not sets:
            return []
        return [LeanMinHash(seed=1, hashvalues=row, scheme=_SCHEME) for row in signatures(sets, self.num_perm)]

    def add(self, key: Hashable, sh: set[str], sketch: LeanMinHash | None = None) -> None:
        self.lsh.insert(key, sketch if sketch is not None else self.sketches([sh])[0])
        self.sets[key] = sh

    def candidates(self, sketch: LeanMinHash) -> list[Hashable]:
        return self.lsh.query(sketch)

    def best(self, sh: set[str], sketch: LeanMinHash | None = None) -> tuple[Hashable, float] | None:
        """The most similar indexed set at or above the threshold; ties go to the smallest key."""
        found: tuple[Hashable, float] | None = None
        for key in self.lsh.query(sketch if sketch is not None else self.sketches([sh])[0]):
            sim = jaccard(sh, self.sets[key])
            if sim >= self.threshold and (
                found is None or sim > found[1] or (sim == found[1] and key < found[0])
            ):
                found = (key, sim)
        return found

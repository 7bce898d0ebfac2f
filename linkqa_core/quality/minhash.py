"""MinHash signatures, LSH band values and exact Jaccard over sets kept as sorted 64-bit hashes.

The gates compare every item with every item kept before it and with every seed, in three
views each. Kept as Python sets of strings, those views and datasketch's per-key band
tables cost about 37 KB an item (3.8 GB at 100k items), so a million items did not fit.
Here a batch of sets is one flat ``uint64`` array plus offsets (:class:`HashedSets`, about
8 bytes an element): each element is hashed once, in a compiled loop over the batch's
UTF-8 bytes, to ``crc32 << 32 | low 32 bits of a mixed FNV-1a 64``. The top half is the
CRC-32 that the MinHash permutations have always been applied to, so signatures, bands and
LSH candidates are exactly those of the string sets; the whole 64 bits stand for the
string in the exact Jaccard, computed by a merge of two sorted runs.

Why the verdicts do not change: a Jaccard on hashes differs from the Jaccard on strings
only if two distinct strings get the same 64-bit value. With N distinct elements in a run
the expected number of such pairs is about N**2 / 2**65 (N = 50M gives 7e-5), and a
colliding pair changes a verdict only if the two strings sit in two sets that are compared.

Signatures use a multiply-shift per permutation, ``h_k(x) = (a_k x + b_k) >> 32`` with odd
64-bit ``a_k`` (a universal family), keeping the minimum per set, in one compiled loop per
batch: no (elements x permutations) array is ever made. The band shape ``b x r`` is
datasketch's for the threshold less :data:`LSH_SLACK` (:func:`lsh_shape`); a band value is
a 64-bit hash of the band's ``r`` signature values (:func:`band_values`), so two sets share
a band value when datasketch's ``MinHashLSH`` would put them in one bucket (unequal bands
that collide in 64 bits -- about one pair in 2**60 -- only add a candidate).

>>> hs = HashedSets.of([{"the cat sat", "cat sat on"}, {"the cat sat", "cat sat on", "sat on it"}])
>>> len(hs), hs.sizes().tolist(), hs.jaccard(0, hs, 1)
(2, [2, 3], 0.6666666666666666)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence
from zlib import crc32

import numpy as np
from numba import njit

__all__ = ["signatures", "HashedSets", "lsh_shape", "band_values", "set_bands", "near_duplicate_matches",
           "BandIndex", "sorted_unique", "LSH_SLACK"]

LSH_SLACK = 0.1
"""The LSH bands are tuned this much below the threshold, so that pairs just above it are
rarely missed; the exact Jaccard then decides."""
_PERMS: dict[int, tuple[np.ndarray, np.ndarray]] = {}
_CHUNK = 20_000  # sets signed together: bounds the (sets x num_perm) signature block


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
    _sign(hv, starts, lens, a, b, out, np.uint64(0))
    return out


@njit(cache=True, nogil=True)
def _sign(hv, starts, lens, a, b, out, pre):  # pragma: no cover - compiled
    """out[s, k] = min over the elements x of set s of (a[k] * (x >> pre) + b[k]) >> 32 (uint64 wraps)."""
    shift = np.uint64(32)
    for s in range(starts.shape[0]):
        for k in range(a.shape[0]):
            out[s, k] = np.uint64(0xFFFFFFFFFFFFFFFF)
        for e in range(starts[s], starts[s] + lens[s]):
            x = hv[e] >> pre
            for k in range(a.shape[0]):
                v = (a[k] * x + b[k]) >> shift
                if v < out[s, k]:
                    out[s, k] = v


def _crc_table() -> np.ndarray:
    table = np.zeros(256, np.uint64)
    for n in range(256):
        c = n
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else c >> 1
        table[n] = c
    return table


_CRC_TABLE = _crc_table()


@njit(cache=True, nogil=True)
def _hash_elements(buf, table, out):  # pragma: no cover - compiled
    """Elements of ``buf`` separated by newlines -> ``crc32 << 32 | low half of mix(fnv1a64)``."""
    e = 0
    crc = np.uint64(0xFFFFFFFF)
    h = np.uint64(0xCBF29CE484222325)
    for p in range(buf.shape[0] + 1):
        if p == buf.shape[0] or buf[p] == 10:
            z = h
            z ^= z >> np.uint64(30)
            z *= np.uint64(0xBF58476D1CE4E5B9)
            z ^= z >> np.uint64(27)
            z *= np.uint64(0x94D049BB133111EB)
            z ^= z >> np.uint64(31)
            out[e] = ((crc ^ np.uint64(0xFFFFFFFF)) << np.uint64(32)) | (z & np.uint64(0xFFFFFFFF))
            e += 1
            crc = np.uint64(0xFFFFFFFF)
            h = np.uint64(0xCBF29CE484222325)
        else:
            byte = np.uint64(buf[p])
            crc = table[(crc ^ byte) & np.uint64(0xFF)] ^ (crc >> np.uint64(8))
            h = (h ^ byte) * np.uint64(0x100000001B3)


@njit(cache=True, nogil=True)
def _sort_unique(flat, offsets):  # pragma: no cover - compiled
    """Sort each set's run and drop repeats in place; returns the new offsets."""
    new = np.empty_like(offsets)
    new[0] = 0
    w = 0
    for s in range(offsets.shape[0] - 1):
        flat[offsets[s]:offsets[s + 1]].sort()
        first = w
        for p in range(offsets[s], offsets[s + 1]):
            v = flat[p]
            if w == first or flat[w - 1] != v:
                flat[w] = v
                w += 1
        new[s + 1] = w
    return new


@njit(cache=True, nogil=True)
def _merge_jaccard(xa, a0, a1, xb, b0, b1):  # pragma: no cover - compiled
    """|A ∩ B| / |A ∪ B| of two sorted runs without repeats; 0.0 when both are empty."""
    i, j, inter = a0, b0, 0
    while i < a1 and j < b1:
        x, y = xa[i], xb[j]
        if x == y:
            inter += 1
            i += 1
            j += 1
        elif x < y:
            i += 1
        else:
            j += 1
    union = (a1 - a0) + (b1 - b0) - inter
    return 0.0 if union == 0 else inter / union


@dataclass(frozen=True)
class HashedSets:
    """Sets of strings as sorted 64-bit element hashes: set ``i`` is ``flat[offsets[i]:offsets[i + 1]]``."""

    flat: np.ndarray  # uint64
    offsets: np.ndarray  # int64, one more than there are sets

    @classmethod
    def of(cls, sets: Sequence[Iterable[str]]) -> "HashedSets":
        """Hash ``sets`` of strings without newlines (shingles and word-bag entries never hold one)."""
        lens = np.fromiter((len(s) for s in sets), np.int64, count=len(sets))  # type: ignore[arg-type]
        offsets = np.zeros(len(sets) + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        flat = np.empty(int(offsets[-1]), np.uint64)
        if len(flat):
            buf = np.frombuffer("\n".join(["\n".join(s) for s in sets if s]).encode("utf-8"), np.uint8)
            _hash_elements(buf, _CRC_TABLE, flat)
            offsets = _sort_unique(flat, offsets)
            flat = flat[: offsets[-1]].copy()
        return cls(flat, offsets)

    @classmethod
    def concat(cls, parts: Sequence["HashedSets"]) -> "HashedSets":
        if not parts:
            return cls(np.zeros(0, np.uint64), np.zeros(1, np.int64))
        ends = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate([parts[0].offsets[:1], *(p.offsets[1:] + e for p, e in zip(parts, ends))])
        return cls(np.concatenate([p.flat for p in parts]), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, rows: np.ndarray) -> "HashedSets":
        """The sets at ``rows``, in that order, as a new compact batch."""
        rows = np.asarray(rows, np.int64)
        lens = self.sizes()[rows]
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        idx = np.repeat(self.offsets[rows] - offsets[:-1], lens) + np.arange(int(offsets[-1]))
        return HashedSets(self.flat[idx], offsets)

    def jaccard(self, i: int, other: "HashedSets", j: int) -> float:
        """The Jaccard of set ``i`` here and set ``j`` of ``other``."""
        return _merge_jaccard(self.flat, self.offsets[i], self.offsets[i + 1], other.flat, other.offsets[j],
                              other.offsets[j + 1])


@lru_cache(maxsize=None)
def lsh_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """``(bands, rows per band)`` for a gate ``threshold``: datasketch's optimum for ``threshold - LSH_SLACK``.

    Cached: datasketch finds the shape by numerical integration (about 8 ms a threshold)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=max(threshold - LSH_SLACK, threshold / 2), num_perm=num_perm)
    return lsh.b, lsh.r


_MULT = np.random.RandomState(7).randint(1, 1 << 62, size=512, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _mix64(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, on an array: spreads every input bit over the output."""
    with np.errstate(over="ignore"):
        h = h.copy()
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def band_values(sig: np.ndarray, bands: int, rows: int, tag: int = 0) -> np.ndarray:
    """A (sets x bands) int64 array: a 64-bit hash of each band's ``rows`` signature values,
    the band number and ``tag`` (so that views sharing one table of values never meet)."""
    n = sig.shape[0]
    cut = sig[:, : bands * rows].reshape(n, bands, rows)
    with np.errstate(over="ignore"):
        h = (cut * _MULT[:rows]).sum(axis=2, dtype=np.uint64)
        h ^= np.arange(bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(tag)
    return _mix64(h).view(np.int64)


def set_bands(sets: HashedSets, num_perm: int, threshold: float, tag: int = 0) -> np.ndarray:
    """Band values (:func:`band_values`) of every set, signed a chunk at a time; rows of empty sets are 0."""
    bands, rows = lsh_shape(threshold, num_perm)
    a, b = _permutations(num_perm)
    out = np.zeros((len(sets), bands), np.int64)
    lens = sets.sizes()
    full = np.flatnonzero(lens)
    for c in range(0, len(full), _CHUNK):
        part = full[c: c + _CHUNK]
        sig = np.empty((len(part), num_perm), np.uint64)
        _sign(sets.flat, sets.offsets[part], lens[part], a, b, sig, np.uint64(32))
        out[part] = band_values(sig, bands, rows, tag)
    return out


@njit(cache=True, nogil=True)
def _greedy(flat, offsets, buckets, n_buckets, threshold):  # pragma: no cover - compiled
    """Sets in order; each is matched with the most similar earlier *kept* set that shares a
    bucket with it (ties to the earliest), at or above ``threshold``, or kept itself."""
    n, nb = buckets.shape
    head = np.full(n_buckets, -1, np.int64)
    nxt = np.full(n * nb, -1, np.int64)
    seen = np.full(n, -1, np.int64)
    match = np.full(n, -1, np.int64)
    sim = np.zeros(n, np.float64)
    for i in range(n):
        best, best_sim = -1, 0.0
        for k in range(nb):
            slot = head[buckets[i, k]]
            while slot != -1:
                j = slot // nb
                if seen[j] != i:
                    seen[j] = i
                    s = _merge_jaccard(flat, offsets[i], offsets[i + 1], flat, offsets[j], offsets[j + 1])
                    if s >= threshold and (best == -1 or s > best_sim or (s == best_sim and j < best)):
                        best, best_sim = j, s
                slot = nxt[slot]
        if best >= 0:
            match[i], sim[i] = best, best_sim
        else:
            for k in range(nb):
                c = buckets[i, k]
                nxt[i * nb + k] = head[c]
                head[c] = i * nb + k
    return match, sim


def _bucket_ids(bands: np.ndarray) -> tuple[np.ndarray, int]:
    """Band values -> bucket numbers, distinct across bands (a sort per band)."""
    out = np.empty(bands.shape, np.int64)
    total = 0
    for k in range(bands.shape[1]):
        order = np.argsort(bands[:, k], kind="stable")
        col = bands[order, k]
        new = np.empty(len(col), bool)
        new[:1] = True
        np.not_equal(col[1:], col[:-1], out=new[1:])
        out[order, k] = np.cumsum(new) - 1 + total
        total += int(new.sum())
    return out, total


def sorted_unique(values: np.ndarray, in_place: bool = False) -> np.ndarray:
    """``np.unique`` by sorting (numpy's hash-based unique is several times slower on 64-bit
    keys); ``in_place`` sorts and compacts ``values`` itself, a copy the caller made, so no
    second copy exists beside it."""
    out = values if in_place else values.copy()
    out.sort()
    n = _compact_sorted(out)
    out.resize(n, refcheck=False)
    return out


@njit(cache=True, nogil=True)
def _compact_sorted(x):  # pragma: no cover - compiled
    """Drop repeats from sorted ``x`` in place; returns how many values remain."""
    w = 0
    for p in range(x.shape[0]):
        if w == 0 or x[w - 1] != x[p]:
            x[w] = x[p]
            w += 1
    return w


def near_duplicate_matches(sets: HashedSets, bands: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The near-duplicate rule on non-empty ``sets`` in order: ``(match, similarity)`` per set.

    Set ``i`` is compared with the sets kept before it that share a band value with it;
    ``match[i]`` is the most similar one with Jaccard >= ``threshold`` (ties to the earliest)
    and ``i`` is then not kept, or -1 and ``i`` is kept.
    """
    if not len(sets):
        return np.zeros(0, np.int64), np.zeros(0)
    buckets, total = _bucket_ids(bands)
    return _greedy(sets.flat, sets.offsets, buckets, total, float(threshold))


@njit(cache=True, nogil=True)
def _query(q_flat, q_offsets, q_bands, first, flat, offsets, keys, members, threshold):  # pragma: no cover
    """For query set s: the indexed sets sharing a band value with it at Jaccard >= threshold."""
    cap, n = 1024, 0
    out_q = np.empty(cap, np.int64)
    out_m = np.empty(cap, np.int64)
    out_s = np.empty(cap, np.float64)
    seen = np.full(offsets.shape[0] - 1, -1, np.int64)
    for s in range(q_bands.shape[0]):
        if q_offsets[s + 1] == q_offsets[s]:
            continue
        for k in range(q_bands.shape[1]):
            p = first[k] + np.searchsorted(keys[first[k]:first[k + 1]], q_bands[s, k])
            while p < first[k + 1] and keys[p] == q_bands[s, k]:
                j = members[p]
                p += 1
                if seen[j] == s:
                    continue
                seen[j] = s
                sim = _merge_jaccard(q_flat, q_offsets[s], q_offsets[s + 1], flat, offsets[j], offsets[j + 1])
                if sim >= threshold:
                    if n == cap:
                        cap *= 2
                        out_q = np.concatenate((out_q, np.empty(cap - n, np.int64)))
                        out_m = np.concatenate((out_m, np.empty(cap - n, np.int64)))
                        out_s = np.concatenate((out_s, np.empty(cap - n, np.float64)))
                    out_q[n], out_m[n], out_s[n] = s, j, sim
                    n += 1
    return out_q[:n].copy(), out_m[:n].copy(), out_s[:n].copy()


class BandIndex:
    """Sets of a batch, looked up by band value: the LSH index the seeds are checked against.

    ``bands`` are the sets' :func:`band_values`; the non-empty sets where ``indexed`` is true
    (all when it is None) are indexed, one sorted run of band values per band.
    """

    def __init__(self, sets: HashedSets, bands: np.ndarray, threshold: float, indexed: np.ndarray | None = None):
        self.sets, self.threshold = sets, float(threshold)
        keep = sets.sizes() > 0
        if indexed is not None:
            keep &= indexed
        full = np.flatnonzero(keep)
        nb, n = bands.shape[1], len(full)
        self.keys = np.empty(nb * n, np.int64)
        self.members = np.empty(nb * n, np.int64)
        for k in range(nb):  # one band at a time: no (bands x sets) temporary
            col = bands[full, k]
            order = np.argsort(col, kind="stable")
            self.keys[k * n: (k + 1) * n] = col[order]
            self.members[k * n: (k + 1) * n] = full[order]
        self.first = np.arange(nb + 1, dtype=np.int64) * n

    def matches(self, queries: HashedSets, bands: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(query, member, similarity)`` for every query and indexed set that share a band
        value and reach the threshold, by query then band then indexed order."""
        if not len(queries) or not len(self.keys):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return _query(queries.flat, queries.offsets, bands, self.first, self.sets.flat, self.sets.offsets,
                      self.keys, self.members, self.threshold)

"""Result checks of the benchmark guard that need no timing: walks as walks of their
graph, and a digest of the seeds a database stores."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path

import numpy as np

__all__ = ["DIGEST_COLUMNS", "walk_problems", "seed_digest", "content_diff"]

# the stored content of a seed that the ingest check compares (not rid, source or added_at:
# storage order, file name and clock are not content)
DIGEST_COLUMNS = ("id", "question", "answer", "options", "answer_letter", "discipline", "subject", "difficulty")


def walk_problems(g, walks, params, n_paths: int) -> list[str]:
    """What is wrong with ``walks`` as value walks of ``g`` (empty list: nothing)."""
    problems: list[str] = []
    if len(walks) != n_paths:
        problems.append(f"{len(walks):,} paths, asked for {n_paths:,}")
    lengths = walks.lengths
    if lengths.size == 0:
        return problems or ["no paths"]
    shortest = min(2, params.min_len)  # a start KP has a neighbour, so a path reaches 2 KPs at least
    if lengths.min() < shortest or lengths.max() > params.max_len:
        bad = int(((lengths < shortest) | (lengths > params.max_len)).sum())
        problems.append(f"{bad:,} paths outside lengths {shortest}-{params.max_len} (lengths {lengths.min()}-{lengths.max()})")
    nodes = walks.nodes.astype(np.int64)
    if nodes.size and (nodes.min() < 0 or nodes.max() >= g.n_nodes):
        return problems + ["KP indices outside the graph"]
    step = np.ones(nodes.size, dtype=bool)
    step[walks.ptr[:-1]] = False  # the first KP of each path is not a step
    a, b = nodes[np.flatnonzero(step) - 1], nodes[step]
    rows = np.repeat(np.arange(g.n_nodes, dtype=np.int64), np.diff(g.indptr))
    edges = np.sort(rows * g.n_nodes + g.indices.astype(np.int64))
    keys = a * g.n_nodes + b
    pos = np.minimum(np.searchsorted(edges, keys), max(edges.size - 1, 0))
    off = int((edges[pos] != keys).sum()) if edges.size else int(keys.size)
    if off:
        problems.append(f"{off:,} of {keys.size:,} steps are not edges of the graph")
    path_of = np.repeat(np.arange(len(walks), dtype=np.int64), lengths)
    pairs = np.unique(path_of * g.n_nodes + nodes)
    if pairs.size != nodes.size:
        problems.append(f"{nodes.size - pairs.size:,} repeated KPs within paths")
    if not np.array_equal(np.asarray(walks.discipline, dtype=np.int64), g.discipline[nodes[walks.ptr[:-1]]].astype(np.int64)):
        problems.append("path disciplines are not their start KPs' disciplines")
    if not np.array_equal(walks.visits, np.bincount(nodes, minlength=g.n_nodes)):
        problems.append("visit counts do not match the paths")
    return problems


def seed_digest(db: str | Path) -> tuple[int, str]:
    """(seed count, sha256 of every seed's :data:`DIGEST_COLUMNS`, ordered by id) of a database file."""
    h = hashlib.sha256()
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        n = 0
        for row in conn.execute(f"SELECT {', '.join(DIGEST_COLUMNS)} FROM seeds ORDER BY id"):
            h.update(repr(row).encode("utf-8"))
            h.update(b"\n")
            n += 1
    return n, h.hexdigest()


def content_diff(db: str | Path, reference: str | Path, limit: int = 3) -> str:
    """Which seeds differ between two databases (for the failure line)."""
    query = f"SELECT {', '.join(DIGEST_COLUMNS)} FROM seeds"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as a, \
            contextlib.closing(sqlite3.connect(f"file:{reference}?mode=ro", uri=True)) as b:
        got = {r[0]: r for r in a.execute(query)}
        want = {r[0]: r for r in b.execute(query)}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    parts = []
    for label, ids in (("missing", missing), ("not in the generator's data", extra), ("changed", changed)):
        if ids:
            parts.append(f"{len(ids):,} {label} (e.g. {', '.join(ids[:limit])})")
    if changed:
        k = changed[0]
        cols = [c for c, x, y in zip(DIGEST_COLUMNS, got[k], want[k]) if x != y]
        parts.append(f"seed {k} differs in {', '.join(cols)}")
    return "; ".join(parts) or "same rows"

"""Curating KPs: merge, rename, the KP table, merge suggestions."""

from __future__ import annotations

from typing import Sequence

from ..errors import InputError, NotFoundError
from ..store import Store
from .names import normalize_kp

__all__ = ["merge_kps", "rename_kp", "kp_table", "suggest_merges", "MERGE_SUGGESTIONS"]

MERGE_SUGGESTIONS = 200  # how many pairs the Knowledge points page offers


def _key(name: str, what: str) -> str:
    key = normalize_kp(name)
    if not key:
        raise InputError(f"the {what} KP name is empty")
    return key


def merge_kps(store: Store, sources: Sequence[str], target: str) -> int:
    """Fold ``sources`` into ``target`` (created if new, shown as written); returns links moved.

    Each source name becomes an alias of the target, so re-extraction keeps the merge.
    Paths of saved runs are re-pointed too, so the coverage ledger stays consistent.
    """
    from .extract import label_of

    target_key = _key(target, "target")
    label = label_of(target)
    if store.kps.id_of(target_key) is not None and label.lower() == target_key:
        label = None  # the curator named an existing KP by its key: keep its label
    return store.kps.merge([_key(s, "source") for s in sources], target_key, label)


def rename_kp(store: Store, old: str, new: str) -> str:
    """Rename a KP to ``new`` as written (the curator's spelling is its label); renaming
    onto another KP's name merges the two. Returns the label the KP now shows."""
    from .extract import label_of

    old_key, new_key = _key(old, "old"), _key(new, "new")
    label = label_of(new)
    if store.kps.id_of(old_key) is None:
        raise NotFoundError(f"no knowledge point named '{old}'")
    if new_key != old_key and store.kps.id_of(new_key) is not None:
        store.kps.merge([old_key], new_key, label)
    else:
        store.kps.rename(old_key, new_key, label)
    return label


def kp_table(store: Store, *, limit: int | None = None, search: str | None = None) -> list[dict]:
    """KPs with frequency, dominant discipline and mean difficulty, most frequent first."""
    return store.kps.table(limit=limit, search=search.strip() if search else None)


def suggest_merges(store: Store, limit: int = 50) -> list[tuple[str, str]]:
    """Pairs of KP keys that differ only by hyphens, spaces, apostrophes or word order.

    One pass over every KP name in use (7 s at ten million seeds' 2.35M KPs), so the
    result is kept per data version beside the file (:meth:`Store.kept`).
    """
    return list(store.kept(f"merge_suggestions:{int(limit)}", lambda: _suggest_merges(store, limit)))


def _suggest_merges(store: Store, limit: int) -> list[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for name in store.kps.keys_in_use():
        key = " ".join(sorted(name.replace("-", " ").replace("'", "").split()))
        groups.setdefault(key, []).append(name)
    pairs = [(names[i], names[0]) for names in groups.values() if len(names) > 1 for i in range(1, len(names))]
    return sorted(pairs)[:limit]

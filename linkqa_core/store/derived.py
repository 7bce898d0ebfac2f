"""Results derived from the data, kept beside the database under the data version they came from.

Building the KP graph reads every seed–KP link (3.5 s at a million seeds, 43 CPU-s at ten
million) and the seed summary scans every seed (21 s at ten million); every new process
paid that again, so a studio's first visits took longer than a curator waits. Such
results are kept in a folder beside the file, ``<database>-derived/``, one sub-folder per
set and data version (:meth:`~linkqa_core.store.Store.version`): ``<name>.v<version>/``
holding a JSON header and one ``.npy`` file per array. The header also names the file
(:meth:`~linkqa_core.store.Store.file_id`, a random number in ``meta``), so a new database
made at the same path, whose version counter starts again, never reads the old one's
results. A reader that sees the version it reads loads them, mapping the arrays copy-on-write (``np.load(mmap_mode="c")``: a 3 GB
graph opens in milliseconds, its pages are read as they are touched, and a caller may
still write to its arrays without touching the files); any other version means the data
moved on and the caller computes again.

Nothing here is ever the only copy of anything: the folder can be deleted at any time,
and a database copied without it only costs the first reader a computation. A set is
written into a temporary folder and renamed into place, so a reader never sees half of
one, and the version is part of its name, so a set is never changed in place. Arrays are
loaded with ``allow_pickle=False`` and headers are JSON: a folder that came with someone
else's database cannot make us run code. Writing is best-effort: a read-only disk, a full
one or a foreign file in the way is logged, not raised.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    from .database import Store

__all__ = ["DerivedStore"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_:.-]+$")
_HEADER = "header.json"


class DerivedStore:
    """``store.derived``: the ``<database>-derived`` folder (see the module's docstring)."""

    def __init__(self, store: "Store"):
        self.store = store
        self.folder = None if store.memory else Path(store.path + "-derived")

    # -- sets of arrays ------------------------------------------------------------------

    def save(self, name: str, version: int, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bool:
        """File ``arrays`` and the JSON-able ``header`` as set ``name`` of data version ``version``.

        False when nothing was kept (an in-memory database, or the disk refused).
        """
        if self.folder is None:
            return False
        final = self._dir(name, version)
        tmp = None
        try:
            self.folder.mkdir(exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{_safe(name)}.", dir=self.folder))
            layout = {}
            for i, (key, arr) in enumerate(arrays.items()):
                np.save(tmp / f"{i}.npy", np.ascontiguousarray(arr), allow_pickle=False)
                layout[key] = f"{i}.npy"
            (tmp / _HEADER).write_text(json.dumps({"name": name, "file": self.store.file_id(), "version": int(version),
                                                   "arrays": layout, "header": dict(header)}), encoding="utf-8")
            if final.exists():  # a damaged copy, or another process's of the same data: replaced
                old = Path(tempfile.mkdtemp(prefix=f".{_safe(name)}.old.", dir=self.folder))
                os.replace(final, old / "set")
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, final)
        except (OSError, TypeError, ValueError) as err:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            log.warning("%s was not kept beside %s: %s", name, self.store.path, err)
            return False
        self._drop_others(name, keep=final)
        return True

    def load(self, name: str, version: int) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """``(header, arrays)`` of set ``name`` if it was filed at ``version``, else None.

        The arrays are copy-on-write maps of the files (writeable, private to this process).
        """
        if self.folder is None:
            return None
        where = self._dir(name, version)
        try:
            head = json.loads((where / _HEADER).read_text(encoding="utf-8"))
            if (head.get("name") != name or head.get("version") != int(version)
                    or head.get("file") != self.store.file_id()):
                return None  # another set, or another database that was made at this path
            arrays = {}
            for key, file in head["arrays"].items():
                if Path(file).name != file:
                    return None
                arrays[key] = np.load(where / file, mmap_mode="c", allow_pickle=False)
            return head["header"], arrays
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def version(self, name: str) -> int | None:
        """The newest data version set ``name`` is kept at, or None."""
        versions = [v for v, _ in self._kept(name)]
        return max(versions) if versions else None

    # -- values made of dicts, lists, tuples, scalars and arrays --------------------------

    def save_value(self, name: str, version: int, value: Any) -> bool:
        """File a value made of dicts (string keys), lists, tuples, scalars and numpy arrays.

        Arrays become the set's arrays, the rest its JSON header, tagged so that
        :meth:`load_value` gives tuples back as tuples and read-only arrays as read-only.
        No pickle (see the module's docstring). False when the value holds anything else.
        """
        arrays: dict[str, np.ndarray] = {}
        try:
            header = {"value": _encode(value, arrays)}
        except TypeError as err:
            log.warning("%s was not kept: %s", name, err)
            return False
        return self.save(name, version, header, arrays)

    def load_value(self, name: str, version: int) -> tuple[bool, Any]:
        """``(True, value)`` filed by :meth:`save_value` under ``version``, else ``(False, None)``."""
        found = self.load(name, version)
        if found is None or "value" not in found[0]:
            return False, None
        try:
            return True, _decode(found[0]["value"], found[1])
        except (KeyError, TypeError, ValueError):
            return False, None

    # -- the folder ------------------------------------------------------------------------

    def _dir(self, name: str, version: int) -> Path:
        assert self.folder is not None
        return self.folder / f"{_safe(name)}.v{int(version)}"

    def _kept(self, name: str) -> list[tuple[int, Path]]:
        if self.folder is None or not self.folder.is_dir():
            return []
        prefix = f"{_safe(name)}.v"
        out = []
        for p in self.folder.iterdir():
            if p.name.startswith(prefix) and p.name[len(prefix):].isdigit():
                out.append((int(p.name[len(prefix):]), p))
        return out

    def _drop_others(self, name: str, keep: Path) -> None:
        for _, path in self._kept(name):
            if path != keep:
                shutil.rmtree(path, ignore_errors=True)


def _safe(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"a derived set's name is letters, digits and _:.- only, got {name!r}")
    return name.replace(":", "-")


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        key = str(len(arrays))
        arrays[key] = value
        return {"array": key, "writeable": bool(value.flags.writeable)}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, arrays) for k, v in value.items()}}
    raise TypeError(f"cannot keep a {type(value).__name__}")


def _decode(value: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "array" in value:
        arr = arrays[value["array"]]
        arr.flags.writeable = bool(value["writeable"])
        return arr
    if "tuple" in value:
        return tuple(_decode(v, arrays) for v in value["tuple"])
    return {k: _decode(v, arrays) for k, v in value["dict"].items()}

"""The storage folder of a run at scale: Parquet shards, the manifest, the shared cache.

One folder (a shared mount or an object-store prefix, through :mod:`pyarrow.fs`) per
database run, laid out so that every stage can be started again::

    <storage>/run-<id>/
        manifest.json                  what ran, counts, gate statistics, progress (progress())
        bundles/discipline=<d>/*.parquet   paths with their seeds, written by the walks' machine
        seeds/*.parquet                seed questions for the seed-duplicate gate
        results/<stage>/*.parquet      one file per finished batch of an actor (rows keyed by uid)
        gates/*.parquet                verdicts, keyed by uid
    <storage>/cache/<ab>/<key>.json    the request cache, shared by every run and node

Every write is atomic: a local file is written beside its name and renamed; an object
store's put is atomic by itself. A reader therefore never sees half a shard, and a crash
leaves at most a stray ``.tmp`` file that readers skip.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import InputError

__all__ = ["Storage", "open_storage"]


@dataclass(frozen=True)
class Storage:
    """A file system and a base path in it. Picklable, so actors receive it as is."""

    uri: str

    @cached_property
    def _opened(self) -> tuple[pafs.FileSystem, str]:
        return _filesystem(self.uri)

    @property
    def fs(self) -> pafs.FileSystem:
        return self._opened[0]

    @property
    def base(self) -> str:
        return self._opened[1]

    @cached_property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @cached_property
    def _made(self) -> set[str]:
        return set()

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri}  # file-system handles are opened again where the storage is used

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "uri", state["uri"])

    def path(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *[p.strip("/") for p in parts if p]])

    def child(self, *parts: str) -> "Storage":
        """The storage of a sub-folder (for a run: ``storage.child(f"run-{id}")``)."""
        if "://" in self.uri:
            return Storage(self.uri.rstrip("/") + "/" + "/".join(p.strip("/") for p in parts))
        return Storage(os.path.join(self.uri, *parts))

    # -- files -----------------------------------------------------------------------

    def write_bytes(self, rel: str, data: bytes) -> None:
        target = self.path(rel)
        parent = target.rsplit("/", 1)[0]
        if self.local:  # plain system calls: the shared cache writes one file per answer
            if parent not in self._made:
                os.makedirs(parent, exist_ok=True)
                self._made.add(parent)
            tmp = f"{target}.{uuid.uuid4().hex[:8]}.tmp"
            with open(tmp, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
            return
        if parent not in self._made:
            self.fs.create_dir(parent, recursive=True)
            self._made.add(parent)
        with self.fs.open_output_stream(target) as out:
            out.write(data)

    def read_bytes(self, rel: str) -> bytes | None:
        path = self.path(rel)
        try:
            if self.local:
                with open(path, "rb") as fh:
                    return fh.read()
            with self.fs.open_input_stream(path) as src:
                return src.read()
        except (FileNotFoundError, IsADirectoryError, OSError):
            return None

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def write_json(self, rel: str, value: Any) -> None:
        self.write_bytes(rel, json.dumps(value, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8"))

    def read_json(self, rel: str) -> Any:
        data = self.read_bytes(rel)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    def write_table(self, rel: str, table: pa.Table) -> None:
        """One Parquet shard, written whole or not at all."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        self.write_bytes(rel, sink.getvalue().to_pybytes())

    def files(self, rel: str, suffix: str = ".parquet") -> list[str]:
        """Files under ``rel`` (recursively) ending in ``suffix``, sorted; temporary files left out."""
        selector = pafs.FileSelector(self.path(rel), recursive=True, allow_not_found=True)
        out = [f.path for f in self.fs.get_file_info(selector)
               if f.type == pafs.FileType.File and f.path.endswith(suffix) and not f.path.endswith(".tmp")]
        return sorted(out)

    def read_tables(self, rel: str, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Every shard under ``rel``, one table at a time (a shard that cannot be read is an error naming it)."""
        fs = self.fs
        for f in self.files(rel):
            try:
                yield pq.read_table(f, columns=columns, filesystem=fs)
            except (pa.ArrowInvalid, OSError) as err:
                raise InputError(f"{f}: not a readable Parquet shard ({err})") from None

    def uri_of(self, rel: str) -> str:
        """The URI Ray Data reads ``rel`` from."""
        if "://" in self.uri:
            return self.uri.rstrip("/") + "/" + rel.strip("/")
        return os.path.abspath(os.path.join(self.uri, rel))


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in uri and not uri.startswith("file://"):
        try:
            return pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"storage {uri.split('?')[0]!r} cannot be opened ({first})") from None  # one line: hdfs lists every libjvm path tried
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def open_storage(uri: str) -> Storage:
    """A :class:`Storage`, checked to be writable (one clear line if it is not)."""
    if not str(uri).strip():
        raise InputError("no storage given: a shared folder or an object-store URI")
    storage = Storage(str(uri))
    try:
        storage.fs.create_dir(storage.base, recursive=True)
        storage.write_bytes(".linkqa-storage", b"linkqa scale storage\n")
    except OSError as err:
        raise InputError(f"storage {uri.split('?')[0]!r} is not writable ({err})") from None
    return storage

"""Where seed bytes come from: a path, uploaded bytes or a file object, maybe gzipped.

A :class:`Source` knows its display name (the one every message names), whether it is
gzipped, and how to open it again from the start as a byte stream: readers stream, so a
500 MB file is never held whole. UTF-16 text (with a byte order mark) is transcoded to
UTF-8 on the fly, so every text reader sees UTF-8 bytes.

Whole-file checks live here too: :func:`binary_offset` tells a binary file (refused with
one message) from a text file with a stray NUL byte (one bad row).
"""

from __future__ import annotations

import codecs
import gzip
import io
from pathlib import Path
from typing import BinaryIO, Union

from ..errors import InputError

__all__ = ["Source", "SourceLike", "binary_offset", "BOM", "HEAD"]

SourceLike = Union[str, Path, bytes, bytearray, memoryview, BinaryIO]

BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
HEAD = 1 << 16  # bytes looked at to sniff the format and to tell text from binary
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _reads_as_utf16(body: bytes) -> bool:
    """Whether bytes after a UTF-16 byte order mark are UTF-16 text.

    Why ask: the two bytes can also be a stray first line of a UTF-8 file, and reading that
    file as UTF-16 would lose every good row. JSON, JSON lines and CSV always hold ASCII
    punctuation and line ends, which are NUL-padded in UTF-16; a body without a NUL byte
    that is valid UTF-8 is UTF-8.
    """
    if b"\x00" in body:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(body, final=False)
    except UnicodeDecodeError:
        return True
    return False
# Bytes that do not occur in text (tab, newlines, form feed and escape do), NUL included.
_CONTROL = frozenset(range(32)) - {9, 10, 11, 12, 13, 27}
# A head with more than 1 in 20 such bytes is binary (a picture, an archive, a database);
# fewer is text with a few damaged rows, and those rows are reported one by one.
_BINARY_SHARE = 20
_BINARY_WINDOW = 4096

EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonlines": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def binary_offset(head: bytes) -> int | None:
    """Where a supposed text file shows binary content, or None when it is text.

    Binary means many control bytes in the first 4 KB; the offset is the first NUL byte
    (else the first control byte). One NUL in a text file is not binary: it is a bad row.
    """
    window = head[:_BINARY_WINDOW]
    controls = [i for i, b in enumerate(window) if b in _CONTROL]
    if not controls or len(controls) * _BINARY_SHARE <= len(window):
        return None
    nul = window.find(b"\x00")
    return nul if nul >= 0 else controls[0]


class Source:
    """One source (path, bytes or file object) with its display name, opened as bytes."""

    def __init__(self, source: SourceLike, filename: str | None):
        self.path: Path | None = None
        self.data: bytes | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.data = bytes(source)
        elif isinstance(source, (str, Path)):
            self.path = Path(source)
        elif hasattr(source, "getvalue") or hasattr(source, "read"):
            raw = source.getvalue() if hasattr(source, "getvalue") else source.read()
            self.data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
            filename = filename or getattr(source, "name", None)
        else:
            raise InputError(f"cannot read seeds from a {type(source).__name__}; give a path or bytes")
        label = filename or (str(self.path) if self.path is not None else "upload")
        self.name = Path(label).name or label
        self.hint = (filename or (self.path.name if self.path is not None else "")).lower()
        if self.path is not None:
            if not self.path.exists():
                raise InputError(f"{self.path}: no such file")
            if self.path.is_dir():
                raise InputError(f"{self.path} is a directory, not a seed file")
        self.gzipped = False
        try:
            self.gzipped = self._raw_head(2) == GZIP_MAGIC
        except OSError as err:
            raise self.unreadable(err) from err
        self.utf16 = False  # set by sniff(): the text is UTF-16 and is transcoded when read

    def _raw_head(self, n: int) -> bytes:
        if self.data is not None:
            return self.data[:n]
        assert self.path is not None
        with open(self.path, "rb") as fh:
            return fh.read(n)

    def unreadable(self, err: Exception) -> InputError:
        """The error for an I/O failure: a damaged gzip stream or an unreadable file."""
        if isinstance(err, UnicodeDecodeError):
            return InputError(f"{self.name} is not valid UTF-16 text ({err.reason} at byte {err.start})")
        if self.gzipped:
            return InputError(f"{self.name} is not a readable gzip file ({err})")
        return InputError(f"{self.name} cannot be read ({getattr(err, 'strerror', None) or err})")

    def open_raw(self) -> BinaryIO:
        """The stored bytes from the start (gunzipped), as they are."""
        raw: BinaryIO = open(self.path, "rb") if self.path is not None else io.BytesIO(self.data or b"")
        return gzip.GzipFile(fileobj=raw) if self.gzipped else raw  # type: ignore[return-value]

    def open(self) -> BinaryIO:
        """The content from the start as a byte stream: UTF-16 text comes out as UTF-8."""
        raw = self.open_raw()
        if not self.utf16:
            return raw
        return io.BufferedReader(_Transcoded(raw), 1 << 20)  # type: ignore[return-value]

    def head(self, n: int = HEAD) -> bytes:
        try:
            with self.open() as fh:
                return fh.read(n)
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise self.unreadable(err) from err

    def sniff(self) -> bytes:
        """The head of the content, noting UTF-16 text so that :meth:`open` transcodes it."""
        raw = self.head()
        if raw.startswith(_UTF16_BOMS) and _reads_as_utf16(raw[2:]):
            self.utf16 = True
            return self.head()
        return raw

    def read_all(self) -> bytes:
        try:
            with self.open() as fh:
                return fh.read()
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise self.unreadable(err) from err

    def size_on_disk(self) -> int | None:
        try:
            return self.path.stat().st_size if self.path is not None else len(self.data or b"")
        except OSError:
            return None

    def extension_format(self) -> str | None:
        hint = self.hint[:-3] if self.hint.endswith(".gz") else self.hint
        return EXTENSIONS.get(Path(hint).suffix)


class _Transcoded(io.RawIOBase):
    """A UTF-16 byte stream read as UTF-8 bytes, a megabyte at a time."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.decoder = codecs.getincrementaldecoder("utf-16")("strict")
        self.pending = b""
        self.done = False
        self.offset = 0  # bytes of the file decoded so far, for an error's position

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        while not self.pending and not self.done:
            chunk = self.raw.read(1 << 20)
            self.done = not chunk
            try:
                self.pending = self.decoder.decode(chunk, final=self.done).encode("utf-8")
            except UnicodeDecodeError as err:  # where in the file, not in this chunk
                raise UnicodeDecodeError(err.encoding, err.object, err.start + self.offset, err.end + self.offset,
                                         err.reason) from None
            self.offset += len(chunk)
        n = min(len(buf), len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()

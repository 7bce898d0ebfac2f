"""JSON lines: one object a line, streamed; every line that is not one is a bad row.

Lines are decoded one by one, so a line in another encoding, a NUL byte, bad JSON, a
lone surrogate or absurd nesting is one bad row with its line number, wherever it is.
The columnar path (:mod:`.columnar`) reads blocks of whole lines as one byte string
with the positions of their line ends (:meth:`JsonlReader.blocks`), for Arrow.
"""

from __future__ import annotations

import itertools
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import numpy as np

from .formats import Reader
from .sources import BOM, Source
from .text import Problem, nul_reason, parse_json, utf8_reason

__all__ = ["JsonlReader", "jsonl_records", "CHUNK_BYTES"]

CHUNK_BYTES = 16 << 20  # a chunk of lines ends early past this size, so long rows stay in bounded memory
READ_BYTES = 8 << 20  # what JsonlReader.blocks reads at a time


def jsonl_records(lines: Iterable[bytes], before: int = 0) -> Iterator[tuple[int, Any]]:
    """``(line number, object or bad-row reason)`` for each non-blank line; ``before`` is
    the number of lines ahead of ``lines`` in the file (a chunk's offset)."""
    lineno = before
    for raw in lines:
        lineno += 1
        if lineno == 1 and raw.startswith(BOM):
            raw = raw[3:]
        if b"\x00" in raw:
            yield lineno, nul_reason(raw)
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield lineno, utf8_reason(raw, err)
            continue
        if not text or text.isspace():
            continue
        rec = parse_json(text)
        if rec.__class__ is dict:
            yield lineno, rec
        elif isinstance(rec, Problem):
            yield lineno, str(rec)
        else:
            yield lineno, "not an object"


class JsonlReader(Reader):
    def __init__(self, src: Source):
        super().__init__(src)
        self._learn()

    def _open(self) -> BinaryIO:
        return self.src.open()

    def records(self) -> Iterator[tuple[int, Any]]:
        try:
            with self._open() as fh:
                yield from jsonl_records(fh)
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise self.src.unreadable(err) from err

    def chunks(self, size: int) -> Iterator[tuple[int, list[bytes]]]:
        """``(lines before, next lines)`` over the whole file: ``size`` lines a chunk, or
        fewer when they pass :data:`CHUNK_BYTES` (long rows)."""
        try:
            with self._open() as fh:
                before = 0
                while True:
                    lines: list[bytes] = []
                    total = 0
                    for line in itertools.islice(fh, size):
                        lines.append(line)
                        total += len(line)
                        if total >= CHUNK_BYTES:
                            break
                    if not lines:
                        return
                    yield before, lines
                    before += len(lines)
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise self.src.unreadable(err) from err

    def blocks(self, size: int, keep: Callable[[int], bool] | None = None) -> Iterator[tuple[int, bytes, np.ndarray]]:
        """``(lines before, block, ends)`` over the whole file, cut where :meth:`chunks`
        cuts; ``ends[i]`` is the offset of line i's ``\\n`` in the block (the block's
        length for a last line without one). ``keep(k)`` False skips the k-th block
        (a parsing child skims the blocks of the others: found, counted, not copied)."""
        try:
            with self._open() as fh:
                before = index = 0
                buf, pos = b"", 0  # bytes read; the next block starts at pos
                ends = np.zeros(0, dtype=np.int64)  # offsets in buf of the newlines after pos
                eof = False
                while True:
                    # the next cut: size lines, or the first line that ends past CHUNK_BYTES
                    while True:
                        past = int(np.searchsorted(ends, pos + CHUNK_BYTES - 1))
                        want = min(size, past + 1)
                        if len(ends) >= want or eof:
                            break
                        piece = fh.read(READ_BYTES)
                        if not piece:
                            eof = True
                            continue
                        # newlines found once, with numpy; buf keeps only what is not yet cut
                        found = np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == 10)
                        ends = np.concatenate([ends - pos, found + (len(buf) - pos)])
                        buf, pos = buf[pos:] + piece, 0
                    if len(ends):
                        take = ends[:want]
                        cut = int(take[-1]) + 1
                        block = buf[pos:cut]
                        line_ends = take - pos
                        ends = ends[want:]
                    elif pos < len(buf):  # the end of the file, its last line without a newline
                        block = buf[pos:]
                        cut = len(buf)
                        line_ends = np.asarray([len(block)], dtype=np.int64)
                    else:
                        return
                    if (len(ends) == 0 and eof and cut < len(buf) and len(line_ends) < size
                            and line_ends[-1] + 1 < CHUNK_BYTES):
                        # the last lines and the one after them, without a newline, are one block
                        block = buf[pos:]
                        line_ends = np.append(line_ends, len(block))
                        cut = len(buf)
                    pos = cut
                    if keep is None or keep(index):
                        yield before, block, line_ends
                    before += len(line_ends)
                    index += 1
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise self.src.unreadable(err) from err

    def estimate(self) -> int:
        count = 0
        try:
            with self._open() as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    count += block.count(b"\n")
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise self.src.unreadable(err) from err
        return count

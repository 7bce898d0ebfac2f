"""Parse a large JSON-lines seed file in child processes while the parent writes SQLite.

Ingest is two jobs per row: parsing and checking it (Python, about two thirds of the
time) and inserting it (SQLite). In one process they take turns on one core. Here
``parts`` children share the parsing: the file is cut into chunks of ``batch`` lines,
child ``k`` parses chunks ``k, k + parts, ...`` (it skims the others to keep line
numbers), and the parent takes the chunks' rows from the children in turn, so rows,
bad rows and their line numbers come out in file order, exactly as a serial parse.
The children are plain ``python -m linkqa_core.ingest.workers`` processes (not
``multiprocessing``), so this works the same under the CLI, pytest and Streamlit,
whose ``__main__`` is not ours to re-import.

Protocol: the parent writes one pickled spec to a child's stdin; the child writes
pickled messages to its stdout (the real stdout is moved to stderr first, so a stray
print cannot corrupt the stream): ``("rows", rows, bad_rows, rows_read)`` per chunk
it owns (``rows``: lists of seed rows or ``PackedRows``, in file order), then ``("done",)``, or ``("input_error", message)`` / ``("error", traceback)``.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import traceback
from typing import Any, BinaryIO, Iterator

from ..errors import InputError, LinkQAError
from ..records import BadRow

__all__ = ["WorkerFailed", "worker_batches"]

_PROTOCOL = 5
# How a parsing child is started (a list, as for subprocess).
COMMAND = [sys.executable, "-m", "linkqa_core.ingest.workers"]
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class WorkerFailed(LinkQAError):
    """The parsing child stopped without finishing; nothing of the file is stored."""


def worker_batches(spec: dict[str, Any], parts: int) -> Iterator[tuple[list[tuple], list[BadRow], int]]:
    """Run ``parts`` children on ``spec``; yield ``(rows, bad_rows, rows_read)`` per chunk, in file order.

    Closing the iterator early (the parent's transaction failed) kills the children.
    """
    children = [_Child(dict(spec, part=k, parts=parts)) for k in range(parts)]
    finished = False
    try:
        turn = 0
        while True:
            msg = children[turn % parts].next()
            if msg[0] == "done":
                break
            yield msg[1], msg[2], msg[3]
            turn += 1
        # the chunk after the last was empty, so every other child must be done too
        for k in range(1, parts):
            if children[(turn + k) % parts].next()[0] != "done":
                raise WorkerFailed("the ingest parsers disagree about where the file ends; nothing was stored")
        finished = True
    finally:
        for child in children:
            child.close(kill=not finished)


class _Child:
    """One parsing process, its message stream and its stderr (kept in a file, so a
    chatty child can never block on a full pipe)."""

    def __init__(self, spec: dict[str, Any]):
        # the package's own directory first on the child's path: the parent may have
        # found linkqa_core through its working directory or a test runner's path
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, env=env)
        assert self.proc.stdin is not None
        pickle.dump(spec, self.proc.stdin, _PROTOCOL)
        self.proc.stdin.close()

    def next(self) -> tuple:
        """The child's next message; raises for its errors and when it died."""
        assert self.proc.stdout is not None
        try:
            msg = pickle.load(self.proc.stdout)
        except EOFError:
            code = self.proc.wait()
            raise WorkerFailed(f"the ingest parser stopped (exit code {code}: {self._last_error()}); nothing was stored") from None
        if msg[0] == "input_error":
            raise InputError(msg[1])
        if msg[0] == "error":
            err = WorkerFailed(f"the ingest parser failed ({_last_line(msg[1])}); nothing was stored")
            err.detail = msg[1]  # type: ignore[attr-defined]
            raise err
        return msg

    def _last_error(self) -> str:
        self.err.seek(0)
        return _last_line(self.err.read().decode("utf-8", "replace")) or "no message"

    def close(self, kill: bool) -> None:
        if kill and self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc.wait()
        self.err.close()


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _serve(spec: dict[str, Any], out: BinaryIO) -> None:
    from .columnar import Columnar
    from .load import _Load
    from .read_jsonl import jsonl_records

    load = _Load(
        spec["path"],
        filename=spec["filename"],
        format=spec["format"],
        mapping=spec["mapping"],
        discipline_map=spec["discipline_map"],
        source_name=spec["source_name"],
    )
    part, parts, added_at = spec["part"], spec["parts"], spec["added_at"]
    columnar = Columnar.for_load(load, added_at, threads=False)
    reader = load.reader
    if columnar is not None:  # this child's blocks only; the others' are skimmed
        for before, block, ends in reader.blocks(spec["batch"], lambda k: k % parts == part):  # type: ignore
            segments, bad, read = columnar.segments(block, ends, before)
            pickle.dump(("rows", segments, bad, read), out, _PROTOCOL)
            out.flush()
        return
    for index, (before, lines) in enumerate(reader.chunks(spec["batch"])):  # type: ignore[attr-defined]
        if index % parts != part:
            continue
        bad_before, read_before = len(load.bad_rows), load.rows_read
        rows = list(load.rows(added_at, jsonl_records(lines, before)))
        bad, read = load.bad_rows[bad_before:], load.rows_read - read_before
        pickle.dump(("rows", [rows], bad, read), out, _PROTOCOL)
        out.flush()


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=1 << 20)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        spec = pickle.load(sys.stdin.buffer)
        _serve(spec, out)
        msg: tuple = ("done",)
    except InputError as err:
        msg = ("input_error", str(err))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        msg = ("error", traceback.format_exc())
    pickle.dump(msg, out, _PROTOCOL)
    out.flush()


if __name__ == "__main__":
    main()

"""Seeds in: load QA items from JSONL, JSON, CSV or Parquet, and store them.

A curator's file is rarely clean. Its columns are mapped onto seed fields (guessed from
common names, corrected with ``mapping=``; see :mod:`.mapping`) and every row that can be
used is kept. Each row that cannot is a :class:`BadRow` with its line (JSONL, CSV) or
record number (JSON, Parquet) and a one-line reason, wherever it is in the file: bad
JSON, a NUL byte, bytes that are not UTF-8, a lone surrogate, nesting a thousand levels
deep, a missing question. A problem with the whole file (empty, binary, not the format
it claims, no question column, no usable row) raises one :class:`InputError` and changes
nothing in the database.

Every format streams, so :func:`ingest` reads a file of any size in bounded memory.
JSON-lines files are parsed column-wise with Arrow (:mod:`.columnar`) and stored a block
at a time by one ``INSERT ... SELECT`` (:mod:`linkqa_core.store.packed`); a large one is
parsed by threads (:mod:`.ahead`), or by child processes (:mod:`.workers`) when its
columns are not ones the columnar path takes, while this thread inserts. The stored rows
and the bad-row report are the same whichever path a row takes.

Ids are content hashes (:func:`seed_id`), so loading the same file twice adds nothing.

>>> result = load_seeds(sample_path())
>>> len(result.seeds), len(result.bad_rows), result.seeds[0].answer_letter
(1140, 0, 'C')
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterable, Iterator, Mapping

from ..errors import InputError
from ..records import BadRow, IngestReport, Seed
from ..taxonomy import match_discipline
from .ahead import ahead
from .formats import FORMATS, open_reader
from .read_jsonl import CHUNK_BYTES
from .mapping import FIELDS, ColumnMap, guess_mapping, resolve_plan
from .rows import Fields, make_builder, scalar_text, seed_id
from .sources import Source, SourceLike

if TYPE_CHECKING:
    from ..store import Store
    from .columnar import Columnar
    from ..store.packed import PackedRows

    Rows = list[tuple] | PackedRows

__all__ = [
    "FORMATS",
    "FIELDS",
    "LoadResult",
    "Progress",
    "SourceLike",
    "guess_mapping",
    "peek",
    "load_seeds",
    "ingest",
    "discipline_values",
    "seed_id",
    "sample_path",
]

Progress = Callable[[int, int, str], None]

# Rows handed to Store.add_rows at a time during ingest; JSON lines are read in chunks of
# this many lines (a parsing child's chunk, a block of the columnar path, whose Arrow
# start-up it amortises); also how often progress fires.
BATCH = 20000
# JSON-lines files at least this big (on disk; gzip counted 4x) are parsed while this
# thread writes SQLite: by threads (see ahead) when the columnar path takes the file,
# else by child processes (see workers). Below it, the thread's hand-offs (a third more
# CPU at 10k rows) or the children's start-up (~60 ms) are not worth it.
WORKER_MIN_BYTES = 8 << 20
# Parse threads of the columnar path: two keep both cores busy on a 2-core machine (one
# left the inserting thread idle half the time; three only added switching). Past two
# the single inserting thread is the limit.
PARSE_THREADS = 2
# Parsing children: with two, parsing keeps up with SQLite on a 2-core machine; past
# four the parent's inserts are the limit.
WORKER_PROCESSES = max(2, min(4, os.cpu_count() or 2))


@dataclass
class LoadResult:
    """What :func:`load_seeds` read: the usable seeds and every row it could not use.

    ``seeds`` keeps rows in file order, including repeats of the same item (the store
    drops those by id); ``mapping`` is the column mapping that was applied, so the app
    can show it and the curator can correct it; ``encoding`` says how text was decoded
    (``cp1252`` when a CSV or JSON file was not UTF-8).
    """

    seeds: list[Seed]
    bad_rows: list[BadRow]
    rows_read: int
    mapping: ColumnMap
    format: str
    name: str = ""
    encoding: str = "utf-8"


def sample_path() -> Path:
    """The bundled MMLU sample (1140 questions, 20 from each of 57 subjects)."""
    return Path(__file__).resolve().parent.parent / "data" / "mmlu_sample.jsonl"


class _Load:
    """One pass over a source: the prepared reader, the plan, and the running tallies."""

    def __init__(
        self,
        source: SourceLike,
        *,
        filename: str | None,
        format: str | None,
        mapping: Mapping[str, Any] | None,
        discipline_map: Mapping[str, str] | None,
        source_name: str | None,
        require: bool = True,
    ):
        self.src = Source(source, filename)
        self.filename = filename
        self.discipline_map = dict(discipline_map) if discipline_map else None
        self.format, self.reader = open_reader(self.src, format)
        name = self.src.name
        self.source_name = source_name or name
        columns = self.reader.columns
        self.plan = resolve_plan(columns, mapping, name, self.reader.sample)
        self.mapping = self.plan.mapping
        if columns and require:
            listing = ", ".join(map(str, columns))
            if "question" not in self.mapping:
                raise InputError(
                    f"{name}: no question column found among columns [{listing}]; map one with --map question=COLUMN"
                )
            if "answer" not in self.mapping:
                raise InputError(
                    f"{name}: no answer column found among columns [{listing}]; map one with --map answer=COLUMN"
                )
        self.build = make_builder(self.plan, self.source_name, discipline_map, sanitize=self.format == "parquet")
        self.bad_rows: list[BadRow] = []
        self.rows_read = 0

    def fields(self, records: Iterable[tuple[int, Any]] | None = None) -> Iterator[Fields]:
        """Seed fields of each usable row of ``records`` (default: the whole source),
        tallying rows read and bad rows."""
        build = self.build
        bad = self.bad_rows
        for line, rec in self.reader.records() if records is None else records:
            self.rows_read += 1
            if rec.__class__ is str:
                bad.append(BadRow(line, rec))
                continue
            out = build(rec)
            if out.__class__ is str:
                bad.append(BadRow(line, out))  # type: ignore[arg-type]
            else:
                yield out  # type: ignore[misc]

    def seeds(self) -> Iterator[Seed]:
        for i, q, a, o, letter, d, subject, diff, source, meta in self.fields():
            yield Seed(i, q, a, o, letter, d, subject, diff, False, source, meta)

    def rows(self, added_at: float, records: Iterable[tuple[int, Any]] | None = None) -> Iterator[tuple]:
        """Database rows (:func:`~linkqa_core.store.seed_row`) of ``records`` (default: the whole source)."""
        from ..store.seeds import seed_row

        for i, q, a, o, letter, d, subject, diff, source, meta in self.fields(records):
            yield seed_row(i, q, a, o, letter, d, subject, diff, False, source, meta, added_at)

    def columnar(self, added_at: float) -> Columnar | None:
        """The columnar path for this load, or None when it is not one for it."""
        from .columnar import Columnar

        # Arrow's own threads off: they cost more CPU than they save once a parse thread
        # runs beside the inserts (10k rows: 10.8 against 8.3 us a row)
        return Columnar.for_load(self, added_at, threads=False) if self.format == "jsonl" else None

    def big(self, min_bytes: int) -> bool:
        """The source has at least ``min_bytes`` (on disk; gzip counted 4x); False when
        its size is unknown."""
        size = self.src.size_on_disk()
        return size is not None and size * (4 if self.src.gzipped else 1) >= min_bytes

    def row_batches(self, added_at: float, *, threaded: bool = False) -> Generator[list[Rows], None, None]:
        """All rows, a batch of :data:`BATCH` lines at a time (JSON lines: through the
        columnar path); a batch is a list of runs of rows in file order, each a list of
        ``seed_row`` tuples or a :class:`~linkqa_core.store.packed.PackedRows`.
        ``threaded``: the columnar path parses in :data:`PARSE_THREADS` threads, ahead of
        the caller (:mod:`.ahead`); the tallies are still kept on the caller's thread."""
        columnar = self.columnar(added_at)
        if columnar is not None:
            blocks = self.reader.blocks(BATCH)  # type: ignore[attr-defined]
            parse = columnar.parse_block
            for parts, bad, read in ahead(parse, blocks, workers=PARSE_THREADS) if threaded else map(parse, blocks):
                self.bad_rows.extend(bad)
                self.rows_read += read
                yield parts
            return
        batch: list[tuple] = []
        size = 0
        for row in self.rows(added_at):
            batch.append(row)
            size += len(row[1]) + len(row[2]) + len(row[3] or "") + len(row[10] or "")
            if len(batch) >= BATCH or size >= CHUNK_BYTES:  # long rows: fewer a batch
                yield [batch]
                batch, size = [], 0
        if batch:
            yield [batch]

    def worker_spec(self, added_at: float, min_bytes: int) -> dict[str, Any] | None:
        """What the parsing children need to read this source as this load does, or None
        when the source is not one for children: not JSON lines, or smaller than
        ``min_bytes``. An upload (bytes) gets ``path`` None: :func:`_from_worker` writes
        it to a temporary file for them."""
        src = self.src
        if self.format != "jsonl" or src.utf16:
            return None  # another format, or UTF-16 text transcoded on the fly
        if not sys.executable:  # an embedded interpreter cannot start a child
            return None
        if not self.big(min_bytes):
            return None
        return {
            "path": str(src.path) if src.path is not None else None, "filename": self.filename or src.name,
            "format": "jsonl", "mapping": self.mapping, "discipline_map": self.discipline_map,
            "source_name": self.source_name, "added_at": added_at, "batch": BATCH,
        }

    def check_usable(self, n_seeds: int) -> None:
        """Raise when the file gave no seed at all: that is a wrong file, not bad rows."""
        if n_seeds:
            return
        name = self.src.name
        if not self.rows_read:
            raise InputError(f"{name} has no rows")
        first = self.bad_rows[0]
        raise InputError(
            f"{name}: none of the {self.rows_read} rows could be used;"
            f" first problem: {self.reader.unit} {first.line}: {first.reason}"
        )

    def result(self, seeds: list[Seed]) -> LoadResult:
        return LoadResult(
            seeds=seeds,
            bad_rows=self.bad_rows,
            rows_read=self.rows_read,
            mapping=self.mapping,
            format=self.format,
            name=self.src.name,
            encoding=self.reader.encoding,
        )


def peek(
    source: SourceLike, filename: str | None = None, format: str | None = None, n: int = 5
) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and first ``n`` rows of a source, so a curator can check the mapping.

    Raises the same whole-file errors as :func:`load_seeds`.
    """
    src = Source(source, filename)
    _, reader = open_reader(src, format)
    return list(reader.columns), reader.peek(n)


def discipline_values(
    source: SourceLike,
    *,
    filename: str | None = None,
    format: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    limit: int = 200,
) -> list[tuple[str, int, str | None]]:
    """The distinct discipline values of a source with their row counts and the built-in
    discipline each would become, most frequent first: ``(value, rows, proposed)``.

    Values come from the discipline column when one is mapped, else from the subject
    column (none: an empty list). ``proposed`` is :func:`~linkqa_core.taxonomy.match_discipline`'s
    answer, None when no built-in discipline fits: then a discipline cell is stored as
    written and a subject goes to ``Other``, unless the curator chooses. The Seeds page
    shows this as a table; the curator's choices go to ``ingest(discipline_map=...)``.
    Reads the whole file (rows that are not objects are skipped); at most ``limit`` values.
    """
    load = _Load(source, filename=filename, format=format, mapping=mapping, discipline_map=None,
                 source_name=None, require=False)
    column = load.mapping.get("discipline") or load.mapping.get("subject")
    if not isinstance(column, str):
        return []
    counts: Counter[str] = Counter()
    for _, rec in load.reader.records():
        if rec.__class__ is dict:
            value = scalar_text(rec.get(column))
            if value is not None:
                counts[value] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max(0, limit)]
    return [(value, n, match_discipline(value)) for value, n in ranked]


def load_seeds(
    source: SourceLike,
    *,
    filename: str | None = None,
    format: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    discipline_map: Mapping[str, str] | None = None,
    source_name: str | None = None,
) -> LoadResult:
    """Read seeds from a path or uploaded bytes without touching any database.

    ``filename`` names an upload (its extension hints the format); ``format`` forces one
    of :data:`FORMATS`; ``mapping`` maps fields onto columns over the guesses;
    ``discipline_map`` maps subject or discipline values onto disciplines (see
    :func:`discipline_values`); ``source_name`` is the ``source`` of seeds whose row has
    none (default: the file name).
    """
    load = _Load(
        source, filename=filename, format=format, mapping=mapping,
        discipline_map=discipline_map, source_name=source_name,
    )
    seeds = list(load.seeds())
    load.check_usable(len(seeds))
    return load.result(seeds)


def ingest(
    store: Store,
    source: SourceLike,
    *,
    filename: str | None = None,
    format: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    discipline_map: Mapping[str, str] | None = None,
    source_name: str | None = None,
    progress: Progress | None = None,
    parallel: bool | None = None,
) -> IngestReport:
    """Load a source into ``store`` as one transaction: all of its usable rows or nothing.

    Rows stream from the file into the store in batches of :data:`BATCH`, so a
    million-row file never sits in memory. ``progress(done, total, message)`` is called
    once a batch with rows read so far (``total`` is an estimate until the last call).
    ``parallel`` None (the default) parses a JSON-lines source (file or upload) of at
    least :data:`WORKER_MIN_BYTES` while this thread inserts: in threads when the
    columnar path takes its columns (:mod:`linkqa_core.ingest.ahead`; no rows to pickle),
    else in child processes (:mod:`linkqa_core.ingest.workers`). ``False`` parses on this
    thread; ``True`` uses the children for any JSON-lines source. Either way the stored
    rows and the bad-row report are the same. Takes the same arguments as :func:`load_seeds`.

    >>> from linkqa_core.store import Store
    >>> report = ingest(Store(":memory:"), sample_path())
    >>> report.added, report.duplicates  # one question is filed under two subjects
    (1139, 1)
    """
    load = _Load(
        source, filename=filename, format=format, mapping=mapping,
        discipline_map=discipline_map, source_name=source_name,
    )
    total = load.reader.estimate() if progress else 0
    name = load.src.name
    now = time.time()
    spec = None
    if parallel or (parallel is None and load.columnar(now) is None):
        spec = load.worker_spec(now, 0 if parallel else WORKER_MIN_BYTES)
    if spec is not None:
        batches = _from_worker(load, spec)
    else:  # a big file the columnar path takes: parsed by threads while this one inserts
        batches = load.row_batches(now, threaded=parallel is None and load.big(WORKER_MIN_BYTES))
    n_seeds = 0
    with store.lease(f"ingest:{os.getpid()}", f"ingest of {name}"), store.transaction(), store.seeds.bulk() as bulk:
        try:
            for parts in batches:
                for rows in parts:
                    if len(rows):
                        store.seeds.add_rows(rows)
                        n_seeds += len(rows)
                if progress:
                    done = load.rows_read
                    progress(done, max(total, done), f"{n_seeds:,} seeds read from {name}")
        finally:
            batches.close()  # stops the parsing children when an insert failed
        load.check_usable(n_seeds)
        if progress:  # what is left (repeats dropped, the id index built, the commit) takes seconds at a million rows
            progress(load.rows_read, load.rows_read, f"{n_seeds:,} seeds read from {name}; indexing and saving them")
    if progress:
        progress(load.rows_read, load.rows_read, f"{bulk.added:,} seeds added from {name}")
    return IngestReport(
        added=bulk.added,
        duplicates=bulk.duplicates,
        total_seeds=store.seeds.count(),
        bad_rows=load.bad_rows,
        rows_read=load.rows_read,
    )


def _from_worker(load: _Load, spec: dict[str, Any]) -> Generator[list[Rows], None, None]:
    """Row batches parsed by the children, keeping ``load``'s tallies as if parsed here."""
    from .workers import worker_batches

    spill = None
    if spec["path"] is None:  # an upload: the children read it from a temporary file
        spill = tempfile.NamedTemporaryFile(prefix="linkqa-upload-", suffix=".jsonl", delete=False)
        with spill:
            spill.write(load.src.data or b"")
        spec = dict(spec, path=spill.name)
    try:
        for parts, bad, rows_read in worker_batches(spec, WORKER_PROCESSES):
            load.bad_rows.extend(bad)
            load.rows_read += rows_read
            yield parts
    finally:
        if spill is not None:
            os.unlink(spill.name)

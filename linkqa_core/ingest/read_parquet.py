"""Parquet: record batches streamed with pyarrow; a record holding a NUL character is a bad row."""

from __future__ import annotations

from typing import Any, Iterator

from ..errors import InputError
from .formats import Reader
from .sources import Source
from .text import record_problem

__all__ = ["ParquetReader"]


class ParquetReader(Reader):
    unit = "record"

    def __init__(self, src: Source):
        super().__init__(src)
        import pyarrow as pa
        import pyarrow.parquet as pq

        target: Any = str(src.path) if src.path is not None and not src.gzipped else pa.BufferReader(src.read_all())
        try:
            self.file = pq.ParquetFile(target)
        except Exception as err:  # pyarrow raises ArrowInvalid, OSError and others
            raise InputError(f"{src.name} is not valid Parquet: {err}") from err
        self._learn()
        self.columns = list(self.file.schema_arrow.names)

    @property
    def encoding(self) -> str:
        return "binary"

    def records(self) -> Iterator[tuple[int, Any]]:
        n = 0
        try:
            for batch in self.file.iter_batches(batch_size=4096):
                for rec in batch.to_pylist():
                    n += 1
                    problem = record_problem(rec)
                    yield n, problem or rec
        except InputError:
            raise
        except Exception as err:
            raise InputError(f"{self.src.name} is not valid Parquet: record {n + 1}: {err}") from err

    def estimate(self) -> int:
        return int(self.file.metadata.num_rows)

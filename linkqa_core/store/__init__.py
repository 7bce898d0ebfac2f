"""The one SQLite file every stage reads and writes: :class:`Store` owns its connections and SQL.

Stages, the CLI and the pages call ``store.seeds``, ``store.kps``, ``store.runs``,
``store.items``, ``store.llm`` and ``store.derived`` (one module each beside :mod:`.database`); no SQL lives
outside this package.
"""

from .database import FULL_CHECK_MAX_BYTES, GRAPH_VERSION, PAGE_SIZE, SCHEMA_VERSION, Store, default_db_path
from .seeds import seed_row

__all__ = ["Store", "default_db_path", "seed_row", "SCHEMA_VERSION", "GRAPH_VERSION", "PAGE_SIZE",
           "FULL_CHECK_MAX_BYTES"]

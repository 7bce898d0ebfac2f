"""The one SQLite file every stage reads and writes: :class:`Store` owns its connections and SQL."""

from .database import GRAPH_VERSION, PAGE_SIZE, SCHEMA_VERSION, Store, default_db_path, seed_row

__all__ = ["Store", "default_db_path", "seed_row", "SCHEMA_VERSION", "GRAPH_VERSION", "PAGE_SIZE"]

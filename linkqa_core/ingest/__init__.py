"""Seeds in: read a curator's file (JSONL, JSON, CSV, Parquet), map its columns, store its rows."""

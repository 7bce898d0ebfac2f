"""Seeds in: read a curator's file (JSONL, JSON, CSV, Parquet), map its columns, store its rows.

Modules, in the order a row meets them:

- ``sources``: where the bytes come from (path, upload, gzip, UTF-16), binary files;
- ``formats``: which reader (argument, extension, content) and the whole-file checks;
- ``read_jsonl``, ``read_json``, ``read_csv``, ``read_parquet``: one streaming reader per format;
- ``text``: what a row's text cannot hold (NUL, bad UTF-8, lone surrogates, deep nesting);
- ``mapping``: which column is which field, per-row fallbacks, the answer-index convention;
- ``rows``: one row into seed fields or a reason; the content id;
- ``columnar``: the same for blocks of JSON lines, column-wise with Arrow;
- ``load``: the entry points (``load_seeds``, ``ingest``, ``peek``, ``discipline_values``);
- ``workers``: parsing child processes for big JSON-lines files.
"""

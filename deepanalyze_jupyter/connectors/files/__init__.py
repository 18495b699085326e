"""What every file source (a local folder, a blob container) shares.

Whole-file reads: ``formats`` (detection, decompression, dispatch to a parser), ``text``
and ``columnar`` (the parsers), ``options`` (reader options), ``conversion`` (columns,
dtypes, pandas), ``combine`` (many files into one frame), ``partitions`` (Hive-style
folders as columns). Streamed reads: ``opening`` (one file as a binary file) and
``batches`` (one file in batches). SQL over files: ``sql`` (DuckDB in this process),
``batched`` (the filesystem it reads through), ``statements`` (SQL or a list of paths).
Writes: ``write`` (Arrow tables -> file bytes). Paths: ``globs``, ``listing`` (the
listing frame).
"""

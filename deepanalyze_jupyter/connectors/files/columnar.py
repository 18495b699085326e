"""Columnar formats -> Arrow: Parquet, read straight from the file's bytes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from .conversion import check_columns
from .options import ReaderOptions

__all__ = ["parse_parquet"]


def parse_parquet(raw: bytes | memoryview, options: ReaderOptions) -> pa.Table:
    """A Parquet file; with ``columns``, only those are decoded."""
    buffer = pa.py_buffer(raw)
    if options.columns is not None:
        schema = pq.read_schema(pa.BufferReader(buffer))
        check_columns(options.columns, schema.names)
    return pq.read_table(pa.BufferReader(buffer), columns=options.columns, use_threads=True)

"""Batches written to a file as they arrive, however many there are: ``--to`` of queries and reads.

The target is a local path, or a path in a registered local or blob source
(``dsrc://SOURCE/path``, as the filesystem over sources names it). Each batch is encoded
as it arrives (:class:`.connectors.files.write.BatchEncoder`, the encoder of every file
write) and the file appears only when complete: a temporary file renamed into place
locally, staged blocks committed at the end on blob storage. An interrupt or a failure
leaves no file and an existing target as it was; an existing target is replaced only
when asked (``overwrite``); a source registered read-only is refused before anything is
read. Formats by extension: Parquet, CSV, TSV, JSON lines (``.gz`` compresses the text ones).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pyarrow as pa

from .connectors.files.write import writable_format, write_local_batches
from .errors import FormatError
from .registry import DataSourceRegistry
from .source_paths import split_source_url
from .streaming import read_ahead
from .writing import write_request

__all__ = ["export_batches"]


async def export_batches(
    registry: DataSourceRegistry,
    batches: AsyncIterator[pa.Table],
    to: str | os.PathLike[str],
    *,
    overwrite: bool,
    source: str,
) -> str:
    """Write ``batches`` (of source ``source``) to ``to``; the line that tells what was written.

    The next batch is read while the last one is encoded (:func:`.streaming.read_ahead`).
    """
    ahead = read_ahead(batches)
    try:
        in_source = split_source_url(os.fspath(to))
        if in_source is None:
            return await _to_local_path(registry, ahead, os.fspath(to), overwrite=overwrite, source=source)
        target_source, path = in_source
        request = write_request(
            path, mode="create", overwrite=overwrite, format=None, types=None, source=target_source
        )
        _refuse_zipped_parquet(path, source=target_source)
        return await registry.write_batches(target_source, request, ahead)
    finally:
        await ahead.aclose()
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


async def _to_local_path(
    registry: DataSourceRegistry, batches: AsyncIterator[pa.Table], path: str, *, overwrite: bool, source: str
) -> str:
    real = await asyncio.to_thread(_absolute, path)
    request = write_request(real, mode="create", overwrite=overwrite, format=None, types=None, source=source)
    _refuse_zipped_parquet(real, source=source)
    return await write_local_batches(real, path, request, batches, registry.progress, source)


def _refuse_zipped_parquet(path: str, *, source: str) -> None:
    fmt, compression = writable_format(path, None, source=source)
    if fmt == "parquet" and compression:
        name = os.path.basename(path)
        raise FormatError(f"Parquet files are compressed inside; write {name[:-3]!r}", source=source)


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))

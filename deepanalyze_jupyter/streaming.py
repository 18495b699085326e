"""Results handed over in batches: an async iterator on the runner's loop, read from the caller's thread.

Queries stream from the connector (:func:`query_batches`); files of a file source are
read one after another, each in batches (:func:`read_batches`, through the filesystem
over sources and :mod:`.connectors.files.batches`), converted as :meth:`Session.read`
converts a whole read.

Each batch is asked for with one call to the loop (the runner's ``run_sync``), so the
source reads the next batch only when the caller wants it, and an interrupt while a
batch is read cancels that read. Closing the caller's iterator early (``break``,
``close()``, or dropping it) closes the async one on the loop, which lets its source
stop the work on the server and give its connection back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from typing import IO, Any, TypeVar, cast

import pandas as pd
import pyarrow as pa

from .connectors.files.batches import file_batches
from .connectors.files.combine import combine_arrow, combine_tables
from .connectors.files.conversion import ParsedFile
from .connectors.files.formats import detect_format, validate_reader_options
from .connectors.files.partitions import PartitionValues
from .connectors.files.write import in_thread_to_end
from .errors import ConfigurationError, QueryError
from .frames import frame_from_columns, pandas_column
from .registry import DataSourceRegistry
from .results import convert_result

__all__ = [
    "BATCH_OUTPUTS",
    "DEFAULT_BATCH_ROWS",
    "iterate_batches",
    "query_batches",
    "read_ahead",
    "read_batches",
]

T = TypeVar("T")

#: Rows per batch unless asked otherwise.
DEFAULT_BATCH_ROWS = 100_000
BATCH_OUTPUTS = ("arrow", "pandas")


def iterate_batches(
    run: Callable[[Coroutine[Any, Any, Any]], Any], batches: AsyncIterator[T]
) -> Generator[T, None, None]:
    """The items of ``batches`` (iterated on a loop through ``run``), in the caller's thread."""
    try:
        while True:
            try:
                item = run(_next_item(batches))
            except StopAsyncIteration:
                return
            yield item
    finally:
        with contextlib.suppress(RuntimeError):  # still unwinding after an interrupt
            run(_close(batches))


async def _next_item(batches: AsyncIterator[T]) -> T:
    return await batches.__anext__()


async def _close(batches: AsyncIterator[Any]) -> None:
    aclose = getattr(batches, "aclose", None)
    if aclose is not None:
        await aclose()


async def read_ahead(batches: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """The items of ``batches``, the next one read while the caller works on the current one.

    A writer encodes one batch while the source reads and parses the next, so the two
    overlap; one batch more than the caller holds is in memory. Closing early, or an
    error or a cancel in the caller, cancels the read under way (which stops the source's
    work, as it would without this) and closes ``batches``.
    """
    pending: asyncio.Task[tuple[bool, T | None]] | None = None
    try:
        pending = asyncio.ensure_future(_next_or_end(batches))
        while True:
            more, item = await pending
            if not more:
                return
            pending = asyncio.ensure_future(_next_or_end(batches))
            yield cast(T, item)
            del item  # the caller is done with it: not held while the next one is awaited
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.wait({pending})
        if pending is not None and not pending.cancelled():
            pending.exception()  # seen: an error after the caller stopped is not logged
        await _close(batches)


async def _next_or_end(batches: AsyncIterator[T]) -> tuple[bool, T | None]:
    """``(True, item)``, or ``(False, None)`` at the end (a task cannot end in StopAsyncIteration)."""
    try:
        return True, await batches.__anext__()
    except StopAsyncIteration:
        return False, None


async def query_batches(
    registry: DataSourceRegistry,
    source_id: str,
    sql: str,
    params: Mapping[str, Any] | None,
    *,
    rows: int,
    output: str,
    timeout: float | None = None,
    options: Mapping[str, Any] | None = None,
) -> AsyncIterator[pa.Table | pd.DataFrame]:
    """The rows of a query on ``source_id`` in batches of at most ``rows`` rows."""
    _check_batches(output, rows, source_id)
    writable = registry.writable(source_id)  # as the statement starts (see ``query``)
    connector = await registry.get_connector(source_id)
    stream = getattr(connector, "query_batches", None)
    if stream is None:
        raise QueryError(
            f"{connector.display_name} sources cannot stream a query in batches", source=source_id
        )
    batches: AsyncIterator[pa.Table] = stream(sql, params, rows=rows, timeout=timeout, **dict(options or {}))
    try:
        async for batch in batches:
            yield _frame(batch) if output == "pandas" else convert_result(batch, "arrow", source=source_id)
    finally:
        await _close(batches)
        if writable:  # the statement may have written
            registry.forget(source_id)


def _frame(batch: pa.Table) -> pd.DataFrame:
    """A batch as a DataFrame with the dtypes and column labels of a whole result."""
    labels = pd.Index(batch.column_names, dtype=object)
    return frame_from_columns(labels, [pandas_column(column) for column in batch.columns], batch.num_rows)


def _check_batches(output: str, rows: int, source_id: str) -> None:
    if output not in BATCH_OUTPUTS:
        raise ConfigurationError(
            f"output must be one of {', '.join(BATCH_OUTPUTS)} for batches, got {output!r}", source=source_id
        )
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ConfigurationError(
            f"the batch size (rows) must be a whole number >= 1, got {rows!r}", source=source_id
        )


async def read_batches(
    registry: DataSourceRegistry,
    source_id: str,
    paths: str | Sequence[str],
    *,
    rows: int,
    output: str,
    format: str | None = None,
    source_column: str | None = None,
    reader_options: Mapping[str, Any] | None = None,
) -> AsyncIterator[pa.Table | pd.DataFrame]:
    """The rows of files (paths, folders, globs) of a file source in batches of at most ``rows`` rows.

    Files come in the order :meth:`Session.read` reads them, each file's rows in file
    order; a batch never spans two files. Only the batch being read is held in memory.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    _check_batches(output, rows, source_id)
    validate_reader_options(reader_options, source=source_id)
    if format is not None:
        detect_format("", format, source=source_id)
    connector = await registry.get_connector(source_id)
    listed = getattr(connector, "files_to_read", None)
    open_file = getattr(connector, "open_file", None)
    if listed is None or open_file is None:
        raise QueryError(
            f"{connector.display_name} sources hold no files to read in batches", source=source_id
        )
    files: list[tuple[str, PartitionValues]] = await listed(list(paths), format)
    for name, _ in files:
        detect_format(name, format, source=source_id)  # refuse before reading anything
    loop = asyncio.get_running_loop()

    def converted(name: str, part: ParsedFile) -> pa.Table | pd.DataFrame:
        parts = [(name, part)]
        if output == "pandas":
            return combine_tables(
                parts, source=source_id, source_column=source_column, reader_options=reader_options
            )
        table = combine_arrow(
            parts, source=source_id, source_column=source_column, reader_options=reader_options
        )
        if table is None:
            table = combine_tables(
                parts, source=source_id, source_column=source_column, reader_options=reader_options
            )
        return convert_result(table, "arrow", source=source_id)

    for name, partitions in files:
        file: IO[bytes] = await in_thread_to_end(open_file, name, loop, undo=_close_file)
        batches = file_batches(
            file,
            path=name,
            source=source_id,
            format=format,
            reader_options=reader_options,
            partitions=partitions,
            rows=rows,
        )
        try:
            while True:
                batch = await in_thread_to_end(_next_converted, batches, name, converted)
                if batch is None:
                    break
                yield batch
        finally:
            await in_thread_to_end(_close_reading, batches, file)


def _next_converted(
    batches: Iterator[ParsedFile], name: str, convert: Callable[[str, ParsedFile], T]
) -> T | None:
    part = next(batches, None)
    return None if part is None else convert(name, part)


def _close_file(file: IO[bytes]) -> None:
    file.close()


def _close_reading(batches: Iterator[ParsedFile], file: IO[bytes]) -> None:
    try:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    finally:
        file.close()

"""SQL on a file source, run by DuckDB in this process.

``SELECT region, sum(revenue) FROM 'sales/*.parquet' GROUP BY 1`` on source ``lake``
reads ``dsrc://lake/sales/*.parquet`` through :class:`~deepanalyze_jupyter.filesystem.
SourceFileSystem`, so the source's own listing and ranged reads serve DuckDB (a Parquet
query fetches only the footers and the column chunks it needs).

Each query gets its own in-memory DuckDB connection, sandboxed before the SQL runs:

* relative paths in file positions (``FROM 'x.csv'``, the first arguments of
  ``read_csv``/``read_parquet``/...) become paths in the source; absolute paths and URLs
  written there are refused before anything runs;
* ``enable_external_access = false`` with ``allowed_directories = ['dsrc://SOURCE/']``:
  no local file, other source, network URL, ``ATTACH``, ``COPY ... TO``, ``INSTALL`` or
  ``LOAD`` (DuckDB refuses them), and the filesystem itself only reads;
* extension auto-install and auto-load off (nothing is downloaded; the Parquet, CSV and
  JSON readers are built in), Python replacement scans off (a table name never picks up
  a Python variable), and ``lock_configuration = true`` so no ``SET`` undoes any of it.
* no temporary directory, which DuckDB would let the SQL read and write (``.tmp`` of the
  working directory): a statement works in memory.

DataFrames are joined only when given by name (``frames={"orders": df}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from ...errors import ConfigurationError, OperationCancelled, QueryError
from ...filesystem import source_url
from ...frames import arrow_to_frame, mark_result
from ...results import with_info
from ...sqlparams import missing_parameters, strip_terminator, to_numbered
from ..base import Connector
from .batched import StatementFileSystem
from .csv_sniffing import with_csv_globs_joined
from .sandbox import release, sandboxed
from .sql_paths import FILE_FUNCTIONS, csv_glob_reads, rewrite_paths, separates_statements

__all__ = ["FILE_FUNCTIONS", "SqlOverFiles", "query_file_batches", "query_files", "rewrite_paths"]

#: Seconds between two looks at DuckDB's progress during a query.
_PROGRESS_EVERY = 0.25
#: Rows of each batch read from DuckDB's result.
_RESULT_BATCH_ROWS = 100_000
#: Seconds a stopped statement's worker thread is given to end.
_STOP_WAIT = 5.0
#: DuckDB's line saying that a CSV line is longer than its ``max_line_size``.
_LINE_TOO_LONG = "Maximum line size of "
#: DuckDB's line after it, with the ``max_line_size`` that would read that line.
_LINE_SIZE_FIX = "Possible Solution: Change the maximum length size, e.g.,"
#: How the first line of DuckDB's errors about a CSV file begins (after the error's kind).
_CSV_ERRORS = ("CSV Error on Line", "Error when sniffing file")
#: Lines of a CSV error of DuckDB, below its first, that tell the context rather than the reason.
_CSV_CONTEXT = ("Original Line:", "file = ", "Possible Solution:", "Possible fixes:")
#: The name of a Python exception class before its message on the last line of a traceback.
_PYTHON_ERROR = re.compile(r"^[A-Za-z_][\w.]*: ")


class SqlOverFiles(Connector):
    """A file connector whose :meth:`query` runs SQL over the source's files (see the module)."""

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> pd.DataFrame:
        """Run ``sql`` over the source's files; ``frames={"name": df}`` adds DataFrames as tables."""
        return await query_files(self, sql, params, limit=limit, timeout=timeout, **options)

    def query_batches(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        rows: int,
        timeout: float | None = None,
        **options: Any,
    ) -> AsyncIterator[pa.Table]:
        """Run ``sql`` over the source's files; its rows as Arrow tables of at most ``rows`` rows."""
        return query_file_batches(self, sql, params, rows=rows, timeout=timeout, **options)


async def query_files(
    connector: Connector,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    limit: int | None = None,
    timeout: float | None = None,
    frames: Mapping[str, pd.DataFrame] | None = None,
    output: str = "pandas",
    **options: Any,
) -> pd.DataFrame | pa.Table:
    """Run ``sql`` over the files of ``connector``'s source; at most ``limit`` rows come back.

    ``frames`` names DataFrames the SQL may use as tables. ``attrs["bytes_fetched"]`` tells
    how many bytes of the source's files the query read. ``output="arrow"`` returns DuckDB's
    Arrow table itself, as :func:`query_file_batches` gives its batches.
    """
    source = connector.source_id
    if limit is not None and limit < 0:
        raise ConfigurationError(f"the row limit must be at least 0, got {limit}", source=source)
    text, values, filesystem, connection = await _prepared(connector, sql, params, frames, options)
    progress = connector.context.progress(
        f"Querying files of {source}", total_bytes=None, total_items=100, items="%"
    )
    work = asyncio.ensure_future(asyncio.to_thread(_run, connection, filesystem, text, values, limit, source))
    try:
        table, truncated = await asyncio.wait_for(_watch(work, connection, progress), timeout)
    except (TimeoutError, asyncio.TimeoutError):
        raise QueryError(
            f"the query did not finish within {timeout:g} s and was stopped", source=source
        ) from None
    except asyncio.CancelledError:
        connection.interrupt()
        filesystem.close()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(work), 5)
        raise
    finally:
        progress.close()
        if not work.done():
            connection.interrupt()
            filesystem.close()
        with contextlib.suppress(BaseException):
            await asyncio.shield(work)
        await filesystem.aclose()
        release(connection)
    if output == "arrow":  # as it came from DuckDB: the session converts an Arrow result once
        info = {"source": source, "truncated": truncated, "row_limit": limit}
        return with_info(table, {**info, "bytes_fetched": filesystem.bytes_fetched})
    frame = arrow_to_frame(table)
    frame.attrs["bytes_fetched"] = filesystem.bytes_fetched
    return mark_result(frame, source=source, truncated=truncated, limit=limit)


async def query_file_batches(
    connector: Connector,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    rows: int,
    timeout: float | None = None,
    frames: Mapping[str, pd.DataFrame] | None = None,
    **options: Any,
) -> AsyncIterator[pa.Table]:
    """The rows of ``sql`` over the source's files as Arrow tables of at most ``rows`` rows.

    The statement runs in the sandbox of :func:`query_files`; DuckDB's reader is read one
    batch at a time in a worker thread, so only that batch (and what DuckDB itself holds,
    such as a GROUP BY's groups) is in memory. Closing early or cancelling interrupts DuckDB
    and frees the connection and the statement's filesystem. ``timeout`` covers the whole read.
    """
    source = connector.source_id
    if rows < 1:
        raise ConfigurationError(f"the batch size must be at least 1 row, got {rows}", source=source)
    text, values, filesystem, connection = await _prepared(connector, sql, params, frames, options)
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    reader: list[pa.RecordBatchReader] = []
    try:
        while True:
            work = asyncio.ensure_future(
                asyncio.to_thread(_next_batch, connection, reader, text, values, rows, source)
            )
            try:
                remaining = None if deadline is None else max(deadline - loop.time(), 0)
                batch = await asyncio.wait_for(asyncio.shield(work), remaining)
            except (TimeoutError, asyncio.TimeoutError):
                await _stop(work, connection, filesystem)
                raise QueryError(
                    f"the query did not finish within {timeout:g} s and was stopped", source=source
                ) from None
            except BaseException:
                await _stop(work, connection, filesystem)
                raise
            if batch is None:
                return
            yield batch
    finally:
        connection.interrupt()
        await filesystem.aclose()
        for opened in reader:
            with contextlib.suppress(Exception):
                opened.close()
        release(connection)


def _next_batch(
    connection: duckdb.DuckDBPyConnection,
    reader: list[pa.RecordBatchReader],
    sql: str,
    values: list[Any],
    rows: int,
    source: str,
) -> pa.Table | None:
    """The next batch of the statement (in a worker thread), running it on the first call."""
    try:
        if not reader:
            relation: duckdb.DuckDBPyRelation | None = connection.sql(sql, params=values or None)
            reader.append(pa.table({}).to_reader() if relation is None else relation.to_arrow_reader(rows))
        with _stream_errors():
            batch = reader[0].read_next_batch()
    except StopIteration:
        return None
    except duckdb.InterruptException:
        raise OperationCancelled("the query was interrupted", source=source) from None
    except duckdb.Error as error:
        raise _query_error(error, source) from None
    return pa.Table.from_batches([batch])


async def _stop(work: asyncio.Future[Any], connection: duckdb.DuckDBPyConnection, filesystem: Any) -> None:
    """Interrupt DuckDB and the statement's downloads, and wait for the worker thread to end.

    DuckDB forgets an interrupt that comes before its query runs, so it is repeated until
    the worker is done (at most ``_STOP_WAIT`` seconds).
    """
    filesystem.close()
    for _ in range(int(_STOP_WAIT / _PROGRESS_EVERY)):
        connection.interrupt()
        done, _ = await asyncio.wait({work}, timeout=_PROGRESS_EVERY)
        if done:
            with contextlib.suppress(BaseException):
                work.result()
            return


async def _prepared(
    connector: Connector,
    sql: str,
    params: Mapping[str, Any] | None,
    frames: Mapping[str, pd.DataFrame] | None,
    options: Mapping[str, Any],
) -> tuple[str, list[Any], StatementFileSystem, duckdb.DuckDBPyConnection]:
    """The statement's text and values, its filesystem and its sandboxed connection.

    The statement's CSV globs are listed (and their small files start downloading) while
    its connection is made, in threads of their own: a kernel's first database takes DuckDB
    about 20 ms to start, in which the source's loop answers the listing.
    """
    source = connector.source_id
    connector.refuse_query_options(dict(options))
    _refuse_invalid_text(sql, source)
    missing = missing_parameters(sql, params)
    if missing:
        raise QueryError(f"no value given for parameter {', '.join(':' + m for m in missing)}", source=source)
    bound, names = to_numbered(strip_terminator(sql))
    text = rewrite_paths(bound.text, source)
    values = [(params or {})[name] for name in names]
    loop = asyncio.get_running_loop()
    filesystem = StatementFileSystem.for_statement(connector, loop)
    # Not awaited: the statement's own glob waits for it, within the statement's timeout.
    loop.run_in_executor(None, _list_csv_globs, filesystem, text)
    try:
        connection = await _connected(filesystem, source, frames or {})
        try:
            _refuse_several_statements(connection, bound.text, source)
        except BaseException:
            connection.close()
            raise
    except BaseException:
        await filesystem.aclose()
        raise
    return text, values, filesystem, connection


def _refuse_invalid_text(sql: str, source: str) -> None:
    """Refuse SQL holding a lone surrogate (a string decoded with ``surrogateescape``, say),
    which no encoding writes, or a NUL character, where some DuckDB versions end the text."""
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError as error:
        where = error.start
    else:
        where = sql.find("\x00")
        if where < 0:
            return
    raise QueryError(
        f"the SQL holds a character that is not text (U+{ord(sql[where]):04X} at character "
        f"{where + 1}); nothing ran",
        source=source,
    )


def _list_csv_globs(filesystem: StatementFileSystem, sql: str) -> None:
    """List the CSV globs of ``sql`` (their small files start downloading); an error is the
    statement's to tell, when it lists them again."""
    for read in csv_glob_reads(sql):
        with contextlib.suppress(Exception):
            filesystem.glob(read.pattern)


async def _connected(
    filesystem: StatementFileSystem, source: str, frames: Mapping[str, pd.DataFrame]
) -> duckdb.DuckDBPyConnection:
    """The statement's sandboxed connection, made in a thread; if cancelled meanwhile, closed
    once made (waited for: it takes milliseconds, and a stopped query leaves nothing running)."""
    made = asyncio.ensure_future(asyncio.to_thread(sandboxed, filesystem, source, frames))
    try:
        return await asyncio.shield(made)
    except asyncio.CancelledError:
        made.add_done_callback(_close_if_made)
        await asyncio.wait({made}, timeout=_STOP_WAIT)
        raise


def _close_if_made(made: asyncio.Future[duckdb.DuckDBPyConnection]) -> None:
    if not made.cancelled() and made.exception() is None:
        made.result().close()


def _refuse_several_statements(connection: duckdb.DuckDBPyConnection, sql: str, source: str) -> None:
    """Refuse SQL of more than one statement: DuckDB would run them all and give the last result.

    The statement's own connection parses it: ``duckdb.extract_statements`` would start
    DuckDB's default database, which takes as long as a small query. Some DuckDB versions
    parse one statement as several (a PIVOT whose values are not listed); only statements
    written apart, with a ``;`` between them, are refused.
    """
    try:
        count = len(connection.extract_statements(sql))
    except duckdb.Error:
        return  # a syntax error: DuckDB says where when the statement runs
    if count > 1 and separates_statements(sql):
        raise QueryError(
            "the SQL holds several statements; a query runs one (run them one at a time); none of them ran",
            source=source,
        )


async def _watch(work: asyncio.Future[Any], connection: duckdb.DuckDBPyConnection, progress: Any) -> Any:
    """Wait for ``work``, reporting DuckDB's percentage of the query done meanwhile."""
    shown = 0
    while True:
        done, _ = await asyncio.wait({work}, timeout=_PROGRESS_EVERY)
        if done:
            return work.result()
        with contextlib.suppress(duckdb.Error):
            percent = int(connection.query_progress())
            if percent > shown:
                progress.update(items=percent - shown)
                shown = percent


def _run(
    connection: duckdb.DuckDBPyConnection,
    filesystem: StatementFileSystem,
    sql: str,
    values: list[Any],
    limit: int | None,
    source: str,
) -> tuple[pa.Table, bool]:
    """Run the statement (in a worker thread), reading at most ``limit + 1`` rows of its result.

    Globs of small CSV files are read as one stream, sniffed once (:mod:`.csv_sniffing`);
    if that fails, the statement runs as written and DuckDB's own reading decides.
    """
    try:
        for joined in with_csv_globs_joined(connection, filesystem, sql) or []:
            try:
                return _read(connection, joined, values, limit)
            except duckdb.InterruptException:
                raise
            except duckdb.Error:
                if filesystem.closed:  # stopped: its reads failed, nothing to read again
                    raise
                # the next way to read it; at last DuckDB's own reading, file by file, decides
        return _read(connection, sql, values, limit)
    except duckdb.InterruptException:
        raise OperationCancelled("the query was interrupted", source=source) from None
    except duckdb.Error as error:
        raise _query_error(error, source) from None


def _read(
    connection: duckdb.DuckDBPyConnection, sql: str, values: list[Any], limit: int | None
) -> tuple[pa.Table, bool]:
    """The first ``limit`` rows of the statement's result, and whether it had more.

    The rows are read from DuckDB's streaming result, which stops the query once they are
    read: a ``LIMIT`` added to the relation would have the statement bound (its files listed,
    a CSV's types sniffed) once more.
    """
    relation: duckdb.DuckDBPyRelation | None = connection.sql(sql, params=values or None)
    if relation is None:  # a statement without a result (CREATE, SET)
        return pa.table({}), False
    reader = relation.to_arrow_reader(_RESULT_BATCH_ROWS)
    batches: list[pa.RecordBatch] = []
    rows = 0
    try:
        with _stream_errors():
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if limit is not None and rows > limit:
                    break
    finally:
        reader.close()
    table = pa.Table.from_batches(batches, schema=reader.schema)
    truncated = limit is not None and table.num_rows > limit
    return (table.slice(0, limit) if truncated else table), truncated


@contextlib.contextmanager
def _stream_errors() -> Iterator[None]:
    """DuckDB's errors raised as DuckDB raises them, also those that come after a result's first
    batch: through Arrow's stream, as ``OSError`` with DuckDB's text."""
    try:
        yield
    except OSError as error:
        text = str(error)
        if text.startswith("INTERRUPT Error"):
            raise duckdb.InterruptException(text) from None
        raise duckdb.Error(text) from None


def _query_error(error: duckdb.Error, source: str) -> QueryError:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        # The Python error a filesystem call raised, "ItemNotFound: lake: no file 'x.csv'": its message.
        lines = [_PYTHON_ERROR.sub("", lines[-1], count=1)]
    first = (lines or [type(error).__name__])[0]
    named = _PYTHON_ERROR.match(first)
    if named and first[named.end() :].startswith(f"{source}: "):
        first = first[named.end() :]  # the same error as DuckDB 1.x gives it: without the traceback
    detail = _csv_detail(lines, source)
    text = first.removeprefix(f"{source}: ")
    text = (text.removesuffix(".") + detail) if detail else text
    if isinstance(error, duckdb.PermissionException) or "disabled by configuration" in text:
        text = f"refused: SQL on this source reads only its own files ({text})"
    elif "configuration has been locked" in text:
        text = f"refused: the sandbox's settings cannot be changed ({text})"
    elif isinstance(error, duckdb.OutOfMemoryException):
        text += "; SQL over files works in memory (nothing spills to disk): select fewer columns or rows"
    return QueryError(text, source=source)


def _csv_detail(lines: list[str], source: str) -> str:
    """Which file and what a CSV error of DuckDB is about (it says so lines further down): its
    reason (a value that does not convert, bytes that are not UTF-8, a dialect the sniffer
    could not tell), and for a line over DuckDB's longest the ``max_line_size`` it needs."""
    prefix = f"file = {source_url(source)}"
    file = next((line[len(prefix) :] for line in lines[1:] if line.startswith(prefix)), None)
    what = None
    if any(error in lines[0] for error in _CSV_ERRORS):
        what = next((line for line in lines[1:] if not line.startswith(_CSV_CONTEXT)), None)
    if what is not None and what.startswith(_LINE_TOO_LONG):
        fix = next((line for line in lines[1:] if line.startswith(_LINE_SIZE_FIX)), None)
        what += f" {fix[len(_LINE_SIZE_FIX) :].strip()}" if fix else ""
    return (f" of {file!r}" if file else "") + (f": {what}" if what else "")

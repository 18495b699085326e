"""A query's rows through ``COPY``, handed over in batches as they arrive.

The statement is described and run as ``COPY (SELECT * FROM (<sql>) AS q) TO STDOUT``
like a whole read (:mod:`.copy_query`), but the connection reads only ``rows`` rows at a
time: nothing more is taken off the socket until the caller asks for the next batch,
so the server waits and memory holds about two batches (one is parsed in the stream's
own thread while the next one's rows are read; parses run one after another, in order, so
that a column one batch had to read as text is text in every later batch). One thread, not
whichever worker is free: the C library keeps what a thread freed in that thread's heap,
so batches parsed on every worker left a batch's memory held in each. Closing the batches
early (or an interrupt while one is read) cancels the query on the server and drains what
it sent, so the connection goes back to the pool idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from psycopg import errors, pq
from psycopg.pq.abc import PGconn
from psycopg.waiting import Ready, Wait

from ...sqlparams import BoundSQL
from .columns import table_from_columns
from .copy import Refills, _finish, _flush, _next_result, finish_columns, parse_piece, refill
from .copy_query import describe_statement
from .result import AsyncConnection, Planner, Statement, result_fields
from .types import ColumnPlan, ConversionError

__all__ = ["stream_copy"]

#: Seconds the server gets to stop a cancelled query before the connection is closed.
_CANCEL_TIMEOUT = 5.0


async def stream_copy(
    conn: AsyncConnection,
    bound: BoundSQL,
    *,
    rows: int,
    planner: Planner,
    preamble: Sequence[Statement] = (),
) -> AsyncGenerator[pa.Table, None]:
    """Yield the rows of ``bound`` as Arrow tables of at most ``rows`` rows each (one, empty, for no rows)."""
    subquery = f"SELECT * FROM (\n{bound.text}\n) AS q"
    pgconn = conn.pgconn
    described = await conn.wait(describe_statement(pgconn, preamble, subquery))
    plans = list(planner(result_fields(described)))
    pgconn.send_query_params(f"COPY ({subquery}) TO STDOUT".encode(), None)
    finished = False
    started = False
    parsing: asyncio.Future[pa.Table] | None = None  # the last batch read, parsed in the parser thread
    loop = asyncio.get_running_loop()
    parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgresql-batches")
    try:  # the server may hold the start of the COPY until its first rows fill a buffer
        await conn.wait(_start_copy(pgconn))
        while not finished:
            data, count, finished = await conn.wait(_read_rows(pgconn, rows))
            if count or not started:  # an empty result is one empty batch: its columns
                started = True
                parsed = None if parsing is None else await parsing
                parsing = loop.run_in_executor(parser, _batch, data, count, plans)
                del data  # held by the parse alone: freed once parsed, not when the next rows are in
                if parsed is not None:
                    yield parsed
                    del parsed  # the caller's now: not held while the next rows are read
        if parsing is not None:
            parsed, parsing = await parsing, None
            yield parsed
    finally:
        if parsing is not None:  # the caller stopped: the parse is left to end, its table dropped
            await asyncio.wait({parsing})
            if not parsing.cancelled():
                parsing.exception()
        parser.shutdown(wait=False)  # idle: its last parse was awaited
        if not finished:
            await _cancel(conn)


def _start_copy(pgconn: PGconn) -> Generator[Wait, Ready | int, None]:
    yield from _flush(pgconn)
    result = yield from _next_result(pgconn)
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        failed = yield from _finish(pgconn, result)
        if failed is not None:
            raise errors.error_from_result(failed, encoding="utf-8")
        raise errors.ProgrammingError("the statement did not start a COPY TO STDOUT")


def _read_rows(pgconn: PGconn, rows: int) -> Generator[Wait, Ready | int, tuple[bytearray, int, bool]]:
    """Up to ``rows`` rows of ``COPY`` text; whether the ``COPY`` ended (its errors raised)."""
    buffer = bytearray()
    count = 0
    read = pgconn.get_copy_data
    refills = Refills()
    while count < rows:
        size, data = read(1)
        if size == 0:
            yield from refill(pgconn, refills)
            continue
        if size > 0:
            buffer += data
            count += 1
        else:
            result = yield from _next_result(pgconn)
            failed = yield from _finish(pgconn, result)
            if failed is not None:
                raise errors.error_from_result(failed, encoding="utf-8")
            return buffer, count, True
    return buffer, count, False


def _drain(pgconn: PGconn) -> Generator[Wait, Ready | int, None]:
    """Read and drop what is left of a ``COPY`` and its results."""
    while True:
        size, _ = pgconn.get_copy_data(1)
        if size == 0:
            while not (yield Wait.R):
                pass
            pgconn.consume_input()
        elif size < 0:
            break
    yield from _finish(pgconn, None)


async def _cancel(conn: AsyncConnection) -> None:
    """Stop the ``COPY`` on the server and drain the connection; close it if that fails."""
    if conn.closed or conn.pgconn.transaction_status != pq.TransactionStatus.ACTIVE:
        return
    try:
        await conn.cancel_safe(timeout=_CANCEL_TIMEOUT)
        await conn.wait(_drain(conn.pgconn), timeout=_CANCEL_TIMEOUT)
    except BaseException:
        await conn.close()
        raise


def _batch(data: bytearray, count: int, plans: list[ColumnPlan]) -> pa.Table:
    """One batch of ``COPY`` text as a table named as the result's columns.

    Columns pyarrow cannot parse are read as text from then on (``plans`` is updated), so
    that every batch has the same columns.
    """
    table, plans[:] = parse_piece(data, plans)
    if table.num_rows != count:
        raise ConversionError(f"COPY sent {count} rows but {table.num_rows} were read")
    return table_from_columns(plans, finish_columns(table, plans), count)

"""Running a statement that cannot be a subquery (``SHOW``, ``EXPLAIN``, DDL, ``INSERT ...
RETURNING``) as it is, through a cursor, with server-side parameters (``$1``...).

The driver receives the whole result, of which ``limit + 1`` rows are loaded by psycopg's
loaders in a worker thread (a statement that changes data must run whole). A
transaction-control statement (told by the command tag the server returns) raises
:class:`~.result.TransactionControl`: each query is one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import pq
from psycopg.adapt import Transformer

from ...sqlparams import to_numbered
from .columns import result_from_values
from .result import (
    AsyncConnection,
    Checkpoint,
    CopyStatement,
    Planner,
    QueryFailed,
    QueryResult,
    Statement,
    TransactionControl,
    result_fields,
)
from .types import ColumnPlan, ConversionError

__all__ = ["load_rows", "rows_result", "run_with_cursor"]

#: Command tags of the statements that begin or end a transaction.
_TRANSACTION_TAGS = frozenset(
    {
        "BEGIN",
        "START TRANSACTION",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "PREPARE TRANSACTION",
        "COMMIT PREPARED",
        "ROLLBACK PREPARED",
    }
)
#: Rows of a cursor's result loaded in one call (which holds the interpreter).
_LOAD_BATCH_ROWS = 64


async def run_with_cursor(
    conn: AsyncConnection,
    statement: str,
    params: Mapping[str, Any] | None,
    *,
    limit: int | None,
    planner: Planner,
    preamble: Sequence[Statement] = (),
) -> QueryResult:
    numbered, names = to_numbered(statement)
    values = [(params or {})[name] for name in names]
    async with psycopg.AsyncRawCursor(conn) as cursor, psycopg.AsyncRawCursor(conn) as own:
        try:
            async with conn.pipeline() as pipeline:  # one statement per execution
                if conn.pgconn.transaction_status == pq.TransactionStatus.INERROR:
                    await own.execute("ROLLBACK")
                for text, preamble_values in preamble:
                    await own.execute(text, preamble_values)
                if preamble:  # so that VACUUM and the like find no statement before them
                    await pipeline.sync()
                await cursor.execute(numbered.text, values or None)
            if cursor.statusmessage in _TRANSACTION_TAGS:
                raise TransactionControl(cursor.statusmessage or "")
        except psycopg.Error as error:
            if conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
                raise CopyStatement from error  # the server started a COPY the query cannot read
            raise QueryFailed(error, numbered.original_position) from error
        result = cursor.pgresult if cursor.description is not None else None
        fields = result_fields(result)
        count = 0 if result is None else result.ntuples if limit is None else min(result.ntuples, limit + 1)
        # the whole result is here; psycopg's loaders turn it into rows in a worker thread
        rows = await asyncio.to_thread(load_rows, conn, result, count) if count else []
    return rows_result(rows, planner(fields), limit=limit, in_thread=True)


def rows_result(
    rows: list[tuple[Any, ...]], plans: Sequence[ColumnPlan], *, limit: int | None, in_thread: bool
) -> QueryResult:
    """The result of rows loaded by psycopg (at most ``limit + 1``: one more tells it was cut)."""
    truncated = limit is not None and len(rows) > limit
    if truncated:
        del rows[limit:]

    def build(checkpoint: Checkpoint, arrow: bool) -> pd.DataFrame | pa.Table:
        checkpoint()
        columns = _transpose(rows, len(plans))
        count = len(rows)
        rows.clear()
        return result_from_values(plans, columns, count, arrow=arrow)

    return QueryResult(build, truncated, in_thread=in_thread)


def load_rows(conn: AsyncConnection, result: pq.abc.PGresult | None, count: int) -> list[tuple[Any, ...]]:
    """The first ``count`` rows of ``result``, loaded as a cursor of ``conn`` loads them."""
    transformer = Transformer(conn)
    transformer.set_pgresult(result)
    rows: list[tuple[Any, ...]] = []
    try:
        for start in range(0, count, _LOAD_BATCH_ROWS):  # batches: other threads run in between
            rows += transformer.load_rows(start, min(start + _LOAD_BATCH_ROWS, count), tuple)
    except psycopg.Error as error:
        raise ConversionError(f"cannot load the rows: {error}") from error
    return rows


def _transpose(rows: list[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    if not rows:
        return [() for _ in range(width)]
    return list(zip(*rows, strict=True))

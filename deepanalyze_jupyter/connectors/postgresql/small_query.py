"""A small result in one round trip: the statement run as it is, in the connector's pipeline.

``COPY`` takes two round trips (its columns must be described before its text can be
parsed, and libpq does not pipeline ``COPY``). A statement whose last result was small
(:class:`.query.CopyFormats`) is instead run on the extended protocol as the same
subquery with the same row limit (``SELECT * FROM (<sql>) AS q LIMIT <limit + 1>``), in
the pipeline that runs the connector's own statements first (``BEGIN READ ONLY``...):
one round trip, whose result carries its columns. Its rows are loaded by psycopg, as the
small ``COPY`` results are, so the frame is the same.

The read-only guarantees are those of the ``COPY`` path: one statement per execution
(the server parses one only), in the transaction the preamble opened. On a read-only
source the same round trip then rolls the transaction back and resets the session (the
statements of the connector's reset, one per execution), so the connection goes back to
the pool without one more round trip; should any of it fail, the connector resets the
connection as after any other query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import psycopg
from psycopg import pq

from ...sqlparams import BoundSQL
from .copy_query import SMALL_RESULT_BYTES, SUBQUERY_PREFIX, pipelined, position_in
from .cursor_query import load_rows, rows_result
from .pool import END_AND_RESET, ResetConnections
from .result import AsyncConnection, Planner, QueryFailed, QueryResult, Statement, result_fields

__all__ = ["run_small"]

#: Rows past which a result is not small, whatever its size (its cells are not measured).
_SMALL_RESULT_ROWS = 2000


async def run_small(
    conn: AsyncConnection,
    bound: BoundSQL,
    statement: str,
    *,
    limit: int | None,
    planner: Planner,
    preamble: Sequence[Statement] = (),
    reset: ResetConnections | None = None,
) -> tuple[QueryResult, bool]:
    """Run ``statement`` (``bound`` as a subquery, with its limit) after ``preamble``, in one round trip.

    Given ``reset`` (a read-only source: the preamble opened the transaction), the
    transaction is rolled back and the session reset in the same round trip, and ``reset``
    notes it (the connector then skips its own reset). Returns the result and whether it
    was small, as a ``COPY`` read in Python is (else the statement is best read through
    ``COPY`` next time).
    """

    def send_statement() -> None:
        conn.pgconn.send_query_params(statement.encode("utf-8"), None)

    after = END_AND_RESET if reset is not None else ()
    try:
        result = await conn.wait(pipelined(conn.pgconn, preamble, send_statement, after))
    except psycopg.Error as error:
        raise QueryFailed(error, position_in(bound, len(SUBQUERY_PREFIX))) from error
    if reset is not None:
        reset.mark(conn, read_only=True)
    plans = planner(result_fields(result))
    if _small(result):  # loaded and built here: a hop to a worker thread would cost more
        rows = load_rows(conn, result, result.ntuples) if result.ntuples else []
        return rows_result(rows, plans, limit=limit, in_thread=False), True
    # the result grew since the statement last ran: loaded and built off the loop
    rows = await asyncio.to_thread(load_rows, conn, result, result.ntuples)
    return rows_result(rows, plans, limit=limit, in_thread=True), False


def _small(result: pq.abc.PGresult) -> bool:
    """Whether ``result`` holds no more than a small ``COPY`` result would."""
    if result.ntuples > _SMALL_RESULT_ROWS:
        return False
    size = 0
    for row in range(result.ntuples):
        for column in range(result.nfields):
            size += len(result.get_value(row, column) or b"")
        if size > SMALL_RESULT_BYTES:
            return False
    return True

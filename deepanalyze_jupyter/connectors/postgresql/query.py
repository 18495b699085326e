"""Running one query on a pooled connection and turning its result into a DataFrame.

Every statement goes to the server on the extended protocol, which parses exactly one
statement per execution: SQL holding several is refused by the server itself, never cut
or split here. The connector's own statements (``preamble``: a ``BEGIN READ ONLY``, a
statement timeout) are sent in the same round trip, in a pipeline.

Two ways, chosen by what the server accepts, not by reading the statement's keywords:

1. A statement that can stand as a subquery (``SELECT``, ``VALUES``, ``TABLE``, ``WITH``)
   is parsed and described (not run) as ``SELECT * FROM (<sql>) AS q`` (its columns:
   names, types and modifiers; an error here is the user's, reported at its position in
   the SQL as written), then run as ``COPY (SELECT * FROM (<sql>) AS q LIMIT <limit + 1>)
   TO STDOUT``: the server stops at the limit, and the extra row tells whether the result
   was cut. ``COPY`` takes no bind parameters (the server answers "there is no parameter
   $1"), so on this path values are quoted into the text on the client by psycopg
   (``sql.Literal``: each value dumped by the adapter of its Python type, escaped by
   libpq's ``PQescapeLiteral`` for the connection, as ``E'...'`` when it holds a
   backslash, whatever ``standard_conforming_strings`` says), the same text in both
   statements. Only on a UTF-8 connection: under any other client encoding (a user's
   ``client_encoding``) the statement takes the second way, where psycopg encodes the
   text and decodes the rows in that encoding. Up to 32 KiB of
   rows are parsed in Python with psycopg's loaders; more are parsed by pyarrow in worker
   threads while the rest still arrives (see :mod:`.copy`). A statement run again
   whose rows fitted one piece (up to 2 MiB) and whose columns are best read as binary
   (timestamps, which the server writes as text with much work) is read as binary
   ``COPY`` instead (:class:`CopyFormats`, :mod:`.binary`); one whose rows were few (up
   to 32 KiB) runs as the same subquery, with the same limit, in the pipeline of the
   connector's own statements, and on a read-only source with the rollback and the reset
   of the session after it: one round trip in all instead of three (:mod:`.small_query`).
2. Any other statement (``SHOW``, ``EXPLAIN``, ``INSERT ... RETURNING``, DDL), which the
   server refuses as a subquery, or any statement on a connection whose client encoding
   is not UTF-8, runs as it is with server-side parameters (``$1``...)
   through a cursor; the driver receives its whole result, of which ``limit + 1`` rows
   are loaded, in a worker thread (a statement that changes data must run whole).
   A transaction-control statement (``BEGIN``, ``COMMIT``...; told by the command tag the
   server returns) raises :class:`.result.TransactionControl`: each query is one transaction.

Both build the frame (or, for ``output="arrow"``, the Arrow table, with no pandas step)
from the same column plans (:mod:`.types`); results over 2 MiB,
binary results, and results with columns loaded value by value in Python (JSON, arrays, a
fallback), are finished in a worker thread, smaller text ones on the event loop (a few
milliseconds), so that a long build never holds up the other sources of the session. A
cancelled query (an interrupt, a timeout) keeps nothing: the rows drained so far are
dropped, parsing not yet started is cancelled, a frame being built stops at its next step,
and Arrow's pool hands the freed memory back to the system; so does a large frame, moments
after it is dropped. A large result is never held twice: each piece of raw text is freed
once parsed, text and decimal columns stay in the parsed Arrow buffers, and each other
column is copied into the frame piece by piece and its Arrow data freed before the next.

The first way is :mod:`.copy_query`, the second :mod:`.cursor_query`; what both give back
(the result, the errors) is in :mod:`.result`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql as pg_sql

from ...progress import Progress
from ...sqlparams import bind_literals
from .copy_query import CopyQuery, ReadAsText
from .cursor_query import run_with_cursor
from .pool import ResetConnections
from .result import AsyncConnection, Planner, QueryFailed, QueryResult, Statement
from .small_query import run_small
from .types import PlanSettings, session_time_zone

__all__ = ["CopyFormats", "plan_settings", "run_query"]

# The server's answer to a statement that cannot be a subquery: a syntax error, or a
# "feature not supported" (a data-modifying WITH).
_NOT_A_SUBQUERY = frozenset({"42601", "0A000"})


class CopyFormats:
    """Which statements to read as binary ``COPY``, or without ``COPY``, learned from their last run.

    A statement whose result was small (:data:`SMALL_RESULT_BYTES`, parsed in Python) is
    run as it is next time, in one round trip (:mod:`.small_query`), until a result of it
    is not small.

    The format is part of the ``COPY`` statement, sent before the server says what the
    columns are. So a statement is read as text the first time; if its columns are best
    read as binary (:func:`.binary.prefer_binary`: all decoded there, and their
    text costs the server more than decoding costs us, as timestamps' does) and its rows
    came to more than :data:`SMALL_RESULT_BYTES` but less than ``FIRST_CHUNK_BYTES`` (one
    piece, parsed after the drain), it is read as binary when run again, much as psycopg
    prepares a statement it has seen run several times. Should the columns have changed
    to a type the decoder does not take by then (``ALTER TABLE``), the statement is run
    once more, as text, and stays text. Binary and text give the same frame.

    Measured on 10,000 rows of int8, float8, text, timestamptz, numeric(12,2), bool and
    int4 (``bench/bench_postgresql.py``), 200 interleaved runs: 14.3 ms a query in binary,
    16.8 ms in text. Past one piece, text parsed in threads while the rows still arrive
    is the faster way.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        # Statements by their hash, however long they are: two that share one would only
        # make one of them try another way once, which gives the same frame or goes back.
        self._ways: OrderedDict[int, str] = OrderedDict()

    def binary(self, statements: str) -> bool:
        """Whether to read ``statements`` as binary ``COPY``."""
        return self._ways.get(hash(statements)) == "binary"

    def small(self, statements: str) -> bool:
        """Whether to run ``statements`` as they are, without ``COPY``: their result was small."""
        return self._ways.get(hash(statements)) == "small"

    def remember(self, statements: str, *, binary: bool, small: bool = False) -> None:
        """Note how to read ``statements`` next time (as text ``COPY`` unless ``binary`` or ``small``)."""
        key = hash(statements)
        if not binary and not small:
            self._ways.pop(key, None)
            return
        self._ways[key] = "binary" if binary else "small"
        self._ways.move_to_end(key)
        if len(self._ways) > self._size:
            self._ways.popitem(last=False)


def plan_settings(conn: AsyncConnection, *, numeric_as_float: bool) -> PlanSettings:
    """Plan settings from the source's options and the session's reported parameters."""
    date_style = conn.info.parameter_status("DateStyle") or "ISO"
    return PlanSettings(
        numeric_as_float=numeric_as_float,
        time_zone=session_time_zone(conn.info.parameter_status("TimeZone")),
        iso_dates=date_style.upper().startswith("ISO"),
    )


async def run_query(
    conn: AsyncConnection,
    statement: str,
    params: Mapping[str, Any] | None,
    *,
    limit: int | None,
    planner: Planner,
    progress: Progress,
    formats: CopyFormats,
    preamble: Sequence[Statement] = (),
    reset: ResetConnections | None = None,
) -> QueryResult:
    """Run ``statement`` (``:name`` placeholders) and return its result, at most ``limit`` rows.

    ``formats`` remembers which statements to read as binary ``COPY`` next time; the
    ``preamble`` statements run first, in the same round trip (and again before a
    statement that is no subquery, as the first attempt aborted any transaction). Given
    ``reset`` (a read-only source), a statement run in one round trip ends it with the
    rollback and the reset of the session (:mod:`.small_query`).
    """
    with _sendable_in_connection_encoding(conn):
        if conn.info.encoding != "utf-8":  # COPY's text is read as UTF-8
            return await run_with_cursor(
                conn, statement, params, limit=limit, planner=planner, preamble=preamble
            )
        bound = bind_literals(statement, params, lambda value: _quoted(value, conn))
        copy = CopyQuery(conn, bound, limit=limit, planner=planner, progress=progress, preamble=preamble)
        if formats.small(copy.key):
            result, small = await run_small(
                conn, bound, copy.limited, limit=limit, planner=planner, preamble=preamble, reset=reset
            )
            formats.remember(copy.key, binary=False, small=small)
            return result
        try:
            try:
                result = await copy.run(binary=formats.binary(copy.key))
            except ReadAsText:
                result = await copy.run(binary=False)
        except QueryFailed as failed:
            if not failed.before_copy or failed.error.sqlstate not in _NOT_A_SUBQUERY:
                raise
            return await run_with_cursor(
                conn, statement, params, limit=limit, planner=planner, preamble=preamble
            )
        formats.remember(copy.key, binary=result.binary_next, small=result.small)
        return result


@contextmanager
def _sendable_in_connection_encoding(conn: AsyncConnection) -> Iterator[None]:
    """A lone surrogate, or a character the connection's encoding lacks: one clear error."""
    try:
        yield
    except UnicodeEncodeError as error:
        raise psycopg.DataError(
            f"the query or one of its values cannot be sent in the connection's encoding "
            f"({conn.info.encoding}): {error.reason}"
        ) from None


def quoted_literal(value: Any, conn: AsyncConnection) -> str:
    """``value`` as a SQL literal (:func:`_quoted`), for other readers of a statement."""
    return _quoted(value, conn)


def _quoted(value: Any, conn: AsyncConnection) -> str:
    """``value`` as a SQL literal of the type server-side binding gives it.

    psycopg writes a finite float bare (``1.5``), which the server reads as ``numeric``
    (``-0.0`` becomes ``0``, ``1e300`` a 301-digit number); bound, it is ``float8``. So a
    float is written as its ``repr`` (exact, and ``nan``/``inf`` as float8 reads them), cast.
    """
    if isinstance(value, float):
        return f"'{value!r}'::float8"
    return pg_sql.Literal(value).as_string(conn)

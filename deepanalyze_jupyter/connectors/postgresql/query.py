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
   ``COPY`` instead (:class:`CopyFormats`, :mod:`.binary`).
2. Any other statement (``SHOW``, ``EXPLAIN``, ``INSERT ... RETURNING``, DDL), which the
   server refuses as a subquery, or any statement on a connection whose client encoding
   is not UTF-8, runs as it is with server-side parameters (``$1``...)
   through a cursor; the driver receives its whole result, of which ``limit + 1`` rows
   are loaded, in a worker thread (a statement that changes data must run whole).
   A transaction-control statement (``BEGIN``, ``COMMIT``...; told by the command tag the
   server returns) raises :class:`TransactionControl`: each query is one transaction.

Both build the frame from the same column plans (:mod:`.types`); results over 2 MiB,
and results with columns loaded value by value in Python (JSON, arrays, a fallback), are
finished in a worker thread, smaller ones on the event loop (a few milliseconds), so that a
long build never holds up the other sources of the session. A cancelled query (an
interrupt, a timeout) keeps nothing: the rows drained so far are dropped, parsing not yet
started is cancelled, a frame being built stops at its next step, and Arrow's pool hands
the freed memory back to the system.
"""

from __future__ import annotations

import asyncio
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import pq
from psycopg import sql as pg_sql
from psycopg.adapt import Transformer
from psycopg.waiting import Ready, Wait

from ...progress import Progress
from ...sqlparams import BoundSQL, bind_literals, to_numbered
from .binary import decodable, decode_binary_copy, prefer_binary
from .copy import (
    FIRST_CHUNK_BYTES,
    ParseFailure,
    _flush,
    _next_result,
    arrow_pool,
    copy_out,
    finish_columns,
    give_back_memory,
    parse_copy_text,
    parse_small_copy_text,
)
from .types import (
    ColumnKind,
    ColumnPlan,
    ConversionError,
    PlanSettings,
    frame_from_columns,
    frame_from_values,
    session_time_zone,
)

__all__ = [
    "BuildCancelled",
    "CopyFormats",
    "CopyStatement",
    "Planner",
    "QueryFailed",
    "QueryResult",
    "Statement",
    "TransactionControl",
    "plan_settings",
    "result_fields",
    "run_query",
]

AsyncConnection = psycopg.AsyncConnection[Any]
#: Makes the column plans for a result's ``(name, oid, modifier)`` fields.
Planner = Callable[[Sequence[tuple[str, int, int]]], list[ColumnPlan]]
#: One of the connector's own statements, with its parameters (text), run before the query.
Statement = tuple[str, Sequence[str] | None]

_SUBQUERY_PREFIX = "SELECT * FROM (\n"
_SUBQUERY_SUFFIX = "\n) AS q"
# The server's answer to a statement that cannot be a subquery: a syntax error, or a
# "feature not supported" (a data-modifying WITH).
_NOT_A_SUBQUERY = frozenset({"42601", "0A000"})
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
#: Results up to this size are parsed in Python on the spot, not by pyarrow.
SMALL_RESULT_BYTES = 32 << 10
#: Results up to this size are finished on the event loop: a few milliseconds of work,
#: less than handing it to a thread and back on a busy machine.
INLINE_BUILD_BYTES = 2 << 20
#: Rows of a cursor's result loaded in one call (which holds the interpreter).
_LOAD_BATCH_ROWS = 64

#: Called between the steps of a frame's build; raises :class:`BuildCancelled` once the
#: caller has gone away.
Checkpoint = Callable[[], None]


class CopyFormats:
    """Which statements to read as binary ``COPY``, learned from their last run.

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
        # make one of them try binary once, which gives the same frame or goes back to text.
        self._binary: OrderedDict[int, bool] = OrderedDict()

    def binary(self, statements: str) -> bool:
        """Whether to read ``statements`` as binary ``COPY``."""
        return self._binary.get(hash(statements), False)

    def remember(self, statements: str, *, binary: bool) -> None:
        """Note how to read ``statements`` next time."""
        key = hash(statements)
        if not binary:
            self._binary.pop(key, None)
            return
        self._binary[key] = True
        self._binary.move_to_end(key)
        if len(self._binary) > self._size:
            self._binary.popitem(last=False)


class TransactionControl(Exception):
    """The statement was a transaction-control statement (``tag``: its command tag)."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


class CopyStatement(Exception):
    """The statement was a ``COPY ... TO STDOUT`` or ``FROM STDIN``, which a query cannot run."""


class QueryFailed(Exception):
    """A psycopg error, with how to map its position back to the user's SQL."""

    def __init__(
        self,
        error: psycopg.Error,
        position: Callable[[int], int | None] | None,
        *,
        before_copy: bool = False,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.position = position
        #: The statement failed as a subquery, before any row was read.
        self.before_copy = before_copy


class BuildCancelled(Exception):
    """The build of a frame stopped because whoever waited for it was cancelled."""


@dataclass
class QueryResult:
    """What came back from the server; :meth:`frame` builds the DataFrame (in a worker thread)."""

    build: Callable[[Checkpoint], pd.DataFrame]
    truncated: bool
    in_thread: bool = True
    #: Whether the same statement is best read as binary ``COPY`` next time.
    binary_next: bool = False

    async def frame(self) -> pd.DataFrame:
        """The result as a DataFrame (the raw data is released once it is built).

        Cancelled while a worker thread builds it, the build stops at its next step and
        this returns (re-raising the cancellation) once the thread has let go of the data.
        """
        build, self.build = self.build, _no_frame
        if not self.in_thread:
            return build(_go_on)
        stop = threading.Event()

        def checkpoint() -> None:
            if stop.is_set():
                raise BuildCancelled

        work = asyncio.get_running_loop().run_in_executor(None, build, checkpoint)
        work.add_done_callback(_retrieve_outcome)
        del build  # the worker holds the data now; a traceback through here must not
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait([work])
            give_back_memory()
            raise


def _go_on() -> None:
    """The checkpoint of a build on the event loop: nothing can cancel it midway."""


def _retrieve_outcome(work: asyncio.Future[Any]) -> None:
    """Mark a build's outcome as seen (a cancelled caller never looks at it)."""
    if not work.cancelled():
        work.exception()


def _no_frame(checkpoint: Checkpoint) -> pd.DataFrame:
    raise RuntimeError("the frame of this result was already built")


def plan_settings(conn: AsyncConnection, *, numeric_as_float: bool) -> PlanSettings:
    """Plan settings from the source's options and the session's reported parameters."""
    date_style = conn.info.parameter_status("DateStyle") or "ISO"
    return PlanSettings(
        numeric_as_float=numeric_as_float,
        time_zone=session_time_zone(conn.info.parameter_status("TimeZone")),
        iso_dates=date_style.upper().startswith("ISO"),
    )


def result_fields(result: pq.abc.PGresult | None) -> list[tuple[str, int, int]]:
    """``(name, type oid, type modifier)`` of each column of a result."""
    if result is None:
        return []
    return [
        (
            (result.fname(index) or b"").decode("utf-8"),
            result.ftype(index),
            result.fmod(index),
        )
        for index in range(result.nfields)
    ]


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
) -> QueryResult:
    """Run ``statement`` (``:name`` placeholders) and return its result, at most ``limit`` rows.

    ``formats`` remembers which statements to read as binary ``COPY`` next time; the
    ``preamble`` statements run first, in the same round trip (and again before a
    statement that is no subquery, as the first attempt aborted any transaction).
    """
    with _sendable_in_connection_encoding(conn):
        if conn.info.encoding != "utf-8":  # COPY's text is read as UTF-8
            return await _run_with_cursor(
                conn, statement, params, limit=limit, planner=planner, preamble=preamble
            )
        bound = bind_literals(statement, params, lambda value: _quoted(value, conn))
        copy = _CopyQuery(conn, bound, limit=limit, planner=planner, progress=progress, preamble=preamble)
        try:
            try:
                result = await copy.run(binary=formats.binary(copy.key))
            except _ReadAsText:
                result = await copy.run(binary=False)
        except QueryFailed as failed:
            if not failed.before_copy or failed.error.sqlstate not in _NOT_A_SUBQUERY:
                raise
            return await _run_with_cursor(
                conn, statement, params, limit=limit, planner=planner, preamble=preamble
            )
        formats.remember(copy.key, binary=result.binary_next)
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


def _quoted(value: Any, conn: AsyncConnection) -> str:
    """``value`` as a SQL literal of the type server-side binding gives it.

    psycopg writes a finite float bare (``1.5``), which the server reads as ``numeric``
    (``-0.0`` becomes ``0``, ``1e300`` a 301-digit number); bound, it is ``float8``. So a
    float is written as its ``repr`` (exact, and ``nan``/``inf`` as float8 reads them), cast.
    """
    if isinstance(value, float):
        return f"'{value!r}'::float8"
    return pg_sql.Literal(value).as_string(conn)


def _position_in(bound: BoundSQL, prefix_length: int) -> Callable[[int], int | None]:
    def position(reported: int) -> int | None:
        inside = reported - prefix_length
        if 1 <= inside <= len(bound.text):
            return bound.original_position(inside)
        return None

    return position


class _ReadAsText(Exception):
    """The columns of a binary ``COPY`` are not all for the decoder (the table changed)."""


class _CopyQuery:
    """One statement read through ``COPY``, as text or binary."""

    def __init__(
        self,
        conn: AsyncConnection,
        bound: BoundSQL,
        *,
        limit: int | None,
        planner: Planner,
        progress: Progress,
        preamble: Sequence[Statement] = (),
    ) -> None:
        self._conn = conn
        self._preamble = preamble
        self._bound = bound
        self._limit = limit
        self._planner = planner
        self._progress = progress
        subquery = f"{_SUBQUERY_PREFIX}{bound.text}{_SUBQUERY_SUFFIX}"
        limit_clause = "" if limit is None else f" LIMIT {int(limit) + 1:d}"
        #: The statements sent (without the format): what :class:`CopyFormats` remembers.
        self.key = f"{subquery} LIMIT 0;\nCOPY ({subquery}{limit_clause}) TO STDOUT"
        self._subquery = subquery
        self._copy = f"COPY ({subquery}{limit_clause}) TO STDOUT"
        # what one run has seen: the columns, the pieces handed over and their parsing
        self._plans: list[ColumnPlan] = []
        self._chunks: list[bytearray] = []
        self._parsing: list[asyncio.Future[pa.Table]] = []
        self._described = False
        self._stop = threading.Event()

    async def run(self, *, binary: bool) -> QueryResult:
        """Send the statements and read the rows; the frame is built by the result."""
        self._plans, self._chunks, self._parsing, self._described = [], [], [], False
        self._stop = threading.Event()
        ends: array[int] | None = array("q") if binary else None
        statement = f"{self._copy} (FORMAT binary)" if binary else self._copy
        try:
            rows, tail = await self._drain(statement, ends)
            truncated = self._limit is not None and rows > self._limit
            kept = rows if self._limit is None else min(rows, self._limit)
            if ends is not None:
                return self._binary_result(tail, ends, rows=rows, kept=kept, truncated=truncated)
            return await self._text_result(tail, rows=rows, kept=kept, truncated=truncated)
        except BaseException:
            await self._release()
            raise
        finally:
            self._chunks, self._parsing = [], []  # the result holds what it needs

    async def _release(self) -> None:
        """Drop the rows read so far (a traceback may outlive this run) and stop their parsing.

        Pieces not yet parsed are skipped; a piece being parsed is waited for (a fraction
        of a second), so that its memory is free when the memory is given back.
        """
        self._stop.set()
        self._chunks.clear()
        parsing, self._parsing = self._parsing, []
        if parsing:
            await asyncio.wait(parsing)
            for future in parsing:
                _retrieve_outcome(future)
            parsing.clear()  # the futures hold the tables parsed
            give_back_memory()

    def _describe(self, result: pq.abc.PGresult) -> None:
        self._described = True
        self._plans.extend(self._planner(result_fields(result)))

    def _take(self, chunk: bytearray) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # psycopg drains what is left after a cancel
            return
        self._chunks.append(chunk)
        loop = asyncio.get_running_loop()
        self._parsing.append(loop.run_in_executor(None, self._parse_piece, chunk))
        self._progress.update(nbytes=len(chunk))

    def _parse_piece(self, chunk: bytearray) -> pa.Table:
        """(In a worker thread.) Parse one piece, unless the run was given up meanwhile."""
        if self._stop.is_set():
            raise BuildCancelled
        return parse_copy_text(chunk, self._plans)

    async def _drain(self, statement: str, ends: array[int] | None) -> tuple[int, bytearray]:
        """Describe, then run the ``COPY``; the row count and the last buffer (``ends``: see ``copy_out``)."""
        pgconn = self._conn.pgconn
        try:
            self._describe(await self._conn.wait(describe_statement(pgconn, self._preamble, self._subquery)))
            generator = copy_out(pgconn, statement.encode("utf-8"), self._describe, self._take, ends=ends)
            return await self._conn.wait(generator)
        except psycopg.Error as error:
            raise QueryFailed(
                error, _position_in(self._bound, len(_SUBQUERY_PREFIX)), before_copy=not self._described
            ) from error

    async def _text_result(self, tail: bytearray, *, rows: int, kept: int, truncated: bool) -> QueryResult:
        plans, chunks = self._plans, self._chunks
        size = sum(map(len, chunks)) + len(tail)
        binary_next = _binary_next(size, plans)
        if not plans:  # rows of no columns: nothing to parse
            for future in self._parsing:
                future.cancel()
            return QueryResult(lambda _: frame_from_columns(plans, [], kept), truncated, in_thread=False)
        if not chunks and len(tail) <= SMALL_RESULT_BYTES:
            columns, count = parse_small_copy_text(tail, plans)
            if count != rows:
                raise ConversionError(f"COPY sent {rows} rows but {count} were read")
            frame = frame_from_values(plans, [column[:kept] for column in columns], kept)
            return QueryResult(lambda checkpoint: frame, truncated, in_thread=False)
        parsed: list[pa.Table | BaseException] = list(
            await asyncio.gather(*self._parsing, return_exceptions=True)
        )
        large = size > INLINE_BUILD_BYTES
        if tail:
            self._progress.update(nbytes=len(tail))
            chunks.append(tail)
            if not large:  # a few milliseconds of pyarrow's work, rather than one more thread
                parsed.append(_parse_or_failure(tail, plans))
        # loading values one by one in Python takes long: not on the event loop
        in_thread = large or any(plan.kind is ColumnKind.PYTHON for plan in plans) or _any_failure(parsed)

        def build(checkpoint: Checkpoint) -> pd.DataFrame:
            try:
                if len(parsed) < len(chunks):  # the tail, parsed here rather than in one more thread
                    checkpoint()
                    parsed.append(_parse_or_failure(chunks[-1], plans))
                return _frame_from_copy(chunks, parsed, plans, rows=rows, kept=kept, checkpoint=checkpoint)
            finally:
                chunks.clear()  # stopped or failed too: nothing may keep the raw rows
                parsed.clear()
                if large:  # hand the parser's scratch memory back to the system, not to the next query
                    give_back_memory()

        return QueryResult(build, truncated, in_thread=in_thread, binary_next=binary_next)

    def _binary_result(
        self, data: bytearray, ends: array[int], *, rows: int, kept: int, truncated: bool
    ) -> QueryResult:
        plans = self._plans
        if not all(map(decodable, plans)):
            raise _ReadAsText
        self._progress.update(nbytes=len(data))

        def build(checkpoint: Checkpoint) -> pd.DataFrame:
            checkpoint()
            columns = decode_binary_copy(data, ends, plans, rows=rows, keep=kept)
            return frame_from_columns(plans, columns, kept)

        return QueryResult(
            build,
            truncated,
            in_thread=len(data) > INLINE_BUILD_BYTES,
            binary_next=_binary_next(len(data), plans),
        )


def _binary_next(size: int, plans: Sequence[ColumnPlan]) -> bool:
    """Whether a result of ``size`` bytes is best read as binary next time: one piece of
    text (more than the few rows parsed in Python, less than the first piece handed to a
    parser thread), of columns best read as binary."""
    return SMALL_RESULT_BYTES < size < FIRST_CHUNK_BYTES and prefer_binary(plans)


def _frame_from_copy(
    chunks: list[bytearray],
    parsed: list[pa.Table | BaseException],
    plans: list[ColumnPlan],
    *,
    rows: int,
    kept: int,
    checkpoint: Checkpoint,
) -> pd.DataFrame:
    """Parse what pyarrow could not (columns read as text instead), then build the frame.

    Each pass reads at least one more column as text, so the passes end.
    """
    while failure := next((item for item in parsed if isinstance(item, ParseFailure)), None):
        native = [index for index in failure.columns if plans[index].kind is ColumnKind.NATIVE]
        if not native:
            raise ConversionError(f"cannot parse the rows the server sent: {failure}")
        plans = [plan.as_python() if index in native else plan for index, plan in enumerate(plans)]
        parsed.clear()
        for chunk in chunks:
            checkpoint()
            parsed.append(_parse_or_failure(chunk, plans))
    for item in parsed:
        if isinstance(item, BaseException):
            raise item
    chunks.clear()  # the raw text is no longer needed: release it before building the frame
    tables = [item for item in parsed if isinstance(item, pa.Table)]
    parsed.clear()
    table = pa.concat_tables(tables, memory_pool=arrow_pool()) if tables else parse_copy_text(b"", plans)
    del tables
    if table.num_rows != rows:
        raise ConversionError(f"COPY sent {rows} rows but {table.num_rows} were read")
    checkpoint()
    columns = finish_columns(table.slice(0, kept), plans, checkpoint)
    del table
    checkpoint()
    return frame_from_columns(plans, columns, kept)


def _any_failure(parsed: Sequence[pa.Table | BaseException]) -> bool:
    return any(isinstance(item, BaseException) for item in parsed)


def _parse_or_failure(chunk: bytearray, plans: Sequence[ColumnPlan]) -> pa.Table | BaseException:
    try:
        return parse_copy_text(chunk, plans)
    except (ParseFailure, ConversionError) as failure:
        return failure


def describe_statement(
    pgconn: pq.abc.PGconn, preamble: Sequence[Statement], statement: str
) -> Generator[Wait, Ready | int, pq.abc.PGresult]:
    """Run ``preamble``, then parse and describe (without running) ``statement``: one round trip.

    Returns the description (the columns); raises the server's error for the first
    statement that failed. The server parses ``statement`` as one statement only.
    """
    pgconn.enter_pipeline_mode()
    try:
        for text, values in preamble:
            pgconn.send_query_params(text.encode("utf-8"), [v.encode("utf-8") for v in values or ()])
        pgconn.send_prepare(b"", statement.encode("utf-8"))
        pgconn.send_describe_prepared(b"")
        pgconn.pipeline_sync()
        yield from _flush(pgconn)
        failed = described = None
        while True:
            result = yield from _next_result(pgconn)
            if result is None:  # the end of one statement's results
                continue
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                break
            if result.status == pq.ExecStatus.FATAL_ERROR and failed is None:
                failed = result
            described = result
    finally:
        pgconn.exit_pipeline_mode()
    if failed is not None:
        raise psycopg.errors.error_from_result(failed, encoding="utf-8")
    assert described is not None
    return described


async def _run_with_cursor(
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
        rows = await asyncio.to_thread(_load_rows, conn, result, count) if count else []
    plans = planner(fields)
    truncated = limit is not None and len(rows) > limit
    if truncated:
        del rows[limit:]

    def build(checkpoint: Checkpoint) -> pd.DataFrame:
        checkpoint()
        columns = _transpose(rows, len(plans))
        count = len(rows)
        rows.clear()
        return frame_from_values(plans, columns, count)

    return QueryResult(build, truncated)


def _load_rows(conn: AsyncConnection, result: pq.abc.PGresult | None, count: int) -> list[tuple[Any, ...]]:
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

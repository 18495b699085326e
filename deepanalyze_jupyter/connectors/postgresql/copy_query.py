"""Reading a statement that can stand as a subquery through ``COPY``, as text or binary.

The statement is parsed and described (not run) as ``SELECT * FROM (<sql>) AS q``, in the
same round trip as the connector's own statements (the ``preamble``), then run as
``COPY (SELECT * FROM (<sql>) AS q LIMIT <limit + 1>) TO STDOUT``. Up to
:data:`SMALL_RESULT_BYTES` of rows are parsed in Python with psycopg's loaders; more are
parsed by pyarrow in worker threads while the rest still arrives (see :mod:`.copy`);
binary ``COPY`` is decoded by :mod:`.binary`. Binary results, text results over
:data:`INLINE_BUILD_BYTES`, and results with columns loaded value by value in Python are
finished in a worker thread (10,000 rows read as binary: 80.6 ms decoded in a thread, 84.8 ms
on the event loop, medians of 120 interleaved runs on a busy 2-core machine).
"""

from __future__ import annotations

import asyncio
import threading
from array import array
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import pq
from psycopg.waiting import Ready, Wait

from ...progress import Progress
from ...sqlparams import BoundSQL
from .binary import decodable, decode_binary_copy, prefer_binary
from .columns import Column, result_from_columns, result_from_values
from .copy import (
    FIRST_CHUNK_BYTES,
    _flush,
    _next_result,
    copy_out,
    finish_columns,
    join_pieces,
    parse_copy_text,
    parse_piece,
    parse_small_copy_text,
)
from .memory import give_back_memory, give_back_memory_when_dropped, giving_back
from .result import (
    AsyncConnection,
    BuildCancelled,
    Checkpoint,
    Planner,
    QueryFailed,
    QueryResult,
    Statement,
    result_fields,
    retrieve_outcome,
)
from .types import ColumnKind, ColumnPlan, ConversionError

__all__ = [
    "INLINE_BUILD_BYTES",
    "SMALL_RESULT_BYTES",
    "SUBQUERY_PREFIX",
    "CopyQuery",
    "ReadAsText",
    "describe_statement",
    "pipelined",
    "position_in",
]

SUBQUERY_PREFIX = "SELECT * FROM (\n"
_SUBQUERY_SUFFIX = "\n) AS q"
#: Results up to this size are parsed in Python on the spot, not by pyarrow.
SMALL_RESULT_BYTES = 32 << 10
#: Results up to this size are finished on the event loop: a few milliseconds of work,
#: less than handing it to a thread and back on a busy machine.
INLINE_BUILD_BYTES = 2 << 20


def position_in(bound: BoundSQL, prefix_length: int) -> Callable[[int], int | None]:
    def position(reported: int) -> int | None:
        inside = reported - prefix_length
        if 1 <= inside <= len(bound.text):
            return bound.original_position(inside)
        return None

    return position


class ReadAsText(Exception):
    """The columns of a binary ``COPY`` are not all for the decoder (the table changed)."""


class CopyQuery:
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
        subquery = f"{SUBQUERY_PREFIX}{bound.text}{_SUBQUERY_SUFFIX}"
        limit_clause = "" if limit is None else f" LIMIT {int(limit) + 1:d}"
        #: The statements sent (without the format): what :class:`CopyFormats` remembers.
        self.key = f"{subquery} LIMIT 0;\nCOPY ({subquery}{limit_clause}) TO STDOUT"
        self._subquery = subquery
        #: The statement as a subquery with the row limit (and one more row), as ``COPY`` reads it.
        self.limited = f"{subquery}{limit_clause}"
        self._copy = f"COPY ({subquery}{limit_clause}) TO STDOUT"
        # what one run has seen: the columns, the bytes of the pieces handed over and their parsing
        self._plans: list[ColumnPlan] = []
        self._handed = 0
        self._parsing: list[asyncio.Future[Piece]] = []
        self._described = False
        self._stop = threading.Event()

    async def run(self, *, binary: bool) -> QueryResult:
        """Send the statements and read the rows; the frame (or table) is built by the result."""
        self._plans, self._handed, self._parsing, self._described = [], 0, [], False
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
            self._parsing = []  # the result holds what it needs

    async def _release(self) -> None:
        """Drop the rows read so far (a traceback may outlive this run) and stop their parsing.

        Pieces not yet parsed are skipped; a piece being parsed is waited for (a fraction
        of a second), so that its memory is free when the memory is given back.
        """
        self._stop.set()
        parsing, self._parsing = self._parsing, []
        if parsing:
            await asyncio.wait(parsing)
            for future in parsing:
                retrieve_outcome(future)
            parsing.clear()  # the futures hold the tables parsed
            give_back_memory()

    def _describe(self, result: pq.abc.PGresult) -> None:
        self._described = True
        self._plans.extend(self._planner(result_fields(result)))

    def _take(self, chunk: bytearray) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # psycopg drains what is left after a cancel
            return
        self._handed += len(chunk)
        self._progress.update(nbytes=len(chunk))
        loop = asyncio.get_running_loop()
        self._parsing.append(loop.run_in_executor(None, self._parse_piece, [chunk]))

    def _parse_piece(self, holder: list[bytearray]) -> Piece:
        """(In a worker thread.) Parse one piece, unless the run was given up meanwhile.

        The raw text is the worker's alone (``holder`` is emptied): it is freed, and its
        memory handed back to the system, as soon as it is parsed, so that the rows are
        never held as text and as Arrow data at once.
        """
        chunk = holder.pop()
        try:
            if self._stop.is_set():
                raise BuildCancelled
            return Piece.parse(chunk, self._plans)
        finally:
            del chunk
            give_back_memory()

    async def _drain(self, statement: str, ends: array[int] | None) -> tuple[int, bytearray]:
        """Describe, then run the ``COPY``; the row count and the last buffer (``ends``: see ``copy_out``)."""
        pgconn = self._conn.pgconn
        try:
            self._describe(await self._conn.wait(describe_statement(pgconn, self._preamble, self._subquery)))
            generator = copy_out(pgconn, statement.encode("utf-8"), self._describe, self._take, ends=ends)
            return await self._conn.wait(generator)
        except psycopg.Error as error:
            raise QueryFailed(
                error, position_in(self._bound, len(SUBQUERY_PREFIX)), before_copy=not self._described
            ) from error

    async def _text_result(self, tail: bytearray, *, rows: int, kept: int, truncated: bool) -> QueryResult:
        plans = self._plans
        size = self._handed + len(tail)
        binary_next = _binary_next(size, plans)
        if not plans:  # rows of no columns: nothing to parse
            for future in self._parsing:
                future.cancel()
            return QueryResult(
                lambda _, arrow: result_from_columns(plans, [], kept, arrow=arrow), truncated, in_thread=False
            )
        if not self._parsing and len(tail) <= SMALL_RESULT_BYTES:
            columns, count = parse_small_copy_text(tail, plans)
            if count != rows:
                raise ConversionError(f"COPY sent {rows} rows but {count} were read")
            values = [column[:kept] for column in columns]
            return QueryResult(
                lambda _, arrow: result_from_values(plans, values, kept, arrow=arrow),
                truncated,
                in_thread=False,
                small=True,
            )
        parsed = await asyncio.gather(*self._parsing, return_exceptions=True)
        pieces: list[Piece | BaseException | _Unparsed] = list(parsed)
        del parsed
        large = size > INLINE_BUILD_BYTES
        if tail:
            self._progress.update(nbytes=len(tail))
            # a few milliseconds of pyarrow's work on the event loop, rather than one more thread
            pieces.append(_Unparsed(tail) if large else Piece.parse_or_failure(tail, plans))
        del tail
        # loading values one by one in Python takes long: not on the event loop
        in_thread = large or any(plan.kind is ColumnKind.PYTHON for plan in plans) or _needs_work(pieces)

        def build(checkpoint: Checkpoint, arrow: bool) -> pd.DataFrame | pa.Table:
            try:
                if pieces and isinstance(
                    pieces[-1], _Unparsed
                ):  # the tail, parsed here rather than in one more thread
                    checkpoint()
                    pieces[-1] = Piece.parse_or_failure(pieces[-1].data, plans)
                columns = _columns_from_pieces(pieces, plans, rows=rows, kept=kept, checkpoint=checkpoint)
                step = giving_back(checkpoint) if large else checkpoint
                result = result_from_columns(plans, columns, kept, arrow=arrow, checkpoint=step)
                if large:
                    give_back_memory_when_dropped(result)
                return result
            finally:
                pieces.clear()  # stopped or failed too: nothing may keep the rows
                if large:  # hand the parser's scratch memory back to the system, not to the next query
                    give_back_memory()

        return QueryResult(build, truncated, in_thread=in_thread, binary_next=binary_next)

    def _binary_result(
        self, data: bytearray, ends: array[int], *, rows: int, kept: int, truncated: bool
    ) -> QueryResult:
        plans = self._plans
        if not all(map(decodable, plans)):
            raise ReadAsText
        self._progress.update(nbytes=len(data))

        def build(checkpoint: Checkpoint, arrow: bool) -> pd.DataFrame | pa.Table:
            checkpoint()
            columns = decode_binary_copy(data, ends, plans, rows=rows, keep=kept)
            return result_from_columns(plans, columns, kept, arrow=arrow)

        return QueryResult(
            build,
            truncated,
            in_thread=True,  # numpy's gathers hold the loop: 10k rows cost the same either way
            binary_next=_binary_next(len(data), plans),
        )


def _binary_next(size: int, plans: Sequence[ColumnPlan]) -> bool:
    """Whether a result of ``size`` bytes is best read as binary next time: one piece of
    text (more than the few rows parsed in Python, less than the first piece handed to a
    parser thread), of columns best read as binary."""
    return SMALL_RESULT_BYTES < size < FIRST_CHUNK_BYTES and prefer_binary(plans)


@dataclass
class Piece:
    """One buffer of ``COPY`` text, parsed: the table and the plans it was parsed with."""

    table: pa.Table
    plans: list[ColumnPlan]

    @classmethod
    def parse(cls, data: bytes | bytearray, plans: Sequence[ColumnPlan]) -> Piece:
        """Parse ``data`` (:func:`.copy.parse_piece`)."""
        return cls(*parse_piece(data, plans))

    @classmethod
    def parse_or_failure(cls, data: bytes | bytearray, plans: Sequence[ColumnPlan]) -> Piece | BaseException:
        """:meth:`parse`, or the error it raised (reported once every piece is in)."""
        try:
            return cls.parse(data, plans)
        except ConversionError as failure:
            return failure


@dataclass
class _Unparsed:
    """The last buffer of a large result, parsed by the build in its worker thread."""

    data: bytearray


def _needs_work(pieces: Sequence[Piece | BaseException | _Unparsed]) -> bool:
    """Whether finishing the pieces loads values in Python (or raises, which is as well done in a thread)."""
    return any(
        isinstance(piece, BaseException) or any(plan.kind is ColumnKind.PYTHON for plan in piece.plans)
        for piece in pieces
        if not isinstance(piece, _Unparsed)
    )


def _columns_from_pieces(
    pieces: list[Piece | BaseException | _Unparsed],
    plans: Sequence[ColumnPlan],
    *,
    rows: int,
    kept: int,
    checkpoint: Checkpoint,
) -> list[Column]:
    """The first ``kept`` rows of the parsed pieces as finished columns; ``pieces`` is emptied.

    Each piece is finished (text unescaped, values pyarrow left as text loaded) and dropped
    in turn, so that the result's data is never held twice.
    """
    for piece in pieces:
        if isinstance(piece, BaseException):
            raise piece
    parsed = [piece for piece in pieces if isinstance(piece, Piece)]
    pieces.clear()
    count = sum(piece.table.num_rows for piece in parsed)
    if count != rows:
        raise ConversionError(f"COPY sent {rows} rows but {count} were read")
    if not parsed:
        return finish_columns(parse_copy_text(b"", plans), plans, checkpoint)
    finished: list[list[Column]] = []
    left = kept
    parsed.reverse()
    while parsed:
        piece = parsed.pop()
        if left or not finished:  # pieces past the last row kept are dropped unread
            finished.append(finish_columns(piece.table.slice(0, left), piece.plans, checkpoint))
            left -= min(left, piece.table.num_rows)
        del piece
    return join_pieces(finished)


def describe_statement(
    pgconn: pq.abc.PGconn, preamble: Sequence[Statement], statement: str
) -> Generator[Wait, Ready | int, pq.abc.PGresult]:
    """Run ``preamble``, then parse and describe (without running) ``statement``: one round trip.

    Returns the description (the columns); raises the server's error for the first
    statement that failed. The server parses ``statement`` as one statement only.
    """

    def send_last() -> None:
        pgconn.send_prepare(b"", statement.encode("utf-8"))
        pgconn.send_describe_prepared(b"")

    return (yield from pipelined(pgconn, preamble, send_last))


def pipelined(
    pgconn: pq.abc.PGconn,
    preamble: Sequence[Statement],
    send_last: Callable[[], None],
    after: Sequence[Statement] = (),
) -> Generator[Wait, Ready | int, pq.abc.PGresult]:
    """Run ``preamble``, what ``send_last`` sends, then ``after``, in one pipeline: one round trip.

    Returns the last result of what ``send_last`` sent; raises the server's error for the
    first statement that failed (the ones after it are skipped by the server).
    """
    pgconn.enter_pipeline_mode()
    try:
        for text, values in preamble:
            pgconn.send_query_params(text.encode("utf-8"), [v.encode("utf-8") for v in values or ()])
        send_last()
        for text, values in after:
            pgconn.send_query_params(text.encode("utf-8"), [v.encode("utf-8") for v in values or ()])
        pgconn.pipeline_sync()
        yield from _flush(pgconn)
        failed = None
        results: list[pq.abc.PGresult] = []
        while True:
            result = yield from _next_result(pgconn)
            if result is None:  # the end of one statement's results
                continue
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                break
            if result.status == pq.ExecStatus.FATAL_ERROR and failed is None:
                failed = result
            results.append(result)
    finally:
        pgconn.exit_pipeline_mode()
    if failed is not None:
        raise psycopg.errors.error_from_result(failed, encoding="utf-8")
    return results[-1 - len(after)]

"""What a query gives back: its result (a frame or an Arrow table, built in a worker thread) and its errors.

Shared by the two ways a statement is read (:mod:`.copy_query`, :mod:`.cursor_query`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import pq

from .memory import give_back_memory
from .types import ColumnPlan

__all__ = [
    "AsyncConnection",
    "Build",
    "BuildCancelled",
    "Checkpoint",
    "CopyStatement",
    "Planner",
    "QueryFailed",
    "QueryResult",
    "Statement",
    "TransactionControl",
    "result_fields",
    "retrieve_outcome",
]

AsyncConnection = psycopg.AsyncConnection[Any]
#: Makes the column plans for a result's ``(name, oid, modifier)`` fields.
Planner = Callable[[Sequence[tuple[str, int, int]]], list[ColumnPlan]]
#: One of the connector's own statements, with its parameters (text), run before the query.
Statement = tuple[str, Sequence[str] | None]

#: Called between the steps of a frame's build; raises :class:`BuildCancelled` once the
#: caller has gone away.
Checkpoint = Callable[[], None]


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


#: Builds a result from what the server sent: an Arrow table if asked (``True``), else a DataFrame.
Build = Callable[[Checkpoint, bool], "pd.DataFrame | pa.Table"]


@dataclass
class QueryResult:
    """What came back from the server; :meth:`frame` builds the DataFrame, :meth:`table` the
    Arrow table (in a worker thread), once."""

    build: Build
    truncated: bool
    in_thread: bool = True
    #: Whether the same statement is best read as binary ``COPY`` next time.
    binary_next: bool = False
    #: Whether the result was small: the same statement is best run without ``COPY`` next time.
    small: bool = False

    async def frame(self) -> pd.DataFrame:
        """The result as a DataFrame (the raw data is released once it is built)."""
        frame = await self._built(arrow=False)
        assert isinstance(frame, pd.DataFrame)
        return frame

    async def table(self) -> pa.Table:
        """The result as an Arrow table, built from the parsed columns with no pandas step."""
        table = await self._built(arrow=True)
        assert isinstance(table, pa.Table)
        return table

    async def _built(self, *, arrow: bool) -> pd.DataFrame | pa.Table:
        """Build the result (the raw data is released once it is built).

        Cancelled while a worker thread builds it, the build stops at its next step and
        this returns (re-raising the cancellation) once the thread has let go of the data.
        """
        build, self.build = self.build, _no_frame
        if not self.in_thread:
            return build(_go_on, arrow)
        stop = threading.Event()

        def checkpoint() -> None:
            if stop.is_set():
                raise BuildCancelled

        loop = asyncio.get_running_loop()
        work: asyncio.Future[pd.DataFrame | pa.Table] = loop.create_future()
        work.add_done_callback(retrieve_outcome)
        loop.run_in_executor(None, _build_for, [work], build, checkpoint, arrow)
        del build  # the worker holds the data now; a traceback through here must not
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait([work])
            give_back_memory()
            raise


def _build_for(waiting: list[asyncio.Future[Any]], build: Build, checkpoint: Checkpoint, arrow: bool) -> None:
    """(In a worker thread.) Build the result and hand it to the future in ``waiting``, on its loop.

    Only the waiting task keeps the result: neither the executor (whose worker keeps the
    call's arguments and future a moment after the call) nor this thread, which would
    otherwise be the last to let go of a frame the caller already dropped (and so free it
    late, after the caller measured its memory). The loop takes the future and the result
    out of the lists they are handed in.
    """
    loop = waiting[0].get_loop()
    outcome: list[Any] = [None, None]  # the result or the error
    try:
        outcome[0] = build(checkpoint, arrow)
    except BaseException as error:  # handed to the waiting task, as a future would
        outcome[1] = error
    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
        loop.call_soon_threadsafe(_settle, waiting, outcome)


def _settle(waiting: list[asyncio.Future[Any]], outcome: list[Any]) -> None:
    work = waiting.pop()
    result, error = outcome
    outcome.clear()
    if work.done():
        return
    if error is not None:
        work.set_exception(error)
    else:
        work.set_result(result)


def _go_on() -> None:
    """The checkpoint of a build on the event loop: nothing can cancel it midway."""


def retrieve_outcome(work: asyncio.Future[Any]) -> None:
    """Mark a build's outcome as seen (a cancelled caller never looks at it)."""
    if not work.cancelled():
        work.exception()


def _no_frame(checkpoint: Checkpoint, arrow: bool) -> pd.DataFrame:
    raise RuntimeError("the frame of this result was already built")


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

"""The pooled connections of a PostgreSQL source: checked before use, reset after it.

psycopg_pool's warnings stay off stderr unless logging is set up (:func:`quiet_pool_warnings`).
"""

from __future__ import annotations

import asyncio
import logging
import select
import weakref
from collections.abc import Generator
from typing import Any

import psycopg
from psycopg import pq
from psycopg.waiting import Ready, Wait
from psycopg_pool import AsyncConnectionPool

from .copy import _finish, _flush
from .result import Statement

__all__ = [
    "END_AND_RESET",
    "POOL_NAME_PREFIX",
    "ResetConnections",
    "check_connection",
    "quiet_pool_warnings",
    "reset_connection",
]

AsyncConnection = psycopg.AsyncConnection[Any]

#: ``DISCARD ALL`` in parts: it cannot run in a transaction, nor after ``ROLLBACK`` in one message.
_RESET_SESSION = (
    "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; CLOSE ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"
)
#: The end of a read-only query and the reset, one statement each, to end a query's own pipeline.
END_AND_RESET: tuple[Statement, ...] = (
    ("ROLLBACK", None),
    *((text, None) for text in _RESET_SESSION.split("; ")),
)


class ResetConnections:
    """The connections whose last query ended with the reset (:data:`END_AND_RESET`) in its own
    round trip: the reset after it (:func:`reset_connection`) is skipped once."""

    def __init__(self) -> None:
        self._reset: weakref.WeakSet[AsyncConnection] = weakref.WeakSet()

    def mark(self, conn: AsyncConnection, *, read_only: bool) -> None:
        """Note that ``conn`` ran :data:`END_AND_RESET` (only if it is idle and as read-only as before)."""
        if conn.pgconn.transaction_status == pq.TransactionStatus.IDLE and _as_read_only(conn, read_only):
            self._reset.add(conn)

    def take(self, conn: AsyncConnection) -> bool:
        """Whether ``conn`` was reset by its last query; it must be reset after the next one."""
        reset = conn in self._reset
        self._reset.discard(conn)
        return reset and conn.pgconn.transaction_status == pq.TransactionStatus.IDLE


async def check_connection(conn: AsyncConnection) -> None:
    """Check a pooled connection before use, with a round trip only when it needs one.

    A server that ends an idle session (restart, ``pg_terminate_backend``, idle timeout)
    sends a last message and closes the socket, so an idle connection with something to
    read is suspect: only then is it checked with a round trip (which raises if it is dead).
    """
    if conn.closed or conn.pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError("the connection is closed")
    if _has_input(conn.pgconn.socket):
        await AsyncConnectionPool.check_connection(conn)


def _has_input(fd: int) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


POOL_NAME_PREFIX = "deepanalyze:"


class _QuietPoolWarnings(logging.Filter):
    """Keep psycopg_pool's warnings off stderr unless logging is set up.

    While a server is down, the pool retries in the background and logs each failure at
    WARNING; it also warns about connections it discards. Where no logging is configured
    (a notebook, usually), Python prints such records on stderr through its last-resort
    handler, so they would surface in whatever cell runs next, after the user already
    got a one-line error. Records reach every handler the user configured, as before.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return logging.getLogger(record.name).hasHandlers()


def quiet_pool_warnings() -> None:
    pool_logger = logging.getLogger("psycopg.pool")
    if not any(isinstance(installed, _QuietPoolWarnings) for installed in pool_logger.filters):
        pool_logger.addFilter(_QuietPoolWarnings())


async def reset_connection(
    conn: AsyncConnection, *, read_only: bool, reset: ResetConnections | None = None
) -> None:
    """Bring a used connection back to the session it started as, or close it.

    Done by the connector rather than in a pool ``reset`` callback, which would hand the
    connection back through a worker task and delay the next checkout. Nothing is done
    for a connection whose query ended with the reset (``reset``).
    """
    if conn.closed or (reset is not None and reset.take(conn)):
        return
    await asyncio.sleep(0)  # the query's result is handed back first
    status = conn.pgconn.transaction_status
    try:
        if status == pq.TransactionStatus.ACTIVE:  # e.g. a COPY left unread
            raise psycopg.OperationalError("the connection is busy")
        rollback = "" if status == pq.TransactionStatus.IDLE else "ROLLBACK; "
        await conn.wait(
            _run_statements(conn.pgconn, (rollback + _RESET_SESSION).encode(), conn.info.encoding)
        )
        if not _as_read_only(conn, read_only):
            raise psycopg.OperationalError("the session stayed writable")
    except psycopg.Error:  # the pool replaces a closed connection
        await conn.close()
    except BaseException:
        await conn.close()
        raise


def _run_statements(
    pgconn: pq.abc.PGconn, statements: bytes, encoding: str
) -> Generator[Wait, Ready | int, None]:
    """Run ``statements`` (the connector's own, several in one message) and raise the first error.

    At the libpq level: a fraction of the work of a cursor's ``execute``, on every query's path.
    """
    pgconn.send_query(statements)
    yield from _flush(pgconn)
    failed = yield from _finish(pgconn, None)
    if failed is not None:
        raise psycopg.errors.error_from_result(failed, encoding=encoding)


def _as_read_only(conn: AsyncConnection, read_only: bool) -> bool:
    """Whether the session of a read-only source is read-only again after a reset."""
    return not read_only or conn.info.parameter_status("default_transaction_read_only") in (None, "on")

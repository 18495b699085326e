"""The connections of one PostgreSQL source: its pool, opened at connect and closed at
disconnect, and the checkout and background reset of each connection a query takes.

What a connection goes through when taken and given back (the check, ``DISCARD ALL``)
is in :mod:`.pool`.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import AsyncIterator, Mapping
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ...errors import ConnectionFailed, QueryError
from .dsn import describe_target
from .errors import connect_error
from .pool import (
    POOL_NAME_PREFIX,
    ResetConnections,
    check_connection,
    quiet_pool_warnings,
    reset_connection,
)

__all__ = ["AsyncConnection", "PooledConnections"]

AsyncConnection = psycopg.AsyncConnection[Any]


class PooledConnections:
    """The pool of one source, and the queries holding or waiting for its connections."""

    def __init__(self, source_id: str, options: Mapping[str, Any]) -> None:
        self.source_id = source_id
        self.options = options
        self._pool: AsyncConnectionPool[AsyncConnection] | None = None
        self.target = describe_target({k: str(v) for k, v in options.items() if k != "dsn"})
        #: Queries holding or waiting for a connection: past ``pool_max_size``, the pool is busy.
        self._claims = 0
        #: Connections being reset after a query, in the background (see :meth:`connection`).
        self._releasing: set[asyncio.Task[None]] = set()
        #: Connections whose last query reset them in its own round trip (:mod:`.small_query`).
        self.reset = ResetConnections()

    @property
    def is_open(self) -> bool:
        """Whether the pool is open; dead connections in it are replaced on checkout."""
        return self._pool is not None and not self._pool.closed

    async def open(self, params: Mapping[str, str]) -> None:
        """Check that the server takes the credentials in ``params``, then open the pool."""
        self.target = describe_target(params)
        conninfo = make_conninfo("", **params)
        kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": None}
        # a direct attempt gives libpq's reason at once, where a pool would retry
        await (await self._connect_directly(conninfo)).close()
        timeout = float(params["connect_timeout"])
        quiet_pool_warnings()
        pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
            conninfo,
            kwargs=kwargs,
            min_size=0,
            max_size=int(self.options.get("pool_max_size", 2)),
            max_idle=float(self.options.get("max_idle", 60.0)),
            open=False,
            check=check_connection,
            name=f"{POOL_NAME_PREFIX}{self.source_id}",
            timeout=timeout,
            # Background reconnection backs off ever longer (minutes, by default) and holds
            # the pool's places meanwhile, so a restarted server would go unused; giving up
            # soon lets the next use try at once.
            reconnect_timeout=timeout,
        )
        try:
            await pool.open(wait=True, timeout=timeout)
        except PoolTimeout:
            await pool.close()
            raise ConnectionFailed(
                f"cannot connect to {self.target} within {timeout:g} s", source=self.source_id
            ) from None
        self._pool = pool

    async def unpooled(self) -> AsyncConnection:
        """A connection outside the pool (which stays as it is), for the caller to close."""
        if self._pool is None:
            raise ConnectionFailed("not connected", source=self.source_id)
        return await self._connect_directly(str(self._pool.conninfo))  # set as text in open()

    async def _connect_directly(self, conninfo: str) -> AsyncConnection:
        """A connection outside the pool, for the caller to close."""
        try:
            return await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        except BaseException as error:
            # Failed or interrupted mid-handshake: the half-open connection lives only in
            # psycopg's frames, which the error's traceback keeps (and a kernel keeps the
            # last one, in a cycle only the garbage collector breaks); clearing them
            # closes it now.
            traceback.clear_frames(error.__traceback__)
            if isinstance(error, psycopg.Error):
                raise connect_error(error, source=self.source_id, target=self.target) from None
            raise

    async def close(self) -> None:
        """Close the pool and its connections."""
        pool, self._pool = self._pool, None
        await self._released()
        if pool is not None:
            await pool.close()

    async def _released(self) -> None:
        """Wait for the connections being reset now to be back in the pool (or closed)."""
        if self._releasing:
            await asyncio.wait(set(self._releasing))

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A checked connection from the pool; connection problems become ConnectionFailed."""
        pool = self._pool
        if pool is None:
            raise ConnectionFailed("not connected", source=self.source_id)
        await self._released()  # on the connection just used, not on a new one
        queued = self._claims >= pool.max_size
        self._claims += 1
        try:
            conn = await self._checkout(pool, queued=queued)
        except BaseException:
            self._claims -= 1
            raise
        try:
            yield conn
        finally:
            self._release_later(pool, conn)

    def _release_later(self, pool: AsyncConnectionPool[AsyncConnection], conn: AsyncConnection) -> None:
        """Reset ``conn`` and put it back in the pool, while the caller goes on with its result.

        The reset's round trip is off the query's path: it overlaps with building the
        frame and handing it to the caller. The connection reaches the pool, and so the
        next query, only once reset (or closed, should the reset fail); the next checkout
        waits for it rather than open another connection. A task of its own, so that an
        interrupt of the query does not cut the reset short.
        """
        task = asyncio.get_running_loop().create_task(self._release(pool, conn))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _release(self, pool: AsyncConnectionPool[AsyncConnection], conn: AsyncConnection) -> None:
        try:
            read_only = bool(self.options.get("read_only", True))
            await reset_connection(conn, read_only=read_only, reset=self.reset)
        finally:
            try:
                await pool.putconn(conn)
            finally:
                self._claims -= 1

    async def _checkout(self, pool: AsyncConnectionPool[AsyncConnection], *, queued: bool) -> AsyncConnection:
        """A connection; behind other queries (``queued``) wait up to ``pool_timeout``."""
        pool_timeout = float(self.options.get("pool_timeout", 30.0))
        try:
            return await pool.getconn(pool_timeout if queued else pool.timeout)
        except PoolTimeout:
            if queued:
                raise QueryError(
                    f"all {pool.max_size} connections of {self.source_id!r} are busy; waited "
                    f"{pool_timeout:g} s (options pool_max_size, pool_timeout)",
                    source=self.source_id,
                ) from None
            raise ConnectionFailed(
                f"no connection to {self.target} could be made within {pool.timeout:g} s; "
                "is the server running?",
                source=self.source_id,
            ) from None

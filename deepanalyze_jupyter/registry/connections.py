"""Connecting a registry's sources: open on first use, reuse while alive, replace when dead.

Each source has its own lock for connecting, so a slow source never delays another and
concurrent callers share one connect. A failed connect is recorded as the source's status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress

from ..connectors import Connector, SourceContext
from ..errors import ConnectionFailed, DataSourceError, DataSourceNotFound
from ..progress import ProgressFactory
from .guard import SecretGuard, clear_finished_frames
from .records import SourceRecord

__all__ = ["Connections"]

logger = logging.getLogger(__name__)


class Connections:
    """Opens, reuses, replaces and closes the connectors of a registry's sources."""

    def __init__(self, guard: SecretGuard, progress: Callable[[], ProgressFactory]) -> None:
        self._guard = guard
        self._progress = progress

    def __repr__(self) -> str:
        return "<Connections>"

    async def connected(self, source: SourceRecord, *, still_registered: Callable[[], bool]) -> Connector:
        """A connected connector for ``source``: made on first use, reused while alive, and
        replaced when its connection died. ``still_registered`` tells whether the source was
        removed or replaced while it was connecting."""
        connector = source.connector
        if connector is not None and await _is_alive(connector):
            return connector
        async with source.lock:
            connector = source.connector
            if connector is not None:
                if await _is_alive(connector):
                    return connector
                logger.info("connection of %r was lost; reconnecting", source.config.id)
                source.connector = None
                await self.close_connector(connector)
            connector = await self.open(source)
            if not still_registered():
                await self.close_connector(connector)
                raise DataSourceNotFound(
                    "the source was removed while it was connecting", source=source.config.id
                )
            source.connector = connector
            return connector

    async def open(self, source: SourceRecord) -> Connector:
        """Make and connect a connector for ``source``; record the outcome.

        A failed connect's frames held decrypted secrets (a connection string, a key): their
        locals are cleared, so that no traceback or debugger shows them later.
        """
        source_id = source.config.id
        context = SourceContext(source_id, source.config.options, source.secrets, self._progress())
        connector = source.connector_class(context)
        try:
            async with self._guard.guard(source_id, ConnectionFailed), source.secrets.fetched():
                await connector.connect()
        except BaseException as error:
            clear_finished_frames(error)
            if isinstance(error, DataSourceError):
                source.last_error = error.message
            with suppress(Exception):
                await connector.disconnect()
            raise
        source.succeeded()
        logger.debug("connected data source %r", source_id)
        return connector

    async def close(self, source: SourceRecord) -> None:
        """Close the source's connector, if it has one; the next use connects again."""
        connector, source.connector = source.connector, None
        if connector is not None:
            await self.close_connector(connector)

    async def close_connector(self, connector: Connector) -> None:
        """Disconnect ``connector``; a failure is logged (cleaned of secrets), not raised."""
        try:
            await connector.disconnect()
        except Exception as error:
            logger.warning("closing %r failed: %s", connector.source_id, self._guard.clean(str(error)))


async def _is_alive(connector: Connector) -> bool:
    """Whether the connector's connection can be used; a failing check means it cannot."""
    try:
        return await connector.is_alive()
    except Exception:
        logger.debug("liveness check of %r failed", connector.source_id)
        return False

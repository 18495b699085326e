"""The operations on a registered source: connecting, testing, listing, describing,
querying, reading and writing.

Each runs guarded (secrets masked, library errors wrapped) and records its outcome as
the source's status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pandas as pd
import pyarrow as pa

from ..connectors import Connector
from ..errors import ConfigurationError, ConnectionFailed, CredentialError, DataSourceError, QueryError
from ..writing import WriteRequest, frame_to_arrow
from .table import RowLimit, SourceTable

__all__ = ["SourceOperations"]

#: Errors that say the source itself cannot be used (not the request): they set its status.
_SOURCE_FAILURES = (ConnectionFailed, CredentialError)


class SourceOperations(SourceTable):
    """Connects the table's sources on first use and runs the operations on them."""

    # -- connections ---------------------------------------------------------------

    async def get_connector(self, source_id: str) -> Connector:
        """A connected connector for the source: made on first use, reused while alive,
        and replaced when its connection died. Concurrent callers share one connect."""
        source = self._source(source_id)
        return await self.connections.connected(
            source, still_registered=lambda: self._sources.get(source_id) is source
        )

    async def test_connection(self, source_id: str) -> str:
        """Make a real round trip to the source; return a line describing what answered."""
        async with self._operation(source_id, ConnectionFailed):
            connector = await self.get_connector(source_id)
            return await connector.test_connection()

    async def disconnect(self, source_id: str) -> None:
        """Close the source's connection; the next use connects again."""
        await self.connections.close(self._source(source_id))

    async def disconnect_all(self) -> None:
        """Close every source's connection (at unload and kernel shutdown)."""
        await asyncio.gather(*(self.connections.close(source) for source in list(self._sources.values())))

    # -- operations ------------------------------------------------------------------

    async def list_items(
        self,
        source_id: str,
        prefix: str | None = None,
        *,
        recursive: bool = False,
        limit: int | None = None,
        refresh: bool = False,
    ) -> pd.DataFrame:
        """List the source's items under ``prefix`` (cached for the TTL)."""
        key = ("list_items", prefix, recursive, limit)
        cached = None if refresh else self.cache.get(source_id, key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        async with self._operation(source_id, QueryError):
            connector = await self.get_connector(source_id)
            frame = await connector.list_items(prefix, recursive=recursive, limit=limit)
        self.cache.put(source_id, key, frame)
        return frame

    async def describe(self, source_id: str, item: str, *, refresh: bool = False) -> pd.DataFrame:
        """Describe one item of the source: a table's columns, a file's properties."""
        key = ("describe", item)
        cached = None if refresh else self.cache.get(source_id, key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        async with self._operation(source_id, QueryError):
            connector = await self.get_connector(source_id)
            frame = await connector.describe(item)
        self.cache.put(source_id, key, frame)
        return frame

    async def query(
        self,
        source_id: str,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: RowLimit = "default",
        timeout: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Run a query on an SQL source and return a DataFrame of at most ``limit`` rows.

        ``options`` are the connector's own per-query settings (PostgreSQL: ``numeric_as_float``).
        """
        # Decided as the statement starts: a source removed or made read-only meanwhile must
        # still be cleared, or the result fetched from it as it was would be kept.
        writable = self.writable(source_id)
        try:
            async with self._operation(source_id, QueryError):
                connector = await self.get_connector(source_id)
                return await connector.query(
                    sql, params, limit=self._row_limit(limit), timeout=timeout, **dict(options or {})
                )
        finally:
            if writable:
                self.forget(source_id)

    async def read(
        self,
        source_id: str,
        paths: str | Sequence[str],
        *,
        format: str | None = None,
        limit: RowLimit = "default",
        source_column: str | None = None,
        reader_options: Mapping[str, Any] | None = None,
        output: str = "pandas",
    ) -> pd.DataFrame | pa.Table:
        """Read files (paths or globs) of a file source into one DataFrame (or a native ``output``)."""
        path_list = [paths] if isinstance(paths, str) else list(paths)
        async with self._operation(source_id, QueryError):
            connector = await self.get_connector(source_id)
            return await connector.read(
                path_list,
                format=format,
                limit=self._row_limit(limit),
                source_column=source_column,
                reader_options=reader_options,
                **({} if output == "pandas" else {"output": output}),  # as queries pass it: only when native
            )

    async def write(self, source_id: str, request: WriteRequest, frame: pd.DataFrame, *, index: bool) -> str:
        """Write ``frame`` into a source (a table, a file), all or nothing; return what was done.

        The frame is checked (names, dtypes) before anything is sent.
        """
        json_values = self._source(source_id).connector_class.json_values
        try:
            async with self._operation(source_id, QueryError):
                table = await asyncio.to_thread(
                    frame_to_arrow, frame, index=index, source=source_id, json_values=json_values
                )
                connector = await self.get_connector(source_id)
                return await connector.write(request, table)
        finally:  # also after a failure: an interrupted write's outcome is not known here
            self.forget(source_id)

    async def write_batches(
        self, source_id: str, request: WriteRequest, batches: AsyncIterator[pa.Table]
    ) -> str:
        """Write batches into a file of a file source as they arrive (:mod:`..export`), all or nothing."""
        self._source(source_id)
        try:
            async with self._operation(source_id, QueryError):
                connector = await self.get_connector(source_id)
                write = getattr(connector, "write_batches", None)
                if write is None:
                    raise ConfigurationError(
                        f"{connector.display_name} sources hold no files to export into", source=source_id
                    )
                return str(await write(request, batches))
        finally:
            self.forget(source_id)

    @asynccontextmanager
    async def _operation(self, source_id: str, wrap_as: type[DataSourceError]) -> AsyncIterator[None]:
        """Guard an operation on a source, and record its outcome as the source's status."""
        source = self._sources.get(source_id)
        try:
            async with self.guard.guard(source_id, wrap_as):
                yield
        except _SOURCE_FAILURES as error:
            if source is not None:
                source.last_error = self.guard.clean(error.message)
            raise
        if source is not None:
            source.succeeded()

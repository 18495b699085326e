"""PostgreSQL sources, through psycopg 3 (async) and a small ``psycopg_pool`` pool.

- Options are libpq's (host, port, dbname, user, sslmode...), all optional, or a whole
  DSN; a password, typed or inside the DSN, is kept only as an encrypted secret.
  Passwordless logins (``.pgpass``, trust, peer, client certificates) need no option.
- Connections are pooled (:mod:`.connections`): opened on first use, ``pool_max_size``
  at most, closed after ``max_idle`` seconds unused, so a source never queried holds none. A connection is
  checked when taken from the pool, so one the server dropped while idle (restart,
  ``pg_terminate_backend``, idle timeout) is replaced unseen; one lost during a query
  gives :class:`~deepanalyze_jupyter.errors.ConnectionFailed`, and the next query works.
  A query finding every connection busy waits up to ``pool_timeout`` seconds.
- After each use a connection is reset to the session it started as (``DISCARD ALL``:
  settings, role, prepared statements, advisory locks, temporary tables, listens;
  :mod:`.pool`), so
  one query's ``SET`` never reaches another. The reset runs while the query's result is
  handed back, and the connection returns to the pool (and to the next query) only
  after; settings for every query are the ``set`` option (``name=value``, repeatable),
  given at connect: the session's reset values.
- Sessions are read-only unless the source allows writes, enforced by the server: each
  query is one statement (the extended protocol parses one only) in a transaction the
  connector opens as ``BEGIN READ ONLY`` and rolls back; a statement that begins or
  ends a transaction is refused (:mod:`.execution`). No SQL is inspected for keywords.
- Queries bind ``:name`` values through psycopg, stop at the row limit on the server,
  and read results through ``COPY`` parsed by pyarrow (:mod:`.query`, and the dtype
  table in :mod:`.types`). Statement timeouts (per source, per query) are set with
  bound parameters. The options are described in :mod:`.options`.
- Cancelling the awaiting task (a kernel interrupt) cancels the query on the server;
  the connection stays usable.
- Errors: a refused login is ``AuthenticationFailed``, an unreachable server
  ``ConnectionFailed``, and a bad query (a missing table too) ``QueryError`` with the
  server's message, SQLSTATE and position; none holds a password (:mod:`.errors`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, ClassVar

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql as pg_sql

from ...errors import ConfigurationError, QueryError
from ...frames import mark_result
from ...models import OptionSpec, Secret
from ...results import with_info
from ...sqlparams import bind_literals, strip_terminator
from ...writing import WriteRequest, refuse_read_only
from ..base import Connector
from .catalog import describe_relation, list_relations
from .connections import PooledConnections
from .dsn import check_setting, connection_params, split_dsn
from .errors import query_error
from .execution import check_parameters, column_planner, one_line_errors, query_preamble
from .options import LOWEST_VALUES, OPTION_SPECS
from .partitions import read_partitioned
from .query import CopyFormats, quoted_literal, run_query
from .stream import stream_copy
from .types import ConversionError, PlanCache
from .write import write_table

__all__ = ["PostgresConnector"]


class PostgresConnector(Connector):
    """A PostgreSQL database: SQL queries, schemas, tables and views."""

    type_name: ClassVar[str] = "postgresql"
    display_name: ClassVar[str] = "PostgreSQL"
    kind = "sql"
    option_specs: ClassVar[tuple[OptionSpec, ...]] = OPTION_SPECS
    native_outputs = frozenset({"arrow"})
    json_values = True  # a jsonb column holds each dict as it is, not as a struct of every key
    statements_write = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections = PooledConnections(self.source_id, self.options)
        self._plans = PlanCache()
        self._formats = CopyFormats()

    # -- configuration -------------------------------------------------------------

    @classmethod
    def prepare(
        cls,
        source: str,
        options: Mapping[str, Any],
        secrets: Mapping[str, Secret],
        *,
        present_secrets: frozenset[str] = frozenset(),
    ) -> tuple[dict[str, Any], dict[str, Secret]]:
        """Check the options; move a password found in ``dsn`` into the secrets."""
        clean_options, clean_secrets = super().prepare(
            source, options, secrets, present_secrets=present_secrets
        )
        if clean_options.get("dsn"):
            stored, found = split_dsn(clean_options["dsn"], source=source)
            clean_options["dsn"] = stored
            for name, value in found.items():
                if name not in clean_secrets:
                    clean_secrets[name] = Secret(value)
        if clean_options.get("set"):
            clean_options["set"] = [check_setting(setting, source=source) for setting in clean_options["set"]]
        for option, lowest in LOWEST_VALUES.items():
            number = clean_options.get(option)
            if number is not None and number < lowest:
                raise ConfigurationError(
                    f"option {option!r} must be at least {lowest}, got {number}", source=source
                )
        return clean_options, clean_secrets

    # -- lifecycle -----------------------------------------------------------------

    async def connect(self) -> None:
        """Check that the server takes the credentials, then open the pool (:mod:`.connections`)."""
        params = connection_params(
            self.options,
            password=self.context.secrets.reveal("password"),
            sslpassword=self.context.secrets.reveal("sslpassword"),
            read_only=bool(self.options.get("read_only", True)),
        )
        await self._connections.open(params)

    async def disconnect(self) -> None:
        """Close the pool and its connections."""
        await self._connections.close()

    async def is_alive(self) -> bool:
        """Whether the pool is open; dead connections in it are replaced on checkout."""
        return self._connections.is_open

    async def test_connection(self) -> str:
        """Ask the server who it is and who we are, on a connection closed after (the pool stays empty)."""
        conn = await self._connections.unpooled()
        try:
            cursor = await conn.execute(
                "SELECT current_setting('server_version'), current_database(), current_user, "
                "current_setting('default_transaction_read_only')"
            )
            version, database, user, read_only = await cursor.fetchone() or ("?", "?", "?", "?")
        finally:
            await conn.close()
        mode = "read-only" if read_only == "on" else "read-write"
        return f"PostgreSQL {version}, database {database!r} as {user!r} ({mode})"

    # -- browsing ------------------------------------------------------------------

    async def list_items(
        self, prefix: str | None = None, *, recursive: bool = False, limit: int | None = None
    ) -> pd.DataFrame:
        """Schemas (no prefix), or the tables and views of schema ``prefix`` (or of all, recursive)."""
        async with self._connections.connection() as conn:
            frame, truncated = await list_relations(
                conn, prefix, recursive=recursive, limit=limit, source=self.source_id
            )
        return mark_result(frame, source=self.source_id, truncated=truncated, limit=limit)

    async def describe(self, item: str) -> pd.DataFrame:
        """The columns of table or view ``item``: name, type, nullable, default, primary key."""
        async with self._connections.connection() as conn:
            return await describe_relation(conn, item, source=self.source_id)

    # -- data ----------------------------------------------------------------------

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        timeout: float | None = None,
        numeric_as_float: bool | None = None,
        **options: Any,
    ) -> pd.DataFrame:
        """Run ``sql`` with ``:name`` values bound; at most ``limit`` rows (``None``: all).

        ``timeout`` (seconds) and ``numeric_as_float`` override the source's options for
        this query.
        """
        partition_on, partitions = options.pop("partition_on", None), options.pop("partitions", None)
        arrow = options.pop("output", "pandas") == "arrow"  # else pandas; partitions are combined in pandas
        self.refuse_query_options(options)
        if partition_on is not None:
            return await self._query_partitioned(
                sql, params, str(partition_on), int(partitions or 1), limit, timeout, numeric_as_float
            )
        if limit is not None and limit < 0:
            raise ConfigurationError(f"the row limit must be at least 0, got {limit}", source=self.source_id)
        check_parameters(sql, params, source=self.source_id)
        statement = strip_terminator(sql)
        progress = self.context.progress(f"{self.source_id}: query", total_bytes=None, total_items=None)
        read_only = bool(self.options.get("read_only", True))
        preamble = query_preamble(read_only=read_only, timeout=timeout)
        as_float = self.options.get("numeric_as_float") if numeric_as_float is None else numeric_as_float
        try:
            async with self._connections.connection() as conn:
                planner = column_planner(conn, self._plans, numeric_as_float=bool(as_float))
                with one_line_errors(conn, read_only=read_only, source=self.source_id):
                    result = await run_query(
                        conn,
                        statement,
                        params,
                        limit=limit,
                        planner=planner,
                        progress=progress,
                        formats=self._formats,
                        preamble=preamble,
                        reset=self._connections.reset if read_only else None,
                    )
            built = await (result.table() if arrow else result.frame())
        except ConversionError as error:
            raise QueryError(str(error), source=self.source_id) from error
        finally:
            progress.close()
        if isinstance(built, pa.Table):
            info = {"source": self.source_id, "truncated": result.truncated, "row_limit": limit}
            return with_info(built, info)  # type: ignore[no-any-return]
        return mark_result(built, source=self.source_id, truncated=result.truncated, limit=limit)

    async def _query_partitioned(
        self,
        sql: str,
        params: Mapping[str, Any] | None,
        column: str,
        partitions: int,
        limit: int | None,
        timeout: float | None,
        numeric_as_float: bool | None,
    ) -> pd.DataFrame:
        """``sql`` read as ``partitions`` ranges of ``column`` at once (:mod:`.partitions`)."""

        def read(text: str, values: Mapping[str, Any] | None, rows: int | None) -> Awaitable[pd.DataFrame]:
            return self.query(text, values, limit=rows, timeout=timeout, numeric_as_float=numeric_as_float)

        quoted = pg_sql.Identifier(column).as_string(None)
        return await read_partitioned(
            read,
            strip_terminator(sql),
            params,
            column=column,
            quoted_column=quoted,
            partitions=partitions,
            limit=limit,
            source=self.source_id,
        )

    async def query_batches(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        rows: int,
        timeout: float | None = None,
        numeric_as_float: bool | None = None,
    ) -> AsyncIterator[pa.Table]:
        """Yield the rows of ``sql`` as Arrow tables of at most ``rows`` rows, read as they are
        asked for (:mod:`.stream`); closing early cancels the query on the server."""
        if rows < 1:
            raise ConfigurationError(
                f"the batch size must be at least 1 row, got {rows}", source=self.source_id
            )
        check_parameters(sql, params, source=self.source_id)
        preamble = query_preamble(read_only=bool(self.options.get("read_only", True)), timeout=timeout)
        as_float = self.options.get("numeric_as_float") if numeric_as_float is None else numeric_as_float
        async with self._connections.connection() as conn:
            planner = column_planner(conn, self._plans, numeric_as_float=bool(as_float))
            bound = bind_literals(strip_terminator(sql), params, lambda value: quoted_literal(value, conn))
            batches = stream_copy(conn, bound, rows=rows, planner=planner, preamble=preamble)
            try:
                async for batch in batches:
                    yield batch
            except psycopg.Error as error:
                raise query_error(error, source=self.source_id, connection_lost=conn.broken) from None
            except ConversionError as error:
                raise QueryError(str(error), source=self.source_id) from error
            finally:
                await batches.aclose()

    async def write(self, request: WriteRequest, table: pa.Table) -> str:
        """Write ``table`` into a table in one transaction (:mod:`.write`); read-only sources refuse."""
        refuse_read_only(self.options, source=self.source_id)
        async with self._connections.connection() as conn:
            return await write_table(
                conn, request, table, source=self.source_id, progress=self.context.progress
            )

"""PostgreSQL sources, through psycopg 3 (async) and a small ``psycopg_pool`` pool.

- Options are libpq's (host, port, dbname, user, sslmode...), all optional, or a whole
  DSN; a password, typed or inside the DSN, is kept only as an encrypted secret.
  Passwordless logins (``.pgpass``, trust, peer, client certificates) need no option.
- Connections are pooled: opened on first use, ``pool_max_size`` at most, closed after
  ``max_idle`` seconds unused, so a source never queried holds none. A connection is
  checked when taken from the pool, so one the server dropped while idle (restart,
  ``pg_terminate_backend``, idle timeout) is replaced unseen; one lost during a query
  gives :class:`~deepanalyze_jupyter.errors.ConnectionFailed`, and the next query works.
  A query finding every connection busy waits up to ``pool_timeout`` seconds.
- After each use a connection is reset to the session it started as (``DISCARD ALL``:
  settings, role, prepared statements, advisory locks, temporary tables, listens), so
  one query's ``SET`` never reaches another; settings for every query are the ``set``
  option (``name=value``, repeatable), given at connect: the session's reset values.
- Sessions are read-only unless the source allows writes, enforced by the server: each
  query is one statement (the extended protocol parses one only) in a transaction the
  connector opens as ``BEGIN READ ONLY`` and rolls back; a statement that begins or
  ends a transaction is refused. No SQL is inspected for keywords.
- Queries bind ``:name`` values through psycopg, stop at the row limit on the server,
  and read results through ``COPY`` parsed by pyarrow (:mod:`.query`, and the dtype
  table in :mod:`.types`). Statement timeouts (per source, per query) are set with
  bound parameters.
- Cancelling the awaiting task (a kernel interrupt) cancels the query on the server;
  the connection stays usable.
- Errors: a refused login is ``AuthenticationFailed``, an unreachable server
  ``ConnectionFailed``, and a bad query (a missing table too) ``QueryError`` with the
  server's message, SQLSTATE and position; none holds a password (:mod:`.errors`).
"""

from __future__ import annotations

import contextlib
import logging
import select
import traceback
from collections.abc import AsyncIterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import pandas as pd
import psycopg
from psycopg import pq
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ...errors import ConfigurationError, ConnectionFailed, QueryError
from ...frames import mark_result
from ...models import OptionSpec, Secret
from ...progress import Progress
from ...sqlparams import missing_parameters, strip_terminator
from ..base import Connector
from .catalog import describe_relation, list_relations
from .dsn import (
    DEFAULT_APPLICATION_NAME,
    DEFAULT_CONNECT_TIMEOUT,
    check_setting,
    connection_params,
    describe_target,
    split_dsn,
)
from .errors import connect_error, one_line, query_error
from .query import (
    CopyFormats,
    CopyStatement,
    QueryFailed,
    QueryResult,
    Statement,
    TransactionControl,
    plan_settings,
    run_query,
)
from .types import ColumnPlan, ConversionError, PlanCache

__all__ = ["PostgresConnector"]

AsyncConnection = psycopg.AsyncConnection[Any]

_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SET_TIMEOUT = "SELECT set_config('statement_timeout', $1, false)"
#: Read-only: a transaction that cannot be made writable, with its snapshot taken (after
#: which ``SET TRANSACTION READ WRITE`` is refused), and in which ``DO`` and ``CALL`` are
#: atomic (they cannot ``COMMIT``).
_READ_ONLY_PREAMBLE: tuple[Statement, ...] = (("BEGIN READ ONLY", None), ("SELECT 1", None))
#: ``DISCARD ALL`` in parts: it cannot run in a transaction, nor after ``ROLLBACK`` in one message.
_RESET_SESSION = (
    "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; CLOSE ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"
)
_MULTIPLE_STATEMENTS = "cannot insert multiple commands into a prepared statement"
_LOWEST_VALUES: Mapping[str, float] = MappingProxyType(
    {
        "port": 1,
        "connect_timeout": 1,
        "pool_max_size": 1,
        "statement_timeout": 0,
        "pool_timeout": 0,
        "max_idle": 1,
    }
)


async def _check_connection(conn: AsyncConnection) -> None:
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


_POOL_NAME_PREFIX = "deepanalyze:"


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


def _quiet_pool_warnings() -> None:
    pool_logger = logging.getLogger("psycopg.pool")
    if not any(isinstance(installed, _QuietPoolWarnings) for installed in pool_logger.filters):
        pool_logger.addFilter(_QuietPoolWarnings())


def _milliseconds(seconds: float) -> str:
    return str(max(0, round(seconds * 1000)))


class PostgresConnector(Connector):
    """A PostgreSQL database: SQL queries, schemas, tables and views."""

    type_name: ClassVar[str] = "postgresql"
    display_name: ClassVar[str] = "PostgreSQL"
    kind = "sql"
    option_specs: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("host", help="Server host name, IP address or socket directory (libpq default if unset)"),
        OptionSpec("port", int, help="Server port (5432 if unset)"),
        OptionSpec("dbname", help="Database name (the user name if unset)", label="Database"),
        OptionSpec("user", help="User name (the operating-system user if unset)"),
        OptionSpec(
            "password", secret=True, help="Password (unneeded with .pgpass, trust, peer or certificates)"
        ),
        OptionSpec(
            "dsn",
            help="A full connection string: postgresql:// URI or key=value pairs; a password in it "
            "is stored as the secret",
            label="Connection string",
        ),
        OptionSpec("sslmode", choices=_SSL_MODES, help="TLS mode (libpq default: prefer)", label="SSL mode"),
        OptionSpec("sslrootcert", help="File of the certificate authorities to trust", label="SSL root cert"),
        OptionSpec("sslcert", help="Client certificate file", label="SSL certificate"),
        OptionSpec("sslkey", help="Client private key file", label="SSL key"),
        OptionSpec("sslpassword", secret=True, help="Passphrase of the client key", label="SSL key password"),
        OptionSpec(
            "connect_timeout", int, help=f"Seconds to wait for a connection ({DEFAULT_CONNECT_TIMEOUT})"
        ),
        OptionSpec("application_name", help=f"Name shown in pg_stat_activity ({DEFAULT_APPLICATION_NAME})"),
        OptionSpec("options", help="Server options for the session, e.g. '-c search_path=sales'"),
        OptionSpec(
            "set",
            repeatable=True,
            help="A server setting for every query, name=value (e.g. timezone=UTC); repeatable",
            label="Settings",
        ),
        OptionSpec("read_only", bool, default=True, help="Sessions cannot write (enforced by the server)"),
        OptionSpec("statement_timeout", float, help="Cancel statements running longer (seconds)"),
        OptionSpec(
            "numeric_as_float", bool, default=False, help="Read numeric columns as float64, not exact"
        ),
        OptionSpec("pool_max_size", int, default=2, help="Most connections open at once"),
        OptionSpec(
            "pool_timeout", float, default=30.0, help="Seconds a query waits when every connection is busy"
        ),
        OptionSpec(
            "max_idle", float, default=60.0, help="Seconds after which an unused connection is closed"
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pool: AsyncConnectionPool[AsyncConnection] | None = None
        self._plans = PlanCache()
        self._formats = CopyFormats()
        self._target = describe_target({k: str(v) for k, v in self.options.items() if k != "dsn"})
        #: Queries holding or waiting for a connection: past ``pool_max_size``, the pool is busy.
        self._claims = 0

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
        for option, lowest in _LOWEST_VALUES.items():
            number = clean_options.get(option)
            if number is not None and number < lowest:
                raise ConfigurationError(
                    f"option {option!r} must be at least {lowest}, got {number}", source=source
                )
        return clean_options, clean_secrets

    # -- lifecycle -----------------------------------------------------------------

    async def connect(self) -> None:
        """Check that the server takes the credentials, then open the pool."""
        params = connection_params(
            self.options,
            password=self.context.secrets.reveal("password"),
            sslpassword=self.context.secrets.reveal("sslpassword"),
            read_only=bool(self.options.get("read_only", True)),
        )
        self._target = describe_target(params)
        conninfo = make_conninfo("", **params)
        kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": None}
        # a direct attempt gives libpq's reason at once, where a pool would retry
        await (await self._connect_directly(conninfo)).close()
        timeout = float(params["connect_timeout"])
        _quiet_pool_warnings()
        pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
            conninfo,
            kwargs=kwargs,
            min_size=0,
            max_size=int(self.options.get("pool_max_size", 2)),
            max_idle=float(self.options.get("max_idle", 60.0)),
            open=False,
            check=_check_connection,
            name=f"{_POOL_NAME_PREFIX}{self.source_id}",
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
                f"cannot connect to {self._target} within {timeout:g} s", source=self.source_id
            ) from None
        self._pool = pool

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
                raise connect_error(error, source=self.source_id, target=self._target) from None
            raise

    async def disconnect(self) -> None:
        """Close the pool and its connections."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def is_alive(self) -> bool:
        """Whether the pool is open; dead connections in it are replaced on checkout."""
        return self._pool is not None and not self._pool.closed

    async def test_connection(self) -> str:
        """Ask the server who it is and who we are, on a connection closed after (the pool stays empty)."""
        if self._pool is None:
            raise ConnectionFailed("not connected", source=self.source_id)
        conn = await self._connect_directly(str(self._pool.conninfo))  # set as text in connect()
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

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """A checked connection from the pool; connection problems become ConnectionFailed."""
        pool = self._pool
        if pool is None:
            raise ConnectionFailed("not connected", source=self.source_id)
        queued = self._claims >= pool.max_size
        self._claims += 1
        try:
            conn = await self._checkout(pool, queued=queued)
            try:
                yield conn
            finally:
                await self._reset(conn)
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
                f"no connection to {self._target} could be made within {pool.timeout:g} s; "
                "is the server running?",
                source=self.source_id,
            ) from None

    async def _reset(self, conn: AsyncConnection) -> None:
        """Bring a used connection back to the session it started as, or close it.

        Done here rather than in a pool ``reset`` callback, which would hand the connection
        back through a worker task and delay the next checkout.
        """
        if conn.closed:
            return
        status = conn.pgconn.transaction_status
        try:
            if status == pq.TransactionStatus.ACTIVE:  # e.g. a COPY left unread
                raise psycopg.OperationalError("the connection is busy")
            rollback = "" if status == pq.TransactionStatus.IDLE else "ROLLBACK; "
            await conn.execute(rollback + _RESET_SESSION)
            read_only = conn.info.parameter_status("default_transaction_read_only")
            if self.options.get("read_only", True) and read_only not in (None, "on"):
                raise psycopg.OperationalError("the session stayed writable")
        except psycopg.Error:  # the pool replaces a closed connection
            await conn.close()
        except BaseException:
            await conn.close()
            raise

    # -- browsing ------------------------------------------------------------------

    async def list_items(
        self, prefix: str | None = None, *, recursive: bool = False, limit: int | None = None
    ) -> pd.DataFrame:
        """Schemas (no prefix), or the tables and views of schema ``prefix`` (or of all, recursive)."""
        async with self._connection() as conn:
            frame, truncated = await list_relations(
                conn, prefix, recursive=recursive, limit=limit, source=self.source_id
            )
        return mark_result(frame, source=self.source_id, truncated=truncated, limit=limit)

    async def describe(self, item: str) -> pd.DataFrame:
        """The columns of table or view ``item``: name, type, nullable, default, primary key."""
        async with self._connection() as conn:
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
        self.refuse_query_options(options)
        if limit is not None and limit < 0:
            raise ConfigurationError(f"the row limit must be at least 0, got {limit}", source=self.source_id)
        missing = missing_parameters(sql, params)
        if missing:
            names = ", ".join(f":{name}" for name in missing)
            raise QueryError(f"no value given for parameter {names}", source=self.source_id)
        statement = strip_terminator(sql)
        progress = self.context.progress(f"{self.source_id}: query", total_bytes=None, total_items=None)
        preamble = list(_READ_ONLY_PREAMBLE) if self.options.get("read_only", True) else []
        if timeout is not None:  # the reset after the query restores the source's own
            preamble.append((_SET_TIMEOUT, [_milliseconds(timeout)]))
        as_float = self.options.get("numeric_as_float") if numeric_as_float is None else numeric_as_float
        try:
            async with self._connection() as conn:
                result = await self._run(conn, statement, params, limit, bool(as_float), progress, preamble)
            frame = await result.frame()
        except ConversionError as error:
            raise QueryError(str(error), source=self.source_id) from error
        finally:
            progress.close()
        return mark_result(frame, source=self.source_id, truncated=result.truncated, limit=limit)

    async def _run(
        self,
        conn: AsyncConnection,
        statement: str,
        params: Mapping[str, Any] | None,
        limit: int | None,
        numeric_as_float: bool,
        progress: Progress,
        preamble: Sequence[Statement],
    ) -> QueryResult:
        settings = plan_settings(conn, numeric_as_float=numeric_as_float)

        def planner(fields: Sequence[tuple[str, int, int]]) -> list[ColumnPlan]:
            return self._plans.plans(fields, conn.adapters, settings)

        try:
            return await run_query(
                conn,
                statement,
                params,
                limit=limit,
                planner=planner,
                progress=progress,
                formats=self._formats,
                preamble=preamble,
            )
        except CopyStatement:
            raise QueryError(
                "COPY ... TO STDOUT and FROM STDIN cannot run as a query; write the SELECT itself "
                "(results are read through COPY already)",
                source=self.source_id,
            ) from None
        except TransactionControl as refused:
            raise QueryError(self._transaction_refusal(refused.tag), source=self.source_id) from None
        except QueryFailed as failed:
            if failed.error.diag.message_primary == _MULTIPLE_STATEMENTS:
                raise QueryError(
                    "the SQL holds several statements; a query runs one (run them one at a time, "
                    "or together in a DO block)",
                    source=self.source_id,
                ) from None
            raise query_error(
                failed.error, source=self.source_id, connection_lost=conn.broken, position=failed.position
            ) from None
        except psycopg.Error as error:  # e.g. a value psycopg cannot quote
            raise QueryError(one_line(str(error)), source=self.source_id) from None

    def _transaction_refusal(self, tag: str) -> str:
        if self.options.get("read_only", True):
            return (
                f"{tag} is not available on a read-only source: each query runs alone in a "
                "read-only transaction, rolled back after it"
            )
        return (
            f"{tag} is not available: each query is its own transaction (committed when it "
            "succeeds); run several statements together in a DO block"
        )

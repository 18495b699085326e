"""SQLite databases through the standard library's :mod:`sqlite3`.

A source is one database file (or ``:memory:``), opened read-only by default through a
``file:...?mode=ro`` URI. A read-only source also refuses, before it runs, every statement
that could write anywhere: an authorizer allows reading only (no ``ATTACH``, which would
reach other files or the same file writable, no ``VACUUM INTO``, no temporary tables, no
pragma that changes anything), and the connection may attach no database at all. A
transaction a query opens (``BEGIN``, ``SAVEPOINT``) ends with it, so no lock outlives a query.
A file replaced at its path (or deleted and made again) is opened anew by the next call.

Every :mod:`sqlite3` call runs on one worker thread owned by
the connector, because a connection belongs to the thread that made it; the event loop
never blocks. Cancelling a query calls :meth:`sqlite3.Connection.interrupt`, which stops
the running statement at once and leaves the connection usable.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import pandas as pd

from ...errors import ConfigurationError, ConnectionFailed, ItemNotFound, OperationCancelled, QueryError
from ...frames import mark_result
from ...models import OptionSpec, Secret
from ...results import with_info
from ...sqlparams import missing_parameters
from ..base import Connector, SourceContext, absolute_path
from .authorizer import is_refusal, read_only_authorizer
from .catalog import COLUMN_INFO_COLUMNS, LISTING_COLUMNS, describe_table, filter_tables, list_tables
from .values import bindable, rows_to_frame, rows_to_table

__all__ = ["MEMORY", "SqliteConnector"]

T = TypeVar("T")

#: The path that names a private in-memory database.
MEMORY = ":memory:"

#: How many SQLite VM steps run between two checks for a cancel request.
_PROGRESS_STEPS = 10_000


class SqliteConnector(Connector):
    """A SQLite database file, read-only unless ``read_only=False``."""

    type_name = "sqlite"
    display_name = "SQLite"
    kind = "sql"
    native_outputs = frozenset({"arrow"})
    statements_write = True
    option_specs = (
        OptionSpec("path", str, "database file path, or :memory:", required=True, label="Database file"),
        OptionSpec(
            "read_only",
            bool,
            "open the database read-only (a :memory: database is always writable)",
            default=True,
            label="Read-only",
        ),
        OptionSpec("timeout", float, "seconds to wait for a locked database", default=5.0),
    )

    def __init__(self, context: SourceContext) -> None:
        super().__init__(context)
        self._connection: sqlite3.Connection | None = None
        # The (device, inode) of the file the connection has open, to tell when another took its path.
        self._identity: tuple[int, int] | None = None
        self._executor: ThreadPoolExecutor | None = None
        # The stop flag of the call running on the worker thread, and the lock that keeps
        # an interrupt from reaching a call other than the one it was meant for.
        self._stop: threading.Event | None = None
        self._stop_lock = threading.Lock()

    @classmethod
    def prepare(
        cls,
        source: str,
        options: Mapping[str, Any],
        secrets: Mapping[str, Secret],
        *,
        present_secrets: frozenset[str] = frozenset(),
    ) -> tuple[dict[str, Any], dict[str, Secret]]:
        """Make the path absolute (so a later change of directory keeps it valid)."""
        clean, clean_secrets = super().prepare(source, options, secrets, present_secrets=present_secrets)
        if str(clean["path"]).strip() == MEMORY:
            clean["path"] = MEMORY
            clean["read_only"] = False  # a private, empty database: read-only would make it useless
        else:
            clean["path"] = absolute_path(clean["path"], source=source, naming="a database file or :memory:")
        if clean["timeout"] < 0:
            raise ConfigurationError("option 'timeout' must not be negative", source=source)
        return clean, clean_secrets

    # -- lifecycle -----------------------------------------------------------------

    @property
    def path(self) -> str:
        """The database file's absolute path, or ``:memory:``."""
        return str(self.options["path"])

    @property
    def read_only(self) -> bool:
        """Whether the database is opened read-only."""
        return bool(self.options.get("read_only", True))

    async def connect(self) -> None:
        """Open the database on the connector's own thread, and check that it is one."""
        if self._connection is not None:
            return
        if self.path != MEMORY:
            await asyncio.to_thread(self._check_file)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{self.source_id}")
        self._connection = await self._call(self._open)

    def _check_file(self) -> None:
        """Refuse a folder, a missing file (unless writable) and what is not a file at all.

        SQLite would wait forever to open a named pipe, and take a device such as
        ``/dev/null`` for an empty database.
        """
        if os.path.isdir(self.path):
            raise ConfigurationError(f"{self.path} is a folder, not a database file", source=self.source_id)
        if not os.path.exists(self.path):
            if self.read_only:
                raise ItemNotFound(f"database file {self.path} does not exist", source=self.source_id)
        elif not os.path.isfile(self.path):
            raise ConfigurationError(
                f"{self.path} is not a regular file (a pipe, device or socket), not a database file",
                source=self.source_id,
            )

    def _open(self) -> sqlite3.Connection:
        identity = _file_identity(self.path)  # before opening: a file put there meanwhile is seen later
        if self.path == MEMORY:
            target, uri = MEMORY, False
        else:
            mode = "ro" if self.read_only else "rwc"
            target, uri = f"file:{quote(self.path)}?mode={mode}", True
        try:
            connection = sqlite3.connect(
                target, uri=uri, timeout=float(self.options.get("timeout", 5.0)), isolation_level=None
            )
        except sqlite3.Error as error:
            raise ConnectionFailed(f"cannot open {self.path}: {error}", source=self.source_id) from error
        connection.set_progress_handler(self._stop_requested, _PROGRESS_STEPS)
        if self.read_only:
            connection.set_authorizer(read_only_authorizer)
            if sys.version_info >= (3, 11):  # a second guard where Python exposes the limit
                connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as error:
            connection.close()
            raise ConnectionFailed(f"cannot read {self.path}: {error}", source=self.source_id) from error
        self._identity = identity or _file_identity(self.path)  # a file the open made
        return connection

    async def disconnect(self) -> None:
        """Close the database and stop the worker thread. Safe to call twice."""
        connection, self._connection = self._connection, None
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if connection is not None:
            connection.interrupt()
            with suppress(sqlite3.Error):
                await asyncio.get_running_loop().run_in_executor(executor, connection.close)
        executor.shutdown(wait=False)

    async def is_alive(self) -> bool:
        """An open SQLite connection stays usable; only :meth:`disconnect` ends it."""
        return self._connection is not None

    async def test_connection(self) -> str:
        """Read the SQLite version and count the tables."""
        version, tables = await self._call(self._version_and_tables)
        mode = "read-only" if self.read_only else "writable"
        return f"SQLite {version}, {self.path} ({mode}, {tables} tables and views)"

    def _version_and_tables(self) -> tuple[str, int]:
        connection = self._require_connection()
        version = connection.execute("SELECT sqlite_version()").fetchone()[0]
        return str(version), len(self._tables())

    # -- browsing ------------------------------------------------------------------

    async def list_items(
        self, prefix: str | None = None, *, recursive: bool = False, limit: int | None = None
    ) -> pd.DataFrame:
        """Tables and views: schema, name, kind and rows (unknown without counting).

        ``prefix`` is a schema name (``main`` or an attached database), a glob over table
        names, or the start of table names.
        """
        rows = await self._call(self._tables)
        if prefix:
            rows = filter_tables(rows, prefix)
        truncated = limit is not None and len(rows) > limit
        if limit is not None:
            rows = rows[:limit]
        frame = pd.DataFrame(
            [(schema, name, kind, None) for schema, name, kind in rows], columns=list(LISTING_COLUMNS)
        ).astype(LISTING_COLUMNS)
        return mark_result(frame, source=self.source_id, truncated=truncated, limit=limit)

    def _tables(self) -> list[tuple[str, str, str]]:
        return list_tables(self._require_connection())

    async def describe(self, item: str) -> pd.DataFrame:
        """A table's or view's columns: name, type, nullable, default, primary_key."""
        rows = await self._call(self._columns, item)
        frame = pd.DataFrame(rows, columns=list(COLUMN_INFO_COLUMNS)).astype(COLUMN_INFO_COLUMNS)
        return mark_result(frame, source=self.source_id, truncated=False, limit=None)

    def _columns(self, item: str) -> list[tuple[str, str, bool, str | None, bool]]:
        return describe_table(self._require_connection(), item, source=self.source_id)

    # -- data ----------------------------------------------------------------------

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> pd.DataFrame:
        """Run one statement with ``:name`` parameters bound; at most ``limit`` rows come back.

        Only ``limit + 1`` rows are fetched; ``attrs["truncated"]`` says whether there were
        more. A ``timeout`` (seconds) interrupts the statement and raises :class:`QueryError`.
        """
        output = options.pop("output", "pandas")
        self.refuse_query_options(options)
        if limit is not None and limit < 0:
            raise ConfigurationError(f"the row limit must be at least 0, got {limit}", source=self.source_id)
        missing = missing_parameters(sql, params)
        if missing:
            listed = ", ".join(f":{name}" for name in missing)
            raise QueryError(f"no value given for parameter {listed}", source=self.source_id)
        bound = {name: bindable(name, value, self.source_id) for name, value in (params or {}).items()}
        work = self._call(self._run_query, sql, bound, limit)
        try:
            names, rows, truncated = await (work if timeout is None else asyncio.wait_for(work, timeout))
        except (TimeoutError, asyncio.TimeoutError):
            raise QueryError(
                f"the query did not finish within {timeout:g} s and was stopped", source=self.source_id
            ) from None
        if output == "arrow":
            table = rows_to_table(names, rows, source=self.source_id)
            return with_info(table, {"source": self.source_id, "truncated": truncated, "row_limit": limit})  # type: ignore[no-any-return]
        frame = rows_to_frame(names, rows)
        return mark_result(frame, source=self.source_id, truncated=truncated, limit=limit)

    def _run_query(
        self, sql: str, params: dict[str, Any], limit: int | None
    ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        connection = self._require_connection()
        try:
            with closing(connection.execute(sql, params)) as cursor:
                if cursor.description is None:
                    return [], [], False
                names = [column[0] for column in cursor.description]
                rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit + 1)
        except sqlite3.Warning as error:  # e.g. more than one statement
            raise QueryError(str(error), source=self.source_id) from error
        except sqlite3.Error as error:
            raise self._query_error(error) from error
        finally:
            self._end_read_only_transaction(connection)
        truncated = limit is not None and len(rows) > limit
        return names, rows[:limit] if truncated else rows, truncated

    def _end_read_only_transaction(self, connection: sqlite3.Connection) -> None:
        """Roll back a transaction a query opened on a read-only source (``BEGIN``, ``SAVEPOINT``).

        Its lock would otherwise outlive the query and keep every other writer of the file
        waiting (``BEGIN IMMEDIATE`` takes the write lock at once), or stop checkpoints of a
        WAL database, for as long as the source lives.
        """
        if self.read_only and connection.in_transaction:
            with suppress(sqlite3.Error):
                connection.execute("ROLLBACK")

    def _query_error(self, error: sqlite3.Error) -> Exception:
        text = str(error) or type(error).__name__
        if text == "interrupted":
            return OperationCancelled("the query was interrupted", source=self.source_id)
        if "no such table" in text:
            return ItemNotFound(text, source=self.source_id)
        if self.read_only and is_refusal(text):
            text = "the source is read-only: the statement would write or attach a database, and was refused"
        elif "readonly database" in text:
            text += " (the source is read-only; add it with read_only=False to write)"
        return QueryError(text, source=self.source_id)

    # -- the worker thread ---------------------------------------------------------

    def _require_connection(self) -> sqlite3.Connection:
        """The open connection, opened again first if its file is no longer the one at its path."""
        connection = self._connection
        if connection is None:
            raise ConnectionFailed("the database is not open", source=self.source_id)
        if self.path != MEMORY and _file_identity(self.path) != self._identity:
            connection = self._reopen(connection)
        return connection

    def _reopen(self, old: sqlite3.Connection) -> sqlite3.Connection:
        """Open the database again because its file was replaced (or deleted) since it was opened.

        The old connection would go on reading, and writing, a file no path names any more.
        """
        if not os.path.isfile(self.path):
            raise ItemNotFound(f"database file {self.path} no longer exists", source=self.source_id)
        new = self._open()
        with self._stop_lock:
            current = self._connection
            if current is old:
                self._connection = new
        old.close()
        if current is not old:  # disconnected meanwhile
            new.close()
            raise ConnectionFailed("the database is not open", source=self.source_id)
        return new

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` on the worker thread; if cancelled, stop it and wait for it.

        A stop flag per call, checked by SQLite's progress handler, ends the statement
        even when the cancel comes before it started (where ``interrupt()`` alone is lost).
        """
        if self._executor is None:
            raise ConnectionFailed("the database is not open", source=self.source_id)
        stop = threading.Event()
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, self._run_job, stop, partial(function, *args)
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            with self._stop_lock:
                if self._stop is stop and self._connection is not None:
                    self._connection.interrupt()
            # Let the statement unwind so the connection is free for the next call.
            with suppress(Exception):
                await asyncio.wait_for(asyncio.shield(future), timeout=5)
            raise

    def _run_job(self, stop: threading.Event, job: Callable[[], T]) -> T:
        if stop.is_set():
            raise OperationCancelled("the query was interrupted", source=self.source_id)
        with self._stop_lock:
            self._stop = stop
        try:
            return job()
        finally:
            with self._stop_lock:
                self._stop = None

    def _stop_requested(self) -> int:
        """SQLite's progress handler: a non-zero answer interrupts the statement."""
        stop = self._stop
        return 1 if stop is not None and stop.is_set() else 0


def _file_identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of the file at ``path``; None for ``:memory:`` or a missing file."""
    if path == MEMORY:
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino

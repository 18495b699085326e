"""SQLite databases through the standard library's :mod:`sqlite3`.

A source is one database file (or ``:memory:``), opened read-only by default through a
``file:...?mode=ro`` URI. A read-only source also refuses, before it runs, every statement
that could write anywhere: an authorizer allows reading only (no ``ATTACH``, which would
reach other files or the same file writable, no ``VACUUM INTO``, no temporary tables, no
pragma that changes anything), and the connection may attach no database at all. A
transaction a query opens (``BEGIN``, ``SAVEPOINT``) ends with it, so no lock outlives a query.

Every :mod:`sqlite3` call runs on one worker thread owned by
the connector, because a connection belongs to the thread that made it; the event loop
never blocks. Cancelling a query calls :meth:`sqlite3.Connection.interrupt`, which stops
the running statement at once and leaves the connection usable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ConfigurationError, ConnectionFailed, ItemNotFound, OperationCancelled, QueryError
from ..frames import arrow_to_frame, mark_result
from ..models import OptionSpec, Secret
from ..sqlparams import missing_parameters
from .base import Connector, SourceContext, absolute_path
from .files.globs import glob_matcher, is_glob

__all__ = ["MEMORY", "SqliteConnector"]

T = TypeVar("T")

#: The path that names a private in-memory database.
MEMORY = ":memory:"

#: How many SQLite VM steps run between two checks for a cancel request.
_PROGRESS_STEPS = 10_000

_LISTING_COLUMNS = {"schema": "string", "name": "string", "kind": "string", "rows": "Int64"}
_COLUMN_INFO_COLUMNS = {
    "name": "string",
    "type": "string",
    "nullable": "boolean",
    "default": "string",
    "primary_key": "boolean",
}


class SqliteConnector(Connector):
    """A SQLite database file, read-only unless ``read_only=False``."""

    type_name = "sqlite"
    display_name = "SQLite"
    kind = "sql"
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
        if os.path.isdir(self.path):
            raise ConfigurationError(f"{self.path} is a folder, not a database file", source=self.source_id)
        if self.read_only and not os.path.exists(self.path):
            raise ItemNotFound(f"database file {self.path} does not exist", source=self.source_id)

    def _open(self) -> sqlite3.Connection:
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
            connection.set_authorizer(_read_only_authorizer)
            if sys.version_info >= (3, 11):  # a second guard where Python exposes the limit
                connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as error:
            connection.close()
            raise ConnectionFailed(f"cannot read {self.path}: {error}", source=self.source_id) from error
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
            rows = _filter_tables(rows, prefix)
        truncated = limit is not None and len(rows) > limit
        if limit is not None:
            rows = rows[:limit]
        frame = pd.DataFrame(
            [(schema, name, kind, None) for schema, name, kind in rows], columns=list(_LISTING_COLUMNS)
        ).astype(_LISTING_COLUMNS)
        return mark_result(frame, source=self.source_id, truncated=truncated, limit=limit)

    def _tables(self) -> list[tuple[str, str, str]]:
        connection = self._require_connection()
        schemas = [row[1] for row in connection.execute("PRAGMA database_list")]
        found: list[tuple[str, str, str]] = []
        for schema in schemas:
            found.extend(
                (schema, name, kind)
                for name, kind in connection.execute(
                    f"SELECT name, type FROM {quote_identifier(schema)}.sqlite_master "
                    "WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
                )
            )
        return found

    async def describe(self, item: str) -> pd.DataFrame:
        """A table's or view's columns: name, type, nullable, default, primary_key."""
        rows = await self._call(self._columns, item)
        frame = pd.DataFrame(rows, columns=list(_COLUMN_INFO_COLUMNS)).astype(_COLUMN_INFO_COLUMNS)
        return mark_result(frame, source=self.source_id, truncated=False, limit=None)

    def _columns(self, item: str) -> list[tuple[str, str, bool, str | None, bool]]:
        connection = self._require_connection()
        tables = self._tables()
        schema, table = _resolve_table(item, tables, source=self.source_id)
        info = connection.execute(
            'SELECT name, type, "notnull", dflt_value, pk '
            "FROM pragma_table_info(:table, :schema) ORDER BY cid",
            {"table": table, "schema": schema},
        ).fetchall()
        keys = sum(1 for *_, pk in info if pk)
        return [
            (name, kind, not (notnull or _is_rowid_alias(kind, pk, keys)), default, pk > 0)
            for name, kind, notnull, default, pk in info
        ]

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
        self.refuse_query_options(options)
        if limit is not None and limit < 0:
            raise ConfigurationError(f"the row limit must be at least 0, got {limit}", source=self.source_id)
        missing = missing_parameters(sql, params)
        if missing:
            listed = ", ".join(f":{name}" for name in missing)
            raise QueryError(f"no value given for parameter {listed}", source=self.source_id)
        bound = {name: _bindable(name, value, self.source_id) for name, value in (params or {}).items()}
        work = self._call(self._run_query, sql, bound, limit)
        try:
            names, rows, truncated = await (work if timeout is None else asyncio.wait_for(work, timeout))
        except (TimeoutError, asyncio.TimeoutError):
            raise QueryError(
                f"the query did not finish within {timeout:g} s and was stopped", source=self.source_id
            ) from None
        frame = _rows_to_frame(names, rows)
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
        if self.read_only and (text in _REFUSALS or text.startswith("not authorized to use function")):
            text = "the source is read-only: the statement would write or attach a database, and was refused"
        elif "readonly database" in text:
            text += " (the source is read-only; add it with read_only=False to write)"
        return QueryError(text, source=self.source_id)

    # -- the worker thread ---------------------------------------------------------

    def _require_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ConnectionFailed("the database is not open", source=self.source_id)
        return self._connection

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


#: The authorizer's actions a read-only connection allows: reading, functions, transactions.
_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE, sqlite3.SQLITE_TRANSACTION}
    | {sqlite3.SQLITE_SAVEPOINT}
)
#: SQLite's texts for a statement its authorizer refused.
_REFUSALS = frozenset({"not authorized", "authorization denied"})
#: The schema tables, which SQLite never lets a statement change without writable_schema.
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_temp_schema"})
#: Pragmas that only read, even when given an argument (the table or index they describe).
_PRAGMAS_READING_ARGUMENT = frozenset(
    {"table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list"}
    | {"foreign_key_list", "foreign_key_check", "integrity_check", "quick_check"}
)
#: Pragmas that write (or checkpoint, or analyse) even without an argument.
_PRAGMAS_WRITING_ALONE = frozenset({"optimize", "wal_checkpoint", "incremental_vacuum"})


def _read_only_authorizer(action: int, first: str | None, second: str | None, *_: str | None) -> int:
    """SQLite's authorizer of a read-only source: allow what reads, deny all else.

    Denied: every write, ``CREATE``/``DROP``/``ALTER`` (temporary objects too), ``ATTACH``
    (which ``VACUUM INTO`` uses), ``DETACH``, ``ANALYZE``, ``REINDEX``, virtual tables,
    ``load_extension()``, and a pragma that sets a value or changes the file.
    """
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_UPDATE and first in _SCHEMA_TABLES:
        # Asked when a table-valued pragma (pragma_table_info) is prepared; SQLite itself
        # refuses a real change of the schema table unless writable_schema, which is denied.
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (second or "").lower() == "load_extension" else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (first or "").lower()
        reads = (
            name in _PRAGMAS_READING_ARGUMENT if second is not None else name not in _PRAGMAS_WRITING_ALONE
        )
        return sqlite3.SQLITE_OK if reads else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_DENY


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (mixed case, dots and quotes kept)."""
    return '"' + name.replace('"', '""') + '"'


def _unquote(part: str) -> str:
    if len(part) >= 2 and part[0] == part[-1] == '"':
        return part[1:-1].replace('""', '"')
    return part


def _split_qualified(item: str) -> list[tuple[str | None, str]]:
    """The ``(schema, table)`` readings of ``item``: ``t``, ``s.t``, ``"s"."t.x"``..."""
    readings: list[tuple[str | None, str]] = [(None, _unquote(item))]
    position = 0
    in_quotes = False
    for position, char in enumerate(item):
        if char == '"':
            in_quotes = not in_quotes
        elif char == "." and not in_quotes:
            readings.append((_unquote(item[:position]), _unquote(item[position + 1 :])))
    return readings


def _resolve_table(item: str, tables: Sequence[tuple[str, str, str]], *, source: str) -> tuple[str, str]:
    """The schema and name of the table ``item`` names; a plain name prefers ``main``."""
    known = {(schema, name) for schema, name, _ in tables}
    for schema, name in _split_qualified(item.strip()):
        if schema is not None and (schema, name) in known:
            return schema, name
        if schema is None:
            matches = [pair for pair in known if pair[1] == name]
            if matches:
                return next((pair for pair in matches if pair[0] == "main"), sorted(matches)[0])
    raise ItemNotFound(f"no table or view named {item!r}", source=source)


def _is_rowid_alias(declared_type: str, primary_key_position: int, primary_key_columns: int) -> bool:
    """Whether a column is the table's ``INTEGER PRIMARY KEY`` (the rowid), which is never NULL."""
    return primary_key_position == 1 and primary_key_columns == 1 and declared_type.upper() == "INTEGER"


def _filter_tables(rows: list[tuple[str, str, str]], prefix: str) -> list[tuple[str, str, str]]:
    schemas = {schema for schema, _, _ in rows}
    if prefix in schemas:
        return [row for row in rows if row[0] == prefix]
    if is_glob(prefix):
        matches = glob_matcher(prefix)
        return [row for row in rows if matches(row[1]) or matches(f"{row[0]}.{row[1]}")]
    return [row for row in rows if row[1].startswith(prefix)]


def _bindable(name: str, value: Any, source: str) -> Any:
    """``value`` as something :mod:`sqlite3` binds without deprecated adapters."""
    if value is None or isinstance(value, (str, int, float, bytes)):
        return value
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return _bindable(name, value.item(), source)  # numpy scalars
    if value is pd.NaT:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    kind = type(value).__name__
    raise QueryError(f"parameter :{name} has a type SQLite cannot bind: {kind}", source=source)


def _rows_to_frame(names: list[str], rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows of SQLite values into a DataFrame with exact integers and nullable dtypes.

    A column whose values mix types (SQLite allows it) stays an ``object`` column.
    """
    columns: list[list[Any]] = [[row[position] for row in rows] for position in range(len(names))]
    arrays: list[pa.Array] = []
    mixed: dict[int, list[Any]] = {}
    for position, values in enumerate(columns):
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arrays.append(pa.nulls(len(values)))
            mixed[position] = values
    frame = arrow_to_frame(pa.Table.from_arrays(arrays, names=names))
    for position, values in mixed.items():
        frame.isetitem(position, np.array(values, dtype=object))
    return frame

"""Arrow tables into PostgreSQL tables: one transaction, fed by ``COPY ... FROM STDIN``.

- ``create`` makes the table (refused if it exists), ``append`` adds rows to an existing
  table whose columns hold the frame's, ``replace`` builds the new table under a
  temporary name and swaps it in, so readers see the old table or the new one.
- Everything runs in one transaction on a pooled connection: an error, a dropped
  connection or an interrupt (the COPY is cancelled on the server) leaves the database
  as it was, and the pool's reset rolls back what is left.
- Column types come from the Arrow types (:func:`column_type`), or from ``types``.
  Every name is quoted with :mod:`psycopg.sql`, as given (mixed case, spaces).
- Rows travel in binary ``COPY`` encoded column by column with numpy (:mod:`.binary_rows`)
  when the table is made here and every column's type is one it encodes; else as CSV that
  pyarrow formats (appends, ``types`` overrides, JSON, wide decimals). Either way batch by
  batch in a worker thread while the previous batch is sent. Binary is picked by
  measurement: the server parses it with less work, which is most of a large write's time
  (``python bench/bench_write.py`` times both paths; README "Speed", "Writing").
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg import sql

from ...errors import ConfigurationError, DataSourceError, ItemNotFound, QueryError, WriteConflict
from ...progress import Progress, ProgressFactory
from ...writing import WriteRequest, nothing_written
from .binary_rows import HEADER, TRAILER, encodable, encode_rows
from .errors import one_line, query_error

__all__ = ["column_type", "split_table_name", "write_table"]

AsyncConnection = psycopg.AsyncConnection[Any]

#: Rows per CSV batch: large enough to keep the server busy, small enough to pipeline.
BATCH_ROWS = 65_536
_MAX_IDENTIFIER = 63
_TYPE_TEXT_RE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?( with(out)? time zone)?(\[\])?"
)
# pyarrow quotes every text value (an empty one too) and never a NULL, as COPY needs to tell them apart
_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


def column_type(data_type: pa.DataType) -> str | None:
    """The PostgreSQL type for an Arrow type, or ``None`` when none holds it exactly."""
    simple = {
        pa.int8(): "smallint",
        pa.int16(): "smallint",
        pa.uint8(): "smallint",
        pa.int32(): "integer",
        pa.uint16(): "integer",
        pa.int64(): "bigint",
        pa.uint32(): "bigint",
        pa.float32(): "real",
        pa.float64(): "double precision",
        pa.bool_(): "boolean",
        pa.string(): "text",
        pa.large_string(): "text",
        pa.null(): "text",
        pa.date32(): "date",
        pa.binary(): "bytea",
        pa.large_binary(): "bytea",
    }
    if isinstance(data_type, pa.JsonType):
        return "jsonb"
    if data_type in simple:
        return simple[data_type]
    if pa.types.is_timestamp(data_type):
        return "timestamp with time zone" if data_type.tz else "timestamp without time zone"
    if pa.types.is_decimal(data_type):
        return f"numeric({data_type.precision}, {data_type.scale})"
    if pa.types.is_nested(data_type):
        return "jsonb"
    if pa.types.is_time(data_type):
        return "time without time zone"
    return None


def split_table_name(target: str, *, source: str) -> tuple[str | None, str]:
    """``schema.table`` (parts in double quotes may hold dots) -> (schema or ``None``, table)."""
    parts = [
        part[1:-1].replace('""', '"') if part.startswith('"') else part
        for part in re.findall(r'"(?:[^"]|"")*"|[^.]+', target.strip())
    ]
    if not 1 <= len(parts) <= 2 or any(not part.strip() for part in parts):
        raise ConfigurationError(f"{target!r} is not a table name (table or schema.table)", source=source)
    for part in parts:
        _check_identifier(part, "table name", source)
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _check_identifier(name: str, what: str, source: str) -> None:
    if "\x00" in name or len(name.encode()) > _MAX_IDENTIFIER:
        raise ConfigurationError(
            f"{what} {name[:70]!r} is longer than PostgreSQL's {_MAX_IDENTIFIER} bytes", source=source
        )


def _column_types(table: pa.Table, overrides: Mapping[str, str], source: str) -> list[str]:
    unknown = sorted(set(overrides) - set(table.column_names))
    if unknown:
        raise ConfigurationError(
            f"types given for columns not in the frame: {', '.join(unknown)}", source=source
        )
    found = []
    for name, data_type in zip(table.column_names, table.schema.types, strict=False):
        _check_identifier(name, "column name", source)
        chosen = overrides.get(name) or column_type(data_type)
        if chosen is None:
            raise ConfigurationError(
                f"column {name!r} ({data_type}) has no PostgreSQL type; give one with types=", source=source
            )
        if not _TYPE_TEXT_RE.fullmatch(chosen.strip()):
            raise ConfigurationError(f"{chosen!r} is not a type name (column {name!r})", source=source)
        found.append(chosen.strip())
    return found


def _csv_ready(table: pa.Table) -> pa.Table:
    """Columns CSV cannot show as PostgreSQL reads them, as text: bytea in hex, nested values as JSON."""
    columns = []
    for column in table.columns:
        if isinstance(column.type, pa.JsonType):
            column = column.cast(pa.string())
        elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            values = [None if value is None else "\\x" + value.hex() for value in column.to_pylist()]
            column = pa.array(values, pa.string())
        elif pa.types.is_nested(column.type):
            column = pa.array(
                [None if value is None else json.dumps(value, default=str) for value in column.to_pylist()],
                pa.string(),
            )
        elif pa.types.is_timestamp(column.type):
            # Microseconds, as the server keeps them; instants as UTC wall-clock times, read
            # in the transaction's UTC time zone (pyarrow formats zoned times 15x slower).
            column = pc.cast(column, pa.timestamp("us"), safe=False)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _csv(batch: pa.Table) -> bytes:
    sink = io.BytesIO()
    pa_csv.write_csv(_csv_ready(batch), sink, _CSV_OPTIONS)
    return sink.getvalue()


async def write_table(
    conn: AsyncConnection,
    request: WriteRequest,
    table: pa.Table,
    *,
    source: str,
    progress: ProgressFactory,
) -> str:
    """Write ``table`` as ``request`` says, in one transaction; return what was done, in a line."""
    schema, name = split_table_name(request.target, source=source)
    types = _column_types(table, request.types, source)
    shown = request.target
    try:
        await conn.execute("BEGIN")
        await conn.execute("SET LOCAL timezone = 'UTC'")  # how timestamptz values are sent
        found_in = await _schema_of(conn, schema, name)
        existing = found_in is not None
        schema = schema or found_in  # replace and append act on the table the name finds
        if request.mode == "create" and existing:
            raise WriteConflict(
                f"table {shown} already exists: nothing was written; use mode 'append' or 'replace'",
                source=source,
            )
        if request.mode == "append" and not existing:
            raise ItemNotFound(
                f"no table {shown} to append to: nothing was written; use mode 'create'", source=source
            )
        if request.mode == "append":
            await _check_columns(conn, schema, name, table.column_names, shown, source)
            into = _qualified(schema, name)
        elif request.mode == "replace":
            into = _qualified(schema, _temporary_name(name))
            await _create(conn, into, table.column_names, types)
        else:
            into = _qualified(schema, name)
            await _create(conn, into, table.column_names, types)
        report = progress(
            f"{source}: writing {shown}", total_bytes=None, total_items=table.num_rows, items="rows"
        )
        # Binary where the server parses it as the table's own types: the columns made here.
        binary = request.mode != "append" and not request.types and all(map(encodable, table.schema.types))
        await _copy(conn, into, table, report, source, binary=binary)
        if request.mode == "replace" and existing:
            await conn.execute(sql.SQL("DROP TABLE {}").format(_qualified(schema, name)))
        if request.mode == "replace":
            await conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(into, sql.Identifier(name)))
        request.stage.committing(f"the table {shown}")
        await conn.execute("COMMIT")
        request.stage.done()
    except DataSourceError:
        raise
    except psycopg.Error as error:
        failed = query_error(error, source=source, connection_lost=conn.broken)
        raise nothing_written(failed, shown) from None
    verb = {"create": "created", "append": "appended to", "replace": "replaced"}[request.mode]
    return f"{source}: {table.num_rows} row(s) written, table {shown} {verb}"


def _qualified(schema: str | None, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def _temporary_name(name: str) -> str:
    suffix = f"__new_{uuid.uuid4().hex[:8]}"
    return name.encode()[: _MAX_IDENTIFIER - len(suffix)].decode(errors="ignore") + suffix


async def _schema_of(conn: AsyncConnection, schema: str | None, name: str) -> str | None:
    """The schema of the table ``name`` finds (through the search path if no schema), or ``None``."""
    cursor = await conn.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = to_regclass(%s)",
        [_qualified(schema, name).as_string(conn)],
    )
    row = await cursor.fetchone()
    return str(row[0]) if row else None


async def _check_columns(
    conn: AsyncConnection, schema: str | None, name: str, wanted: Sequence[str], shown: str, source: str
) -> None:
    cursor = await conn.execute(
        "SELECT attname FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        [_qualified(schema, name).as_string(conn)],
    )
    present = {row[0] for row in await cursor.fetchall()}
    missing = [column for column in wanted if column not in present]
    if missing:
        raise QueryError(
            f"table {shown} has no column {', '.join(map(repr, missing))}: nothing was written",
            source=source,
        )


async def _create(
    conn: AsyncConnection, into: sql.Identifier, names: Sequence[str], types: Sequence[str]
) -> None:
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(kind))
        for column, kind in zip(names, types, strict=False)
    )
    await conn.execute(sql.SQL("CREATE TABLE {} ({})").format(into, columns))


async def _copy(
    conn: AsyncConnection,
    into: sql.Identifier,
    table: pa.Table,
    progress: Progress,
    source: str,
    *,
    binary: bool,
) -> None:
    """COPY the rows, encoding the next batch in a thread while the current one is sent."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(
        into,
        sql.SQL(", ").join(map(sql.Identifier, table.column_names)),
        sql.SQL("binary" if binary else "csv"),
    )
    encode = encode_rows if binary else _csv
    batches = (table.slice(start, BATCH_ROWS) for start in range(0, table.num_rows, BATCH_ROWS))
    ahead: asyncio.Future[bytes] | None = None
    try:
        async with conn.cursor().copy(statement) as copy:
            if binary:
                await copy.write(HEADER)
            batch = next(batches, None)
            ahead = asyncio.ensure_future(asyncio.to_thread(encode, batch)) if batch is not None else None
            while ahead is not None and batch is not None:
                data, rows = await ahead, batch.num_rows
                batch = next(batches, None)
                ahead = asyncio.ensure_future(asyncio.to_thread(encode, batch)) if batch is not None else None
                await copy.write(data)
                progress.update(nbytes=len(data), items=rows)
            if binary:
                await copy.write(TRAILER)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ConfigurationError(
            f"cannot format the rows: {one_line(str(error))[:200]}", source=source
        ) from None
    finally:
        if ahead is not None:
            ahead.cancel()
        progress.close()

"""A SQLite database's catalog: its tables and views, and their columns."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ...errors import ItemNotFound
from ..files.globs import glob_matcher, is_glob

__all__ = [
    "COLUMN_INFO_COLUMNS",
    "LISTING_COLUMNS",
    "describe_table",
    "filter_tables",
    "list_tables",
    "quote_identifier",
]

LISTING_COLUMNS = {"schema": "string", "name": "string", "kind": "string", "rows": "Int64"}
COLUMN_INFO_COLUMNS = {
    "name": "string",
    "type": "string",
    "nullable": "boolean",
    "default": "string",
    "primary_key": "boolean",
}


def list_tables(connection: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """Every table and view of every attached database: (schema, name, kind), by name."""
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


def describe_table(
    connection: sqlite3.Connection, item: str, *, source: str
) -> list[tuple[str, str, bool, str | None, bool]]:
    """The columns of the table or view ``item``: name, type, nullable, default, primary key."""
    schema, table = _resolve_table(item, list_tables(connection), source=source)
    info = connection.execute(
        'SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(:table, :schema) ORDER BY cid',
        {"table": table, "schema": schema},
    ).fetchall()
    keys = sum(1 for *_, pk in info if pk)
    return [
        (name, kind, not (notnull or _is_rowid_alias(kind, pk, keys)), default, pk > 0)
        for name, kind, notnull, default, pk in info
    ]


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


def filter_tables(rows: list[tuple[str, str, str]], prefix: str) -> list[tuple[str, str, str]]:
    schemas = {schema for schema, _, _ in rows}
    if prefix in schemas:
        return [row for row in rows if row[0] == prefix]
    if is_glob(prefix):
        matches = glob_matcher(prefix)
        return [row for row in rows if matches(row[1]) or matches(f"{row[0]}.{row[1]}")]
    return [row for row in rows if row[1].startswith(prefix)]

"""Browsing a PostgreSQL database from its catalog: schemas, tables, views and columns.

Row counts are the planner's estimates (``pg_class.reltuples``), never a ``COUNT(*)``.
Names are matched exactly as they are stored (mixed case, spaces and dots included), and
every value reaches the server as a bound parameter.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import psycopg

from ...errors import ItemNotFound
from .columns import frame_from_values
from .result import result_fields
from .types import PlanSettings, plan_columns

__all__ = ["describe_relation", "list_relations"]

AsyncConnection = psycopg.AsyncConnection[Any]

_KINDS = (
    "CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view' "
    "WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' END"
)
_USER_SCHEMA = "left(n.nspname, 3) <> 'pg_' AND n.nspname <> 'information_schema'"

_SCHEMAS = f"""
SELECT NULL::text AS schema, n.nspname::text AS name, 'schema' AS kind, NULL::int8 AS rows
FROM pg_namespace n
WHERE {_USER_SCHEMA}
ORDER BY n.nspname
LIMIT %(limit)s
"""

_RELATIONS = f"""
SELECT n.nspname::text AS schema, c.relname::text AS name, {_KINDS} AS kind,
       CASE WHEN c.relkind <> 'v' AND c.reltuples >= 0 THEN c.reltuples::int8 END AS rows
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND (n.nspname::text = %(schema)s::text OR %(schema)s::text IS NULL AND {_USER_SCHEMA})
ORDER BY n.nspname, c.relname
LIMIT %(limit)s
"""

_SCHEMA_EXISTS = "SELECT 1 FROM pg_namespace WHERE nspname::text = %s::text"

# An unqualified name visible on the search path first, then "schema.name" split at any dot.
_FIND_EXACT = f"""
SELECT c.oid, n.nspname::text, c.relname::text, {_KINDS}
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND (c.relname::text = %(item)s::text AND pg_table_is_visible(c.oid)
       OR (n.nspname::text, c.relname::text) IN (
           SELECT * FROM unnest(%(schemas)s::text[], %(names)s::text[])))
ORDER BY c.relname::text = %(item)s::text DESC, length(n.nspname) DESC
LIMIT 1
"""

# The name as SQL would read it: quoted parts kept, unquoted parts folded to lower case.
_FIND_AS_SQL = f"""
SELECT c.oid, n.nspname::text, c.relname::text, {_KINDS}
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""

_COLUMNS = """
SELECT a.attname::text AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       NOT a.attnotnull AS nullable,
       pg_get_expr(d.adbin, d.adrelid) AS "default",
       COALESCE(a.attnum = ANY (pk.conkey), false) AS primary_key
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_constraint pk ON pk.conrelid = a.attrelid AND pk.contype = 'p'
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


async def _frame(cursor: psycopg.AsyncCursor[Any]) -> pd.DataFrame:
    """The cursor's rows as a frame, with the same dtypes as query results."""
    rows = await cursor.fetchall()
    plans = plan_columns(result_fields(cursor.pgresult), cursor.connection.adapters, PlanSettings())
    columns = [[row[index] for row in rows] for index in range(len(plans))]
    return frame_from_values(plans, columns, len(rows))


async def list_relations(
    conn: AsyncConnection, schema: str | None, *, recursive: bool, limit: int | None, source: str
) -> tuple[pd.DataFrame, bool]:
    """Schemas (no ``schema``, not recursive), else tables and views; and whether ``limit`` cut it."""
    fetch = None if limit is None else limit + 1
    if schema is None and not recursive:
        cursor = await conn.execute(_SCHEMAS, {"limit": fetch})
    else:
        cursor = await conn.execute(_RELATIONS, {"schema": schema, "limit": fetch})
    frame = await _frame(cursor)
    if frame.empty and schema is not None:
        exists = await conn.execute(_SCHEMA_EXISTS, [schema])
        if await exists.fetchone() is None:
            raise ItemNotFound(f"no schema named {schema!r}", source=source)
    frame["rows"] = frame["rows"].astype("Int64")
    truncated = limit is not None and len(frame) > limit
    return (frame.iloc[:limit].reset_index(drop=True) if truncated else frame), truncated


async def describe_relation(conn: AsyncConnection, item: str, *, source: str) -> pd.DataFrame:
    """The columns of the table or view named ``item`` (``name``, ``schema.name`` or SQL-quoted)."""
    splits = [(item[:index], item[index + 1 :]) for index, char in enumerate(item) if char == "."]
    cursor = await conn.execute(
        _FIND_EXACT,
        {"item": item, "schemas": [s for s, _ in splits], "names": [n for _, n in splits]},
    )
    found = await cursor.fetchone()
    if found is None:
        found = await _find_as_sql(conn, item)
    if found is None:
        raise ItemNotFound(f"no table or view named {item!r}", source=source)
    oid, schema, name, kind = found
    frame = await _frame(await conn.execute(_COLUMNS, [oid]))
    frame.attrs.update({"schema": schema, "table": name, "kind": kind})
    return frame


async def _find_as_sql(conn: AsyncConnection, item: str) -> tuple[Any, ...] | None:
    try:
        cursor = await conn.execute(_FIND_AS_SQL, [item])
    except (
        psycopg.errors.DataError,
        psycopg.errors.SyntaxErrorOrAccessRuleViolation,
        psycopg.errors.FeatureNotSupported,
    ):
        return None  # not a valid SQL name either
    return await cursor.fetchone()

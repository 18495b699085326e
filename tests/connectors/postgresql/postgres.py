"""Helpers of the PostgreSQL connector's tests on the test session's server."""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.services import PostgresServer


def source_options(pg_server: PostgresServer, **options: Any) -> dict[str, Any]:
    """Options that reach the test server; the password goes in ``secrets``."""
    base: dict[str, Any] = {
        "host": pg_server.host,
        "port": pg_server.port,
        "user": pg_server.user,
        "dbname": pg_server.dbname,
    }
    if pg_server.options:
        base["dsn"] = make_conninfo("", **pg_server.options)
    return {**base, **options}


def add_postgres(session: Any, pg_server: PostgresServer, source_id: str = "pg", **options: Any) -> Any:
    """``session`` with a PostgreSQL source ``source_id`` on the test server (``options`` added)."""
    session.add(
        source_id,
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, **options),
    )
    return session


def admin(
    pg_server: PostgresServer, statement: str | sql.SQL | sql.Composed, *args: Any
) -> list[tuple[Any, ...]]:
    """Run ``statement`` as the server's administrator; its rows, if it has any."""
    with pg_server.admin_connection() as conn:
        cursor = conn.execute(statement, args or None)
        return cursor.fetchall() if cursor.description else []


def copy_formats(pg_server: PostgresServer, marker: str) -> list[str]:
    """The format of each finished ``COPY`` whose text holds ``marker``: text ones, then binary ones."""
    rows = admin(
        pg_server,
        "SELECT query, calls FROM pg_stat_statements WHERE query LIKE 'COPY%%' AND query LIKE %s",
        f"%{marker}%",
    )
    calls = {
        "binary" if query.rstrip().endswith("(FORMAT binary)") else "text": count for query, count in rows
    }
    return [fmt for fmt in ("text", "binary") for _ in range(calls.get(fmt, 0))]

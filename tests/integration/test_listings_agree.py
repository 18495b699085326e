"""Listings read the same whatever the source type: one column for a table's rows."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from psycopg import sql

from deepanalyze_jupyter import Session
from tests.connectors.postgresql.postgres import source_options
from tests.services.postgres import PostgresServer

LISTING = {"schema": "string", "name": "string", "kind": "string", "rows": "Int64"}


def test_sqlite_and_postgresql_tables_list_the_same_columns(
    pg_server: PostgresServer, pg_schema: str, tmp_path: Path
) -> None:
    database = tmp_path / "shop.db"
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        connection.commit()
    with pg_server.admin_connection() as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.orders (id int)").format(sql.Identifier(pg_schema)))
    with Session() as session:
        session.add("lite", "sqlite", path=str(database))
        session.add("pg", "postgresql", secrets={"password": pg_server.password}, **source_options(pg_server))
        listings = [session.list_items("lite"), session.list_items("pg", pg_schema)]
    for listing in listings:
        assert listing["name"].tolist() == ["orders"]
        assert {column: str(dtype) for column, dtype in listing.dtypes.items()} == LISTING

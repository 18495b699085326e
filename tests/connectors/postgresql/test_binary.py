"""Reading a repeated query as binary ``COPY``, on the real server of the test session.

A statement is read as text the first time; if its columns are all of types the binary
decoder takes, their text costs the server more than the decoding costs the client (a
timestamptz column does), and its rows fit one piece, the next run reads them as binary.
Each test here checks that the second (binary) read gives exactly the first (text) read's
frame, and, in ``pg_stat_statements``, which format each run asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import uuid4

import pandas as pd
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import QueryError
from deepanalyze_jupyter.frames import is_truncated
from tests.connectors.postgresql.postgres import admin, copy_formats
from tests.services import PostgresServer

EDGE_ROWS = 2100  # a few hundred KiB of COPY text: one piece, more than 32 KiB
#: A timestamptz column, what makes reading the others as binary worth it.
AT = "timestamptz '2024-01-01' + g * interval '1 minute' AS at"


@dataclass
class Scratch:
    """The test server, as its administrator, and the test's own schema."""

    server: PostgresServer
    schema: str

    def run(self, statement: str) -> None:
        admin(self.server, statement)

    def table(self, select: str, *, seed: float | None = None) -> str:
        """A table of the test's schema, with a name of its own, made of the rows of ``select``.

        ``seed`` seeds ``random()`` on the connection that makes the rows, so they are the same
        in every run.
        """
        name = f"{self.schema}.t_{uuid4().hex[:8]}"
        with self.server.admin_connection() as connection:
            if seed is not None:
                connection.execute("SELECT setseed(%s)", [seed])
            connection.execute(f"CREATE TABLE {name} AS {select}")
        return name

    def copy_formats(self, marker: str) -> list[str]:
        return copy_formats(self.server, marker)


@pytest.fixture
def scratch(pg_server: PostgresServer, pg_schema: str) -> Scratch:
    return Scratch(pg_server, pg_schema)


@pytest.fixture
def edge_table(scratch: Scratch) -> str:
    """Every type the binary decoder takes, at its edges, and a NULL in each column every 7th row."""
    name = scratch.table(
        f"""
        SELECT g,
               ((g % 3 - 1) * 32767)::int2 AS i2,
               CASE g % 4 WHEN 0 THEN -2147483648 WHEN 1 THEN 2147483647 ELSE g END::int4 AS i4,
               CASE g % 4 WHEN 0 THEN -9223372036854775808 WHEN 1 THEN 9223372036854775807
                    ELSE -g END::int8 AS i8,
               CASE g % 5 WHEN 0 THEN 'NaN' WHEN 1 THEN 'Infinity' WHEN 2 THEN '-0'
                    ELSE (g / 7.0)::text END::float8 AS f8,
               ((g - 1000) * 123456789.0123)::numeric(18, 4) AS n18,
               CASE g % 6 WHEN 0 THEN 0 WHEN 1 THEN 0.01 WHEN 2 THEN -0.01
                    WHEN 3 THEN 9999999999.99 ELSE g * 10000 END::numeric(12, 2) AS n12,
               (g % 99999 - 50000)::numeric(5, 0) AS n5,
               (g / 1000000.0)::numeric(6, 6) AS n6,
               CASE g % 5 WHEN 0 THEN '' WHEN 1 THEN E'tab\\there\\nnew line' WHEN 2 THEN 'ünïcødé ✓ ' || g
                    WHEN 3 THEN repeat('x', g % 50) ELSE E'back\\\\slash' END AS t,
               ('c' || g % 10)::char(5) AS bp,
               ('v' || g)::varchar(20) AS vc,
               (g::text)::name AS nm,
               g % 2 = 0 AS b,
               CASE g % 5 WHEN 0 THEN date '0001-01-01' WHEN 1 THEN date '9999-12-31'
                    WHEN 2 THEN date '1969-12-31' ELSE date '2000-01-01' + g END AS d,
               CASE g % 4 WHEN 0 THEN timestamp '0001-01-01 00:00:00'
                    WHEN 1 THEN timestamp '9999-12-31 23:59:59.999999'
                    ELSE timestamp '1969-12-31 23:59:59.123456' + g * interval '1 hour' END AS ts,
               CASE g % 4 WHEN 0 THEN timestamptz '1900-01-01 12:00:00+00'
                    ELSE timestamptz '2024-03-31 00:30:00+00' + g * interval '17 minutes' END AS tstz
        FROM generate_series(1, {EDGE_ROWS}) AS g
        """,
    )
    scratch.run(
        f"UPDATE {name} SET i2 = NULL, i4 = NULL, i8 = NULL, f8 = NULL, n18 = NULL, n12 = NULL, n5 = NULL, "
        "n6 = NULL, t = NULL, bp = NULL, vc = NULL, nm = NULL, b = NULL, d = NULL, ts = NULL, tstz = NULL "
        "WHERE g % 7 = 0",
    )
    return name


def test_a_repeated_query_is_read_as_binary_and_gives_the_same_frame(
    pg: Session,
    scratch: Scratch,
    edge_table: str,
) -> None:
    sql = f"SELECT *, tstz AS tstz_again FROM {edge_table} ORDER BY g"  # integers, text, numeric: many
    first = pg.query("pg", sql, limit=None)
    second = pg.query("pg", sql, limit=None)
    third = pg.query("pg", sql, limit=None)
    assert scratch.copy_formats(edge_table) == ["text", "binary", "binary"]
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(first, third)
    assert len(second) == EDGE_ROWS
    assert second["n18"].dtype == "decimal128(18, 4)[pyarrow]"
    assert second["tstz"].dtype == "datetime64[us, Europe/Paris]"
    assert second["i8"].dtype == "Int64"
    row = second.iloc[0]  # g = 1
    assert row["i4"] == 2147483647
    assert row["i8"] == 9223372036854775807
    assert row["n18"] == Decimal("-123333332223.2877")
    assert row["n12"] == Decimal("0.01")
    assert row["t"] == "tab\there\nnew line"
    assert row["bp"] == "c1   "
    assert second["t"].iloc[3] == "back\\slash"
    assert second.iloc[6].drop("g").isna().all()  # g = 7: a NULL in every column


def test_values_no_arrow_type_holds_load_the_column_value_by_value(pg: Session, scratch: Scratch) -> None:
    marker = f"nan_{uuid4().hex[:8]}"
    sql = (
        f"SELECT g AS {marker}, CASE WHEN g = 2000 THEN 'NaN' ELSE g::text END::numeric(10, 2) AS n, "
        f"md5(g::text) AS h, {AT} FROM generate_series(1, 2000) AS g"
    )
    first = pg.query("pg", sql, limit=None)
    second = pg.query("pg", sql, limit=None)
    assert scratch.copy_formats(marker) == ["text", "binary"]
    pd.testing.assert_frame_equal(first, second)
    assert second["n"].dtype == object
    assert second["n"].iloc[-1].is_nan()
    assert second["n"].iloc[0] == Decimal("1.00")


def test_a_value_python_cannot_hold_in_a_binary_read_is_the_same_clear_error(
    pg: Session, scratch: Scratch
) -> None:
    table = scratch.table(f"SELECT g, date '2024-01-01' + g AS d, {AT} FROM generate_series(1, 4000) g")
    sql = f"SELECT * FROM {table} ORDER BY g"
    assert len(pg.query("pg", sql, limit=None)) == 4000
    scratch.run(f"UPDATE {table} SET d = date '0044-03-15 BC' WHERE g = 10")
    with pytest.raises(QueryError, match=r"pg: cannot load column 'd': date too small"):
        pg.query("pg", sql, limit=None)
    assert scratch.copy_formats(table) == ["text", "binary"]


def test_a_column_that_changed_type_between_runs_is_read_as_text_again(pg: Session, scratch: Scratch) -> None:
    table = scratch.table(f"SELECT g, g::text AS v, {AT} FROM generate_series(1, 5000) g")
    sql = f"SELECT * FROM {table} ORDER BY g"
    assert pg.query("pg", sql, limit=None)["v"].iloc[0] == "1"
    scratch.run(f"ALTER TABLE {table} ALTER COLUMN v TYPE jsonb USING to_jsonb(g)")
    changed = pg.query("pg", sql, limit=None)  # binary asked, then read again as text
    assert changed["v"].iloc[0] == 1
    assert changed["v"].dtype == object
    pg.query("pg", sql, limit=None)  # text from then on
    assert scratch.copy_formats(table) == ["text", "text", "text", "binary"]


def test_a_limited_repeated_query_is_cut_the_same_way(pg: Session, scratch: Scratch) -> None:
    marker = f"cut_{uuid4().hex[:8]}"
    sql = f"SELECT g AS {marker}, md5(g::text) AS h, {AT} FROM generate_series(1, 50000) AS g ORDER BY g"
    first = pg.query("pg", sql, limit=3000)
    second = pg.query("pg", sql, limit=3000)
    assert scratch.copy_formats(marker) == ["text", "binary"]
    pd.testing.assert_frame_equal(first, second)
    assert len(second) == 3000
    assert is_truncated(first)
    assert is_truncated(second)
    whole = pg.query("pg", f"SELECT * FROM ({sql}) q WHERE {marker} <= 3000", limit=3000)
    assert not is_truncated(whole)


def test_a_result_that_grew_past_one_piece_goes_back_to_text(pg: Session, scratch: Scratch) -> None:
    table = scratch.table(f"SELECT g, md5(g::text) AS h, {AT} FROM generate_series(1, 2000) g")
    sql = f"SELECT * FROM {table} ORDER BY g"
    pg.query("pg", sql, limit=None)
    scratch.run(f"INSERT INTO {table} SELECT g, md5(g::text), {AT} FROM generate_series(2001, 100000) g")
    grown = pg.query("pg", sql, limit=None)  # binary, all of it
    assert grown["g"].tolist() == list(range(1, 100_001))
    assert grown["h"].iloc[-1] == pg.query("pg", "SELECT md5('100000') AS h")["h"].iloc[0]
    again = pg.query("pg", sql, limit=None)
    pd.testing.assert_frame_equal(grown, again)
    assert scratch.copy_formats(table) == ["text", "text", "binary"]


def test_a_result_binary_would_not_read_faster_stays_text(pg: Session, scratch: Scratch) -> None:
    marker = f"plain_{uuid4().hex[:8]}"
    sql = (  # all of types the decoder takes, none whose text costs the server much
        f"SELECT g AS {marker}, md5(g::text) AS h, (g * 1.5)::numeric(12, 2) AS n "
        "FROM generate_series(1, 3000) AS g"
    )
    pd.testing.assert_frame_equal(pg.query("pg", sql, limit=None), pg.query("pg", sql, limit=None))
    assert scratch.copy_formats(marker) == ["text", "text"]


NUMERIC_TYPES = [
    (1, 0),
    (4, 4),
    (5, 0),
    (9, 3),
    (12, 2),
    (15, 5),
    (16, 0),
    (17, 8),
    (18, 0),
    (18, 4),
    (18, 18),
]


def random_numeric(precision: int, scale: int) -> str:
    """SQL for a column of numeric(precision, scale): 18 random digits put at a random
    magnitude within the type, either sign, rounded to the scale and kept in range; some NULLs."""
    top = Decimal(10) ** (precision - scale) - Decimal(10) ** -scale
    digits = "(floor(random() * 1e9)::numeric * 1e9 + floor(random() * 1e9)::numeric)"
    magnitude = f"10 ^ (18 - floor(random() * {precision - scale + 1}))::numeric"
    value = f"round(sign(random() - 0.5)::numeric * {digits} / {magnitude}, {scale})"
    return (
        f"CASE WHEN random() < 0.05 THEN NULL ELSE LEAST(GREATEST({value}, -{top}), {top}) END"
        f"::numeric({precision}, {scale}) AS n_{precision}_{scale}"
    )


def test_numerics_of_every_precision_and_magnitude_read_alike_from_binary(
    pg: Session, scratch: Scratch
) -> None:
    columns = ", ".join(random_numeric(precision, scale) for precision, scale in NUMERIC_TYPES)
    select = f"SELECT g, {columns}, {AT} FROM generate_series(1, 3000) AS g"
    table = scratch.table(select, seed=0.25)
    again = scratch.table(select, seed=0.25)  # the same rows: the test is the same in every run
    differ = admin(scratch.server, f"SELECT count(*) FROM (TABLE {table} EXCEPT ALL TABLE {again}) AS d")
    assert differ == [(0,)]
    sql = f"SELECT *, at AS at_2, at AS at_3 FROM {table} ORDER BY g"  # timestamps: binary pays
    first = pg.query("pg", sql, limit=None)
    second = pg.query("pg", sql, limit=None)
    assert scratch.copy_formats(table) == ["text", "binary"]
    pd.testing.assert_frame_equal(first, second)
    assert first["n_18_0"].abs().max() > 10**17  # the widest reach their top digits
    assert (first["n_12_2"] < 0).any()
    assert first["n_17_8"].isna().any()

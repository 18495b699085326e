"""The same data in each result format (pandas, Arrow, Polars), from each source type, compared.

Each format is brought to one common form (an Arrow table, zoned timestamps in UTC, text as
``large_string``) and compared with the others and with what the reference library reads
(psycopg's rows, ``sqlite3``'s rows, ``pyarrow``'s readers of the files): the same values,
NaN apart from NULL, and the same logical types. A cached result is compared with a fresh
one, also after the returned frames were changed.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from deepanalyze_jupyter import Session
from tests.connectors.postgresql.postgres import add_postgres
from tests.services import AzuriteServer, PostgresServer

FORMATS = ("pandas", "arrow", "polars")
INT64 = (-(2**63), 2**63 - 1)
PARIS = "Europe/Paris"


def common(result: Any) -> pa.Table:
    """A result of any format as an Arrow table: zoned timestamps in UTC, text ``large_string``."""
    if isinstance(result, pd.DataFrame):
        arrays = [_pandas_array(result.iloc[:, position]) for position in range(result.shape[1])]
        table = pa.Table.from_arrays(arrays, names=[str(name) for name in result.columns])
    elif isinstance(result, pl.DataFrame):
        table = result.to_arrow()
    else:
        table = result
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = column.cast(pa.timestamp(column.type.unit, "UTC"))
        elif pa.types.is_string(column.type) or pa.types.is_string_view(column.type):
            column = column.cast(pa.large_string())
        elif pa.types.is_binary_view(column.type) or pa.types.is_large_binary(column.type):
            column = column.cast(pa.binary())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _pandas_array(series: pd.Series) -> pa.Array:
    """One pandas column as Arrow; a numpy float column keeps its NaNs as NaN (not null)."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind == "f":
        return pa.array(series.to_numpy(), from_pandas=False)
    if series.dtype == np.dtype(object) and series.isna().all():
        return pa.nulls(len(series))
    return pa.array(series, from_pandas=True)


def same_values(left: list[Any], right: list[Any]) -> bool:
    """Equal lists, where NaN equals NaN (and only NaN), and NULL only NULL."""
    if len(left) != len(right):
        return False
    for one, other in zip(left, right, strict=True):
        if isinstance(one, float) and isinstance(other, float) and math.isnan(one) and math.isnan(other):
            continue
        if (one is None) != (other is None) or one != other:
            return False
    return True


def assert_same(tables: dict[str, pa.Table], reference: dict[str, list[Any]] | None = None) -> None:
    """Every table has the same column types and values (and those of ``reference``, by column)."""
    (first_name, first), *others = tables.items()
    for name, table in others:
        for one, other in zip(first.schema, table.schema, strict=True):
            assert one.name == other.name
            if not _untyped(first_name, one.type) and not _untyped(name, other.type):
                assert one.type == other.type, (first_name, name, one.name)
        for column in first.column_names:
            assert same_values(table.column(column).to_pylist(), first.column(column).to_pylist()), (
                first_name,
                name,
                column,
            )
    for column, values in (reference or {}).items():
        assert same_values(first.column(column).to_pylist(), values), column


def _untyped(name: str, data_type: pa.DataType) -> bool:
    """A pandas object column with no values (bytes, dates...), whose type only its values tell."""
    return name == "pandas" and pa.types.is_null(data_type)


def in_every_format(run: Any) -> dict[str, pa.Table]:
    return {output: common(run(output)) for output in FORMATS}


@pytest.fixture
def session() -> Iterator[Session]:
    with Session() as opened:
        yield opened


# -- PostgreSQL -----------------------------------------------------------------------------------

EDGES = """SELECT * FROM (VALUES
 (1, '-9223372036854775808'::bigint, 'NaN'::float8, 12345678901234567890123456.012345678901::numeric(38, 12),
  ''::text, '\\x'::bytea, true, '1969-12-31'::date, '1969-12-31 23:59:59.999999'::timestamp,
  '2024-03-31 01:59:59.999999+00'::timestamptz, NULL::bigint),
 (2, 9223372036854775807, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2024-10-27 00:59:59+00', NULL),
 (3, 0, 'Infinity', -99999999999999999999999999.999999999999, 'x', '\\x00ff', false, '0001-01-01',
  '1900-01-01 00:00:00', '1900-01-01 00:00:00+00', NULL)
) AS v(id, i8, f, n38, s, b, bo, d, ts, tz, nulls)"""


@pytest.fixture
def pg(session: Session, pg_server: PostgresServer, pg_schema: str) -> Session:
    return add_postgres(session, pg_server, options=f"-c search_path={pg_schema} -c TimeZone={PARIS}")


def _psycopg_rows(pg_server: PostgresServer, query: str) -> dict[str, list[Any]]:
    with pg_server.admin_connection() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        cursor = connection.execute(query)
        names = [column.name for column in cursor.description or []]
        rows = cursor.fetchall()
    return {name: [row[position] for row in rows] for position, name in enumerate(names)}


def test_postgresql_edge_values_in_every_format(pg: Session, pg_server: PostgresServer) -> None:
    tables = in_every_format(lambda output: pg.query("pg", EDGES + " ORDER BY id", output=output))
    reference = _psycopg_rows(pg_server, EDGES + " ORDER BY id")
    reference["b"] = [None if value is None else bytes(value) for value in reference["b"]]
    assert_same(tables, reference)
    schema = tables["arrow"].schema
    assert schema.field("i8").type == pa.int64()
    assert schema.field("n38").type == pa.decimal128(38, 12)
    assert schema.field("tz").type == pa.timestamp("us", "UTC")
    assert schema.field("b").type == pa.binary()
    assert schema.field("nulls").type == pa.int64()  # a NULL-only bigint column stays an integer


@pytest.mark.parametrize("rows", ["no rows", "only NULLs"])
def test_postgresql_bytea_is_binary_without_values(pg: Session, rows: str) -> None:
    """A bytea column of no rows, or of NULLs only, was Arrow's ``null`` type (Polars ``Null``)."""
    where = " WHERE false" if rows == "no rows" else ""
    query = f"SELECT b FROM (VALUES (NULL::bytea), (NULL::bytea)) AS v(b){where}"
    tables = in_every_format(lambda output: pg.query("pg", query, output=output))
    assert tables["arrow"].schema.field("b").type == pa.binary()
    assert pg.query("pg", query, output="polars").schema["b"] == pl.Binary
    assert_same(tables)


def test_postgresql_bytea_batches_have_one_type(pg: Session) -> None:
    """Each batch of one result has the same type, whatever values it holds."""
    query = "SELECT CASE WHEN g < 3 THEN NULL ELSE '\\x01'::bytea END AS b FROM generate_series(1, 5) g"
    batches = list(pg.query_batches("pg", query, rows=2, output="arrow"))
    assert [batch.schema.field("b").type for batch in batches] == [pa.binary()] * 3


def test_postgresql_zero_rows_keep_their_types(
    pg: Session, pg_server: PostgresServer, pg_schema: str
) -> None:
    with pg_server.admin_connection() as connection:
        connection.execute(
            sql.SQL("CREATE TABLE {}.edges AS {} WITH NO DATA").format(
                sql.Identifier(pg_schema),
                sql.SQL(EDGES.replace("::numeric(38, 12)", "")),  # type: ignore[arg-type]
            )
        )
        connection.execute(
            sql.SQL("ALTER TABLE {}.edges ALTER n38 TYPE numeric(38, 12)").format(sql.Identifier(pg_schema))
        )
    tables = in_every_format(lambda output: pg.query("pg", "SELECT * FROM edges", output=output))
    assert_same(tables)
    types = {field.name: field.type for field in tables["arrow"].schema}
    assert types["i8"] == pa.int64()
    assert types["n38"] == pa.decimal128(38, 12)
    assert types["b"] == pa.binary()
    assert types["s"] == pa.large_string()
    assert types["d"] == pa.date32()


# -- SQLite (property-based) ----------------------------------------------------------------------

_SQLITE_INTS = st.one_of(st.none(), st.integers(*INT64), st.sampled_from(INT64))
_SQLITE_FLOATS = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=True))
_SQLITE_TEXTS = st.one_of(st.none(), st.text(max_size=5), st.just(""))
_SQLITE_BLOBS = st.one_of(st.none(), st.binary(max_size=5))
_SQLITE_ROWS = st.lists(st.tuples(_SQLITE_INTS, _SQLITE_FLOATS, _SQLITE_TEXTS, _SQLITE_BLOBS), max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_SQLITE_ROWS)
def test_sqlite_rows_in_every_format_are_sqlite3s(
    tmp_path_factory: pytest.TempPathFactory, rows: list[Any]
) -> None:
    path = tmp_path_factory.mktemp("sqlite") / "t.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB)")
        connection.executemany("INSERT INTO t (i, f, s, b) VALUES (?, ?, ?, ?)", rows)
    with closing(sqlite3.connect(path)) as connection:
        expected = connection.execute("SELECT i, f, s, b FROM t ORDER BY k").fetchall()
    with Session() as session:
        session.add("lite", "sqlite", path=str(path))
        tables = in_every_format(
            lambda output: session.query("lite", "SELECT i, f, s, b FROM t ORDER BY k", output=output)
        )
    reference = {name: [row[position] for row in expected] for position, name in enumerate("ifsb")}
    assert_same(tables, reference)


# -- files: local folder and Azure Blob -----------------------------------------------------------


def _edge_table() -> pa.Table:
    return pa.table(
        {
            "i": pa.array([INT64[0], None, INT64[1]], pa.int64()),
            "f": pa.array([math.nan, None, 1.5], pa.float64(), from_pandas=False),
            "s": pa.array(["", None, "x"], pa.large_string()),
            "b": pa.array([b"", None, b"\x00\xff"], pa.binary()),
            "bo": pa.array([True, None, False]),
            "d": pa.array([dt.date(1969, 12, 31), None, dt.date(1, 1, 1)]),
            "tz": pa.array(
                [dt.datetime(2024, 3, 31, 1, 59, 59, 999999), None, dt.datetime(1900, 1, 1)],
                pa.timestamp("us", "UTC"),
            ),
            "dec": pa.array(
                [Decimal("1234567890123456789012345678.0123456789"), None, Decimal("-1")],
                pa.decimal128(38, 10),
            ),
            "nulls": pa.nulls(3, pa.int64()),
        }
    )


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.mark.parametrize("rows", [3, 0])
def test_local_parquet_in_every_format_is_pyarrows(session: Session, tmp_path: Path, rows: int) -> None:
    expected = _edge_table().slice(0, rows)
    (tmp_path / "edge.parquet").write_bytes(_parquet_bytes(expected))
    session.add("files", "local", path=str(tmp_path))
    tables = in_every_format(lambda output: session.read("files", "edge.parquet", output=output))
    assert_same(tables, expected.to_pydict())
    assert tables["arrow"].schema.remove_metadata() == expected.schema


def test_blob_parquet_in_every_format_is_pyarrows(
    session: Session, azurite: AzuriteServer, blob_container: str
) -> None:
    expected = _edge_table()
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.get_blob_client(blob_container, "edge.parquet").upload_blob(_parquet_bytes(expected))
    session.add(
        "lake",
        "azure_blob",
        container=blob_container,
        secrets={"connection_string": azurite.connection_string},
    )
    tables = in_every_format(lambda output: session.read("lake", "edge.parquet", output=output))
    assert_same(tables, expected.to_pydict())
    assert tables["arrow"].schema.remove_metadata() == expected.schema


CSV = (
    "i,f,s,bo,d,tz\n"
    "-9223372036854775808,0.5,a,true,1969-12-31,2024-03-31T01:59:59.999999+00:00\n"
    ",,,,,\n"
    "9223372036854775807,1.5,x,false,0001-01-01,1900-01-01T00:00:00+00:00\n"
)


def _read_in_every_format(session: Session, folder: Path, name: str, text: str) -> dict[str, pa.Table]:
    """``text`` written as file ``name`` of a local source, read in every format."""
    (folder / name).write_text(text)
    session.add("files", "local", path=str(folder))
    return in_every_format(lambda output: session.read("files", name, output=output))


def test_local_csv_in_every_format_is_pandas(session: Session, tmp_path: Path) -> None:
    tables = _read_in_every_format(session, tmp_path, "edge.csv", CSV)
    reference = pd.read_csv(io.StringIO(CSV), dtype={"i": "Int64"})
    assert_same(tables, {"i": [None if pd.isna(v) else int(v) for v in reference["i"]]})
    types = {field.name: field.type for field in tables["arrow"].schema}
    assert types == {
        "i": pa.int64(),
        "f": pa.float64(),
        "s": pa.large_string(),
        "bo": pa.bool_(),
        "d": pa.date32(),
        "tz": pa.timestamp("us", "UTC"),
    }


JSONL = (
    '{"i": -9223372036854775808, "f": 0.5, "s": "", "bo": true, "n": null}\n'
    '{"i": null, "f": null, "s": null, "bo": null, "n": null}\n'
    '{"i": 9223372036854775807, "f": 1.5, "s": "x", "bo": false, "n": null}\n'
)


def test_local_jsonl_in_every_format_is_pyarrows(session: Session, tmp_path: Path) -> None:
    tables = _read_in_every_format(session, tmp_path, "edge.jsonl", JSONL)
    expected = pa_json.read_json(io.BytesIO(JSONL.encode()))
    assert_same(tables, expected.to_pydict())


# -- the results cache ----------------------------------------------------------------------------


@pytest.mark.parametrize("output", FORMATS)
def test_a_cached_result_is_a_fresh_one_after_the_returned_ones_changed(
    session: Session, tmp_path: Path, output: str
) -> None:
    (tmp_path / "edge.parquet").write_bytes(_parquet_bytes(_edge_table()))
    session.add("files", "local", path=str(tmp_path))
    fresh = common(session.read("files", "edge.parquet", output=output))
    for _ in range(2):  # the first (stored) result, then a cached one, changed in place
        result = session.read("files", "edge.parquet", output=output, cache_ttl=60)
        if output == "pandas":
            result.loc[0, "i"] = 7
            result.loc[2, "s"] = "changed"
            result.loc[0, "f"] = 2.0
            result.loc[0, "bo"] = False
        elif output == "polars":
            result[0, "i"] = 7
            result[2, "s"] = "changed"
            result.insert_column(0, pl.Series("extra", [1, 2, 3]))
    cached = session.read("files", "edge.parquet", output=output, cache_ttl=60)
    assert_same({"fresh": fresh, "cached": common(cached)})

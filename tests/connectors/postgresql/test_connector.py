"""The PostgreSQL connector on the real server of the test session: registering, querying, dtypes,
row limits, parameters and browsing."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pandas as pd
import pytest
from psycopg import sql

from deepanalyze_jupyter import ResultTruncated, Session, frames, results
from deepanalyze_jupyter.connectors.postgresql import columns as pg_columns
from deepanalyze_jupyter.connectors.postgresql.connector import PostgresConnector
from deepanalyze_jupyter.connectors.postgresql.memory import arrow_pool
from deepanalyze_jupyter.errors import ConfigurationError, ItemNotFound, QueryError
from deepanalyze_jupyter.frames import is_truncated
from deepanalyze_jupyter.redaction import MASK
from tests.connectors.postgresql.postgres import admin, source_options
from tests.services import PostgresServer

TYPED_ROWS = 3000  # enough for the pyarrow path (more than 32 KiB of COPY text)


@pytest.fixture
def typed_table(pg_server: PostgresServer, pg_schema: str) -> str:
    """A table with a column of every type the connector maps, ``TYPED_ROWS`` rows."""
    name = f"{pg_schema}.typed"
    admin(
        pg_server,
        f"""
        CREATE TABLE {name} AS
        SELECT g::int2 % 100 AS i2, g::int4 AS i4, g::int8 * 10000000000 AS i8,
               CASE WHEN g % 2 = 0 THEN NULL ELSE g END::int4 AS n4,
               g / 4.0::float4 AS f4, g / 8.0::float8 AS f8,
               (g * 1.25)::numeric(12, 2) AS num, g::numeric / 8 AS unum,
               g % 2 = 0 AS b, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END AS nb,
               'row ' || g || E'\\ttab\\nline\\\\back"quote' AS t, ('v' || g)::varchar(20) AS vc,
               md5(g::text)::uuid AS u, date '2024-01-01' + g AS d,
               timestamp '2024-01-01 00:00:00' + g * interval '1 minute' AS ts,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' AS tstz,
               time '00:00' + g * interval '1 second' AS tm, g * interval '1 hour 1 second' AS iv,
               json_build_object('g', g) AS j,
               jsonb_build_object('g', g, 'list', jsonb_build_array(1, 'x')) AS jb,
               decode(lpad(to_hex(g), 8, '0'), 'hex') AS by, ARRAY[g, g + 1] AS ia,
               ARRAY['a,b', 'c"d', NULL] AS ta,
               CASE WHEN g % 10 = 0 THEN g END AS mostly_null
        FROM generate_series(1, {TYPED_ROWS}) AS g
        """,
    )
    return name


EXPECTED_DTYPES = {
    "i2": "int64",
    "i4": "int64",
    "i8": "int64",
    "n4": "Int64",
    "f4": "float64",
    "f8": "float64",
    "num": "decimal128(12, 2)[pyarrow]",
    "unum": "decimal128(38, 20)[pyarrow]",
    "b": "bool",
    "nb": "boolean",
    "t": "string",
    "vc": "string",
    "u": "string",
    "d": "object",
    "ts": "datetime64[us]",
    "tstz": "datetime64[us, Europe/Paris]",
    "tm": "object",
    "iv": "timedelta64[us]",
    "j": "object",
    "jb": "object",
    "by": "object",
    "ia": "object",
    "ta": "object",
    "mostly_null": "Int64",
}


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {str(name): str(dtype) for name, dtype in frame.dtypes.items()}


def check_first_row(row: pd.Series) -> None:
    assert row["i2"] == 1
    assert row["i4"] == 1
    assert row["i8"] == 10_000_000_000
    assert row["n4"] == 1
    assert row["f4"] == 0.25
    assert row["f8"] == 0.125
    assert row["num"] == Decimal("1.25")
    assert row["unum"] == Decimal("0.12500000000000000000")
    assert not row["b"]
    assert not row["nb"]
    assert row["t"] == 'row 1\ttab\nline\\back"quote'
    assert row["vc"] == "v1"
    assert row["u"] == "c4ca4238-a0b9-2382-0dcc-509a6f75849b"
    assert row["d"] == dt.date(2024, 1, 2)
    assert row["ts"] == pd.Timestamp("2024-01-01 00:01:00")
    assert row["tstz"] == pd.Timestamp("2024-01-01 00:01:00", tz="UTC")
    assert row["tm"] == dt.time(0, 0, 1)
    assert row["iv"] == pd.Timedelta(hours=1, seconds=1)
    assert row["j"] == {"g": 1}
    assert row["jb"] == {"g": 1, "list": [1, "x"]}
    assert row["by"] == b"\x00\x00\x00\x01"
    assert row["ia"] == [1, 2]
    assert row["ta"] == ["a,b", 'c"d', None]
    assert pd.isna(row["mostly_null"])


def test_a_large_result_has_the_documented_dtype_of_every_type(pg: Session, typed_table: str) -> None:
    frame = pg.query("pg", f"SELECT * FROM {typed_table} ORDER BY i4", limit=None)
    assert len(frame) == TYPED_ROWS
    assert dtypes(frame) == EXPECTED_DTYPES
    check_first_row(frame.iloc[0])
    assert frame["mostly_null"].notna().sum() == TYPED_ROWS // 10
    assert frame["mostly_null"].dropna().tolist() == list(range(10, TYPED_ROWS + 1, 10))
    assert frame["n4"].isna().sum() == TYPED_ROWS // 2
    assert frame["num"].sum() == Decimal("1.25") * TYPED_ROWS * (TYPED_ROWS + 1) / 2


def test_a_small_result_has_the_same_dtypes_and_values(pg: Session, typed_table: str) -> None:
    frame = pg.query("pg", f"SELECT * FROM {typed_table} WHERE i4 <= 10 ORDER BY i4")
    expected = dict(EXPECTED_DTYPES, mostly_null="Int64")
    assert dtypes(frame) == expected
    check_first_row(frame.iloc[0])
    large = pg.query("pg", f"SELECT * FROM {typed_table} ORDER BY i4", limit=None)
    pd.testing.assert_frame_equal(frame, large.iloc[:10])


def _no_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building a pandas column or frame anywhere on a PostgreSQL read fail the test."""

    def no_pandas(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pandas frame was built")

    for module in (pg_columns, frames):
        monkeypatch.setattr(module, "pandas_column", no_pandas)
        monkeypatch.setattr(module, "frame_from_columns", no_pandas)
    monkeypatch.setattr(pg_columns, "python_column", no_pandas)
    monkeypatch.setattr(results, "_arrow_table", no_pandas)


@pytest.mark.parametrize("where", ["", "WHERE i4 <= 10"], ids=["large", "small"])
@pytest.mark.parametrize("output", ["arrow", "polars"])
def test_arrow_and_polars_come_straight_from_the_read(
    pg: Session, typed_table: str, where: str, output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table holds what the pandas result holds in Arrow, and no pandas frame is built."""
    sql = f"SELECT * FROM {typed_table} {where} ORDER BY i4"
    sql = sql.replace("SELECT *", "SELECT " + ", ".join(name for name in EXPECTED_DTYPES if name != "jb"))
    expected = results.convert_result(pg.query("pg", sql, limit=None), "arrow")
    _no_pandas(monkeypatch)
    result = pg.query("pg", sql, limit=None, output=output)
    table = result if output == "arrow" else result.to_arrow()
    assert table.num_rows == expected.num_rows
    if output == "arrow":
        assert table.schema.remove_metadata() == expected.schema.remove_metadata()
        assert results.result_info(table) == results.result_info(expected)
    assert repr(table.to_pylist()) == repr(expected.to_pylist())


def test_a_value_arrow_cannot_hold_is_one_line_naming_its_column(pg: Session, typed_table: str) -> None:
    with pytest.raises(
        QueryError, match=r"^pg: column 'jb' cannot be held in Arrow \(.*\); use --as pandas$"
    ):
        pg.query("pg", f"SELECT jb FROM {typed_table}", limit=None, output="arrow")
    assert pg.query("pg", f"SELECT jb FROM {typed_table}", limit=None)["jb"][0]["list"] == [1, "x"]


@pytest.mark.parametrize("output", ["arrow", "polars"])
def test_times_with_an_offset_are_refused_in_arrow_rather_than_cut_to_their_clock_time(
    pg: Session, output: str
) -> None:
    sql = "SELECT '10:00+02'::timetz AS t"
    with pytest.raises(QueryError, match=r"^pg: column 't' cannot be held in Arrow \(.*UTC offset.*\); use"):
        pg.query("pg", sql, output=output)
    value = pg.query("pg", sql)["t"][0]
    assert (value.hour, value.utcoffset()) == (10, dt.timedelta(hours=2))


@pytest.mark.parametrize("where", ["", "WHERE i4 <= 10"], ids=["large", "small"])
def test_every_column_of_a_result_can_be_edited_in_place(pg: Session, typed_table: str, where: str) -> None:
    """No column may be a read-only view of the parsed data: assigning into it would fail."""
    frame = pg.query("pg", f"SELECT * FROM {typed_table} {where} ORDER BY i4", limit=None)
    for position in range(frame.shape[1]):
        frame.iat[0, position] = frame.iat[1, position]
    assert frame.iloc[0].isna().tolist() == frame.iloc[1].isna().tolist()


def test_a_statement_that_is_no_subquery_gives_the_same_dtypes(
    session: Session, pg_server: PostgresServer, typed_table: str, pg_schema: str
) -> None:
    session.add(
        "rw",
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, read_only=False, options="-c TimeZone=Europe/Paris"),
    )
    session.query("rw", f"CREATE TABLE {pg_schema}.copied AS SELECT * FROM {typed_table} WITH NO DATA")
    # a data-modifying WITH cannot be a subquery: it runs through a cursor
    frame = session.query(
        "rw",
        f"WITH moved AS (INSERT INTO {pg_schema}.copied SELECT * FROM {typed_table} WHERE i4 <= 10 "
        "RETURNING *) SELECT * FROM moved ORDER BY i4",
    )
    assert dtypes(frame) == EXPECTED_DTYPES
    check_first_row(frame.iloc[0])
    returning = session.query("rw", f"DELETE FROM {pg_schema}.copied WHERE i4 <= 3 RETURNING i4, t", limit=2)
    assert returning["i4"].dtype == "int64"
    assert returning["t"].dtype == "string"
    assert len(returning) == 2
    assert is_truncated(returning)


def test_empty_results_keep_their_columns_and_dtypes(pg: Session, typed_table: str) -> None:
    frame = pg.query("pg", f"SELECT * FROM {typed_table} WHERE false")
    assert frame.empty
    assert list(frame.columns) == list(EXPECTED_DTYPES)
    # no NULL seen, no decimals in an unconstrained numeric
    expected = dict(
        EXPECTED_DTYPES, n4="int64", nb="bool", mostly_null="int64", unum="decimal128(38, 0)[pyarrow]"
    )
    assert dtypes(frame) == expected


def test_numeric_as_float_per_source_and_per_query(
    pg: Session, pg_server: PostgresServer, typed_table: str
) -> None:
    pg.add(
        "floats",
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, numeric_as_float=True),
    )
    frame = pg.query("floats", f"SELECT num, unum FROM {typed_table} ORDER BY i4", limit=None)
    assert dtypes(frame) == {"num": "float64", "unum": "float64"}
    assert frame["num"].iloc[0] == 1.25
    connector = pg.run(pg.registry.get_connector("pg"))
    assert isinstance(connector, PostgresConnector)
    per_query = pg.run(connector.query(f"SELECT num FROM {typed_table} LIMIT 3", numeric_as_float=True))
    assert per_query["num"].dtype == "float64"
    through_session = pg.query("pg", f"SELECT num FROM {typed_table} LIMIT 3", numeric_as_float=True)
    assert through_session["num"].dtype == "float64"
    assert pg.query("pg", f"SELECT num FROM {typed_table} LIMIT 3")["num"].dtype != "float64"
    with pytest.raises(ConfigurationError, match=r"^pg: PostgreSQL queries take no option colour$"):
        pg.query("pg", "SELECT 1", colour="red")


def test_duplicate_column_names_are_kept(pg: Session) -> None:
    frame = pg.query("pg", "SELECT 1 AS a, 'x' AS a, 2.5::float8 AS b, 3 AS a")
    assert list(frame.columns) == ["a", "a", "b", "a"]
    assert frame.iloc[0].tolist() == [1, "x", 2.5, 3]


@pytest.mark.parametrize("rows", [1, 5000], ids=["small", "large"])
def test_renaming_one_results_columns_leaves_the_next_result_alone(pg: Session, rows: int) -> None:
    """Repeated queries reuse their column labels; each frame must still own its own."""
    sql = f"SELECT g AS a, g * 2 AS b FROM generate_series(1, {rows}) AS g"
    first = pg.query("pg", sql, limit=None)
    first.columns.name = "renamed"
    with pytest.raises(ValueError, match="read-only"):
        first.columns.values[1] = "y"
    second = pg.query("pg", sql, limit=None)
    assert second.columns is not first.columns
    assert second.columns.name is None
    assert list(second.columns) == ["a", "b"]


def test_values_outside_pyarrow_reach_fall_back_per_column(pg: Session) -> None:
    frame = pg.query(
        "pg",
        "SELECT g, CASE WHEN g = 5000 THEN 'NaN' ELSE g::text END::numeric(10, 2) AS n, "
        # in Paris, 1900 had a local mean time offset of +00:09:21, which pyarrow does not read
        "CASE WHEN g = 1 THEN timestamptz '1900-01-01 12:00:00+00' ELSE timestamptz '2024-01-01' END AS ts "
        "FROM generate_series(1, 5000) AS g",
        limit=None,
    )
    assert frame["n"].dtype == object
    assert frame["n"].iloc[1] == Decimal("2.00")
    assert frame["n"].iloc[-1].is_nan()
    assert frame["ts"].dtype == "datetime64[us, Europe/Paris]"
    assert frame["ts"].iloc[0] == pd.Timestamp("1900-01-01 12:00:00", tz="UTC")


def test_a_result_read_in_many_pieces_with_surprises_in_the_middle(pg: Session) -> None:
    rows = 120_000  # about 7 MB of COPY text: several pieces parsed while the rest arrives
    frame = pg.query(
        "pg",
        "SELECT g, repeat('x', 40) || CASE WHEN g % 50000 = 0 THEN E'\\t\\\\' ELSE '' END AS t, "
        "CASE WHEN g = 60000 THEN 'NaN' ELSE g::text END::numeric(10, 2) AS n "
        f"FROM generate_series(1, {rows}) AS g",
        limit=None,
    )
    assert len(frame) == rows
    assert frame["g"].tolist() == list(range(1, rows + 1))
    assert frame["t"].iloc[49_999] == "x" * 40 + "\t\\"
    assert frame["t"].iloc[50_000] == "x" * 40
    assert frame["n"].dtype == object  # the NaN, in a middle piece, made the column Python values
    assert frame["n"].iloc[59_999].is_nan()
    assert frame["n"].iloc[-1] == Decimal(rows)


def test_a_value_python_cannot_hold_is_a_clear_query_error(pg: Session) -> None:
    with pytest.raises(QueryError, match=r"pg: cannot load column 'd': date too small"):
        pg.query("pg", "SELECT date '0044-03-15 BC' AS d")


# -- parameters --------------------------------------------------------------------------------


def test_named_parameters_are_values_a_hostile_one_cannot_alter_the_sql(
    pg: Session, typed_table: str
) -> None:
    hostile = "x'); DROP TABLE typed; --"
    frame = pg.query(
        "pg",
        f"SELECT i4, :text AS echoed, t::text LIKE '%%tab%%' AS has_tab FROM {typed_table} "
        "WHERE i4 BETWEEN :low AND :high AND vc <> :text ORDER BY i4 -- :ignored",
        {"low": 2, "high": 4, "text": hostile},
    )
    assert frame["i4"].tolist() == [2, 3, 4]
    assert frame["echoed"].tolist() == [hostile] * 3
    assert frame["has_tab"].all()


def test_parameters_of_every_common_type(pg: Session) -> None:
    values = {
        "i": 2**40,
        "f": 1.5,
        "d": Decimal("12.345"),
        "s": "colon: and 'quote'",
        "n": None,
        "day": dt.date(2024, 2, 29),
        "when": dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc),
        "flag": True,
        "many": [1, 2, 3],
        "raw": b"\x00\xff",
    }
    frame = pg.query(
        "pg",
        "SELECT :i AS i, :f AS f, :d AS d, :s AS s, :n::text AS n, :day AS day, :when AS when_, "
        ":flag AS flag, :many AS many, :raw AS raw, cardinality(:many) AS size",
        values,
    )
    row = frame.iloc[0]
    assert row["i"] == 2**40
    assert row["f"] == 1.5
    assert row["d"] == Decimal("12.345")
    assert row["s"] == values["s"]
    assert pd.isna(row["n"])
    assert row["day"] == values["day"]
    assert row["when_"] == pd.Timestamp(values["when"])
    assert bool(row["flag"])
    assert row["many"] == [1, 2, 3]
    assert row["raw"] == b"\x00\xff"
    assert row["size"] == 3


def test_a_missing_parameter_is_named(pg: Session) -> None:
    with pytest.raises(QueryError, match=r"pg: no value given for parameter :b, :c"):
        pg.query("pg", "SELECT :a, :b, :c", {"a": 1})


def test_a_value_psycopg_cannot_adapt_is_a_query_error(pg: Session) -> None:
    with pytest.raises(QueryError, match=r"pg: .*adapt"):
        pg.query("pg", "SELECT :thing", {"thing": object()})


def test_a_trailing_semicolon_and_comment_are_fine(pg: Session) -> None:
    frame = pg.query("pg", "SELECT 1 AS one; -- done")
    assert frame["one"].tolist() == [1]


# -- row limits ---------------------------------------------------------------------------------


def test_a_row_limit_cuts_the_result_and_says_so(pg: Session) -> None:
    frame = pg.query("pg", "SELECT g FROM generate_series(1, 50000) AS g ORDER BY g", limit=1000)
    assert frame["g"].tolist() == list(range(1, 1001))
    assert is_truncated(frame)
    assert frame.attrs["row_limit"] == 1000
    exact = pg.query("pg", "SELECT g FROM generate_series(1, 1000) AS g", limit=1000)
    assert len(exact) == 1000
    assert not is_truncated(exact)
    zero = pg.query("pg", "SELECT g FROM generate_series(1, 3) AS g", limit=0)
    assert zero.empty
    assert is_truncated(zero)
    assert list(zero.columns) == ["g"]


def test_the_default_row_limit_comes_from_the_session(pg_server: PostgresServer) -> None:
    with Session(default_row_limit=7) as session:
        session.add("pg", "postgresql", secrets={"password": pg_server.password}, **source_options(pg_server))
        with pytest.warns(ResultTruncated, match="default limit of 7 rows"):
            frame = session.query("pg", "SELECT g FROM generate_series(1, 100) AS g")
        assert len(frame) == 7
        assert is_truncated(frame)
        assert len(session.query("pg", "SELECT g FROM generate_series(1, 100) AS g", limit=None)) == 100


def test_a_limited_query_does_not_read_past_the_limit(pg: Session, pg_server: PostgresServer) -> None:
    marker = f"limit_{uuid4().hex[:12]}"
    # 100 million rows would take minutes; with the limit pushed down it is instant (the series is
    # in the select list, where the server makes its values one at a time)
    pg.query("pg", f"SELECT generate_series(1, 100000000) AS {marker}", limit=5)
    copied = admin(
        pg_server,
        "SELECT rows FROM pg_stat_statements WHERE query LIKE 'COPY%%' AND query LIKE %s",
        f"%{marker}%",
    )
    assert copied == [(6,)]  # the limit and one more row, to know the result was cut


# -- memory --------------------------------------------------------------------------------------


def test_nothing_of_a_result_stays_alive_after_it_is_returned(pg: Session) -> None:
    query = "SELECT g, md5(g::text) AS h, g * 1.5 AS f FROM generate_series(1, 200000) AS g"
    # Warm-up (pools and caches settle) with another statement: a repeated one may be read as
    # binary, whose columns are not made in the Arrow pool measured here.
    pg.query("pg", query.replace("AS f", "AS warm_up"), limit=None)
    gc.collect()
    pool = arrow_pool()  # the pool the parsed tables are made in
    before = pool.bytes_allocated()
    frame = pg.query("pg", query, limit=None)
    assert pool.bytes_allocated() - before > 4_000_000  # the strings live in Arrow memory
    del frame
    gc.collect()
    assert pool.bytes_allocated() - before < 1_000_000


# -- registration -----------------------------------------------------------------------------


def test_a_script_that_never_closes_its_session_exits_cleanly(pg_server: PostgresServer) -> None:
    """The session disconnects its sources at interpreter exit: no task is left pending."""
    script = textwrap.dedent(
        """
        import json, os
        from deepanalyze_jupyter import Session

        session = Session()
        session.add("pg", "postgresql", secrets={"password": os.environ["SOURCE_PASSWORD"]},
                    **json.loads(os.environ["SOURCE_OPTIONS"]))
        print(session.query("pg", "SELECT 41 + 1 AS answer")["answer"].tolist())
        """
    )
    env = {
        **os.environ,
        "SOURCE_OPTIONS": json.dumps(source_options(pg_server)),
        "SOURCE_PASSWORD": pg_server.password,
        "PYTHONWARNINGS": "error",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[42]"
    assert done.stderr == ""


def test_a_password_in_a_dsn_is_stored_encrypted_and_never_shown(
    session: Session, pg_server: PostgresServer
) -> None:
    session.add("viadsn", "postgresql", dsn=pg_server.uri)
    config = session.registry.get_config("viadsn")
    assert pg_server.password not in config.options["dsn"]
    assert config.secrets["password"].reveal() == MASK
    assert pg_server.password not in repr(config)
    assert pg_server.password not in session.sources().to_string()
    assert session.query("viadsn", "SELECT 42 AS answer")["answer"].tolist() == [42]


def test_a_login_without_any_password_option_uses_libpq_defaults(
    session: Session, pg_server: PostgresServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:{pg_server.user}:{pg_server.password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    session.add("nopass", "postgresql", **source_options(pg_server))
    assert session.registry.get_config("nopass").secrets == {}
    assert "read-only" in session.test("nopass")


def test_test_connection_describes_the_server(pg: Session, pg_server: PostgresServer) -> None:
    answer = pg.test("pg")
    assert answer.startswith("PostgreSQL ")
    assert f"database {pg_server.dbname!r}" in answer
    assert "(read-only)" in answer


def test_sessions_are_named_after_the_extension(pg: Session, pg_server: PostgresServer) -> None:
    pg.query("pg", "SELECT 1")
    names = admin(pg_server, "SELECT DISTINCT application_name FROM pg_stat_activity")
    assert ("deepanalyze-jupyter",) in names


def test_a_malformed_dsn_is_refused_at_registration(session: Session) -> None:
    with pytest.raises(ConfigurationError, match="not a valid connection string"):
        session.add("bad", "postgresql", dsn="host=h password")
    assert not session.registry.exists("bad")


# -- browsing -----------------------------------------------------------------------------------


@pytest.fixture
def odd_names(pg_server: PostgresServer, pg_schema: str) -> Iterator[str]:
    """Tables and a view whose names need quoting, in a schema with a dot and capitals."""
    schema = f"{pg_schema}.Odd Schema"
    admin(pg_server, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    for table in ("MixedCase", "with space", "dotted.name"):
        admin(
            pg_server,
            sql.SQL(
                "CREATE TABLE {} (id int PRIMARY KEY, label text NOT NULL DEFAULT 'x', note varchar(9))"
            ).format(sql.Identifier(schema, table)),
        )
    admin(
        pg_server,
        sql.SQL("INSERT INTO {} SELECT g, 'l' || g FROM generate_series(1, 500) AS g").format(
            sql.Identifier(schema, "MixedCase")
        ),
    )
    admin(pg_server, sql.SQL("ANALYZE {}").format(sql.Identifier(schema, "MixedCase")))
    admin(
        pg_server,
        sql.SQL("CREATE VIEW {} AS SELECT id FROM {}").format(
            sql.Identifier(schema, "A View"), sql.Identifier(schema, "MixedCase")
        ),
    )
    yield schema
    admin(pg_server, sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_listing_schemas_then_tables_with_estimated_rows(pg: Session, odd_names: str, pg_schema: str) -> None:
    schemas = pg.list_items("pg")
    assert list(schemas.columns) == ["schema", "name", "kind", "rows"]
    assert {"public", pg_schema, odd_names} <= set(schemas["name"])
    assert set(schemas["kind"]) == {"schema"}
    assert "pg_catalog" not in set(schemas["name"])
    tables = pg.list_items("pg", odd_names)
    assert tables[["name", "kind"]].values.tolist() == [
        ["A View", "view"],
        ["MixedCase", "table"],
        ["dotted.name", "table"],
        ["with space", "table"],
    ]
    assert tables.set_index("name").loc["MixedCase", "rows"] == 500
    assert pd.isna(tables.set_index("name").loc["A View", "rows"])
    assert dtypes(tables) == {
        "schema": "string",
        "name": "string",
        "kind": "string",
        "rows": "Int64",
    }


def test_listing_everything_and_cutting_the_listing(pg: Session, odd_names: str) -> None:
    everything = pg.list_items("pg", recursive=True)
    assert {(odd_names, "MixedCase"), (odd_names, "A View")} <= set(
        zip(everything["schema"], everything["name"], strict=True)
    )
    cut = pg.list_items("pg", odd_names, limit=2)
    assert len(cut) == 2
    assert is_truncated(cut)


def test_listing_a_missing_schema_is_an_item_error(pg: Session) -> None:
    with pytest.raises(ItemNotFound, match="no schema named 'nowhere'"):
        pg.list_items("pg", "nowhere")


def test_listings_come_from_the_metadata_cache(
    pg: Session, pg_server: PostgresServer, odd_names: str
) -> None:
    first = pg.list_items("pg", odd_names)
    admin(pg_server, sql.SQL("DROP VIEW {}").format(sql.Identifier(odd_names, "A View")))
    assert pg.list_items("pg", odd_names).equals(first)
    assert "A View" not in set(pg.list_items("pg", odd_names, refresh=True)["name"])


@pytest.mark.parametrize("how", ["qualified", "quoted"])
def test_describing_tables_with_awkward_names(pg: Session, odd_names: str, how: str) -> None:
    for table in ("MixedCase", "with space", "dotted.name"):
        item = f"{odd_names}.{table}" if how == "qualified" else f'"{odd_names}"."{table}"'
        columns = pg.describe("pg", item)
        assert columns.to_dict("records") == [
            {"name": "id", "type": "integer", "nullable": False, "default": None, "primary_key": True},
            {
                "name": "label",
                "type": "text",
                "nullable": False,
                "default": "'x'::text",
                "primary_key": False,
            },
            {
                "name": "note",
                "type": "character varying(9)",
                "nullable": True,
                "default": None,
                "primary_key": False,
            },
        ]
        assert columns.attrs["table"] == table
        assert columns.attrs["schema"] == odd_names


def test_describing_an_unqualified_name_on_the_search_path(pg: Session, pg_schema: str) -> None:
    columns = pg.describe("pg", "pg_class")  # pg_catalog is always on the search path
    assert "relname" in set(columns["name"])
    assert columns.attrs["schema"] == "pg_catalog"


def test_describing_a_missing_table_is_an_item_error(pg: Session) -> None:
    with pytest.raises(ItemNotFound, match=r"no table or view named 'no\.such\.table'"):
        pg.describe("pg", "no.such.table")


def test_query_results_of_json_keep_python_objects(pg: Session) -> None:
    document = {"a": [1, 2, {"b": None}], "c": "d"}
    frame = pg.query("pg", "SELECT :doc::jsonb AS doc", {"doc": json.dumps(document)})
    assert frame["doc"].tolist() == [document]

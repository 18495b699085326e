"""Each result format (pandas, Arrow, Polars) of each source type keeps the same dtype promises.

On the real services: PostgreSQL, Azurite, a SQLite file and a local folder. The same rows
everywhere: an integer column with a NULL, a float column with a NaN and a NULL, an exact
decimal and a time-zone-aware timestamp (where the source type can hold them).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient
from psycopg import sql

from deepanalyze_jupyter import Session, fetching, results
from deepanalyze_jupyter.connectors.sqlite import values as sqlite_values
from deepanalyze_jupyter.errors import ConfigurationError, ConnectionFailed, QueryError
from deepanalyze_jupyter.results import result_info
from tests.connectors.postgresql.postgres import add_postgres, source_options
from tests.services import AzuriteServer, PostgresServer

FORMATS = ("pandas", "arrow", "polars")
PARIS = "Europe/Paris"
NUMBERS = [1, None, 3]
FLOATS = [math.nan, None, 2.5]
PRICES = [Decimal("1.10"), None, Decimal("12345678901234.99")]
TIMES = [pd.Timestamp("2024-01-01 10:00", tz=PARIS), pd.Timestamp("2024-06-01 12:30", tz=PARIS), None]


def _table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "n": pa.array(NUMBERS, pa.int64()),
            "x": pa.array(FLOATS, pa.float64(), from_pandas=False),
            "price": pa.array(PRICES, pa.decimal128(16, 2)),
            "at": pa.array(TIMES, pa.timestamp("us", PARIS)),
        }
    )


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(_table(), sink)
    return sink.getvalue()


@pytest.fixture
def session() -> Iterator[Session]:
    with Session() as opened:
        yield opened


@pytest.fixture
def pg(session: Session, pg_server: PostgresServer, pg_schema: str) -> Session:
    with pg_server.admin_connection() as connection:
        connection.execute(
            sql.SQL(
                "CREATE TABLE {}.promises (id bigint, n bigint, x double precision, price numeric(16, 2),"
                " at timestamptz)"
            ).format(sql.Identifier(pg_schema))
        )
        connection.execute(
            sql.SQL(
                "INSERT INTO {}.promises VALUES (1, 1, 'NaN', 1.10, '2024-01-01 10:00+01'),"
                " (2, NULL, NULL, NULL, '2024-06-01 12:30+02'), (3, 3, 2.5, 12345678901234.99, NULL)"
            ).format(sql.Identifier(pg_schema))
        )
    return add_postgres(session, pg_server, options=f"-c search_path={pg_schema} -c TimeZone={PARIS}")


def _pg_query(session: Session, output: str, **options: Any) -> Any:
    return session.query("pg", "SELECT * FROM promises ORDER BY id", output=output, **options)


def _assert_values(table: pa.Table, *, nan: bool = True, exact: bool = True, zoned: bool = True) -> None:
    """The promised types and values, read from an Arrow view of any format."""
    assert pa.types.is_integer(table.schema.field("n").type)
    assert table.column("n").to_pylist() == NUMBERS
    floats = table.column("x").to_pylist()
    assert floats[1] is None
    assert floats[2] == 2.5
    if nan:
        assert math.isnan(floats[0])  # NaN and NULL stay apart
    if exact:
        assert table.schema.field("price").type == pa.decimal128(16, 2)
        assert table.column("price").to_pylist() == PRICES
    if zoned:
        assert table.schema.field("at").type == pa.timestamp("us", "UTC")
        assert table.column("at").to_pylist() == [
            time if time is None else time.tz_convert("UTC") for time in TIMES
        ]


def _assert_format(result: Any, output: str, **promises: bool) -> None:
    """``result`` is of the ``output`` format, with that format's own promised dtypes."""
    if output == "pandas":
        assert isinstance(result, pd.DataFrame)
        assert result["n"].dtype == pd.Int64Dtype()
        assert result["x"].dtype == pd.Float64Dtype()
        assert result["x"].isna().tolist() == [False, True, False]
        if promises.get("exact", True):
            assert result["price"].dtype == pd.ArrowDtype(pa.decimal128(16, 2))
        if promises.get("zoned", True):
            assert isinstance(result["at"].dtype, pd.DatetimeTZDtype)
        table = pa.Table.from_pandas(result, preserve_index=False)
        if promises.get("zoned", True):
            table = table.set_column(4, "at", table.column("at").cast(pa.timestamp("us", "UTC")))
        _assert_values(table, **promises)
    elif output == "arrow":
        assert isinstance(result, pa.Table)
        _assert_values(result, **promises)
    else:
        assert isinstance(result, pl.DataFrame)
        assert result.schema["n"] == pl.Int64
        assert result["x"].is_null().to_list() == [False, True, False]
        if promises.get("exact", True):
            assert result.schema["price"] == pl.Decimal(16, 2)
        if promises.get("zoned", True):
            assert result.schema["at"] == pl.Datetime("us", "UTC")
        _assert_values(result.to_arrow(), **promises)


@pytest.mark.parametrize("output", FORMATS)
def test_postgresql(pg: Session, output: str) -> None:
    _assert_format(_pg_query(pg, output), output)


@pytest.mark.parametrize("output", ["arrow", "polars"])
def test_postgresql_nan_without_null_stays_nan(pg: Session, output: str) -> None:
    result = pg.query("pg", "SELECT x FROM promises WHERE x IS NOT NULL ORDER BY id", output=output)
    column = (result.to_arrow() if output == "polars" else result).column("x")
    assert [math.isnan(value) for value in column.to_pylist()] == [True, False]


@pytest.mark.parametrize("output", FORMATS)
def test_postgresql_cut_note_in_every_format(pg: Session, output: str) -> None:
    result = pg.query_result("pg", "SELECT * FROM promises ORDER BY id", limit=2, output=output)
    assert result.info["truncated"] is True
    assert result.info["row_limit"] == 2
    if output != "polars":
        assert result_info(result.value)["truncated"] is True


@pytest.mark.parametrize("output", FORMATS)
def test_local_parquet(session: Session, tmp_path: Path, output: str) -> None:
    (tmp_path / "promises.parquet").write_bytes(_parquet())
    session.add("files", "local", path=str(tmp_path))
    _assert_format(session.read("files", "promises.parquet", output=output), output)


@pytest.mark.parametrize("output", FORMATS)
def test_azure_blob_parquet(
    session: Session, azurite: AzuriteServer, blob_container: str, output: str
) -> None:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.get_blob_client(blob_container, "promises.parquet").upload_blob(_parquet())
    session.add(
        "lake",
        "azure_blob",
        container=blob_container,
        secrets={"connection_string": azurite.connection_string},
    )
    _assert_format(session.read("lake", "promises.parquet", output=output), output)


@pytest.mark.parametrize("output", FORMATS)
def test_sqlite(session: Session, tmp_path: Path, output: str) -> None:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:  # SQLite keeps no NaN, decimal or time zone
        connection.execute("CREATE TABLE promises (id INTEGER, n INTEGER, x REAL)")
        connection.executemany(
            "INSERT INTO promises VALUES (?, ?, ?)", [(1, 1, 0.5), (2, None, None), (3, 3, 2.5)]
        )
    connection.close()
    session.add("shop", "sqlite", path=str(path))
    result = session.query("shop", "SELECT * FROM promises ORDER BY id", output=output)
    view = (
        result
        if output == "arrow"
        else pa.Table.from_pandas(result)
        if output == "pandas"
        else result.to_arrow()
    )
    assert view.column("n").to_pylist() == NUMBERS
    assert view.column("x").to_pylist() == [0.5, None, 2.5]
    assert pa.types.is_integer(view.schema.field("n").type)


def test_an_unknown_format_changes_nothing(pg: Session) -> None:
    with pytest.raises(
        Exception, match=r"^pg: unknown result format 'json'; use one of pandas, arrow, polars$"
    ):
        _pg_query(pg, "json")


# -- the results cache ----------------------------------------------------------------------------


def test_a_cached_result_comes_without_the_server(pg: Session, pg_server: PostgresServer) -> None:
    first = pg.query_result("pg", "SELECT * FROM promises ORDER BY id", output="arrow", cache_ttl=60)
    assert "cache_age" not in first.info
    try:
        pg_server.stop()
        again = pg.query_result("pg", "SELECT * FROM promises ORDER BY id", output="arrow", cache_ttl=60)
        _assert_values(again.value)
        assert again.value.drop_columns(["x"]).equals(first.value.drop_columns(["x"]))  # NaN != NaN
        assert 0 <= again.info["cache_age"] < 60
        assert result_info(again.value)["cache_age"] == again.info["cache_age"]
        for changed in ({"limit": 2}, {"output": "pandas"}, {"cache_ttl": None}):
            with pytest.raises(ConnectionFailed):  # another limit, format, or no cache: asks the server
                pg.query_result(
                    "pg",
                    "SELECT * FROM promises ORDER BY id",
                    **{"output": "arrow", "cache_ttl": 60, **changed},
                )
        with pytest.raises(ConnectionFailed):
            pg.query("pg", "SELECT * FROM promises WHERE id = :id", {"id": 1}, cache_ttl=60)
    finally:
        pg_server.start()


def test_parameters_are_part_of_the_key(pg: Session) -> None:
    one = pg.query("pg", "SELECT id FROM promises WHERE id = :id", {"id": 1}, cache_ttl=60)
    three = pg.query("pg", "SELECT id FROM promises WHERE id = :id", {"id": 3}, cache_ttl=60)
    assert one["id"].tolist() == [1]
    assert three["id"].tolist() == [3]


def test_updating_or_removing_the_source_forgets_its_results(pg: Session, pg_server: PostgresServer) -> None:
    query = "SELECT count(*) AS rows FROM promises"
    assert pg.query("pg", query, cache_ttl=60)["rows"].tolist() == [3]
    with pg_server.admin_connection() as connection:
        connection.execute(
            sql.SQL("DELETE FROM {}.promises WHERE id = 3").format(sql.Identifier(_schema(pg)))
        )
    assert pg.query("pg", query, cache_ttl=60)["rows"].tolist() == [3]  # cached
    pg.update("pg", name="renamed")
    assert pg.query("pg", query, cache_ttl=60)["rows"].tolist() == [2]
    assert len(pg.registry.results) == 1
    pg.remove("pg")
    assert len(pg.registry.results) == 0


def test_a_write_through_the_session_forgets_the_sources_results(
    session: Session, pg_server: PostgresServer, pg_schema: str, tmp_path: Path
) -> None:
    options = source_options(pg_server, read_only=False, options=f"-c search_path={pg_schema}")
    session.add("scratch", "postgresql", secrets={"password": pg_server.password}, **options)
    session.write("scratch", "written", pd.DataFrame({"a": [1, 2]}))
    query = "SELECT count(*) AS rows FROM written"
    assert session.query("scratch", query, cache_ttl=60)["rows"].tolist() == [2]
    session.write("scratch", "written", pd.DataFrame({"a": [3]}), mode="append")
    assert session.query("scratch", query, cache_ttl=60)["rows"].tolist() == [3]

    session.add("folder", "local", path=str(tmp_path), read_only=False)
    session.write("folder", "a.csv", pd.DataFrame({"a": [1, 2]}))
    assert session.read("folder", "a.csv", cache_ttl=60)["a"].tolist() == [1, 2]
    assert session.list_items("folder")["name"].tolist() == ["a.csv"]
    session.write("folder", "a.csv", pd.DataFrame({"a": [5]}), overwrite=True)
    session.write("folder", "b.csv", pd.DataFrame({"a": [6]}))
    assert session.read("folder", "a.csv", cache_ttl=60)["a"].tolist() == [5]
    assert sorted(session.list_items("folder")["name"]) == ["a.csv", "b.csv"]


def _schema(session: Session) -> str:
    options = str(session.registry.get_config("pg").options["options"])
    return options.split("search_path=")[1].split()[0]


@pytest.mark.parametrize("output", ["arrow", "polars"])
def test_a_column_of_mixed_types_is_one_line(session: Session, tmp_path: Path, output: str) -> None:
    path = tmp_path / "mixed.db"
    with sqlite3.connect(path) as connection:  # SQLite lets a column hold an integer and a text
        connection.execute("CREATE TABLE t (m)")
        connection.executemany("INSERT INTO t VALUES (?)", [(1,), ("a",)])
    connection.close()
    session.add("mixed", "sqlite", path=str(path))
    assert session.query("mixed", "SELECT m FROM t")["m"].tolist() == [1, "a"]
    with pytest.raises(QueryError) as refused:
        session.query("mixed", "SELECT m FROM t", output=output)
    assert str(refused.value) == (
        "mixed: column 'm' mixes value types, which Arrow cannot hold in one column; use --as pandas"
    )


@pytest.mark.parametrize("output", ["arrow", "polars"])
def test_sqlite_builds_arrow_without_pandas(
    session: Session, tmp_path: Path, output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (n INTEGER, x REAL)")
        connection.executemany("INSERT INTO t VALUES (?, ?)", [(1, 0.5), (None, None), (3, 2.5)])
    connection.close()
    session.add("shop", "sqlite", path=str(path))

    def no_pandas(*args: object) -> None:
        raise AssertionError("a pandas frame was built")

    monkeypatch.setattr(sqlite_values, "arrow_to_frame", no_pandas)
    monkeypatch.setattr(results, "_arrow_table", no_pandas)
    result = session.query_result("shop", "SELECT * FROM t", limit=2, output=output)
    table = result.value if output == "arrow" else result.value.to_arrow()
    assert table.column("n").to_pylist() == [1, None]
    assert result.info == {"source": "shop", "truncated": True, "row_limit": 2}


def test_sessions_do_not_share_cached_results(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (n INTEGER)")
        connection.execute("INSERT INTO t VALUES (1)")
    connection.close()
    with Session() as first, Session() as second:
        for session in (first, second):
            session.add("shop", "sqlite", path=str(path), read_only=False)
        assert first.query("shop", "SELECT count(*) AS n FROM t", cache_ttl=60)["n"].tolist() == [1]
        second.query("shop", "INSERT INTO t VALUES (2)")
        assert second.query("shop", "SELECT count(*) AS n FROM t", cache_ttl=60)["n"].tolist() == [2]
        assert first.query("shop", "SELECT count(*) AS n FROM t", cache_ttl=60)["n"].tolist() == [1]


@pytest.mark.parametrize(
    ("ttl", "problem"),
    [
        (-1, "a finite number of seconds, 0 or more, got -1"),
        (math.nan, "a finite number of seconds, 0 or more, got nan"),
        (math.inf, "a finite number of seconds, 0 or more, got inf"),
        ("600", "a number of seconds, got str"),
    ],
)
def test_a_cache_ttl_that_is_no_number_of_seconds_is_one_line(
    session: Session, tmp_path: Path, ttl: Any, problem: str
) -> None:
    """NaN kept a result for ever, -1 fetched every time while storing, '600' raised a bare TypeError."""
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (n INTEGER)")
    connection.close()
    session.add("shop", "sqlite", path=str(path))
    for call in (session.query, session.query_result):
        with pytest.raises(ConfigurationError) as refused:
            call("shop", "SELECT * FROM t", cache_ttl=ttl)
        assert str(refused.value) == f"shop: cache_ttl must be {problem}"
    assert len(session.registry.results) == 0
    assert session.query("shop", "SELECT * FROM t", cache_ttl=0).empty  # 0: no cache, as None
    assert len(session.registry.results) == 0


@pytest.fixture(params=["sqlite", "postgresql"])
def writable(request: pytest.FixtureRequest, session: Session, tmp_path: Path) -> Session:
    """Source ``shop``, added with ``read_only=False``, holding table ``t`` of one row (n = 1)."""
    if request.param == "sqlite":
        path = tmp_path / "shop.db"
        with contextlib.closing(sqlite3.connect(path)) as connection, connection:
            connection.execute("CREATE TABLE t (n INTEGER)")
            connection.execute("INSERT INTO t VALUES (1)")
        session.add("shop", "sqlite", path=str(path), read_only=False)
        return session
    pg_server: PostgresServer = request.getfixturevalue("pg_server")
    schema: str = request.getfixturevalue("pg_schema")
    with pg_server.admin_connection() as connection:
        connection.execute(sql.SQL("CREATE TABLE {}.t (n bigint)").format(sql.Identifier(schema)))
        connection.execute(sql.SQL("INSERT INTO {}.t VALUES (1)").format(sql.Identifier(schema)))
    session.add(
        "shop",
        "postgresql",
        secrets={"password": pg_server.password},
        read_only=False,
        **source_options(pg_server, options=f"-c search_path={schema}"),
    )
    return session


_COUNT = "SELECT count(*) AS n FROM t"


def _tables(session: Session) -> set[str]:
    """The tables of ``shop`` (in its search path's schema, for PostgreSQL)."""
    options = session.registry.get_config("shop").options
    schema = str(options.get("options", "")).partition("search_path=")[2] or None
    return {name.rpartition(".")[2] for name in session.list_items("shop", schema)["name"]}


def test_a_write_sent_as_a_query_forgets_what_was_cached_of_the_source(writable: Session) -> None:
    assert int(writable.query("shop", _COUNT, cache_ttl=60)["n"][0]) == 1
    assert "u" not in _tables(writable)  # the listing is cached now
    writable.query("shop", "INSERT INTO t VALUES (2)")
    writable.query("shop", "CREATE TABLE u (n INTEGER)")
    counted = writable.query("shop", _COUNT, cache_ttl=60)
    assert int(counted["n"][0]) == 2
    assert "cache_age" not in counted.attrs
    assert "u" in _tables(writable)
    if writable.registry.get_config("shop").type == "postgresql":  # a function that writes, in batches
        writes = "CREATE FUNCTION more() RETURNS int LANGUAGE sql AS 'INSERT INTO t VALUES (3) RETURNING 3'"
        writable.query("shop", writes)
        assert int(writable.query("shop", _COUNT, cache_ttl=60)["n"][0]) == 2
        assert [len(batch) for batch in writable.query_batches("shop", "SELECT more() AS n", rows=10)] == [1]
        assert int(writable.query("shop", _COUNT, cache_ttl=60)["n"][0]) == 3


@pytest.mark.parametrize("kind", ["read-only sqlite", "writable folder"])
def test_a_source_whose_statements_cannot_write_keeps_its_cached_results(
    session: Session, tmp_path: Path, kind: str
) -> None:
    if kind == "writable folder":  # SQL over files only reads, whatever the source allows
        (tmp_path / "t.csv").write_text("n\n1\n")
        session.add("shop", "local", path=str(tmp_path), read_only=False)
        count = "SELECT count(*) AS n FROM 't.csv'"
    else:
        with contextlib.closing(sqlite3.connect(tmp_path / "shop.db")) as connection, connection:
            connection.execute("CREATE TABLE t (n INTEGER)")
        session.add("shop", "sqlite", path=str(tmp_path / "shop.db"))
        count = _COUNT
    session.query("shop", count, cache_ttl=60)
    session.query("shop", "SELECT 1 AS one")
    assert "cache_age" in session.query("shop", count, cache_ttl=60).attrs


@pytest.mark.parametrize("change", ["remove", "update to read-only"])
def test_a_statement_in_flight_while_its_source_changes_is_not_kept(
    session: Session, tmp_path: Path, change: str
) -> None:
    """A result fetched from the source as it was is not kept for the source as it is now."""
    for name, rows in (("old.db", 1), ("new.db", 5)):
        with contextlib.closing(sqlite3.connect(tmp_path / name)) as connection, connection:
            connection.execute("CREATE TABLE t (n INTEGER)")
            connection.executemany("INSERT INTO t VALUES (?)", [(1,)] * rows)
    session.add("shop", "sqlite", path=str(tmp_path / "old.db"), read_only=False)
    registry = session.registry

    async def statement_while_the_source_changes() -> None:
        connector = await registry.get_connector("shop")
        fetched, go_on = asyncio.Event(), asyncio.Event()
        ask = connector.query

        async def held(*args: Any, **kwargs: Any) -> Any:
            answer = await ask(*args, **kwargs)
            fetched.set()  # the source has answered; its answer is on its way to the cache
            await go_on.wait()
            return answer

        connector.query = held  # type: ignore[method-assign]
        work = asyncio.ensure_future(
            fetching.query_work(registry, "shop", _COUNT, None, "default", None, "pandas", 60, {})
        )
        await fetched.wait()
        if change == "remove":
            await registry.unregister_data_source("shop")
        else:
            new = {"read_only": True, "path": str(tmp_path / "new.db")}
            await registry.update_data_source("shop", options=new)
        go_on.set()
        await work

    session.run(statement_while_the_source_changes())
    if change == "remove":
        session.add("shop", "sqlite", path=str(tmp_path / "new.db"), read_only=False)
    counted = session.query("shop", _COUNT, cache_ttl=60)
    assert "cache_age" not in counted.attrs
    assert int(counted["n"][0]) == 5

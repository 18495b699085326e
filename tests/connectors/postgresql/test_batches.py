"""Query results in batches on the real server: the same values as a whole read, one batch
in memory at a time, and a stop (early close or interrupt) that ends the query on the server."""

from __future__ import annotations

import signal
import threading
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import DataSourceError, QueryError
from tests.connectors.postgresql.postgres import add_postgres, source_options
from tests.connectors.postgresql.test_failures import backend_pid, running_queries, wait_until
from tests.services import PostgresServer

MIXED = """
SELECT g AS id, 'row ' || g || E'\\ttab' AS label, (g * 1.25)::numeric(12, 2) AS amount,
       CASE WHEN g % 3 = 0 THEN NULL ELSE g END AS maybe,
       timestamptz '2024-01-01 00:00+00' + g * interval '1 hour' AS at, g % 2 = 0 AS even
FROM generate_series(1, 2500) AS g ORDER BY g
"""
SLOW = "SELECT g, pg_sleep(0.001) FROM generate_series(1, 100000) AS g"
LONG = "SELECT g FROM generate_series(1, 50000000) AS g"


def interrupt_main_thread() -> None:
    """Ctrl-C as a kernel gets it: a real SIGINT to the main thread, which wakes a blocked wait."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


@pytest.fixture
def application() -> str:
    return f"batches-{uuid4().hex[:8]}"


@pytest.fixture
def pg(session: Session, pg_server: PostgresServer, application: str) -> Session:
    return add_postgres(session, pg_server, options="-c TimeZone=Europe/Paris", application_name=application)


def test_batches_hold_the_values_of_the_whole_read(pg: Session) -> None:
    whole = pg.query("pg", MIXED, limit=None)
    frames = list(pg.query_batches("pg", MIXED, rows=1000, output="pandas"))
    assert [len(frame) for frame in frames] == [1000, 1000, 500]
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), whole)
    tables = list(pg.query_batches("pg", MIXED, rows=1000))
    assert all(isinstance(table, pa.Table) for table in tables)
    assert (
        pa.concat_tables(tables).to_pydict() == pa.Table.from_pandas(whole, preserve_index=False).to_pydict()
    )


def test_parameters_are_bound(pg: Session) -> None:
    batches = list(pg.query_batches("pg", "SELECT g FROM generate_series(1, :n) AS g", {"n": 5}, rows=2))
    assert [batch.column("g").to_pylist() for batch in batches] == [[1, 2], [3, 4], [5]]


def test_closing_early_ends_the_query_on_the_server_and_keeps_the_connection(
    pg: Session, pg_server: PostgresServer, application: str
) -> None:
    pid = backend_pid(pg)
    batches = pg.query_batches("pg", LONG, rows=1000)
    first = next(batches)
    assert first.num_rows == 1000
    assert running_queries(pg_server, application)  # the server waits for the next batch to be read
    batches.close()
    assert wait_until(lambda: not running_queries(pg_server, application), 2.0)
    assert backend_pid(pg) == pid
    assert pg.query("pg", "SELECT 2 AS two")["two"].tolist() == [2]


def test_breaking_out_of_a_loop_ends_the_query(
    pg: Session, pg_server: PostgresServer, application: str
) -> None:
    for seen, _batch in enumerate(pg.query_batches("pg", LONG, rows=10_000)):
        if seen == 2:
            break
    assert wait_until(lambda: not running_queries(pg_server, application), 2.0)


@pytest.mark.usefixtures("ctrl_c")
def test_an_interrupt_while_a_batch_is_read_ends_the_query(
    pg: Session, pg_server: PostgresServer, application: str
) -> None:
    pid = backend_pid(pg)
    timer = threading.Timer(0.5, interrupt_main_thread)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            list(pg.query_batches("pg", SLOW, rows=1_000_000))
    finally:
        timer.cancel()
    assert wait_until(lambda: not running_queries(pg_server, application), 2.0)
    assert backend_pid(pg) == pid
    assert pg.query("pg", "SELECT 3 AS three")["three"].tolist() == [3]


def test_a_bad_query_is_one_clear_error_naming_the_source(pg: Session) -> None:
    with pytest.raises(QueryError, match="pg") as raised:
        list(pg.query_batches("pg", "SELECT * FROM no_such_table"))
    assert "no_such_table" in str(raised.value)
    assert pg.query("pg", "SELECT 1 AS one")["one"].tolist() == [1]


def test_bad_arguments_are_refused(pg: Session) -> None:
    with pytest.raises(DataSourceError, match="batch size"):
        list(pg.query_batches("pg", "SELECT 1", rows=0))
    with pytest.raises(DataSourceError, match="output"):
        list(pg.query_batches("pg", "SELECT 1", output="polars"))


@pytest.mark.parametrize("zone", ["Etc/UTC", "UTC", "Zulu"])
def test_utc_is_spelled_utc_in_batches_arrow_results_and_frames_alike(
    session: Session, pg_server: PostgresServer, zone: str
) -> None:
    session.add(
        "utc",
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, options=f"-c TimeZone={zone}"),
    )
    sql = "SELECT timestamptz '2024-01-01 00:00+00' AS at"
    (batch,) = list(session.query_batches("utc", sql))
    (frame,) = list(session.query_batches("utc", sql, output="pandas"))
    assert batch.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert str(frame["at"].dtype) == "datetime64[us, UTC]"
    assert session.query("utc", sql, output="arrow").schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert str(session.query("utc", sql)["at"].dtype) == "datetime64[us, UTC]"


def test_every_batch_has_the_columns_types_whatever_values_it_holds(pg: Session, tmp_path: Path) -> None:
    # the NaN that pyarrow's parser refuses in a numeric(12, 2) comes in the second of four batches,
    # which are parsed in a worker thread while the next one is read
    sql = """
    SELECT g AS id, (CASE WHEN g = 150 THEN 'NaN' ELSE g * 1.25 END)::numeric(12, 2) AS amount
    FROM generate_series(1, 400) AS g ORDER BY g
    """
    tables = list(pg.query_batches("pg", sql, rows=100))
    assert [table.num_rows for table in tables] == [100] * 4
    assert {table.schema.field("amount").type for table in tables} == {pa.decimal128(12, 2)}
    amounts = [value for table in tables for value in table.column("amount").to_pylist()]
    assert amounts[149] is None  # Arrow holds no decimal NaN: null, as in a whole Arrow result
    assert amounts[:149] + amounts[150:] == [Decimal(g) * Decimal("1.25") for g in range(1, 401) if g != 150]
    whole = pg.query("pg", sql, limit=None, output="arrow")
    assert whole.column("amount").to_pylist() == amounts
    pg.export("pg", sql, tmp_path / "amounts.parquet")
    assert pq.read_table(tmp_path / "amounts.parquet").column("amount").to_pylist() == amounts

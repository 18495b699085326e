"""Values of every size and shape on each read path, on the real server of the test session.

The read paths: up to 32 KiB of ``COPY`` text parsed in Python (small), more parsed by
pyarrow in pieces (pieces), a repeated statement read as binary ``COPY`` (binary), and a
statement that cannot be a subquery run through a cursor (cursor).
"""

from __future__ import annotations

import gc
import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.connectors.postgresql import columns as pg_columns
from deepanalyze_jupyter.errors import QueryError
from tests.connectors.postgresql.postgres import admin, copy_formats, source_options
from tests.services import PostgresServer

#: How long a query may take before the test calls it hung (the fixed code takes well under).
HANG_SECONDS = 60


def query(session: Session, statement: str, source: str = "pg", **options: Any) -> pd.DataFrame:
    """All rows of ``statement`` on ``source``, or a failure if it does not answer in time."""
    connector = session.run(session.registry.get_connector(source))
    return session.run(connector.query(statement, **options), timeout=HANG_SECONDS)


@dataclass
class Writable:
    """A session with a source ``rw`` that may write, and an empty table of the test's schema."""

    session: Session
    table: str

    def through_cursor(self, select: str) -> pd.DataFrame:
        """All rows of ``select`` read through a cursor: with a data-modifying ``WITH``, which
        cannot be a subquery."""
        statement = f"WITH nothing AS (DELETE FROM {self.table} WHERE false RETURNING 1) {select}"
        return query(self.session, statement, "rw")


@pytest.fixture
def writable(session: Session, pg_server: PostgresServer, pg_schema: str) -> Writable:
    session.add(
        "rw",
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, read_only=False),
    )
    table = f"{pg_schema}.never"
    admin(pg_server, f"CREATE TABLE {table} (x int)")
    return Writable(session, table)


WIDE_CASES = [
    # (bytes per value, rows)
    (1_000, 1),
    (100_000, 1),
    (300_000, 1),
    (300_000, 3),
    (70_000, 200),
    (5_000_000, 1),
    (20_000_000, 1),
]


@pytest.mark.parametrize(("size", "rows"), WIDE_CASES)
def test_wide_text_values_come_back_whole(pg: Session, size: int, rows: int) -> None:
    frame = query(pg, f"SELECT g, repeat('x', {size}) || g AS big FROM generate_series(1, {rows}) AS g")
    assert len(frame) == rows
    assert frame["big"].str.len().tolist() == [size + len(str(g)) for g in range(1, rows + 1)]


@pytest.mark.parametrize("size", [300_000, 3_000_000])
def test_wide_values_of_other_types_come_back_whole(pg: Session, size: int) -> None:
    frame = query(
        pg,
        f"""SELECT convert_to(repeat('b', {size}), 'UTF8') AS by,
                   json_build_object('k', repeat('j', {size})) AS j,
                   jsonb_build_object('k', repeat('J', {size})) AS jb,
                   ARRAY[repeat('a', {size}), NULL] AS arr,
                   g
            FROM generate_series(1, 3) AS g""",
    )
    assert frame["by"].tolist() == [b"b" * size] * 3
    assert frame["j"].tolist() == [{"k": "j" * size}] * 3
    assert frame["jb"].tolist() == [{"k": "J" * size}] * 3
    assert frame["arr"].tolist() == [["a" * size, None]] * 3
    assert frame["g"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("size", [1_000, 300_000, 5_000_000])
def test_wide_values_through_a_cursor(writable: Writable, size: int) -> None:
    frame = writable.through_cursor(f"SELECT repeat('x', {size}) AS big, 1 AS one")
    assert frame["big"].str.len().tolist() == [size]


def test_wide_values_of_a_repeated_statement_read_as_binary(pg: Session, pg_server: PostgresServer) -> None:
    statement = (
        "SELECT g AS wide_binary_marker, timestamptz '2024-01-01' + g * interval '1 minute' AS at, "
        "CASE WHEN g = 3 THEN repeat('w', 400000) ELSE 'v' || g END AS t FROM generate_series(1, 5) AS g"
    )
    first, second = query(pg, statement), query(pg, statement)
    assert copy_formats(pg_server, "wide_binary_marker") == ["text", "binary"]
    pd.testing.assert_frame_equal(first, second)
    assert second["t"].str.len().tolist() == [2, 2, 400000, 2, 2]


def plain_calls(pg_server: PostgresServer, marker: str) -> int:
    """How often a statement holding ``marker`` ran as it is (not as ``COPY``)."""
    rows = admin(
        pg_server,
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
        "WHERE query LIKE 'SELECT * FROM (%%' AND query LIKE %s",
        f"%{marker}%",
    )
    return int(rows[0][0])


def test_a_repeated_small_statement_takes_one_round_trip_and_gives_the_same_frame(
    pg: Session, pg_server: PostgresServer
) -> None:
    statement = (
        "SELECT g AS one_trip_marker, g * 1.5 AS n, (g / 3.0)::float8 AS f, 'a\tb' || g AS t, "
        "timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' AS at, "
        "CASE WHEN g = 2 THEN NULL ELSE g END AS maybe, jsonb_build_object('g', g) AS j "
        "FROM generate_series(1, 3) AS g"
    )
    frames = [query(pg, statement, limit=None) for _ in range(3)]
    # the first run is read through COPY (described, then run); the next ones run as they are
    assert copy_formats(pg_server, "one_trip_marker") == ["text"]
    assert plain_calls(pg_server, "one_trip_marker") == 2
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])
    assert frames[0]["maybe"].dtype == "Int64"
    assert frames[0]["t"].tolist() == ["a\tb1", "a\tb2", "a\tb3"]
    cut = [query(pg, statement, limit=2) for _ in range(2)]
    assert [frame.attrs["truncated"] for frame in cut] == [True, True]
    pd.testing.assert_frame_equal(cut[1], frames[0].iloc[:2])


def test_timestamps_of_a_small_result_are_built_without_arrow(
    session: Session, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    session.add(
        "paris",
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, options="-c TimeZone=Europe/Paris"),
    )
    statement = (
        "SELECT g AS stamps_marker, timestamptz '2024-03-31 00:30+00' + g * interval '1 hour' AS at, "
        "timestamp '1900-01-01 00:00:00.000001' + g * interval '1 day' AS local_at, "
        "CASE WHEN g = 2 THEN NULL ELSE timestamptz '0001-01-01 00:00+00' END AS maybe "
        "FROM generate_series(1, 3) AS g"
    )
    through_copy = query(session, statement, "paris", limit=None)
    conversions: list[object] = []
    convert = pg_columns.pandas_column
    monkeypatch.setattr(
        pg_columns, "pandas_column", lambda column: conversions.append(column) or convert(column)
    )
    small = query(session, statement, "paris", limit=None)
    assert conversions == []  # no Arrow step for the few values of a small result
    pd.testing.assert_frame_equal(small, through_copy)
    assert str(small["at"].dtype) == "datetime64[us, Europe/Paris]"
    assert str(small["local_at"].dtype) == "datetime64[us]"
    assert small["maybe"].isna().tolist() == [False, True, False]
    assert small["at"][0] == pd.Timestamp("2024-03-31 01:30+00:00")


def test_a_repeated_statement_whose_result_grew_goes_back_to_copy(
    pg: Session, pg_server: PostgresServer, pg_schema: str
) -> None:
    table = f"{pg_schema}.growing"
    admin(pg_server, f"CREATE TABLE {table} AS SELECT 1 AS grew_marker")
    statement = f"SELECT grew_marker, repeat('x', 100) AS pad FROM {table}"
    assert len(query(pg, statement, limit=None)) == 1
    admin(pg_server, f"INSERT INTO {table} SELECT g FROM generate_series(2, 5000) AS g")
    assert len(query(pg, statement, limit=None)) == 5000  # run as it is, once
    assert len(query(pg, statement, limit=None)) == 5000  # and through COPY again
    assert copy_formats(pg_server, "grew_marker") == ["text", "text"]
    assert plain_calls(pg_server, "grew_marker") == 1


def test_a_repeated_small_statement_is_read_only_and_leaves_no_setting_behind(
    pg: Session, pg_server: PostgresServer, pg_schema: str
) -> None:
    admin(pg_server, f"CREATE SEQUENCE {pg_schema}.one_trip_seq")
    for _ in range(3):  # through COPY first, then as it is: refused each time
        with pytest.raises(QueryError, match="read-only transaction"):
            query(pg, f"SELECT nextval('{pg_schema}.one_trip_seq') AS n")
    for _ in range(3):
        frame = query(pg, "SELECT set_config('search_path', 'nowhere', false) AS path, 1 AS one")
        assert frame["path"].tolist() == ["nowhere"]
        assert query(pg, "SELECT current_setting('search_path') AS path")["path"].tolist() != ["nowhere"]
    assert admin(pg_server, f"SELECT last_value, is_called FROM {pg_schema}.one_trip_seq") == [(1, False)]


def test_a_repeated_small_statement_leaves_no_session_lock_behind(
    pg: Session, pg_server: PostgresServer
) -> None:
    """A session-level lock outlives a rollback: the reset in the query's own round trip drops it.

    The first run is read through ``COPY`` and reset after it, in the background; the next
    ones are reset before their result comes back.
    """
    key = 424242
    held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
    query(pg, f"SELECT pg_advisory_lock({key}) AS locked, 1 AS one")
    for _ in range(2):
        assert query(pg, f"SELECT pg_advisory_lock({key}) AS locked, 1 AS one")["one"].tolist() == [1]
        assert admin(pg_server, held, key) == [(0,)]


@pytest.mark.parametrize(
    "statement",
    [
        # under 2 MiB of text, of values loaded one by one in Python
        "SELECT ARRAY[g % 1000] AS a FROM generate_series(1, 300000) AS g",
        # many pieces of JSON
        "SELECT jsonb_build_object('k', g, 'v', repeat('x', 200)) AS j FROM generate_series(1, 200000) AS g",
    ],
    ids=["arrays", "json"],
)
def test_another_source_answers_while_a_large_result_is_parsed(
    pg: Session, tmp_path: Path, statement: str
) -> None:
    _assert_another_source_answers_while(pg, tmp_path, statement)


def test_another_source_answers_while_a_repeated_statement_that_grew_is_loaded(
    pg: Session, pg_server: PostgresServer, pg_schema: str, tmp_path: Path
) -> None:
    # run again in one round trip, as its last result was small: now 200,000 JSON values
    table = f"{pg_schema}.grows_large"
    admin(pg_server, f"CREATE TABLE {table} AS SELECT jsonb_build_object('k', 0) AS j")
    statement = f"SELECT j FROM {table}"
    assert len(query(pg, statement)) == 1
    admin(
        pg_server,
        f"INSERT INTO {table} SELECT jsonb_build_object('k', g, 'v', repeat('x', 200)) "
        "FROM generate_series(1, 199999) AS g",
    )
    _assert_another_source_answers_while(pg, tmp_path, statement)
    assert plain_calls(pg_server, "grows_large") == 1  # the large run was the one-round-trip kind


def _assert_another_source_answers_while(pg: Session, tmp_path: Path, statement: str) -> None:
    """Query another source over and over while ``statement`` is read: it never waits long."""
    db_path = tmp_path / "other.db"
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (42)")
    conn.close()
    pg.add("other", "sqlite", path=str(db_path))
    query(pg, "SELECT x FROM t", "other")
    done = threading.Event()
    big: list[pd.DataFrame] = []

    def read_big() -> None:
        big.append(query(pg, statement))
        done.set()

    reader = threading.Thread(target=read_big)
    # Python's garbage collector, over the values being loaded, stops every thread for a while
    # (up to about 0.7 of the read under load): off here, so that what is measured is the loop.
    gc.collect()
    gc.disable()
    try:
        began = time.perf_counter()
        reader.start()
        answers: list[float] = []
        while not done.is_set():
            started = time.perf_counter()
            assert query(pg, "SELECT x FROM t", "other")["x"].tolist() == [42]
            answers.append(time.perf_counter() - started)
            time.sleep(0.005)  # often enough to see a read of a quarter second several times
        reader.join()
        took = time.perf_counter() - began
    finally:
        gc.enable()
    assert len(big[0]) in (300000, 200000)
    assert len(answers) >= 5, "the large read was too quick to show anything"
    # a loop blocked by the build waits for nearly all of it (about 0.8 of it, seen before the fix)
    assert max(answers) < took / 2, f"the other source waited {max(answers):.2f} s of {took:.2f} s"


@pytest.mark.parametrize("rows", [1, 1000, 100_000])
def test_rows_of_no_columns_are_counted(pg: Session, writable: Writable, rows: int) -> None:
    frame = query(pg, f"SELECT FROM generate_series(1, {rows})")
    assert frame.shape == (rows, 0)
    through_cursor = writable.through_cursor(f"SELECT FROM generate_series(1, {rows})")
    assert through_cursor.shape == (rows, 0)


@pytest.mark.parametrize("precision", [39, 40, 76, 77, 1000])
@pytest.mark.parametrize("rows", [100, 5_000, 40_000])
def test_numeric_of_any_precision_is_exact_at_any_size(pg: Session, precision: int, rows: int) -> None:
    scale = 10
    statement = (
        f"SELECT (g::numeric * 1234567.0123456789 + (10::numeric ^ ({precision} - {scale} - 1)))"
        f"::numeric({precision}, {scale}) AS n FROM generate_series(1, {rows}) AS g"
    )
    frame = query(pg, statement)
    with localcontext(prec=precision + 10):
        expected = [
            Decimal(g) * Decimal("1234567.0123456789") + Decimal(10) ** (precision - scale - 1)
            for g in (1, rows // 2, rows)
        ]
    assert [frame["n"].iloc[g - 1] for g in (1, rows // 2, rows)] == expected


@pytest.mark.parametrize("rows", [10, 5_000])
def test_huge_unconstrained_numeric_and_a_nan_in_a_wide_numeric_are_exact(pg: Session, rows: int) -> None:
    frame = query(
        pg,
        "SELECT CASE WHEN g <= 3 THEN 10::numeric ^ 130000 ELSE 0 END + g AS huge, "
        "CASE WHEN g = 2 THEN 'NaN' ELSE g::text END::numeric(50, 3) AS wide "
        f"FROM generate_series(1, {rows}) AS g",
    )
    with localcontext(prec=200_000):
        assert frame["huge"].iloc[1] == Decimal(10) ** 130000 + 2
    assert frame["wide"].iloc[0] == Decimal("1.000")
    assert frame["wide"].iloc[1].is_nan()


@pytest.mark.parametrize("rows", [3, 5_000])
@pytest.mark.parametrize("float_type", ["float8", "float4", "numeric"])
def test_null_and_nan_floats_stay_apart(pg: Session, rows: int, float_type: str) -> None:
    statement = (
        f"SELECT CASE g % 3 WHEN 0 THEN NULL WHEN 1 THEN 'NaN' ELSE g::text END::{float_type} AS f "
        f"FROM generate_series(1, {rows}) AS g"
    )
    frame = query(pg, statement, numeric_as_float=True)
    column = frame["f"]
    assert column.dtype == "Float64"
    assert column.isna().tolist() == [g % 3 == 0 for g in range(1, rows + 1)]
    assert math.isnan(column.array._data[0])  # 'NaN' stays a NaN, not missing
    assert column.iloc[1] == 2.0


_ZONED_INSIDE = (
    "SELECT ARRAY[timestamptz '2020-07-01 12:00+00', NULL] AS stamps, "
    "tstzrange('2020-07-01 12:00+00', NULL) AS span"
)


def test_timestamps_inside_arrays_and_ranges_are_in_the_sessions_time_zone_on_every_run(
    pg: Session, pg_server: PostgresServer
) -> None:
    with pg_server.admin_connection() as conn:
        conn.execute("SET TimeZone = 'Europe/Paris'")
        expected = list(conn.execute(_ZONED_INSIDE).fetchone() or ())
    for _ in range(3):  # read through COPY first, then in one round trip
        row = pg.query("pg", _ZONED_INSIDE).iloc[0].tolist()
        assert [repr(value) for value in row] == [repr(value) for value in expected]
    stamp = pg.query("pg", _ZONED_INSIDE)["stamps"].iloc[0][0]
    assert (stamp.hour, str(stamp.tzinfo)) == (14, "Europe/Paris")

"""Our frames against psycopg's own rows, for random schemas, NULL patterns and value sizes.

Each example is a random result (columns of the supported types, rows with random NULLs,
text, bytea and JSON values up to a few MB, made by the server from ``repeat``), read on
every path: the few rows parsed in Python (small), ``COPY`` text in several pieces parsed
by pyarrow (pieces), a repeated statement as binary ``COPY`` (binary; only for columns the
decoder takes, the others go back to text), and a cursor. Each frame must hold what
``cursor.fetchall()`` gives with psycopg's loaders, and all paths the same frame.

Derandomized: a failure is the same failure on the next run; hypothesis prints the example
(not shrunk: shrinking would rerun examples of several MB on the server for minutes).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from deepanalyze_jupyter import frames as frames_module
from deepanalyze_jupyter.connectors.postgresql import columns as pg_columns
from deepanalyze_jupyter.connectors.postgresql import copy as _pg_copy
from deepanalyze_jupyter.connectors.postgresql import copy_query as _pg_copy_query
from deepanalyze_jupyter.connectors.postgresql.cursor_query import run_with_cursor
from deepanalyze_jupyter.connectors.postgresql.query import CopyFormats, plan_settings, run_query
from deepanalyze_jupyter.connectors.postgresql.types import ColumnPlan, ConversionError, plan_columns
from deepanalyze_jupyter.progress import NullProgress
from deepanalyze_jupyter.results import convert_result
from tests.services import PostgresServer

PATHS = ("small", "pieces", "binary", "cursor")


@dataclass(frozen=True)
class ColumnType:
    """A PostgreSQL type and how to write one of its values as SQL, given a seed and a size."""

    sql: str
    #: The value's SQL for a seed (any int) and a size (for the types that have one).
    value: Any


def _text(seed: int, size: int) -> str:
    return f"repeat(E'a\\tb\\\\{seed % 10}', {size // 5 + 1}) || E'\\n{seed}'"


TYPES: dict[str, ColumnType] = {
    "int2": ColumnType("int2", lambda seed, size: f"{seed % 30000}"),
    "int4": ColumnType("int4", lambda seed, size: f"{seed}"),
    "int8": ColumnType("int8", lambda seed, size: f"{seed}::int8 * 1000000000"),
    "float4": ColumnType("float4", lambda seed, size: "'NaN'" if seed % 7 == 0 else f"{seed} / 3.0"),
    "float8": ColumnType(
        "float8", lambda seed, size: ["'NaN'", "'Infinity'", f"{seed} / 7.0"][min(seed % 9, 2)]
    ),
    "numeric(12,2)": ColumnType("numeric(12,2)", lambda seed, size: f"{seed} / 3.0"),
    "numeric(30,5)": ColumnType("numeric(30,5)", lambda seed, size: f"{seed} * 1e18 / 7"),
    "numeric(60,20)": ColumnType(
        "numeric(60,20)", lambda seed, size: "'NaN'" if seed % 11 == 0 else f"{seed} * 1e33 / 7"
    ),
    "numeric(200,50)": ColumnType("numeric(200,50)", lambda seed, size: f"{seed} * 1e140 / 7"),
    "numeric": ColumnType("numeric", lambda seed, size: f"10::numeric ^ {size % 3000} / 7 + {seed}"),
    "bool": ColumnType("bool", lambda seed, size: "true" if seed % 2 else "false"),
    "text": ColumnType("text", _text),
    "varchar": ColumnType("varchar", _text),
    "bytea": ColumnType("bytea", lambda seed, size: f"convert_to({_text(seed, size)}, 'UTF8')"),
    "json": ColumnType(
        "json", lambda seed, size: f"json_build_object('k', {seed}, 'v', {_text(seed, size)})"
    ),
    "jsonb": ColumnType("jsonb", lambda seed, size: f"jsonb_build_array({seed}, {_text(seed, size)})"),
    "date": ColumnType("date", lambda seed, size: f"date '2000-01-01' + {seed % 100000}"),
    "timestamp": ColumnType(
        "timestamp", lambda seed, size: f"timestamp '2000-01-01' + {seed} * interval '1.5 second'"
    ),
    "timestamptz": ColumnType(
        "timestamptz", lambda seed, size: f"timestamptz '2000-01-01 00:00+00' + {seed} * interval '1 minute'"
    ),
    "time": ColumnType("time", lambda seed, size: f"time '00:00' + {seed % 86400} * interval '1 second'"),
    "interval": ColumnType("interval", lambda seed, size: f"{seed} * interval '1 hour 1.5 second'"),
    "uuid": ColumnType("uuid", lambda seed, size: f"md5({seed}::text)::uuid"),
    "int4[]": ColumnType("int4[]", lambda seed, size: f"ARRAY[{seed}, NULL, {seed % 5}]"),
    "text[]": ColumnType("text[]", lambda seed, size: f"ARRAY[{_text(seed, size)}, NULL]"),
}

sizes = st.one_of(st.integers(0, 40), st.integers(0, 5_000), st.sampled_from([200_000, 3_000_000]))


@st.composite
def results(draw: st.DrawFn) -> str:
    """A ``SELECT`` of a random result: its columns, rows, NULLs and sizes."""
    names = draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=0, max_size=5))
    rows = draw(st.integers(1, 40))
    big_rows = max(1, rows // 20)  # the few MB values stay few: a result of some MB, not GB
    selects = []
    for row in range(rows):
        cells = []
        for position, name in enumerate(names):
            column = TYPES[name]
            size = draw(sizes)
            if size > 5_000 and row >= big_rows:
                size %= 5_000
            seed = draw(st.integers(0, 1_000_000))
            value = "NULL" if draw(st.integers(0, 3)) == 0 else column.value(seed, size)
            cells.append(f"({value})::{column.sql} AS c{position}_{name.split('(')[0].strip('[]')}")
        selects.append("SELECT " + ", ".join(cells))
    return "\nUNION ALL\n".join(selects)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    runner = asyncio.new_event_loop()
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def connection(
    pg_server: PostgresServer, loop: asyncio.AbstractEventLoop
) -> Iterator[psycopg.AsyncConnection[Any]]:
    conn = loop.run_until_complete(
        psycopg.AsyncConnection.connect(pg_server.dsn, autocommit=True, options="-c TimeZone=Europe/Paris")
    )
    yield conn
    loop.run_until_complete(conn.close())


class AlwaysBinary(CopyFormats):
    """Reads every statement as binary ``COPY`` (the decoder's columns; text for the others)."""

    def binary(self, statements: str) -> bool:
        return True


async def read(
    conn: psycopg.AsyncConnection[Any], statement: str, path: str, *, arrow: bool = False
) -> pd.DataFrame | pa.Table:
    """The frame of ``statement`` read on ``path`` (its Arrow table if ``arrow``)."""
    settings = plan_settings(conn, numeric_as_float=False)

    def planner(fields: Sequence[tuple[str, int, int]]) -> list[ColumnPlan]:
        return plan_columns(fields, conn.adapters, settings)

    if path == "cursor":
        result = await run_with_cursor(conn, statement, None, limit=None, planner=planner)
    else:
        formats = AlwaysBinary() if path == "binary" else CopyFormats()
        result = await run_query(
            conn, statement, None, limit=None, planner=planner, progress=NullProgress(), formats=formats
        )
    return await (result.table() if arrow else result.frame())


def read_on_every_path(
    statement: str,
    connection: psycopg.AsyncConnection[Any],
    loop: asyncio.AbstractEventLoop,
    monkeypatch: pytest.MonkeyPatch,
    *,
    arrow: bool = False,
) -> dict[str, Any]:
    """The frames of ``statement`` read on each of ``PATHS`` (Arrow tables if ``arrow``)."""
    frames = {}
    for path in PATHS:
        with monkeypatch.context() as patch:
            if path == "small":  # every result parsed in Python
                patch.setattr(_pg_copy_query, "SMALL_RESULT_BYTES", 1 << 40)
            elif path == "pieces":  # every result parsed by pyarrow, in pieces of a few rows
                patch.setattr(_pg_copy_query, "SMALL_RESULT_BYTES", 0)
                patch.setattr(_pg_copy, "FIRST_CHUNK_BYTES", 1024)
                patch.setattr(_pg_copy, "LARGEST_CHUNK_BYTES", 4096)
            frames[path] = loop.run_until_complete(read(connection, statement, path, arrow=arrow))
    return frames


def normal(value: Any) -> Any:
    """A value as plain Python, for comparing a frame's cell with psycopg's value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return "<float NaN>"
    if isinstance(value, Decimal) and value.is_nan():
        return "<numeric NaN>"
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, pd.Timedelta):
        return value.to_pytimedelta()
    if isinstance(value, UUID):
        return str(value)  # read as text
    if hasattr(value, "item"):  # numpy scalars
        return normal(value.item())
    return value


def check(frame: pd.DataFrame, rows: list[tuple[Any, ...]], names: list[str], path: str) -> None:
    """``frame`` holds ``rows``: the same values, of the same Python types."""
    assert list(frame.columns) == names, path
    assert len(frame) == len(rows), path
    for position, name in enumerate(names):
        ours = [normal(value) for value in frame.iloc[:, position].array]
        theirs = [normal(row[position]) for row in rows]
        for number, (mine, expected) in enumerate(zip(ours, theirs, strict=True)):
            where = f"{path}: column {name}, row {number}: {mine!r:.200} != {expected!r:.200}"
            assert type(mine) is type(expected), where
            assert mine == expected, where
            if isinstance(expected, dt.datetime):
                assert (mine.tzinfo is None) == (expected.tzinfo is None), where


@settings(
    max_examples=15,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(statement=results())
def test_frames_hold_what_psycopg_loads_on_every_path(
    statement: str,
    connection: psycopg.AsyncConnection[Any],
    loop: asyncio.AbstractEventLoop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def expected() -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = await connection.execute(statement)
        assert cursor.description is not None
        return [column.name for column in cursor.description], await cursor.fetchall()

    names, rows = loop.run_until_complete(expected())
    frames = read_on_every_path(statement, connection, loop, monkeypatch)
    for path in PATHS:
        check(frames[path], rows, names, path)
    for path in PATHS[1:]:
        pd.testing.assert_frame_equal(frames[path], frames["small"], obj=f"{path} against small")


def test_numeric_aggregates_are_exact_decimals_on_every_path(
    connection: psycopg.AsyncConnection[Any], loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    statement = (
        "SELECT g % 50 AS k, avg(g::numeric(8, 2) / 3) AS mean, "
        "max(CASE WHEN g % 50 = 7 THEN NULL ELSE g * 1.5 END) AS top, sum(g::numeric) * 1e40 AS wide "
        "FROM generate_series(1, 20000) AS g GROUP BY g % 50 ORDER BY k"
    )
    cursor = loop.run_until_complete(connection.execute(statement))
    rows = loop.run_until_complete(cursor.fetchall())
    frames = read_on_every_path(statement, connection, loop, monkeypatch)
    for path, frame in frames.items():
        for position, name in enumerate(["mean", "top", "wide"], start=1):
            values = [row[position] for row in rows]
            scale = max(-value.as_tuple().exponent for value in values if value is not None)
            width = "decimal256(76" if name == "wide" else "decimal128(38"
            assert str(frame[name].dtype) == f"{width}, {scale})[pyarrow]", (path, name)
            assert [None if pd.isna(v) else v for v in frame[name]] == values, (path, name)
        assert frame["top"].isna().sum() == 1, path
        assert frame["mean"].mean() == sum(row[1] for row in rows) / len(rows), path
    for path in PATHS[1:]:
        pd.testing.assert_frame_equal(frames[path], frames["small"], obj=f"{path} against small")


def arrow_holds(values: Sequence[Any]) -> bool:
    """Whether one Arrow column can hold ``values`` as psycopg loads them.

    Not a numeric wider than Arrow's widest decimal (76 digits), nor a JSON array mixing
    kinds of values: those results are refused as Arrow, as ``pa.Table.from_pandas`` of
    the frame refuses them.
    """
    for value in values:
        if isinstance(value, Decimal) and value.is_finite():
            _, digits, exponent = value.as_tuple()
            assert isinstance(exponent, int)
            precision = len(digits) + exponent if exponent >= 0 else max(len(digits), -exponent)
            if precision > 76:
                return False
        if isinstance(value, list) and len({type(item) for item in value if item is not None}) > 1:
            return False
    return True


def normal_arrow(value: Any) -> Any:
    """A value of psycopg's as an Arrow table gives it back (Arrow has no NaN decimal)."""
    if isinstance(value, Decimal) and value.is_nan():
        return None
    return normal(value)


def check_table(table: pa.Table, rows: list[tuple[Any, ...]], names: list[str], path: str) -> None:
    """``table`` holds ``rows``: the same values, of the same Python types."""
    assert table.column_names == names, path
    assert table.num_rows == len(rows), path
    for position, name in enumerate(names):
        ours = [normal(value) for value in table.column(position).to_pylist()]
        theirs = [normal_arrow(row[position]) for row in rows]
        for number, (mine, expected) in enumerate(zip(ours, theirs, strict=True)):
            where = f"{path}: column {name}, row {number}: {mine!r:.200} != {expected!r:.200}"
            assert type(mine) is type(expected), where
            assert mine == expected, where
            if isinstance(expected, dt.datetime):
                assert (mine.tzinfo is None) == (expected.tzinfo is None), where


@settings(
    max_examples=15,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(statement=results())
def test_arrow_tables_hold_what_psycopg_loads_on_every_path(
    statement: str,
    connection: psycopg.AsyncConnection[Any],
    loop: asyncio.AbstractEventLoop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Arrow results, built with no pandas step, against psycopg's rows and against the frames.

    Each table holds psycopg's values; its types are those ``pa.Table.from_pandas`` gives the
    frame of the same result (where that knows one: a column of NULLs only has none there).
    """

    async def expected() -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = await connection.execute(statement)
        assert cursor.description is not None
        return [column.name for column in cursor.description], await cursor.fetchall()

    names, rows = loop.run_until_complete(expected())
    if not all(arrow_holds([row[position] for row in rows]) for position in range(len(names))):
        with pytest.raises(ConversionError, match="cannot be held in Arrow"):
            read_on_every_path(statement, connection, loop, monkeypatch, arrow=True)
        return
    tables = read_on_every_path(statement, connection, loop, monkeypatch, arrow=True)
    frames = read_on_every_path(statement, connection, loop, monkeypatch)
    for path in PATHS:
        table = convert_result(tables[path], "arrow")
        check_table(table, rows, names, path)
        from_pandas = convert_result(frames[path], "arrow")
        for position, column in enumerate(from_pandas.schema):
            if not pa.types.is_null(column.type):
                assert table.schema.field(position).type == column.type, (path, column.name)
    for path in PATHS[1:]:
        assert tables[path].schema == tables["small"].schema, f"{path} against small"


def test_an_arrow_result_builds_no_pandas_frame(
    connection: psycopg.AsyncConnection[Any],
    loop: asyncio.AbstractEventLoop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statement = (
        "SELECT g, g * 0.5 AS f, md5(g::text) AS t, g::numeric(10, 2) AS n, "
        "timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' AS at, "
        "json_build_object('g', g) AS j, CASE WHEN g % 3 = 0 THEN NULL ELSE g END AS maybe "
        "FROM generate_series(1, 30000) AS g"
    )
    expected = read_on_every_path(statement, connection, loop, monkeypatch, arrow=True)

    def no_pandas(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a pandas column was built")

    for module in (pg_columns, frames_module):
        monkeypatch.setattr(module, "pandas_column", no_pandas)
        monkeypatch.setattr(module, "frame_from_columns", no_pandas)
    monkeypatch.setattr(pg_columns, "python_column", no_pandas)
    monkeypatch.setattr(pg_columns, "frame_from_values", no_pandas)
    tables = read_on_every_path(statement, connection, loop, monkeypatch, arrow=True)
    for path in PATHS:
        assert tables[path].equals(expected[path]), path
        assert tables[path].num_rows == 30000, path

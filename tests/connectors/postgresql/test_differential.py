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
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from deepanalyze_jupyter.connectors.postgresql import copy as _pg_copy
from deepanalyze_jupyter.connectors.postgresql import query as _pg_query
from deepanalyze_jupyter.connectors.postgresql.query import CopyFormats, plan_settings, run_query
from deepanalyze_jupyter.connectors.postgresql.types import ColumnPlan, plan_columns
from deepanalyze_jupyter.progress import NullProgress
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


async def read(conn: psycopg.AsyncConnection[Any], statement: str, path: str) -> pd.DataFrame:
    """The frame of ``statement`` read on ``path``."""
    settings = plan_settings(conn, numeric_as_float=False)

    def planner(fields: Sequence[tuple[str, int, int]]) -> list[ColumnPlan]:
        return plan_columns(fields, conn.adapters, settings)

    if path == "cursor":
        result = await _pg_query._run_with_cursor(conn, statement, None, limit=None, planner=planner)
    else:
        formats = AlwaysBinary() if path == "binary" else CopyFormats()
        result = await run_query(
            conn, statement, None, limit=None, planner=planner, progress=NullProgress(), formats=formats
        )
    return await result.frame()


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
    frames = {}
    for path in PATHS:
        with monkeypatch.context() as patch:
            if path == "small":  # every result parsed in Python
                patch.setattr(_pg_query, "SMALL_RESULT_BYTES", 1 << 40)
            elif path == "pieces":  # every result parsed by pyarrow, in pieces of a few rows
                patch.setattr(_pg_query, "SMALL_RESULT_BYTES", 0)
                patch.setattr(_pg_copy, "FIRST_CHUNK_BYTES", 1024)
                patch.setattr(_pg_copy, "LARGEST_CHUNK_BYTES", 4096)
            frames[path] = loop.run_until_complete(read(connection, statement, path))
        check(frames[path], rows, names, path)
    for path in PATHS[1:]:
        pd.testing.assert_frame_equal(frames[path], frames["small"], obj=f"{path} against small")

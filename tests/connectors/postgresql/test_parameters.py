"""How ``:name`` values reach PostgreSQL, compared value by value with server-side binding.

On the ``COPY`` path (statements that can be a subquery, on a UTF-8 connection) psycopg
quotes each value into the text (``COPY`` takes no parameters); everywhere else the
server binds them. Each value below goes both ways on the same server with the same
session settings, and the server's own text form of what it received must be the same.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.connectors.postgresql.query import CopyFormats, plan_settings, run_query
from deepanalyze_jupyter.connectors.postgresql.types import PlanCache
from deepanalyze_jupyter.errors import QueryError
from deepanalyze_jupyter.progress import NullProgress
from tests.connectors.postgresql.postgres import source_options
from tests.services import PostgresServer

HOSTILE_TEXT = [
    "",
    "plain",
    "it's",
    'double " quote',
    "back\\slash",
    "\\'",
    "'\\",
    "E'x'",
    "x'); DROP TABLE t; --",
    "$$ dollar $$",
    "$a$ tagged $a$",
    "\\x41",
    ":v \\: %s %(v)s ?",
    "tab\tnewline\ncarriage\rreturn",
    "ünïcødé",
    "日本語 🙂",
    # long: wider than one parse block, quoted whole into the statement
    "x'\\" * 20_000,
    "long " * 200_000,
]
OTHER_VALUES = [
    None,
    0,
    -1,
    2**31,
    -(2**63),
    2**63 - 1,
    2**70,
    1.5,
    -0.0,
    1e300,
    float("inf"),
    float("nan"),
    Decimal("12.345"),
    Decimal("-1E-30"),
    Decimal("NaN"),
    True,
    False,
    dt.date(2024, 2, 29),
    dt.datetime(2024, 1, 1, 12, 30, 15, 123456),
    dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
    dt.time(23, 59, 59, 999999),
    dt.timedelta(days=-3, seconds=7, microseconds=1),
    b"\x00\xff'\\\n",
    [1, None, 3],
    ["a'b", None, "c\\d", ""],
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
]
#: Session settings a user can give a source, under which both ways must agree.
SETTINGS = {
    "utf8": "",
    "no-standard-strings": "-c standard_conforming_strings=off",
    "latin1": "-c client_encoding=LATIN1",
    "sql-ascii": "-c client_encoding=SQL_ASCII",
    "euc-jp": "-c client_encoding=EUC_JP",
}
SQL = (
    "SELECT (:v)::text AS v, starts_with(current_query(), 'COPY (SELECT * FROM (' || chr(10)) AS quoted, "
    "current_setting('client_encoding') AS encoding"
)


@pytest.fixture(params=list(SETTINGS), ids=list(SETTINGS))
def setting(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def source(session: Session, pg_server: PostgresServer, setting: str) -> Session:
    extra = {"options": SETTINGS[setting]} if SETTINGS[setting] else {}
    session.add(
        "pg", "postgresql", secrets={"password": pg_server.password}, **source_options(pg_server, **extra)
    )
    return session


@pytest.fixture
def bound(pg_server: PostgresServer, setting: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain psycopg connection with the same settings: it binds values on the server."""
    extra = {"options": SETTINGS[setting]} if SETTINGS[setting] else {}
    with psycopg.connect(make_conninfo(pg_server.dsn, **extra), autocommit=True) as conn:
        yield conn


def server_text(conn: psycopg.Connection[Any], value: Any) -> str | None:
    """What the server makes of ``value`` bound as a parameter, as text."""
    row = conn.execute("SELECT (%s)::text", [value]).fetchone()
    assert row is not None
    text = row[0]  # bytes under SQL_ASCII, where psycopg does not decode
    return text.decode("utf-8") if isinstance(text, bytes) else text  # type: ignore[no-any-return]


@pytest.mark.parametrize("value", HOSTILE_TEXT + OTHER_VALUES, ids=lambda value: repr(value)[:30])
def test_a_value_reaches_the_server_as_server_side_binding_gives_it(
    source: Session, bound: psycopg.Connection[Any], setting: str, value: Any
) -> None:
    try:
        expected = server_text(bound, value)
    except UnicodeEncodeError:  # a character the reference's client encoding lacks
        expected = value  # text comes back as it went
    frame = source.query("pg", SQL, {"v": value})
    got = frame["v"].iloc[0]
    assert (None if got is pd.NA else got) == expected
    # the source always talks UTF-8 (a client_encoding in its options does not change that),
    # so the value was quoted into COPY's text
    assert frame["encoding"].iloc[0] == "UTF8"
    assert bool(frame["quoted"].iloc[0])


@pytest.mark.parametrize("value", ["nul\x00inside", "lone \udcff surrogate"], ids=["nul", "surrogate"])
def test_a_value_postgresql_cannot_hold_is_refused_with_one_line(source: Session, value: str) -> None:
    with pytest.raises(QueryError) as refused:
        source.query("pg", SQL, {"v": value})
    message = str(refused.value)
    assert message.startswith("pg: ")
    assert "\n" not in message
    assert ("NUL" in message) if "\x00" in value else ("cannot be sent" in message)


def test_after_a_users_set_client_encoding_values_are_bound_on_the_server(pg_server: PostgresServer) -> None:
    async def run() -> tuple[pd.DataFrame, str]:
        conn = await psycopg.AsyncConnection.connect(pg_server.dsn, autocommit=True)
        try:
            await conn.execute("SET client_encoding TO 'LATIN1'")
            plans = PlanCache()
            settings = plan_settings(conn, numeric_as_float=False)
            result = await run_query(
                conn,
                "SELECT :v AS v, current_query() AS q",
                {"v": "café 'quoted'"},
                limit=None,
                planner=lambda fields: plans.plans(fields, conn.adapters, settings),
                progress=NullProgress(),
                formats=CopyFormats(),
            )
            return await result.frame(), conn.info.encoding
        finally:
            await conn.close()

    frame, encoding = asyncio.run(run())
    assert encoding == "iso8859-1"
    assert frame["v"].tolist() == ["café 'quoted'"]
    assert frame["q"].tolist() == ["SELECT $1 AS v, current_query() AS q"]  # bound, not in the text

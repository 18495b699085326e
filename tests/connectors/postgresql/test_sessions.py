"""What a query may leave behind on a pooled PostgreSQL session: nothing.

Read-only holds against anything a user can type, a query is one statement, a user's
``SET`` never reaches the next query, a busy pool is told apart from a dead server, and
unused connections are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.connectors.postgresql import connections as connections_module
from deepanalyze_jupyter.connectors.postgresql.connector import PostgresConnector
from deepanalyze_jupyter.connectors.postgresql.pool import reset_connection
from deepanalyze_jupyter.errors import ConfigurationError, ConnectionFailed, QueryError
from deepanalyze_jupyter.notebook.magic_args import OptionValues, add_parser
from tests.connectors.postgresql.postgres import admin, source_options
from tests.services import PostgresServer


@pytest.fixture
def targets(pg_server: PostgresServer, pg_schema: str) -> str:
    """A table, a sequence, a procedure and a function that write: what an escape would touch."""
    s = pg_schema
    for statement in (
        f"CREATE TABLE {s}.target (x int)",
        f"CREATE SEQUENCE {s}.seq",
        f"CREATE PROCEDURE {s}.writer() LANGUAGE plpgsql AS "
        f"$$ BEGIN COMMIT; SET TRANSACTION READ WRITE; INSERT INTO {s}.target VALUES (1); END $$",
        f"CREATE FUNCTION {s}.sneaky() RETURNS int LANGUAGE plpgsql "
        "SET default_transaction_read_only = off "
        f"AS $$ BEGIN INSERT INTO {s}.target VALUES (2); RETURN 1; END $$",
        f"CREATE FUNCTION {s}.sneakier() RETURNS int LANGUAGE plpgsql "
        "SET transaction_read_only = off "
        f"AS $$ BEGIN INSERT INTO {s}.target VALUES (3); RETURN 1; END $$",
    ):
        admin(pg_server, statement)
    return s


def _written(pg_server: PostgresServer, schema: str) -> list[object]:
    """Every trace a write would leave: a new table, rows, a sequence step, a large object."""
    return [
        admin(pg_server, "SELECT to_regclass(%s)", f"{schema}.escaped")[0][0],
        admin(pg_server, f"SELECT count(*) FROM {schema}.target")[0][0],
        admin(pg_server, f"SELECT is_called FROM {schema}.seq")[0][0],
        admin(pg_server, "SELECT count(*) FROM pg_largeobject_metadata")[0][0],
    ]


_ESCAPES = [
    "begin read write; create table {s}.escaped(x int); commit",
    "start transaction read write; insert into {s}.target values (1); commit",
    "set transaction read write; create table {s}.escaped(x int)",
    "commit; begin read write; create table {s}.escaped(x int)",
    # breaking out of the subquery the result is read through
    "select 1) as q; commit; begin read write; create table {s}.escaped(x int); commit; "
    "select * from (select 1",
    "select 1) as q limit 0; create table {s}.escaped(x int); select * from (select 1",
    "DO $$ BEGIN COMMIT; SET TRANSACTION READ WRITE; CREATE TABLE {s}.escaped(x int); END $$",
    "DO $$ BEGIN PERFORM set_config('transaction_read_only', 'off', true); "
    "CREATE TABLE {s}.escaped(x int); END $$",
    "select set_config('transaction_read_only', 'off', false)",
    "select set_config('default_transaction_read_only', 'off', false)",
    "set session characteristics as transaction read write",
    "reset all",
    "CALL {s}.writer()",
    "select {s}.sneaky()",
    "select {s}.sneakier()",
    "copy {s}.target from stdin",
    "select nextval('{s}.seq')",
    "select * from {s}.target for update",
    "prepare w as insert into {s}.target values (1)",
    "execute w",
    "create temp table t(x int)",
    "select lo_create(0)",
    "begin",
    "commit",
]


@pytest.mark.parametrize("escape", _ESCAPES)
def test_nothing_a_user_types_writes_through_a_read_only_source(
    pg: Session, pg_server: PostgresServer, targets: str, escape: str
) -> None:
    before = _written(pg_server, targets)
    with contextlib.suppress(QueryError):
        pg.query("pg", escape.format(s=targets))
    for follow_up in (
        f"create table {targets}.escaped(x int)",
        f"insert into {targets}.target values (9)",
        "execute w",
    ):
        with pytest.raises(QueryError):
            pg.query("pg", follow_up)
    assert _written(pg_server, targets) == before
    # the session is as it started, read-only
    frame = pg.query("pg", "SELECT current_setting('default_transaction_read_only') AS ro")
    assert frame["ro"].tolist() == ["on"]


@pytest.mark.parametrize("statement", ["BEGIN", "COMMIT", "ROLLBACK", "START TRANSACTION READ ONLY"])
def test_transaction_control_on_a_read_only_source_is_refused_in_one_line(
    pg: Session, statement: str
) -> None:
    tag = statement.split(" READ")[0]
    with pytest.raises(QueryError, match=f"^pg: {tag} is not available on a read-only source"):
        pg.query("pg", statement)
    assert pg.query("pg", "SELECT 1 AS one")["one"].tolist() == [1]


@pytest.fixture
def rw(session: Session, pg_server: PostgresServer) -> Session:
    """A session with source ``rw``, registered for writes."""
    session.add(
        "rw",
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, read_only=False),
    )
    return session


@pytest.mark.parametrize("source", ["pg", "rw"])
def test_several_statements_are_refused_and_none_runs(
    pg: Session, rw: Session, pg_server: PostgresServer, targets: str, source: str
) -> None:
    admin(pg_server, f"INSERT INTO {targets}.target VALUES (1)")
    for sql in (
        "SELECT 1 AS a; SELECT 2 AS b",
        f"SELECT 1 AS a; DELETE FROM {targets}.target",
        f"DELETE FROM {targets}.target; SELECT 1 AS a",
    ):
        with pytest.raises(
            QueryError, match=f"^{source}: the SQL holds several statements; a query runs one"
        ):
            pg.query(source, sql)
    assert admin(pg_server, f"SELECT count(*) FROM {targets}.target") == [(1,)]
    assert pg.query(source, "SELECT 1 AS a;")["a"].tolist() == [1]  # one statement and its ';'


def test_a_source_for_writes_commits_each_statement_and_refuses_transaction_control(
    rw: Session, pg_server: PostgresServer, targets: str
) -> None:
    with pytest.raises(QueryError, match=r"^rw: BEGIN is not available: each query is its own transaction"):
        rw.query("rw", "BEGIN")
    rw.query("rw", f"INSERT INTO {targets}.target VALUES (1)")
    assert admin(pg_server, f"SELECT count(*) FROM {targets}.target") == [(1,)]  # not in an open BEGIN


_SETTINGS = (
    "SELECT current_setting('TimeZone') AS tz, current_setting('search_path') AS path, "
    "current_user AS who, current_setting('statement_timeout') AS timeout"
)


@pytest.mark.parametrize("source", ["pg", "rw"])
def test_a_users_set_never_reaches_the_next_query(
    pg: Session, rw: Session, pg_server: PostgresServer, source: str
) -> None:
    role = f"r_{uuid4().hex[:8]}"
    admin(pg_server, f"CREATE ROLE {role}")
    try:
        before = pg.query(source, _SETTINGS).iloc[0].tolist()
        for statement in (
            "SET timezone = 'Asia/Tokyo'",
            "SET search_path = nowhere",
            f"SET ROLE {role}",
            "SET statement_timeout = '1ms'",
            "SELECT set_config('TimeZone', 'America/Lima', false)",
        ):
            with contextlib.suppress(QueryError):
                pg.query(source, statement)
            for _ in range(3):
                assert pg.query(source, _SETTINGS).iloc[0].tolist() == before
    finally:
        admin(pg_server, f"DROP ROLE {role}")


def test_a_sources_own_settings_stay_after_a_users_set(pg: Session) -> None:
    pg.query("pg", "SELECT set_config('TimeZone', 'Asia/Tokyo', false)")
    assert pg.query("pg", "SELECT current_setting('TimeZone') AS tz")["tz"].tolist() == ["Europe/Paris"]


def test_an_advisory_lock_is_released_after_the_query(pg: Session, pg_server: PostgresServer) -> None:
    pg.query("pg", "SELECT pg_advisory_lock(424242)")
    deadline = time.monotonic() + 5  # the reset follows the query by a round trip
    while admin(pg_server, "SELECT pg_try_advisory_lock(424242)") != [(True,)]:
        assert time.monotonic() < deadline, "the advisory lock is still held"
        time.sleep(0.02)


def test_a_query_returns_before_its_reset_and_the_next_one_waits_for_it(
    session: Session, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reset's round trip is off the query's path, yet no query gets a connection before it."""
    slow = 2.0

    async def slow_reset(conn: Any, *, read_only: bool, reset: Any = None) -> None:
        await asyncio.sleep(slow)
        await reset_connection(conn, read_only=read_only, reset=reset)

    monkeypatch.setattr(connections_module, "reset_connection", slow_reset)
    options = source_options(pg_server, pool_max_size=1, application_name=f"reset-{uuid4().hex[:8]}")
    session.add("one", "postgresql", secrets={"password": pg_server.password}, **options)
    session.query("one", "SELECT 1 AS x")  # connected, and the connection back in the pool
    time.sleep(slow + 0.5)
    started = time.monotonic()
    session.query("one", "SELECT set_config('TimeZone', 'Asia/Tokyo', false) AS tz")
    returned = time.monotonic() - started
    tz = session.query("one", "SELECT current_setting('TimeZone') AS tz")["tz"].tolist()
    assert returned < slow / 2
    assert time.monotonic() - started >= slow  # the next query waited for the reset
    assert tz != ["Asia/Tokyo"]
    session.remove("one")  # waits for a reset under way; nothing is left open
    assert _backends(pg_server, options["application_name"]) == 0


def _backends(pg_server: PostgresServer, application: str) -> int:
    return int(
        admin(pg_server, "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", application)[0][
            0
        ]
    )


def test_a_busy_pool_waits_and_then_says_so(session: Session, pg_server: PostgresServer) -> None:
    options = source_options(pg_server, pool_max_size=2, connect_timeout=1)
    secrets = {"password": pg_server.password}
    session.add("waits", "postgresql", secrets=secrets, pool_timeout=10, **options)
    with ThreadPoolExecutor(4) as threads:  # 4 queries of 1.5 s on 2 connections: the last wait 1.5 s
        frames = list(threads.map(lambda _: session.query("waits", "SELECT pg_sleep(1.5) AS s"), range(4)))
    assert [len(frame) for frame in frames] == [1, 1, 1, 1]

    session.add("busy", "postgresql", secrets=secrets, pool_timeout=0.5, **options)
    with ThreadPoolExecutor(3) as threads:
        futures = [threads.submit(session.query, "busy", "SELECT pg_sleep(2) AS s") for _ in range(3)]
        errors = [future.exception() for future in futures]
    refused = [str(error) for error in errors if error is not None]
    assert refused == [
        "busy: all 2 connections of 'busy' are busy; waited 0.5 s (options pool_max_size, pool_timeout)"
    ]


def test_a_source_holds_no_connection_until_queried_and_none_once_idle(
    session: Session, pg_server: PostgresServer
) -> None:
    application = f"idle-{uuid4().hex[:8]}"
    session.add(
        "idle",
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, application_name=application, max_idle=1),
    )
    assert _backends(pg_server, application) == 0  # the connection test's connection is closed
    session.query("idle", "SELECT 1 AS one")
    assert _backends(pg_server, application) == 1
    deadline = time.monotonic() + 5
    while _backends(pg_server, application) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _backends(pg_server, application) == 0
    assert session.query("idle", "SELECT 1 AS one")["one"].tolist() == [1]


def test_no_library_log_line_reaches_the_output_after_statements_that_upset_the_pool(
    pg: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    printed = io.StringIO()
    monkeypatch.setattr(logging.root, "handlers", [])  # as in a notebook: no logging configured
    monkeypatch.setattr(logging, "lastResort", logging.StreamHandler(printed))
    for statement in (
        "copy (select 1) to stdout",
        "begin",
        "set session characteristics as transaction read write",
        "select pg_terminate_backend(pg_backend_pid())",
    ):
        with contextlib.suppress(QueryError, ConnectionFailed):
            pg.query("pg", statement)
        assert pg.query("pg", "SELECT 1 AS one")["one"].tolist() == [1]
    time.sleep(0.3)  # the pool's workers log after the query returned
    assert printed.getvalue() == ""


def test_settings_for_every_query_are_a_source_option_that_outlives_a_users_set(
    session: Session, pg_server: PostgresServer
) -> None:
    session.add(
        "set",
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, set=["timezone=UTC", "search_path=sales, public"]),
    )
    settings = "SELECT current_setting('TimeZone') AS tz, current_setting('search_path') AS path"
    assert session.query("set", settings).iloc[0].tolist() == ["UTC", "sales, public"]
    session.query("set", "SELECT set_config('TimeZone', 'Asia/Tokyo', false)")
    assert session.query("set", settings).iloc[0].tolist() == ["UTC", "sales, public"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("timezone", r"^bad: option 'set' takes name=value \(e\.g\. timezone=UTC\), got 'timezone'$"),
        ("no such=1", "^bad: option 'set' takes name=value"),
        ("nosuch=1", '^bad: the server refused a setting: unrecognized configuration parameter "nosuch"$'),
        (
            "timezone=Mars/X",
            '^bad: the server refused a setting: invalid value for parameter "TimeZone": "Mars/X"$',
        ),
    ],
)
def test_a_bad_setting_is_one_line_at_add_time_and_nothing_is_added(
    session: Session, pg_server: PostgresServer, setting: str, message: str
) -> None:
    options = source_options(pg_server, set=[setting])
    with pytest.raises(ConfigurationError, match=message):
        session.add("bad", "postgresql", secrets={"password": pg_server.password}, **options)
    assert "bad" not in session.registry


def test_set_is_repeatable_in_a_magic_line() -> None:
    parser = add_parser(["postgresql"], "postgresql", PostgresConnector.option_specs)
    line = "pg --type postgresql --set timezone=UTC --set search_path=x"
    namespace = parser.parse_words(line.split())
    options = OptionValues.from_namespace(namespace).options
    assert options["set"] == ["timezone=UTC", "search_path=x"]
    clean, _ = PostgresConnector.prepare("pg", options, {})
    assert clean["set"] == ["timezone=UTC", "search_path=x"]


@pytest.mark.parametrize("source", ["pg", "rw"])
def test_a_statement_that_is_no_subquery_runs_under_the_querys_timeout(
    pg: Session, rw: Session, source: str
) -> None:
    started = time.monotonic()
    with pytest.raises(QueryError, match="statement timeout"):
        pg.query(source, "DO $$ BEGIN PERFORM pg_sleep(5); END $$", timeout=0.5)
    assert time.monotonic() - started < 4
    assert pg.query(source, "SHOW statement_timeout", timeout=2)["statement_timeout"].tolist() == ["2s"]
    assert pg.query(source, "SHOW statement_timeout")["statement_timeout"].tolist() == ["0"]


@pytest.mark.parametrize("timeout", [None, 5])
def test_statements_that_refuse_a_transaction_run_on_a_source_for_writes(
    rw: Session, pg_server: PostgresServer, targets: str, timeout: float | None
) -> None:
    rw.query("rw", f"VACUUM {targets}.target", timeout=timeout)
    index = f"CREATE INDEX CONCURRENTLY target_x ON {targets}.target (x)"
    rw.query("rw", index, timeout=timeout)
    assert admin(pg_server, "SELECT to_regclass(%s) IS NOT NULL", f"{targets}.target_x") == [(True,)]


@pytest.mark.parametrize(
    ("source", "statement"),
    [
        ("pg", "copy (select 1) to stdout"),
        ("rw", "copy (select 1) to stdout"),
        ("rw", "copy {s}.target from stdin"),
    ],
)
def test_copy_to_stdout_or_from_stdin_is_refused_in_one_line(
    pg: Session, rw: Session, targets: str, source: str, statement: str
) -> None:
    refused = f"^{source}: COPY ... TO STDOUT and FROM STDIN cannot run as a query"
    with pytest.raises(QueryError, match=refused):
        pg.query(source, statement.format(s=targets))
    assert pg.query(source, "SELECT 1 AS one")["one"].tolist() == [1]

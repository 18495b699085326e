"""The PostgreSQL connector when things go wrong: bad credentials, unreachable servers, bad SQL,
interrupted queries, dropped connections, timeouts and writes on a read-only source."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.connectors.postgresql import copy_query as copy_query_module
from deepanalyze_jupyter.connectors.postgresql.result import BuildCancelled
from deepanalyze_jupyter.errors import AuthenticationFailed, ConnectionFailed, DataSourceError, QueryError
from tests.connectors.postgresql.postgres import admin, copy_formats, source_options
from tests.services import PostgresServer
from tests.services.process import free_loopback_port

#: The connect timeout of the test that waits for it, in seconds (libpq's least is 2).
CONNECT_TIMEOUT = 2


@pytest.fixture
def pg(session: Session, pg_server: PostgresServer) -> Session:
    """A session with the read-only source ``pg``, registered through a URI holding the password."""
    session.add("pg", "postgresql", dsn=pg_server.uri, application_name=f"failures-{uuid4().hex[:8]}")
    return session


def application_name(session: Session, source: str) -> str:
    return str(session.registry.get_config(source).options["application_name"])


def backend_pid(session: Session, source: str = "pg") -> int:
    return int(session.query(source, "SELECT pg_backend_pid() AS pid")["pid"].iloc[0])


def running_queries(pg_server: PostgresServer, application: str) -> list[tuple[Any, ...]]:
    return admin(
        pg_server,
        "SELECT pid, query FROM pg_stat_activity WHERE application_name = %s AND state = 'active'",
        application,
    )


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def assert_clean(error: BaseException, *secrets: str) -> None:
    """One line, and no secret in the message nor in anything chained to it."""
    seen: BaseException | None = error
    while seen is not None:
        for secret in secrets:
            assert secret not in str(seen)
            assert secret not in repr(seen)
        seen = seen.__cause__ or seen.__context__
    assert "\n" not in str(error)


# -- connecting ----------------------------------------------------------------------------------


def test_a_wrong_password_is_an_authentication_error_naming_the_source(
    session: Session, pg_server: PostgresServer
) -> None:
    wrong = f"wrong-{uuid4().hex}"
    with pytest.raises(AuthenticationFailed) as caught:
        session.add("pg", "postgresql", secrets={"password": wrong}, **source_options(pg_server))
    assert str(caught.value).startswith("pg: authentication failed for ")
    assert "password authentication failed" in str(caught.value)
    assert_clean(caught.value, wrong, pg_server.password)
    assert not session.registry.exists("pg")


def test_a_wrong_password_inside_a_dsn_is_not_shown_either(
    session: Session, pg_server: PostgresServer
) -> None:
    wrong = f"wrong-{uuid4().hex}"
    uri = pg_server.uri.replace(pg_server.password, wrong)
    with pytest.raises(AuthenticationFailed) as caught:
        session.add("pg", "postgresql", dsn=uri)
    assert_clean(caught.value, wrong, uri)


def test_a_refused_port_is_a_connection_error_at_once(session: Session) -> None:
    port = free_loopback_port()
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as caught:
        session.add(
            "pg",
            "postgresql",
            host="127.0.0.1",
            port=port,
            connect_timeout=3,
            secrets={"password": "unused-pw-4821"},
        )
    assert time.monotonic() - started < 3
    assert type(caught.value) is ConnectionFailed
    assert str(caught.value).startswith(f"pg: cannot connect to 127.0.0.1:{port}")
    assert_clean(caught.value)


def test_a_refused_connection_reads_as_sentences(session: Session) -> None:
    port = free_loopback_port()
    with pytest.raises(ConnectionFailed) as caught:
        session.add("pg", "postgresql", host="127.0.0.1", port=port, secrets={"password": "unused-pw-4821"})
    message = str(caught.value)
    assert f"port {port} failed: Connection refused. Is the server running" in message
    assert "\n" not in message
    assert "  " not in message


def test_a_server_that_never_answers_is_a_connection_error_within_the_connect_timeout(
    session: Session,
) -> None:
    # A socket that listens but never accepts: the TCP handshake completes (the backlog takes
    # it) and then nothing ever answers, as with a server that hangs or a firewall that drops.
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as caught:
            session.add(
                "pg",
                "postgresql",
                host="127.0.0.1",
                port=port,
                connect_timeout=CONNECT_TIMEOUT,
                secrets={"password": "unused-pw-4821"},
            )
        waited = time.monotonic() - started
    assert CONNECT_TIMEOUT - 0.5 <= waited < CONNECT_TIMEOUT + 3  # it waited for the timeout, no longer
    assert type(caught.value) is ConnectionFailed
    message = str(caught.value)
    assert message.startswith(f"pg: cannot connect to 127.0.0.1:{port}")
    assert "timeout" in message
    assert "\n" not in message
    assert_clean(caught.value)
    assert not session.registry.exists("pg")


# -- bad SQL -------------------------------------------------------------------------------------


def test_a_syntax_error_gives_the_servers_message_and_position(
    pg: Session, pg_server: PostgresServer
) -> None:
    with pytest.raises(QueryError) as caught:
        pg.query("pg", "SELECT * FORM pg_class")
    message = str(caught.value)
    assert message == 'pg: syntax error at or near "FORM" (SQLSTATE 42601, at character 10)'
    assert_clean(caught.value, pg_server.password)


def test_a_missing_table_is_a_query_error_with_the_position_in_the_sql_as_written(
    pg: Session, pg_server: PostgresServer
) -> None:
    sql = "SELECT :a_rather_long_name AS x, * FROM no_such_table"
    with pytest.raises(QueryError) as caught:
        pg.query("pg", sql, {"a_rather_long_name": "a value much longer than its placeholder"})
    position = sql.index("no_such_table") + 1
    assert str(caught.value) == (
        f'pg: relation "no_such_table" does not exist (SQLSTATE 42P01, at character {position})'
    )
    assert_clean(caught.value, pg_server.password)


def test_a_runtime_error_while_rows_stream_is_a_query_error(pg: Session) -> None:
    with pytest.raises(QueryError, match=r"division by zero \(SQLSTATE 22012\)"):
        pg.query("pg", "SELECT 1 / (5000 - g) FROM generate_series(1, 10000) AS g", limit=None)
    assert pg.query("pg", "SELECT 1 AS ok")["ok"].tolist() == [1]


def test_a_statement_that_is_no_subquery_reports_its_own_error(pg: Session) -> None:
    with pytest.raises(QueryError, match=r'unrecognized configuration parameter "nope"'):
        pg.query("pg", "SHOW nope")


# -- interrupting ---------------------------------------------------------------------------------


def interrupt(session: Session, sql: str, after: float) -> None:
    """Run ``sql`` as the kernel would, and interrupt it after ``after`` seconds."""
    with pytest.raises(TimeoutError):
        session.runner.run_sync(session.registry.query("pg", sql, limit=None), timeout=after)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_sleep(30)",
        # rows stream while the server works: the interrupt comes in the middle of COPY
        "SELECT g, pg_sleep(0.001) FROM generate_series(1, 30000) AS g",
    ],
    ids=["waiting", "streaming"],
)
def test_an_interrupt_stops_the_query_on_the_server_and_keeps_the_connection(
    pg: Session, pg_server: PostgresServer, sql: str
) -> None:
    application = application_name(pg, "pg")
    pid = backend_pid(pg)
    interrupt(pg, sql, after=0.5)
    assert wait_until(lambda: not running_queries(pg_server, application), 1.0)
    assert backend_pid(pg) == pid  # the same connection, still usable
    assert pg.query("pg", "SELECT 2 AS two")["two"].tolist() == [2]


def test_an_interrupt_stops_a_query_read_as_binary_too(
    pg: Session, pg_server: PostgresServer, pg_schema: str
) -> None:
    pause = f"{pg_schema}.pause"
    admin(pg_server, f"CREATE TABLE {pause} AS SELECT 0.0::float8 AS seconds")
    sql = (  # a pause per row, as long as the table says
        "SELECT g, md5(g::text) AS h, timestamptz '2024-01-01' + g * interval '1 minute' AS at "
        "FROM generate_series(1, 3000) g "
        f"WHERE pg_sleep((SELECT seconds FROM {pause})) IS NOT NULL"
    )
    assert len(pg.query("pg", sql, limit=None)) == 3000  # quick: read as binary from now on
    admin(pg_server, f"UPDATE {pause} SET seconds = 0.001")
    application = application_name(pg, "pg")
    pid = backend_pid(pg)
    interrupt(pg, sql, after=0.5)
    assert wait_until(lambda: not running_queries(pg_server, application), 1.0)
    assert backend_pid(pg) == pid
    admin(pg_server, f"UPDATE {pause} SET seconds = 0")
    assert pg.query("pg", sql, limit=None)["h"].iloc[-1] == "e93028bdc1aacdfb3687181f2031765d"  # md5('3000')
    # the server counts finished statements only: the first run's text, and the last one's binary
    # (the format the interrupted run asked for too; an interrupt teaches nothing)
    assert copy_formats(pg_server, pause) == ["text", "binary"]


def test_cancelling_the_task_cancels_the_query(pg: Session, pg_server: PostgresServer) -> None:
    application = application_name(pg, "pg")

    async def cancel_soon() -> None:
        task = asyncio.ensure_future(pg.registry.query("pg", "SELECT pg_sleep(30)"))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    pg.run(cancel_soon())
    assert wait_until(lambda: not running_queries(pg_server, application), 1.0)


#: Run in a fresh interpreter: three queries of ~4 GB interrupted (a real SIGINT, as a kernel
#: gets) once the process has grown by 200 MiB, each traceback kept as a kernel keeps it
#: (``sys.last_traceback``); prints the RSS growth after each, in MiB.
INTERRUPTED_QUERIES = """
import json, os, signal, sys, threading, time
from deepanalyze_jupyter import Session

signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored

def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

def interrupt_above(limit, done):
    while not done.is_set():
        if rss() > limit:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            return
        time.sleep(0.005)

session = Session()
session.add("pg", "postgresql", secrets={"password": os.environ["SOURCE_PASSWORD"]},
            **json.loads(os.environ["SOURCE_OPTIONS"]))
session.query("pg", "SELECT 1 AS one")
start, growth = rss(), []
for attempt in range(3):
    done = threading.Event()
    threading.Thread(target=interrupt_above, args=(rss() + 200, done), daemon=True).start()
    try:
        session.query("pg", "SELECT g, repeat('x', 200) AS t FROM generate_series(1, 20000000) g", limit=None)
    except KeyboardInterrupt as error:
        sys.last_type, sys.last_value, sys.last_traceback = type(error), error, error.__traceback__
    else:
        raise SystemExit("the query was not interrupted")
    done.set()
    growth.append(round(rss() - start))
print(json.dumps(growth))
"""


def test_an_interrupted_query_gives_its_memory_back(pg_server: PostgresServer) -> None:
    env = {
        **os.environ,
        "SOURCE_OPTIONS": json.dumps(source_options(pg_server)),
        "SOURCE_PASSWORD": pg_server.password,
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(INTERRUPTED_QUERIES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    growth = json.loads(done.stdout.strip().splitlines()[-1])
    # each interruption came at +200 MiB; before, each one kept about that much for good
    assert max(growth) < 80, growth


#: Run in a fresh interpreter: one large result (~75 MiB as a frame), dropped; prints the
#: RSS growth with the frame and 0.3 s after ``del`` of it, in MiB.
DROPPED_FRAME = """
import gc, json, os, time
from deepanalyze_jupyter import Session

def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

session = Session()
session.add("pg", "postgresql", secrets={"password": os.environ["SOURCE_PASSWORD"]},
            **json.loads(os.environ["SOURCE_OPTIONS"]))
session.query("pg", "SELECT 1 AS one")
start = rss()
frame = session.query("pg", "SELECT g, g / 2.0::float8 AS f, 'row ' || g AS t, now() AS at "
                      "FROM generate_series(1, 1500000) g", limit=None)
held = rss() - start
del frame
gc.collect()
time.sleep(0.3)
print(json.dumps([round(held), round(rss() - start)]))
"""


def test_a_dropped_large_frame_gives_its_memory_back(pg_server: PostgresServer) -> None:
    env = {
        **os.environ,
        "SOURCE_OPTIONS": json.dumps(source_options(pg_server)),
        "SOURCE_PASSWORD": pg_server.password,
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DROPPED_FRAME)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    held, kept = json.loads(done.stdout.strip().splitlines()[-1])
    assert held > 60, held  # the frame was there
    # before, the C library's heaps and Arrow's default pool kept about 40 MiB of it
    assert kept < 25, (held, kept)


#: Run in a fresh interpreter: one 1M-row result of mixed types; prints the peak RSS growth
#: while it is read and the size of its frame, in MiB.
PEAK_OF_A_LARGE_RESULT = """
import json, os
from deepanalyze_jupyter import Session

def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(field + ":")) / 1024

session = Session()
session.add("pg", "postgresql", secrets={"password": os.environ["SOURCE_PASSWORD"]},
            **json.loads(os.environ["SOURCE_OPTIONS"]))
session.query("pg", "SELECT 1 AS one")
start = status("VmRSS")
frame = session.query("pg", "SELECT g::int8 AS id, g * 0.37::float8 AS f8, "
                      "substr(md5(g::text), 1, 20) AS txt, "
                      "timestamptz '2024-01-01 00:00+00' + g * interval '1 second' AS ts, "
                      "(g % 100000 / 100.0)::numeric(12, 2) AS num, g % 2 = 0 AS flag, "
                      "CASE WHEN g % 3 = 0 THEN NULL ELSE g % 100000 END::int4 AS nint "
                      "FROM generate_series(1, 1000000) AS g", limit=None)
print(json.dumps([status("VmHWM") - start, frame.memory_usage(deep=True).sum() / 2**20]))
"""


def test_a_large_result_is_never_held_twice(pg_server: PostgresServer) -> None:
    """The raw rows, their Arrow columns and the frame are never all in memory at once."""
    env = {
        **os.environ,
        "SOURCE_OPTIONS": json.dumps(source_options(pg_server)),
        "SOURCE_PASSWORD": pg_server.password,
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PEAK_OF_A_LARGE_RESULT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak, frame = json.loads(done.stdout.strip().splitlines()[-1])
    assert frame > 60, frame  # the frame is as large as meant (about 74 MiB)
    # before, the raw COPY text, the parsed tables and the frame were held together: 2.4x
    assert peak < 1.6 * frame, (peak, frame)


def test_an_interrupt_while_the_frame_is_built_stops_the_build(
    pg: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    building, outcome = threading.Event(), []
    build = copy_query_module._columns_from_pieces

    def observed(*args: Any, **kwargs: Any) -> Any:
        building.set()
        try:
            return build(*args, **kwargs)
        except BaseException as error:
            outcome.append(error)
            raise

    monkeypatch.setattr(copy_query_module, "_columns_from_pieces", observed)
    # twelve columns loaded in Python, one after the other: seconds of work
    columns = ", ".join(f"('[' || g || ', {n}]')::jsonb AS j{n}" for n in range(12))
    sql = f"SELECT {columns} FROM generate_series(1, 200000) AS g"
    pg.run(_cancelled_when(building, pg.registry.query("pg", sql, limit=None)))
    # the cancelled query returned only once the build had stopped, before its end
    assert [type(error) for error in outcome] == [BuildCancelled]
    assert pg.query("pg", "SELECT 2 AS two")["two"].tolist() == [2]


async def _cancelled_when(event: threading.Event, work: Any) -> None:
    """Await ``work`` until ``event`` is set; then cancel it and wait for it to unwind."""
    task = asyncio.ensure_future(work)
    await asyncio.to_thread(event.wait, 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- dropped connections ----------------------------------------------------------------------------


def test_a_connection_killed_while_idle_is_replaced_unseen(pg: Session, pg_server: PostgresServer) -> None:
    pid = backend_pid(pg)
    assert admin(pg_server, "SELECT pg_terminate_backend(%s)", pid) == [(True,)]
    assert wait_until(lambda: not admin(pg_server, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid), 5)
    assert pg.query("pg", "SELECT 3 AS three")["three"].tolist() == [3]
    assert backend_pid(pg) != pid


def test_a_connection_dropped_during_a_query_is_a_clear_error_and_the_next_query_works(
    pg: Session, pg_server: PostgresServer
) -> None:
    application = application_name(pg, "pg")
    failures: list[BaseException] = []

    def run() -> None:
        try:
            pg.query("pg", "SELECT pg_sleep(20)")
        except DataSourceError as error:
            failures.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    assert wait_until(lambda: bool(running_queries(pg_server, application)), 5)
    ((pid, _),) = running_queries(pg_server, application)
    admin(pg_server, "SELECT pg_terminate_backend(%s)", pid)
    worker.join(10)
    assert not worker.is_alive()
    (failure,) = failures
    assert isinstance(failure, ConnectionFailed)
    assert str(failure).startswith("pg: the connection was lost during the query (")
    assert_clean(failure, pg_server.password)
    assert pg.query("pg", "SELECT 4 AS four")["four"].tolist() == [4]


# -- timeouts ----------------------------------------------------------------------------------------


def test_statement_timeouts_per_source_and_per_query(session: Session, pg_server: PostgresServer) -> None:
    session.add(
        "slow",
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, statement_timeout=0.4),
    )
    assert session.query("slow", "SHOW statement_timeout").iloc[0, 0] == "400ms"
    with pytest.raises(QueryError, match="canceling statement due to statement timeout"):
        session.query("slow", "SELECT pg_sleep(3)")
    with pytest.raises(QueryError, match="canceling statement due to statement timeout"):
        session.query("slow", "SELECT pg_sleep(0.3)", timeout=0.1)
    assert session.query("slow", "SELECT pg_sleep(0.2) AS slept", timeout=2).shape == (1, 1)
    # the per-query value does not stay behind
    assert session.query("slow", "SHOW statement_timeout").iloc[0, 0] == "400ms"


# -- read-only --------------------------------------------------------------------------------------


def test_a_read_only_source_refuses_writes_on_the_server(
    pg: Session, pg_server: PostgresServer, pg_schema: str
) -> None:
    with pytest.raises(QueryError, match=r"read-only transaction .*read_only=False"):
        pg.query("pg", f"CREATE TABLE {pg_schema}.nope (id int)")
    with pytest.raises(QueryError, match="several statements"):
        pg.query("pg", f"SET default_transaction_read_only = off; CREATE TABLE {pg_schema}.nope2 (id int)")
    with pytest.raises(QueryError, match="read-only transaction"):
        pg.query("pg", f"CREATE TABLE {pg_schema}.nope3 (id int)")


@pytest.mark.parametrize(
    "escape",
    [
        "SET default_transaction_read_only = off",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "BEGIN READ WRITE",
    ],
)
def test_a_statement_cannot_make_a_read_only_source_writable(
    pg: Session, pg_server: PostgresServer, pg_schema: str, escape: str
) -> None:
    with contextlib.suppress(QueryError):  # refused, or undone by the reset after it
        pg.query("pg", escape)
    with pytest.raises(QueryError, match="read-only transaction"):
        pg.query("pg", f"CREATE TABLE {pg_schema}.escaped (id int)")
    assert admin(pg_server, "SELECT to_regclass(%s)", f"{pg_schema}.escaped") == [(None,)]


def test_a_source_registered_for_writes_can_write(
    session: Session, pg_server: PostgresServer, pg_schema: str
) -> None:
    session.add(
        "rw",
        "postgresql",
        secrets={"password": pg_server.password},
        **source_options(pg_server, read_only=False),
    )
    session.query("rw", f"CREATE TABLE {pg_schema}.written (id int)")
    session.query("rw", f"INSERT INTO {pg_schema}.written VALUES (:a), (:b)", {"a": 1, "b": 2})
    assert admin(pg_server, f"SELECT count(*) FROM {pg_schema}.written") == [(2,)]
    assert "(read-write)" in session.test("rw")

"""PostgreSQL faults: backends killed while idle, the server stopped and crashed, a crowd of callers."""

from __future__ import annotations

import io
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from deepanalyze_jupyter import ConnectionFailed, Session
from tests.faults.conftest import connects_logged, wait_until
from tests.services import PostgresServer

pytestmark = pytest.mark.timeout(120)

CONNECT_TIMEOUT = 2
#: What a failed call may take beyond the connect timeout (a loaded 2-core machine).
SLACK = 2.0


def _backends(pg: PostgresServer, application: str) -> list[int]:
    with pg.admin_connection() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application]
        ).fetchall()
    return [pid for (pid,) in rows]


@pytest.fixture
def application() -> str:
    """An application name that tells this test's connections apart in pg_stat_activity."""
    return f"faults-{secrets.token_hex(4)}"


@pytest.fixture
def session(pg: PostgresServer, application: str) -> Iterator[Session]:
    """A session with source ``pg`` (a short connect timeout), already connected."""
    with Session() as made:
        made.add(
            "pg",
            "postgresql",
            host=pg.host,
            port=pg.port,
            dbname=pg.dbname,
            user=pg.user,
            connect_timeout=CONNECT_TIMEOUT,
            application_name=application,
            secrets={"password": pg.password},
        )
        yield made


def _answers(session: Session, source_id: str = "pg") -> bool:
    return list(session.query(source_id, "SELECT 42 AS answer")["answer"]) == [42]


def test_backends_killed_while_idle_are_replaced_unseen(
    session: Session, pg: PostgresServer, application: str, survived: Callable[[str], None]
) -> None:
    assert _answers(session)
    killed = _backends(pg, application)
    assert killed
    with pg.admin_connection() as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [killed])
    wait_until(lambda: not set(_backends(pg, application)) & set(killed), within=10)
    for _ in range(3):
        assert _answers(session)
    assert not set(_backends(pg, application)) & set(killed)
    for _ in killed:
        survived("PostgreSQL backend killed while idle (pg_terminate_backend)")


@pytest.mark.parametrize(("crash", "outage"), [(False, 20.0), (True, 0.0)], ids=["stopped", "crashed"])
def test_a_stopped_server_fails_fast_and_the_source_works_after_restart(
    session: Session,
    pg: PostgresServer,
    crash: bool,
    outage: float,
    survived: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``outage``: how long the server stays down, failing every call meanwhile; 20 s is long
    enough for the connection pool's default back-off to outlast the restart."""
    # As in a notebook: no logging configured, so warnings would go to stderr (here: printed).
    printed = io.StringIO()
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging, "lastResort", logging.StreamHandler(printed))
    assert _answers(session)
    before = session.registry.get_config("pg")
    try:
        pg.stop(crash=crash)
        stopped = time.monotonic()
        session.add(
            "fresh",
            "postgresql",
            test=False,
            host=pg.host,
            port=pg.port,
            user=pg.user,
            connect_timeout=CONNECT_TIMEOUT,
            secrets={"password": pg.password},
        )
        calls = 0
        while calls < 3 or time.monotonic() - stopped < outage:
            source_id = "fresh" if calls == 1 else "pg"
            start = time.monotonic()
            with pytest.raises(ConnectionFailed) as caught:
                session.query(source_id, "SELECT 1")
            assert time.monotonic() - start < CONNECT_TIMEOUT + SLACK
            message = str(caught.value)
            assert message.startswith(f"{source_id}: ")
            assert "\n" not in message
            assert f"{pg.host}:{pg.port}" in message
            calls += 1
        with pytest.raises(ConnectionFailed):
            session.test("pg")
    finally:
        pg.start()
    start = time.monotonic()
    assert _answers(session)
    assert time.monotonic() - start < CONNECT_TIMEOUT + SLACK
    assert _answers(session, "fresh")
    assert session.registry.source_ids == ["pg", "fresh"]
    assert session.registry.get_config("pg") == before
    assert printed.getvalue() == ""  # the pool's retries did not print into the notebook
    survived(f"PostgreSQL {'crashed' if crash else 'stopped'} and restarted")


def test_fifty_concurrent_callers_share_one_connect(
    pg: PostgresServer,
    application: str,
    caplog: pytest.LogCaptureFixture,
    survived: Callable[[str], None],
) -> None:
    caplog.set_level(logging.DEBUG, logger="deepanalyze_jupyter.registry")
    with Session() as session:
        session.add(
            "pg",
            "postgresql",
            test=False,
            host=pg.host,
            port=pg.port,
            dbname=pg.dbname,
            user=pg.user,
            application_name=application,
            secrets={"password": pg.password},
        )
        with ThreadPoolExecutor(max_workers=50) as callers:
            futures = [
                callers.submit(session.query, "pg", "SELECT :n AS n, pg_sleep(0.05)", {"n": n})
                for n in range(50)
            ]
            results = [future.result(timeout=60) for future in futures]
        assert [int(frame["n"].iloc[0]) for frame in results] == list(range(50))
        assert connects_logged(caplog, "pg") == 1
        pool_max_size = session.registry.get_config("pg").options["pool_max_size"]
        assert 1 <= len(_backends(pg, application)) <= pool_max_size
    survived("50 concurrent callers on one PostgreSQL source")


def test_the_source_list_reports_a_failing_server_without_probing_it(
    session: Session, pg: PostgresServer
) -> None:
    """``sources()`` tells what the last operation found: its error, and when one last worked."""
    assert _answers(session)
    listed = session.sources().set_index("id").loc["pg"]
    assert listed["status"] == "connected"
    worked = listed["last_success"]
    assert isinstance(worked, pd.Timestamp)
    assert worked.tzinfo is not None
    try:
        pg.stop()
        start = time.monotonic()
        assert session.sources().set_index("id").loc["pg", "status"] == "connected"  # nothing is probed
        assert time.monotonic() - start < 0.5
        with pytest.raises(ConnectionFailed) as caught:
            session.query("pg", "SELECT 1")
        listed = session.sources().set_index("id").loc["pg"]
        assert listed["status"] == f"error: {caught.value.message}"
        assert "\n" not in listed["status"]
        assert pg.password not in listed["status"]
        assert listed["last_success"] == worked
        assert session.registry.status("pg") == listed["status"]
    finally:
        pg.start()
    assert _answers(session)
    listed = session.sources().set_index("id").loc["pg"]
    assert listed["status"] == "connected"
    assert listed["last_success"] > worked

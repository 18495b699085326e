"""Faults injected on the real services, and a tally of those the package survived.

Every test that stops a service starts it again in ``finally`` (other tests share the
session's servers), and every wait is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import new_container, start_or_skip
from tests.services import AzuriteServer, PostgresServer, start_own_azurite, start_own_postgres

_TALLY_KEY = pytest.StashKey[dict[str, int]]()


@pytest.fixture(scope="session")
def survived(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record one fault that was injected and survived."""
    tally: dict[str, int] = request.config.stash.setdefault(_TALLY_KEY, {})

    def record(fault: str) -> None:
        tally[fault] = tally.get(fault, 0) + 1

    return record


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say which faults were injected and survived."""
    tally = config.stash.get(_TALLY_KEY, {})
    if tally:
        kinds = ", ".join(f"{fault} x{count}" for fault, count in tally.items())
        terminalreporter.write_line(
            f"fault suite: {sum(tally.values())} faults injected and survived: {kinds}"
        )


@pytest.fixture(scope="session")
def restartable_pg(pg_server: PostgresServer) -> Iterator[PostgresServer]:
    """The session's PostgreSQL server if the session started it, else a throwaway one of these
    tests' own: they stop and restart it, which they cannot do to DEEPANALYZE_TEST_PG_DSN's."""
    if not pg_server.external:
        yield pg_server
        return
    own = start_or_skip(start_own_postgres)
    yield own
    own.close()


@pytest.fixture(scope="session")
def restartable_azurite(azurite: AzuriteServer) -> Iterator[AzuriteServer]:
    """The session's Azurite if the session started it, else one of these tests' own (they
    stop and restart it, which they cannot do to DEEPANALYZE_TEST_AZURE_CONN's service)."""
    if not azurite.external:
        yield azurite
        return
    own = start_or_skip(start_own_azurite)
    yield own
    own.close()


@pytest.fixture
def pg(restartable_pg: PostgresServer) -> Iterator[PostgresServer]:
    """A PostgreSQL server the test may stop, running again after the test whatever it did."""
    try:
        yield restartable_pg
    finally:
        if not restartable_pg.is_running():
            restartable_pg.start()


@pytest.fixture
def blob_service(restartable_azurite: AzuriteServer) -> Iterator[AzuriteServer]:
    """An Azurite the test may stop, running again after the test whatever it did."""
    try:
        yield restartable_azurite
    finally:
        if not restartable_azurite.is_running():
            restartable_azurite.start()


@pytest.fixture
def blob_container(blob_service: AzuriteServer) -> Iterator[str]:
    """A new, empty blob container on :func:`blob_service`, deleted afterwards."""
    yield from new_container(blob_service)


def wait_until(condition: Callable[[], bool], *, within: float, step: float = 0.02) -> float:
    """Poll ``condition`` until it holds; return the seconds it took, or fail after ``within``."""
    start = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - start
        if elapsed > within:
            raise AssertionError(f"the condition did not hold within {within} s")
        time.sleep(step)
    return time.monotonic() - start


def connects_logged(caplog: pytest.LogCaptureFixture, source_id: str) -> int:
    """How many times the registry logged a connect of ``source_id`` (needs DEBUG captured)."""
    expected = f"connected data source {source_id!r}"
    return sum(1 for record in caplog.records if record.getMessage() == expected)

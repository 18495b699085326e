"""Faults injected on the real services, and a tally of those the package survived.

Every test that stops a service starts it again in ``finally`` (other tests share the
session's servers), and every wait is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.services import AzuriteServer, PostgresServer

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


@pytest.fixture
def pg(pg_server: PostgresServer) -> Iterator[PostgresServer]:
    """The session's PostgreSQL server, running again after the test whatever it did."""
    try:
        yield pg_server
    finally:
        if not pg_server.external and not pg_server.is_running():
            pg_server.start()


@pytest.fixture
def blob_service(azurite: AzuriteServer) -> Iterator[AzuriteServer]:
    """The session's Azurite, running again after the test whatever it did."""
    try:
        yield azurite
    finally:
        if not azurite.external and not azurite.is_running():
            azurite.start()


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

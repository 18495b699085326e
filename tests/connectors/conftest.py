"""Fixtures of the connector tests: a session with a PostgreSQL source on the test server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deepanalyze_jupyter import Session
from tests.connectors.postgresql.postgres import add_postgres
from tests.services import PostgresServer


@pytest.fixture
def session() -> Iterator[Session]:
    with Session() as opened:
        yield opened


@pytest.fixture
def pg(session: Session, pg_server: PostgresServer) -> Session:
    """A session with source ``pg``: read-only, session time zone Europe/Paris."""
    return add_postgres(session, pg_server, options="-c TimeZone=Europe/Paris")

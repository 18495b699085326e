"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from azure.storage.blob import BlobServiceClient
from psycopg import sql

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.saved import PROJECT_FILE_NAME
from deepanalyze_jupyter.saved import user_sources_file as user_file
from tests.services import (
    EXTERNAL_AZURE_CONN_ENV,
    AzuriteServer,
    PostgresServer,
    ServiceUnavailable,
    install_pinned_npm_packages,
    start_azurite,
    start_postgres,
)

_Service = TypeVar("_Service", PostgresServer, AzuriteServer)

# --- real services: PostgreSQL and Azurite -----------------------------------------------------
#
# Started on first use and stopped at the end of the session, so a run without integration tests
# starts nothing. Missing programs skip the tests that need them, or fail them when CI=true.

# Tests that use one of these fixtures, directly or through another fixture, get its markers.
SERVICE_MARKERS = {
    "pg_server": ("integration", "postgres"),
    "azurite": ("integration", "azurite"),
}


def pytest_configure(config: pytest.Config) -> None:
    """Saved sources of the test session go to a Jupyter config folder of its own: never the
    user's real one, and never read back by a later test (kernels started by tests inherit it)."""
    os.environ["JUPYTER_CONFIG_DIR"] = tempfile.mkdtemp(prefix="deepanalyze-jupyter-config-")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ.get("JUPYTER_CONFIG_DIR", ""), ignore_errors=True)


@pytest.fixture(autouse=True)
def no_saved_sources_outlive_a_test() -> Iterator[None]:
    """A test that saves sources (the fuzz suite types ``%datasource save`` too) leaves no
    sources file that a later ``%load_ext`` would load."""
    project_file = Path.cwd() / PROJECT_FILE_NAME
    had_project_file = project_file.exists()
    yield
    user_file().unlink(missing_ok=True)
    if not had_project_file:
        project_file.unlink(missing_ok=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixturenames = getattr(item, "fixturenames", ())
        for fixture, markers in SERVICE_MARKERS.items():
            if fixture in fixturenames:
                for marker in markers:
                    item.add_marker(marker)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Install the pinned Azurite before the first test that needs it, outside any test's timeout."""
    if os.environ.get(EXTERNAL_AZURE_CONN_ENV, "").strip():
        return
    if any("azurite" in getattr(item, "fixturenames", ()) for item in session.items):
        # When it cannot install, the azurite fixture says why (a failure under CI).
        with contextlib.suppress(ServiceUnavailable):
            install_pinned_npm_packages(say=session.config.get_terminal_writer().line)


def start_or_skip(start: Callable[[], _Service]) -> _Service:
    try:
        return start()
    except ServiceUnavailable as missing:
        reason = str(missing)
    # Outside the except block, so the report shows the reason without a chained traceback.
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (with CI=true a missing service is a failure)", pytrace=False)
    pytest.skip(reason)


def _ensure_running(server: PostgresServer | AzuriteServer) -> None:
    """Bring back a server that a failed restart test left stopped."""
    if not server.external and not server.is_running():
        server.start()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server; see tests/services/postgres.py."""
    server = start_or_skip(start_postgres)
    yield server
    server.close()


@pytest.fixture
def pg_schema(pg_server: PostgresServer) -> Iterator[str]:
    """A new, empty schema in the test database, dropped with its contents afterwards."""
    name = f"test_{uuid4().hex[:16]}"
    _ensure_running(pg_server)
    with pg_server.admin_connection() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    _ensure_running(pg_server)
    with pg_server.admin_connection() as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """The session's blob service (Azurite); see tests/services/azurite.py."""
    server = start_or_skip(start_azurite)
    yield server
    server.close()


@pytest.fixture
def blob_container(azurite: AzuriteServer) -> Iterator[str]:
    """A new, empty blob container, deleted with its blobs afterwards."""
    yield from new_container(azurite)


@contextlib.contextmanager
def blob_lake(azurite: AzuriteServer, container: str, **options: Any) -> Iterator[Session]:
    """A session whose source ``lake`` is ``container`` of ``azurite``, signed with its connection string."""
    with Session() as session:
        session.add(
            "lake",
            "azure_blob",
            container=container,
            secrets={"connection_string": azurite.connection_string},
            **options,
        )
        yield session


def new_container(azurite: AzuriteServer) -> Iterator[str]:
    """Make a new, empty blob container on ``azurite``, yield its name, then delete it."""
    name = f"test-{uuid4().hex[:20]}"
    _ensure_running(azurite)
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.create_container(name)
    yield name
    _ensure_running(azurite)
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.delete_container(name)


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C raises ``KeyboardInterrupt`` in the main thread during the test, as in a terminal,
    also when pytest was started with SIGINT ignored (a background job of a non-interactive
    shell), where neither ``os.kill`` nor ``_thread.interrupt_main`` would reach Python."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

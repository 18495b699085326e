"""Azure Blob faults: the service stopped and restarted, and a crowd of callers on one source."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.storage.blob import BlobServiceClient

from deepanalyze_jupyter import ConnectionFailed, Session
from tests.faults.conftest import connects_logged
from tests.services import AzuriteServer

pytestmark = pytest.mark.timeout(120)

CONNECT_TIMEOUT = 2.0
RETRIES = 1
#: The longest a call may take while the service is down: every try, its back-off, and slack.
BOUND = (CONNECT_TIMEOUT + 1.0) * (RETRIES + 1) + 2.0


@pytest.fixture
def filled_container(blob_service: AzuriteServer, blob_container: str) -> str:
    with BlobServiceClient.from_connection_string(blob_service.connection_string) as service:
        container = service.get_container_client(blob_container)
        container.upload_blob("a.csv", b"id\n1\n")
        container.upload_blob("b.csv", b"id\n2\n")
    return blob_container


@pytest.fixture
def session(blob_service: AzuriteServer, filled_container: str) -> Iterator[Session]:
    with Session() as made:
        made.add(
            "lake",
            "azure_blob",
            container=filled_container,
            connect_timeout=CONNECT_TIMEOUT,
            retries=RETRIES,
            secrets={"connection_string": blob_service.connection_string},
        )
        yield made


def _reads(session: Session) -> bool:
    return sorted(session.read("lake", "*.csv")["id"]) == [1, 2]


def test_a_stopped_service_fails_fast_and_the_source_works_after_restart(
    session: Session, blob_service: AzuriteServer, survived: Callable[[str], None]
) -> None:
    assert _reads(session)
    before = session.registry.get_config("lake")
    try:
        blob_service.stop()
        calls: list[Callable[[], object]] = [
            lambda: session.list_items("lake", refresh=True),
            lambda: session.read("lake", "a.csv"),
            lambda: session.describe("lake", "b.csv", refresh=True),
            lambda: session.test("lake"),
        ]
        for call in calls:
            start = time.monotonic()
            with pytest.raises(ConnectionFailed) as caught:
                call()
            assert time.monotonic() - start < BOUND
            message = str(caught.value)
            assert message.startswith("lake: cannot reach the blob service at ")
            assert "\n" not in message
            assert blob_service.account_key not in message
    finally:
        blob_service.start()
    assert _reads(session)
    assert len(session.list_items("lake", refresh=True)) == 2
    assert session.registry.get_config("lake") == before
    survived("Azurite stopped and restarted")


def test_fifty_concurrent_callers_share_one_connect(
    blob_service: AzuriteServer,
    filled_container: str,
    caplog: pytest.LogCaptureFixture,
    survived: Callable[[str], None],
) -> None:
    caplog.set_level(logging.DEBUG, logger="deepanalyze_jupyter.registry")
    with Session() as session:
        session.add(
            "lake",
            "azure_blob",
            test=False,
            container=filled_container,
            secrets={"connection_string": blob_service.connection_string},
        )
        with ThreadPoolExecutor(max_workers=50) as callers:
            futures = [callers.submit(session.read, "lake", "*.csv") for _ in range(50)]
            frames = [future.result(timeout=60) for future in futures]
        assert all(sorted(frame["id"]) == [1, 2] for frame in frames)
        assert connects_logged(caplog, "lake") == 1
    survived("50 concurrent callers on one Azure Blob source")

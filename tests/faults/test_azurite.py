"""Azure Blob faults: the service stopped and restarted, and a crowd of callers on one source."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.storage.blob import BlobServiceClient

from deepanalyze_jupyter import ConnectionFailed, Session
from tests.conftest import blob_lake
from tests.faults.conftest import connects_logged
from tests.faults.cutting_proxy import CuttingProxy
from tests.services import AzuriteServer

pytestmark = pytest.mark.timeout(120)

CONNECT_TIMEOUT = 2.0
RETRIES = 1
#: The longest a call may take while the service is down: every try, its back-off, and slack.
BOUND = (CONNECT_TIMEOUT + 1.0) * (RETRIES + 1) + 2.0


@pytest.fixture
def filled_container(blob_service: AzuriteServer, blob_container: str) -> str:
    blob_service.upload(blob_container, {"a.csv": b"id\n1\n", "b.csv": b"id\n2\n"})
    return blob_container


@pytest.fixture
def session(blob_service: AzuriteServer, filled_container: str) -> Iterator[Session]:
    with blob_lake(blob_service, filled_container, connect_timeout=CONNECT_TIMEOUT, retries=RETRIES) as made:
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


# -- connections that break mid-read ----------------------------------------------------------

BLOBS = 120
#: Bytes a connection carries before the proxy cuts it: inside the first blob's body.
CUT_AFTER = 20_000


def _csv(index: int, rows: int = 2_000) -> bytes:
    lines = "".join(f"{index * rows + n},{index}-{n:08d}-{'x' * 8}\n" for n in range(rows))
    return f"id,label\n{lines}".encode()


@pytest.fixture
def many_blobs(blob_service: AzuriteServer, blob_container: str) -> list[str]:
    """120 CSVs of about 50 KB each, ``f000.csv`` to ``f119.csv``."""
    names = [f"f{index:03d}.csv" for index in range(BLOBS)]
    with BlobServiceClient.from_connection_string(blob_service.connection_string) as service:
        container = service.get_container_client(blob_container)
        with ThreadPoolExecutor(max_workers=8) as uploads:
            list(uploads.map(lambda item: container.upload_blob(item[1], _csv(item[0])), enumerate(names)))
    return names


@pytest.fixture
def proxy(blob_service: AzuriteServer) -> Iterator[CuttingProxy]:
    endpoint = urlsplit(blob_service.blob_endpoint)
    with CuttingProxy(endpoint.hostname or "127.0.0.1", endpoint.port or 80) as made:
        yield made


def _through(proxy: CuttingProxy, service: AzuriteServer) -> str:
    """The connection string of ``service`` reached through ``proxy``."""
    path = urlsplit(service.blob_endpoint).path
    return AzuriteServer(
        blob_endpoint=f"http://127.0.0.1:{proxy.port}{path}",
        account_name=service.account_name,
        account_key=service.account_key,
    ).connection_string


def _expected_ids(count: int) -> list[int]:
    return list(range(count * 2_000))


async def _fetch(session: Session, source: str, path: str) -> bytes:
    connector: Any = await session.registry.get_connector(source)
    return bytes(await connector.fetch(path))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_connection_cut_mid_body_is_resumed_and_reads_what_the_sdk_reads(
    blob_service: AzuriteServer,
    blob_container: str,
    many_blobs: list[str],
    proxy: CuttingProxy,
    caplog: pytest.LogCaptureFixture,
    survived: Callable[[str], None],
) -> None:
    big = os.urandom(3 << 20)
    with BlobServiceClient.from_connection_string(blob_service.connection_string) as service:
        service.get_container_client(blob_container).upload_blob("big.bin", big)
    connection_string = _through(proxy, blob_service)
    caplog.set_level(logging.WARNING)
    with Session() as session:
        session.add(
            "lake",
            "azure_blob",
            container=blob_container,
            range_size_mb=1,
            connect_timeout=CONNECT_TIMEOUT,
            retries=RETRIES,
            secrets={"connection_string": connection_string},
        )
        proxy.arm(CUT_AFTER)
        frame = session.read("lake", many_blobs, limit=None)
        assert proxy.cuts == 1
        assert frame["id"].tolist() == _expected_ids(BLOBS)
        proxy.arm(CUT_AFTER)
        ours = session.run(_fetch(session, "lake", "big.bin"))
        assert proxy.cuts == 2
    # Nothing was logged where a notebook would print it: the drop was handled.
    assert _warnings(caplog) == []
    proxy.arm(CUT_AFTER)
    with BlobServiceClient.from_connection_string(connection_string) as sdk:
        theirs = sdk.get_blob_client(blob_container, "big.bin").download_blob().readall()
    assert proxy.cuts == 3
    assert ours == theirs == big
    survived("a connection cut mid-body while reading 120 blobs")


def test_a_connection_cut_on_every_try_fails_in_one_line_saying_so(
    blob_service: AzuriteServer,
    blob_container: str,
    proxy: CuttingProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with BlobServiceClient.from_connection_string(blob_service.connection_string) as service:
        service.get_container_client(blob_container).upload_blob("long.csv", _csv(0, rows=20_000))
    caplog.set_level(logging.WARNING)
    with Session() as session:
        session.add(
            "lake",
            "azure_blob",
            container=blob_container,
            retries=RETRIES,
            connect_timeout=CONNECT_TIMEOUT,
            secrets={"connection_string": _through(proxy, blob_service)},
        )
        proxy.arm(CUT_AFTER, times=1_000)
        start = time.monotonic()
        with pytest.raises(ConnectionFailed) as caught:
            session.read("lake", "long.csv")
        assert time.monotonic() - start < BOUND
    assert str(caught.value) == (
        f"lake: connection lost while reading 'long.csv' from container {blob_container!r}: "
        f"the connection to http://127.0.0.1:{proxy.port} broke {RETRIES + 1} times"
    )
    assert proxy.cuts == RETRIES + 1
    assert _warnings(caplog) == []


class _FirstBytes:
    """A progress factory that says when a read received its first bytes."""

    def __init__(self) -> None:
        self.arrived = threading.Event()

    def __call__(self, description: str, *, total_bytes: int | None, total_items: int | None) -> _FirstBytes:
        return self

    def update(self, nbytes: int = 0, items: int = 0) -> None:
        if nbytes:
            self.arrived.set()

    def close(self) -> None:
        pass


def test_a_service_stopped_mid_read_is_a_lost_connection_not_a_refusal(
    blob_service: AzuriteServer,
    blob_container: str,
    many_blobs: list[str],
    survived: Callable[[str], None],
) -> None:
    first_bytes = _FirstBytes()
    with Session(progress=first_bytes) as session, ThreadPoolExecutor(max_workers=1) as reader:
        session.add(
            "lake",
            "azure_blob",
            container=blob_container,
            max_concurrency=2,
            connect_timeout=CONNECT_TIMEOUT,
            retries=RETRIES,
            secrets={"connection_string": blob_service.connection_string},
        )
        reading = reader.submit(session.read, "lake", many_blobs)
        try:
            assert first_bytes.arrived.wait(timeout=30)
            blob_service.stop()
            with pytest.raises(ConnectionFailed) as caught:
                reading.result(timeout=BOUND + 15)
        finally:
            blob_service.start()
        message = str(caught.value)
        assert message.startswith("lake: connection lost while reading '")
        endpoint = urlsplit(blob_service.blob_endpoint)
        assert message.endswith(f"the blob service at http://{endpoint.netloc} stopped answering")
        assert "refused" not in message
        assert "\n" not in message
        assert session.read("lake", many_blobs[:2])["id"].tolist() == _expected_ids(2)
    survived("Azurite stopped in the middle of a 120-blob read")

"""A blob replaced while a query reads it in ranges: the query fails saying so, never mixes two versions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from deepanalyze_jupyter import QueryError, Session
from tests.services import AzuriteServer
from tests.sql.conftest import lake_connector_class

pytestmark = [pytest.mark.integration, pytest.mark.azurite]

ROWS = 200_000  # 1.6 MB: above the size fetched whole, so read in ranges


def _ids(first: int) -> bytes:
    return ("id\n" + "".join(f"{first + n}\n" for n in range(ROWS))).encode()


def _replaced_at_read(
    monkeypatch: pytest.MonkeyPatch, session: Session, replace: Callable[[], object], when: int
) -> None:
    """Have the connector's ranged read number ``when`` of the blob run ``replace`` first."""
    connector_class = lake_connector_class(session)
    read_range = connector_class.read_range
    reads = 0

    async def replacing(self: Any, path: str, start: int, end: int, **options: Any) -> bytes:
        nonlocal reads
        reads += 1
        if reads == when:
            await asyncio.to_thread(replace)
        return await read_range(self, path, start, end, **options)  # type: ignore[no-any-return]

    monkeypatch.setattr(connector_class, "read_range", replacing)


@pytest.mark.parametrize("path", ["ids.csv", "ids*.csv"])
def test_a_blob_replaced_between_ranged_reads_fails_the_query_in_one_line(
    path: str, monkeypatch: pytest.MonkeyPatch, session: Session, azurite: AzuriteServer, blob_container: str
) -> None:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        box = service.get_container_client(blob_container)
        box.upload_blob("ids.csv", _ids(1_000_000))
        session.add(
            "lake",
            "azure_blob",
            container=blob_container,
            secrets={"connection_string": azurite.connection_string},
        )
        sql = (
            "SELECT count(*) AS n, min(id) AS low, max(id) AS high FROM read_csv('"
            + path
            + "', buffer_size=262144)"
        )
        assert session.query("lake", sql).iloc[0].tolist() == [ROWS, 1_000_000, 1_000_000 + ROWS - 1]
        # Seven digits each, as before: the same size, other values: only the blob's version tells them apart.
        _replaced_at_read(
            monkeypatch, session, lambda: box.upload_blob("ids.csv", _ids(5_000_000), overwrite=True), 4
        )
        with pytest.raises(QueryError) as raised:
            session.query("lake", sql)
    message = str(raised.value)
    assert (
        message
        == f"lake: blob 'ids.csv' in container {blob_container!r} changed while it was read; read it again"
    )

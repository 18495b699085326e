"""The real services behind the integration tests: reachable, usable and restartable."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import psycopg
import pytest
from azure.core.exceptions import ServiceRequestError
from azure.storage.blob.aio import BlobServiceClient
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.services import AzuriteServer, PostgresServer
from tests.services.azurite import parse_connection_string

# --- PostgreSQL ---------------------------------------------------------------------------------


def test_postgres_accepts_the_password_login(pg_server: PostgresServer) -> None:
    with psycopg.connect(pg_server.dsn) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row == (pg_server.user, pg_server.dbname)


def test_postgres_uri_reaches_the_same_database(pg_server: PostgresServer) -> None:
    with psycopg.connect(pg_server.uri) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row == (pg_server.user, pg_server.dbname)


def test_postgres_serves_async_connections(pg_server: PostgresServer) -> None:
    async def query() -> tuple[int, str] | None:
        async with await psycopg.AsyncConnection.connect(pg_server.dsn) as conn:
            cursor = await conn.execute("SELECT 41 + 1, 'ok'::text")
            return await cursor.fetchone()

    assert asyncio.run(query()) == (42, "ok")


def test_postgres_rejects_a_wrong_password(pg_server: PostgresServer) -> None:
    if pg_server.external:
        pytest.skip("the external server's authentication rules are not ours")
    wrong = make_conninfo(pg_server.dsn, password="not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)


def test_postgres_preloads_pg_stat_statements(pg_server: PostgresServer) -> None:
    if pg_server.external:
        pytest.skip("the external server's configuration is not ours")
    with pg_server.admin_connection() as conn:
        conn.execute("SELECT 1")
        calls = conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
    assert calls is not None
    assert calls[0] > 0


def test_postgres_repr_hides_the_password(pg_server: PostgresServer) -> None:
    assert pg_server.password
    assert pg_server.password not in repr(pg_server)


def test_pg_schema_is_new_empty_and_writable(pg_server: PostgresServer, pg_schema: str) -> None:
    table = sql.Identifier(pg_schema, "numbers")
    with pg_server.admin_connection() as conn:
        tables_before = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", [pg_schema]
        ).fetchone()
        conn.execute(sql.SQL("CREATE TABLE {} (n int)").format(table))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1), (2)").format(table))
        total = conn.execute(sql.SQL("SELECT sum(n) FROM {}").format(table)).fetchone()
    assert tables_before == (0,)
    assert total == (3,)


def test_postgres_restart_keeps_data_and_port(pg_server: PostgresServer, pg_schema: str) -> None:
    table = sql.Identifier(pg_schema, "survivor")
    with pg_server.admin_connection() as conn:
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT 'kept'::text AS word").format(table))
    port = pg_server.port

    pg_server.stop()
    assert not pg_server.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(make_conninfo(pg_server.dsn, connect_timeout=3))

    pg_server.start()
    assert pg_server.is_running()
    assert pg_server.port == port
    with psycopg.connect(pg_server.dsn) as conn:
        row = conn.execute(sql.SQL("SELECT word FROM {}").format(table)).fetchone()
    assert row == ("kept",)


def test_postgres_comes_back_after_a_crash(pg_server: PostgresServer, pg_schema: str) -> None:
    table = sql.Identifier(pg_schema, "checkpointed")
    with pg_server.admin_connection() as conn:
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT 1 AS n").format(table))
        # Commits are asynchronous on the test server: only what is flushed survives a crash.
        conn.execute("CHECKPOINT")
        idle = pg_server.admin_connection()

    with idle:
        pg_server.stop(crash=True)
        assert not pg_server.is_running()
        with pytest.raises(psycopg.OperationalError):
            idle.execute("SELECT 1")

    pg_server.start()
    with pg_server.admin_connection() as conn:
        row = conn.execute(sql.SQL("SELECT n FROM {}").format(table)).fetchone()
    assert row == (1,)


# --- Azurite ------------------------------------------------------------------------------------


def test_azurite_connection_string_describes_the_account(azurite: AzuriteServer) -> None:
    parts = parse_connection_string(azurite.connection_string)
    assert parts["AccountName"] == azurite.account_name
    assert parts["AccountKey"] == azurite.account_key
    if not azurite.external:
        assert parts["BlobEndpoint"] == azurite.blob_endpoint
        assert azurite.blob_endpoint.startswith("http://127.0.0.1:")
        assert azurite.blob_endpoint.endswith("/devstoreaccount1")
    assert azurite.account_key not in repr(azurite)


def test_async_client_creates_and_deletes_a_container(azurite: AzuriteServer) -> None:
    name = f"test-{uuid4().hex[:20]}"

    async def scenario() -> tuple[list[str], bool]:
        async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            container = service.get_container_client(name)
            await container.create_container()
            listed = [item.name async for item in service.list_containers(name_starts_with=name)]
            await container.delete_container()
            return listed, await container.exists()

    listed, exists_after_delete = asyncio.run(scenario())
    assert listed == [name]
    assert exists_after_delete is False


def test_blob_round_trip_with_async_client(azurite: AzuriteServer, blob_container: str) -> None:
    payload = b"id,name\n1,alpha\n2,beta\n"

    async def scenario() -> tuple[bytes, list[str]]:
        async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            container = service.get_container_client(blob_container)
            await container.upload_blob("folder/data.csv", payload)
            stream = await container.download_blob("folder/data.csv")
            names = [blob.name async for blob in container.list_blobs(name_starts_with="folder/")]
            return await stream.readall(), names

    downloaded, names = asyncio.run(scenario())
    assert downloaded == payload
    assert names == ["folder/data.csv"]


def test_azurite_restart_keeps_blobs_and_endpoint(azurite: AzuriteServer, blob_container: str) -> None:
    async def upload() -> None:
        async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            await service.get_blob_client(blob_container, "kept.txt").upload_blob(b"kept")

    async def download() -> bytes:
        # No retries: a stopped service must fail at once.
        async with BlobServiceClient.from_connection_string(
            azurite.connection_string, retry_total=0
        ) as service:
            stream = await service.get_blob_client(blob_container, "kept.txt").download_blob()
            return await stream.readall()

    asyncio.run(upload())
    endpoint = azurite.blob_endpoint

    azurite.stop()
    assert not azurite.is_running()
    with pytest.raises(ServiceRequestError):
        asyncio.run(download())

    azurite.start()
    assert azurite.is_running()
    assert azurite.blob_endpoint == endpoint
    assert asyncio.run(download()) == b"kept"


# --- both ---------------------------------------------------------------------------------------


def test_service_fixtures_mark_their_tests(
    request: pytest.FixtureRequest, pg_schema: str, blob_container: str
) -> None:
    applied = {marker.name for marker in request.node.iter_markers()}
    assert {"integration", "postgres", "azurite"} <= applied

"""Every subcommand and ``%%dsquery`` form against the real PostgreSQL and Azurite."""

from __future__ import annotations

import getpass
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas
from IPython.core.interactiveshell import InteractiveShell
from psycopg import sql

from deepanalyze_jupyter.session import Session
from tests.services import AzuriteServer, PostgresServer

from .conftest import run, usage_error
from .test_history import history_copies

BLOBS = {
    "2024/jan.csv": b"id,amount,region\n1,10,EU\n2,20,US\n",
    "2024/feb.csv": b"id,amount,region\n3,30,EU\n",
    "2025/mar.csv": b"id,amount,region\n4,40,APAC\n",
    "readme.txt": b"not a table",
}


@pytest.fixture
def warehouse(
    shell: InteractiveShell, pg_server: PostgresServer, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A PostgreSQL source ``warehouse`` whose schema holds an ``orders`` table."""
    with pg_server.admin_connection() as connection:
        connection.execute(
            sql.SQL(
                "CREATE TABLE {}.orders (id integer PRIMARY KEY, region text NOT NULL, day date, note text)"
            ).format(sql.Identifier(pg_schema))
        )
        connection.execute(
            sql.SQL(
                "INSERT INTO {}.orders VALUES (1, 'EU', '2024-01-05', 'a:b'), (2, 'US', '2024-02-01', NULL),"
                " (3, 'EU', '2024-03-01', 'it''s'), (4, 'APAC', '2023-12-31', 'x')"
            ).format(sql.Identifier(pg_schema))
        )
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    line = (
        f"%datasource add warehouse --type postgresql --host {pg_server.host} --port {pg_server.port} "
        f"--dbname {pg_server.dbname} --user {pg_server.user} --password-env PGPASSWORD "
        f"--options '-c search_path={pg_schema}'"
    )
    ran = run(shell, line)
    assert ran.error is None, ran.text
    return pg_schema


@pytest.fixture
def lake(
    shell: InteractiveShell, azurite: AzuriteServer, blob_container: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """An Azure Blob source ``lake`` over a container holding :data:`BLOBS`."""
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.get_container_client(blob_container)
        for name, data in BLOBS.items():
            container.upload_blob(name, data)
    monkeypatch.setenv("AZURE_KEY", azurite.account_key)
    line = (
        f"%datasource add lake --type azure_blob --account-url {azurite.blob_endpoint} "
        f"--container {blob_container} --account-key-env AZURE_KEY"
    )
    ran = run(shell, line)
    assert ran.error is None, ran.text
    return blob_container


def test_postgresql_subcommands(shell: InteractiveShell, session: Session, warehouse: str) -> None:
    listing = run(shell, "%datasource list").result
    assert listing.loc[0, "id"] == "warehouse"
    assert listing.loc[0, "status"] == "connected"
    info = run(shell, "%datasource info warehouse").result
    fields = dict(zip(info["field"], info["value"], strict=True))
    assert fields["secret password"] == "********"
    assert run(shell, "%datasource test warehouse").out.startswith("warehouse: OK: ")
    tables = run(shell, f"%datasource tables warehouse {warehouse}").result
    assert "orders" in set(tables["name"])
    assert "orders" in set(run(shell, "%datasource tables warehouse").result["name"])
    columns = run(shell, f"%datasource columns warehouse {warehouse}.orders").result
    assert columns["name"].tolist()[:4] == ["id", "region", "day", "note"]
    schemas = run(shell, "%datasource ls warehouse").result
    assert {"public", warehouse} <= set(schemas["name"])
    assert set(schemas["kind"]) == {"schema"}
    assert run(shell, "%datasource cache clear warehouse").out.startswith("Cleared ")
    assert run(shell, "%datasource update warehouse --statement-timeout 30").error is None
    assert session.registry.get_config("warehouse").options["statement_timeout"] == 30.0
    assert run(shell, "%datasource remove warehouse").out.strip() == "Removed data source 'warehouse'."
    assert session.registry.source_ids == []


def test_postgresql_queries_bind_parameters(shell: InteractiveShell, warehouse: str) -> None:
    run(shell, "import datetime\nregion = 'EU'\nsince = datetime.date(2024, 1, 1)")
    ran = run(
        shell,
        "%%dsquery warehouse -o orders --limit 50000\n"
        "SELECT id, day::text AS day_text, 'x::y' AS colons FROM orders\n"
        "WHERE region = :region AND day >= :since ORDER BY id",
    )
    assert ran.error is None, ran.text
    assert ran.result["id"].tolist() == [1, 3]
    assert ran.result["colons"].tolist() == ["x::y", "x::y"]
    assert shell.user_ns["orders"] is ran.result
    assert shell.user_ns["_"] is ran.result
    line = run(shell, "%dsquery warehouse SELECT count(*) AS n FROM orders WHERE region = :region")
    assert line.result["n"].tolist() == [2]
    exact = run(shell, "%%dsquery warehouse\nSELECT 1.25::numeric(6,2) AS amount")
    assert exact.result["amount"].dtype != "float64"
    floats = run(shell, "%%dsquery warehouse --numeric-as-float\nSELECT 1.25::numeric(6,2) AS amount")
    assert floats.result["amount"].dtype == "float64"
    assert floats.result["amount"].tolist() == [1.25]


@pytest.mark.parametrize(
    "value",
    [
        "EU'; DROP TABLE orders; --",
        "EU' OR '1'='1",
        'EU"; SELECT pg_sleep(5); --',
        "'; DROP TABLE orders; SELECT '",
        "EU\\'; DELETE FROM orders; --",
    ],
)
def test_postgresql_hostile_values_stay_values_and_change_nothing(
    shell: InteractiveShell, pg_server: PostgresServer, warehouse: str, value: str
) -> None:
    shell.user_ns["region"] = value
    ran = run(shell, "%%dsquery warehouse\nSELECT id, :region AS echoed FROM orders WHERE region = :region")
    assert ran.error is None, ran.text
    assert ran.result.empty
    echoed = run(shell, "%dsquery warehouse SELECT :region AS echoed")
    assert echoed.result.loc[0, "echoed"] == value
    with pg_server.admin_connection() as connection:
        count = connection.execute(
            sql.SQL("SELECT count(*) FROM {}.orders").format(sql.Identifier(warehouse))
        )
        assert count.fetchone() == (4,)


def test_postgresql_limits_and_errors(shell: InteractiveShell, warehouse: str) -> None:
    ran = run(shell, "%%dsquery warehouse --limit 2\nSELECT * FROM orders ORDER BY id")
    assert len(ran.result) == 2
    assert (
        "Showing the first 2 rows; the result was cut at --limit 2. Use --no-limit to fetch all." in ran.out
    )
    assert len(run(shell, "%%dsquery warehouse --no-limit\nSELECT * FROM orders").result) == 4
    message = usage_error(shell, "%%dsquery warehouse\nSELECT * FROM no_such_table")
    assert message.startswith("warehouse: ")
    assert "no_such_table" in message
    assert "no variable 'nowhere'" in usage_error(shell, "%%dsquery warehouse\nSELECT :nowhere")
    started = time.monotonic()
    timed_out = usage_error(shell, "%%dsquery warehouse --timeout 0.5\nSELECT pg_sleep(5)")
    assert time.monotonic() - started < 3  # stopped by the timeout, not after the 5 s sleep
    assert timed_out.startswith("warehouse: ")
    assert "timeout" in timed_out
    assert run(shell, "%dsquery warehouse SELECT 1 AS one").result["one"].tolist() == [1]


def test_postgresql_wrong_password_and_bad_port(
    shell: InteractiveShell, session: Session, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    base = f"%datasource add pg --type postgresql --host {pg_server.host} --dbname {pg_server.dbname} "
    base += f"--user {pg_server.user}"
    message = usage_error(shell, f"{base} --port {pg_server.port} --password-env WRONG_PW")
    assert message.startswith("pg: ")
    assert "not-the-password" not in message
    assert usage_error(shell, f"{base} --port seventy --password-env WRONG_PW").startswith(
        "pg: option --port"
    )
    assert session.registry.source_ids == []


def test_postgresql_literal_password_is_refused_and_scrubbed(
    shell: InteractiveShell, session: Session, pg_server: PostgresServer, history_file: Path
) -> None:
    for line in (
        f"%datasource add pg --type postgresql --host {pg_server.host} --password {pg_server.password}",
        f"%datasource add pg --type postgresql --dsn 'postgresql://{pg_server.user}:{pg_server.password}@db/x'",
    ):
        message = usage_error(shell, line)
        assert "refused" in message
        assert pg_server.password not in message
    run(shell, "after = 1")
    assert session.registry.source_ids == []
    assert not [copy for copy in history_copies(shell, history_file) if pg_server.password in copy]


def test_azure_blob_subcommands(shell: InteractiveShell, session: Session, lake: str) -> None:
    top = run(shell, "%datasource ls lake").result
    assert {"2024/", "2025/", "readme.txt"} <= set(top["name"])
    folder = run(shell, "%datasource ls lake 2024/").result
    assert set(folder["name"]) == {"2024/jan.csv", "2024/feb.csv"}
    flat = run(shell, "%datasource ls lake --recursive").result
    assert set(flat["name"]) == set(BLOBS)
    frame = run(shell, "%datasource read lake '2024/*.csv' --source-column blob -o jan_feb").result
    assert sorted(frame["amount"].tolist()) == [10, 20, 30]
    assert set(frame["blob"]) == {"2024/jan.csv", "2024/feb.csv"}
    assert shell.user_ns["jan_feb"] is frame
    assert run(shell, "%datasource test lake").out.startswith("lake: OK: ")
    info = run(shell, "%datasource info lake").result
    assert dict(zip(info["field"], info["value"], strict=True))["secret account_key"] == "********"
    assert usage_error(shell, "%datasource tables lake") == (
        "lake: a file source has no tables; list it with %datasource ls lake"
    )
    assert "lake: " in usage_error(shell, "%datasource read lake missing/nothing.csv")
    assert run(shell, "%datasource update lake --max-concurrency 2").error is None
    assert session.registry.get_config("lake").options["max_concurrency"] == 2
    assert run(shell, "%datasource cache clear").out.startswith("Cleared ")
    assert run(shell, "%datasource remove lake").out.strip() == "Removed data source 'lake'."
    assert session.registry.source_ids == []


def test_azure_blob_dsquery_reads_paths(shell: InteractiveShell, lake: str) -> None:
    ran = run(shell, "%%dsquery lake -o everything\n2024/*.csv\n2025/mar.csv\n")
    assert ran.error is None, ran.text
    assert sorted(ran.result["id"].tolist()) == [1, 2, 3, 4]
    assert shell.user_ns["everything"] is ran.result
    limited = run(shell, "%%dsquery lake --limit 1\n2024/*.csv")
    assert len(limited.result) == 1
    assert "cut at --limit 1" in limited.out
    assert run(shell, "%dsquery lake 2025/mar.csv").result["region"].tolist() == ["APAC"]


def test_azure_blob_sas_token_from_a_hidden_prompt(
    shell: InteractiveShell, azurite: AzuriteServer, blob_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.get_container_client(blob_container).upload_blob("one.csv", b"a\n1\n")
    sas = generate_container_sas(
        azurite.account_name,
        blob_container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    monkeypatch.setattr(getpass, "getpass", lambda prompt="", stream=None: sas)
    line = (
        f"%datasource add lake --type azure_blob --account-url {azurite.blob_endpoint} "
        f"--container {blob_container} --prompt sas_token"
    )
    assert run(shell, line).error is None
    assert run(shell, "%dsquery lake one.csv").result["a"].tolist() == [1]
    assert sas not in "".join(shell.user_ns["In"])


def test_azure_literal_secrets_are_refused_and_scrubbed(
    shell: InteractiveShell, session: Session, azurite: AzuriteServer, history_file: Path
) -> None:
    for line in (
        f"%datasource add lake --type azure_blob --connection-string '{azurite.connection_string}'",
        f"%datasource add lake --type azure_blob --account-url {azurite.blob_endpoint} "
        f"--account-key {azurite.account_key}",
        f"%datasource add lake --type azure_blob --account-url '{azurite.blob_endpoint}/c?sv=1&sig=abcdefgh'",
    ):
        message = usage_error(shell, line)
        assert "refused" in message
        assert azurite.account_key not in message
    run(shell, "after = 1")
    assert session.registry.source_ids == []
    assert not [copy for copy in history_copies(shell, history_file) if azurite.account_key in copy]
    assert not [copy for copy in history_copies(shell, history_file) if "sig=abcdefgh" in copy]

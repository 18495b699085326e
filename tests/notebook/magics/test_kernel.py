"""The magics in a real Jupyter kernel (jupyter_client), against PostgreSQL and Azurite."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from psycopg import sql

from tests.services import AzuriteServer, PostgresServer

pytestmark = pytest.mark.kernel

LITERAL_SECRET = "kernel-Literal-Secret-5150"
TIMEOUT = 120


@dataclass
class Cell:
    """What the kernel sent for one executed cell."""

    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    asked: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [message["content"] for message in self.messages if message["header"]["msg_type"] == msg_type]

    @property
    def stdout(self) -> str:
        return "".join(content["text"] for content in self.of_type("stream") if content["name"] == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(content["text"] for content in self.of_type("stream") if content["name"] == "stderr")

    @property
    def result(self) -> dict[str, Any]:
        results = self.of_type("execute_result")
        assert len(results) == 1, (self.messages, self.reply)
        data: dict[str, Any] = results[0]["data"]
        return data

    @property
    def everything(self) -> str:
        return json.dumps([self.reply, *(message["content"] for message in self.messages)])


class Kernel:
    """A started kernel and a client that runs cells on it."""

    def __init__(self, client: BlockingKernelClient) -> None:
        self.client = client

    def run(self, code: str, *, answer: str | None = None) -> Cell:
        cell = Cell(reply={})

        def stdin_hook(message: dict[str, Any]) -> None:
            cell.asked.append(message["content"])
            self.client.input(answer or "")

        reply = self.client.execute_interactive(
            code,
            output_hook=cell.messages.append,
            stdin_hook=stdin_hook,
            allow_stdin=True,
            timeout=TIMEOUT,
        )
        cell.reply = reply["content"]
        return cell

    def ok(self, code: str, *, answer: str | None = None) -> Cell:
        cell = self.run(code, answer=answer)
        assert cell.reply["status"] == "ok", (code, cell.stderr, cell.reply)
        assert "Traceback" not in cell.stderr
        return cell

    def usage_error(self, code: str) -> str:
        cell = self.run(code)
        assert cell.reply["status"] == "error", (code, cell.reply)
        assert cell.reply["ename"] == "UsageError", cell.reply
        lines = cell.stderr.strip().splitlines()
        assert len(lines) == 1, cell.stderr
        assert lines[0].startswith("UsageError: ")
        assert not cell.of_type("error")  # no traceback message either
        return lines[0].removeprefix("UsageError: ")


@pytest.fixture
def kernel(tmp_path: Path, pg_server: PostgresServer, azurite: AzuriteServer) -> Iterator[Kernel]:
    environment = {
        **os.environ,
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "PGPASSWORD": pg_server.password,
        "AZURE_KEY": azurite.account_key,
    }
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=environment, cwd=str(tmp_path))
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        yield Kernel(client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.fixture
def data(pg_server: PostgresServer, pg_schema: str, azurite: AzuriteServer, blob_container: str) -> str:
    """An ``orders`` table in a fresh schema and two CSV blobs; returns a read-only SAS."""
    with pg_server.admin_connection() as connection:
        table = sql.Identifier(pg_schema, "orders")
        connection.execute(sql.SQL("CREATE TABLE {} (id integer, region text, day date)").format(table))
        connection.execute(
            sql.SQL(
                "INSERT INTO {} VALUES (1, 'EU', '2024-02-01'), (2, 'EU', '2023-06-01'),"
                " (3, 'US', '2024-03-01')"
            ).format(table)
        )
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.get_container_client(blob_container)
        container.upload_blob("2024/jan.csv", b"id,amount\n1,10\n")
        container.upload_blob("2024/feb.csv", b"id,amount\n2,20\n")
    return generate_container_sas(
        azurite.account_name,
        blob_container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


def test_the_magics_in_a_kernel(
    kernel: Kernel,
    data: str,
    pg_server: PostgresServer,
    pg_schema: str,
    azurite: AzuriteServer,
    blob_container: str,
    tmp_path: Path,
) -> None:
    sas = data
    cells: list[Cell] = [kernel.ok("%load_ext deepanalyze_jupyter")]
    cells.append(
        kernel.ok(
            f"%datasource add warehouse --type postgresql --host {pg_server.host} --port {pg_server.port} "
            f"--dbname {pg_server.dbname} --user {pg_server.user} --password-env PGPASSWORD "
            f"--options '-c search_path={pg_schema}'"
        )
    )
    added = kernel.ok(
        f"%datasource add lake --type azure_blob --account-url {azurite.blob_endpoint} "
        f"--container {blob_container} --prompt sas_token",
        answer=sas,
    )
    assert [(asked["prompt"], asked["password"]) for asked in added.asked] == [("SAS token for lake: ", True)]
    assert added.stdout.strip() == "Added data source 'lake' (azure_blob): connected."
    cells.append(added)

    listing = kernel.ok("%datasource list")
    assert "warehouse" in listing.result["text/html"]
    assert "lake" in listing.result["text/plain"]
    items = kernel.ok("%datasource ls lake 2024/")
    assert "2024/jan.csv" in items.result["text/plain"]
    tables = kernel.ok("%datasource tables warehouse")
    assert "orders" in tables.result["text/plain"]
    cells += [listing, items, tables]

    kernel.ok('import datetime\nregion = "EU\'; DROP TABLE orders; --"')
    assert (
        "Empty DataFrame"
        in kernel.ok("%%dsquery warehouse\nSELECT * FROM orders WHERE region = :region").result["text/plain"]
    )
    kernel.ok("region = 'EU'\nsince = datetime.date(2024, 1, 1)")
    query = kernel.ok(
        "%%dsquery warehouse -o orders --limit 50000\n"
        "SELECT id, day::text AS day FROM orders WHERE region = :region AND day >= :since"
    )
    assert "text/html" in query.result
    assert kernel.ok("list(orders['id']), _ is orders").result["text/plain"] == "([1], True)"
    limited = kernel.ok("%%dsquery warehouse --limit 1\nSELECT * FROM orders")
    assert "cut at --limit 1" in limited.stdout
    files = kernel.ok("%%dsquery lake -o sales\n2024/*.csv")
    assert kernel.ok("sorted(sales['amount'])").result["text/plain"] == "[10, 20]"
    cells += [query, limited, files]

    missing = kernel.usage_error("%%dsquery warehouse\nSELECT :nowhere_defined")
    assert (
        missing == "warehouse: the query uses :nowhere_defined, but no variable 'nowhere_defined' is defined"
    )

    refused = kernel.usage_error(
        f"%datasource add leaky --type postgresql --host {pg_server.host} --password {LITERAL_SECRET}"
    )
    assert "refused the literal secret given to --password" in refused
    # The secret is spelled in two pieces, so that this cell's own text does not hold it.
    check = "secret = 'kernel-Literal-' + 'Secret-5150'\n"
    check += "print(any(secret in text for text in In + _ih), 'leaky' in _i)"
    cells.append(kernel.ok(check))
    assert cells[-1].stdout.strip() == "False True"
    kernel.ok("get_ipython().history_manager.writeout_cache()")
    history = tmp_path / "ipython" / "profile_default" / "history.sqlite"
    with closing(sqlite3.connect(history)) as connection, connection:
        rows = connection.execute("SELECT source, source_raw FROM history").fetchall()
    connection.close()
    assert any("--password ********" in raw for _, raw in rows)
    assert not [row for row in rows if LITERAL_SECRET in "".join(row)]

    completion = kernel.client.complete("%datasource ls wa")
    answer = kernel.client.get_shell_msg(timeout=TIMEOUT)
    assert answer["parent_header"]["msg_id"] == completion  # the reply to this request
    reply = answer["content"]
    assert reply["status"] == "ok"
    assert "warehouse" in reply["matches"]
    assert reply["cursor_end"] == len("%datasource ls wa")

    for cell in cells:
        for secret in (pg_server.password, azurite.account_key, sas, LITERAL_SECRET):
            assert secret not in cell.everything

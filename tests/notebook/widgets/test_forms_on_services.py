"""The forms against the real PostgreSQL and Azurite of the test session."""

from __future__ import annotations

import json
from typing import Any

import ipywidgets as widgets
import pytest
from azure.storage.blob import BlobServiceClient
from psycopg import sql

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.notebook.widgets import AddSourceForm, BrowseForm
from tests.services import AzuriteServer, PostgresServer

ODD_TABLE = 'Odd "name"'


def postgres_form(session: Session, server: PostgresServer, password: str) -> AddSourceForm:
    form = AddSourceForm(session)
    form.type_select.value = "postgresql"
    form.id_field.value = "warehouse"
    controls = form.fields.controls
    controls["host"].value = server.host
    controls["port"].value = str(server.port)
    controls["dbname"].value = server.dbname
    controls["user"].value = server.user
    controls["password"].value = password
    return form


def widget_state() -> str:
    return json.dumps(widgets.Widget.get_manager_state(drop_defaults=False))


def choose(form: BrowseForm, label: str) -> None:
    form.item_select.value = dict(form.item_select.options)[label]


def test_postgres_wrong_password_then_right(session: Session, pg_server: PostgresServer) -> None:
    form = postgres_form(session, pg_server, "wrong-password-6631")
    form.add_button.click()
    assert form.status.outcome == "error"
    assert form.status.message.startswith("warehouse: ")
    assert "password authentication failed" in form.status.message
    assert "wrong-password-6631" not in form.status.message
    assert not session.registry.exists("warehouse")
    assert form.fields.controls["password"].value == ""

    form.fields.controls["password"].value = pg_server.password
    form.add_button.click()
    assert form.status.outcome == "success", form.status.message
    assert session.registry.get_config("warehouse").options["port"] == pg_server.port
    assert form.fields.controls["password"].value == ""
    assert pg_server.password not in widget_state()
    assert session.query("warehouse", "SELECT 1 AS one")["one"].tolist() == [1]


def test_postgres_test_button_registers_nothing(session: Session, pg_server: PostgresServer) -> None:
    form = postgres_form(session, pg_server, pg_server.password)
    form.test_button.click()
    assert form.status.outcome == "success", form.status.message
    assert form.status.message.startswith("Connection works: ")
    assert len(session.registry) == 0


def test_browse_postgres_schema_preview_and_load(
    session: Session, pg_server: PostgresServer, pg_schema: str
) -> None:
    with pg_server.admin_connection() as connection:
        table = sql.Identifier(pg_schema, ODD_TABLE)
        connection.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, label text)").format(table))
        connection.execute(
            sql.SQL("INSERT INTO {} SELECT n, 'row ' || n FROM generate_series(1, 25) AS n").format(table)
        )
    session.add(
        "warehouse",
        "postgresql",
        host=pg_server.host,
        port=pg_server.port,
        dbname=pg_server.dbname,
        user=pg_server.user,
        secrets={"password": pg_server.password},
    )
    namespace: dict[str, Any] = {}
    form = BrowseForm(session, namespace, "warehouse")
    choose(form, f"{pg_schema}/")
    assert [label for label, _ in form.item_select.options] == ["..", f"{ODD_TABLE} (table)"]
    choose(form, f"{ODD_TABLE} (table)")
    assert form.status.outcome == "success", form.status.message
    assert "First 20 row(s)" in form.status.message
    assert form.variable_field.value == "odd_name"
    form.load_button.click()
    assert form.status.outcome == "success", form.status.message
    assert namespace["odd_name"]["id"].tolist() == list(range(1, 26))


@pytest.mark.parametrize("auth", ["connection_string", "account_key"])
def test_azure_form_adds_and_browse_reads(
    session: Session, azurite: AzuriteServer, blob_container: str, auth: str
) -> None:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.get_blob_client(blob_container, "sales/2024/q1.csv").upload_blob(
            b"region,amount\nEU,10\nUS,20\n"
        )
    form = AddSourceForm(session)
    form.type_select.value = "azure_blob"
    form.id_field.value = "lake"
    controls = form.fields.controls
    controls["auth"].value = auth
    if auth == "connection_string":
        controls["connection_string"].value = azurite.connection_string
        secret = azurite.connection_string
    else:
        controls["account_url"].value = azurite.blob_endpoint
        controls["account_key"].value = azurite.account_key
        secret = azurite.account_key
    controls["container"].value = blob_container
    form.add_button.click()
    assert form.status.outcome == "success", form.status.message
    assert all(control.value == "" for control in form.secret_controls)
    assert secret not in widget_state()

    namespace: dict[str, Any] = {}
    browse = BrowseForm(session, namespace, "lake")
    assert [label for label, _ in browse.item_select.options] == ["sales/"]
    choose(browse, "sales/")
    choose(browse, "2024/")
    choose(browse, "q1.csv")
    assert browse.status.message == "First 2 row(s) of sales/2024/q1.csv"
    browse.load_button.click()
    assert namespace["q1"]["amount"].tolist() == [10, 20]

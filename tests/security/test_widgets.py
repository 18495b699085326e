"""The widget forms with canary secrets typed in: status lines, previews, widget state, reprs.

Jupyter saves the state of every widget into the notebook file, so after every flow the
state of every live widget is searched too, as the file would hold it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import ipywidgets as widgets
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.notebook.widgets import AddSourceForm, BrowseForm
from tests.security.conftest import Planted


@pytest.fixture
def session() -> Iterator[Session]:
    with Session() as made:
        yield made


@pytest.fixture(autouse=True)
def _close_widgets() -> Iterator[None]:
    """Close every widget afterwards, so that the next test's widget state is its own."""
    yield
    widgets.Widget.close_all()


def _fill(form: AddSourceForm, source_type: str, source_id: str, values: dict[str, Any]) -> None:
    form.type_select.value = source_type
    form.id_field.value = source_id
    fields = form.fields
    assert fields is not None
    for name, value in values.items():
        fields.controls[name].value = value


def _pg(planted: Planted, password: str) -> dict[str, Any]:
    return {
        "host": planted.host,
        "port": str(planted.port),
        "dbname": planted.dbname,
        "user": planted.role,
        "password": password,
    }


def _flows(planted: Planted) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(type, id, field values, whether Add must work) for every placement a form can take."""
    lake = {"auth": "sas_token", "account_url": planted.blob_endpoint, "container": planted.container}
    return [
        ("postgresql", "pg", _pg(planted, planted.password), True),
        ("postgresql", "pg_dsn", {"dsn": planted.dsn}, True),
        ("postgresql", "pg_uri", {"dsn": planted.uri}, True),
        ("postgresql", "pg_wrong", _pg(planted, planted.wrong_password), False),
        ("postgresql", "pg_far", {"dsn": planted.unreachable_dsn}, False),
        ("azure_blob", "lake", {**lake, "sas_token": planted.sas_token}, True),
        ("azure_blob", "lake_url", {"auth": "sas_token", "account_url": planted.sas_url}, True),
        (
            "azure_blob",
            "lake_cs",
            {
                "auth": "connection_string",
                "connection_string": planted.sas_connection_string,
                "container": planted.container,
            },
            True,
        ),
        ("azure_blob", "lake_tampered", {**lake, "sas_token": planted.tampered_sas}, False),
        (
            "azure_blob",
            "lake_key",
            {"auth": "account_key", "account_url": planted.blob_endpoint, "account_key": planted.account_key},
            False,
        ),
        (
            "azure_blob",
            "lake_cs_key",
            {
                "auth": "connection_string",
                "connection_string": planted.key_connection_string,
                "container": planted.container,
            },
            False,
        ),
    ]


def _saved_state() -> str:
    """What Jupyter writes into the notebook: the state of every live widget."""
    return json.dumps(widgets.Widget.get_manager_state(drop_defaults=False))


def test_add_form_flows_keep_every_canary_out(session: Session, planted: Planted) -> None:
    book = planted.book
    for source_type, source_id, values, works in _flows(planted):
        form = AddSourceForm(session)
        _fill(form, source_type, source_id, values)
        assert form.test() is works, (source_id, form.status.message)
        book.check("add form: Test connection", form.status.message, form.status.value)
        if not works:  # a failed Test empties the secret fields: type them again
            _fill(form, source_type, source_id, values)
        form.add_button.click()
        assert (form.status.outcome == "success") is works, (source_id, form.status.message)
        assert all(control.value == "" for control in form.secret_controls)
        assert form.fields is not None
        book.check("add form: fields after Add", [control.value for control in form.fields.controls.values()])
        book.check("add form: Add", form.status.message, form.status.value)
        book.check("add form: saved widget state", _saved_state())
        book.check("add form: repr", repr(form), repr(form.fields.box if form.fields else None))
    added = session.registry.source_ids
    assert added == [source_id for _, source_id, _, works in _flows(planted) if works]
    book.check("add form: sources", session.sources().to_string())


def test_browse_form_previews_and_loads_without_a_canary(session: Session, planted: Planted) -> None:
    book = planted.book
    session.add("pg", "postgresql", secrets={"password": planted.password}, **planted.pg_options())
    session.add(
        "lake",
        "azure_blob",
        account_url=planted.blob_endpoint,
        container=planted.container,
        secrets={"sas_token": planted.sas_token},
    )
    namespace: dict[str, Any] = {}
    form = BrowseForm(session, namespace, "pg")
    assert form.go_to(planted.schema)
    table = next(entry for entry in form.item_select.options if entry[0].startswith("orders"))[1]
    form.item_select.value = table
    assert form.status.outcome == "success", form.status.message
    form.variable_field.value = "orders"
    assert form.load(), form.status.message
    assert list(namespace["orders"]["id"]) == [1, 2]
    book.check("browse form: table preview and load", form.status.message, form.preview.outputs)
    form.source_select.value = "lake"
    assert form.go_to("2024/")
    blob = next(entry for entry in form.item_select.options if entry[0] == "jan.csv")[1]
    form.item_select.value = blob
    form.variable_field.value = "jan"
    assert form.load(), form.status.message
    assert list(namespace["jan"]["amount"]) == [10]
    book.check("browse form: blob preview and load", form.status.message, form.preview.outputs)
    form.refresh()
    book.check("browse form: saved widget state", _saved_state(), repr(form))

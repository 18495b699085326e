"""The add form's "Save for later": the source is saved with the reference chosen for its secret."""

from __future__ import annotations

import json

import ipywidgets as widgets
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.notebook.widgets import AddSourceForm
from tests.services import PostgresServer

from .conftest import Places, read_toml

TYPED_TARGET = "Form-Typed-Canary 5e6f"


def _fill(form: AddSourceForm, server: PostgresServer) -> None:
    form.type_select.value = "postgresql"
    form.id_field.value = "warehouse"
    fields = form.fields
    assert fields is not None
    for name, value in (
        ("host", server.host),
        ("port", str(server.port)),
        ("dbname", server.dbname),
        ("user", server.user),
        ("password", server.password),
    ):
        fields.controls[name].value = value


def _widget_state() -> str:
    return json.dumps(widgets.Widget.get_manager_state(drop_defaults=False))


def test_save_for_later_writes_the_chosen_reference(
    places: Places, session: Session, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    form = AddSourceForm(session)
    _fill(form, pg_server)
    choice = form.save_for_later
    assert choice.children == (choice.enabled,)  # nothing more until asked
    choice.enabled.value = True
    assert choice.kinds["password"].value == "prompt"
    assert choice.targets["password"].layout.display == "none"
    choice.kinds["password"].value = "env"
    assert choice.targets["password"].layout.display == ""
    choice.targets["password"].value = "SAVED_PG_PASSWORD"
    form.add_button.click()

    assert form.status.outcome == "success", form.status.message
    assert form.status.message.endswith(f"; saved for later in {places.user_file}")
    saved = read_toml(places.user_file)["sources"]["warehouse"]
    assert saved["secrets"] == {"password": "env:SAVED_PG_PASSWORD"}
    assert pg_server.password not in places.user_file.read_text()
    assert pg_server.password not in _widget_state()

    monkeypatch.setenv("SAVED_PG_PASSWORD", pg_server.password)
    with Session() as fresh:
        fresh.load()
        assert fresh.query("warehouse", "SELECT 6 * 7 AS answer")["answer"].tolist() == [42]


def test_a_target_that_is_not_a_reference_is_cleared_and_nothing_is_added(
    places: Places, session: Session, pg_server: PostgresServer
) -> None:
    form = AddSourceForm(session)
    _fill(form, pg_server)
    form.save_for_later.enabled.value = True
    form.save_for_later.kinds["password"].value = "env"
    form.save_for_later.targets["password"].value = TYPED_TARGET
    form.add_button.click()

    assert form.status.outcome == "error"
    assert form.status.message == (
        "to save for later, give password from VAR (what was typed is not shown and was cleared)"
    )
    assert form.save_for_later.targets["password"].value == ""
    assert TYPED_TARGET not in _widget_state()
    assert not session.registry.exists("warehouse")
    assert not places.user_file.exists()


def test_without_save_for_later_nothing_is_written(
    places: Places, session: Session, pg_server: PostgresServer
) -> None:
    form = AddSourceForm(session)
    _fill(form, pg_server)
    form.add_button.click()
    assert form.status.message.endswith("Use it as %datasource ls warehouse"), form.status.message
    assert places.written() == []

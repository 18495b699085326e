"""The add form, driven the way a user does: fill the fields, click the buttons."""

from __future__ import annotations

import json
from pathlib import Path

import ipywidgets as widgets
import pytest
from IPython.core.interactiveshell import InteractiveShell

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.notebook.widgets import AddSourceForm, FormUnavailable, add_form, browse_form
from deepanalyze_jupyter.notebook.widgets.frontend import shows_widgets
from deepanalyze_jupyter.notebook.widgets.status import LABEL_WIDTH, StatusLine, run_action
from tests.notebook.widgets.conftest import RIGHT_PASSWORD, RIGHT_TOKEN


def fill(form: AddSourceForm, source_id: str = "shop", password: str = RIGHT_PASSWORD) -> None:
    form.type_select.value = "fakedb"
    form.id_field.value = source_id
    fields = form.fields
    assert fields is not None
    fields.controls["host"].value = "db.example.org"
    fields.controls["user"].value = "analyst"
    fields.controls["password"].value = password


def saved_widget_state() -> str:
    """What Jupyter would write into the notebook: the state of every live widget."""
    return json.dumps(widgets.Widget.get_manager_state(drop_defaults=False))


def test_fields_follow_the_option_specs(session: Session) -> None:
    form = AddSourceForm(session)
    form.type_select.value = "fakedb"
    fields = form.fields
    assert fields is not None
    controls = fields.controls
    assert isinstance(controls["password"], widgets.Password)
    assert isinstance(controls["token"], widgets.Password)
    assert isinstance(controls["port"], widgets.IntText)
    assert controls["port"].value == 5432
    assert isinstance(controls["auth"], widgets.Dropdown)
    assert isinstance(controls["read_only"], widgets.Checkbox)
    assert controls["read_only"].value is True
    assert isinstance(controls["host"], widgets.Text)
    assert controls["host"].placeholder == "required"
    assert controls["read_only"].description == "Read-only"
    labelled = [form.type_select, form.id_field, form.name_field, *controls.values()]
    assert {control.style.description_width for control in labelled} == {LABEL_WIDTH}


def test_type_selector_lists_loadable_types_with_builtins_first(session: Session) -> None:
    form = AddSourceForm(session)
    values = [value for _, value in form.type_select.options]
    assert "fakedb" in values
    assert "sqlite" in values
    assert values.index("sqlite") < values.index("fakedb")
    assert ("Fake DB", "fakedb") in form.type_select.options


def test_auth_choice_shows_only_its_secret_field(session: Session) -> None:
    form = AddSourceForm(session)
    form.type_select.value = "fakedb"
    fields = form.fields
    assert fields is not None
    assert fields.controls["password"].layout.display == ""
    assert fields.controls["token"].layout.display == "none"
    fields.controls["auth"].value = "token"
    assert fields.controls["password"].layout.display == "none"
    assert fields.controls["token"].layout.display == ""


def test_changing_type_swaps_the_fields(session: Session) -> None:
    form = AddSourceForm(session)
    form.type_select.value = "sqlite"
    sqlite_fields = form.fields
    form.type_select.value = "fakedb"
    assert form.fields is not sqlite_fields
    assert form.fields is not None
    assert form.fields_box.children == (form.fields.box,)


def test_add_registers_the_source_and_clears_the_password(session: Session) -> None:
    form = AddSourceForm(session)
    fill(form)
    form.fields.controls["port"].value = 6543
    form.name_field.value = "Shop database"
    form.add_button.click()
    assert session.registry.exists("shop")
    config = session.registry.get_config("shop")
    assert config.options["port"] == 6543
    assert config.options["host"] == "db.example.org"
    assert config.name == "Shop database"
    assert session.registry.status("shop") == "connected"
    assert form.status.outcome == "success"
    assert form.status.message.startswith("Added 'shop' (Fake DB, connection tested)")
    assert all(control.value == "" for control in form.secret_controls)
    assert RIGHT_PASSWORD not in saved_widget_state()
    assert not form.add_button.disabled
    assert not form.test_button.disabled


def test_wrong_password_shows_one_line_registers_nothing_and_clears(session: Session) -> None:
    form = AddSourceForm(session)
    fill(form, password="wrong-password-7730")
    form.add_button.click()
    assert not session.registry.exists("shop")
    assert form.status.outcome == "error"
    assert form.status.message == "shop: password authentication failed for user 'analyst'"
    assert "\n" not in form.status.value
    assert form.fields.controls["password"].value == ""
    assert "wrong-password-7730" not in saved_widget_state()


def test_add_without_the_test_registers_without_connecting(session: Session) -> None:
    form = AddSourceForm(session)
    fill(form, password="not-checked-yet-123")
    form.test_on_add.value = False
    form.add_button.click()
    assert session.registry.exists("shop")
    assert session.registry.status("shop") == "not connected"
    assert "connection not tested" in form.status.message
    assert form.fields.controls["password"].value == ""


def test_token_auth_sends_only_the_token(session: Session) -> None:
    form = AddSourceForm(session)
    fill(form, password="typed-before-switching")
    form.fields.controls["auth"].value = "token"
    form.fields.controls["token"].value = RIGHT_TOKEN
    form.add_button.click()
    assert form.status.outcome == "success", form.status.message
    decrypted = session.registry.get_config("shop", decrypt=True).secrets
    assert set(decrypted) == {"token"}
    assert form.fields.controls["password"].value == ""
    assert form.fields.controls["token"].value == ""


def test_secrets_of_every_type_are_cleared_after_add(session: Session, tmp_path: Path) -> None:
    form = AddSourceForm(session)
    fill(form)
    form.type_select.value = "sqlite"
    form.id_field.value = "local_db"
    form.fields.controls["path"].value = str(tmp_path / "new.db")
    form.fields.controls["read_only"].value = False
    form.add_button.click()
    assert form.status.outcome == "success", form.status.message
    assert session.registry.exists("local_db")
    assert RIGHT_PASSWORD not in saved_widget_state()


def test_duplicate_id_is_refused(session: Session) -> None:
    form = AddSourceForm(session)
    fill(form)
    form.add_button.click()
    fill(form, password="another-password-1")
    form.add_button.click()
    assert form.status.outcome == "error"
    assert form.status.message == "shop: a data source with this id is already registered"
    assert session.registry.source_ids == ["shop"]


def test_missing_required_option_is_named(session: Session) -> None:
    form = AddSourceForm(session)
    fill(form)
    form.fields.controls["host"].value = "  "
    form.add_button.click()
    assert form.status.message == "shop: missing required option 'host'"
    assert form.fields.controls["password"].value == ""


@pytest.mark.parametrize(
    ("source_id", "expected"),
    [("", "enter a source id"), ("1st db", "invalid source id '1st db'")],
)
def test_bad_id_is_explained(session: Session, source_id: str, expected: str) -> None:
    form = AddSourceForm(session)
    fill(form, source_id=source_id)
    form.add_button.click()
    assert form.status.outcome == "error"
    assert form.status.message.startswith(expected)
    assert len(session.registry) == 0


def test_bad_number_is_explained(session: Session) -> None:
    form = AddSourceForm(session)
    fill(form)
    form.fields.controls["timeout"].value = "soon"
    form.add_button.click()
    assert form.status.message == "shop: option 'timeout' must be a number, got 'soon'"


def test_test_button_checks_without_registering_and_keeps_the_password(session: Session) -> None:
    form = AddSourceForm(session)
    fill(form)
    password = form.fields.controls["password"]
    assert password.value == ""  # taken at once, kept encrypted, never in widget state
    form.test_button.click()
    assert form.status.outcome == "success"
    assert form.status.message == "Connection works: Fake DB at db.example.org:5432 as analyst"
    assert len(session.registry) == 0
    assert password.held
    assert password.value == ""
    form.add_button.click()
    assert session.registry.exists("shop")
    assert not password.held
    assert password.value == ""


def test_test_works_before_an_id_is_chosen(session: Session) -> None:
    form = AddSourceForm(session)
    fill(form, source_id="")
    form.test_button.click()
    assert form.status.outcome == "success", form.status.message
    assert len(session.registry) == 0


def test_failed_test_clears_the_password(session: Session) -> None:
    form = AddSourceForm(session)
    fill(form, password="wrong-password-5512")
    form.test_button.click()
    assert form.status.outcome == "error"
    assert form.status.message == "shop: password authentication failed for user 'analyst'"
    assert form.fields.controls["password"].value == ""
    assert len(session.registry) == 0


def test_controls_are_disabled_while_the_action_runs(session: Session) -> None:
    button, status = widgets.Button(), StatusLine()
    seen: list[tuple[bool, str]] = []

    def action() -> str:
        seen.append((button.disabled, status.message))
        return "done"

    ok = run_action(
        action, working="Working\u2026", status=status, controls=[button], redactor=session.redactor
    )
    assert ok
    assert seen == [(True, "Working\u2026")]
    assert not button.disabled
    assert (status.outcome, status.message) == ("success", "done")


def test_unexpected_errors_are_one_masked_line(session: Session) -> None:
    session.redactor.add("shop", ["hunter2-secret-value"])
    button, status = widgets.Button(), StatusLine()

    def action() -> str:
        raise RuntimeError("bad thing with hunter2-secret-value and password=abc123\nsecond line")

    assert not run_action(action, working="...", status=status, controls=[button], redactor=session.redactor)
    assert status.message == "Unexpected error: RuntimeError: bad thing with ******** and password=********"
    assert not button.disabled


def test_status_line_escapes_html(session: Session) -> None:
    status = StatusLine()
    status.show("error", "src: table <b>x</b> not found")
    assert "<b>x</b>" not in status.value
    assert "&lt;b&gt;x&lt;/b&gt;" in status.value


def test_forms_without_a_kernel_give_a_clear_message(session: Session) -> None:
    for made in (add_form(session), browse_form(session)):
        assert isinstance(made, FormUnavailable)
        assert "needs a Jupyter front end" in repr(made)
        assert "%datasource" in repr(made)


def test_terminal_ipython_shows_no_widgets() -> None:
    assert not shows_widgets(None)
    assert not shows_widgets(InteractiveShell())


def test_rarely_needed_options_wait_behind_more_options(session: Session) -> None:
    form = AddSourceForm(session)
    form.type_select.value = "sqlite"
    fields = form.fields
    assert fields is not None
    main = [child for child in fields.box.children if not isinstance(child, widgets.Accordion)]
    (more,) = [child for child in fields.box.children if isinstance(child, widgets.Accordion)]
    assert main == [fields.controls["path"], fields.controls["read_only"]]
    assert fields.controls["timeout"] in more.children[0].children
    assert more.selected_index is None


def test_azure_sign_in_method_picks_its_fields(session: Session) -> None:
    form = AddSourceForm(session)
    form.type_select.value = "azure_blob"
    fields = form.fields
    assert fields is not None
    auth = fields.controls["auth"]
    assert auth.value == "connection_string"
    assert None not in [value for _, value in auth.options]

    def shown() -> list[str]:
        return [name for name, control in fields.controls.items() if control.layout.display == ""]

    assert shown()[:3] == ["auth", "connection_string", "container"]
    auth.value = "account_key"
    assert shown()[:4] == ["auth", "account_url", "account_key", "container"]
    assert isinstance(fields.controls["account_key"], widgets.Password)
    auth.value = "sas_token"
    assert shown()[:4] == ["auth", "account_url", "sas_token", "container"]
    auth.value = "anonymous"
    assert shown()[:3] == ["auth", "account_url", "container"]


def test_postgres_fields_come_in_the_usual_order(session: Session) -> None:
    form = AddSourceForm(session)
    form.type_select.value = "postgresql"
    fields = form.fields
    assert fields is not None
    main = [child.description for child in fields.box.children if not isinstance(child, widgets.Accordion)]
    assert main == ["Host", "Port", "Database", "User", "Password", "SSL mode", "Read only"]
    assert isinstance(fields.controls["password"], widgets.Password)
    assert isinstance(fields.controls["sslpassword"], widgets.Password)


def test_a_password_inside_a_connection_string_is_cleared_too(session: Session) -> None:
    form = AddSourceForm(session)
    form.type_select.value = "postgresql"
    form.id_field.value = "by_dsn"
    form.test_on_add.value = False
    dsn = form.fields.controls["dsn"]
    dsn.value = "postgresql://analyst:dsn-password-5091@db.example.org:5432/shop"
    form.fields.controls["host"].value = "db.example.org"
    form.add_button.click()
    assert form.status.outcome == "success", form.status.message
    assert dsn.value == ""
    assert form.fields.controls["host"].value == "db.example.org"
    assert "dsn-password-5091" not in saved_widget_state()
    assert (
        session.registry.get_config("by_dsn", decrypt=True).secrets["password"].reveal()
        == "dsn-password-5091"
    )

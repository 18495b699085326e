"""The form that registers a data source: type, id, the type's fields, Test and Add."""

from __future__ import annotations

import ipywidgets as widgets

from ...connectors import Connector
from ...errors import ConfigurationError, DataSourceError
from ...models import DataSourceConfig
from ...registry import DataSourceRegistry
from ...session import Session
from .fields import SourceFields
from .save_choice import SaveForLater
from .sealed import SealedPassword
from .status import StatusLine, field_layout, run_action

__all__ = ["AddSourceForm"]

#: Built-in types first, in this order, in the type selector; then the others by name.
_TYPE_ORDER = ("postgresql", "azure_blob", "sqlite", "local")
#: Buttons start where the fields' inputs start: after the label and its margin.
BUTTON_INDENT = "148px"
#: The id a Test uses when the id field is still empty.
_TRIAL_ID = "new_source"


class AddSourceForm(widgets.VBox):  # type: ignore[misc]
    """Register a data source through the session's registry, from labelled fields.

    Secrets are typed into sealed ``Password`` fields, which keep them encrypted and never
    in widget state (see ``_sealed``); they are forgotten after every Add and after a failed
    Test.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._connector_classes = _connector_classes(session.registry)
        self._fields: dict[str, SourceFields] = {}
        self.type_select = widgets.Dropdown(
            description="Source type",
            options=[(cls.display_name, name) for name, cls in self._connector_classes.items()],
            **field_layout(),
        )
        self.id_field = widgets.Text(description="Source id", placeholder="e.g. sales_db", **field_layout())
        self.name_field = widgets.Text(description="Display name", placeholder="optional", **field_layout())
        self.fields_box = widgets.VBox()
        self.test_on_add = widgets.Checkbox(
            value=True, description="Test the connection before adding", indent=True, **field_layout()
        )
        self.test_button = widgets.Button(
            description="Test connection", icon="plug", tooltip="Connect once, without adding the source"
        )
        self.add_button = widgets.Button(description="Add", button_style="primary", icon="plus")
        self.status = StatusLine()
        self.save_for_later = SaveForLater()
        self.test_button.on_click(lambda _: self.test())
        self.add_button.on_click(lambda _: self.add())
        self.type_select.observe(self._show_type, names="value")
        buttons = widgets.HBox(
            [self.test_button, self.add_button],
            layout=widgets.Layout(margin=f"8px 0 4px {BUTTON_INDENT}", grid_gap="8px"),
        )
        super().__init__(
            [
                widgets.HTML("<b>Add a data source</b>"),
                self.type_select,
                self.id_field,
                self.name_field,
                self.fields_box,
                self.test_on_add,
                self.save_for_later,
                buttons,
                self.status,
            ],
            layout=widgets.Layout(padding="4px 0"),
        )
        self.add_class("deepanalyze-add-form")
        if not self._connector_classes:
            self.status.show("error", "No source type can be used: no connector could be loaded")
            self._set_enabled(False)
        self._show_type()

    @property
    def fields(self) -> SourceFields | None:
        """The fields of the selected type."""
        type_name = self.type_select.value
        if type_name is None:
            return None
        if type_name not in self._fields:
            connector_class = self._connector_classes[type_name]
            self._fields[type_name] = SourceFields(connector_class, self.session.credentials)
        return self._fields[type_name]

    @property
    def secret_controls(self) -> list[SealedPassword]:
        """Every secret control the form has made, of every type."""
        return [control for fields in self._fields.values() for control in fields.secret_controls]

    def config(self, *, source_id: str | None = None) -> DataSourceConfig:
        """The source the fields describe (raises ConfigurationError when they cannot)."""
        fields = self.fields
        if fields is None:
            raise ConfigurationError("choose a source type first")
        options, secrets = fields.values()
        chosen_id = source_id or self.id_field.value.strip()
        if not chosen_id:
            raise ConfigurationError("enter a source id (a name like sales_db) first")
        return DataSourceConfig(
            id=chosen_id,
            type=self.type_select.value,
            name=self.name_field.value.strip(),
            options=options,
            secrets=secrets,
        )

    def test(self) -> bool:
        """Connect once with the fields' values, without adding the source."""
        ok = False
        try:
            ok = run_action(
                self._test_connection,
                working="Testing the connection\u2026",
                status=self.status,
                controls=self._controls(),
                redactor=self.session.redactor,
            )
        finally:
            if not ok:
                self.clear_secrets()
        return ok

    def add(self) -> bool:
        """Register the source (testing it first unless unticked); secrets are cleared after."""
        testing = self.test_on_add.value
        try:
            return run_action(
                self._register,
                working="Connecting and adding\u2026" if testing else "Adding\u2026",
                status=self.status,
                controls=self._controls(),
                redactor=self.session.redactor,
            )
        finally:
            self.clear_secrets()

    def clear_secrets(self) -> None:
        """Forget every secret typed into a field of any type."""
        for fields in self._fields.values():
            fields.clear_secrets()

    def _test_connection(self) -> str:
        config = self.config(source_id=self.id_field.value.strip() or _TRIAL_ID)
        answer = self.session.run(self.session.registry.check_data_source(config))
        return f"Connection works: {answer}"

    def _register(self) -> str:
        config = self.config()
        references = self.save_for_later.references(config.secrets)  # checked before anything is added
        testing = bool(self.test_on_add.value)
        stored = self.session.run(self.session.registry.register_data_source(config, test_connection=testing))
        kind = self._connector_classes[stored.type].display_name
        checked = "connection tested" if testing else "connection not tested"
        saved = self.save_for_later.save(self.session, stored.id, references)
        return f"Added {stored.id!r} ({kind}, {checked}). Use it as %datasource ls {stored.id}{saved}"

    def _show_type(self, change: object = None) -> None:
        fields = self.fields
        self.fields_box.children = () if fields is None else (fields.box,)
        self.save_for_later.show_secrets(() if fields is None else fields.specs)

    def _controls(self) -> list[widgets.DOMWidget]:
        return [self.test_button, self.add_button, self.type_select]

    def _set_enabled(self, enabled: bool) -> None:
        for control in self._controls():
            control.disabled = not enabled


def _connector_classes(registry: DataSourceRegistry) -> dict[str, type[Connector]]:
    """The registry's usable connector classes, built-in types first; unloadable ones left out."""
    rank = {name: index for index, name in enumerate(_TYPE_ORDER)}
    classes: dict[str, type[Connector]] = {}
    for name in sorted(registry.source_types, key=lambda name: (rank.get(name, len(rank)), name)):
        try:
            classes[name] = registry.connector_class(name)
        except DataSourceError:
            continue
    return classes

"""The fields of one source type, made from its connector's option specs.

Each :class:`~deepanalyze_jupyter.models.OptionSpec` becomes one labelled control:
a ``Dropdown`` for choices, a ``Checkbox`` for a flag, an ``IntText`` for a number with a
default, a ``Password`` for a secret, and a ``Text`` otherwise (the connector converts and
checks the text). An option with ``when`` is shown only while the option it depends on has
one of the listed values, e.g. Azure's account key only with ``auth=account_key``. Secrets,
and texts that embed one (a DSN with a password), are sealed: the widget's state never
keeps them (see ``_sealed``).
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ...connectors import Connector
from ...credentials import CredentialManager
from ...models import OptionSpec, Secret
from .sealed import SealedPassword, SealedText
from .status import FORM_WIDTH, field_layout

__all__ = ["FIELD_ORDER", "SourceFields"]

#: Options shown first, in this order, for the built-in types; other options follow in
#: the connector's own order, under "More options" when a type has a curated list.
FIELD_ORDER: dict[str, tuple[str, ...]] = {
    "postgresql": ("host", "port", "dbname", "database", "user", "password", "sslmode", "read_only"),
    "azure_blob": (
        "auth",
        "connection_string",
        "account_url",
        "account_key",
        "sas_token",
        "tenant_id",
        "client_id",
        "client_secret",
        "container",
    ),
    "sqlite": ("path", "read_only"),
    "local": ("path", "root"),
}

_UNSET_CHOICE = "(default)"


class SourceFields:
    """The labelled controls of one connector class, and the options they hold."""

    def __init__(self, connector_class: type[Connector], credentials: CredentialManager) -> None:
        self.connector_class = connector_class
        self.specs = _ordered(connector_class)
        steering = {spec.when[0] for spec in self.specs if spec.when is not None}
        self.controls: dict[str, widgets.DOMWidget] = {
            spec.name: _control(spec, credentials, steers_others=spec.name in steering) for spec in self.specs
        }
        main, more = _split(connector_class.type_name, self.specs)
        children: list[widgets.Widget] = [self.controls[spec.name] for spec in main]
        if more:
            extra = widgets.VBox([self.controls[spec.name] for spec in more])
            accordion = widgets.Accordion(
                children=[extra], titles=("More options",), layout=widgets.Layout(width=FORM_WIDTH)
            )
            accordion.selected_index = None
            children.append(accordion)
        self.box = widgets.VBox(children)
        for name in steering:
            control = self.controls.get(name)
            if control is not None:
                control.observe(self._update_visibility, names="value")
        self._update_visibility()

    @property
    def secret_controls(self) -> list[SealedPassword]:
        """The controls that hold secrets (all sealed ``Password`` widgets)."""
        return [self.controls[spec.name] for spec in self.specs if spec.secret]

    def clear_secrets(self) -> None:
        """Forget every secret typed, and every text typed with an embedded secret (a
        connection string or URL with a password or SAS); such a text field is emptied."""
        for control in self.controls.values():
            if isinstance(control, (SealedPassword, SealedText)):
                control.clear()

    def choices(self) -> dict[str, Any]:
        """The current value of every non-secret control, as the user left it."""
        return {spec.name: self.controls[spec.name].value for spec in self.specs if not spec.secret}

    def values(self) -> tuple[dict[str, Any], dict[str, Secret]]:
        """The options and secrets to register: fields in play and not left empty."""
        current = self.choices()
        options: dict[str, Any] = {}
        secrets: dict[str, Secret] = {}
        for spec in self.specs:
            if not spec.applies(current):
                continue
            value = _typed_value(self.controls[spec.name])
            if isinstance(value, str):
                value = value if spec.secret else value.strip()
                if not value:
                    continue
            if value is None:
                continue
            if spec.secret:
                secrets[spec.name] = Secret(value)
            else:
                options[spec.name] = value
        return options, secrets

    def _update_visibility(self, change: object = None) -> None:
        current = self.choices()
        for spec in self.specs:
            self.controls[spec.name].layout.display = "" if spec.applies(current) else "none"


def _ordered(connector_class: type[Connector]) -> list[OptionSpec]:
    first = FIELD_ORDER.get(connector_class.type_name, ())
    rank = {name: index for index, name in enumerate(first)}
    specs = list(connector_class.option_specs)
    return sorted(specs, key=lambda spec: (rank.get(spec.name, len(rank)), specs.index(spec)))


def _split(type_name: str, specs: list[OptionSpec]) -> tuple[list[OptionSpec], list[OptionSpec]]:
    """Curated, required and conditional options first; for curated types the rest go behind
    "More options" (a conditional one shows only when its choice is made, so it stays in view)."""
    curated = FIELD_ORDER.get(type_name)
    if curated is None:
        return specs, []
    main = [spec for spec in specs if spec.name in curated or spec.required or spec.when is not None]
    return main, [spec for spec in specs if spec not in main]


def _typed_value(control: widgets.DOMWidget) -> Any:
    """What the user gave a control: a sealed field's secret or text is decrypted."""
    if isinstance(control, SealedPassword):
        secret = control.secret()
        return "" if secret is None else secret.reveal()
    if isinstance(control, SealedText):
        return control.text()
    return control.value


def _control(spec: OptionSpec, credentials: CredentialManager, *, steers_others: bool) -> widgets.DOMWidget:
    """One labelled control for ``spec``, with the forms' common layout."""
    common: dict[str, Any] = {"description": spec.title, "tooltip": spec.help or None, **field_layout()}
    if spec.secret:
        return SealedPassword(credentials, value="", placeholder=_placeholder(spec), **common)
    if spec.choices:
        # A choice other fields depend on (Azure's sign-in method) is always made explicitly.
        options = [(choice, choice) for choice in spec.choices]
        if spec.default is None and not spec.required and not steers_others:
            options.insert(0, (_UNSET_CHOICE, ""))  # left out of the options, like an empty field
        value = spec.default if spec.default in spec.choices else options[0][1]
        return widgets.Dropdown(options=options, value=value, **common)
    if spec.kind is bool:
        return widgets.Checkbox(value=bool(spec.default), indent=True, **common)
    if spec.kind is int and spec.default is not None:
        return widgets.IntText(value=int(spec.default), **common)
    default = "" if spec.default is None else str(spec.default)
    return SealedText(credentials, value=default, placeholder=_placeholder(spec), **common)


def _placeholder(spec: OptionSpec) -> str:
    if spec.required:
        return "required"
    return "optional"

"""The add form's "Save for later" choice: keep the source across restarts, each secret by reference.

A secret typed into the form is never written: the user picks, per secret field, where it
will come from after a restart (a hidden prompt, an environment variable, a keyring entry,
or nothing because the client library finds it), and that reference is what is saved.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import ipywidgets as widgets

from ...errors import ConfigurationError, DataSourceError
from ...models import OptionSpec
from ...saved.references import parse_reference
from ...session import Session
from .status import field_layout

__all__ = ["SaveForLater"]

#: The kinds of reference offered, with what the target field then takes.
_KINDS = (
    ("a hidden prompt on first use", "prompt", ""),
    ("an environment variable", "env", "VAR"),
    ("the system keyring", "keyring", "SERVICE/USERNAME"),
    ("nothing (~/.pgpass, a certificate...)", "none", ""),
)


class SaveForLater(widgets.VBox):  # type: ignore[misc]
    """A "Save for later" box, and per secret field the reference to save instead of it."""

    def __init__(self) -> None:
        self.enabled = widgets.Checkbox(
            value=False,
            description="Save for later (back after a kernel restart)",
            indent=True,
            **field_layout(),
        )
        self.project = widgets.Checkbox(
            value=False, description="in this folder's project file", indent=True, **field_layout()
        )
        self.kinds: dict[str, widgets.Dropdown] = {}
        self.targets: dict[str, widgets.Text] = {}
        self.fields_box = widgets.VBox()
        self.enabled.observe(self._show, names="value")
        super().__init__([self.enabled])

    def show_secrets(self, specs: Sequence[OptionSpec]) -> None:
        """Offer a reference for each secret field of the selected type."""
        self.kinds, self.targets = {}, {}
        rows = []
        for spec in specs:
            if not spec.secret:
                continue
            kind = widgets.Dropdown(
                description=f"{spec.title} from",
                options=[(label, value) for label, value, _ in _KINDS],
                **field_layout(),
            )
            target = widgets.Text(description="", continuous_update=False, **field_layout())
            kind.observe(lambda change, target=target: _show_target(change["new"], target), names="value")
            _show_target(kind.value, target)
            self.kinds[spec.name], self.targets[spec.name] = kind, target
            rows += [kind, target]
        self.fields_box.children = tuple(rows)
        self._show()

    def references(self, typed: Collection[str]) -> dict[str, str]:
        """The references of the ``typed`` secret fields; a target that is not one is cleared and refused."""
        if not self.enabled.value:
            return {}
        chosen = {}
        for name in typed:
            kind, target = self.kinds[name].value, self.targets[name].value.strip()
            text = f"{kind}:{target}" if target or kind in ("env", "keyring") else kind
            try:
                parse_reference(text, source="", field=name)
            except DataSourceError:
                self.targets[name].value = ""
                form = dict((value, shown) for _, value, shown in _KINDS)[kind]
                raise ConfigurationError(
                    f"to save for later, give {self.kinds[name].description.lower()} {form} "
                    "(what was typed is not shown and was cleared)"
                ) from None
            chosen[name] = text
        return chosen

    def save(self, session: Session, source_id: str, references: dict[str, str]) -> str:
        """Save the source when asked; return what to add to the form's message."""
        if not self.enabled.value:
            return ""
        try:
            path = session.save(source_id, project=self.project.value, references=references)
        except DataSourceError as error:
            return f"; not saved for later: {error}"
        return f"; saved for later in {path}"

    def _show(self, change: object = None) -> None:
        extra = [self.project, self.fields_box] if self.enabled.value else []
        self.children = (self.enabled, *extra)


def _show_target(kind: str, target: widgets.Text) -> None:
    """Show the target field only for the kinds that take one, with what it takes."""
    placeholder = dict((value, shown) for _, value, shown in _KINDS)[kind]
    target.placeholder = placeholder
    target.description = placeholder and "name"
    target.layout.display = "" if placeholder else "none"

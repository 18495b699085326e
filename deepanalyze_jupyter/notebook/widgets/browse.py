"""The form that browses a source's items, previews one and loads it as a DataFrame."""

from __future__ import annotations

import html
import keyword
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ...errors import ConfigurationError
from ...frames import is_truncated
from ...registry import RowLimit
from ...session import Session
from .status import StatusLine, field_layout, run_action

__all__ = ["BrowseForm", "Entry"]

#: Rows shown in a preview.
PREVIEW_ROWS = 20
#: Listing kinds that name something to open rather than to read.
_FOLDER_KINDS = frozenset({"folder", "directory", "dir", "prefix", "container", "schema"})


@dataclass(frozen=True)
class Entry:
    """One line of the item list: a folder (or schema) to open, or an item to read."""

    label: str
    path: str
    folder: bool
    #: For a table of an SQL source: (schema, table).
    table: tuple[str, str] | None = None

    @property
    def name(self) -> str:
        """The item's own name: the table's, or the file's without its folders."""
        return self.table[1] if self.table else self.path.rstrip("/").rsplit("/", 1)[-1]


class BrowseForm(widgets.VBox):  # type: ignore[misc]
    """Pick a source, walk its folders or schemas, preview an item, load it into a variable."""

    def __init__(
        self, session: Session, namespace: MutableMapping[str, Any], source_id: str | None = None
    ) -> None:
        self.session = session
        self.namespace = namespace
        self.location: str | None = None
        self._filling = False
        self.source_select = widgets.Dropdown(description="Source", **field_layout())
        self.refresh_button = widgets.Button(
            description="Refresh", icon="refresh", tooltip="List the sources and items again"
        )
        self.location_label = widgets.HTML(description="Location", **field_layout())
        self.item_select = widgets.Select(description="Items", rows=10, **field_layout())
        self.preview = widgets.Output(layout=widgets.Layout(max_height="420px", overflow="auto"))
        self.variable_field = widgets.Text(description="Variable name", placeholder="df", **field_layout())
        self.load_button = widgets.Button(
            description="Load",
            button_style="primary",
            icon="download",
            tooltip="Load the item as a DataFrame",
        )
        self.status = StatusLine()
        self.refresh_button.on_click(lambda _: self.refresh())
        self.load_button.on_click(lambda _: self.load())
        super().__init__(
            [
                widgets.HTML("<b>Browse data sources</b>"),
                widgets.HBox(
                    [self.source_select, self.refresh_button], layout=widgets.Layout(grid_gap="8px")
                ),
                self.location_label,
                self.item_select,
                widgets.HBox([self.variable_field, self.load_button], layout=widgets.Layout(grid_gap="8px")),
                self.status,
                self.preview,
            ],
            layout=widgets.Layout(padding="4px 0"),
        )
        self.add_class("deepanalyze-browse-form")
        self._fill_sources(source_id)
        self.source_select.observe(self._on_source, names="value")
        self.item_select.observe(self._on_select, names="value")
        self.go_to(None)

    @property
    def source_id(self) -> str | None:
        """The chosen source's id."""
        value = self.source_select.value
        return value if isinstance(value, str) else None

    @property
    def selected(self) -> Entry | None:
        """The selected entry of the item list."""
        value = self.item_select.value
        return value if isinstance(value, Entry) else None

    def refresh(self) -> None:
        """List the sources again, and the items of the chosen one without the cache."""
        self._fill_sources(self.source_id)
        self.go_to(self.location, refresh=True)

    def go_to(self, location: str | None, *, refresh: bool = False) -> bool:
        """Show the items at ``location`` (a folder prefix or schema; ``None`` for the top)."""
        source_id = self.source_id
        self.preview.outputs = ()
        if source_id is None:
            self._show_entries(None, [])
            self.status.show("idle", "No data source is registered yet: add one with %datasource add")
            return False

        def listing() -> str:
            entries = self._entries(source_id, location, refresh=refresh)
            self._show_entries(location, entries)
            items = sum(not entry.folder for entry in entries)
            return f"{len(entries) - items} folder(s), {items} item(s) in {self._where(source_id, location)}"

        return self._run(listing, f"Listing {self._where(source_id, location)}\u2026")

    def show_preview(self, entry: Entry) -> bool:
        """Show the first rows of ``entry`` under the form."""
        source_id = self.source_id
        if source_id is None:
            return False

        def preview() -> str:
            frame = self._read(source_id, entry, limit=PREVIEW_ROWS)
            self._show_frame(frame)
            more = " (more rows not shown)" if is_truncated(frame) else ""
            return f"First {len(frame)} row(s) of {entry.path}{more}"

        return self._run(preview, f"Reading the first rows of {entry.path}\u2026")

    def load(self) -> bool:
        """Load the selected item into the variable named in the form, as a DataFrame."""
        source_id, entry = self.source_id, self.selected

        def load_item() -> str:
            if source_id is None or entry is None or entry.folder:
                raise ConfigurationError("select a table or file to load first")
            name = self.variable_field.value.strip()
            if not name.isidentifier() or keyword.iskeyword(name):
                raise ConfigurationError(f"{name[:40]!r} is not a valid variable name")
            frame = self._read(source_id, entry, limit="default")
            self.namespace[name] = frame
            cut = "; cut at the row limit" if is_truncated(frame) else ""
            size = f"{len(frame):,} row(s) \u00d7 {frame.shape[1]} column(s)"
            return f"Loaded {size} of {entry.path} into {name}{cut}"

        return self._run(load_item, f"Loading {entry.path if entry else ''}\u2026")

    # -- internals -----------------------------------------------------------------

    def _run(self, action: Callable[[], str], working: str) -> bool:
        return run_action(
            action,
            working=working,
            status=self.status,
            controls=[self.source_select, self.refresh_button, self.item_select, self.load_button],
            redactor=self.session.redactor,
        )

    def _fill_sources(self, chosen: str | None) -> None:
        ids = self.session.registry.source_ids
        self._filling = True
        try:
            self.source_select.value = None
            self.source_select.options = ids
            self.source_select.value = chosen if chosen in ids else (ids[0] if ids else None)
        finally:
            self._filling = False

    def _is_sql(self, source_id: str) -> bool:
        registry = self.session.registry
        return registry.connector_class(registry.get_config(source_id).type).kind == "sql"

    def _entries(self, source_id: str, location: str | None, *, refresh: bool) -> list[Entry]:
        registry = self.session.registry
        frame = self.session.run(registry.list_items(source_id, location, refresh=refresh))
        if self._is_sql(source_id):
            return _table_entries(frame, location)
        return _file_entries(frame, location)

    def _read(self, source_id: str, entry: Entry, *, limit: RowLimit) -> pd.DataFrame:
        registry = self.session.registry
        if entry.table is not None:
            return self.session.run(registry.query(source_id, select_all(*entry.table), limit=limit))
        return self.session.run(registry.read(source_id, [entry.path], limit=limit))

    def _show_entries(self, location: str | None, entries: list[Entry]) -> None:
        self.location = location
        shown: list[tuple[str, Entry | None]] = [(entry.label, entry) for entry in entries]
        if location is not None:
            shown.insert(0, ("..", Entry("..", _parent(location), folder=True)))
        self.item_select.value = None
        self.item_select.options = shown
        where = "/" if location is None else location
        self.location_label.value = (
            f"<span style='font-family: var(--jp-code-font-family, monospace)'>{html.escape(where)}</span>"
        )

    def _show_frame(self, frame: pd.DataFrame) -> None:
        """Show ``frame`` as a table in the preview area (registered secrets masked)."""
        redact = self.session.redactor.redact
        data = {"text/html": redact(frame.to_html(max_rows=PREVIEW_ROWS)), "text/plain": redact(repr(frame))}
        self.preview.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)

    def _where(self, source_id: str, location: str | None) -> str:
        return f"{source_id}:{location or '/'}"

    def _on_source(self, change: dict[str, Any]) -> None:
        if not self._filling:
            self.go_to(None)

    def _on_select(self, change: dict[str, Any]) -> None:
        entry = change.get("new")
        if not isinstance(entry, Entry):
            return
        if entry.folder:
            self.go_to(entry.path or None)
            return
        self.variable_field.value = variable_name(entry.name)
        self.show_preview(entry)


def select_all(schema: str, table: str) -> str:
    """``SELECT * FROM "schema"."table"``, with identifiers quoted the standard SQL way."""
    return f"SELECT * FROM {quote_identifier(schema)}.{quote_identifier(table)}"


def quote_identifier(name: str) -> str:
    """Quote an SQL identifier with double quotes (standard SQL, PostgreSQL and SQLite)."""
    return '"' + name.replace('"', '""') + '"'


def variable_name(item_name: str) -> str:
    """A Python name for an item: ``sales 2024.csv`` -> ``sales_2024``."""
    stem = item_name.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
    name = re.sub(r"\W+", "_", stem).strip("_").lower() or "df"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = f"df_{name}"
    return name


def _table_entries(frame: pd.DataFrame, schema: str | None) -> list[Entry]:
    """Schemas at the top, tables and views inside one.

    At the top a listing holds either schema rows (``kind == "schema"``, as PostgreSQL
    lists them) or every table with its schema (as SQLite does); both give the schemas.
    """
    records = frame.to_dict("records")
    if schema is None:
        listed = [str(record["name"]) for record in records if record.get("kind") == "schema"]
        schemas = listed or sorted({str(record["schema"]) for record in records})
        return [Entry(f"{name}/", name, folder=True) for name in schemas]
    entries = []
    for record in records:
        if record.get("schema") != schema:
            continue
        name = str(record["name"])
        kind = record.get("kind")
        label = f"{name} ({kind})" if isinstance(kind, str) and kind else name
        entries.append(Entry(label, f"{schema}.{name}", folder=False, table=(schema, name)))
    return entries


def _file_entries(frame: pd.DataFrame, prefix: str | None) -> list[Entry]:
    entries = []
    for record in frame.to_dict("records"):
        path = str(record.get("path") or record.get("name"))
        kind = str(record.get("kind") or record.get("type") or "").lower()
        folder = kind in _FOLDER_KINDS or path.endswith("/")
        label = path[len(prefix) :] if prefix and path.startswith(prefix) else path
        entries.append(Entry(label, path, folder))
    return sorted(entries, key=lambda entry: (not entry.folder, entry.label))


def _parent(location: str) -> str:
    """The folder above ``a/b/`` (``a/``), or the top ("")."""
    trimmed = location.rstrip("/")
    return trimmed.rsplit("/", 1)[0] + "/" if "/" in trimmed else ""

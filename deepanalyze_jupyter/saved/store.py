"""Saving the kernel's sources to the sources files, and loading them back.

The user file (:func:`~.file.user_sources_file`) and the project file
(:func:`~.file.project_sources_file`) are read together, the project file winning on an
id both define. Loading registers each valid source without connecting it; its secret
fields are fetched through their references on first use. A source that is invalid,
already in the kernel or holds a literal secret is left out, with one line saying why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import ConfigurationError, DataSourceError
from ..models import DataSourceConfig, OptionSpec, validate_source_id
from ..redaction import mask_text
from ..registry import DataSourceRegistry
from .file import (
    SavedSource,
    project_sources_file,
    read_sources_file,
    update_sources_file,
    user_sources_file,
)
from .references import REFERENCE_FORMS, SecretReference, SecretResolver, parse_reference

if TYPE_CHECKING:
    from ..connectors.base import Connector

__all__ = ["SavedSources"]

#: How a refused save ends its line (a refused load says the source is not loaded).
_NOT_SAVED = "nothing was saved"


class SavedSources:
    """Save, load, forget and list the saved sources of one registry."""

    def __init__(
        self,
        registry: DataSourceRegistry,
        run: Callable[[Coroutine[Any, Any, Any]], Any],
        *,
        ask: Callable[[str], str] | None = None,
        user_file: Path | None = None,
        project_file: Path | None = None,
    ) -> None:
        self.registry = registry
        self._run = run
        self._ask = ask
        self.user_file = user_file or user_sources_file()
        self.project_file = project_file or project_sources_file()

    # -- reading -------------------------------------------------------------------------

    def read(self, path: Path | None = None) -> tuple[dict[str, SavedSource], list[str]]:
        """The valid saved sources by id (project file over user file), and one line per problem."""
        sources: dict[str, SavedSource] = {}
        problems: list[str] = []
        for file in [path] if path is not None else [self.user_file, self.project_file]:
            contents = read_sources_file(file)
            problems += contents.problems
            for saved in contents.sources:
                try:
                    self._check(saved)
                except DataSourceError as error:
                    problems.append(f"{file}: {error}")
                    continue
                if saved.id in sources:
                    both = f"{sources[saved.id].file} and in {file}"
                    problems.append(f"{saved.id}: defined in {both}; the one in {file} is used")
                sources[saved.id] = saved
        return sources, problems

    def _check(self, saved: SavedSource, *, refused: str = "the source is not loaded") -> None:
        """Refuse a saved source with a bad id, type or option, or with a secret in its options.

        ``refused`` ends the line of a secret found in an option: what came of it (a load
        leaves the source out; a save writes nothing).
        """
        validate_source_id(saved.id)
        connector_class = self.registry.connector_class(saved.type, source=saved.id)
        secret_fields = {spec.name for spec in connector_class.option_specs if spec.secret}
        for key in saved.references:
            if key not in secret_fields:
                raise ConfigurationError(
                    f"{key!r} is not a secret field of a {saved.type} source "
                    f"(its secret fields: {', '.join(sorted(secret_fields)) or 'none'})",
                    source=saved.id,
                )
        literal = [key for key in saved.options if key in secret_fields or _holds_secret(saved.options[key])]
        if not literal:
            _check_option_kinds(connector_class, saved, refused)
            literal = sorted(_literal_secrets(connector_class, saved))
        if literal:
            raise ConfigurationError(
                f"option {literal[0]!r} holds a secret, and a sources file holds only references: "
                f"give it in [sources.{saved.id}.secrets] as a reference ({REFERENCE_FORMS}); the "
                f"value is not shown and {refused}",
                source=saved.id,
            )

    # -- loading -------------------------------------------------------------------------

    def load(self, path: Path | None = None) -> list[str]:
        """Register the saved sources (nothing connects); return one line per source or problem."""
        if path is not None and not path.is_file():
            raise ConfigurationError(f"{path}: no such sources file; nothing was loaded")
        sources, lines = self.read(path)
        for saved in sources.values():
            if self.registry.exists(saved.id):
                lines.append(f"{saved.id}: already in this kernel; the saved definition was not loaded")
                continue
            try:
                self._register(saved)
            except DataSourceError as error:
                lines.append(f"{saved.file}: {error}")
                continue
            lines.append(f"{saved.id}: loaded from {saved.file}{_waiting_for(saved.references)}")
        return lines

    def _register(self, saved: SavedSource) -> None:
        config = DataSourceConfig(
            id=saved.id,
            type=saved.type,
            name=saved.name,
            options=saved.options,
        )
        resolvers = {
            key: SecretResolver(
                reference,
                source=saved.id,
                field=key,
                credentials=self.registry.credentials,
                redactor=self.registry.redactor,
                ask=self._ask,
            )
            for key, reference in saved.references.items()
            if reference.kind != "none"
        }
        self._run(self.registry.register_data_source(config, test_connection=False, secret_sources=resolvers))

    # -- saving and forgetting -----------------------------------------------------------

    def save(
        self,
        source_ids: Iterable[str] = (),
        *,
        all_sources: bool = False,
        project: bool = False,
        references: Mapping[str, str] | None = None,
    ) -> tuple[Path, list[str]]:
        """Write the definitions of the sources to the user (or project) file; return it and the ids.

        Each secret field is written as its reference: the one it was loaded with, or the
        one ``references`` gives for that field name. A field with neither is refused
        (nothing is written): a secret's value is never written.
        """
        ids = list(self.registry.source_ids if all_sources else dict.fromkeys(source_ids))
        if not ids:
            raise ConfigurationError("nothing to save: name the sources to save, or save them all")
        if references and len(ids) > 1:
            raise ConfigurationError(
                f"references are given for one source at a time, and this save names {len(ids)} "
                "(each would get the same ones); save each source that needs them alone; nothing was saved"
            )
        path = self.project_file if project else self.user_file
        given = references or {}
        tables = {source_id: self._saved_form(source_id, path, given).to_table() for source_id in ids}
        unused = sorted(set(given) - {key for table in tables.values() for key in table.get("secrets", {})})
        if unused:
            raise ConfigurationError(
                f"{unused[0]!r} is not a secret field of {', '.join(ids)}; nothing was saved"
            )
        update_sources_file(path, lambda sources: sources.update(tables))
        return path, ids

    def _saved_form(self, source_id: str, path: Path, given: Mapping[str, str]) -> SavedSource:
        config = self.registry.get_config(source_id)
        connector_class = self.registry.connector_class(config.type, source=source_id)
        secret_fields = {spec.name for spec in connector_class.option_specs if spec.secret}
        references = {
            key: parse_reference(text, source=source_id, field=key, refused=_NOT_SAVED)
            for key, text in self.registry.secret_references(source_id).items()
        }
        references.update(
            (key, fetch.reference)
            for key, fetch in self.registry.secret_sources(source_id).items()
            if isinstance(fetch, SecretResolver)
        )
        for key, text in given.items():
            if key in secret_fields:
                references[key] = parse_reference(text, source=source_id, field=key, refused=_NOT_SAVED)
        unreferenced = sorted(set(config.secrets) - set(references))
        if unreferenced:
            key = unreferenced[0]
            raise ConfigurationError(
                f"its {key} was typed or read when it was added, and a secret is never written: say where "
                f"it comes from with a reference for {key} ({REFERENCE_FORMS}); nothing was saved",
                source=source_id,
            )
        defaults = {spec.name: spec.default for spec in connector_class.option_specs}
        options = {
            key: value
            for key, value in config.options.items()
            if value is not None and value != defaults.get(key)
        }
        saved = SavedSource(source_id, config.type, path, config.name, options, references)
        self._check(saved, refused=_NOT_SAVED)
        return saved

    def forget(self, source_id: str, *, project: bool = False) -> Path:
        """Remove a source from the user (or project) file; the kernel keeps it."""
        path = self.project_file if project else self.user_file

        def drop(sources: dict[str, Any]) -> None:
            if source_id not in sources:
                raise ConfigurationError(f"not saved in {path}; nothing was changed", source=source_id)
            del sources[source_id]

        update_sources_file(path, drop)
        return path

    # -- listing -------------------------------------------------------------------------

    def frame(self) -> pd.DataFrame:
        """One row per saved source: id, type, name, file, secrets (references), status."""
        sources, problems = self.read()
        rows = [
            {
                "id": saved.id,
                "type": saved.type,
                "name": saved.name or saved.id,
                "file": str(saved.file),
                "secrets": ", ".join(
                    f"{key}={reference.shown()}" for key, reference in saved.references.items()
                ),
                "status": self._status(saved),
            }
            for saved in sources.values()
        ]
        columns = ["id", "type", "name", "file", "secrets", "status"]
        frame = pd.DataFrame(rows, columns=columns).astype("string")
        frame.attrs["problems"] = problems
        return frame

    def _status(self, saved: SavedSource) -> str:
        where = "in this kernel" if self.registry.exists(saved.id) else "not loaded"
        missing = _waiting_for(saved.references)
        return f"{where}{missing}" if missing else f"{where}; ready"


def _waiting_for(references: Mapping[str, SecretReference]) -> str:
    """``"; not usable until set: ..."`` naming what a source's references miss now, or ``""``."""
    missing = [
        f"{key} ({problem})" for key, reference in references.items() if (problem := reference.missing())
    ]
    return f"; not usable until set: {', '.join(missing)}" if missing else ""


def _holds_secret(value: object) -> bool:
    """Whether an option's value holds a secret the masker knows (a URI's password, a key)."""
    texts = value if isinstance(value, list) else [value]
    return any(isinstance(text, str) and mask_text(text) != text for text in texts)


def _check_option_kinds(connector_class: type[Connector], saved: SavedSource, refused: str) -> None:
    """Refuse an option whose value is not of the option's kind (an array or a table where text
    belongs, a number where a URL does, NaN for a timeout), naming what it is, not its value.

    The connector would otherwise take it as the text it prints as (``['x']``). Text given
    for a number or a switch is taken when it reads as one, as the magics' text is.
    """
    for key, value in saved.options.items():
        spec = connector_class.spec(key)
        if spec is None or spec.secret:
            continue  # an unknown option is refused by the connector; a secret one already was
        items = value if spec.repeatable and isinstance(value, list) else [value]
        found = next((problem for item in items if (problem := _kind_problem(spec.kind, item))), None)
        if found is not None:
            expected = _KIND_NAMES.get(spec.kind, spec.kind.__name__)
            if spec.repeatable:
                expected = f"{expected}, or an array of such"
            raise ConfigurationError(
                f"option {key!r} must be {expected}, not {found}; {refused}", source=saved.id
            )


#: What an option's kind is, as a sources file writes it.
_KIND_NAMES = {
    str: 'text (a quoted "string")',
    int: "a whole number",
    float: "a number",
    bool: "true or false",
}


def _kind_problem(kind: type, value: object) -> str | None:
    """What ``value`` (from a sources file) is when it is not of ``kind`` (never the value itself,
    but for NaN and infinities), or ``None`` when it is."""
    if isinstance(value, str) and kind is not str:
        try:
            value = OptionSpec("option", kind).coerce(value)
        except ConfigurationError:
            return "text that does not read as one"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return None
    return _toml_kind(value)


#: The kinds of TOML values, as a message names them (``bool`` before ``int``, which it is too).
_TOML_KINDS = (
    (bool, "true or false"),
    (int, "a whole number"),
    (float, "a number"),
    (str, "text"),
    (list, "an array"),
    (dict, "a table"),
)


def _toml_kind(value: object) -> str:
    """The kind of a TOML value, as a message names it."""
    return next((name for kind, name in _TOML_KINDS if isinstance(value, kind)), "a date or time")


def _literal_secrets(connector_class: type[Connector], saved: SavedSource) -> set[str]:
    """The options of ``saved`` its connector reads as secrets (a connection string holding one).

    A field referenced as ``none`` is given no value: a connector that needs one for the
    source's other options (an account key for ``auth = "account_key"``) refuses it here, in
    those words, rather than when the source is registered.
    """
    unresolved = {key for key, reference in saved.references.items() if reference.kind == "none"}
    present = frozenset(saved.references) - unresolved
    try:
        _, literal = connector_class.prepare(saved.id, saved.options, {}, present_secrets=present)
    except ConfigurationError:
        if not unresolved:
            raise
        connector_class.prepare(saved.id, saved.options, {}, present_secrets=frozenset(saved.references))
        key = sorted(unresolved)[0]
        raise ConfigurationError(
            f'{key} = "none" gives it no value, and a {saved.type} source with these options needs '
            f"one: give it as env:VAR, prompt or keyring:SERVICE/USERNAME",
            source=saved.id,
        ) from None
    return set(literal)

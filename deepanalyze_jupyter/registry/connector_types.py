"""The source types a registry knows, and the connector class of each.

Three kinds of entry: the built-in connectors (named by import path), those installed
packages declare in the ``deepanalyze_jupyter.connectors`` entry-point group, and classes
registered at run time. A connector named by path or entry point is imported on first
use, so that loading the extension imports no client library it does not need.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ..connectors import BUILTIN_CONNECTORS, ENTRY_POINT_GROUP, Connector
from ..errors import ConfigurationError, UnknownSourceType, did_you_mean

__all__ = ["ConnectorTypes"]


class ConnectorTypes:
    """Source type name -> connector class, loaded on first use."""

    def __init__(self, *, discover: bool = True) -> None:
        self._targets: dict[str, type[Connector] | str | EntryPoint] = dict(BUILTIN_CONNECTORS)
        if discover:
            self.discover()

    def __repr__(self) -> str:
        return f"<ConnectorTypes {self.names}>"

    @property
    def names(self) -> list[str]:
        """The type names sources can be registered with, sorted."""
        return sorted(self._targets)

    def register(self, cls: type[Connector], *, replace: bool = False) -> None:
        """Make ``cls`` the connector for sources of type ``cls.type_name``."""
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise ConfigurationError(f"{cls!r} is not a Connector subclass")
        name = cls.type_name
        if name in self._targets and not replace and self._targets[name] is not cls:
            raise ConfigurationError(f"a connector for type {name!r} is already registered")
        self._targets[name] = cls

    def discover(self) -> list[str]:
        """Add the connectors that installed packages declare as entry points; return their names.

        An entry point never replaces a type already known (a built-in one above all).
        """
        found = []
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if entry.name not in self._targets:
                self._targets[entry.name] = entry
                found.append(entry.name)
        return found

    def connector_class(self, type_name: str, *, source: str | None = None) -> type[Connector]:
        """The connector class for ``type_name``, imported on first use.

        ``source`` names the source asking, for the error message when there is none.
        """
        target = self._targets.get(type_name)
        if target is None:
            raise UnknownSourceType(self._unknown(type_name), source=source)
        if isinstance(target, type):
            return target
        try:
            loaded = _load(target)
        except Exception as error:
            raise ConfigurationError(
                f"the connector for type {type_name!r} cannot be loaded: {type(error).__name__}: {error}",
                source=source,
            ) from error
        if not (isinstance(loaded, type) and issubclass(loaded, Connector)):
            raise ConfigurationError(
                f"the connector for type {type_name!r} is not a Connector subclass", source=source
            )
        self._targets[type_name] = loaded
        return loaded

    def _unknown(self, type_name: str) -> str:
        """The message for an unknown type: the closest known one, or every known one."""
        hint = did_you_mean(type_name, self.names)
        return f"unknown source type {type_name!r}" + (hint or f"; known types: {', '.join(self.names)}")


def _load(target: str | EntryPoint) -> Any:
    # Not isinstance(target, EntryPoint): once the importlib_metadata backport is imported (keyring
    # imports it), entry_points() hands out the backport's EntryPoint objects.
    if not isinstance(target, str):
        return target.load()
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)

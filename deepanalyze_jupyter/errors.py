"""The one exception tree of deepanalyze-jupyter.

Every error the package raises on purpose derives from :class:`DataSourceError`,
names the data source it concerns when there is one, and never carries a secret::

    DataSourceError
    ├── ConfigurationError          bad or missing options, unknown type, literal secret
    │   └── UnknownSourceType
    ├── RegistryError
    │   ├── DataSourceExists
    │   └── DataSourceNotFound
    ├── CredentialError             tampered or foreign token, missing secret
    ├── ConnectionFailed            unreachable host, dropped connection, timeout
    │   └── AuthenticationFailed    wrong password, key or token
    ├── ItemNotFound                missing table, container, blob or file
    ├── QueryError                  the server refused or failed the query
    │   └── WriteConflict           the target exists, or another writer changed it meanwhile
    ├── FormatError                 unsupported or malformed file
    └── OperationCancelled          interrupted by the user

Library errors (psycopg, azure.core, cryptography) are wrapped at the connector
boundary with ``raise ... from``; the message is rebuilt so that it holds no secret.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = [
    "AuthenticationFailed",
    "ConfigurationError",
    "ConnectionFailed",
    "CredentialError",
    "DataSourceError",
    "DataSourceExists",
    "DataSourceNotFound",
    "FormatError",
    "ItemNotFound",
    "OperationCancelled",
    "QueryError",
    "RegistryError",
    "UnknownSourceType",
    "WriteConflict",
]

#: How much of a mistyped word is compared with the known ones (the comparison is quadratic).
_SUGGESTION_LENGTH = 80


class DataSourceError(Exception):
    """Base class of every error raised by deepanalyze-jupyter.

    ``str(error)`` is one line: ``"<source>: <problem>"`` when a source is known.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.message = message
        self.source = source
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.source}: {self.message}" if self.source else self.message
        # One line even when a name or a message quotes text typed with line breaks in it.
        return " ".join(text.splitlines())

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.message, self.source))


def _rebuild(cls: type[DataSourceError], message: str, source: str | None) -> DataSourceError:
    return cls(message, source=source)


class ConfigurationError(DataSourceError):
    """A data source's type, options or secrets are missing or invalid."""


class UnknownSourceType(ConfigurationError):
    """No connector is registered for the requested source type."""


class RegistryError(DataSourceError):
    """The registry cannot do what was asked with the ids it holds."""


class DataSourceExists(RegistryError):
    """A data source with this id is already registered."""


class DataSourceNotFound(RegistryError):
    """No data source with this id is registered."""


class CredentialError(DataSourceError):
    """A secret cannot be stored or recovered (tampered token, other key, missing)."""


class ConnectionFailed(DataSourceError):
    """The service could not be reached, or the connection broke."""


class AuthenticationFailed(ConnectionFailed):
    """The service was reached but refused the credentials."""


class ItemNotFound(DataSourceError):
    """A table, schema, container, blob or file does not exist."""


class QueryError(DataSourceError):
    """The service refused or failed a query."""


class WriteConflict(QueryError):
    """A write found its target taken (no overwrite asked), or changed by another writer."""


class FormatError(DataSourceError):
    """A file's format is unsupported, or its content is malformed."""


class OperationCancelled(DataSourceError):
    """The user interrupted the operation; the work was stopped on the service too."""


#: What a name must look like to be repeated in an error: an option or key name's letters.
_SHOWABLE_NAME = re.compile(r"-{0,2}[a-z_][a-z_-]{0,39}")


def unknown_name(kind: str, name: str, *, quoted: bool = True) -> str:
    """``unknown option 'colour'``, or, for a name that no option name resembles (a value
    typed in the wrong place, perhaps a secret), the kind alone: the name is not repeated."""
    if _SHOWABLE_NAME.fullmatch(name):
        return f"unknown {kind} {name!r}" if quoted else f"unknown {kind} {name}"
    return f"unknown {kind} (not repeated here: its name has characters no {kind} name has)"


def quoted(text: str, limit: int = 40) -> str:
    """``text`` quoted for an error line, cut to about ``limit`` shown characters: the cut is
    made on the quoted form, so a text of escapes (``\\x00`` is four) stays short too."""
    shown = repr(str(text))
    return shown if len(shown) <= limit + 2 else f"{shown[: limit + 1]}\u2026 ({len(text)} characters)"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the choice closest to a mistyped ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word)[:_SUGGESTION_LENGTH], list(choices), n=1)
    return f"; did you mean {close[0]}?" if close else ""

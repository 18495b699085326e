"""Plain data of the package: secrets, option specifications and data-source configs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from .errors import ConfigurationError, quoted
from .redaction import MASK, sanitize

__all__ = [
    "SOURCE_ID_RULE",
    "DataSourceConfig",
    "OptionSpec",
    "Secret",
    "as_secrets",
    "is_source_id",
    "validate_source_id",
]

_SOURCE_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,62}")


class Secret:
    """A secret string that shows as ``********`` in every repr, str and format.

    The value is read only through :meth:`reveal`, so that a secret never lands in an
    output by accident (``print(config)``, a traceback's locals, a log line).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """Return the secret's text. Call it only where the secret is used."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("a Secret cannot be pickled")


def as_secrets(values: Mapping[str, Secret | str] | None) -> dict[str, Secret]:
    """Secret fields as given, plain strings wrapped in :class:`Secret`."""
    return {
        key: value if isinstance(value, Secret) else Secret(value) for key, value in (values or {}).items()
    }


@dataclass(frozen=True)
class OptionSpec:
    """One option a connector accepts: what the magics parse and the forms show."""

    name: str
    kind: type = str
    help: str = ""
    secret: bool = False
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    #: Show and require this option only when another option has one of these values,
    #: e.g. ``("auth", ("account_key",))``.
    when: tuple[str, tuple[str, ...]] | None = None
    #: A short label for forms; defaults to the name.
    label: str = ""
    #: Given any number of times (``--set a=1 --set b=2``); the value is a list.
    repeatable: bool = False

    @property
    def title(self) -> str:
        """The label shown next to the field in a form."""
        return self.label or self.name.replace("_", " ").capitalize()

    def applies(self, options: Mapping[str, Any]) -> bool:
        """Tell whether this option is in play for the given (other) options."""
        if self.when is None:
            return True
        other, values = self.when
        return options.get(other) in values

    def coerce(self, value: Any, *, source: str | None = None) -> Any:
        """Convert a value typed as text into this option's kind, or explain why not."""
        if self.repeatable and value is not None:
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, (list, tuple)):
                raise ConfigurationError(
                    f"option {self.name!r} takes a list of values, got {_shown(value, self)}", source=source
                )
            single = replace(self, repeatable=False)
            return [single.coerce(item, source=source) for item in values]
        if value is None or isinstance(value, self.kind):
            result = value
        elif self.kind is bool:
            result = _parse_bool(value, self, source)
        else:
            try:
                result = self.kind(value)
            except (TypeError, ValueError):
                raise ConfigurationError(
                    f"option {self.name!r} must be {_kind_name(self.kind)}, got {_shown(value, self)}",
                    source=source,
                ) from None
        if self.choices and result is not None and result not in self.choices:
            raise ConfigurationError(
                f"option {self.name!r} must be one of {', '.join(self.choices)}; got {_shown(value, self)}",
                source=source,
            )
        return result


def _parse_bool(value: Any, spec: OptionSpec, source: str | None) -> bool:
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(
        f"option {spec.name!r} must be true or false, got {_shown(value, spec)}", source=source
    )


def _kind_name(kind: type) -> str:
    return {int: "a whole number", float: "a number", str: "text"}.get(kind, kind.__name__)


def _shown(value: Any, spec: OptionSpec) -> str:
    return MASK if spec.secret else repr(value)[:80]


#: What a source id is made of, for messages.
SOURCE_ID_RULE = "use letters, digits, '_', '-' or '.', starting with a letter or '_' (at most 63 characters)"


def is_source_id(source_id: object) -> bool:
    """Whether ``source_id`` is a usable id (a name like ``sales_db``)."""
    return isinstance(source_id, str) and _SOURCE_ID_RE.fullmatch(source_id) is not None


def validate_source_id(source_id: object) -> str:
    """Return ``source_id`` if it is a usable id (a name like ``sales_db``), else raise."""
    if not is_source_id(source_id):
        raise ConfigurationError(f"invalid source id {quoted(str(source_id), 80)}: {SOURCE_ID_RULE}")
    return str(source_id)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class DataSourceConfig:
    """What defines a data source: its id, type, options and (kept apart) its secrets.

    ``secrets`` maps field names to :class:`Secret` values (plain strings are wrapped);
    no repr or str of a config shows them. The registry stores them encrypted.
    """

    id: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    name: str = ""
    created_at: datetime = field(default_factory=_now)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_source_id(self.id)
        object.__setattr__(self, "secrets", as_secrets(self.secrets))
        object.__setattr__(self, "options", dict(self.options))
        object.__setattr__(self, "metadata", dict(self.metadata))
        if not self.name:
            object.__setattr__(self, "name", self.id)

    @property
    def display_name(self) -> str:
        """The name shown to people: the given name, else the id."""
        return self.name or self.id

    def to_dict(self, *, include_secrets: bool = False) -> dict[str, Any]:
        """A display-ready dict: options sanitized, secrets masked unless asked for."""
        secrets: dict[str, str] = {
            key: (value.reveal() if include_secrets else MASK) for key, value in self.secrets.items()
        }
        return {
            "id": self.id,
            "type": self.type,
            "name": self.display_name,
            "options": dict(self.options) if include_secrets else sanitize(dict(self.options)),
            "secrets": secrets,
            "created_at": self.created_at,
            "metadata": dict(self.metadata) if include_secrets else sanitize(dict(self.metadata)),
        }

    def __repr__(self) -> str:
        options = sanitize(dict(self.options))
        secrets = {key: MASK for key in self.secrets}
        return (
            f"DataSourceConfig(id={self.id!r}, type={self.type!r}, name={self.display_name!r}, "
            f"options={options!r}, secrets={secrets!r})"
        )

    __str__ = __repr__

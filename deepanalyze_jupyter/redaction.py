"""Masking of secrets, in structures meant for display and in free text.

Two tools live here, and nothing else in the package masks secrets by itself:

- :func:`sanitize` masks what *looks* secret: values under secret-sounding keys at
  any depth (case-insensitive) and secrets embedded in strings (the password in a
  PostgreSQL URI or key=value DSN, ``AccountKey=``/``SharedAccessSignature=`` in an
  Azure connection string, ``sig=`` in a SAS URL).
- :class:`Redactor` masks what *is* secret: every value registered with it, wherever
  it appears in a text. It is the safety net under outputs and tracebacks.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "MIN_REDACTED_LENGTH", "Redactor", "is_secret_key", "mask_text", "sanitize"]

MASK = "********"

#: Values shorter than this are not masked by :class:`Redactor`: masking ``"abc"``
#: would garble ordinary text and leak the secret's position anyway.
MIN_REDACTED_LENGTH = 6

#: Words that name a secret wherever they stand in a key (``PGPASSWORD``, ``sas_token``),
#: compared with separators removed (``Account-Key`` -> ``accountkey``).
_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "accountkey",
    "connectionstring",
    "connstr",
    "credential",
    "apikey",
    "privatekey",
    "signature",
)
#: Short words that name a secret only as a whole word of the key (``sig``, not ``design``).
_SECRET_KEY_WORDS = frozenset({"pwd", "pass", "sas", "sig", "key"})
_KEY_WORD_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

# scheme://user:password@host  ->  scheme://user:********@host; up to the last '@' of the
# authority, since a password typed with a raw '@' in it is a common mistake.
_URI_PASSWORD_RE = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/?#@\s]*:)(?P<secret>[^/\s]+)(?=@)", re.I)
# password='it\'s' or password=plain\ text (libpq key=value DSN: a backslash escapes any character)
_DSN_PASSWORD_RE = re.compile(
    r"(?P<head>\b(?:password|sslpassword)\s*=\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.|'')*'|(?:\\.|[^\s'\\])(?:\\.|[^\s\\])*)",
    re.I,
)
# AccountKey=...; SharedAccessSignature=...; in Azure connection strings
_AZURE_PART_RE = re.compile(r"(?P<head>\b(?:AccountKey|SharedAccessSignature)\s*=\s*)(?P<secret>[^;]+)", re.I)
# sig=... in a SAS query string or URL
_SAS_SIG_RE = re.compile(r"(?P<head>(?:^|[?&;\s])sig=)(?P<secret>[^&;\s\"']+)", re.I)
# password / token query parameters in URLs: ?password=x&...
_QUERY_SECRET_RE = re.compile(
    r"(?P<head>[?&](?:password|token|secret|api_key|apikey)=)(?P<secret>[^&#\s]+)", re.I
)

_EMBEDDED_SECRET_PATTERNS = (
    _URI_PASSWORD_RE,
    _DSN_PASSWORD_RE,
    _AZURE_PART_RE,
    _SAS_SIG_RE,
    _QUERY_SECRET_RE,
)


def is_secret_key(key: object) -> bool:
    """Tell whether a mapping key names a secret (``Password``, ``sas_token``, ...)."""
    if not isinstance(key, str):
        return False
    words = [word.lower() for word in _KEY_WORD_RE.findall(key)]
    joined = "".join(words)
    return any(part in joined for part in _SECRET_KEY_PARTS) or not _SECRET_KEY_WORDS.isdisjoint(words)


def mask_text(text: str) -> str:
    """Mask secrets embedded in ``text``: URI passwords, DSN passwords, Azure keys, SAS sigs."""
    for pattern in _EMBEDDED_SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group("head") + MASK, text)
    return text


def sanitize(value: Any, *, extra_secret_keys: Iterable[str] = ()) -> Any:
    """Return a copy of ``value`` fit for display, with every secret masked.

    Mappings are walked at any depth; a value under a secret-sounding key (or one of
    ``extra_secret_keys``, compared case-insensitively) becomes :data:`MASK`; every
    string is passed through :func:`mask_text`. Lists and tuples are walked too.
    """
    extra = frozenset(k.lower() for k in extra_secret_keys)
    return _sanitize(value, extra)


def _sanitize(value: Any, extra: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {
            key: (
                MASK
                if _is_secret(key, extra) and value[key] not in (None, "")
                else _sanitize(value[key], extra)
            )
            for key in value
        }
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list):
        return [_sanitize(item, extra) for item in value]
    if isinstance(value, tuple):
        return tuple(_sanitize(item, extra) for item in value)
    return value


def _is_secret(key: object, extra: frozenset[str]) -> bool:
    return is_secret_key(key) or (isinstance(key, str) and key.lower() in extra)


class Redactor:
    """Replaces every registered secret value in a text by :data:`MASK`.

    Thread-safe: outputs are written from the kernel's threads while sources are
    added on another. Values shorter than :data:`MIN_REDACTED_LENGTH` are ignored.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[str, int]] = {}
        self._pattern: re.Pattern[str] | None = None

    def __repr__(self) -> str:
        return f"<Redactor watching {len(self._pattern_values())} value(s)>"

    def add(self, owner: str, values: Iterable[str]) -> None:
        """Watch ``values`` (the secrets of source ``owner``), adding to what it had."""
        with self._lock:
            counted = self._values.setdefault(owner, {})
            for value in values:
                for piece in _secret_pieces(value):
                    counted[piece] = counted.get(piece, 0) + 1
            self._pattern = None

    def replace(self, owner: str, values: Iterable[str]) -> None:
        """Watch exactly ``values`` for ``owner``, forgetting what it had before."""
        with self._lock:
            self._values.pop(owner, None)
        self.add(owner, values)

    def discard(self, owner: str) -> None:
        """Stop watching the secrets of ``owner``."""
        with self._lock:
            self._values.pop(owner, None)
            self._pattern = None

    def redact(self, text: str) -> str:
        """Return ``text`` with every watched value masked."""
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def contains_secret(self, text: str) -> bool:
        """Tell whether ``text`` holds a watched value."""
        pattern = self._compiled()
        return pattern is not None and pattern.search(text) is not None

    def _pattern_values(self) -> set[str]:
        return {value for counted in self._values.values() for value in counted}

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None:
                values = sorted(self._pattern_values(), key=len, reverse=True)
                if values:
                    self._pattern = re.compile("|".join(re.escape(v) for v in values))
            return self._pattern


def _secret_pieces(value: str) -> list[str]:
    """The parts of a secret worth masking: itself, and the secrets embedded in it."""
    pieces = [value]
    for pattern in _EMBEDDED_SECRET_PATTERNS:
        for match in pattern.finditer(value):
            pieces.append(match.group("secret").strip("'"))
    return [piece for piece in pieces if len(piece) >= MIN_REDACTED_LENGTH]

"""What *looks* secret: secret-sounding keys, and secrets embedded in strings.

:func:`sanitize` masks the values under secret-sounding keys at any depth
(case-insensitive) and every string through :func:`mask_text`, which masks the secrets
embedded in a text: the password in a PostgreSQL URI or key=value DSN,
``AccountKey=``/``SharedAccessSignature=`` in an Azure connection string, ``sig=`` in a
SAS URL. Every scan is linear in the length of the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

__all__ = ["MASK", "embedded_secrets", "is_secret_key", "mask_text", "sanitize"]

MASK = "********"

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
# authority, since a password typed with a raw '@' in it is a common mistake. The scheme
# starts where no scheme character precedes it, so a long run of letters is tried once.
_URI_PASSWORD_RE = re.compile(
    r"(?P<head>(?<![a-z0-9+.\-])[a-z][a-z0-9+.\-]*://[^:/?#@\s]*:)(?P<secret>[^/\s]+)(?=@)", re.I
)
# password='it\'s' or password=plain\ text (libpq key=value DSN: a backslash escapes any character);
# nothing follows the value, so the runs inside it never backtrack
_DSN_PASSWORD_RE = re.compile(
    r"(?P<head>\b(?:password|sslpassword)\s*=\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.|'')*'|(?:\\.|[^\s'\\])(?:[^\s\\]+|\\.)*)",
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

_BACKSLASH_ESCAPE_RE = re.compile(r"\\(.)", re.S)

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


def embedded_secrets(value: str) -> list[tuple[str, ...]]:
    """The secrets embedded in ``value`` (a DSN's password...), each as written and unescaped."""
    found: list[tuple[str, ...]] = []
    for pattern in _EMBEDDED_SECRET_PATTERNS:
        for match in pattern.finditer(value):
            written = match.group("secret")
            unquoted = written[1:-1] if len(written) > 1 and written[0] == written[-1] == "'" else written
            variants = (written, unquoted, unquote(unquoted), _BACKSLASH_ESCAPE_RE.sub(r"\1", unquoted))
            found.append(tuple(dict.fromkeys(variant for variant in variants if variant != value)))
    return [variants for variants in found if variants]

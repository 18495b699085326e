"""Masking of secrets, in structures meant for display and in free text.

Two tools live here, and nothing else in the package masks secrets by itself:

- :func:`sanitize` masks what *looks* secret: values under secret-sounding keys at
  any depth (case-insensitive) and secrets embedded in strings (the password in a
  PostgreSQL URI or key=value DSN, ``AccountKey=``/``SharedAccessSignature=`` in an
  Azure connection string, ``sig=`` in a SAS URL).
- :class:`Redactor` masks what *is* secret: every value registered with it, in every
  form a display or serializer gives it (:func:`secret_forms`) and in the pieces a
  display cuts long values into, wherever it appears in a text. It is the safety net
  under outputs and tracebacks, and it keeps keyed hashes of those texts, never the
  texts.

Every scan here is linear in the length of the text.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from .secret_hashes import KeyedTextHashes

__all__ = [
    "COMMON_WORDS",
    "FRAGMENT_LENGTH",
    "MASK",
    "MIN_REDACTED_LENGTH",
    "Redactor",
    "SecretNotMaskedWarning",
    "is_secret_key",
    "is_unmaskable",
    "mask_text",
    "masked_texts",
    "sanitize",
    "secret_forms",
]

MASK = "********"

#: Values shorter than this are not masked by :class:`Redactor`: masking ``"abc"``
#: would garble ordinary text and leak the secret's position anyway.
MIN_REDACTED_LENGTH = 6
#: Any this many characters in a row of a long secret (or of any of its forms) are masked.
FRAGMENT_LENGTH = 24
#: A secret of this many characters or more is long.
LONG_SECRET_LENGTH = 32
#: Any this many characters in a row of a shorter secret of more characters are masked.
SHORT_FRAGMENT_LENGTH = 16

#: Words that appear in ordinary output: a secret equal to one cannot be masked without
#: telling it (SQL keywords, usual user, schema and database names, usual passwords).
COMMON_WORDS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "create",
        "schema",
        "column",
        "values",
        "default",
        "primary",
        "foreign",
        "unique",
        "references",
        "distinct",
        "between",
        "returning",
        "exists",
        "integer",
        "bigint",
        "numeric",
        "boolean",
        "varchar",
        "timestamp",
        "interval",
        "database",
        "cascade",
        "restrict",
        "constraint",
        "public",
        "postgres",
        "postgresql",
        "pg_catalog",
        "information_schema",
        "template0",
        "template1",
        "admin",
        "administrator",
        "root",
        "guest",
        "tester",
        "testing",
        "master",
        "system",
        "sqlite",
        "azure",
        "azurite",
        "devstoreaccount1",
        "storage",
        "container",
        "localhost",
        "example",
        "sample",
        "password",
        "passwd",
        "secret",
        "changeme",
        "letmein",
        "welcome",
        "qwerty",
        "123456",
        "1234567",
        "12345678",
        "123456789",
        "abc123",
        "default_user",
        "readonly",
        "readwrite",
        "analyst",
        "reader",
        "writer",
    }
)


class SecretNotMaskedWarning(UserWarning):
    """A secret is too short, a common word or text of another option: outputs show it as is."""


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


def secret_forms(value: str) -> frozenset[str]:
    """Every text a display or serializer makes of ``value``, of at least 6 characters.

    As is; escaped as ``repr`` and ``ascii`` do (either quote or none escaped), as pandas
    escapes a cell, as ``unicode_escape`` and a bytes ``repr`` do; each of these HTML-escaped (with
    and without quotes, as ``html.escape`` and Jinja do); JSON-escaped; URL-encoded
    (``quote``, ``quote_plus``); and base64 (standard and URL-safe) at each of the three
    alignments it can have inside a longer encoded text.
    """
    escaped = {value, *_escaped_forms(value)}
    forms = set(escaped)
    for text in escaped:
        forms.update(_html_forms(text))
    forms.update({json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]})
    forms.update(_url_forms(value))
    forms.update(_base64_forms(value))
    return frozenset(form for form in forms if len(form) >= MIN_REDACTED_LENGTH)


def fragment_length(value: str) -> int | None:
    """The length of the pieces of a cut ``value`` that are masked (``None``: only whole).

    A display cuts long values (pandas keeps the first 47 characters of a cell, ``%whos``
    the first and last 25): any :data:`FRAGMENT_LENGTH` characters in a row of a secret
    of :data:`LONG_SECRET_LENGTH` or more characters (in any of its forms) are masked,
    and any :data:`SHORT_FRAGMENT_LENGTH` in a row of a shorter one above that length.
    """
    if len(value) >= LONG_SECRET_LENGTH:
        return FRAGMENT_LENGTH
    if len(value) > SHORT_FRAGMENT_LENGTH:
        return SHORT_FRAGMENT_LENGTH
    return None


def masked_texts(value: str, ordinary: Iterable[str] = ()) -> frozenset[str]:
    """Every text :class:`Redactor` masks for ``value``: its forms, cut into fragments if long.

    A value holding embedded secrets (a DSN with its password, a connection string with
    its account key) is masked whole in every form, and each embedded secret also alone,
    in every form and fragment; the rest of such a value (host, user) is not secret, so
    it is not cut into fragments. Whatever :func:`is_unmaskable` holds for (given
    ``ordinary``) is left out, the value or an embedded secret.
    """
    ordinary = tuple(ordinary)
    embedded = _embedded_secrets(value)
    texts: set[str] = set()
    if not is_unmaskable(value, ordinary):
        texts.update(secret_forms(value) if embedded else _forms_and_fragments(value, ordinary))
    for variants in embedded:
        if not any(is_unmaskable(variant, ordinary) for variant in variants):
            for variant in variants:
                texts.update(_forms_and_fragments(variant, ordinary))
    return frozenset(texts)


def is_unmaskable(value: str, ordinary: Iterable[str] = ()) -> bool:
    """Whether masking ``value`` would tell it, so it cannot be protected in outputs.

    True for a value shorter than :data:`MIN_REDACTED_LENGTH`, a common word
    (:data:`COMMON_WORDS`) or a text found in one of ``ordinary`` (the source's id and
    other options): masking ``public`` would mask every schema of that name, and masking
    a password equal to the user name would show ``as '********'`` next to the add line.
    Compared case-insensitively.
    """
    folded = value.casefold()
    if len(value) < MIN_REDACTED_LENGTH or folded in COMMON_WORDS:
        return True
    return any(folded in other.casefold() for other in ordinary)


class Redactor:
    """Replaces every registered secret, in every form a display gives it, by :data:`MASK`.

    It keeps keyed hashes only (:class:`~deepanalyze_jupyter.secret_hashes.KeyedTextHashes`),
    never a secret, and forgets nothing: a secret stays masked for the redactor's lifetime
    (the kernel's), also after its source was removed or the secret replaced. A secret (or
    an embedded secret) for which :func:`is_unmaskable` holds is not masked at all, so that
    the mask never tells it. Thread-safe: outputs are written from the kernel's threads
    while sources are added on another.
    """

    def __init__(self) -> None:
        self._texts = KeyedTextHashes()
        self._lock = threading.Lock()
        self._values: set[bytes] = set()

    def __repr__(self) -> str:
        return f"<Redactor watching {len(self._values)} value(s)>"

    def watch(self, secrets: Mapping[str, str], *, ordinary: Iterable[str] = ()) -> list[str]:
        """Mask ``secrets`` (by field name) from now on, but not what :func:`is_unmaskable` holds for.

        Returns the names of the fields whose value, or a secret embedded in it, is left
        unmasked for that reason; the caller warns about them.
        """
        ordinary = [text for text in ordinary if text]
        texts: set[str] = set()
        unmasked: list[str] = []
        for name, value in secrets.items():
            parts = [(value,), *_embedded_secrets(value)]
            if any(is_unmaskable(text, ordinary) for part in parts for text in part):
                unmasked.append(name)
            texts.update(masked_texts(value, ordinary))
            with self._lock:
                self._values.add(self._texts.fingerprint(value))
        self._texts.add(texts)
        return unmasked

    def add(self, owner: str, values: Iterable[str], *, ordinary: Iterable[str] = ()) -> list[str]:
        """Mask ``values`` (secrets of source ``owner``) from now on; see :meth:`watch`."""
        del owner  # every secret stays masked for the redactor's lifetime, whoever owned it
        return self.watch({str(number): value for number, value in enumerate(values)}, ordinary=ordinary)

    def replace(self, owner: str, values: Iterable[str]) -> None:
        """Mask ``values`` for ``owner`` too; the secrets it replaces stay masked."""
        self.add(owner, values)

    def discard(self, owner: str) -> None:
        """Nothing: a removed source's secrets stay masked for the redactor's lifetime."""

    def redact(self, text: str) -> str:
        """Return ``text`` with every watched text masked."""
        spans = self._texts.spans(text)
        if not spans:
            return text
        parts: list[str] = []
        done = 0
        for start, end in spans:
            parts += [text[done:start], MASK]
            done = end
        parts.append(text[done:])
        return "".join(parts)

    def contains_secret(self, text: str) -> bool:
        """Tell whether ``text`` holds a watched text."""
        return bool(self._texts.spans(text))


def _forms_and_fragments(value: str, ordinary: tuple[str, ...]) -> set[str]:
    """The forms of ``value``, long ones cut into fragments, but no fragment of ordinary text.

    A fragment found in another option (the user name a password starts with) or in a
    common word (``information_sche``) is left out: masking it would tell the secret.
    """
    size = fragment_length(value)
    texts: set[str] = set()
    for form in secret_forms(value):
        if size is None or len(form) <= size:
            texts.add(form)
            continue
        pieces = {form[start : start + size] for start in range(len(form) - size + 1)}
        kept = {piece for piece in pieces if not _is_ordinary_piece(piece, ordinary)}
        texts.update(kept if kept == pieces else {form, *kept})  # the whole form masks what was left out
    return texts


def _is_ordinary_piece(piece: str, ordinary: tuple[str, ...]) -> bool:
    folded = piece.casefold()
    return any(folded in other.casefold() for other in (*ordinary, *COMMON_WORDS))


def _embedded_secrets(value: str) -> list[tuple[str, ...]]:
    """The secrets embedded in ``value`` (a DSN's password...), each as written and unescaped."""
    found: list[tuple[str, ...]] = []
    for pattern in _EMBEDDED_SECRET_PATTERNS:
        for match in pattern.finditer(value):
            written = match.group("secret")
            unquoted = written[1:-1] if len(written) > 1 and written[0] == written[-1] == "'" else written
            variants = (written, unquoted, unquote(unquoted), _BACKSLASH_ESCAPE_RE.sub(r"\1", unquoted))
            found.append(tuple(dict.fromkeys(variant for variant in variants if variant != value)))
    return [variants for variants in found if variants]


def _escaped_forms(value: str) -> set[str]:
    """``repr`` and ``ascii`` escaping (either quote or none escaped), pandas', bytes, and more."""
    forms: set[str] = set()
    for escape in (repr, ascii):
        escapes = [escape(char)[1:-1] for char in value]
        forms.update(
            "".join(
                "\\" + char if char == quote else shown for char, shown in zip(value, escapes, strict=True)
            )
            for quote in ("", "'", '"')
        )
    forms.add(value.translate({9: "\\t", 10: "\\n", 13: "\\r"}))
    forms.add(value.encode("unicode_escape").decode("ascii"))
    forms.add(repr(value.encode("utf-8", "surrogatepass"))[2:-1])
    return forms


def _html_forms(text: str) -> set[str]:
    jinja = html.escape(text, quote=False).replace('"', "&#34;").replace("'", "&#39;")
    return {html.escape(text, quote=False), html.escape(text), jinja}


def _url_forms(value: str) -> set[str]:
    return {
        quote(value, safe="", errors="surrogatepass"),
        quote(value, errors="surrogatepass"),
        quote_plus(value, errors="surrogatepass"),
    }


def _base64_forms(value: str) -> set[str]:
    """Base64 of ``value`` alone, and the part of it fixed at each alignment in a longer text."""
    data = value.encode("utf-8", "surrogatepass")
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(data).decode("ascii"))
        for shift in range(3):
            encoded = encode(bytes(shift) + data).decode("ascii")
            first = -(-8 * shift // 6)  # characters holding bits of the bytes before
            last = 8 * (shift + len(data)) // 6  # characters made of this value's bits alone
            forms.add(encoded[first:last])
    return forms

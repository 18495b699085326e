"""Every text a display or serializer makes of a secret, and which secrets cannot be masked.

What the :class:`~deepanalyze_jupyter.redaction.Redactor` masks for one secret: its
forms (escaped, HTML-escaped, JSON, URL-encoded, base64), cut into fragments when long
(a display cuts long values), and nothing whose mask would tell the secret.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from .patterns import embedded_secrets

__all__ = [
    "COMMON_WORDS",
    "FRAGMENT_LENGTH",
    "MIN_REDACTED_LENGTH",
    "fragment_length",
    "is_unmaskable",
    "masked_texts",
    "secret_forms",
]

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
    embedded = embedded_secrets(value)
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

"""Canary secrets: unique strings planted wherever a secret can live, and the checks that
none of them ever shows up where it must not.

Every check looks for every planted canary in every form it could take on the way out
(as is, repr-escaped, HTML-escaped, JSON-escaped, URL-encoded, URL-decoded, base64), and
for any 24-character fragment of each of those forms (a display that cuts a long value
keeps such a piece); every check is counted, so that a run can say how many
placement x operation x form checks it made.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote

__all__ = ["FRAGMENT_LENGTH", "Canary", "CanaryBook", "error_texts", "texts_of"]

#: Shortest form searched for: shorter pieces would match ordinary text by chance.
_MIN_FORM_LENGTH = 8
#: Any piece this long of a form counts as the secret (a display cut it, or split it).
FRAGMENT_LENGTH = 24
#: Characters that each escaping changes: a canary holding them tells the forms apart.
SPECIAL_CHARACTERS = "'\"\\&<> %+/="


def encoded_forms(text: str) -> dict[str, str]:
    """``text`` as each display or serializer may write it, by the name of the form."""
    raw = text.encode("utf-8")
    forms = {
        "plain": text,
        "repr-escaped": repr(text)[1:-1],
        # inside a text holding both quotes, repr escapes the single ones
        "repr-escaped among both quotes": repr(text + "'\"")[1:-4],
        "HTML-escaped": html.escape(text),
        "HTML-escaped, quotes kept": html.escape(text, quote=False),
        "JSON-escaped": json.dumps(text)[1:-1],
        "JSON-escaped, ASCII": json.dumps(text, ensure_ascii=True)[1:-1],
        "URL-encoded": quote(text, safe=""),
        "URL-encoded (form)": quote_plus(text),
        "URL-decoded": unquote(text),
        "base64": base64.b64encode(raw).decode(),
        "base64 (URL-safe)": base64.urlsafe_b64encode(raw).decode(),
    }
    # Inside a longer base64 text the secret's own encoding depends on where it starts:
    # keep the part that does not depend on the neighbouring bytes, for each of the 3 offsets.
    for offset in (1, 2):
        shifted = base64.b64encode(b"\0" * offset + raw).decode()
        forms[f"base64 at offset {offset}"] = shifted[4:-4]
    return forms


@dataclass(frozen=True)
class Canary:
    """One planted secret: where it lives, and its text."""

    placement: str
    value: str
    #: Further texts that count as the secret escaping (the ``sig=`` of a SAS token).
    parts: tuple[str, ...] = ()

    def named_forms(self) -> dict[str, str]:
        """Every text whose presence means the secret got out, by the name of its form."""
        found: dict[str, str] = {}
        for index, text in enumerate((self.value, *self.parts)):
            label = "" if index == 0 else " of a part"
            for name, form in encoded_forms(text).items():
                if len(form) >= _MIN_FORM_LENGTH:
                    found.setdefault(form, name + label)
        return {name: form for form, name in found.items()}

    def forms(self) -> set[str]:
        """Every text whose presence means the secret got out."""
        return set(self.named_forms().values())


@dataclass
class CanaryBook:
    """The canaries of a test run, and the record of every check made against them."""

    canaries: list[Canary] = field(default_factory=list)
    operations: dict[str, int] = field(default_factory=dict)
    #: Canary x operation checks made: each check looks for every canary planted so far.
    checks: int = 0
    #: Canary x operation x form checks made (each form also as any of its fragments).
    form_checks: int = 0
    _index: _FormIndex | None = field(default=None, repr=False)

    def make(self, placement: str, *, base64_key: bool = False, special: bool = False) -> str:
        """A new unique canary for ``placement``: valid base64 when it must pass for a key,
        holding quotes, a backslash, ``&<>`` and URL characters when ``special``."""
        if base64_key:
            value = base64.b64encode(b"canary!" + secrets.token_bytes(26)).decode()
        elif special:
            value = f"cnry{secrets.token_hex(6)}{SPECIAL_CHARACTERS}{secrets.token_hex(6)}"
        else:
            value = f"cnry{secrets.token_hex(10)}"
        return self.plant(placement, value)

    def plant(self, placement: str, value: str) -> str:
        """Record ``value`` (made elsewhere, e.g. a SAS token) as the canary of ``placement``."""
        if any(canary.placement == placement for canary in self.canaries):
            raise ValueError(f"placement {placement!r} has a canary already")
        parts = tuple(value for key, value in parse_qsl(value) if key == "sig")
        self.canaries.append(Canary(placement, value, parts))
        self._index = None
        return value

    def value(self, placement: str) -> str:
        """The canary planted at ``placement``."""
        return next(canary.value for canary in self.canaries if canary.placement == placement)

    def leaks(self, text: str) -> list[str]:
        """The placements whose canary occurs in ``text``, in any form or as a fragment of one."""
        return sorted({placement for placement, _ in self.found(text)})

    def found(self, text: str) -> set[tuple[str, str]]:
        """(placement, form) of every canary form that occurs in ``text``, whole or in part."""
        if self._index is None:
            self._index = _FormIndex(self.canaries)
        return self._index.search(text)

    def check(self, operation: str, *texts: object) -> None:
        """Fail if any canary occurs in ``texts`` (strings, bytes or objects); count the check."""
        joined = "\n".join(texts_of(texts))
        found = self.found(joined)
        assert not found, f"{operation}: leaked {sorted(found)}"
        self.operations[operation] = self.operations.get(operation, 0) + 1
        self.checks += len(self.canaries)
        self.form_checks += sum(len(canary.named_forms()) for canary in self.canaries)

    def check_file(self, operation: str, path: Path) -> None:
        """Fail if any canary occurs in the bytes of file ``path`` (and its -wal/-journal)."""
        contents = [path.read_bytes()]
        for suffix in ("-wal", "-journal"):
            sibling = path.with_name(path.name + suffix)
            if sibling.exists():
                contents.append(sibling.read_bytes())
        self.check(operation, *contents)

    def summary(self) -> str:
        """One line for the end of the run."""
        return (
            f"canary suite: {len(self.canaries)} placements, {len(self.operations)} operations checked "
            f"{sum(self.operations.values())} times: {self.checks} placement x operation checks, "
            f"{self.form_checks} placement x operation x form checks (each form whole and as any "
            f"{FRAGMENT_LENGTH}-character fragment)"
        )


class _FormIndex:
    """Every form of every canary, whole when short and as its fragments when long, for one
    pass over a text: a text's windows are looked up, not each form searched for in turn."""

    def __init__(self, canaries: Iterable[Canary]) -> None:
        self.short: dict[str, tuple[str, str]] = {}
        self.fragments: dict[str, tuple[str, str]] = {}
        for canary in canaries:
            for name, form in canary.named_forms().items():
                if len(form) < FRAGMENT_LENGTH:
                    self.short.setdefault(form, (canary.placement, name))
                    continue
                for start in range(len(form) - FRAGMENT_LENGTH + 1):
                    self.fragments.setdefault(form[start : start + FRAGMENT_LENGTH], (canary.placement, name))

    def search(self, text: str) -> set[tuple[str, str]]:
        found = {where for form, where in self.short.items() if form in text}
        fragments, size = self.fragments, FRAGMENT_LENGTH
        for start in range(len(text) - size + 1):
            where = fragments.get(text[start : start + size])
            if where is not None:
                found.add(where)
        return found


def texts_of(values: Iterable[object]) -> list[str]:
    """Flatten strings, bytes, exceptions, mappings and sequences into texts to search."""
    found: list[str] = []
    for value in values:
        _collect(value, found, depth=0)
    return found


def _collect(value: Any, found: list[str], *, depth: int) -> None:
    if depth > 12 or value is None:
        return
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, (bytes, bytearray)):
        found.append(bytes(value).decode("utf-8", errors="replace"))
        found.append(bytes(value).decode("latin-1"))
    elif isinstance(value, BaseException):
        found.extend(error_texts(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect(key, found, depth=depth + 1)
            _collect(item, found, depth=depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect(item, found, depth=depth + 1)
    else:
        found.append(repr(value))
        found.append(str(value))


def error_texts(error: BaseException) -> list[str]:
    """Everything an error can show: str, repr, args, notes, and the full formatted chain."""
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), json.dumps([repr(arg) for arg in current.args])]
        texts += [str(note) for note in getattr(current, "__notes__", ())]
        current = current.__cause__ or current.__context__
    return texts

"""Canary secrets: unique strings planted wherever a secret can live, and the checks that
none of them ever shows up where it must not.

Every check looks for every planted canary in every form it could take on the way out
(as is, URL-quoted, URL-unquoted), and is counted, so that a run can say how many
placement x operation checks it made.
"""

from __future__ import annotations

import base64
import json
import secrets
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

__all__ = ["Canary", "CanaryBook", "error_texts", "texts_of"]

#: Shortest form searched for: shorter pieces would match ordinary text by chance.
_MIN_FORM_LENGTH = 8


@dataclass(frozen=True)
class Canary:
    """One planted secret: where it lives, and its text."""

    placement: str
    value: str
    #: Further texts that count as the secret escaping (the ``sig=`` of a SAS token).
    parts: tuple[str, ...] = ()

    def forms(self) -> set[str]:
        """Every text whose presence means the secret got out."""
        found = set()
        for text in (self.value, *self.parts):
            found.update({text, quote(text, safe=""), unquote(text)})
        return {form for form in found if len(form) >= _MIN_FORM_LENGTH}


@dataclass
class CanaryBook:
    """The canaries of a test run, and the record of every check made against them."""

    canaries: list[Canary] = field(default_factory=list)
    operations: dict[str, int] = field(default_factory=dict)
    #: Canary x operation checks made: each check looks for every canary planted so far.
    checks: int = 0

    def make(self, placement: str, *, base64_key: bool = False) -> str:
        """A new unique canary for ``placement`` (valid base64 when it must pass for a key)."""
        if base64_key:
            value = base64.b64encode(b"canary!" + secrets.token_bytes(26)).decode()
        else:
            value = f"cnry{secrets.token_hex(10)}"
        return self.plant(placement, value)

    def plant(self, placement: str, value: str) -> str:
        """Record ``value`` (made elsewhere, e.g. a SAS token) as the canary of ``placement``."""
        if any(canary.placement == placement for canary in self.canaries):
            raise ValueError(f"placement {placement!r} has a canary already")
        parts = tuple(value for key, value in parse_qsl(value) if key == "sig")
        self.canaries.append(Canary(placement, value, parts))
        return value

    def value(self, placement: str) -> str:
        """The canary planted at ``placement``."""
        return next(canary.value for canary in self.canaries if canary.placement == placement)

    def leaks(self, text: str) -> list[str]:
        """The placements whose canary occurs in ``text``."""
        return [canary.placement for canary in self.canaries if any(f in text for f in canary.forms())]

    def check(self, operation: str, *texts: object) -> None:
        """Fail if any canary occurs in ``texts`` (strings, bytes or objects); count the check."""
        joined = "\n".join(texts_of(texts))
        leaked = self.leaks(joined)
        assert not leaked, f"{operation}: canary of {leaked} leaked"
        self.operations[operation] = self.operations.get(operation, 0) + 1
        self.checks += len(self.canaries)

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
            f"{sum(self.operations.values())} times: {self.checks} placement x operation checks"
        )


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

"""What *is* secret: every secret registered, masked in every form wherever it appears.

:class:`Redactor` is the safety net under outputs and tracebacks; it keeps keyed hashes
of the texts it masks, never the texts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from ..secret_hashes import KeyedTextHashes
from .forms import is_unmaskable, masked_texts
from .patterns import MASK, embedded_secrets

__all__ = ["Redactor", "SecretNotMaskedWarning"]


class SecretNotMaskedWarning(UserWarning):
    """A secret is too short, a common word or text of another option: outputs show it as is."""


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
            parts = [(value,), *embedded_secrets(value)]
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

"""Fernet encryption of secrets for the session store.

By default the key is made when the session starts and lives in memory only, so the
encrypted store is worthless outside the kernel that made it. A key can be supplied
(for instance from an environment variable) by users who persist encrypted configs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken

from .errors import CredentialError
from .models import Secret

__all__ = ["CredentialManager", "EncryptedSecrets"]


class CredentialManager:
    """Encrypts secrets into Fernet tokens and decrypts them for a connector's connect."""

    def __init__(self, key: bytes | str | None = None) -> None:
        if key is None:
            key = Fernet.generate_key()
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise CredentialError(
                "the encryption key is not a valid Fernet key (32 url-safe base64-encoded bytes)"
            ) from None

    @classmethod
    def from_env(cls, variable: str = "DEEPANALYZE_FERNET_KEY") -> CredentialManager:
        """Use the key in environment variable ``variable``, or a fresh one if unset."""
        return cls(os.environ.get(variable) or None)

    def __repr__(self) -> str:
        return "<CredentialManager (key hidden)>"

    def encrypt(self, secret: Secret | str) -> bytes:
        """Return the Fernet token of ``secret``."""
        text = secret.reveal() if isinstance(secret, Secret) else secret
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt(self, token: bytes, *, source: str | None = None, field: str = "secret") -> Secret:
        """Return the secret inside ``token``; a tampered or foreign token is refused."""
        try:
            return Secret(self._fernet.decrypt(token).decode("utf-8"))
        except (InvalidToken, ValueError, TypeError):
            raise CredentialError(
                f"the stored {field} cannot be decrypted: it was altered, or made under another key",
                source=source,
            ) from None

    def seal(self, secrets: Mapping[str, Secret], *, source: str) -> EncryptedSecrets:
        """Encrypt a mapping of secrets into an :class:`EncryptedSecrets` for ``source``."""
        return EncryptedSecrets(self, source, {name: self.encrypt(value) for name, value in secrets.items()})


class EncryptedSecrets:
    """The secrets of one source as Fernet tokens; decrypted one field at a time on demand."""

    __slots__ = ("_manager", "_source", "_tokens")

    def __init__(self, manager: CredentialManager, source: str, tokens: Mapping[str, bytes]) -> None:
        self._manager = manager
        self._source = source
        self._tokens = dict(tokens)

    def __repr__(self) -> str:
        return f"<EncryptedSecrets of {self._source!r}: {', '.join(sorted(self._tokens)) or 'none'}>"

    def __contains__(self, name: object) -> bool:
        return name in self._tokens

    @property
    def names(self) -> frozenset[str]:
        """The names of the secret fields held."""
        return frozenset(self._tokens)

    @property
    def tokens(self) -> Mapping[str, bytes]:
        """The raw Fernet tokens (for persisting encrypted configs)."""
        return dict(self._tokens)

    def reveal(self, name: str) -> str | None:
        """Decrypt and return secret ``name``, or ``None`` when the source has none."""
        token = self._tokens.get(name)
        if token is None:
            return None
        return self._manager.decrypt(token, source=self._source, field=name).reveal()

    def secrets(self) -> dict[str, Secret]:
        """Decrypt every field into :class:`Secret` values."""
        return {
            name: self._manager.decrypt(token, source=self._source, field=name)
            for name, token in self._tokens.items()
        }

    def verify(self) -> None:
        """Check that every token decrypts; raise :class:`CredentialError` otherwise."""
        self.secrets()

"""Fernet encryption of secrets for the session store.

By default the key is made when the session starts and lives in memory only, so the
encrypted store is worthless outside the kernel that made it. A key can be supplied
(for instance from an environment variable) by users who persist encrypted configs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from cryptography.fernet import Fernet, InvalidToken

from .errors import CredentialError
from .models import Secret

__all__ = ["CredentialManager", "EncryptedSecrets", "SecretSource"]

#: Fetches a secret when a connector's connect asks for it (a saved source's reference);
#: ``None`` when the client library finds the credential itself.
SecretSource = Callable[[], "Secret | None"]


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

    def seal(
        self,
        secrets: Mapping[str, Secret],
        *,
        source: str,
        sources: Mapping[str, SecretSource] | None = None,
    ) -> EncryptedSecrets:
        """Encrypt a mapping of secrets into an :class:`EncryptedSecrets` for ``source``;
        ``sources`` fetch the other fields when they are revealed."""
        tokens = {name: self.encrypt(value) for name, value in secrets.items()}
        return EncryptedSecrets(self, source, tokens, sources)


class EncryptedSecrets:
    """The secrets of one source as Fernet tokens; decrypted one field at a time on demand.

    A field may instead have a :data:`SecretSource` (a saved source's reference), called
    only when the field is revealed: inside a connector's connect.
    """

    __slots__ = ("_fetched", "_manager", "_source", "_sources", "_tokens")

    def __init__(
        self,
        manager: CredentialManager,
        source: str,
        tokens: Mapping[str, bytes],
        sources: Mapping[str, SecretSource] | None = None,
    ) -> None:
        self._manager = manager
        self._source = source
        self._tokens = dict(tokens)
        self._sources = {name: fetch for name, fetch in (sources or {}).items() if name not in self._tokens}
        self._fetched: dict[str, bytes | None] = {}

    def __repr__(self) -> str:
        return f"<EncryptedSecrets of {self._source!r}: {', '.join(sorted(self.names)) or 'none'}>"

    def __contains__(self, name: object) -> bool:
        return name in self._tokens or name in self._sources

    @property
    def names(self) -> frozenset[str]:
        """The names of the secret fields held (as tokens or as sources)."""
        return frozenset(self._tokens) | frozenset(self._sources)

    @property
    def sources(self) -> Mapping[str, SecretSource]:
        """The fields fetched when revealed, and what fetches each."""
        return dict(self._sources)

    @property
    def tokens(self) -> Mapping[str, bytes]:
        """The raw Fernet tokens (for persisting encrypted configs)."""
        return dict(self._tokens)

    def reveal(self, name: str) -> str | None:
        """Decrypt and return secret ``name``, or ``None`` when the source has none."""
        token = self._tokens[name] if name in self._tokens else self._fetched.get(name)
        if token is not None:
            return self._manager.decrypt(token, source=self._source, field=name).reveal()
        fetch = self._sources.get(name)
        if fetch is None or name in self._fetched:
            return None
        fetched = fetch()  # outside a registry's connect (fetched() did not run)
        return fetched.reveal() if fetched is not None else None

    @asynccontextmanager
    async def fetched(self) -> AsyncIterator[None]:
        """Fetch the fields that have a source for the connect that runs in the block, then forget them.

        Each is fetched in a worker thread, so that a prompt waiting for its answer (or a slow
        keyring) never holds up the event loop, and other sources' work goes on meanwhile.
        """
        try:
            for name, fetch in self._sources.items():
                secret = await asyncio.to_thread(fetch)
                self._fetched[name] = None if secret is None else self._manager.encrypt(secret)
            yield
        finally:
            self._fetched.clear()

    def secrets(self) -> dict[str, Secret]:
        """Decrypt every token into :class:`Secret` values (fields with a source are not fetched)."""
        return {
            name: self._manager.decrypt(token, source=self._source, field=name)
            for name, token in self._tokens.items()
        }

    def verify(self) -> None:
        """Check that every token decrypts; raise :class:`CredentialError` otherwise."""
        self.secrets()

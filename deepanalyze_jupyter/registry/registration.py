"""Registering, checking, changing and removing sources.

Each is refused as a whole (nothing registered or changed) on a duplicate id, an unknown
type, invalid options or a failed connection test; secrets given are known to the guard
before any test, so that an error it raises is masked too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..credentials import EncryptedSecrets, SecretSource
from ..errors import ConnectionFailed, DataSourceExists, DataSourceNotFound
from ..models import DataSourceConfig, Secret, as_secrets, validate_source_id
from .records import SourceRecord
from .table import SourceTable

__all__ = ["SourceRegistration"]

logger = logging.getLogger(__name__)


class SourceRegistration(SourceTable):
    """Adds, checks, updates and removes the table's sources."""

    async def register_data_source(
        self,
        config: DataSourceConfig,
        *,
        test_connection: bool = True,
        secret_sources: Mapping[str, SecretSource] | None = None,
        secret_references: Mapping[str, str] | None = None,
    ) -> DataSourceConfig:
        """Register ``config``; with ``test_connection`` it must connect first.

        ``secret_sources`` fetch secret fields at connect (a saved source's references);
        ``secret_references`` say where secrets given as values came from (``env:VAR``).
        Refused (nothing registered) on a duplicate id, an unknown type, invalid options
        or a failed test. Returns the sanitized config as stored.
        """
        with self.guard.watched_if_refused(str(config.id), config.secrets):
            source_id = validate_source_id(config.id)
            if source_id in self._sources or source_id in self._pending:
                raise DataSourceExists("a data source with this id is already registered", source=source_id)
            source, secrets = self._new_source(config, secret_sources)
        source.references = dict(secret_references or {})
        # Known to the redactor before the test, so that an error it raises is masked too.
        self.guard.watch(source.config, secrets)
        self._pending.add(source_id)
        try:
            if test_connection:
                source.connector = await self.connections.open(source)
        except BaseException:
            self.guard.keep_watching(source_id, secrets)
            raise
        finally:
            self._pending.discard(source_id)
        self._sources[source_id] = source
        logger.info("registered data source %r of type %s", source_id, config.type)
        return self.get_config(source_id)

    async def check_data_source(self, config: DataSourceConfig) -> str:
        """Connect with ``config`` and make a round trip, without registering anything.

        Returns the line describing what answered; raises like a failed registration.
        """
        with self.guard.watched_if_refused(str(config.id), config.secrets):
            source, secrets = self._new_source(config)
        self.guard.watch(source.config, secrets)
        try:
            connector = await self.connections.open(source)
            try:
                async with self.guard.guard(source.config.id, ConnectionFailed):
                    return await connector.test_connection()
            finally:
                await self.connections.close_connector(connector)
        except BaseException:
            self.guard.keep_watching(source.config.id, secrets)
            raise

    def _new_source(
        self, config: DataSourceConfig, secret_sources: Mapping[str, SecretSource] | None = None
    ) -> tuple[SourceRecord, dict[str, Secret]]:
        """Validate ``config`` into an unregistered source, and return its secrets too."""
        source_id = validate_source_id(config.id)
        connector_class = self.connector_types.connector_class(config.type, source=source_id)
        options, secrets = connector_class.prepare(
            source_id, config.options, config.secrets, present_secrets=frozenset(secret_sources or ())
        )
        stored = replace(config, options=options, secrets={})
        sealed = self.credentials.seal(secrets, source=source_id, sources=secret_sources)
        return SourceRecord(stored, sealed, connector_class), secrets

    async def unregister_data_source(self, source_id: str) -> None:
        """Disconnect and forget a source, its secrets and its cached metadata."""
        source = self._source(source_id)
        del self._sources[source_id]
        self.forget(source_id)
        await self.connections.close(source)  # its secrets stay masked, also in an error closing shows
        logger.info("unregistered data source %r", source_id)

    async def update_data_source(
        self,
        source_id: str,
        *,
        options: Mapping[str, Any] | None = None,
        secrets: Mapping[str, Secret | str] | None = None,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        test_connection: bool = True,
        secret_references: Mapping[str, str] | None = None,
    ) -> DataSourceConfig:
        """Change options, rotate secrets or rename a source, keeping its id.

        ``options`` and ``secrets`` are merged into what the source had; a value of
        ``None`` (option) or ``""`` (secret) removes the field. The change is tested
        like a new registration and, if refused, the source stays as it was.
        """
        current = self._source(source_id)
        merged_options = {**current.config.options, **(options or {})}
        new_secrets = as_secrets(secrets)
        secrets = None  # the plain texts given stay out of this frame, which an error may show
        removed = {key for key, value in new_secrets.items() if not value}
        kept_tokens = {key: token for key, token in current.secrets.tokens.items() if key not in new_secrets}
        with self.guard.watched_if_refused(source_id, new_secrets):
            clean_options, clean_secrets = current.connector_class.prepare(
                source_id,
                {key: value for key, value in merged_options.items() if value is not None},
                {key: value for key, value in new_secrets.items() if value},
                present_secrets=frozenset(kept_tokens) | current.secrets.sources.keys(),
            )
        # A DSN given may hold a password (now in clean_secrets): out of this frame, which an
        # error may show.
        options = None
        del merged_options
        tokens = {
            **kept_tokens,
            **{key: self.credentials.encrypt(value) for key, value in clean_secrets.items()},
        }
        for key in removed:
            tokens.pop(key, None)
        config = replace(
            current.config,
            options=clean_options,
            name=current.config.name if name is None else name,
            metadata=current.config.metadata if metadata is None else metadata,
        )
        sources = {key: fetch for key, fetch in current.secrets.sources.items() if key not in new_secrets}
        updated = SourceRecord(
            config, EncryptedSecrets(self.credentials, source_id, tokens, sources), current.connector_class
        )
        updated.references = {
            **{key: text for key, text in current.references.items() if key not in new_secrets},
            **(secret_references or {}),
        }
        self.guard.watch(config, clean_secrets)
        try:
            if test_connection:
                updated.connector = await self.connections.open(updated)
        except BaseException:
            self.guard.keep_watching(source_id, clean_secrets)
            raise
        if self._sources.get(source_id) is not current:
            await self.connections.close(updated)
            raise DataSourceNotFound("the source was removed while it was being updated", source=source_id)
        self._sources[source_id] = updated
        self.forget(source_id)
        await self.connections.close(current)
        logger.info("updated data source %r", source_id)
        return self.get_config(source_id)

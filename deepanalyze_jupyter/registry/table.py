"""The table of registered sources, and the lookups on it (configs, statuses, listing).

:class:`SourceTable` holds the registry's state; registering and changing sources
(:mod:`.registration`) and the operations on them (:mod:`.operations`) build on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Literal

import pandas as pd

from ..cache import MetadataCache
from ..credentials import CredentialManager, SecretSource
from ..errors import DataSourceNotFound
from ..models import DataSourceConfig, Secret
from ..progress import ProgressFactory, null_progress
from ..redaction import MASK, Redactor
from ..results_cache import ResultCache
from .connections import Connections
from .connector_types import ConnectorTypes
from .guard import SecretGuard
from .records import SourceRecord, sources_frame

__all__ = ["DEFAULT_ROW_LIMIT", "RowLimit", "SourceTable"]

#: The row limit applied when a caller does not give one.
DEFAULT_ROW_LIMIT = 100_000

RowLimit = int | None | Literal["default"]


class SourceTable:
    """The sources registered, by id, with what the registry keeps for all of them."""

    def __init__(
        self,
        credentials: CredentialManager | None = None,
        *,
        redactor: Redactor | None = None,
        cache_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        default_row_limit: int | None = DEFAULT_ROW_LIMIT,
        progress: ProgressFactory = null_progress,
        discover: bool = True,
    ) -> None:
        self.credentials = credentials or CredentialManager()
        self.redactor = redactor or Redactor()
        self.guard = SecretGuard(self.redactor)
        self.connector_types = ConnectorTypes(discover=discover)
        self.connections = Connections(self.guard, lambda: self.progress)
        self.cache = MetadataCache(cache_ttl, clock=clock)
        self.results = ResultCache(clock=clock)
        self.default_row_limit = default_row_limit
        self.progress = progress
        self._sources: dict[str, SourceRecord] = {}
        self._pending: set[str] = set()

    # -- sources -------------------------------------------------------------------

    def exists(self, source_id: str) -> bool:
        """Whether a source with this id is registered."""
        return source_id in self._sources

    def __contains__(self, source_id: object) -> bool:
        return source_id in self._sources

    def __len__(self) -> int:
        return len(self._sources)

    @property
    def source_ids(self) -> list[str]:
        """The registered ids, in registration order."""
        return list(self._sources)

    def get_config(self, source_id: str, *, decrypt: bool = False) -> DataSourceConfig:
        """The config of a source: secrets masked, unless ``decrypt`` is asked explicitly."""
        source = self._source(source_id)
        if decrypt:
            return replace(source.config, secrets=source.secrets.secrets())
        return replace(source.config, secrets={name: Secret(MASK) for name in sorted(source.secrets.names)})

    def secret_sources(self, source_id: str) -> Mapping[str, SecretSource]:
        """The secret fields of a source fetched at connect (a saved source's references)."""
        return self._source(source_id).secrets.sources

    def secret_references(self, source_id: str) -> Mapping[str, str]:
        """Where secret fields given as values came from (``env:VAR``), as recorded at add or update."""
        return dict(self._source(source_id).references)

    def list_data_sources(self) -> list[DataSourceConfig]:
        """The sanitized configs of every registered source."""
        return [self.get_config(source_id) for source_id in self._sources]

    def status(self, source_id: str) -> str:
        """``connected``, ``not connected`` or ``error: <reason>``, as of the last operation.

        No round trip is made: a server that went down since the last operation shows
        as ``connected`` until the next operation fails (``test`` makes one now).
        """
        return self._source(source_id).status

    def last_success(self, source_id: str) -> datetime | None:
        """When an operation on the source last succeeded (``None``: never)."""
        return self._source(source_id).last_success

    def sources_frame(self) -> pd.DataFrame:
        """One row per source: id, type, name, status, last_success, created (never a secret)."""
        return sources_frame(self._sources)

    def forget(self, source_id: str) -> None:
        """Forget what was cached of the source: its listings and descriptions, and its results."""
        self.cache.clear(source_id)
        self.results.clear(source_id)

    def writable(self, source_id: str) -> bool:
        """Whether a statement sent to the source can write: it allows writes
        (``read_only=False``) and its statements can (SQL over files only reads)."""
        source = self._sources.get(source_id)
        return (
            source is not None
            and source.connector_class.statements_write
            and source.config.options.get("read_only", True) is False
        )

    def _source(self, source_id: str) -> SourceRecord:
        try:
            return self._sources[source_id]
        except KeyError:
            known = ", ".join(self._sources) or "none registered"
            raise DataSourceNotFound(
                f"no such data source (known: {known})", source=str(source_id)[:80]
            ) from None

    def _row_limit(self, limit: RowLimit) -> int | None:
        return self.default_row_limit if limit == "default" else limit

"""The registry of data sources: the table of sources, the operations on them, their types.

It is async and lives on one event loop (the session's runner). State changes never await
between their check and their write, so no registry-wide lock is needed; connecting is
locked per source (see :mod:`.connections`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pandas as pd

from ..connectors import Connector
from .operations import SourceOperations
from .registration import SourceRegistration
from .table import DEFAULT_ROW_LIMIT, RowLimit

__all__ = ["DEFAULT_ROW_LIMIT", "DataSourceRegistry", "RowLimit"]


class DataSourceRegistry(SourceRegistration, SourceOperations):
    """Registers data sources and hands out connected connectors for them.

    Its parts: the table of sources and its lookups (:mod:`.table`), registering and
    changing sources (:mod:`.registration`), and the operations on them (:mod:`.operations`).
    """

    def __repr__(self) -> str:
        return f"<DataSourceRegistry sources={sorted(self._sources)}>"

    # -- connector types -----------------------------------------------------------

    def register_connector_class(self, cls: type[Connector], *, replace: bool = False) -> None:
        """Make ``cls`` the connector for sources of type ``cls.type_name``."""
        self.connector_types.register(cls, replace=replace)

    def discover_connectors(self) -> list[str]:
        """Add the connectors that installed packages declare as entry points."""
        return self.connector_types.discover()

    @property
    def source_types(self) -> list[str]:
        """The type names sources can be registered with."""
        return self.connector_types.names

    def connector_class(self, type_name: str, *, source: str | None = None) -> type[Connector]:
        """The connector class for ``type_name``, imported on first use.

        ``source`` names the source asking, for the error message when there is none.
        """
        return self.connector_types.connector_class(type_name, source=source)

    # -- metadata cache ------------------------------------------------------------

    def cache_metadata(self, source_id: str, key: Hashable, value: Any) -> None:
        """Keep ``value`` for the source under ``key`` for the cache's TTL."""
        self._source(source_id)
        self.cache.put(source_id, key, value)

    def get_cached_metadata(self, source_id: str, key: Hashable) -> Any | None:
        """The cached value for the source under ``key``, or ``None`` once expired."""
        return self.cache.get(source_id, key)

    def cached_listings(self, source_id: str) -> list[pd.DataFrame]:
        """The source's listings still in the cache, without a call to the source (for completion)."""
        listings = self.cache.values(source_id, "list_items")
        return [frame for frame in listings if isinstance(frame, pd.DataFrame)]

    def clear_cache(self, source_id: str | None = None) -> int:
        """Forget cached metadata of one source (or all); return how much was dropped."""
        if source_id is not None:
            self._source(source_id)
        return self.cache.clear(source_id)

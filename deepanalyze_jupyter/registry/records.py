"""What a registry keeps for each source, and how it shows the sources it holds.

A :class:`SourceRecord` holds one source's config (secrets stripped), its sealed secrets,
its connector and the outcome of its last operation. :func:`sources_frame` is the listing
of every source (``%datasource list``, ``Session.sources()``); its times read as
:func:`format_moment` writes them (``%datasource info``), to the second, in UTC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from ..connectors import Connector
from ..credentials import EncryptedSecrets
from ..models import DataSourceConfig

__all__ = ["SourceRecord", "format_moment", "sources_frame"]

_FRAME_COLUMNS = ["id", "type", "name", "status", "last_success", "created"]
_MOMENT_COLUMNS = ("last_success", "created")


@dataclass
class SourceRecord:
    """One registered source: its config (secrets stripped), tokens, connector and status."""

    config: DataSourceConfig
    secrets: EncryptedSecrets
    connector_class: type[Connector]
    connector: Connector | None = None
    #: Why the last operation could not reach the source (cleared by the next success).
    last_error: str | None = None
    #: When an operation (connect, query, read, listing, test) last succeeded.
    last_success: datetime | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Where secret fields given as values came from (``env:VAR``), for saving the source.
    references: Mapping[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``connected``, ``not connected`` or ``error: <reason>``, as of the last operation."""
        if self.last_error:
            return f"error: {self.last_error}"
        return "connected" if self.connector is not None else "not connected"

    def succeeded(self) -> None:
        """Record that an operation on the source succeeded just now."""
        self.last_error, self.last_success = None, datetime.now(timezone.utc)


def format_moment(moment: datetime | None) -> str:
    """A moment as the sources listing shows it: ``2026-12-06 01:29:27+00:00`` (UTC), or ``never``."""
    if moment is None:
        return "never"
    return moment.astimezone(timezone.utc).isoformat(sep=" ", timespec="seconds")


def sources_frame(records: Mapping[str, SourceRecord]) -> pd.DataFrame:
    """One row per source: id, type, name, status, last_success, created (never a secret).

    The times are UTC, to the second, as :func:`format_moment` writes them.
    """
    rows = [
        {
            "id": source_id,
            "type": record.config.type,
            "name": record.config.display_name,
            "status": record.status,
            "last_success": record.last_success,
            "created": record.config.created_at,
        }
        for source_id, record in records.items()
    ]
    frame = pd.DataFrame(rows, columns=_FRAME_COLUMNS)
    for column in _MOMENT_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.floor("s")
    return frame.astype({"id": "string", "type": "string", "name": "string", "status": "string"})

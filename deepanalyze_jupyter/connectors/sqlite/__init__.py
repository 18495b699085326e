"""SQLite databases through the standard library's :mod:`sqlite3`, read-only by default."""

from __future__ import annotations

from .connector import MEMORY, SqliteConnector

__all__ = ["MEMORY", "SqliteConnector"]

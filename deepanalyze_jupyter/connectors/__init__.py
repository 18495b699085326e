"""Connectors: one package per source type, all implementing :class:`Connector` (``base``).

``postgresql``, ``sqlite``, ``local`` (a folder on disk) and ``azure_blob``; ``files`` holds
what the file sources share (reading, writing and SQL over files).

Built-in connectors are named here by import path and loaded on first use, so that
loading the extension does not import every client library. Third-party connectors
register through the ``deepanalyze_jupyter.connectors`` entry-point group.
"""

from __future__ import annotations

from .base import Connector, SourceContext, SourceKind

__all__ = ["BUILTIN_CONNECTORS", "ENTRY_POINT_GROUP", "Connector", "SourceContext", "SourceKind"]

ENTRY_POINT_GROUP = "deepanalyze_jupyter.connectors"

#: Source type name -> "module:Class" of the built-in connectors.
BUILTIN_CONNECTORS: dict[str, str] = {
    "postgresql": "deepanalyze_jupyter.connectors.postgresql.connector:PostgresConnector",
    "azure_blob": "deepanalyze_jupyter.connectors.azure_blob.connector:AzureBlobConnector",
    "sqlite": "deepanalyze_jupyter.connectors.sqlite.connector:SqliteConnector",
    "local": "deepanalyze_jupyter.connectors.local:LocalFolderConnector",
}

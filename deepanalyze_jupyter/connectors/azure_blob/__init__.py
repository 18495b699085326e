"""Azure Blob Storage: containers as file sources, read through the SDK's own pipeline."""

from __future__ import annotations

from .connector import AzureBlobConnector

__all__ = ["AzureBlobConnector"]

"""Azure Blob Storage: the properties of one blob or container, as a one-column frame."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["bare_etag", "blob_properties", "container_properties", "properties_frame"]


def bare_etag(etag: str | None) -> str | None:
    """An etag as listings show it: without the quotes of the HTTP header."""
    return etag.strip('"') if etag else etag


def blob_properties(blob: Any, shown: str, container: str) -> dict[str, Any]:
    """The properties of a blob (the SDK's ``BlobProperties``), user metadata last."""
    settings = blob.content_settings
    md5 = settings.content_md5
    properties: dict[str, Any] = {
        "name": shown,
        "kind": "file",
        "container": container,
        "size": blob.size,
        "content_type": settings.content_type,
        "content_encoding": settings.content_encoding,
        "last_modified": blob.last_modified,
        "created": blob.creation_time,
        "etag": bare_etag(blob.etag),
        "blob_type": str(getattr(blob.blob_type, "value", blob.blob_type)),
        "access_tier": blob.blob_tier,
        "content_md5": bytes(md5).hex() if md5 else None,
    }
    return _with_metadata(properties, blob.metadata)


def container_properties(found: Any) -> dict[str, Any]:
    """The properties of a container (the SDK's ``ContainerProperties``)."""
    properties: dict[str, Any] = {
        "name": found.name,
        "kind": "container",
        "last_modified": found.last_modified,
        "etag": bare_etag(found.etag),
        "public_access": found.public_access,
    }
    return _with_metadata(properties, found.metadata)


def _with_metadata(properties: dict[str, Any], metadata: Mapping[str, str] | None) -> dict[str, Any]:
    properties.update({f"metadata.{key}": value for key, value in (metadata or {}).items()})
    return properties


def properties_frame(properties: Mapping[str, Any]) -> pd.DataFrame:
    """One column, ``value``, indexed by property name; ``attrs["properties"]`` holds the dict."""
    frame = pd.DataFrame(
        {"value": pd.Series(list(properties.values()), index=list(properties), dtype=object)}
    )
    frame.index.name = "property"
    frame.attrs["properties"] = dict(properties)
    return frame

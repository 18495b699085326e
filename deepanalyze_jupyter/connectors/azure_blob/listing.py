"""Azure Blob Storage listings: flat, folder by folder, or by glob, bounded, as DataFrames.

Most of the cost of a large listing with the SDK is its model layer: each blob's XML is
turned into several objects, and each timestamp parsed one at a time. Here a page's XML
(already parsed by the SDK's pipeline, with its authentication, retries and errors) is
read straight into plain lists, as the SDK itself does for ``list_blob_names``, and the
timestamps are parsed for the whole listing at once. Where that path of the SDK is not
available (a future SDK may move it), the public ``list_blobs``/``walk_blobs`` are used.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import pandas as pd
from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobPrefix, BlobServiceClient, ContainerClient

from ..files.globs import glob_matcher, glob_prefix, is_glob
from ..files.listing import LISTING_COLUMNS
from ..files.listing import listing_frame as file_listing_frame

__all__ = ["Listing", "list_blobs", "list_containers", "listing_frame"]

#: The most items the service returns per page.
_PAGE_SIZE = 5000
#: How the service writes times in listings (RFC 1123).
_HTTP_DATE = "%a, %d %b %Y %H:%M:%S GMT"
_LISTING_RESPONSES = frozenset({"ListBlobsFlatSegmentResponse", "ListBlobsHierarchySegmentResponse"})

#: One listed item: name, kind, size, last modified, content type, etag.
Row = tuple[str, str, "int | None", "datetime | str | None", "str | None", "str | None"]


@dataclass
class Listing:
    """Listed rows, and whether a bound cut them."""

    rows: list[Row] = field(default_factory=list)
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def names(self) -> list[str]:
        """The listed names, in order."""
        return [row[0] for row in self.rows]

    @property
    def sizes(self) -> list[int | None]:
        """The listed sizes (``None`` for folders), in order."""
        return [row[2] for row in self.rows]


def listing_frame(listing: Listing) -> pd.DataFrame:
    """The listing as a DataFrame with the columns of every file source's listing."""
    # Times come as RFC 1123 text from the service's XML, as datetimes from the SDK's models.
    modified = LISTING_COLUMNS.index("last_modified")
    as_text = any(isinstance(row[modified], str) for row in listing.rows)
    return file_listing_frame(listing.rows, time_format=_HTTP_DATE if as_text else None)


async def list_blobs(
    container: ContainerClient,
    prefix: str,
    *,
    recursive: bool,
    limit: int | None,
    name_prefix: str = "",
    files_only: bool = False,
) -> Listing:
    """List ``container`` under ``prefix`` (a glob allowed), at most ``limit`` rows.

    Folder-style (not ``recursive``) lists one level, folders as rows; a glob whose
    wildcards span several levels (``**`` or a wildcard folder) lists flat below its
    literal folder. ``name_prefix`` is put before every name (``container/`` for
    account-level sources). ``files_only`` leaves folders out.
    """
    matches: Callable[[str], bool] | None = None
    start = prefix
    if is_glob(prefix):
        matches = glob_matcher(prefix)
        start = glob_prefix(prefix)
        recursive = recursive or "/" in prefix[len(start) :] or "**" in prefix
    elif start and not start.endswith("/") and not recursive and await _is_folder(container, start):
        start += "/"
    # Small limits ask for small pages; one row more tells whether the limit cut the listing.
    page_size = _PAGE_SIZE if limit is None or matches is not None else max(1, min(_PAGE_SIZE, limit + 1))
    listing = Listing()
    rows = listing.rows
    async with aclosing(_pages(container, start, None if recursive else "/", page_size)) as pages:
        async for page in pages:
            for row in page:
                name, kind = row[0], row[1]
                if (kind == "folder" and files_only) or (
                    matches is not None and not matches(name.rstrip("/") if kind == "folder" else name)
                ):
                    continue
                if limit is not None and len(rows) >= limit:
                    listing.truncated = True
                    return listing
                rows.append((name_prefix + name, *row[1:]) if name_prefix else row)
    return listing


async def list_containers(service: BlobServiceClient, prefix: str, limit: int) -> Listing:
    """The account's containers (as ``name/`` rows of kind ``container``), at most ``limit``."""
    listing = Listing()
    pages = service.list_containers(
        name_starts_with=prefix or None, results_per_page=min(_PAGE_SIZE, limit + 1)
    )
    async for page in pages.by_page():
        async for item in page:
            if len(listing) >= limit:
                listing.truncated = True
                return listing
            listing.rows.append((f"{item.name}/", "container", None, item.last_modified, None, item.etag))
    return listing


async def _is_folder(container: ContainerClient, name: str) -> bool:
    """Whether some blob's name starts with ``name/`` (``sales`` then means ``sales/``)."""
    async with aclosing(_pages(container, name + "/", None, 1)) as pages:
        async for page in pages:
            return bool(page)
    return False


def _pages(
    container: ContainerClient, prefix: str, delimiter: str | None, page_size: int
) -> AsyncGenerator[list[Row], None]:
    """The listing's pages as rows, from the service's XML when the SDK allows it."""
    operations = _raw_listing_operations(container)
    if operations is None:
        return _model_pages(container, prefix, delimiter, page_size)
    return _xml_pages(operations, prefix, delimiter, page_size)


def _raw_listing_operations(container: ContainerClient) -> Any:
    """The container's generated List Blobs operations, set to hand back the parsed XML."""
    try:
        from azure.storage.blob._generated._utils.serialization import Deserializer

        operations = getattr(container, "_build_generated_client")().container  # noqa: B009
        classes = operations._deserialize.dependencies
    except (ImportError, AttributeError):
        return None

    class KeepListingsRaw(Deserializer):
        """Leave listing responses undeserialized; everything else (errors) as usual."""

        def __call__(self, target_obj: Any, response_data: Any, content_type: Any = None) -> Any:
            if target_obj in _LISTING_RESPONSES:
                return None
            parent: Any = super().__call__
            return parent(target_obj, response_data, content_type)

    operations._deserialize = KeepListingsRaw(classes)
    return operations


def _raw_response(response: Any, deserialized: Any, headers: Any) -> Any:
    """The XML element the pipeline parsed the response body into."""
    return response.context["deserialized_data"]


async def _xml_pages(
    operations: Any, prefix: str, delimiter: str | None, page_size: int
) -> AsyncGenerator[list[Row], None]:
    from azure.storage.blob._shared.response_handlers import process_storage_error

    marker: str | None = None
    while True:
        options: dict[str, Any] = {
            "prefix": prefix or None,
            "marker": marker,
            "maxresults": page_size,
            "cls": _raw_response,
        }
        try:
            if delimiter is None:
                root = await operations.list_blob_flat_segment(**options)
            else:
                root = await operations.list_blob_hierarchy_segment(delimiter=delimiter, **options)
        except HttpResponseError as error:
            process_storage_error(error)  # raises the SDK's typed error, with its error code
        yield _xml_rows(root)
        marker = root.findtext("NextMarker")
        if not marker:
            return


def _xml_rows(root: Any) -> list[Row]:
    blobs = root.find("Blobs")
    rows: list[Row] = []
    if blobs is None:
        return rows
    for item in blobs:
        name_element = item.find("Name")
        name = name_element.text or ""
        if name_element.get("Encoded") == "true":
            name = unquote(name)
        if item.tag == "BlobPrefix":
            rows.append((name, "folder", None, None, None, None))
            continue
        properties = item.find("Properties")
        size = properties.findtext("Content-Length")
        rows.append(
            (
                name,
                "file",
                int(size) if size else 0,
                properties.findtext("Last-Modified"),
                properties.findtext("Content-Type"),
                properties.findtext("Etag"),
            )
        )
    return rows


async def _model_pages(
    container: ContainerClient, prefix: str, delimiter: str | None, page_size: int
) -> AsyncGenerator[list[Row], None]:
    paged: Any
    if delimiter is None:
        paged = container.list_blobs(name_starts_with=prefix or None, results_per_page=page_size)
    else:
        paged = container.walk_blobs(
            name_starts_with=prefix or None, delimiter=delimiter, results_per_page=page_size
        )
    async for page in paged.by_page():
        rows: list[Row] = []
        async for item in page:
            if isinstance(item, BlobPrefix):
                rows.append((item.name, "folder", None, None, None, None))
            else:
                settings = item.content_settings
                content_type = settings.content_type if settings is not None else None
                rows.append((item.name, "file", item.size, item.last_modified, content_type, item.etag))
        yield rows

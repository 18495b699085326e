"""Azure Blob Storage listings: flat, folder by folder, or by glob, bounded, as DataFrames.

Rows are gathered into plain lists (no per-row objects of our own) and turned into
columns once, so that listing costs little more than the SDK's own paging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
from azure.storage.blob.aio import BlobPrefix, ContainerClient

from ..globs import glob_matcher, glob_prefix, is_glob

__all__ = ["LISTING_COLUMNS", "Listing", "list_blobs", "listing_frame"]

#: The columns of a listing and their dtypes (the same as a local folder's listing).
LISTING_COLUMNS: dict[str, str] = {
    "name": "string",
    "kind": "string",
    "size": "Int64",
    "last_modified": "datetime64[us, UTC]",
    "content_type": "string",
    "etag": "string",
}

#: The most items the service returns per page.
_PAGE_SIZE = 5000


@dataclass
class Listing:
    """Listed rows as parallel lists, and whether a bound cut them."""

    names: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    sizes: list[int | None] = field(default_factory=list)
    modified: list[datetime | None] = field(default_factory=list)
    content_types: list[str | None] = field(default_factory=list)
    etags: list[str | None] = field(default_factory=list)
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.names)

    def add_file(self, name: str, item: Any) -> None:
        """Add a blob's row from the SDK's ``BlobProperties``."""
        self.names.append(name)
        self.kinds.append("file")
        self.sizes.append(item.size)
        self.modified.append(item.last_modified)
        settings = item.content_settings
        self.content_types.append(settings.content_type if settings is not None else None)
        self.etags.append(item.etag)

    def add_folder(
        self, name: str, kind: str = "folder", modified: datetime | None = None, etag: str | None = None
    ) -> None:
        """Add a folder (a name prefix) or a container."""
        self.names.append(name)
        self.kinds.append(kind)
        self.sizes.append(None)
        self.modified.append(modified)
        self.content_types.append(None)
        self.etags.append(etag)


def listing_frame(listing: Listing) -> pd.DataFrame:
    """The listing as a DataFrame with :data:`LISTING_COLUMNS`."""
    string = pd.StringDtype("pyarrow")
    modified = pa.array(listing.modified, type=pa.timestamp("us", tz="UTC")).to_pandas()
    return pd.DataFrame(
        {
            "name": pd.array(listing.names, dtype=string),
            "kind": pd.array(listing.kinds, dtype=string),
            "size": pd.array(listing.sizes, dtype=pd.Int64Dtype()),
            "last_modified": modified.astype(LISTING_COLUMNS["last_modified"]),
            "content_type": pd.array(listing.content_types, dtype=string),
            "etag": pd.array(listing.etags, dtype=string),
        }
    )


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
    paged: Any
    if recursive:
        paged = container.list_blobs(name_starts_with=start or None, results_per_page=page_size)
    else:
        paged = container.walk_blobs(
            name_starts_with=start or None, delimiter="/", results_per_page=page_size
        )
    listing = Listing()
    async for page in paged.by_page():
        async for item in page:
            name: str = item.name
            is_folder = isinstance(item, BlobPrefix)
            if (is_folder and files_only) or (
                matches is not None and not matches(name.rstrip("/") if is_folder else name)
            ):
                continue
            if limit is not None and len(listing) >= limit:
                listing.truncated = True
                return listing
            if is_folder:
                listing.add_folder(name_prefix + name)
            else:
                listing.add_file(name_prefix + name, item)
    return listing


async def _is_folder(container: ContainerClient, name: str) -> bool:
    """Whether some blob's name starts with ``name/`` (``sales`` then means ``sales/``)."""
    async for page in container.list_blobs(name_starts_with=name + "/", results_per_page=1).by_page():
        async for _ in page:
            return True
        break
    return False

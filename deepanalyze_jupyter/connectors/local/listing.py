"""Listing and describing the files and folders of a local folder."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from ...errors import ConfigurationError, FormatError, ItemNotFound
from ...frames import mark_result
from ..files.formats import detect_format
from ..files.globs import glob_matcher, glob_prefix, is_glob
from ..files.listing import listing_frame
from .paths import FolderPaths, is_within

__all__ = ["Entry", "FolderListing"]


@dataclass(frozen=True)
class Entry:
    """One file or folder: its path relative to the root (folders end with ``/``)."""

    name: str
    is_folder: bool
    size: int | None
    modified: float
    is_link: bool = False

    def row(self) -> tuple[Any, ...]:
        modified = datetime.fromtimestamp(self.modified, tz=timezone.utc)
        return (self.name, "folder" if self.is_folder else "file", self.size, modified, _content_type(self))


def _unlinked(folder: str, item: os.DirEntry[str]) -> Entry | None:
    """The entry of ``item`` in ``folder``, not a symbolic link; ``None`` if it vanished."""
    try:
        info = item.stat()
    except OSError:
        return None
    return _entry_of(f"{folder}{item.name}", info, is_link=False)


def _entry_of(name: str, info: os.stat_result, *, is_link: bool) -> Entry:
    """The entry at relative path ``name``, of the status ``info``."""
    if stat.S_ISDIR(info.st_mode):
        return Entry(f"{name}/", True, None, info.st_mtime, is_link=is_link)
    return Entry(name, False, info.st_size, info.st_mtime)


class FolderListing(FolderPaths):
    """The folder's entries: one level, every file below, one entry's properties."""

    async def list_items(
        self, prefix: str | None = None, *, recursive: bool = False, limit: int | None = None
    ) -> pd.DataFrame:
        """List files and folders: one level (folder-style), or every file below (``recursive``).

        ``prefix`` is a folder (``sales`` or ``sales/``), the start of names in a folder
        (``sales/2024-``) or a glob (``sales/*.csv``, ``**/*.parquet``), which lists the
        matching files below its folder.
        """
        entries, truncated = await asyncio.to_thread(self._list, prefix or "", recursive, limit)
        frame = listing_frame([(*entry.row(), None) for entry in entries])  # no etags
        return mark_result(frame, source=self.source_id, truncated=truncated, limit=limit)

    def _list(self, prefix: str, recursive: bool, limit: int | None) -> tuple[list[Entry], bool]:
        if is_glob(prefix):
            matches = glob_matcher(prefix)
            folder = glob_prefix(prefix)
            # A glob within one level lists that level (folders too); deeper globs list flat.
            flat = recursive or "/" in prefix[len(folder) :] or "**" in prefix
            found: Iterator[Entry] = (
                entry
                for entry in (self._walk(folder) if flat else self._children(folder))
                if matches(entry.name.rstrip("/"))
            )
        else:
            folder, start = self._split_prefix(prefix)
            found = (
                entry
                for entry in (self._walk(folder) if recursive else self._children(folder))
                if entry.name[len(folder) :].startswith(start)
            )
        entries: list[Entry] = []
        for entry in found:
            if limit is not None and len(entries) == limit:
                return entries, True
            entries.append(entry)
        return entries, False

    def _split_prefix(self, prefix: str) -> tuple[str, str]:
        """``sales/2024-`` -> (``sales/``, ``2024-``); a folder's path is the folder itself."""
        trailing = "/" if prefix.endswith("/") else ""
        prefix = self.normalize(prefix)
        if prefix and (trailing or os.path.isdir(self.resolve(prefix))):
            prefix += "/"
        folder, _, start = prefix.rpartition("/")
        folder = f"{folder}/" if folder else ""
        if folder and not os.path.isdir(self.resolve(folder)):
            raise ItemNotFound(f"no folder {folder!r}", source=self.source_id)
        return folder, start

    def _children(self, folder: str) -> Iterator[Entry]:
        """The entries directly in ``folder`` (relative, ``""`` or ending with ``/``), sorted.

        A folder that is not there (a glob's, such as ``nope/*.csv``) holds nothing.
        """
        real = self.resolve(folder) if folder else self.root
        try:
            with os.scandir(real) as scan:
                items = sorted(scan, key=lambda item: item.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as error:
            raise ConfigurationError(
                f"cannot read folder {folder!r}: {error.strerror or type(error).__name__}",
                source=self.source_id,
            ) from None
        for item in items:
            # Inside the real folder ``real``, what is not a link is where it seems to be.
            entry = self._entry(f"{folder}{item.name}") if item.is_symlink() else _unlinked(folder, item)
            if entry is not None:
                yield entry

    def _walk(self, folder: str) -> Iterator[Entry]:
        """Every file below ``folder``, depth first in name order (like a flat blob listing).

        Linked folders are not entered (a link to a parent would never end); open one by name.
        """
        for entry in self._children(folder):
            if entry.is_folder:
                if not entry.is_link:
                    yield from self._walk(entry.name)
            else:
                yield entry

    def _entry(self, name: str) -> Entry | None:
        """The entry at relative path ``name``; ``None`` if it leads outside the folder or vanished."""
        path = os.path.join(self.root, name)
        real = os.path.realpath(path)
        if not is_within(real, self.root):
            return None
        try:
            info = os.stat(real)
        except OSError:
            return None  # a broken link, or removed meanwhile
        return _entry_of(name, info, is_link=os.path.islink(path))

    async def describe(self, item: str) -> pd.DataFrame:
        """The properties of one file or folder, as blob storage gives a blob's.

        One column, ``value``, indexed by property name (name, kind, size, content_type,
        last_modified, format, compression); ``attrs["properties"]`` holds the same as a dict.
        """
        entry = await asyncio.to_thread(self._described, item)
        name, kind, size, modified, content_type = entry.row()
        properties: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "size": size,
            "content_type": content_type,
            "last_modified": modified,
        }
        if not entry.is_folder:
            try:
                properties["format"], properties["compression"] = detect_format(name)
            except FormatError:
                properties["format"] = properties["compression"] = None
        frame = pd.DataFrame(
            {"value": pd.Series(list(properties.values()), index=list(properties), dtype=object)}
        )
        frame.index.name = "property"
        frame.attrs["properties"] = dict(properties)
        return mark_result(frame, source=self.source_id, truncated=False, limit=None)

    def _described(self, item: str) -> Entry:
        name = self.normalize(item)
        self.resolve(name)
        entry = self._entry(name) if name else None
        if entry is None:
            raise ItemNotFound(f"no file or folder {item!r}", source=self.source_id)
        return entry


def _content_type(entry: Entry) -> str | None:
    """The media type a web server would give the file's bytes (``None`` for folders)."""
    if entry.is_folder:
        return None
    media_type, encoding = mimetypes.guess_type(entry.name, strict=False)
    if encoding == "gzip":
        return "application/gzip"
    return media_type or "application/octet-stream"

"""A folder on disk as a file source, read with the same parsers as blob storage.

Paths are ``/``-separated and relative to the folder. No path may lead outside it:
``..`` segments and absolute paths are refused, and every path is resolved with
:func:`os.path.realpath` so that a symbolic link pointing out is refused too. Disk work
and parsing run in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import posixpath
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from ..errors import ConfigurationError, FormatError, ItemNotFound
from ..frames import mark_result
from ..models import OptionSpec, Secret
from .base import Connector, absolute_path
from .files.formats import combine_frames, detect_format, parse_bytes
from .files.globs import glob_matcher, glob_prefix, is_glob
from .files.listing import listing_frame

__all__ = ["LocalFolderConnector"]


@dataclass(frozen=True)
class _Entry:
    """One file or folder: its path relative to the root (folders end with ``/``)."""

    name: str
    is_folder: bool
    size: int | None
    modified: float
    is_link: bool = False

    def row(self) -> tuple[Any, ...]:
        modified = datetime.fromtimestamp(self.modified, tz=timezone.utc)
        return (self.name, "folder" if self.is_folder else "file", self.size, modified, _content_type(self))


class LocalFolderConnector(Connector):
    """The files under one folder on this machine."""

    type_name = "local"
    display_name = "Local folder"
    kind = "files"
    option_specs = (OptionSpec("path", str, "the folder holding the files", required=True, label="Folder"),)

    @classmethod
    def prepare(
        cls,
        source: str,
        options: Mapping[str, Any],
        secrets: Mapping[str, Secret],
        *,
        present_secrets: frozenset[str] = frozenset(),
    ) -> tuple[dict[str, Any], dict[str, Secret]]:
        """Make the folder's path absolute, so a later change of directory keeps it valid."""
        clean, clean_secrets = super().prepare(source, options, secrets, present_secrets=present_secrets)
        clean["path"] = absolute_path(clean["path"], source=source, naming="a folder")
        return clean, clean_secrets

    @property
    def root(self) -> str:
        """The folder's real path (symbolic links resolved)."""
        return os.path.realpath(str(self.options["path"]))

    # -- lifecycle -----------------------------------------------------------------

    async def connect(self) -> None:
        """Check that the folder exists and can be read."""
        await asyncio.to_thread(self._check_root)

    def _check_root(self) -> None:
        path = str(self.options["path"])
        if not os.path.exists(path):
            raise ItemNotFound(f"folder {path} does not exist", source=self.source_id)
        if not os.path.isdir(path):
            raise ConfigurationError(f"{path} is a file, not a folder", source=self.source_id)
        if not os.access(path, os.R_OK | os.X_OK):
            raise ConfigurationError(f"folder {path} cannot be read", source=self.source_id)

    async def disconnect(self) -> None:
        """Nothing is held open."""

    async def test_connection(self) -> str:
        """Read the folder and count its entries."""
        count = await asyncio.to_thread(lambda: len(os.listdir(self.root)))
        return f"Local folder {self.options['path']} ({count} entries)"

    # -- paths ---------------------------------------------------------------------

    def resolve(self, path: str) -> str:
        """The real path on disk of ``path`` (relative to the folder), refusing escapes."""
        relative = self.normalize(path)
        root = self.root
        real = os.path.realpath(os.path.join(root, relative))
        if not _is_within(real, root):
            raise ConfigurationError(
                f"{path!r} leads outside the folder (through a symbolic link)", source=self.source_id
            )
        return real

    def normalize(self, path: str) -> str:
        """``path`` made canonical (``./a//b/`` -> ``a/b``; the folder itself is ``""``).

        Absolute paths and ``..`` segments are refused: a path names something inside
        the folder, or nothing.
        """
        relative = path.strip()
        if os.path.isabs(relative) or relative.startswith(("/", "\\")):
            raise ConfigurationError(
                f"{path!r} is an absolute path; give paths relative to the folder", source=self.source_id
            )
        if "\x00" in relative or ".." in relative.replace("\\", "/").split("/"):
            raise ConfigurationError(f"{path!r} leads outside the folder ('..')", source=self.source_id)
        normal = posixpath.normpath(relative) if relative else ""
        return "" if normal == "." else normal

    # -- browsing ------------------------------------------------------------------

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

    def _list(self, prefix: str, recursive: bool, limit: int | None) -> tuple[list[_Entry], bool]:
        if is_glob(prefix):
            matches = glob_matcher(prefix)
            folder = glob_prefix(prefix)
            # A glob within one level lists that level (folders too); deeper globs list flat.
            flat = recursive or "/" in prefix[len(folder) :] or "**" in prefix
            found: Iterator[_Entry] = (
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
        entries: list[_Entry] = []
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

    def _children(self, folder: str) -> Iterator[_Entry]:
        """The entries directly in ``folder`` (relative, ``""`` or ending with ``/``), sorted."""
        real = self.resolve(folder) if folder else self.root
        with os.scandir(real) as scan:
            names = sorted(item.name for item in scan)
        for name in names:
            entry = self._entry(f"{folder}{name}")
            if entry is not None:
                yield entry

    def _walk(self, folder: str) -> Iterator[_Entry]:
        """Every file below ``folder``, depth first in name order (like a flat blob listing).

        Linked folders are not entered (a link to a parent would never end); open one by name.
        """
        for entry in self._children(folder):
            if entry.is_folder:
                if not entry.is_link:
                    yield from self._walk(entry.name)
            else:
                yield entry

    def _entry(self, name: str) -> _Entry | None:
        """The entry at relative path ``name``; ``None`` if it leads outside the folder or vanished."""
        path = os.path.join(self.root, name)
        real = os.path.realpath(path)
        if not _is_within(real, self.root):
            return None
        try:
            info = os.stat(real)
        except OSError:
            return None  # a broken link, or removed meanwhile
        if stat.S_ISDIR(info.st_mode):
            return _Entry(f"{name}/", True, None, info.st_mtime, is_link=os.path.islink(path))
        return _Entry(name, False, info.st_size, info.st_mtime)

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

    def _described(self, item: str) -> _Entry:
        name = self.normalize(item)
        self.resolve(name)
        entry = self._entry(name) if name else None
        if entry is None:
            raise ItemNotFound(f"no file or folder {item!r}", source=self.source_id)
        return entry

    # -- data ----------------------------------------------------------------------

    async def read(
        self,
        paths: Sequence[str],
        *,
        format: str | None = None,
        limit: int | None = None,
        source_column: str | None = None,
        reader_options: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Read files (paths, folders or globs) into one DataFrame, in path order.

        Files are read one after another and reading stops once ``limit`` rows are
        exceeded; ``attrs["truncated"]`` then says the result was cut.
        """
        files = await asyncio.to_thread(self._files_to_read, paths)
        for file in files:
            detect_format(file.name, format, source=self.source_id)  # refuse before reading anything
        progress = self.context.progress(
            f"Reading {len(files)} file(s) from {self.source_id}",
            total_bytes=sum(file.size or 0 for file in files),
            total_items=len(files),
        )
        frames: list[tuple[str, pd.DataFrame]] = []
        rows = 0
        try:
            for file in files:
                if limit is not None and rows > limit:
                    break
                frame = await asyncio.to_thread(self._read_file, file.name, format, reader_options)
                frames.append((file.name, frame))
                rows += len(frame)
                progress.update(nbytes=file.size or 0, items=1)
        finally:
            progress.close()
        combined = combine_frames(frames, source_column=source_column)
        truncated = limit is not None and len(combined) > limit
        if truncated:
            combined = combined.iloc[:limit].copy()
        return mark_result(combined, source=self.source_id, truncated=truncated, limit=limit)

    def _files_to_read(self, paths: Sequence[str]) -> list[_Entry]:
        """The files ``paths`` name: each path, each file below a folder, each glob match."""
        if not paths:
            raise ConfigurationError("give at least one path to read", source=self.source_id)
        files: dict[str, _Entry] = {}
        for path in paths:
            matched = self._expand(path)
            files.update((entry.name, entry) for entry in matched)
        return list(files.values())

    def _expand(self, path: str) -> list[_Entry]:
        if is_glob(path):
            matches = glob_matcher(path)
            found = [entry for entry in self._walk(glob_prefix(path)) if matches(entry.name)]
            if not found:
                raise ItemNotFound(f"no files match {path!r}", source=self.source_id)
            return found
        name = self.normalize(path)
        self.resolve(name)
        entry = self._entry(name) if name else None
        if entry is None and name:
            raise ItemNotFound(f"no file {path!r}", source=self.source_id)
        if entry is None or entry.is_folder:
            found = list(self._walk(entry.name if entry else ""))
            if not found:
                raise ItemNotFound(f"no files in folder {path!r}", source=self.source_id)
            return found
        return [entry]

    def _read_file(
        self, name: str, format: str | None, reader_options: Mapping[str, Any] | None
    ) -> pd.DataFrame:
        real = self.resolve(name)
        try:
            with open(real, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            raise ItemNotFound(f"no file {name!r}", source=self.source_id) from None
        except OSError as error:
            raise ConfigurationError(
                f"cannot read {name!r}: {error.strerror or type(error).__name__}", source=self.source_id
            ) from None
        return parse_bytes(
            data, path=name, source=self.source_id, format=format, reader_options=reader_options
        )


def _is_within(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _content_type(entry: _Entry) -> str | None:
    """The media type a web server would give the file's bytes (``None`` for folders)."""
    if entry.is_folder:
        return None
    media_type, encoding = mimetypes.guess_type(entry.name, strict=False)
    if encoding == "gzip":
        return "application/gzip"
    return media_type or "application/octet-stream"

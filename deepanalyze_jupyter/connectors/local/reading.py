"""Reading the files of a local folder: paths, folders and globs expanded, parsed in worker threads."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from ...errors import ConfigurationError, ItemNotFound
from ..files.combine import read_result
from ..files.formats import ParsedFile, detect_format, parse_table
from ..files.globs import glob_matcher, glob_prefix, is_glob
from ..files.partitions import PartitionValues, natural_key, partition_values
from .listing import Entry, FolderListing

__all__ = ["FolderReading", "OpenFile"]


class FolderReading(FolderListing):
    """The folder's files read into one frame, or as bytes."""

    async def read(
        self,
        paths: Sequence[str],
        *,
        format: str | None = None,
        limit: int | None = None,
        source_column: str | None = None,
        reader_options: Mapping[str, Any] | None = None,
        output: str = "pandas",
    ) -> pd.DataFrame | pa.Table:
        """Read files (paths, folders or globs) into one DataFrame, in path order.

        A folder's or a glob's files come in natural order (``month=2`` before
        ``month=10``), and ``key=value`` folders become columns. Files are read one after
        another and reading stops once ``limit`` rows are exceeded; ``attrs["truncated"]``
        then says the result was cut.
        """
        files = await asyncio.to_thread(self._files_to_read, paths)
        for file in files:
            detect_format(file.name, format, source=self.source_id)  # refuse before reading anything
        progress = self.context.progress(
            f"Reading {len(files)} file(s) from {self.source_id}",
            total_bytes=sum(file.size or 0 for file in files),
            total_items=len(files),
        )
        partitions = partition_values([file.name for file in files])
        parts: list[tuple[str, ParsedFile]] = []
        rows = 0
        try:
            for file, values in zip(files, partitions, strict=True):
                if limit is not None and rows > limit:
                    break
                parsed = await asyncio.to_thread(self._read_file, file.name, format, reader_options, values)
                parts.append((file.name, parsed))
                rows += len(parsed)
                progress.update(nbytes=file.size or 0, items=1)
        finally:
            progress.close()
        return await read_result(
            parts,
            source=self.source_id,
            source_column=source_column,
            reader_options=reader_options,
            limit=limit,
            output=output,
        )

    async def files_to_read(
        self, paths: Sequence[str], format: str | None = None
    ) -> list[tuple[str, PartitionValues]]:
        """The files :meth:`read` reads for ``paths``, in its order, with their partition values."""
        names = [entry.name for entry in await asyncio.to_thread(self._files_to_read, paths)]
        return list(zip(names, partition_values(names), strict=True))

    def _files_to_read(self, paths: Sequence[str]) -> list[Entry]:
        """The files ``paths`` name: each path, each file below a folder, each glob match."""
        if not paths:
            raise ConfigurationError("give at least one path to read", source=self.source_id)
        files: dict[str, Entry] = {}
        for path in paths:
            matched = self._expand(path)
            files.update((entry.name, entry) for entry in matched)
        return list(files.values())

    def _expand(self, path: str) -> list[Entry]:
        if is_glob(path):
            matches = glob_matcher(path)
            found = [entry for entry in self._walk(glob_prefix(path)) if matches(entry.name)]
            if not found:
                raise ItemNotFound(f"no files match {path!r}", source=self.source_id)
            return sorted(found, key=lambda entry: natural_key(entry.name))
        name = self.normalize(path)
        self.resolve(name)
        entry = self._entry(name) if name else None
        if entry is None and name:
            raise ItemNotFound(f"no file {path!r}", source=self.source_id)
        if entry is None or entry.is_folder:
            found = list(self._walk(entry.name if entry else ""))
            if not found:
                raise ItemNotFound(f"no files in folder {path!r}", source=self.source_id)
            return sorted(found, key=lambda entry: natural_key(entry.name))
        return [entry]

    async def read_range(self, path: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        """The bytes ``start`` to ``end`` of one file inside the folder (read in a worker thread;
        a local file has no ``etag``)."""
        return await asyncio.to_thread(self._read_range, path, start, end)

    def _read_range(self, path: str, start: int, end: int) -> bytes:
        with self.open_direct(path) as file:
            return file.read_range(start, end)

    def open_direct(self, path: str) -> OpenFile:
        """The regular file at ``path`` inside the folder, opened for reading (see
        :meth:`Connector.open_direct`); its real path was checked to lie inside the folder."""
        root = self.root
        real = self.resolve(path)
        try:
            descriptor = _open_below(root, os.path.relpath(real, root))
        except FileNotFoundError:
            raise ItemNotFound(f"no file {path!r}", source=self.source_id) from None
        except OSError as error:
            raise _unreadable(path, error, self.source_id) from None
        file = OpenFile(descriptor, path, self.source_id)
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            file.close()
            raise ConfigurationError(f"cannot read {path!r}: not a regular file", source=self.source_id)
        return file

    def _read_file(
        self,
        name: str,
        format: str | None,
        reader_options: Mapping[str, Any] | None,
        partitions: PartitionValues,
    ) -> ParsedFile:
        with self.open_direct(name) as file:
            data = file.read_range(0, None)
        return parse_table(
            data,
            path=name,
            source=self.source_id,
            format=format,
            reader_options=reader_options,
            partitions=partitions,
        )


class OpenFile:
    """A file of the folder open for positional reads: threads may read it at once."""

    def __init__(self, descriptor: int, path: str, source: str) -> None:
        self._descriptor = descriptor
        self._path = path
        self._source = source

    def read_range(self, start: int, end: int | None) -> bytes:
        """Bytes ``start`` to ``end`` (``None``: its end); fewer at its end."""
        try:
            if end is None:
                end = max(start, os.fstat(self._descriptor).st_size)
            wanted = max(0, end - start)
            data = os.pread(self._descriptor, wanted, start)
            while len(data) < wanted:  # a short read before the end (a range over 2 GiB)
                more = os.pread(self._descriptor, wanted - len(data), start + len(data))
                if not more:
                    break
                data += more
            return data
        except OSError as error:
            raise _unreadable(self._path, error, self._source) from None

    def close(self) -> None:
        """Close the file; again does nothing."""
        descriptor, self._descriptor = self._descriptor, -1
        if descriptor >= 0:
            os.close(descriptor)

    def __enter__(self) -> OpenFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


#: A folder on the way to a file: never a link, opened only to open what is in it.
_FOLDER_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_below(root: str, relative: str) -> int:
    """The file ``relative`` (a real path inside ``root``, no link in it) opened for reading,
    one folder after another: none of them, nor the file, may have become a link since its
    path was checked (a link followed then could lead outside the folder)."""
    *folders, name = relative.split(os.sep)
    folder = os.open(root, _FOLDER_FLAGS & ~os.O_NOFOLLOW)
    try:
        for part in folders:
            inner = os.open(part, _FOLDER_FLAGS, dir_fd=folder)
            os.close(folder)
            folder = inner
        # Not waiting on a FIFO's writer either.
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    finally:
        os.close(folder)


def _unreadable(path: str, error: OSError, source: str) -> ConfigurationError:
    return ConfigurationError(
        f"cannot read {path!r}: {error.strerror or type(error).__name__}", source=source
    )

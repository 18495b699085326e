"""Reading blobs (:class:`BlobReading`): what a read fetches, in which order, and the row limit's scheduler.

A folder's or a glob's blobs are read in natural order (``month=2`` before ``month=10``),
and their ``key=value`` folders become columns (see :mod:`..files.partitions`). With a
row limit, blobs are fetched in that order, a few ahead, and fetching stops once the
blobs parsed so far hold more rows than the limit.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import pyarrow as pa
from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError

from ...errors import ConfigurationError, FormatError, ItemNotFound
from ...progress import NullProgress, Progress
from ...runner import gather_all
from ..files.combine import read_result
from ..files.formats import ParsedFile, detect_format, parse_table, validate_reader_options
from ..files.globs import is_glob
from ..files.partitions import PartitionValues, natural_key, partition_values
from .access import ContainerAccess
from .download import ConnectionLost, Transfer, fetch_blob
from .listing import list_blobs

__all__ = [
    "BlobReading",
    "BlobTarget",
    "has_format",
    "in_read_order",
    "is_data_file",
    "read_until",
    "with_partitions",
]


@dataclass(frozen=True)
class BlobTarget:
    """One blob to read: where it is, how it is shown, its size if known, its partition columns."""

    container: str
    name: str
    shown: str
    size: int | None = None
    partitions: PartitionValues = field(default_factory=dict)


def in_read_order(targets: Sequence[BlobTarget]) -> list[BlobTarget]:
    """A folder's or a glob's blobs in natural order of their names."""
    return sorted(targets, key=lambda target: natural_key(target.name))


def with_partitions(targets: Sequence[BlobTarget]) -> list[BlobTarget]:
    """``targets`` with the typed values of their ``key=value`` folders."""
    values = partition_values([target.name for target in targets])
    return [replace(target, partitions=found) for target, found in zip(targets, values, strict=True)]


async def read_until(
    targets: Sequence[BlobTarget],
    read_one: Callable[[BlobTarget], Awaitable[tuple[str, ParsedFile]]],
    *,
    ahead: int,
    rows: int,
) -> list[tuple[str, ParsedFile]]:
    """Read ``targets`` in order until more than ``rows`` rows came, at most ``ahead`` at once.

    The first blob is read alone; then as many at once as the rows per blob seen so far
    say are still needed. The blobs after the limit are never requested; those already
    in flight are cancelled.
    """
    waiting = iter(targets)
    running: deque[asyncio.Future[tuple[str, ParsedFile]]] = deque()
    parts: list[tuple[str, ParsedFile]] = []
    count = 0
    try:
        while count <= rows:
            wanted = _blobs_wanted(rows + 1 - count, len(parts), count, ahead)
            while len(running) < wanted and (target := next(waiting, None)) is not None:
                running.append(asyncio.ensure_future(read_one(target)))
            if not running:
                break
            part = await running.popleft()
            parts.append(part)
            count += len(part[1])
        return parts
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def _blobs_wanted(missing: int, blobs_read: int, rows_read: int, ahead: int) -> int:
    """How many blobs to have in flight to bring ``missing`` more rows (1 to ``ahead``)."""
    if blobs_read == 0:
        return 1
    if rows_read == 0:
        return max(ahead, 1)
    return max(1, min(ahead, -(-missing * blobs_read // rows_read)))


def has_format(name: str, explicit: str | None) -> bool:
    """Whether ``name`` (or ``explicit``) names a file format the parsers read."""
    try:
        detect_format(name, explicit)
    except FormatError:
        return False
    return True


def is_data_file(name: str, explicit: str | None) -> bool:
    """A folder's file worth reading: not hidden or a marker (``_SUCCESS``), of a known format."""
    base = name.rsplit("/", 1)[-1]
    return bool(base) and not base.startswith((".", "_")) and has_format(name, explicit)


class BlobReading(ContainerAccess):
    """Reads blobs: into one frame, as bytes, or as the list of what a read would fetch."""

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
        """Read blobs (paths, folders ending in ``/`` or globs) into one DataFrame, in order.

        Blobs download concurrently (at most ``max_concurrency`` requests in flight), a
        large one in parallel ranges, and each is parsed in a worker thread as soon as
        it arrives. A folder's or a glob's blobs come in natural order, their ``key=value``
        folders as columns. With a ``limit``, blobs are fetched in order, a few ahead, and
        fetching stops once the blobs parsed so far hold more rows than the limit.
        Interrupting cancels every download and returns nothing.
        """
        if not paths:
            raise ConfigurationError("give at least one path to read", source=self.source_id)
        if format is not None:
            detect_format("", format, source=self.source_id)
        validate_reader_options(reader_options, source=self.source_id)
        targets = with_partitions(await self._targets(paths, format))
        for target in targets:
            detect_format(target.name, format, source=self.source_id)  # refuse before downloading
        sizes = [target.size for target in targets]
        progress: Progress = NullProgress()
        if self.options.get("show_progress", True):
            progress = self.context.progress(
                f"Reading {len(targets)} blob(s) from {self.source_id}",
                total_bytes=None if None in sizes else sum(size or 0 for size in sizes),
                total_items=len(targets),
            )
        concurrency = int(self.options["max_concurrency"])
        transfer = self._transfer(progress)

        async def read_one(target: BlobTarget) -> tuple[str, ParsedFile]:
            return await self._read_one(target, transfer, format, reader_options)

        try:
            if limit is None:
                parts = await gather_all(read_one(target) for target in targets)
            else:
                parts = await read_until(targets, read_one, ahead=concurrency, rows=limit)
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
        """The blobs :meth:`read` reads for ``paths``, in its order, with their partition values."""
        if not paths:
            raise ConfigurationError("give at least one path to read", source=self.source_id)
        targets = with_partitions(await self._targets(paths, format))
        return [(target.shown, target.partitions) for target in targets]

    async def fetch(self, path: str) -> bytes | memoryview:
        """Download one blob's bytes as they are (a large blob in parallel ranges)."""
        container, name = self._locate(path)
        return await self._download(container, name, self._transfer(NullProgress()))

    async def read_whole(self, path: str, size: int) -> bytes | memoryview:
        """All of one blob, by the download path of :meth:`fetch` (lighter than a ranged ``GET``)."""
        return await self.fetch(path)

    async def read_range(self, path: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        """The bytes ``start`` to ``end`` of one blob: one ranged ``GET``, nothing more; only
        if the blob is still version ``etag`` when given (else it changed while it was read)."""
        container, name = self._locate(path)
        if end <= start:
            return b""
        blob = self._container_client(container).get_blob_client(name)
        unchanged: dict[str, Any] = {}  # the SDK takes an etag only with its condition
        if etag:
            unchanged = {"etag": _quoted(etag), "match_condition": MatchConditions.IfNotModified}
        try:
            downloader = await blob.download_blob(
                offset=start, length=end - start, decompress=False, **unchanged
            )
            data: bytes = await downloader.readall()
            return data
        except HttpResponseError as error:
            if error.status_code == 416:  # the range starts at or after the blob's end
                return b""
            raise self._error(error, container, name) from None
        except (AzureError, OSError) as error:
            raise self._error(error, container, name) from None

    async def blob_targets(self, paths: Sequence[str], format: str | None = None) -> list[BlobTarget]:
        """The blobs a read of ``paths`` reads, in its order (for hand-offs reading them one by one)."""
        return await self._targets(paths, format)

    def _transfer(self, progress: Progress) -> Transfer:
        """The shared state of one read's downloads."""
        tuning = self._tuning
        gate = asyncio.Semaphore(int(self.options["max_concurrency"]))
        return Transfer(gate, tuning.range_size, tuning.retries, progress)

    async def _download(self, container: str, name: str, transfer: Transfer) -> bytes | memoryview:
        try:
            return await fetch_blob(self._container_client(container), name, transfer)
        except (AzureError, OSError, ConnectionLost) as error:
            raise self._error(error, container, name) from None

    async def _read_one(
        self,
        target: BlobTarget,
        transfer: Transfer,
        format: str | None,
        reader_options: Mapping[str, Any] | None,
    ) -> tuple[str, ParsedFile]:
        data = await self._download(target.container, target.name, transfer)
        parsed = await asyncio.to_thread(
            parse_table,
            data,
            path=target.shown,
            source=self.source_id,
            format=format,
            reader_options=reader_options,
            partitions=target.partitions,
        )
        transfer.progress.update(items=1)
        return target.shown, parsed

    async def _targets(self, paths: Sequence[str], format: str | None) -> list[BlobTarget]:
        """The blobs to read, in the order given (globs and folders expanded), once each."""
        found: dict[tuple[str, str], BlobTarget] = {}
        for path in paths:
            container, name = self._locate(path)
            if is_glob(name):
                expanded = in_read_order(await self._files(container, name))
                if not expanded:
                    raise ItemNotFound(f"no files match {path!r}", source=self.source_id)
            elif await self._names_folder(container, name, format):
                folder = name if not name or name.endswith("/") else name + "/"
                expanded = in_read_order(
                    [
                        target
                        for target in await self._files(container, folder)
                        if is_data_file(target.name, format)
                    ]
                )
                if not expanded:
                    raise ItemNotFound(f"no files in folder {path!r}", source=self.source_id)
            else:
                expanded = [BlobTarget(container, name, self._shown(container, name))]
            for target in expanded:
                found.setdefault((target.container, target.name), target)
        return list(found.values())

    async def _files(self, container: str, prefix: str) -> list[BlobTarget]:
        """The blobs under a folder or matching a glob, in name order."""
        try:
            listing = await list_blobs(
                self._container_client(container), prefix, recursive=True, limit=None, files_only=True
            )
        except (AzureError, OSError) as error:
            raise self._error(error, container) from None
        return [
            BlobTarget(container, name, self._shown(container, name), size)
            for name, size in zip(listing.names, listing.sizes, strict=True)
        ]

    async def _names_folder(self, container: str, name: str, format: str | None) -> bool:
        """Whether a path names a folder: ``""``, ``x/``, or ``x`` of no file format with blobs below."""
        if not name or name.endswith("/"):
            return True
        if has_format(name, format):
            return False
        try:
            listing = await list_blobs(
                self._container_client(container), name + "/", recursive=True, limit=1, files_only=True
            )
        except (AzureError, OSError) as error:
            raise self._error(error, container) from None
        return len(listing) > 0


def _quoted(etag: str) -> str:
    """An etag as an ``If-Match`` header gives it: in quotes (a listing gives it without)."""
    return etag if etag.startswith('"') else f'"{etag}"'

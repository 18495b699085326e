"""Writing a file into a container: staged blocks, committed in one conditional request.

The file is encoded in a worker thread, sent as uncommitted blocks (several at once),
and made visible by one ``Put Block List`` at the end: readers see the old blob or the
new one, never half a file; an interrupt before the commit leaves the blob as it was
(uncommitted blocks are dropped by the service). The commit is conditional, so two
writers cannot silently overwrite each other: a new blob only if none exists
(``If-None-Match: *``); a replacement only if the blob is still the one seen at the
start (its ETag), or still absent.
"""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import Any

import pyarrow as pa
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobBlock
from azure.storage.blob.aio import BlobClient

from ...errors import ConfigurationError, WriteConflict
from ...progress import NullProgress, Progress
from ...writing import WriteRequest, WriteStage, nothing_written, refuse_read_only, refuse_table_mode
from ..files.globs import is_glob
from ..files.write import (
    BatchEncoder,
    encode_table,
    encoder_thread,
    in_thread_to_end,
    refuse_what_the_format_cannot_hold,
    writable_format,
    written,
)
from .access import ContainerAccess

__all__ = ["BLOCK_SIZE", "BlobWriting", "upload_batches", "upload_table"]

#: Bytes per staged block (the service takes up to 4000 MiB per block, 50,000 blocks).
BLOCK_SIZE = 8 << 20
_IN_FLIGHT = 4


async def upload_table(
    blob: BlobClient,
    table: pa.Table,
    fmt: str,
    compression: str | None,
    *,
    replace: bool,
    shown: str,
    source: str,
    progress: Progress,
    stage: WriteStage,
) -> int:
    """Encode ``table`` and commit it as blob ``blob``; :class:`WriteConflict` if another writer won.

    Returns the number of rows written."""
    refuse_what_the_format_cannot_hold(table.schema, fmt, source=source)
    etag = await _current_etag(blob) if replace else None
    data = await asyncio.to_thread(_encoded, table, fmt, compression)
    blocks = [
        BlobBlock(block_id=base64.b64encode(f"{uuid.uuid4().hex}{index:08d}".encode()).decode())
        for index in range(max(1, -(-len(data) // BLOCK_SIZE)))
    ]
    gate = asyncio.Semaphore(_IN_FLIGHT)

    async def stage_block(index: int, block: BlobBlock) -> None:
        chunk = data[index * BLOCK_SIZE : (index + 1) * BLOCK_SIZE]
        async with gate:
            # a stream, not bytes: aiohttp sends large bytes in one call that holds the loop
            await blob.stage_block(block.id, io.BytesIO(chunk), length=len(chunk))
        progress.update(nbytes=len(chunk))

    await asyncio.gather(*(stage_block(index, block) for index, block in enumerate(blocks)))
    await _commit(blob, blocks, etag, replace=replace, shown=shown, source=source, stage=stage)
    progress.update(items=table.num_rows)
    return int(table.num_rows)


async def upload_batches(
    blob: BlobClient,
    batches: AsyncIterator[pa.Table],
    fmt: str,
    compression: str | None,
    *,
    replace: bool,
    shown: str,
    source: str,
    progress: Progress,
    stage: WriteStage,
) -> int:
    """Encode ``batches`` as they come into blocks staged on the way, committed once at the end.

    Memory holds one batch and the blocks in flight, whatever the size of the file. Nothing
    is committed on a failure or an interrupt: the blob stays as it was (uncommitted blocks
    are never visible and are dropped by the service). Returns the rows written.
    """
    etag = await _current_etag(blob)
    if etag is not None and not replace:
        raise WriteConflict(_conflict(shown, replace), source=source)
    sink = _Blocks()
    encoder = BatchEncoder(sink, fmt, compression, source=source)  # type: ignore[arg-type]  # a binary file
    stager = _Stager(blob, progress)
    encoding = encoder_thread()
    try:
        async for batch in batches:
            await in_thread_to_end(encoder.write, batch, thread=encoding)
            progress.update(items=batch.num_rows)
            del batch  # encoded: not held while the next one is read
            for chunk in sink.full_blocks(BLOCK_SIZE):
                await stager.stage(chunk)
        await in_thread_to_end(encoder.close, thread=encoding)
        for chunk in sink.full_blocks(BLOCK_SIZE):
            await stager.stage(chunk)
        await stager.stage(sink.rest())
        blocks = await stager.finish()
    except BaseException:
        await stager.abandon()
        with suppress(Exception):  # the writers let go of the file they will not finish
            encoder.close()
        raise
    finally:
        encoding.shutdown(wait=False)  # idle: each step was waited for
    await _commit(blob, blocks, etag, replace=replace, shown=shown, source=source, stage=stage)
    return encoder.rows


class _Blocks(io.RawIOBase):
    """A write-only sink that hands its bytes out in blocks; its position counts every byte."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._held = 0
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._held += len(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def full_blocks(self, size: int) -> list[bytes]:
        """Every whole block of ``size`` bytes held; the rest stays for later."""
        if self._held < size:
            return []
        data = b"".join(self._parts)
        whole = len(data) - len(data) % size
        self._parts = [data[whole:]] if whole < len(data) else []
        self._held = len(data) - whole
        return [data[start : start + size] for start in range(0, whole, size)]

    def rest(self) -> bytes:
        """The bytes held (the last, short block)."""
        data = b"".join(self._parts)
        self._parts, self._held = [], 0
        return data


class _Stager:
    """Stages blocks of one blob, a few at once, remembering their ids in order."""

    def __init__(self, blob: BlobClient, progress: Progress) -> None:
        self._blob = blob
        self._progress = progress
        self._prefix = uuid.uuid4().hex
        self._blocks: list[BlobBlock] = []
        self._running: list[asyncio.Task[None]] = []

    async def stage(self, chunk: bytes) -> None:
        """Start staging ``chunk`` (an empty one only as the file's only block)."""
        if not chunk and self._blocks:
            return
        block_id = f"{self._prefix}{len(self._blocks):08d}"
        block = BlobBlock(block_id=base64.b64encode(block_id.encode()).decode())
        self._blocks.append(block)
        while len(self._running) >= _IN_FLIGHT:
            await self._running.pop(0)
        self._running.append(asyncio.ensure_future(self._send(block, chunk)))

    async def _send(self, block: BlobBlock, chunk: bytes) -> None:
        # a stream, not bytes: aiohttp sends large bytes in one call that holds the loop
        await self._blob.stage_block(block.id, io.BytesIO(chunk), length=len(chunk))
        self._progress.update(nbytes=len(chunk))

    async def finish(self) -> list[BlobBlock]:
        """Wait for every staged block; their list, in order."""
        running, self._running = self._running, []
        await asyncio.gather(*running)
        return self._blocks

    async def abandon(self) -> None:
        """Cancel the blocks still in flight and wait for them to stop."""
        running, self._running = self._running, []
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def _commit(
    blob: BlobClient,
    blocks: list[BlobBlock],
    etag: str | None,
    *,
    replace: bool,
    shown: str,
    source: str,
    stage: WriteStage,
) -> None:
    """Make ``blocks`` the blob, if it is still as seen (``etag``), or still absent."""
    condition: dict[str, Any] = (
        {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        if etag is not None
        else {"if_none_match": "*"}
    )
    stage.committing(f"the blob {shown}")
    try:
        await blob.commit_block_list(blocks, **condition)
        stage.done()
    except (ResourceExistsError, ResourceModifiedError):
        raise WriteConflict(_conflict(shown, replace), source=source) from None


def _conflict(shown: str, replace: bool) -> str:
    if replace:
        return (
            f"{shown} was changed by another writer during this write: nothing was written "
            "(the other version is kept); read it and write again"
        )
    return f"{shown} exists: nothing was written; pass overwrite=True to replace it"


async def _current_etag(blob: BlobClient) -> str | None:
    """The ETag of the blob as it is now, or ``None`` if there is none."""
    try:
        properties = await blob.get_blob_properties()
    except ResourceNotFoundError:
        return None
    return str(properties.etag)


def _encoded(table: pa.Table, fmt: str, compression: str | None) -> bytes:
    sink = io.BytesIO()
    encode_table(table, sink, fmt, compression)
    return sink.getvalue()


class BlobWriting(ContainerAccess):
    """Writes blobs, whole or from batches, through :func:`upload_table` and :func:`upload_batches`."""

    async def write(self, request: WriteRequest, table: pa.Table) -> str:
        """Write a blob from staged blocks committed at the end, conditionally (:func:`upload_table`)."""
        return await self._upload(request, upload_table, table)

    async def write_batches(self, request: WriteRequest, batches: AsyncIterator[pa.Table]) -> str:
        """Write a blob from batches as they come: staged blocks, one commit at the end."""
        return await self._upload(request, upload_batches, batches)

    async def _upload(self, request: WriteRequest, upload: Callable[..., Awaitable[int]], data: Any) -> str:
        """Check the target, then ``upload(blob, data, ...)`` under a bar of rows; say what was written."""
        refuse_table_mode(request, source=self.source_id)
        refuse_read_only(self.options, source=self.source_id)
        container, name = self._locate(request.target)
        if not name or name.endswith("/") or is_glob(name):
            raise ConfigurationError(f"{request.target!r} is not a blob name to write", source=self.source_id)
        fmt, compression = writable_format(name, request.format, source=self.source_id)
        shown = self._shown(container, name)
        progress: Progress = NullProgress()
        if self.options.get("show_progress", True):
            progress = self.context.progress(
                f"{self.source_id}: writing {shown}", total_bytes=None, total_items=None, items="rows"
            )
        client = self._container_client(container).get_blob_client(name)
        try:
            rows = await upload(
                client,
                data,
                fmt,
                compression,
                replace=request.replaces,
                shown=shown,
                source=self.source_id,
                progress=progress,
                stage=request.stage,
            )
        except (AzureError, OSError) as error:
            raise nothing_written(self._error(error, container, name), shown) from None
        finally:
            progress.close()
        return written(rows, shown, fmt, compression, source=self.source_id)

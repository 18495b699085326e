"""Azure Blob Storage downloads: many blobs at once, a large blob in parallel ranges.

Every request waits for a place in one semaphore, so a read never has more than
``max_concurrency`` requests in flight, whether they fetch many small blobs or the
ranges of one large blob (at most :data:`RANGES_IN_FLIGHT` of those at once, the others
asked as soon as the first response tells the size). A blob is written into one buffer of
its size, allocated when the first response tells the size (a large one in a worker
thread, its pages made in one go), each range into its own slice: no chunk list, no join,
one copy of each byte.
Bytes come as stored: a blob saved with ``Content-Encoding: gzip`` stays compressed,
and the parser inflates it.

Each range is one ``GET`` sent through the container client's own pipeline (its
authentication, retries, timeouts and error handling), without the SDK's download
object around it, whose per-request bookkeeping costs more CPU than the transfer of a
small blob. The pipeline retries a request that could not be sent or got no answer;
a connection that breaks while the body arrives is retried here, from the first byte
not yet received, at most ``retries`` times with a growing pause. Where that pipeline
is not reachable, the SDK's ``download_blob`` is used (it retries on its own).
"""

from __future__ import annotations

import asyncio
import mmap
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from azure.core.exceptions import (
    DecodeError,
    HttpResponseError,
    IncompleteReadError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest
from azure.storage.blob.aio import ContainerClient

from ...progress import Progress
from ...runner import gather_all

__all__ = ["RANGES_IN_FLIGHT", "ConnectionLost", "Transfer", "fetch_blob"]

T = TypeVar("T")

#: Ranges of one blob in flight at once: more only make the service juggle (and, on a
#: small machine, compete with the parser for the CPU).
RANGES_IN_FLIGHT = 4
#: Seconds before a range whose connection broke is asked again, times the try's number.
RETRY_PAUSE = 0.5

#: Buffers from this size on are anonymous memory maps (see :func:`_buffer_of`).
_MAPPED_FROM = 1 << 20
#: Buffers from this size on have their pages made up front, in a worker thread.
_POPULATED_FROM = 8 << 20

#: What a response body raises when its connection breaks or goes silent: aiohttp's own
#: errors (read here straight from its stream), or azure-core's wrapping of them.
_BODY_FAILURES: tuple[type[BaseException], ...] = (
    aiohttp.ClientPayloadError,
    aiohttp.ClientConnectionError,
    asyncio.TimeoutError,
    ConnectionError,
    IncompleteReadError,
    ServiceResponseError,
    ServiceRequestError,
)
#: What a new request raises, after the pipeline's own retries, when the service is gone.
_REQUEST_FAILURES: tuple[type[BaseException], ...] = (
    ServiceRequestError,
    ServiceResponseError,
    asyncio.TimeoutError,
    OSError,
)


class ConnectionLost(Exception):
    """A blob's connection broke while it was read, and asking again did not finish it.

    ``stopped`` tells that the service then refused or ignored new requests.
    """

    def __init__(self, blob: str, *, tries: int, stopped: bool) -> None:
        self.blob = blob
        self.tries = tries
        self.stopped = stopped
        super().__init__(f"connection lost while reading {blob!r} ({tries} tries)")


@dataclass
class Transfer:
    """One read's downloads: the gate on requests in flight, their sizes and retries, its
    progress, and whether the service answered it yet (once it has, a service that stops
    answering is reported as a lost connection, not as one never reached)."""

    gate: asyncio.Semaphore
    range_size: int
    retries: int
    progress: Progress
    answered: bool = False


async def fetch_blob(container: ContainerClient, name: str, transfer: Transfer) -> bytes | memoryview:
    """Download blob ``name``; a blob larger than the range size comes in parallel ranges.

    The first request brings the first range and the blob's size; the other ranges
    are fetched only if the blob has not changed since (its etag still matches).
    """
    pipeline = _pipeline_of(container)
    if pipeline is None:
        return await _fetch_with_downloader(container, name, transfer)
    return await _BlobDownload(container, pipeline, name, transfer).run()


def _pipeline_of(container: ContainerClient) -> Any:
    return getattr(container, "_pipeline", None)


class _Dropped(Exception):
    """A response body stopped short: ``received`` bytes of it were written."""

    def __init__(self, received: int) -> None:
        super().__init__(f"the connection broke after {received} bytes")
        self.received = received


class _BlobDownload:
    """One blob read through the pipeline into one buffer, range by range."""

    def __init__(self, container: ContainerClient, pipeline: Any, name: str, transfer: Transfer) -> None:
        parts = urlsplit(container.url)
        self._url = urlunsplit((parts.scheme, parts.netloc, f"{parts.path}/{quote(name)}", parts.query, ""))
        self._version = container.api_version
        self._pipeline = pipeline
        self._name = name
        self._transfer = transfer
        self._buffer: memoryview | None = None
        self._etag: str | None = None
        self._others: asyncio.Future[list[None]] | None = None

    async def run(self) -> memoryview:
        """Every byte of the blob, in a buffer of its size.

        The other ranges are asked for as soon as the first response gives the size
        (:meth:`_read_others`), while the first range's body still arrives; a blob of one
        range costs no task.
        """
        try:
            await self._read_range(0, self._transfer.range_size)
        except BaseException:
            if self._others is not None:
                self._others.cancel()
                await asyncio.gather(self._others, return_exceptions=True)
            raise
        if self._others is not None:
            await self._others  # cancelling the caller cancels it, and gather_all its ranges
        return self._filled()

    def _read_others(self, total: int) -> None:
        """Start reading the ranges after the first one of a blob of ``total`` bytes."""
        size = self._transfer.range_size
        if total <= size:
            return
        ranges = asyncio.Semaphore(max(RANGES_IN_FLIGHT - 1, 1))  # the first range is the other one

        async def read_one(offset: int) -> None:
            async with ranges:
                await self._read_range(offset, min(size, total - offset))

        others = gather_all(read_one(offset) for offset in range(size, total, size))
        self._others = asyncio.ensure_future(others)

    def _filled(self) -> memoryview:
        if self._buffer is None:  # pragma: no cover - set by the first response
            raise RuntimeError("the first response gave no size")
        return self._buffer

    async def _read_range(self, offset: int, length: int) -> None:
        """Fetch ``length`` bytes at ``offset`` (fewer at the blob's end), resuming a
        broken transfer from the first byte not received, at most ``retries`` times."""
        transfer = self._transfer
        done = failures = 0
        while True:
            try:
                async with transfer.gate:
                    received = await self._get(offset + done, length - done)
                transfer.progress.update(nbytes=received)
                return
            except _Dropped as dropped:
                transfer.progress.update(nbytes=dropped.received)
                done += dropped.received
                failures += 1
                if failures > transfer.retries:
                    raise ConnectionLost(self._name, tries=failures, stopped=False) from None
            except _REQUEST_FAILURES as error:
                if not transfer.answered:
                    raise
                raise ConnectionLost(self._name, tries=failures + 1, stopped=True) from error
            await asyncio.sleep(RETRY_PAUSE * failures)

    async def _get(self, offset: int, length: int) -> int:
        """One ranged ``GET``, its body written into the buffer; the bytes written."""
        response = await self._open(offset, length)
        self._transfer.answered = True
        try:
            into = await self._destination(response, offset, length)
            return await _read_body(response, into)
        finally:
            await response.close()

    async def _open(self, offset: int, length: int) -> Any:
        """Send the request and check the status; the body is left to read."""
        from azure.storage.blob._shared.response_handlers import process_storage_error

        headers = {"x-ms-version": self._version, "x-ms-range": f"bytes={offset}-{offset + length - 1}"}
        if self._etag is not None:
            headers["If-Match"] = self._etag
        response = await self._send(headers)
        if response.status_code == 416 and offset == 0:  # an empty blob has no first byte
            await response.close()
            del headers["x-ms-range"]
            response = await self._send(headers)
        if response.status_code >= 400:
            try:
                await response.read()
            finally:
                await response.close()
            process_storage_error(HttpResponseError(response=response))
        return response

    async def _send(self, headers: dict[str, str]) -> Any:
        # stream=True: the body is read here, raw (never inflated nor decoded as a service
        # response: a blob of gzip, JSON or XML is data).
        request = HttpRequest("GET", self._url, headers=headers)
        return (await self._pipeline.run(request, stream=True)).http_response

    async def _destination(self, response: Any, offset: int, length: int) -> memoryview:
        """Where this response's body goes; the first response sizes the buffer."""
        if self._buffer is None:
            headers = response.headers
            content_range = headers.get("Content-Range", "")
            if "/" in content_range:
                total = int(content_range.rpartition("/")[2])
            else:
                total = int(headers.get("Content-Length", 0))
            if total < _POPULATED_FROM:
                self._buffer = _buffer_of(total)
            else:
                self._buffer = await asyncio.to_thread(_buffer_of, total)
            self._etag = headers.get("ETag")
            self._read_others(total)
        return self._buffer[offset : min(offset + length, len(self._buffer))]


def _buffer_of(size: int) -> memoryview:
    """A writable buffer of ``size`` bytes, to be written once.

    From :data:`_MAPPED_FROM` bytes on, private anonymous memory: nothing cleared on the
    event loop (a ``bytearray`` is), no shared-memory pages (``mmap``'s default, dearer
    to make) and no huge pages asked for (numpy does, and the kernel may then stall a
    write to compact memory). From :data:`_POPULATED_FROM` on, its pages are made in one
    call (``MAP_POPULATE``), cheaper than one fault per 4 KiB paid on the event loop as
    the bytes arrive; callers make those buffers in a worker thread.
    """
    if size < _MAPPED_FROM:
        return memoryview(bytearray(size))
    if not hasattr(mmap, "MAP_PRIVATE"):  # Windows
        return memoryview(mmap.mmap(-1, size))
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    if size >= _POPULATED_FROM:
        flags |= getattr(mmap, "MAP_POPULATE", 0)  # Linux only; elsewhere made on first write
    return memoryview(mmap.mmap(-1, size, flags=flags))


async def _read_body(response: Any, into: memoryview) -> int:
    """Write the raw body into ``into``, which it must fill; the bytes written.

    The body is read straight from aiohttp's stream where the transport is aiohttp
    (each chunk as it came off the socket, copied once), else through ``iter_raw``.
    Raises :class:`_Dropped` when the connection breaks before ``into`` is full.
    """
    stream = getattr(getattr(response, "internal_response", None), "content", None)
    chunks = _stream_chunks(stream) if isinstance(stream, aiohttp.StreamReader) else response.iter_raw()
    position, size = 0, len(into)
    try:
        async for chunk in chunks:
            end = position + len(chunk)
            if end > size:
                raise DecodeError(f"a range of {size} bytes came back longer")
            into[position:end] = chunk
            position = end
    except _BODY_FAILURES:
        raise _Dropped(position) from None
    if position < size:
        raise _Dropped(position)
    return position


async def _stream_chunks(stream: aiohttp.StreamReader) -> Any:
    while chunk := await stream.readany():
        yield chunk


async def _fetch_with_downloader(container: ContainerClient, name: str, transfer: Transfer) -> bytes:
    """The whole blob through the SDK's ``download_blob`` (ranged, and retried, by the SDK)."""
    async with transfer.gate:
        downloader = await container.download_blob(
            name, decompress=False, max_concurrency=RANGES_IN_FLIGHT, retry_total=transfer.retries
        )
        data = await downloader.readall()
    transfer.progress.update(nbytes=len(data))
    return data

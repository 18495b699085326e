"""Azure Blob Storage downloads: many blobs at once, a large blob in parallel ranges.

Every request waits for a place in one semaphore, so a read never has more than
``max_concurrency`` requests in flight, whether they fetch many small blobs or the
ranges of one large blob (at most :data:`RANGES_IN_FLIGHT` of those at once). A large
blob is assembled in one preallocated buffer. Bytes come as stored: a blob saved with
``Content-Encoding: gzip`` stays compressed, and the parser inflates it.

Each range is one ``GET`` sent through the container client's own pipeline (its
authentication, retries, timeouts and error handling), without the SDK's download
object around it, whose per-request bookkeeping costs more CPU than the transfer of a
small blob. Where that pipeline is not reachable, the SDK's ``download_blob`` is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.storage.blob.aio import ContainerClient

from ..progress import Progress

__all__ = ["RANGES_IN_FLIGHT", "fetch_blob", "gather_all"]

T = TypeVar("T")

#: Ranges of one blob in flight at once: more only make the service juggle (and, on a
#: small machine, compete with the parser for the CPU).
RANGES_IN_FLIGHT = 4


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Run ``awaitables`` concurrently and return their results in order.

    If one fails, or the caller is cancelled, the others are cancelled and awaited
    before the error propagates, so nothing keeps running behind the caller's back.
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass(frozen=True)
class _Part:
    """One response: its bytes (unless written into a buffer), their count, the blob's
    whole size and its etag."""

    data: bytes
    received: int
    total: int
    etag: str | None


async def fetch_blob(
    container: ContainerClient,
    name: str,
    *,
    gate: asyncio.Semaphore,
    range_size: int,
    progress: Progress,
) -> bytes | memoryview:
    """Download blob ``name``; a blob larger than ``range_size`` comes in parallel ranges.

    The first request brings the first range and the blob's size; the other ranges
    are fetched only if the blob has not changed since (its etag still matches).
    """
    get = _get_with_pipeline if _pipeline_of(container) is not None else _get_with_downloader
    async with gate:
        first = await get(container, name, 0, range_size, None, None)
    progress.update(nbytes=first.received)
    total, start = first.total, len(first.data)
    if start >= total:
        return first.data
    # Uninitialised memory: every byte is written once, by the range that brings it.
    buffer = np.empty(total, dtype=np.uint8)
    view = buffer.data
    view[:start] = first.data
    etag = first.etag
    del first
    ranges = asyncio.Semaphore(RANGES_IN_FLIGHT)

    async def fetch_range(offset: int) -> None:
        length = min(range_size, total - offset)
        async with ranges, gate:
            part = await get(container, name, offset, length, etag, view[offset : offset + length])
        if part.received != length:
            raise OSError(f"a range of {length} bytes came back with {part.received}")
        progress.update(nbytes=length)

    await gather_all(fetch_range(offset) for offset in range(start, total, range_size))
    return view


def _pipeline_of(container: ContainerClient) -> Any:
    return getattr(container, "_pipeline", None)


async def _get_with_pipeline(
    container: ContainerClient, name: str, offset: int, length: int, etag: str | None, into: memoryview | None
) -> _Part:
    """One ranged ``GET`` through the container client's pipeline; the body goes ``into``
    the buffer when one is given."""
    from azure.storage.blob._shared.response_handlers import process_storage_error

    parts = urlsplit(container.url)
    url = urlunsplit((parts.scheme, parts.netloc, f"{parts.path}/{quote(name)}", parts.query, ""))
    headers = {"x-ms-version": container.api_version, "x-ms-range": f"bytes={offset}-{offset + length - 1}"}
    if etag is not None:
        headers["If-Match"] = etag
    pipeline = _pipeline_of(container)
    # stream=True: the body is read here, raw (never inflated nor decoded as a service
    # response: a blob of gzip, JSON or XML is data).
    response = (await pipeline.run(HttpRequest("GET", url, headers=headers), stream=True)).http_response
    if response.status_code == 416 and offset == 0:  # an empty blob has no first byte
        await response.close()
        del headers["x-ms-range"]
        response = (await pipeline.run(HttpRequest("GET", url, headers=headers), stream=True)).http_response
    try:
        if response.status_code >= 400:
            await response.read()
            process_storage_error(HttpResponseError(response=response))
        data, received = await _body(response, into)
    finally:
        await response.close()
    content_range = response.headers.get("Content-Range", "")
    total = int(content_range.rpartition("/")[2]) if "/" in content_range else received
    return _Part(data, received, total, response.headers.get("ETag"))


async def _body(response: Any, into: memoryview | None) -> tuple[bytes, int]:
    """The raw body as bytes, or written into ``into``; and its length."""
    if into is None:
        chunks = [chunk async for chunk in response.iter_raw()]
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return data, len(data)
    position = 0
    async for chunk in response.iter_raw():
        end = position + len(chunk)
        if end > len(into):
            raise OSError(f"a range of {len(into)} bytes came back longer")
        into[position:end] = chunk
        position = end
    return b"", position


async def _get_with_downloader(
    container: ContainerClient, name: str, offset: int, length: int, etag: str | None, into: memoryview | None
) -> _Part:
    """One ranged download through the SDK's ``download_blob``."""
    options: dict[str, Any] = {"max_concurrency": 1, "decompress": False}
    if offset:  # the first request asks no range, so the downloader learns the whole size
        options.update(offset=offset, length=length)
    if etag is not None:
        options.update(etag=etag, match_condition=MatchConditions.IfNotModified)
    downloader = await container.download_blob(name, **options)
    # The clients' first-request and chunk sizes equal the range size, so the first
    # chunk is the whole response, taken without another request.
    data = b"" if downloader.size == 0 else await downloader.chunks().__anext__()
    total = offset + downloader.size if offset else downloader.size
    if into is not None:
        into[: len(data)] = data
        return _Part(b"", len(data), total, downloader.properties.etag)
    return _Part(data, len(data), total, downloader.properties.etag)

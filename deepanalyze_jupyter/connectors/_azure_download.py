"""Azure Blob Storage downloads: many blobs at once, a large blob in parallel ranges.

Every request waits for a place in one semaphore, so a read never has more than
``max_concurrency`` requests in flight, whether they fetch many small blobs or the
ranges of one large blob (at most :data:`RANGES_IN_FLIGHT` of those at once). A large
blob is assembled in one preallocated buffer. Bytes come as stored: a blob saved with
``Content-Encoding: gzip`` stays compressed, and the parser inflates it.
Cancelling the awaiting task cancels every request still running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import numpy as np
from azure.core import MatchConditions
from azure.storage.blob.aio import ContainerClient, StorageStreamDownloader

from ..progress import Progress

__all__ = ["fetch_blob", "gather_all"]

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


async def _content(downloader: StorageStreamDownloader[bytes]) -> bytes:
    """The bytes that came with a download's first response (no further request)."""
    if downloader.size == 0:
        return b""
    # The clients' first-request and chunk sizes are equal, so the first chunk is the
    # whole first response, taken without copying it again.
    return await downloader.chunks().__anext__()


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
    async with gate:
        downloader = await container.download_blob(name, max_concurrency=1, decompress=False)
        first = await _content(downloader)
    progress.update(nbytes=len(first))
    total, start = downloader.size, len(first)
    if start >= total:
        return first
    # Uninitialised memory: every byte is written once, by the range that brings it.
    buffer = np.empty(total, dtype=np.uint8)
    view = buffer.data
    view[:start] = first
    del first
    conditions: dict[str, Any] = {
        "etag": downloader.properties.etag,
        "match_condition": MatchConditions.IfNotModified,
    }

    ranges = asyncio.Semaphore(RANGES_IN_FLIGHT)

    async def fetch_range(offset: int) -> None:
        length = min(range_size, total - offset)
        async with ranges, gate:
            part = await container.download_blob(
                name, offset=offset, length=length, max_concurrency=1, decompress=False, **conditions
            )
            data = await _content(part)
        if len(data) != length:
            raise OSError(f"a range of {length} bytes came back with {len(data)}")
        view[offset : offset + length] = data
        progress.update(nbytes=length)

    await gather_all(fetch_range(offset) for offset in range(start, total, range_size))
    return view

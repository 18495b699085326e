"""The filesystem one SQL statement on a file source reads through: small files come in one batch.

DuckDB opens the files a glob matched one after another, each open a round trip from its
thread to the source's loop and, for a blob container, to the service. Over many small
files those round trips are the query's time. So when a glob matches files, the small
ones start downloading at once (:data:`BATCH_BYTES` in all), concurrently and in the order
DuckDB reads them, and DuckDB's reads of a file wait only for that file: DuckDB works on
the first files while the later ones arrive.

A file is small when a reader would read it whole anyway: a file up to ``SMALL_FILE_BYTES``
(which ``SourceFileSystem._open`` fetches whole), or a text file (CSV, TSV, JSON) up to
:data:`TEXT_FILE_BYTES`, which DuckDB reads whole unless a ``LIMIT`` stops it early (the
downloads still running then are stopped with the statement). A larger file is read in
exact ranges (Parquet footers and the column chunks a query needs). DuckDB reads some of
those ranges more than once (a CSV file's first buffer when it sniffs the file, when it
binds the query and when it scans it; a Parquet footer when it binds and when it scans),
so the ranges a statement fetched are kept for it, up to :data:`KEPT_BYTES`, and read again
from memory. The memory is the statement's: :meth:`StatementFileSystem.close` stops what is
still downloading and lets it go.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...errors import FormatError, OperationCancelled, QueryError
from ...filesystem import _WHOLE_FILE_BYTES as SMALL_FILE_BYTES
from ...filesystem import SourceFileSystem, _ConnectorAccess
from ...runner import gather_all
from .formats import detect_format
from .joined import FilesCheck, JoinedFile, Part

if TYPE_CHECKING:
    from ..base import Connector, DirectFile

__all__ = ["BATCH_BYTES", "KEPT_BYTES", "SMALL_FILE_BYTES", "StatementFileSystem"]

#: At most this many bytes of small files are held for one statement.
BATCH_BYTES = 64 << 20
#: A text file (CSV, TSV, JSON, gzipped too) up to this size is batched as a small file is:
#: DuckDB reads one whole (unless a LIMIT stops it early), a round trip for each of its buffers.
TEXT_FILE_BYTES = 16 << 20
#: At most this many bytes of the ranges a statement fetched are kept for it to read again
#: (the least recently read go first).
KEPT_BYTES = 64 << 20
#: Reads of one batch in flight at once, unless the source sets its own ``max_concurrency``.
_CONCURRENT_READS = 32

#: Seconds :meth:`StatementFileSystem.aclose` waits for cancelled downloads to end.
_SETTLE_WAIT = 5.0

_Arriving = concurrent.futures.Future  # the bytes of one file of a batch, set on the source's loop


class StatementFileSystem(SourceFileSystem):
    """A :class:`SourceFileSystem` for one statement on one source (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The small files of the batches, by ``SOURCE/path``: their bytes once they arrive.
        self._held: dict[str, _Arriving[bytes | memoryview]] = {}
        self._held_bytes = 0
        self._batches: list[concurrent.futures.Future[None]] = []
        self._closed = False
        self._lock = threading.Lock()
        self._globbed: dict[tuple[str, int | None, str], Any] = {}
        self._globbing = threading.Lock()
        self._described: dict[str, dict[str, Any]] = {}
        #: Files made of pieces of the held files (:meth:`hold_joined`), by ``SOURCE/path``.
        self._joined: dict[str, JoinedFile] = {}
        #: The ranges fetched, by ``(SOURCE/path, start, end)``, least recently read first.
        self._kept: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._kept_bytes = 0

    @classmethod
    def for_statement(cls, connector: Connector, loop: asyncio.AbstractEventLoop) -> StatementFileSystem:
        """The filesystem of one statement on ``connector``'s source, used from DuckDB's threads."""
        return cls(_access=_ConnectorAccess(connector, loop))

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        """The files matching ``path``, listed once per statement; the small ones start downloading.

        Folders are left out, as DuckDB's own globs leave them (``**`` matches them too). DuckDB
        globs a pattern again when it runs what it bound; the answer is the same.
        """
        key = (path, maxdepth, repr(sorted(kwargs.items())))
        with self._globbing:  # one listing of a pattern, whichever thread asks first
            found = self._globbed.get(key)
            if found is None:
                matches = super().glob(path, maxdepth=maxdepth, detail=True, **kwargs).items()
                found = self._globbed[key] = [name for name, info in matches if info["type"] == "file"]
                self._start_batch(list(found))
        return copy.copy(found)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Name, size and type of ``path``, asked of the source once per statement (a glob asks
        for a folder twice, each time a request or two to blob storage)."""
        name = self._strip_protocol(path)
        found = self._described.get(name)
        if found is None:
            found = self._described[name] = super().info(path, **kwargs)
        return dict(found)

    def _version(self, name: str) -> str | None:
        """The etag the statement's listing or description of file ``SOURCE/path`` gave, if any."""
        etag: str | None = self._described.get(name, {}).get("etag")
        return super()._version(name) or etag

    def read_range(self, source_id: str, relative: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of a file: from its batch when one brings it."""
        name = f"{source_id}/{relative}"
        held = self._held.get(name)
        if held is not None:
            return bytes(held.result()[start:end])
        joined = self._joined.get(name)
        if joined is not None:
            return joined.read(start, end)
        key = (name, start, end)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
                return kept
        data = super().read_range(source_id, relative, start, end)
        self._keep(key, data)
        return data

    def _keep(self, key: tuple[str, int, int], data: bytes) -> None:
        """Keep a fetched range for the statement to read again, the least recently read
        ranges let go beyond :data:`KEPT_BYTES`."""
        if len(data) > KEPT_BYTES // 2:
            return
        with self._lock:
            if self._closed or key in self._kept:
                return
            self._kept[key] = data
            self._kept_bytes += len(data)
            while self._kept_bytes > KEPT_BYTES:
                _, dropped = self._kept.popitem(last=False)
                self._kept_bytes -= len(dropped)

    def open_direct(self, path: str) -> DirectFile | None:
        """Opened directly unless a batch or a join of this statement holds its bytes."""
        name = self._strip_protocol(path)
        if name in self._held or name in self._joined:
            return None
        return super().open_direct(path)

    def is_held(self, path: str) -> bool:
        """Whether a batch brings the file at ``path`` (it is small and was globbed)."""
        return self._strip_protocol(path) in self._held

    def listed_size(self, path: str) -> int:
        """The size of the file at ``path`` as its listing gave it."""
        return int(self._listed[self._strip_protocol(path)]["size"])

    def hold_joined(self, beside: str, pieces: Sequence[bytes | Part], check: FilesCheck) -> str:
        """The URL of a file of this statement alone, beside ``beside``, of ``pieces`` in turn
        (a :class:`Part`'s bytes as its held file arrives, once ``check`` passed on it)."""
        folder = self._strip_protocol(beside).rpartition("/")[0]
        name = f"{folder}/.joined-{len(self._joined)}-{threading.get_ident()}.csv"
        joined = self._joined[name] = JoinedFile(pieces, self.arrived, check)
        self._listed[name] = {"name": name, "size": joined.size, "type": "file"}
        return self.unstrip_protocol(name)

    def arrived(self, path: str) -> bytes | memoryview:
        """The bytes of a small file a batch brings, once they arrive (or its read's error)."""
        return self._held[self._strip_protocol(path)].result()

    def has_arrived(self, path: str) -> bool:
        """Whether the small file at ``path`` a batch brings has arrived (or failed to)."""
        return self._held[self._strip_protocol(path)].done()

    def held_bytes(self, path: str) -> bytes | memoryview | None:
        """The bytes of a small file a batch brings (once they arrive), or ``None`` if none does."""
        try:
            return self.arrived(path)
        except Exception:  # not held, or its read failed: the read of the file says what went wrong
            return None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (the statement was stopped or is over)."""
        return self._closed

    def close(self) -> None:
        """Stop the listings and downloads still running, fail the reads waiting for them, count
        what came."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._kept.clear()
            self._kept_bytes = 0
        if isinstance(self._access, _ConnectorAccess):
            self._access.stop()
        for batch in self._batches:
            batch.cancel()
        stopped = OperationCancelled("the query was stopped", source=self._source_id)
        for arriving in self._held.values():
            _settle(arriving, error=stopped)
            if not arriving.cancelled() and arriving.exception() is None:
                self.bytes_fetched += len(arriving.result())

    async def aclose(self) -> None:
        """:meth:`close`, then wait (on the source's loop) until the downloads it stopped have ended."""
        self.close()
        if self._batches:
            await asyncio.wait([asyncio.wrap_future(batch) for batch in self._batches], timeout=_SETTLE_WAIT)

    @property
    def _source_id(self) -> str | None:
        access = self._access
        return access.connector.source_id if isinstance(access, _ConnectorAccess) else None

    def _start_batch(self, paths: Sequence[str]) -> None:
        """Start fetching the small files among ``paths`` (listed, not yet held) concurrently."""
        access = self._access
        if not isinstance(access, _ConnectorAccess):
            return
        source_id = access.connector.source_id
        with self._lock:  # DuckDB may glob from two threads; close() may come meanwhile
            files = [] if self._closed else self._small_files(source_id, paths)
            if len(files) < 2:
                return  # one file gains nothing from a batch
            batch: list[tuple[str, int, _Arriving[bytes | memoryview]]] = []
            for relative, size in files:
                arriving: _Arriving[bytes | memoryview] = concurrent.futures.Future()
                self._held[f"{source_id}/{relative}"] = arriving
                self._held_bytes += size
                batch.append((relative, size, arriving))
            fetching = asyncio.run_coroutine_threadsafe(_fetch_batch(access.connector, batch), access.loop)
            self._batches.append(fetching)

    def _small_files(self, source_id: str, paths: Sequence[str]) -> list[tuple[str, int]]:
        """(path, size) of the listed small files of ``source_id`` among ``paths``, not yet held."""
        files: list[tuple[str, int]] = []
        room = BATCH_BYTES - self._held_bytes
        for path in paths:
            name = self._strip_protocol(path)
            entry = self._listed.get(name)
            if entry is None or name in self._held or not 0 < entry["size"] <= _batched_size(name):
                continue
            owner, relative = self._split(name)
            if owner != source_id or entry["size"] > room:
                continue  # another source's file is refused by the read itself, in its own words
            room -= entry["size"]
            files.append((relative, entry["size"]))
        return files


def _batched_size(name: str) -> int:
    """The largest file named ``name`` that a batch fetches: a Parquet file's reader reads
    only the ranges it needs, a text file's the whole file."""
    try:
        format, _ = detect_format(name)
    except FormatError:
        return SMALL_FILE_BYTES
    return SMALL_FILE_BYTES if format == "parquet" else TEXT_FILE_BYTES


async def _fetch_batch(
    connector: Connector, files: Sequence[tuple[str, int, _Arriving[bytes | memoryview]]]
) -> None:
    """Fetch ``files`` (path, size, where its bytes go), at most the source's concurrency at once."""
    slots = asyncio.Semaphore(int(connector.options.get("max_concurrency", _CONCURRENT_READS)))

    async def fetch(relative: str, size: int, arriving: _Arriving[bytes | memoryview]) -> None:
        try:
            async with slots:
                data = await connector.read_whole(relative, size)
            if len(data) != size:
                raise QueryError(
                    f"{relative!r} changed while the query read it (it had {size} bytes when listed): "
                    "run the query again",
                    source=connector.source_id,
                )
        except asyncio.CancelledError:
            _settle(arriving, error=OperationCancelled("the query was stopped", source=connector.source_id))
            raise
        except Exception as error:  # the read of this file fails with it; the others go on
            _settle(arriving, error=error)
        else:
            _settle(arriving, data=data)

    await gather_all(fetch(*file) for file in files)


def _settle(
    arriving: _Arriving[bytes | memoryview],
    *,
    data: bytes | memoryview = b"",
    error: BaseException | None = None,
) -> None:
    """Give a waiting read its bytes or its error, unless it already has one."""
    try:
        if error is None:
            arriving.set_result(data)
        else:
            arriving.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass

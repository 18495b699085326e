"""An fsspec filesystem over the registered file sources: ``dsrc://SOURCE/path``.

pandas, pyarrow, Polars, Dask and DuckDB open ``dsrc://lake/sales/2024.parquet`` with
the credentials stored for source ``lake``; nothing secret is written in the notebook::

    pd.read_parquet("dsrc://lake/sales/2024/")

The protocol is registered through fsspec's ``fsspec.specs`` entry points, so no tool
needs to be told about it. Every path goes through the source's connector: listings
come from its listing, bytes from its ranged reads (:meth:`Connector.read_range`), and
its own checks keep paths inside the folder or container (``..`` is refused). The
filesystem only reads: opening for writing is refused.

Which session holds the sources: the one given (``storage_options={"session": s}``),
else the kernel's (:func:`deepanalyze_jupyter.current_session`). A pickled filesystem
(what Dask ships to its workers) carries no session and no secret: only the type and
the non-secret options of the session's file sources. A worker process rebuilds those
sources in a session of its own; a source that needs a secret (an account key, a SAS)
cannot be rebuilt there and is refused with one line: read it in the kernel.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from .errors import ConfigurationError, ItemNotFound, OperationCancelled
from .source_paths import PROTOCOL

if TYPE_CHECKING:
    from .connectors.base import Connector, DirectFile
    from .session import Session

__all__ = ["PROTOCOL", "SourceFileSystem", "source_url"]


T = TypeVar("T")
Operation = Callable[["Connector"], Awaitable[T]]

#: Files up to this size are fetched whole when opened.
_WHOLE_FILE_BYTES = 1 << 20

#: Listings are asked without the connectors' display bound (a Dask dataset may hold many files).
_LISTING_LIMIT = 10_000_000


def source_url(source_id: str, path: str = "") -> str:
    """The URL of ``path`` in source ``source_id``: ``dsrc://lake/sales/x.csv``."""
    return f"{PROTOCOL}://{source_id}/{path.lstrip('/')}"


@dataclass(frozen=True)
class _Carried:
    """What a pickled filesystem holds of one file source: nothing secret."""

    type: str
    options: Mapping[str, Any]
    needs_secrets: bool


class _SessionAccess:
    """Runs connector operations through a session (from any thread but its loop's)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def run(self, source_id: str, operation: Operation[T]) -> T:
        registry = self.session.registry

        async def call() -> T:
            return await operation(await registry.get_connector(source_id))

        return self.session.run(call())

    def open_direct(self, source_id: str, relative: str) -> DirectFile | None:
        """``relative`` opened for reading in the caller's thread, if the source allows it.

        Opened here, not in a worker thread of the loop: a file opened there after the caller
        was interrupted (Ctrl-C) would reach no one to close it.
        """
        return self.run(source_id, _connected).open_direct(relative)

    def refuse_if_stopped(self, source_id: str) -> None:
        """Nothing stops a session's filesystem."""

    def carried(self) -> dict[str, _Carried]:
        registry = self.session.registry
        carried = {}
        for config in registry.list_data_sources():
            if registry.connector_class(config.type).kind == "files":
                carried[config.id] = _Carried(config.type, dict(config.options), bool(config.secrets))
        return carried


class _ConnectorAccess:
    """Runs operations of one connected connector on its loop, from another thread (DuckDB's);
    :meth:`stop` cancels those running and refuses the next ones."""

    def __init__(self, connector: Connector, loop: asyncio.AbstractEventLoop) -> None:
        self.connector = connector
        self.loop = loop
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._stopped = False
        self._lock = threading.Lock()

    def run(self, source_id: str, operation: Operation[T]) -> T:
        self.refuse_if_stopped(source_id)
        stopped = OperationCancelled("the query was stopped", source=source_id)
        with self._lock:
            if self._stopped:
                raise stopped
            running = asyncio.run_coroutine_threadsafe(_awaited(operation(self.connector)), self.loop)
            self._running.add(running)
        try:
            return running.result()
        except concurrent.futures.CancelledError:
            raise stopped from None
        finally:
            with self._lock:
                self._running.discard(running)

    def open_direct(self, source_id: str, relative: str) -> DirectFile | None:
        """``relative`` opened for reading in the caller's thread (DuckDB's), if the source allows it."""
        self.refuse_if_stopped(source_id)
        return self.connector.open_direct(relative)

    def refuse_if_stopped(self, source_id: str) -> None:
        """Refuse another source's files, and any read once the statement was stopped."""
        if source_id != self.connector.source_id:
            raise ConfigurationError(
                f"SQL on this source reads only its own files, not those of {source_id!r}",
                source=self.connector.source_id,
            )
        if self._stopped:
            raise OperationCancelled("the query was stopped", source=source_id)

    def stop(self) -> None:
        """Cancel the operations running (a listing or a read that never ends), refuse the next."""
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for operation in running:
            operation.cancel()

    def carried(self) -> dict[str, _Carried]:
        return {}


class _WorkerAccess(_SessionAccess):
    """A session of this process holding the file sources a pickled filesystem named."""

    def __init__(self, carried: Mapping[str, _Carried]) -> None:
        from .session import Session

        super().__init__(Session())
        self._carried = dict(carried)

    def run(self, source_id: str, operation: Operation[T]) -> T:
        if not self.session.registry.exists(source_id):
            self._rebuild(source_id)
        return super().run(source_id, operation)

    def _rebuild(self, source_id: str) -> None:
        known = self._carried.get(source_id)
        if known is None:
            raise ConfigurationError(
                f"no file source {source_id!r} in this process (a filesystem carries only the "
                "file sources of its session)",
                source=source_id,
            )
        if known.needs_secrets:
            raise ConfigurationError(
                "this source needs a secret, which a pickled filesystem never carries: read it in "
                "the kernel, where its secret is",
                source=source_id,
            )
        self.session.add(source_id, known.type, test=False, **known.options)

    def carried(self) -> dict[str, _Carried]:
        return dict(self._carried)


async def _connected(connector: Connector) -> Connector:
    return connector


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _kernel_session() -> Session:
    from . import current_session

    if "IPython" not in sys.modules:
        raise ConfigurationError(
            f"{PROTOCOL}:// paths outside a kernel need a session: pass storage_options={{'session': s}}"
        )
    try:
        return current_session()
    except RuntimeError as error:
        raise ConfigurationError(str(error)) from None


class SourceFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """Read-only access to the files of registered file sources, ``SOURCE/path``."""

    protocol = PROTOCOL
    root_marker = ""
    # Instances are not shared: two sessions must never meet in fsspec's instance cache.
    cachable = False

    def __init__(
        self,
        *args: Any,
        session: Session | None = None,
        _access: _SessionAccess | _ConnectorAccess | None = None,
        **storage_options: Any,
    ) -> None:
        super().__init__(*args, **storage_options)
        self._access = _access or _SessionAccess(session or _kernel_session())
        #: Bytes read through this filesystem, for figures of what a query fetched.
        self.bytes_fetched = 0
        # What listings said of each file, so that opening a listed file asks nothing more.
        self._listed: dict[str, dict[str, Any]] = {}

    @classmethod
    def for_connector(cls, connector: Connector, loop: asyncio.AbstractEventLoop) -> SourceFileSystem:
        """A filesystem serving only ``connector``'s source, called from threads other than ``loop``'s."""
        return cls(_access=_ConnectorAccess(connector, loop))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle only the non-secret definitions of the file sources (see the module's notes)."""
        return _rebuild, (self._access.carried(),)

    def __repr__(self) -> str:
        return f"<SourceFileSystem {PROTOCOL}://>"

    # -- paths -----------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(item) for item in path]
        text = str(path)
        if text.startswith(f"{PROTOCOL}://"):
            text = text[len(PROTOCOL) + 3 :]
        elif text.startswith(f"{PROTOCOL}:"):
            text = text[len(PROTOCOL) + 1 :]
        return text.strip("/")

    def unstrip_protocol(self, name: str) -> str:
        """``lake/x.csv`` -> ``dsrc://lake/x.csv``."""
        return f"{PROTOCOL}://{self._strip_protocol(name)}"

    def _split(self, path: str) -> tuple[str, str]:
        source_id, _, relative = self._strip_protocol(path).partition("/")
        if not source_id:
            raise ConfigurationError(f"{PROTOCOL}:// paths start with a source id: {PROTOCOL}://SOURCE/path")
        return source_id, relative

    def _run(self, source_id: str, operation: Operation[T]) -> T:
        return self._access.run(source_id, operation)

    # -- listing -----------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The files and folders directly in ``path`` (a file: itself)."""
        source_id, relative = self._split(path)
        frame = self._listing(source_id, f"{relative}/" if relative else "", recursive=False)
        entries = self._remember(source_id, frame)
        if not entries and relative:
            info = self.info(path)
            entries = [info] if info["type"] == "file" else []
        return entries if detail else [entry["name"] for entry in entries]

    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Every file below ``path``, from one flat listing of the source."""
        if maxdepth is not None or withdirs:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        source_id, relative = self._split(path)
        try:
            info = self.info(path)
        except FileNotFoundError:
            return {} if detail else []
        if info["type"] == "file":
            found = {info["name"]: info}
        else:
            frame = self._listing(source_id, f"{relative}/" if relative else "", recursive=True)
            entries = self._remember(source_id, frame)
            found = {entry["name"]: entry for entry in entries if entry["type"] == "file"}
        return found if detail else sorted(found)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Name, size and type (file or directory) of ``path``."""
        source_id, relative = self._split(path)
        name = f"{source_id}/{relative}" if relative else source_id
        if not relative:
            return {"name": name, "size": 0, "type": "directory"}
        if name in self._listed:
            return dict(self._listed[name])
        try:
            properties = self._run(source_id, lambda connector: connector.describe(relative)).attrs[
                "properties"
            ]
        except ItemNotFound:
            properties = None
        if properties is not None and properties.get("kind") == "file":
            modified = properties.get("last_modified")
            found = {"name": name, "size": int(properties["size"] or 0), "type": "file", "modified": modified}
            return {**found, "etag": properties["etag"]} if properties.get("etag") else found
        if properties is not None and properties.get("kind") in ("folder", "container"):
            return {"name": name, "size": 0, "type": "directory"}
        if len(self._listing(source_id, f"{relative}/", recursive=False, limit=1)):
            return {"name": name, "size": 0, "type": "directory"}  # a blob folder has no blob of its own
        raise FileNotFoundError(f"{PROTOCOL}://{name}")

    def _remember(self, source_id: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
        entries = _entries(source_id, frame)
        self._listed.update((entry["name"], entry) for entry in entries if entry["type"] == "file")
        return entries

    def modified(self, path: str) -> datetime:
        """When the file at ``path`` last changed."""
        stamp = self.info(path).get("modified")
        return pd.Timestamp(stamp).to_pydatetime() if stamp is not None else datetime.now(timezone.utc)

    def _listing(self, source_id: str, prefix: str, *, recursive: bool, limit: int = _LISTING_LIMIT) -> Any:
        try:
            frame: pd.DataFrame = self._run(
                source_id,
                lambda connector: connector.list_items(prefix or None, recursive=recursive, limit=limit),
            )
        except ItemNotFound:
            return pd.DataFrame({"name": [], "kind": [], "size": []})
        return frame

    # -- reading -----------------------------------------------------------------------

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """The bytes ``start`` to ``end`` of a file (negative: from its end), in one ranged read."""
        source_id, relative = self._split(path)
        if start is None or start < 0 or end is None or end < 0:
            size = self.info(path)["size"]
            start = 0 if start is None else (max(0, size + start) if start < 0 else start)
            end = size if end is None else (max(0, size + end) if end < 0 else end)
        return self.read_range(source_id, relative, start, end)

    def read_range(self, source_id: str, relative: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of ``relative`` in ``source_id`` (counted in :attr:`bytes_fetched`),
        of the version its listing gave: the reads of a file replaced meanwhile fail, not mix two."""
        etag = self._version(f"{source_id}/{relative}")
        data = self._run(source_id, lambda connector: connector.read_range(relative, start, end, etag=etag))
        self.bytes_fetched += len(data)
        return data

    def _version(self, name: str) -> str | None:
        """The etag the listing of file ``SOURCE/path`` gave, if it gave one."""
        etag: str | None = self._listed.get(name, {}).get("etag")
        return etag

    def read_direct(self, source_id: str, file: DirectFile, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of a file opened with :meth:`open_direct` (counted too)."""
        self._access.refuse_if_stopped(source_id)
        data = file.read_range(start, end)
        self.bytes_fetched += len(data)
        return data

    def open_direct(self, path: str) -> DirectFile | None:
        """The file at ``path`` opened for reading in this thread, when its source allows it."""
        source_id, relative = self._split(path)
        return self._access.open_direct(source_id, relative)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SourceFile:
        if mode != "rb":
            source_id, _ = self._split(path)
            raise ConfigurationError(
                f"{PROTOCOL}:// files are read-only: cannot open {path!r} for writing", source=source_id
            )
        size = self.info(path)["size"]
        # A small file comes whole in one request (a CSV reader asks for it piece by piece);
        # a larger one in exact ranges: Parquet readers ask for the footer and the column
        # chunks they need, and a read-ahead would fetch bytes of the columns they skip.
        whole = size <= _WHOLE_FILE_BYTES
        # A larger file's many ranged reads go straight to it when its source allows.
        direct = None if whole else self.open_direct(path)
        try:
            return SourceFile(
                self,
                path,
                mode,
                block_size=block_size or "default",
                cache_type=kwargs.get("cache_type", "all" if whole else "none"),
                cache_options=cache_options,
                size=size,
                direct=direct,
            )
        except BaseException:
            if direct is not None:
                direct.close()
            raise

    def _refuse_write(self, path: str, *args: Any, **kwargs: Any) -> None:
        source_id, _ = self._split(path)
        raise ConfigurationError(
            f"{PROTOCOL}:// files are read-only: {path!r} was left as it is", source=source_id
        )

    rm_file = mkdir = makedirs = rmdir = touch = _refuse_write

    def rm(self, path: str, *args: Any, **kwargs: Any) -> None:
        """Refused: the filesystem only reads."""
        self._refuse_write(path)

    def mv(self, path1: str, path2: str, *args: Any, **kwargs: Any) -> None:
        """Refused: the filesystem only reads."""
        self._refuse_write(path1)


class SourceFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file of a source opened for random-access reading: each block is one ranged read,
    from the file itself when it was opened directly (``direct``), else through the source."""

    fs: SourceFileSystem

    def __init__(
        self, fs: SourceFileSystem, path: str, mode: str, *, direct: DirectFile | None = None, **kwargs: Any
    ):
        self._direct = direct
        super().__init__(fs, path, mode, **kwargs)
        # The cache calls back without holding the file: a reader that drops it unclosed
        # (DuckDB, pyarrow) frees it, and closes what was opened directly, at once rather
        # than at the next collection of reference cycles.
        method = weakref.WeakMethod(self._fetch_range)

        def fetch_range(start: int, end: int) -> bytes:
            alive = method()
            if alive is None:
                raise ValueError("I/O operation on closed file")
            return alive(start, end)

        self.cache.fetcher = fetch_range

    def _fetch_range(self, start: int, end: int) -> bytes:
        source_id, relative = self.fs._split(self.path)
        if self._direct is not None:
            return self.fs.read_direct(source_id, self._direct, start, end)
        return self.fs.read_range(source_id, relative, start, end)

    def close(self) -> None:
        """Close the file (and what was opened directly)."""
        try:
            super().close()
        finally:
            if self._direct is not None:
                self._direct.close()


def _entries(source_id: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """fsspec's descriptions of the rows of a source's listing.

    Read a column at a time: pandas takes a row at a time (``itertuples``) about 0.1 ms each
    on a listing's columns, the most of an ``ls`` of a few files.
    """
    columns = [
        frame[column].tolist() if column in frame.columns else [None] * len(frame)
        for column in ("name", "kind", "size", "last_modified", "etag")
    ]
    return [_entry(source_id, *row) for row in zip(*columns, strict=True)]


def _entry(source_id: str, name: Any, kind: Any, size: Any, modified: Any, etag: Any) -> dict[str, Any]:
    """fsspec's description of one row of a source's listing (with the file's version, its
    ``etag``, when the source gives one)."""
    folder = str(kind) != "file"
    entry = {
        "name": f"{source_id}/{str(name).rstrip('/')}",
        "size": 0 if folder or pd.isna(size) else int(size),
        "type": "directory" if folder else "file",
    }
    if not folder and modified is not None and not pd.isna(modified):
        entry["modified"] = modified
    if not folder and isinstance(etag, str) and etag:
        entry["etag"] = etag
    return entry


def _rebuild(carried: Mapping[str, _Carried]) -> SourceFileSystem:
    """Unpickle: a filesystem whose sources come from this process's kernel, else are rebuilt here."""
    try:
        return SourceFileSystem(_access=_SessionAccess(_kernel_session()))
    except ConfigurationError:
        return SourceFileSystem(_access=_WorkerAccess(carried))

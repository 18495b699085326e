"""Azure Blob Storage: list a container as a DataFrame and read its files into one.

A source is one container (option ``container``) or, without it, a whole account
whose paths start with the container (``box/sales/2024.csv``). It signs in with a
connection string, an account key, a SAS token, anonymously (public containers) or
through Microsoft Entra ID (the optional ``azure-identity`` package). Everything runs
on the async clients of ``azure-storage-blob``; parsing runs in worker threads.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob.aio import ContainerClient

from ...errors import ConfigurationError, DataSourceError, FormatError, ItemNotFound
from ...frames import mark_result
from ...models import Secret
from ...progress import NullProgress, Progress
from ..base import Connector
from ..files.formats import ParsedFile, combine_tables, detect_format, parse_table, validate_reader_options
from ..files.globs import is_glob
from .auth import ServiceClients, Tuning, open_service, translate_error
from .download import ConnectionLost, Transfer, fetch_blob, gather_all
from .listing import Listing, list_blobs, list_containers, listing_frame
from .options import OPTION_SPECS, check_options, normalize_options
from .properties import blob_properties, container_properties, properties_frame

__all__ = ["AzureBlobConnector"]

#: Error codes of a credential that was accepted but may not list: it may still read.
_MAY_NOT_LIST = frozenset({"AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch"})


@dataclass(frozen=True)
class _Target:
    """One blob to read: where it is, how it is shown, and its size if known."""

    container: str
    name: str
    shown: str
    size: int | None = None


class AzureBlobConnector(Connector):
    """A storage container (or account) of Azure Blob Storage."""

    type_name: ClassVar[str] = "azure_blob"
    display_name: ClassVar[str] = "Azure Blob Storage"
    kind = "files"
    option_specs = OPTION_SPECS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: ServiceClients | None = None
        self._containers: dict[str, ContainerClient] = {}
        self._tuning = Tuning(
            connect_timeout=float(self.options["connect_timeout"]),
            read_timeout=float(self.options["read_timeout"]),
            retries=int(self.options["retries"]),
            range_size=int(self.options["range_size_mb"]) << 20,
        )

    # -- configuration -------------------------------------------------------------

    @classmethod
    def prepare(
        cls,
        source: str,
        options: Mapping[str, Any],
        secrets: Mapping[str, Secret],
        *,
        present_secrets: frozenset[str] = frozenset(),
    ) -> tuple[dict[str, Any], dict[str, Secret]]:
        """Move a SAS out of the account URL, infer ``auth`` and check its fields."""
        given, given_secrets = normalize_options(source, options, secrets, present_secrets)
        clean_options, clean_secrets = super().prepare(
            source, given, given_secrets, present_secrets=present_secrets
        )
        return check_options(source, clean_options, clean_secrets), clean_secrets

    @property
    def _container(self) -> str | None:
        return self.options.get("container") or None

    # -- lifecycle -----------------------------------------------------------------

    async def connect(self) -> None:
        """Make the clients and check that the container (or account) answers."""
        clients = open_service(self.options, self.context.secrets.reveal, self._tuning, source=self.source_id)
        try:
            await self._check(clients)
        except BaseException:
            await clients.close()
            raise
        self._clients = clients

    async def _check(self, clients: ServiceClients) -> None:
        tuning = self._tuning
        deadline = (tuning.connect_timeout + 1.0) * (tuning.retries + 1) + 5.0
        container = self._container
        pages: Any
        try:
            if container is None:
                pages = clients.service.list_containers(results_per_page=1).by_page()
            else:
                pages = (
                    clients.service.get_container_client(container).list_blobs(results_per_page=1).by_page()
                )
            await asyncio.wait_for(_first_page(pages), deadline)
        except HttpResponseError as error:
            code = getattr(error, "error_code", None)
            if getattr(code, "value", code) in _MAY_NOT_LIST:
                return  # the credential was accepted; it may read without listing
            raise self._error(error, container, endpoint=clients.endpoint) from None
        except (AzureError, OSError, asyncio.TimeoutError) as error:
            raise self._error(error, container, endpoint=clients.endpoint) from None

    async def disconnect(self) -> None:
        """Close the clients (and their HTTP sessions)."""
        clients, self._clients = self._clients, None
        self._containers.clear()
        if clients is not None:
            await clients.close()

    async def is_alive(self) -> bool:
        """HTTP needs no live connection: usable while the clients are open."""
        return self._clients is not None

    async def test_connection(self) -> str:
        """List one item, and say what answered."""
        clients = self._open_clients()
        await self._check(clients)
        where = f"container {self._container!r}" if self._container else "the storage account"
        return f"{self.display_name}: {where} at {clients.endpoint} answered (auth: {self.options['auth']})"

    def _open_clients(self) -> ServiceClients:
        if self._clients is None:
            raise ConfigurationError("the source is not connected", source=self.source_id)
        return self._clients

    def _container_client(self, name: str) -> ContainerClient:
        client = self._containers.get(name)
        if client is None:
            client = self._open_clients().service.get_container_client(name)
            self._containers[name] = client
        return client

    def _locate(self, path: str) -> tuple[str, str]:
        """(container, blob name or prefix) of a path given by the user.

        A ``..`` segment is refused: a URL resolves it, so the request would leave the
        container (and fail as if the credential were wrong, or read another container).
        """
        text = path.strip().lstrip("/")
        if "\x00" in text or ".." in text.replace("\\", "/").split("/"):
            raise ConfigurationError(f"{path!r} leads outside the container ('..')", source=self.source_id)
        if self._container is not None:
            return self._container, text
        container, _, rest = text.partition("/")
        if not container or is_glob(container):
            raise ConfigurationError(
                f"the source has no container option: start the path with a container name "
                f"(container/path), not {path!r}",
                source=self.source_id,
            )
        return container, rest

    def _shown(self, container: str, name: str) -> str:
        return name if self._container is not None else f"{container}/{name}"

    def _error(
        self, error: BaseException, container: str | None, blob: str | None = None, *, endpoint: str = ""
    ) -> DataSourceError:
        if not endpoint and self._clients is not None:
            endpoint = self._clients.endpoint
        return translate_error(
            error,
            source=self.source_id,
            endpoint=endpoint,
            container=container,
            blob=blob,
            anonymous=self.options.get("auth") == "anonymous",
        )

    # -- browsing ------------------------------------------------------------------

    async def list_items(
        self, prefix: str | None = None, *, recursive: bool = False, limit: int | None = None
    ) -> pd.DataFrame:
        """List blobs under ``prefix`` (a glob allowed): one level with folders, or flat.

        At most ``limit`` rows (default: the ``max_listing`` option); the frame's
        ``attrs["truncated"]`` says whether more were left out.
        """
        bound = int(self.options["max_listing"]) if limit is None else limit
        if bound < 1:
            raise ConfigurationError("a listing limit must be at least 1", source=self.source_id)
        text = (prefix or "").strip().lstrip("/")
        if self._container is None and "/" not in text and not is_glob(text):
            listing = await self._list_containers(text, bound)
        else:
            container, name = self._locate(text)
            name_prefix = "" if self._container is not None else f"{container}/"
            try:
                listing = await list_blobs(
                    self._container_client(container),
                    name,
                    recursive=recursive,
                    limit=bound,
                    name_prefix=name_prefix,
                )
            except (AzureError, OSError) as error:
                raise self._error(error, container) from None
        frame = mark_result(
            listing_frame(listing), source=self.source_id, truncated=listing.truncated, limit=bound
        )
        frame.attrs["prefix"] = text
        return frame

    async def _list_containers(self, prefix: str, limit: int) -> Listing:
        try:
            return await list_containers(self._open_clients().service, prefix, limit)
        except (AzureError, OSError) as error:
            raise self._error(error, None) from None

    async def describe(self, item: str) -> pd.DataFrame:
        """The properties of one blob (or of a container, for ``""`` or ``box/``).

        One column, ``value``, indexed by property name; user metadata appear as
        ``metadata.<key>``. ``attrs["properties"]`` holds the same as a dict.
        """
        container, name = self._locate(item)
        client = self._container_client(container)
        try:
            if not name.strip("/"):
                properties = container_properties(await client.get_container_properties())
            else:
                blob = await client.get_blob_client(name).get_blob_properties()
                properties = blob_properties(blob, self._shown(container, blob.name), container)
        except (AzureError, OSError) as error:
            raise self._error(error, container, name or None) from None
        return mark_result(properties_frame(properties), source=self.source_id, truncated=False, limit=None)

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
        """Read blobs (paths, folders ending in ``/`` or globs) into one DataFrame, in order.

        Blobs download concurrently (at most ``max_concurrency`` requests in flight), a
        large one in parallel ranges, and each is parsed in a worker thread as soon as
        it arrives. With a ``limit``, blobs are fetched in order, a few ahead, and
        fetching stops once the blobs parsed so far hold more rows than the limit.
        Interrupting cancels every download and returns nothing.
        """
        if not paths:
            raise ConfigurationError("give at least one path to read", source=self.source_id)
        if format is not None:
            detect_format("", format, source=self.source_id)
        validate_reader_options(reader_options, source=self.source_id)
        targets = await self._targets(paths, format)
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

        async def read_one(target: _Target) -> tuple[str, ParsedFile]:
            return await self._read_one(target, transfer, format, reader_options)

        try:
            if limit is None:
                parts = await gather_all(read_one(target) for target in targets)
            else:
                parts = await _read_until(targets, read_one, ahead=concurrency, rows=limit)
        finally:
            progress.close()
        frame = await asyncio.to_thread(
            combine_tables,
            parts,
            source=self.source_id,
            source_column=source_column,
            reader_options=reader_options,
        )
        truncated = limit is not None and len(frame) > limit
        if truncated:
            frame = frame.iloc[:limit].copy()
        return mark_result(frame, source=self.source_id, truncated=truncated, limit=limit)

    async def fetch(self, path: str) -> bytes | memoryview:
        """Download one blob's bytes as they are (a large blob in parallel ranges)."""
        container, name = self._locate(path)
        return await self._download(container, name, self._transfer(NullProgress()))

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
        target: _Target,
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
        )
        transfer.progress.update(items=1)
        return target.shown, parsed

    async def _targets(self, paths: Sequence[str], format: str | None) -> list[_Target]:
        """The blobs to read, in the order given (globs and folders expanded), once each."""
        found: dict[tuple[str, str], _Target] = {}
        for path in paths:
            container, name = self._locate(path)
            if is_glob(name):
                expanded = await self._files(container, name)
                if not expanded:
                    raise ItemNotFound(f"no blob matches {path!r}", source=self.source_id)
            elif await self._names_folder(container, name, format):
                folder = name if not name or name.endswith("/") else name + "/"
                expanded = [
                    target
                    for target in await self._files(container, folder)
                    if _is_data_file(target.name, format)
                ]
                if not expanded:
                    raise ItemNotFound(f"no readable blobs under {path!r}", source=self.source_id)
            else:
                expanded = [_Target(container, name, self._shown(container, name))]
            for target in expanded:
                found.setdefault((target.container, target.name), target)
        return list(found.values())

    async def _files(self, container: str, prefix: str) -> list[_Target]:
        """The blobs under a folder or matching a glob, in name order."""
        try:
            listing = await list_blobs(
                self._container_client(container), prefix, recursive=True, limit=None, files_only=True
            )
        except (AzureError, OSError) as error:
            raise self._error(error, container) from None
        return [
            _Target(container, name, self._shown(container, name), size)
            for name, size in zip(listing.names, listing.sizes, strict=True)
        ]

    async def _names_folder(self, container: str, name: str, format: str | None) -> bool:
        """Whether a path names a folder: ``""``, ``x/``, or ``x`` of no file format with blobs below."""
        if not name or name.endswith("/"):
            return True
        if _has_format(name, format):
            return False
        try:
            listing = await list_blobs(
                self._container_client(container), name + "/", recursive=True, limit=1, files_only=True
            )
        except (AzureError, OSError) as error:
            raise self._error(error, container) from None
        return len(listing) > 0


async def _read_until(
    targets: Sequence[_Target],
    read_one: Callable[[_Target], Awaitable[tuple[str, ParsedFile]]],
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


async def _first_page(pages: Any) -> None:
    async for page in pages:
        async for _ in page:
            break
        break


def _has_format(name: str, explicit: str | None) -> bool:
    try:
        detect_format(name, explicit)
    except FormatError:
        return False
    return True


def _is_data_file(name: str, explicit: str | None) -> bool:
    """A folder's file worth reading: not hidden or a marker (``_SUCCESS``), of a known format."""
    base = name.rsplit("/", 1)[-1]
    return bool(base) and not base.startswith((".", "_")) and _has_format(name, explicit)

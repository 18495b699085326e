"""Azure Blob Storage: list a container as a DataFrame and read its files into one.

A source is one container (option ``container``) or, without it, a whole account
whose paths start with the container (``box/sales/2024.csv``). It signs in with a
connection string, an account key, a SAS token, anonymously (public containers) or
through Microsoft Entra ID (the optional ``azure-identity`` package). Everything runs
on the async clients of ``azure-storage-blob``; parsing runs in worker threads.

The connector's parts: its clients, paths and errors (:mod:`.access`), reading
(:mod:`.reading`) and writing (:mod:`.upload`); here its options, its lifecycle,
listing and describing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import pandas as pd
from azure.core.exceptions import AzureError, HttpResponseError

from ...errors import ConfigurationError
from ...frames import mark_result
from ...models import Secret
from ..files.globs import is_glob
from ..files.opening import OpensFiles
from ..files.sql import SqlOverFiles
from .auth import ServiceClients, open_service
from .listing import Listing, list_blobs, list_containers, listing_frame
from .options import OPTION_SPECS, check_options, normalize_options
from .properties import blob_properties, container_properties, properties_frame
from .reading import BlobReading
from .sas import WorkerCredential, worker_credential
from .upload import BlobWriting

__all__ = ["AzureBlobConnector"]

#: Error codes of a credential that was accepted but may not list: it may still read.
_MAY_NOT_LIST = frozenset({"AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch"})


class AzureBlobConnector(BlobReading, BlobWriting, SqlOverFiles, OpensFiles):
    """A storage container (or account) of Azure Blob Storage."""

    type_name: ClassVar[str] = "azure_blob"
    display_name: ClassVar[str] = "Azure Blob Storage"
    kind = "files"
    native_outputs = frozenset({"arrow"})
    option_specs = OPTION_SPECS
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

    # -- scale-out -----------------------------------------------------------------

    def worker_credential(self, container: str, lifetime: timedelta) -> WorkerCredential:
        """What a distributed worker gets to read ``container``: no long-lived secret (:mod:`.sas`)."""
        return worker_credential(
            self.options, self.context.secrets.reveal, container, lifetime, source=self.source_id
        )


async def _first_page(pages: Any) -> None:
    async for page in pages:
        async for _ in page:
            break
        break

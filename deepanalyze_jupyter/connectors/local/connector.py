"""The local folder connector: its options, its lifecycle and its writes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pyarrow as pa

from ...errors import ConfigurationError, ItemNotFound
from ...models import OptionSpec, Secret
from ...writing import READ_ONLY_OPTION, WriteRequest, refuse_read_only, refuse_table_mode
from ..base import absolute_path
from ..files.opening import OpensFiles
from ..files.sql import SqlOverFiles
from ..files.write import write_local_batches, write_local_file
from .reading import FolderReading

__all__ = ["LocalFolderConnector"]


class LocalFolderConnector(FolderReading, SqlOverFiles, OpensFiles):
    """The files under one folder on this machine."""

    type_name = "local"
    display_name = "Local folder"
    kind = "files"
    native_outputs = frozenset({"arrow"})
    option_specs = (
        OptionSpec("path", str, "the folder holding the files", required=True, label="Folder"),
        READ_ONLY_OPTION,
    )

    @classmethod
    def prepare(
        cls,
        source: str,
        options: Mapping[str, Any],
        secrets: Mapping[str, Secret],
        *,
        present_secrets: frozenset[str] = frozenset(),
    ) -> tuple[dict[str, Any], dict[str, Secret]]:
        """Make the folder's path absolute, so a later change of directory keeps it valid."""
        clean, clean_secrets = super().prepare(source, options, secrets, present_secrets=present_secrets)
        clean["path"] = absolute_path(clean["path"], source=source, naming="a folder")
        return clean, clean_secrets

    # -- lifecycle -----------------------------------------------------------------

    async def connect(self) -> None:
        """Check that the folder exists and can be read."""
        await asyncio.to_thread(self._check_root)

    def _check_root(self) -> None:
        path = str(self.options["path"])
        if not os.path.exists(path):
            raise ItemNotFound(f"folder {path} does not exist", source=self.source_id)
        if not os.path.isdir(path):
            raise ConfigurationError(f"{path} is a file, not a folder", source=self.source_id)
        if not os.access(path, os.R_OK | os.X_OK):
            raise ConfigurationError(f"folder {path} cannot be read", source=self.source_id)

    async def disconnect(self) -> None:
        """Nothing is held open."""

    async def test_connection(self) -> str:
        """Read the folder and count its entries."""
        count = await asyncio.to_thread(lambda: len(os.listdir(self.root)))
        return f"Local folder {self.options['path']} ({count} entries)"

    # -- writing -------------------------------------------------------------------

    async def write(self, request: WriteRequest, table: pa.Table) -> str:
        """Write a file in the folder; it appears only once complete (:mod:`..files.write`)."""
        name = self._file_to_write(request)
        return await write_local_file(
            self.resolve(name), name, request, table, self.context.progress, self.source_id
        )

    async def write_batches(self, request: WriteRequest, batches: AsyncIterator[pa.Table]) -> str:
        """Write batches into a file of the folder as they come; it appears only once complete."""
        name = self._file_to_write(request)
        return await write_local_batches(
            self.resolve(name), name, request, batches, self.context.progress, self.source_id
        )

    def _file_to_write(self, request: WriteRequest) -> str:
        """The folder-relative name of the file ``request`` writes, once writing is allowed."""
        refuse_table_mode(request, source=self.source_id)
        refuse_read_only(self.options, source=self.source_id)
        name = self.normalize(request.target)
        if not name:
            raise ConfigurationError("give the path of a file to write", source=self.source_id)
        return name

"""Opening one file of a file source as a binary file, for readers that take a file (streamed reads).

The file is served by the filesystem over sources (:mod:`deepanalyze_jupyter.filesystem`):
each block a reader asks for is one ranged read of the connector, run on the source's
loop, so the file is never fetched whole and the reader runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import IO, TYPE_CHECKING, cast

if TYPE_CHECKING:
    from ..base import Connector

__all__ = ["OpensFiles"]


class OpensFiles:
    """What a connector holding files adds: :meth:`open_file`."""

    def open_file(self, path: str, loop: asyncio.AbstractEventLoop) -> IO[bytes]:
        """``path`` (as :meth:`read` names files) opened for reading, from a thread other than ``loop``'s."""
        from ...filesystem import SourceFileSystem, source_url

        connector = cast("Connector", self)
        filesystem = SourceFileSystem.for_connector(connector, loop)
        return cast("IO[bytes]", filesystem.open(source_url(connector.source_id, path), "rb"))

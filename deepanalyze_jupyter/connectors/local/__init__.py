"""A folder on disk as a file source, read with the same parsers as blob storage.

Paths are ``/``-separated and relative to the folder. No path may lead outside it:
``..`` segments and absolute paths are refused, and every path is resolved with
:func:`os.path.realpath` so that a symbolic link pointing out is refused too. Disk work
and parsing run in worker threads, never on the event loop.

Its parts: paths inside the folder (:mod:`.paths`), listing and describing its entries
(:mod:`.listing`), reading its files (:mod:`.reading`), and the connector with its
lifecycle and writes (:mod:`.connector`).
"""

from __future__ import annotations

from .connector import LocalFolderConnector

__all__ = ["LocalFolderConnector"]

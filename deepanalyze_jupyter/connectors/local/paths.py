"""Paths inside a local folder: made canonical, resolved on disk, never leading outside it."""

from __future__ import annotations

import os
import posixpath

from ...errors import ConfigurationError
from ..base import Connector

__all__ = ["FolderPaths", "is_within"]


class FolderPaths(Connector):
    """The folder's real path, and the paths of what is inside it."""

    @property
    def root(self) -> str:
        """The folder's real path (symbolic links resolved)."""
        return os.path.realpath(str(self.options["path"]))

    def resolve(self, path: str) -> str:
        """The real path on disk of ``path`` (relative to the folder), refusing escapes."""
        relative = self.normalize(path)
        root = self.root
        real = os.path.realpath(os.path.join(root, relative))
        if not is_within(real, root):
            raise ConfigurationError(
                f"{path!r} leads outside the folder (through a symbolic link)", source=self.source_id
            )
        return real

    def normalize(self, path: str) -> str:
        """``path`` made canonical (``./a//b/`` -> ``a/b``; the folder itself is ``""``).

        Absolute paths and ``..`` segments are refused: a path names something inside
        the folder, or nothing.
        """
        relative = path.strip()
        if os.path.isabs(relative) or relative.startswith(("/", "\\")):
            raise ConfigurationError(
                f"{path!r} is an absolute path; give paths relative to the folder", source=self.source_id
            )
        if "\x00" in relative:
            raise ConfigurationError(
                f"{path!r} holds a NUL character ('\\x00'), which no file name can hold",
                source=self.source_id,
            )
        if ".." in relative.replace("\\", "/").split("/"):
            raise ConfigurationError(f"{path!r} leads outside the folder ('..')", source=self.source_id)
        normal = posixpath.normpath(relative) if relative else ""
        return "" if normal == "." else normal


def is_within(real: str, root: str) -> bool:
    """Whether the real path ``real`` is the folder ``root`` or lies below it."""
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

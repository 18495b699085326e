"""A file of one statement made of others: bytes given, and parts of files as they arrive.

:mod:`.csv_sniffing` reads many small CSV files as one: a header line, then each file's
rows. The joined file's size is known from the listing, so DuckDB can start on the first
files while later ones still download; the files of the parts a read takes are checked
when they arrive, together, and a file that fails the check fails the read (the statement
is then read another way).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["FilesCheck", "JoinedFile", "NotAlike", "Part"]


class NotAlike(Exception):
    """A file of a joined read is not like the first one (its header, its quoting, its values)."""


#: A check of whole files (their names and bytes) that raises :class:`NotAlike`.
FilesCheck = Callable[[Sequence[tuple[str, "bytes | memoryview"]]], None]


@dataclass(frozen=True)
class Part:
    """Bytes ``start`` to ``start + size`` of the arriving file ``name``."""

    name: str
    start: int
    size: int

    def taken_from(self, data: bytes | memoryview) -> memoryview:
        """The part's bytes of its file's ``data``."""
        return memoryview(data)[self.start : self.start + self.size]


class JoinedFile:
    """``pieces`` one after another, the bytes of a :class:`Part` from ``arrived(name)`` once
    ``check`` passed on the whole file."""

    def __init__(
        self,
        pieces: Sequence[bytes | Part],
        arrived: Callable[[str], bytes | memoryview],
        check: FilesCheck,
    ) -> None:
        self._pieces = list(pieces)
        self._arrived = arrived
        self._check = check
        self._checked: set[str] = set()
        self._lock = threading.Lock()
        self.size = sum(len(piece) if isinstance(piece, bytes) else piece.size for piece in self._pieces)

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end``; waits for the files of the parts they take."""
        taken: list[tuple[bytes | Part, int, int]] = []
        offset = 0
        for piece in self._pieces:
            size = len(piece) if isinstance(piece, bytes) else piece.size
            if offset + size > start and offset < end:
                taken.append((piece, max(start - offset, 0), min(end - offset, size)))
            offset += size
            if offset >= end:
                break
        files = self._checked_files([piece.name for piece, _, _ in taken if isinstance(piece, Part)])
        out: list[bytes | memoryview] = []
        for piece, low, high in taken:
            if isinstance(piece, bytes):
                out.append(piece[low:high])
            else:
                out.append(memoryview(files[piece.name])[piece.start + low : piece.start + high])
        return b"".join(out)

    def _checked_files(self, names: list[str]) -> dict[str, bytes | memoryview]:
        """The bytes of the files ``names`` once they arrived, those not yet checked checked at once."""
        files = {name: self._arrived(name) for name in names}
        with self._lock:
            unchecked = [(name, data) for name, data in files.items() if name not in self._checked]
        if unchecked:
            self._check(unchecked)
            with self._lock:
                self._checked.update(name for name, _ in unchecked)
        return files

"""A file of one statement made of others: bytes given, and parts of files as they arrive.

:mod:`.csv_sniffing` reads many small CSV files as one: a header line, then each file's
rows. The joined file's size is known from the listing, so DuckDB can start on the first
files while later ones still download; each file's part is checked when it arrives, and
a part that fails its check fails the read (the statement then runs as written).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["JoinedFile", "NotAlike", "Part"]


class NotAlike(Exception):
    """A file of a joined read is not like the first one (its header, its quoting, its end)."""


@dataclass(frozen=True)
class Part:
    """Bytes ``start`` to ``start + size`` of the arriving file ``name``, used once ``check``
    (which raises :class:`NotAlike`) passed on the whole file."""

    name: str
    start: int
    size: int
    check: Callable[[bytes | memoryview], None]


class JoinedFile:
    """``pieces`` one after another, the bytes of a :class:`Part` from ``arrived(name)``."""

    def __init__(self, pieces: Sequence[bytes | Part], arrived: Callable[[str], bytes | memoryview]) -> None:
        self._pieces = list(pieces)
        self._arrived = arrived
        self._checked: set[str] = set()
        self._lock = threading.Lock()
        self.size = sum(len(piece) if isinstance(piece, bytes) else piece.size for piece in self._pieces)

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end``; waits for the files of the parts they take."""
        out: list[bytes | memoryview] = []
        offset = 0
        for piece in self._pieces:
            size = len(piece) if isinstance(piece, bytes) else piece.size
            if offset + size > start and offset < end:
                low, high = max(start - offset, 0), min(end - offset, size)
                if isinstance(piece, bytes):
                    out.append(piece[low:high])
                else:
                    out.append(self._part(piece)[piece.start + low : piece.start + high])
            offset += size
            if offset >= end:
                break
        return b"".join(out)

    def _part(self, part: Part) -> bytes | memoryview:
        data = self._arrived(part.name)
        with self._lock:
            checked = part.name in self._checked
        if not checked:
            part.check(data)
            with self._lock:
                self._checked.add(part.name)
        return memoryview(data)

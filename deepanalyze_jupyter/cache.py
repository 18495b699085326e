"""A small time-to-live cache for metadata (listings, table columns) per source."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from copy import deepcopy
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MetadataCache", "object_columns"]


class MetadataCache:
    """Values per (source, key), each valid for ``ttl`` seconds of a monotonic clock.

    DataFrames are copied in and out, so that a caller changing a listing it was given
    cannot change what the next caller sees.
    """

    def __init__(self, ttl: float = 300.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, Hashable], tuple[float, Any]] = {}

    def __repr__(self) -> str:
        return f"<MetadataCache ttl={self.ttl}s entries={len(self._entries)}>"

    def put(self, source: str, key: Hashable, value: Any) -> None:
        """Keep ``value`` for ``(source, key)`` until the TTL runs out."""
        if self.ttl <= 0:
            return
        self._entries[(source, key)] = (self._clock() + self.ttl, _copied(value))

    def get(self, source: str, key: Hashable) -> Any | None:
        """The value kept for ``(source, key)``, or ``None`` if absent or expired."""
        entry = self._entries.get((source, key))
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[(source, key)]
            return None
        return _copied(value)

    def values(self, source: str, kind: str) -> list[Any]:
        """The unexpired values of ``source`` whose key is a tuple starting with ``kind``."""
        keys = [key for (owner, key) in self._entries if owner == source]
        found = [self.get(source, key) for key in keys if isinstance(key, tuple) and key[:1] == (kind,)]
        return [value for value in found if value is not None]

    def clear(self, source: str | None = None) -> int:
        """Forget the entries of ``source`` (or all); return how many were dropped."""
        if source is None:
            dropped = len(self._entries)
            self._entries.clear()
            return dropped
        keys = [key for key in self._entries if key[0] == source]
        for key in keys:
            del self._entries[key]
        return len(keys)


#: Values of an object column a caller can change in place (JSON objects and arrays, lists).
_MUTABLE = (dict, list, set, bytearray, np.ndarray)
#: What pandas infers of an object column whose values hold no others (told in one pass in C).
_FLAT_KINDS = frozenset(
    {"empty", "string", "bytes", "boolean", "integer", "floating", "decimal", "date", "datetime", "time"}
)


def object_columns(frame: pd.DataFrame) -> list[tuple[int, pd.Series]]:
    """The positions and values of ``frame``'s object columns that may hold lists, dicts or the like."""
    return [
        (position, frame.iloc[:, position])
        for position, dtype in enumerate(frame.dtypes)
        if dtype == np.dtype(object)
        and pd.api.types.infer_dtype(frame.iloc[:, position], skipna=True) not in _FLAT_KINDS
    ]


def _copied(value: Any) -> Any:
    """A copy of a frame the caller may change, also in the dicts and lists its object columns hold."""
    if isinstance(value, pd.DataFrame):
        copy = value.copy()
        copy.attrs = dict(value.attrs)
        for position, column in object_columns(copy):
            if any(isinstance(item, _MUTABLE) for item in column):
                values = np.empty(len(column), dtype=object)  # one by one: equal lists are no 2-D array
                for row, item in enumerate(column):
                    values[row] = deepcopy(item) if isinstance(item, _MUTABLE) else item
                copy.isetitem(position, values)
        return copy
    return value

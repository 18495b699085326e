"""An opt-in, in-memory cache of query results, bounded by bytes, least recently used out.

A result is kept per (source, key), where the key holds everything that shapes it (the
SQL, its parameters, the row limit, the format and the connector's options). A lookup
gives it back only while it is younger than the TTL the caller asks for. Nothing is ever
written to disk, and each session has its own cache (it lives on the registry), so
nothing is shared across sessions. The registry clears a source's results when the source
is updated or removed.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import pickle
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .cache import _copied
from .errors import ConfigurationError
from .results import Result, result_size

__all__ = ["DEFAULT_RESULT_CACHE_BYTES", "CachedResult", "ResultCache", "check_ttl", "result_key"]

#: The default bound of a session's results cache: 256 MiB of results.
DEFAULT_RESULT_CACHE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class CachedResult:
    """A result found in the cache, and how many seconds ago it was stored."""

    result: Result
    age: float


class ResultCache:
    """Results per (source, key), at most ``max_bytes`` of them; the least recently used go first."""

    def __init__(
        self, max_bytes: int = DEFAULT_RESULT_CACHE_BYTES, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[tuple[str, Hashable], tuple[float, Any, int]] = OrderedDict()
        self._bytes = 0
        #: Bumped by each clear of a source (of all: ``_all_cleared``), so that a result fetched
        #: before the clear is not kept.
        self._generations: dict[str, int] = {}
        self._all_cleared = 0

    def __repr__(self) -> str:
        return f"<ResultCache entries={len(self._entries)} bytes={self._bytes} max_bytes={self._max_bytes}>"

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """The bytes of the results held now."""
        return self._bytes

    @property
    def max_bytes(self) -> int:
        """The bound: results beyond it push the least recently used out (0 keeps nothing)."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._max_bytes = max(0, int(value))
        self._shrink()

    def get(self, source: str, key: Hashable, *, ttl: float) -> CachedResult | None:
        """The result kept for ``(source, key)`` if stored less than ``ttl`` seconds ago."""
        entry = self._entries.get((source, key))
        if entry is None:
            return None
        stored, value, _ = entry
        age = self._clock() - stored
        if age >= ttl:
            self._drop((source, key))
            return None
        self._entries.move_to_end((source, key))
        return CachedResult(_private_copy(value), age)

    def generation(self, source: str) -> int:
        """A number that changes whenever ``source``'s results are cleared (pass it to :meth:`put`)."""
        return self._all_cleared + self._generations.get(source, 0)

    def put(self, source: str, key: Hashable, result: Result, *, generation: int | None = None) -> None:
        """Keep ``result`` (a copy of a pandas frame) unless it alone is larger than the bound.

        With ``generation`` (read before the result was fetched), a result fetched before the
        source was updated or removed is not kept.
        """
        if generation is not None and generation != self.generation(source):
            return
        self._drop((source, key))
        size = result_size(result.value)
        if size > self._max_bytes:
            return
        self._entries[(source, key)] = (self._clock(), _private_copy(result), size)
        self._bytes += size
        self._shrink()

    def clear(self, source: str | None = None) -> int:
        """Forget the results of ``source`` (or all); return how many were dropped."""
        keys = [key for key in self._entries if source is None or key[0] == source]
        if source is None:
            self._all_cleared += 1
        else:
            self._generations[source] = self._generations.get(source, 0) + 1
        for key in keys:
            self._drop(key)
        return len(keys)

    def _drop(self, key: tuple[str, Hashable]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[2]

    def _shrink(self) -> None:
        while self._bytes > self._max_bytes and self._entries:
            self._drop(next(iter(self._entries)))


def result_key(*parts: Any) -> bytes | None:
    """A key for the results cache of everything that shapes a result; ``None`` if a part cannot be one.

    Pickled, so that parameter values that cannot be hashed (lists, arrays) still make a
    key and equal values make equal keys; a value that cannot be pickled is never cached.
    The key is the SHA-256 of the pickle, not the pickle: a DataFrame joined with ``frames=``
    would otherwise stay in memory, in the key, uncounted by the bound.
    """
    try:
        return hashlib.sha256(pickle.dumps(parts, protocol=pickle.HIGHEST_PROTOCOL)).digest()
    except Exception:
        return None


def check_ttl(ttl: Any, *, source: str | None = None) -> float | None:
    """``ttl`` in seconds (``None`` or 0: no cache); one clear error unless a finite number, 0 or more.

    NaN would keep a result for ever (no age is ever as old) and a negative TTL would fetch
    every time while keeping results, so neither is taken for a TTL.
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, numbers.Real):
        raise ConfigurationError(
            f"cache_ttl must be a number of seconds, got {type(ttl).__name__}", source=source
        )
    seconds = float(ttl)
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigurationError(
            f"cache_ttl must be a finite number of seconds, 0 or more, got {ttl!r}", source=source
        )
    return seconds or None


def _private_copy(result: Result) -> Result:
    """A copy the caller may change without changing the cache (Arrow tables are immutable)."""
    value = result.value
    if isinstance(value, pa.Table):
        copy = value
    elif hasattr(value, "clone"):  # a Polars frame: a cheap copy-on-write clone
        copy = value.clone()
    else:
        copy = _copied(value)
    return Result(copy, dict(result.info))

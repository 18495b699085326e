"""One query read as N range partitions of an integer column, at once over the pool's connections.

The column's bounds come from one small query (``min``/``max`` over the statement); the
range between them is cut into ``partitions`` equal parts, each read as its own query
(``SELECT * FROM (<sql>) AS q WHERE col >= a AND col < b``; rows where it is NULL go to
the first part), and the frames are combined in order of the ranges. Each part takes
its own pooled connection (``pool_max_size`` of them at once; the rest wait for one),
and an interrupt cancels every part on the server, as it does a single query.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pandas as pd

from ...errors import ConfigurationError
from ...frames import mark_result
from ...runner import gather_all

__all__ = ["partition_ranges", "range_statements", "read_partitioned"]

#: A query of the connector: (sql, params, limit) -> frame.
Reader = Callable[[str, "Mapping[str, Any] | None", "int | None"], Awaitable[pd.DataFrame]]


def partition_ranges(low: int, high: int, partitions: int) -> list[tuple[int, int]]:
    """``partitions`` half-open ranges ``[start, end)`` covering ``low..high`` (both included)."""
    span = high - low + 1
    count = max(1, min(partitions, span))
    edges = [low + span * index // count for index in range(count + 1)]
    return list(itertools.pairwise(edges))


def range_statements(inner: str, quoted_column: str, ranges: list[tuple[int, int]]) -> list[str]:
    """The statement of each range of ``inner`` (a ``SELECT * FROM (...) AS q``); NULLs in the first."""
    return [
        f"{inner} WHERE ({quoted_column} >= {start:d} AND {quoted_column} < {end:d})"
        + (f" OR {quoted_column} IS NULL" if index == 0 else "")
        for index, (start, end) in enumerate(ranges)
    ]


async def read_partitioned(
    read: Reader,
    sql: str,
    params: Mapping[str, Any] | None,
    *,
    column: str,
    quoted_column: str,
    partitions: int,
    limit: int | None,
    source: str,
) -> pd.DataFrame:
    """Read ``sql`` in ``partitions`` range parts of ``column`` at once; one frame, parts in order."""
    if partitions < 1:
        raise ConfigurationError(f"partitions must be at least 1, got {partitions}", source=source)
    inner = f"SELECT * FROM (\n{sql}\n) AS q"
    bounds = await read(
        f"SELECT min({quoted_column}) AS low, max({quoted_column}) AS high FROM ({inner}) AS b", params, None
    )
    low, high = bounds["low"].iloc[0], bounds["high"].iloc[0]
    if pd.isna(low):  # no rows, or only NULLs: one part reads them
        return await read(inner, params, limit)
    if not _is_integer(low) or not _is_integer(high):
        raise ConfigurationError(
            f"partition_on needs an integer column; {column!r} holds {type(low).__name__} values",
            source=source,
        )
    ranges = partition_ranges(int(low), int(high), partitions)
    parts = range_statements(inner, quoted_column, ranges)
    frames = await gather_all(read(part, params, limit) for part in parts)
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    truncated = any(frame.attrs.get("truncated") for frame in frames) or (
        limit is not None and len(combined) > limit
    )
    if limit is not None:
        combined = combined.iloc[:limit]
    return mark_result(combined, source=source, truncated=bool(truncated), limit=limit)


def _is_integer(value: Any) -> bool:
    return bool(pd.api.types.is_integer(value))

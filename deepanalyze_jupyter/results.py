"""Result formats: a query's or a read's DataFrame as pandas, Arrow or Polars, with the same promises.

Every format keeps the dtypes pandas results promise (see :mod:`frames`): integers with
missing values stay integers, NULL is missing and NaN stays NaN, decimals stay exact, and
time-zone-aware timestamps are in UTC with one unit (microseconds, PostgreSQL's; nanoseconds
only where a file holds values that fine). What ``frame.attrs``
says of a pandas result (source, whether a row limit cut it, the limit, how old a cached
result is) an Arrow table carries in its schema metadata under ``deepanalyze_jupyter`` (JSON),
and :func:`result_info` reads it back from either. Polars frames hold no metadata, so the
magics note a cut before converting, and the Session API's :func:`result_info` of a Polars
frame is empty.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .cache import object_columns
from .errors import ConfigurationError, QueryError

__all__ = [
    "METADATA_KEY",
    "OUTPUT_FORMATS",
    "Result",
    "check_output",
    "convert_result",
    "result_info",
    "result_rows",
    "result_size",
    "with_info",
]

#: The formats a result can be returned in.
OUTPUT_FORMATS = ("pandas", "arrow", "polars")
#: The Arrow schema metadata key holding what ``frame.attrs`` holds for pandas.
METADATA_KEY = b"deepanalyze_jupyter"
_TIMESTAMP_UNIT = "us"


@dataclass(frozen=True)
class Result:
    """A result in its format, and what it says of itself (also for Polars, whose frames hold no metadata).

    ``info`` has ``source``, ``truncated`` and ``row_limit``, and ``cache_age`` (seconds) when
    the result came from the results cache.
    """

    value: Any
    info: Mapping[str, Any] = field(default_factory=dict)


def check_output(output: str, *, source: str | None = None) -> str:
    """``output`` if it names a format (and Polars is installed when it is asked); else one clear error."""
    if output not in OUTPUT_FORMATS:
        raise ConfigurationError(
            f"unknown result format {output!r}; use one of {', '.join(OUTPUT_FORMATS)}", source=source
        )
    if output == "polars":
        _polars(source)
    return output


def convert_result(frame: pd.DataFrame | pa.Table, output: str, *, source: str | None = None) -> Any:
    """``frame`` in the format ``output`` (converted once; pandas is returned as it is).

    An Arrow table (from a connector that builds one itself) is taken as it is, with
    zoned timestamps put in UTC, and never goes through pandas.
    """
    if check_output(output, source=source) == "pandas" and isinstance(frame, pd.DataFrame):
        return frame
    if isinstance(frame, pa.Table):
        table = _in_utc_table(frame)
        return table if output == "arrow" else _to_polars(table, source)
    try:
        table = _arrow_table(frame)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raise QueryError(_unconvertible(frame, output), source=source) from None
    if output == "arrow":
        return table
    return _to_polars(table, source)


def _to_polars(table: pa.Table, source: str | None) -> Any:
    """``table`` as a Polars DataFrame; a column name given twice, which Polars refuses, is one line."""
    polars = _polars(source)
    try:
        return polars.from_arrow(table)
    except polars.exceptions.DuplicateError:
        names = table.column_names
        twice = next(name for position, name in enumerate(names) if name in names[:position])
        raise QueryError(
            f"column {twice!r} appears more than once, which Polars does not allow; "
            "name the columns apart (AS) or use --as pandas",
            source=source,
        ) from None


def result_info(result: Any) -> dict[str, Any]:
    """What a result says of itself: ``source``, ``truncated``, ``row_limit``, ``cache_age`` (if cached)."""
    if isinstance(result, pd.DataFrame):
        return {str(key): value for key, value in result.attrs.items()}
    if isinstance(result, pa.Table):
        raw = (result.schema.metadata or {}).get(METADATA_KEY)
        return dict(json.loads(raw)) if raw else {}
    return {}


def with_info(result: Any, info: Mapping[str, Any]) -> Any:
    """``result`` with ``info`` added to what it says of itself (a new table for Arrow)."""
    if isinstance(result, pd.DataFrame):
        result.attrs.update(info)
        return result
    if isinstance(result, pa.Table):
        merged = {**result_info(result), **info}
        metadata = {**(result.schema.metadata or {}), METADATA_KEY: json.dumps(merged).encode()}
        return result.replace_schema_metadata(metadata)
    return result


def result_rows(result: Any) -> int:
    """The number of rows of a result of any format."""
    if isinstance(result, pa.Table):
        return int(result.num_rows)
    return len(result)


def result_size(result: Any) -> int:
    """The bytes a result holds in memory (for the results cache's bound)."""
    if isinstance(result, pd.DataFrame):
        held = int(result.memory_usage(index=True, deep=True).sum())  # each value's own size
        return held + sum(_contents_size(column) for _, column in object_columns(result))
    if isinstance(result, pa.Table):  # all its buffers: a slice (a row limit) holds the whole of them
        return int(result.get_total_buffer_size())
    return int(result.estimated_size())


#: Values that hold others: pandas counts only their own size (a JSON object, an array).
_CONTAINERS = (dict, list, tuple, set, frozenset)


def _contents_size(values: Iterable[Any]) -> int:
    """The bytes of what the lists and dicts among ``values`` hold, down to their last level."""
    size = 0
    seen: set[int] = set()
    waiting = [value for value in values if isinstance(value, _CONTAINERS)]
    while waiting:
        container = waiting.pop()
        if id(container) in seen:
            continue
        seen.add(id(container))
        items = [*container.keys(), *container.values()] if isinstance(container, dict) else container
        for item in items:
            size += sys.getsizeof(item)
            if isinstance(item, _CONTAINERS):
                waiting.append(item)
    return size


def _arrow_table(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as an Arrow table: tz-aware timestamps in UTC microseconds, ``attrs`` in the metadata."""
    table = _with_nans(_in_utc_table(pa.Table.from_pandas(frame, preserve_index=False)), frame)
    metadata = {METADATA_KEY: json.dumps(_json_attrs(frame.attrs)).encode()}
    return table.replace_schema_metadata(metadata)


def _with_nans(table: pa.Table, frame: pd.DataFrame) -> pa.Table:
    """``table`` with NaN kept as NaN in ``frame``'s numpy float columns (``from_pandas`` makes it null).

    Such a column holds no NULL (a column with one is a nullable ``Float64``), so its NaNs are values.
    """
    for position, dtype in enumerate(frame.dtypes):
        if isinstance(dtype, np.dtype) and dtype.kind == "f":
            values = pa.array(frame.iloc[:, position].to_numpy(), from_pandas=False)
            table = table.set_column(position, table.schema.field(position), values)
    return table


def _in_utc_table(table: pa.Table) -> pa.Table:
    """``table`` with its zoned timestamp columns in UTC (see :func:`_in_utc`)."""
    for position, column_field in enumerate(table.schema):
        if pa.types.is_timestamp(column_field.type) and column_field.type.tz is not None:
            table = table.set_column(position, column_field.name, _in_utc(table.column(position)))
    return table


def _in_utc(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A zoned timestamp column in UTC microseconds; in nanoseconds if it has finer values to keep."""
    try:
        return column.cast(pa.timestamp(_TIMESTAMP_UNIT, "UTC"))
    except pa.ArrowInvalid:  # a value with nanoseconds: the zone changes, the values stay
        return column.cast(pa.timestamp(column.type.unit, "UTC"))


def _unconvertible(frame: pd.DataFrame, output: str) -> str:
    """Which column Arrow cannot hold, and why (a SQLite column whose values mix types)."""
    for position, name in enumerate(frame.columns):
        try:
            pa.Table.from_pandas(frame.iloc[:, [position]], preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
            reason = str(error.args[0]) if error.args else type(error).__name__
            return f"column {name!r} cannot be returned as {output} ({reason}); use --as pandas"
    return f"the result cannot be returned as {output}; use --as pandas"


def _json_attrs(attrs: Mapping[Any, Any]) -> dict[str, Any]:
    """The attrs that JSON can carry (the package's own are plain values)."""
    return {
        str(key): value for key, value in attrs.items() if isinstance(value, str | int | float | bool | None)
    }


def _polars(source: str | None) -> Any:
    try:
        return importlib.import_module("polars")
    except ImportError:
        raise ConfigurationError(
            "the polars result format needs Polars: pip install 'deepanalyze-jupyter[polars]'",
            source=source,
        ) from None

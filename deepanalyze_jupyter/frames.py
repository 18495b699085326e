"""Turning Arrow tables into pandas DataFrames with the dtypes users expect.

One conversion serves every source, so a column has the same dtype whether it came
from PostgreSQL, a Parquet blob or a CSV file on disk:

- integers stay ``int64`` (or their width); with missing values they become ``Int64``
  and friends, never float;
- booleans with missing values become ``boolean``;
- text becomes the pyarrow-backed ``string`` dtype (fast, and missing is ``<NA>``);
- timestamps keep their time zone; decimals stay exact, as pyarrow-backed ``decimal128``
  columns (their values are ``Decimal`` objects; arithmetic stays in decimal).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

__all__ = ["arrow_to_frame", "is_truncated", "mark_result"]

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


def arrow_to_frame(table: pa.Table | pa.RecordBatch) -> pd.DataFrame:
    """Convert ``table`` to a DataFrame, keeping integer and boolean columns exact.

    Duplicate column names are preserved, and an empty table keeps its columns and dtypes.
    """
    frame: pd.DataFrame = table.to_pandas(types_mapper=_base_types, split_blocks=True)
    for position, column in enumerate(table.columns):
        data_type = column.type
        needs_nullable = column.null_count > 0 and (
            data_type in _NULLABLE_INTEGERS or pa.types.is_boolean(data_type)
        )
        if needs_nullable:
            frame.isetitem(position, column.to_pandas(types_mapper=_nullable_types))
    return frame


def mark_result(frame: pd.DataFrame, *, source: str, truncated: bool, limit: int | None) -> pd.DataFrame:
    """Record on ``frame.attrs`` where it came from and whether a row limit cut it."""
    frame.attrs["source"] = source
    frame.attrs["truncated"] = truncated
    frame.attrs["row_limit"] = limit
    return frame


def is_truncated(frame: pd.DataFrame) -> bool:
    """Tell whether a row limit cut ``frame`` short."""
    return bool(frame.attrs.get("truncated", False))

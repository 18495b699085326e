"""Values between Python and SQLite: parameters to bind, and rows into a typed DataFrame."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ...errors import QueryError
from ...frames import arrow_to_frame

__all__ = ["bindable", "rows_to_frame", "rows_to_table"]


def bindable(name: str, value: Any, source: str) -> Any:
    """``value`` as something :mod:`sqlite3` binds without deprecated adapters."""
    if value is None or isinstance(value, (str, int, float, bytes)):
        return value
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return bindable(name, value.item(), source)  # numpy scalars
    if value is pd.NaT:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    kind = type(value).__name__
    raise QueryError(f"parameter :{name} has a type SQLite cannot bind: {kind}", source=source)


def rows_to_frame(names: list[str], rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows of SQLite values into a DataFrame with exact integers and nullable dtypes.

    A column whose values mix types (SQLite allows it) stays an ``object`` column.
    """
    arrays, mixed = _rows_to_arrays(names, rows)
    frame = arrow_to_frame(pa.Table.from_arrays(arrays, names=names))
    for position, values in mixed.items():
        frame.isetitem(position, np.array(values, dtype=object))
    return frame


def rows_to_table(names: list[str], rows: list[tuple[Any, ...]], *, source: str) -> pa.Table:
    """Rows of SQLite values into an Arrow table, without a pandas frame (``output="arrow"``)."""
    arrays, mixed = _rows_to_arrays(names, rows)
    if mixed:
        column = names[min(mixed)]
        raise QueryError(
            f"column {column!r} mixes value types, which Arrow cannot hold in one column; use --as pandas",
            source=source,
        )
    return pa.Table.from_arrays(arrays, names=names)


def _rows_to_arrays(
    names: list[str], rows: list[tuple[Any, ...]]
) -> tuple[list[pa.Array], dict[int, list[Any]]]:
    """One Arrow array per column, and the values of the columns whose types mix (nulls in their place)."""
    columns: list[list[Any]] = [[row[position] for row in rows] for position in range(len(names))]
    arrays: list[pa.Array] = []
    mixed: dict[int, list[Any]] = {}
    for position, values in enumerate(columns):
        array = _one_type_array(values)
        if array is None:
            array = pa.nulls(len(values))
            mixed[position] = values
        arrays.append(array)
    return arrays, mixed


def _one_type_array(values: list[Any]) -> pa.Array | None:
    """``values`` as one Arrow array, or None when their types mix.

    Arrow would take text among blobs as bytes (``'x'`` becoming ``b'x'``), so a binary
    array holding any text is a mix too.
    """
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    binary = pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)
    if binary and any(isinstance(value, str) for value in values):
        return None
    return array

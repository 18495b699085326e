"""Columns, frames and Arrow tables built from a result's columns as their plans say.

The Arrow data ``COPY`` parsing gives, and the values psycopg loads one by one
(:class:`Loaded`), become pandas columns (:func:`python_column`, :func:`frames.pandas_column`)
or Arrow ones (:func:`arrow_column`), and those become the result: a DataFrame or a
``pyarrow.Table`` (:func:`result_from_columns`, :func:`result_from_values`). The plans
themselves are made in :mod:`.types`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa

from ... import frames
from ...frames import PandasColumn, pandas_column
from . import oids
from .types import MAX_DECIMAL128_DIGITS, MAX_DECIMAL256_DIGITS, ColumnKind, ColumnPlan, ConversionError

__all__ = [
    "Column",
    "Loaded",
    "arrow_column",
    "frame_from_columns",
    "frame_from_values",
    "loaded_column",
    "python_column",
    "result_from_columns",
    "result_from_values",
    "table_from_columns",
    "table_from_values",
]

#: What building an array of values of the wrong kind raises.
_UNFIT = (
    TypeError,
    ValueError,
    OverflowError,
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    pa.ArrowNotImplementedError,
)


@dataclass(frozen=True)
class Loaded:
    """A column loaded value by value by psycopg: made a pandas or an Arrow column at the end."""

    values: Sequence[Any]


#: A finished column: Arrow data (parsed or decoded), or values loaded in Python.
Column: TypeAlias = "pa.ChunkedArray | pa.Array | Loaded"


def python_column(plan: ColumnPlan, values: Sequence[Any]) -> PandasColumn:
    """Python values (as psycopg loads them) as the pandas column their plan asks for.

    The dtypes are those :func:`~deepanalyze_jupyter.frames.arrow_to_frame` gives the
    plan's Arrow type (``Int64``/``boolean`` when there are NULLs, ``string``, tz-aware
    timestamps...), built without going through Arrow, which costs more for few rows.
    Values that do not fit the type (``Decimal('NaN')`` in a ``numeric(p, s)``) stay
    Python objects.
    """
    arrow_type = plan.arrow_type
    if plan.kind is ColumnKind.TEXT:
        texts = [v if v is None or isinstance(v, str) else str(v) for v in values]
        return pd.arrays.ArrowStringArray(pa.array(texts, pa.large_string()))
    if arrow_type is None:
        return _numeric_column(values) if plan.oid == oids.NUMERIC else _object_array(values)
    try:
        if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
            return _exact_array(values, np.int64 if pa.types.is_integer(arrow_type) else np.bool_)
        if pa.types.is_floating(arrow_type):
            floats = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            return frames.nullable_floats(floats, [v is None for v in values]) if None in values else floats
        if pa.types.is_decimal(arrow_type):  # through Arrow, which refuses NaN instead of nulling it
            return pd.arrays.ArrowExtensionArray(pa.array(values, arrow_type))
        if pa.types.is_timestamp(arrow_type):
            return frames.timestamps_from_python(values, arrow_type.tz)
        if pa.types.is_duration(arrow_type):
            return pandas_column(pa.array(values, arrow_type))
    except (TypeError, ValueError, OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
        pass  # e.g. Decimal('NaN') in a numeric(p, s): keep the Python objects
    return _object_array(values)  # dates and times too, as arrow_to_frame gives them


def _numeric_column(values: Sequence[Any]) -> PandasColumn:
    """Unconstrained ``numeric`` values (``Decimal``) as an exact Arrow decimal that holds them.

    ``decimal128(38, s)``, ``s`` the most digits after the point among the values (so that
    a query's dtype does not change with its row limit), ``decimal256(76, s)`` when a value
    needs more than 38 digits. Should one be ``NaN``, infinite or wider than 76 digits, the
    ``Decimal`` objects stay, as in a ``numeric(p, s)``.
    """
    arrow_type = _decimal_holding(values)
    if arrow_type is None:
        return _object_array(values)
    return pd.arrays.ArrowExtensionArray(pa.array(values, arrow_type))


def _decimal_holding(values: Sequence[Any]) -> pa.DataType | None:
    """The Arrow decimal of :func:`_numeric_column` for ``values``, or ``None`` if none holds them."""
    whole = scale = 0
    for value in values:
        if value is None:
            continue
        if not value.is_finite():
            return None
        _, digits, exponent = value.as_tuple()
        scale = max(scale, -exponent)
        whole = max(whole, len(digits) + exponent)
    if whole + scale <= MAX_DECIMAL128_DIGITS:
        return pa.decimal128(MAX_DECIMAL128_DIGITS, scale)
    if whole + scale <= MAX_DECIMAL256_DIGITS:
        return pa.decimal256(MAX_DECIMAL256_DIGITS, scale)
    return None


def loaded_column(plan: ColumnPlan, texts: Sequence[str | None]) -> Loaded:
    """Load a column of PostgreSQL text values with the plan's loader (the COPY path)."""
    load = plan.load
    try:
        return Loaded([None if text is None else load(text.encode("utf-8")) for text in texts])
    except (psycopg.DataError, ValueError, TypeError) as error:
        raise ConversionError(f"cannot load column {plan.name!r}: {error}") from error


def arrow_column(plan: ColumnPlan, values: Sequence[Any]) -> pa.Array:
    """Python values (as psycopg loads them) as the Arrow column of an Arrow result.

    The Arrow type of the pandas column :func:`python_column` makes of them: the plan's
    own type where the values fit it (a float NaN stays NaN; a NaN ``Decimal``, which
    Arrow cannot hold, becomes null, as ``pa.Table.from_pandas`` makes it), ``large_string``
    for text, and for the rest what Arrow infers. So every batch of one result has the
    same type whatever values it holds. Values Arrow cannot hold in one column (JSON
    values of several kinds) raise :class:`ConversionError`.
    """
    if plan.kind is ColumnKind.TEXT:
        return pa.array([v if v is None or isinstance(v, str) else str(v) for v in values], pa.large_string())
    if plan.oid == oids.TIMETZ:  # Arrow's times have no offset: '10:00+02' would read as 10:00
        raise ConversionError(
            f"column {plan.name!r} cannot be held in Arrow (its times have a UTC offset, which Arrow's "
            "times have not); use --as pandas"
        )
    arrow_type = plan.arrow_type
    if arrow_type is None and plan.oid == oids.NUMERIC:
        arrow_type = _decimal_holding(values)
    if arrow_type is not None:
        for as_pandas in (False, True):  # then Decimal('NaN') as null, in the column's own type
            try:
                return pa.array(values, arrow_type, from_pandas=as_pandas)
            except _UNFIT:
                pass
    try:
        return pa.array(values)
    except _UNFIT:
        pass
    try:
        return pa.array(values, from_pandas=True)
    except _UNFIT as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConversionError(
            f"column {plan.name!r} cannot be held in Arrow ({reason}); use --as pandas"
        ) from None


def _exact_array(values: Sequence[Any], kind: type[np.int64] | type[np.bool_]) -> PandasColumn:
    """int64/bool, or ``Int64``/``boolean`` (value and mask) when there are NULLs."""
    if None not in values:
        return np.array(values, dtype=kind)
    mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    data: Any = np.array([kind(0) if v is None else v for v in values], dtype=kind)
    if kind is np.bool_:
        return pd.arrays.BooleanArray(data, mask)
    return pd.arrays.IntegerArray(data, mask)


def _object_array(values: Sequence[Any]) -> np.ndarray[Any, Any]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


_Converted = TypeVar("_Converted")


def _go_on() -> None:
    """A checkpoint that never stops the work."""


def frame_from_values(
    plans: Sequence[ColumnPlan], columns: Sequence[Sequence[Any]], num_rows: int
) -> pd.DataFrame:
    """The result frame from Python values, one sequence per column."""
    arrays = [python_column(plan, values) for plan, values in zip(plans, columns, strict=True)]
    return frames.frame_from_columns(_labels(plans), arrays, num_rows)


def table_from_values(
    plans: Sequence[ColumnPlan], columns: Sequence[Sequence[Any]], num_rows: int
) -> pa.Table:
    """The result as an Arrow table from Python values, one sequence per column."""
    return table_from_columns(plans, [Loaded(values) for values in columns], num_rows)


def result_from_values(
    plans: Sequence[ColumnPlan], columns: Sequence[Sequence[Any]], num_rows: int, *, arrow: bool
) -> pd.DataFrame | pa.Table:
    """:func:`table_from_values` if ``arrow``, else :func:`frame_from_values`."""
    if arrow:
        return table_from_values(plans, columns, num_rows)
    return frame_from_values(plans, columns, num_rows)


def frame_from_columns(
    plans: Sequence[ColumnPlan], columns: list[Column], num_rows: int, checkpoint: Callable[[], None] = _go_on
) -> pd.DataFrame:
    """The result frame from finished columns (Arrow ones converted as ``arrow_to_frame`` does).

    Takes the columns out of ``columns`` one at a time, so that each column's Arrow data is
    freed once its pandas column is made (then ``checkpoint`` is called): the result's
    memory is never held twice.
    """
    arrays = _converted(plans, columns, _pandas_of, checkpoint)
    return frames.frame_from_columns(_labels(plans), arrays, num_rows)


def table_from_columns(
    plans: Sequence[ColumnPlan], columns: list[Column], num_rows: int, checkpoint: Callable[[], None] = _go_on
) -> pa.Table:
    """The result as an Arrow table from finished columns, with no pandas step.

    Parsed columns are taken as they are (text as ``large_string``); loaded ones become
    :func:`arrow_column`. Duplicate names stay. ``columns`` is emptied.
    """
    arrays = _converted(plans, columns, _arrow_of, checkpoint)
    if not arrays:  # rows of no columns
        return pa.table({"rows": pa.nulls(num_rows)}).drop_columns(["rows"])
    return pa.Table.from_arrays(arrays, names=[plan.name for plan in plans])


def result_from_columns(
    plans: Sequence[ColumnPlan],
    columns: list[Column],
    num_rows: int,
    *,
    arrow: bool,
    checkpoint: Callable[[], None] = _go_on,
) -> pd.DataFrame | pa.Table:
    """:func:`table_from_columns` if ``arrow``, else :func:`frame_from_columns`."""
    if arrow:
        return table_from_columns(plans, columns, num_rows, checkpoint)
    return frame_from_columns(plans, columns, num_rows, checkpoint)


def _converted(
    plans: Sequence[ColumnPlan],
    columns: list[Column],
    convert: Callable[[ColumnPlan, Column], _Converted],
    checkpoint: Callable[[], None],
) -> list[_Converted]:
    """Each column converted, in order, and dropped from ``columns`` before the next.

    ``checkpoint`` is called before each column (it may raise to stop), once the one before
    is no longer held here.
    """
    if len(plans) != len(columns):
        raise ConversionError(f"{len(columns)} columns for {len(plans)} names")
    columns.reverse()
    converted: list[_Converted] = []
    for plan in plans:
        checkpoint()
        column = columns.pop()
        converted.append(convert(plan, column))
        del column
    checkpoint()
    return converted


def _pandas_of(plan: ColumnPlan, column: Column) -> PandasColumn:
    if isinstance(column, Loaded):
        return python_column(plan, column.values)
    return pandas_column(column)


def _arrow_of(plan: ColumnPlan, column: Column) -> pa.Array | pa.ChunkedArray:
    """A finished column as Arrow: text as ``large_string``, as pandas' pyarrow-backed text holds it."""
    if isinstance(column, Loaded):
        return arrow_column(plan, column.values)
    return column.cast(pa.large_string()) if pa.types.is_string(column.type) else column


def _labels(plans: Sequence[ColumnPlan]) -> pd.Index:
    """The result's column names, as given (duplicates too).

    Each frame gets its own ``Index`` object (renaming one frame's columns leaves the
    others alone): a view of one made once per set of names, since building an
    ``Index`` is about a quarter of the cost of a one-row frame.
    """
    return _label_index(tuple(plan.name for plan in plans)).view()


@functools.lru_cache(maxsize=256)
def _label_index(names: tuple[str, ...]) -> pd.Index:
    values = np.array(names, dtype=object)
    values.flags.writeable = False  # shared by every view: ``columns.values[0] = ...`` must fail
    labels: pd.Index = pd.Index(values, dtype=object, copy=False)
    return labels

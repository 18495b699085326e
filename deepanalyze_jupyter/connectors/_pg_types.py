"""How each PostgreSQL result column becomes a pandas column.

A :class:`ColumnPlan` is made per result column from its type oid and modifier. Both
ways of reading a result use the same plans, so a query gives the same dtypes whether
its rows came through ``COPY`` (text parsed by pyarrow) or through a cursor (values
loaded by psycopg):

========================  =======================================  =====================
PostgreSQL                pandas dtype                             how
========================  =======================================  =====================
int2, int4, int8, oid     ``int64`` (``Int64`` with NULLs)         native
float4, float8            ``float64``                              native
numeric(p, s)             ``decimal128(p, s)[pyarrow]`` (exact)    native
numeric                   ``object`` of ``Decimal``                Python
numeric, as float         ``float64``                              native
bool                      ``bool`` (``boolean`` with NULLs)        native
text, varchar, char,      ``string`` (pyarrow-backed)              text
name, uuid, xml, enums
date                      ``object`` of ``datetime.date``          native
time                      ``object`` of ``datetime.time``          native
timestamp                 ``datetime64[us]``                       native
timestamptz               ``datetime64[us, <session TimeZone>]``   native
interval                  ``timedelta64[us]``                      Python
json, jsonb, bytea,       ``object`` (dicts/lists, ``bytes``,      Python
arrays, ranges, timetz,   lists, ...) as psycopg loads them
inet, ...
========================  =======================================  =====================

*native* columns are parsed by pyarrow straight from the ``COPY`` text; *text* columns
are taken as strings; *Python* columns are loaded value by value with psycopg's own
loaders. A native column whose values pyarrow cannot parse (``infinity`` dates, ``NaN``
in a ``numeric(p, s)``) is loaded the Python way instead.
"""

from __future__ import annotations

import enum
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import pq
from psycopg.adapt import AdaptersMap

from ..frames import arrow_to_frame

__all__ = [
    "Column",
    "ColumnKind",
    "ColumnPlan",
    "ConversionError",
    "PlanSettings",
    "frame_from_columns",
    "loaded_column",
    "plan_columns",
    "session_time_zone",
    "values_to_column",
]

_INTEGER_OIDS = frozenset({21, 23, 20, 26})  # int2, int4, int8, oid
_FLOAT_OIDS = frozenset({700, 701})  # float4, float8
_NUMERIC_OID = 1700
_BOOL_OID = 16
_DATE_OID = 1082
_TIME_OID = 1083
_TIMESTAMP_OID = 1114
_TIMESTAMPTZ_OID = 1184
_INTERVAL_OID = 1186
# text, varchar, bpchar, name, "char", uuid, xml, unknown, money
_TEXT_OIDS = frozenset({25, 1043, 1042, 19, 18, 2950, 142, 705, 790})
_DATE_TIME_OIDS = frozenset({_DATE_OID, _TIME_OID, _TIMESTAMP_OID, _TIMESTAMPTZ_OID})
_NUMERIC_HEADER = 4  # VARHDRSZ, added to a numeric's type modifier
_MAX_DECIMAL128_DIGITS = 38
_MAX_DECIMAL256_DIGITS = 76


class ConversionError(ValueError):
    """A value of the result could not be turned into its column's type."""


class ColumnKind(enum.Enum):
    """How the values of a column are turned into an array."""

    NATIVE = "native"  # pyarrow parses the text into ``arrow_type``
    TEXT = "text"  # the text itself, as a string column
    PYTHON = "python"  # psycopg loads each value; ``arrow_type`` (if any) holds the results


@dataclass(frozen=True)
class PlanSettings:
    """What, besides the column types, decides the plans: source options and session state."""

    numeric_as_float: bool = False
    #: The session's TimeZone, for timestamptz columns.
    time_zone: str = "UTC"
    #: Whether dates come in ISO style (DateStyle ISO), which pyarrow parses.
    iso_dates: bool = True


@dataclass(frozen=True)
class ColumnPlan:
    """What one result column becomes."""

    name: str
    oid: int
    kind: ColumnKind
    arrow_type: pa.DataType | None
    #: psycopg's loader of one value from its PostgreSQL text form.
    load: Callable[[bytes], Any]

    def as_python(self) -> ColumnPlan:
        """This column loaded value by value, for values pyarrow could not parse."""
        return replace(self, kind=ColumnKind.PYTHON)


def session_time_zone(name: str | None) -> str:
    """The session's TimeZone if pandas and pyarrow know it, else UTC."""
    if name:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return "UTC"
        return name
    return "UTC"


def plan_columns(
    fields: Sequence[tuple[str, int, int]], adapters: AdaptersMap, settings: PlanSettings
) -> list[ColumnPlan]:
    """Plans for result columns given as ``(name, type oid, type modifier)``."""
    return [_plan(name, oid, modifier, adapters, settings) for name, oid, modifier in fields]


def _plan(name: str, oid: int, modifier: int, adapters: AdaptersMap, settings: PlanSettings) -> ColumnPlan:
    load = _loader(oid, adapters)
    native = _native_type(oid, modifier, settings)
    if native is not None:
        return ColumnPlan(name, oid, ColumnKind.NATIVE, native, load)
    if oid in _TEXT_OIDS or adapters.get_loader(oid, pq.Format.TEXT) is None:
        return ColumnPlan(name, oid, ColumnKind.TEXT, pa.string(), _decode_text)
    arrow_type = pa.duration("us") if oid == _INTERVAL_OID else None
    return ColumnPlan(name, oid, ColumnKind.PYTHON, arrow_type, load)


def _native_type(oid: int, modifier: int, settings: PlanSettings) -> pa.DataType | None:
    if oid in _INTEGER_OIDS:
        return pa.int64()
    if oid in _FLOAT_OIDS:
        return pa.float64()
    if oid == _BOOL_OID:
        return pa.bool_()
    if oid == _NUMERIC_OID:
        return pa.float64() if settings.numeric_as_float else _decimal_type(modifier)
    if oid in _DATE_TIME_OIDS and settings.iso_dates:
        return {
            _DATE_OID: pa.date32(),
            _TIME_OID: pa.time64("us"),
            _TIMESTAMP_OID: pa.timestamp("us"),
            _TIMESTAMPTZ_OID: pa.timestamp("us", tz=settings.time_zone),
        }[oid]
    return None


def _decimal_type(modifier: int) -> pa.DataType | None:
    """``decimal128/256(p, s)`` for ``numeric(p, s)``; ``None`` (Python) when unconstrained."""
    if modifier < _NUMERIC_HEADER:
        return None
    precision = ((modifier - _NUMERIC_HEADER) >> 16) & 0xFFFF
    scale = (((modifier - _NUMERIC_HEADER) & 0x7FF) ^ 1024) - 1024  # signed since PostgreSQL 15
    if not 0 <= scale <= precision:
        return None
    if precision <= _MAX_DECIMAL128_DIGITS:
        return pa.decimal128(precision, scale)
    if precision <= _MAX_DECIMAL256_DIGITS:
        return pa.decimal256(precision, scale)
    return None


def _loader(oid: int, adapters: AdaptersMap) -> Callable[[bytes], Any]:
    loader_class = adapters.get_loader(oid, pq.Format.TEXT)
    if loader_class is None:
        return _decode_text
    loader = loader_class(oid, adapters)
    return loader.load


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8")


# -- building columns and frames --------------------------------------------------------

#: A finished column: an Arrow array, or a NumPy array of Python objects.
Column: TypeAlias = "pa.ChunkedArray | pa.Array | np.ndarray[Any, Any]"


def values_to_column(plan: ColumnPlan, values: list[Any]) -> Column:
    """A column from Python values as psycopg loaded them (the cursor path)."""
    if plan.kind is ColumnKind.TEXT:
        return pa.array([v if v is None or isinstance(v, str) else str(v) for v in values], pa.string())
    if plan.arrow_type is not None:
        if pa.types.is_floating(plan.arrow_type):
            values = [None if v is None else float(v) for v in values]
        try:
            return pa.array(values, plan.arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass  # e.g. Decimal('NaN') in a numeric(p, s): keep the Python objects
    return _object_array(values)


def loaded_column(plan: ColumnPlan, texts: pa.ChunkedArray) -> Column:
    """Load a column of PostgreSQL text values with the plan's loader (the COPY path)."""
    load = plan.load
    try:
        values = [None if text is None else load(text.encode("utf-8")) for text in texts.to_pylist()]
    except (psycopg.DataError, ValueError, TypeError) as error:
        raise ConversionError(f"cannot load column {plan.name!r}: {error}") from error
    return values_to_column(replace(plan, kind=ColumnKind.PYTHON), values)


def _object_array(values: list[Any]) -> np.ndarray[Any, Any]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def frame_from_columns(plans: Sequence[ColumnPlan], columns: Sequence[Column], num_rows: int) -> pd.DataFrame:
    """Assemble the result frame: names kept as given (duplicates too), dtypes per the plans.

    Exact decimals become pyarrow-backed decimal columns (no per-value ``Decimal``
    objects); everything else goes through :func:`~deepanalyze_jupyter.frames.arrow_to_frame`.
    """
    if not plans:
        return pd.DataFrame(index=pd.RangeIndex(num_rows))
    arrow_columns: list[pa.Array | pa.ChunkedArray] = []
    kept_aside: dict[int, Any] = {}
    for position, column in enumerate(columns):
        if isinstance(column, np.ndarray):
            kept_aside[position] = column
            column = pa.nulls(num_rows)
        elif pa.types.is_decimal(column.type):
            kept_aside[position] = pd.arrays.ArrowExtensionArray(column)
            column = pa.nulls(num_rows)
        arrow_columns.append(column)
    table = pa.table(arrow_columns, names=[f"c{position}" for position in range(len(arrow_columns))])
    frame = arrow_to_frame(table)
    for position, values in kept_aside.items():
        frame.isetitem(position, values)
    frame.columns = pd.Index([plan.name for plan in plans], dtype=object)
    return frame

"""How each PostgreSQL result column becomes a pandas column.

A :class:`ColumnPlan` is made per result column from its type oid and modifier. Both
ways of reading a result use the same plans, so a query gives the same dtypes whether
its rows came through ``COPY`` (text parsed by pyarrow) or through a cursor (values
loaded by psycopg):

========================  =======================================  =====================
PostgreSQL                pandas dtype                             how
========================  =======================================  =====================
int2, int4, int8, oid     ``int64`` (``Int64`` with NULLs)         native
float4, float8            ``float64`` (``Float64`` with NULLs)     native
numeric(p, s)             ``decimal128(p, s)[pyarrow]`` (exact)    native
numeric                   ``object`` of ``Decimal``                Python
numeric, as float         ``float64`` (``Float64`` with NULLs)     native
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
import functools
import zoneinfo
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import pq
from psycopg.adapt import AdaptersMap

from ... import frames
from ...frames import PandasColumn, pandas_column
from . import oids

__all__ = [
    "Column",
    "ColumnKind",
    "ColumnPlan",
    "ConversionError",
    "PlanCache",
    "PlanSettings",
    "frame_from_columns",
    "frame_from_values",
    "loaded_column",
    "plan_columns",
    "python_column",
    "session_time_zone",
]

_INTEGER_OIDS = frozenset({oids.INT2, oids.INT4, oids.INT8, oids.OID})
_FLOAT_OIDS = frozenset({oids.FLOAT4, oids.FLOAT8})
#: Types read as their text.
_TEXT_OIDS = frozenset(
    {
        oids.TEXT,
        oids.VARCHAR,
        oids.BPCHAR,
        oids.NAME,
        oids.CHAR,
        oids.UUID,
        oids.XML,
        oids.UNKNOWN,
        oids.MONEY,
    }
)
_DATE_TIME_OIDS = frozenset({oids.DATE, oids.TIME, oids.TIMESTAMP, oids.TIMESTAMPTZ})
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
    load: Callable[[bytes], Any] = field(compare=False, repr=False)
    #: psycopg's loader of one value from its binary form, if it has one.
    load_binary: Callable[[bytes], Any] | None = field(default=None, compare=False, repr=False)

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


class PlanCache:
    """The plans of the result shapes seen last, so that repeating a query skips planning."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._plans: OrderedDict[tuple[Any, ...], tuple[ColumnPlan, ...]] = OrderedDict()

    def plans(
        self, fields: Sequence[tuple[str, int, int]], adapters: AdaptersMap, settings: PlanSettings
    ) -> list[ColumnPlan]:
        """Like :func:`plan_columns`, from the cache when the same shape was planned before."""
        key = (tuple(fields), settings)
        found = self._plans.get(key)
        if found is None:
            found = tuple(plan_columns(fields, adapters, settings))
            self._plans[key] = found
            if len(self._plans) > self._size:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return list(found)


def _plan(name: str, oid: int, modifier: int, adapters: AdaptersMap, settings: PlanSettings) -> ColumnPlan:
    load = _loader(oid, adapters) or _decode_text
    native = _native_type(oid, modifier, settings)
    if native is not None:
        load_binary = _loader(oid, adapters, pq.Format.BINARY)
        return ColumnPlan(name, oid, ColumnKind.NATIVE, native, load, load_binary)
    if oid in _TEXT_OIDS or adapters.get_loader(oid, pq.Format.TEXT) is None:
        return ColumnPlan(name, oid, ColumnKind.TEXT, pa.string(), _decode_text)
    arrow_type = pa.duration("us") if oid == oids.INTERVAL else None
    return ColumnPlan(name, oid, ColumnKind.PYTHON, arrow_type, load)


def _native_type(oid: int, modifier: int, settings: PlanSettings) -> pa.DataType | None:
    if oid in _INTEGER_OIDS:
        return pa.int64()
    if oid in _FLOAT_OIDS:
        return pa.float64()
    if oid == oids.BOOL:
        return pa.bool_()
    if oid == oids.NUMERIC:
        return pa.float64() if settings.numeric_as_float else _decimal_type(modifier)
    if oid in _DATE_TIME_OIDS and settings.iso_dates:
        return {
            oids.DATE: pa.date32(),
            oids.TIME: pa.time64("us"),
            oids.TIMESTAMP: pa.timestamp("us"),
            oids.TIMESTAMPTZ: pa.timestamp("us", tz=settings.time_zone),
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


def _loader(
    oid: int, adapters: AdaptersMap, format: pq.Format = pq.Format.TEXT
) -> Callable[[bytes], Any] | None:
    """psycopg's loader of one value of type ``oid`` in ``format``, if it has one."""
    loader_class = adapters.get_loader(oid, format)
    return None if loader_class is None else loader_class(oid, adapters).load


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8")


# -- building columns and frames --------------------------------------------------------

#: A finished column: Arrow data (parsed by pyarrow), or a pandas column.
Column: TypeAlias = "pa.ChunkedArray | pa.Array | PandasColumn"


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
        return _object_array(values)
    try:
        if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
            return _exact_array(values, np.int64 if pa.types.is_integer(arrow_type) else np.bool_)
        if pa.types.is_floating(arrow_type):
            floats = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            return frames.nullable_floats(floats, [v is None for v in values]) if None in values else floats
        if pa.types.is_decimal(arrow_type):  # through Arrow, which refuses NaN instead of nulling it
            return pd.arrays.ArrowExtensionArray(pa.array(values, arrow_type))
        if pa.types.is_timestamp(arrow_type) or pa.types.is_duration(arrow_type):
            return pandas_column(pa.array(values, arrow_type))
    except (TypeError, ValueError, OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
        pass  # e.g. Decimal('NaN') in a numeric(p, s): keep the Python objects
    return _object_array(values)  # dates and times too, as arrow_to_frame gives them


def loaded_column(plan: ColumnPlan, texts: Sequence[str | None]) -> PandasColumn:
    """Load a column of PostgreSQL text values with the plan's loader (the COPY path)."""
    load = plan.load
    try:
        values = [None if text is None else load(text.encode("utf-8")) for text in texts]
    except (psycopg.DataError, ValueError, TypeError) as error:
        raise ConversionError(f"cannot load column {plan.name!r}: {error}") from error
    return python_column(plan, values)


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


def frame_from_values(
    plans: Sequence[ColumnPlan], columns: Sequence[Sequence[Any]], num_rows: int
) -> pd.DataFrame:
    """The result frame from Python values, one sequence per column."""
    arrays = [python_column(plan, values) for plan, values in zip(plans, columns, strict=True)]
    return frames.frame_from_columns(_labels(plans), arrays, num_rows)


def frame_from_columns(plans: Sequence[ColumnPlan], columns: Sequence[Column], num_rows: int) -> pd.DataFrame:
    """The result frame from parsed columns (Arrow ones converted as ``arrow_to_frame`` does)."""
    arrays = [
        pandas_column(column) if isinstance(column, pa.Array | pa.ChunkedArray) else column
        for column in columns
    ]
    return frames.frame_from_columns(_labels(plans), arrays, num_rows)


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

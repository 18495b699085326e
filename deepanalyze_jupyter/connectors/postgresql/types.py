"""How each PostgreSQL result column becomes a pandas column (or an Arrow one).

A :class:`ColumnPlan` is made per result column from its type oid and modifier. Both
ways of reading a result use the same plans, so a query gives the same dtypes whether
its rows came through ``COPY`` (text parsed by pyarrow) or through a cursor (values
loaded by psycopg):

========================  =======================================  =====================
PostgreSQL                pandas dtype                             how
========================  =======================================  =====================
int2, int4, int8, oid     ``int64`` (``Int64`` with NULLs)         native
float4, float8            ``float64`` (``Float64`` with NULLs)     native
numeric(p, s)             ``decimal128(p, s)[pyarrow]`` (exact;    native
                          ``decimal256`` up to 76 digits, then as
                          unconstrained ``numeric``)
numeric (unconstrained)   ``decimal128(38, s)[pyarrow]``, ``s``    Python
                          the most decimals among the values
                          (exact; ``decimal256(76, s)`` past 38
                          digits; ``object`` of ``Decimal`` if a
                          value is NaN, infinite, over 76 digits)
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

An Arrow result (``output="arrow"``) is made of the same columns, without pandas: the
parsed Arrow columns as they are (text as ``large_string``, the type pandas' text holds),
and the Python columns as the Arrow type ``pa.Table.from_pandas`` gives their pandas
column (:func:`.columns.arrow_column`; the columns and results are built in :mod:`.columns`).
"""

from __future__ import annotations

import enum
import zoneinfo
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
from psycopg import pq
from psycopg.abc import AdaptContext

from ... import frames
from . import oids

__all__ = [
    "MAX_DECIMAL128_DIGITS",
    "MAX_DECIMAL256_DIGITS",
    "ColumnKind",
    "ColumnPlan",
    "ConversionError",
    "PlanCache",
    "PlanSettings",
    "plan_columns",
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
MAX_DECIMAL128_DIGITS = 38
MAX_DECIMAL256_DIGITS = 76


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
    """The session's TimeZone if pandas and pyarrow know it (UTC by any name spelled ``UTC``), else UTC."""
    if name:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return "UTC"
        return frames.zone_name(name)
    return "UTC"


def plan_columns(
    fields: Sequence[tuple[str, int, int]], context: AdaptContext, settings: PlanSettings
) -> list[ColumnPlan]:
    """Plans for result columns given as ``(name, type oid, type modifier)``.

    ``context`` is the connection the result comes from (or its adapters): psycopg's
    loaders take the session's time zone from it, for the timestamps inside an array or
    a range, as a cursor on the connection loads them.
    """
    return [_plan(name, oid, modifier, context, settings) for name, oid, modifier in fields]


class PlanCache:
    """The plans of the result shapes seen last, so that repeating a query skips planning."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._plans: OrderedDict[tuple[Any, ...], tuple[ColumnPlan, ...]] = OrderedDict()

    def plans(
        self, fields: Sequence[tuple[str, int, int]], context: AdaptContext, settings: PlanSettings
    ) -> list[ColumnPlan]:
        """Like :func:`plan_columns`, from the cache when the same shape was planned before."""
        key = (tuple(fields), settings)
        found = self._plans.get(key)
        if found is None:
            found = tuple(plan_columns(fields, context, settings))
            self._plans[key] = found
            if len(self._plans) > self._size:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return list(found)


def _plan(name: str, oid: int, modifier: int, context: AdaptContext, settings: PlanSettings) -> ColumnPlan:
    load = _loader(oid, context) or _decode_text
    native = _native_type(oid, modifier, settings)
    if native is not None:
        load_binary = _loader(oid, context, pq.Format.BINARY)
        return ColumnPlan(name, oid, ColumnKind.NATIVE, native, load, load_binary)
    if oid in _TEXT_OIDS or context.adapters.get_loader(oid, pq.Format.TEXT) is None:
        return ColumnPlan(name, oid, ColumnKind.TEXT, pa.string(), _decode_text)
    return ColumnPlan(name, oid, ColumnKind.PYTHON, _python_arrow_type(oid), load)


def _python_arrow_type(oid: int) -> pa.DataType | None:
    """The Arrow type of a column psycopg loads value by value, where one holds every value.

    Given, not inferred from the values, so that a result of no rows or only NULLs (and each
    batch of one result) has the type a result with values has: ``binary``, not ``null``.
    """
    return {oids.INTERVAL: pa.duration("us"), oids.BYTEA: pa.binary()}.get(oid)


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
    if precision <= MAX_DECIMAL128_DIGITS:
        return pa.decimal128(precision, scale)
    if precision <= MAX_DECIMAL256_DIGITS:
        return pa.decimal256(precision, scale)
    return None


def _loader(
    oid: int, context: AdaptContext, format: pq.Format = pq.Format.TEXT
) -> Callable[[bytes], Any] | None:
    """psycopg's loader of one value of type ``oid`` in ``format``, if it has one."""
    loader_class = context.adapters.get_loader(oid, format)
    return None if loader_class is None else loader_class(oid, context).load


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8")

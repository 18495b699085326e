"""Binary ``COPY`` rows decoded into Arrow columns, column by column, with numpy.

The server formats binary ``COPY`` with less work than text (no timestamp or float
formatting): on 10,000 rows of int8, float8, text, timestamptz, numeric(12,2), bool and
int4, 8.2 ms of server time against 10.8 ms, which is most of such a query's time. For
other types the gain is small or is lost to decoding, so :func:`prefer_binary` weighs
each column (:data:`BINARY_GAIN`).

Layout (PostgreSQL docs, "COPY", binary format): a 19-byte header, then per row an
int16 field count and, per field, an int32 length (-1 for NULL) and that many bytes,
all big-endian; an int16 -1 ends the data. Each ``CopyData`` message holds one row (the
header rides with the first), so the drain notes where each message ends
(:func:`.copy.copy_out`) and every row's start is known. From there a column's
fields are found for all rows at once: the field after a fixed-width column without
NULLs is a constant step further, after any other a step of its lengths. Each value
(with its length word) is read by one gather over all rows, through a view of the
buffer whose items start at every byte.

Only columns whose binary form gives exactly what the text path gives are decoded here
(:func:`decodable`). Values of such a column that no Arrow type holds (``NaN`` in a
numeric, ``infinity`` timestamps, dates before year 1) make that column load value by
value with psycopg's binary loaders, as the text path does with its text loaders.
"""

from __future__ import annotations

import codecs
from array import array
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa

from . import oids
from .columns import Column, Loaded
from .types import ColumnKind, ColumnPlan, ConversionError

__all__ = ["BINARY_GAIN", "binary_gain", "decodable", "decode_binary_copy", "prefer_binary"]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
#: The signature, the flags (int32) and the header extension's length (int32).
HEADER_BYTES = len(SIGNATURE) + 8
TRAILER = b"\xff\xff"
#: Bytes past the data that a gather may read (a value's width after a NULL's length).
PADDING = 32

#: The text types whose binary form is the text itself.
_TEXT_OIDS = frozenset({oids.TEXT, oids.VARCHAR, oids.BPCHAR, oids.NAME})
#: The fixed-width types: the big-endian value of each.
_FIXED: dict[int, str] = {
    oids.INT8: ">i8",
    oids.INT4: ">i4",
    oids.INT2: ">i2",
    oids.FLOAT8: ">f8",
    oids.BOOL: "u1",
    oids.DATE: ">i4",
    oids.TIMESTAMP: ">i8",
    oids.TIMESTAMPTZ: ">i8",
}

# PostgreSQL counts from 2000-01-01; Arrow from 1970-01-01.
_EPOCH_MICROSECONDS = 946_684_800_000_000
_EPOCH_DAYS = 10_957
# Years 1 to 9999, what the text path reads; other values are loaded by psycopg instead.
_FIRST_MICROSECOND = -62_135_596_800_000_000 - _EPOCH_MICROSECONDS
_LAST_MICROSECOND = 253_402_300_799_999_999 - _EPOCH_MICROSECONDS
_FIRST_DAY = -719_162 - _EPOCH_DAYS
_LAST_DAY = 2_932_896 - _EPOCH_DAYS

_NUMERIC_NEGATIVE = 0x4000  # the sign word; NaN and infinities have others
#: Decimal digits of the largest numeric(p, s) carried in int64.
_MAX_INT64_DIGITS = 18
#: Base-10000 digit groups that Horner's rule takes in int64 (under 10**16).
_HORNER_GROUPS = 4
#: For each exponent from -18 to 18, what to multiply and divide by for ``* 10**exponent``.
_EXPONENTS = range(-_MAX_INT64_DIGITS, _MAX_INT64_DIGITS + 1)
_SCALE_UP = np.array([10 ** max(exponent, 0) for exponent in _EXPONENTS], dtype=np.int64)
_SCALE_DOWN = np.array([10 ** max(-exponent, 0) for exponent in _EXPONENTS], dtype=np.int64)
#: ``[k][c]``: the weight of group ``k`` of a value of ``c`` base-10000 groups in the number
#: they make; 0 past its groups (those bytes belong to other fields).
_GROUP_POWERS = np.array(
    [
        [10_000 ** (count - 1 - index) if index < count else 0 for count in range(_HORNER_GROUPS + 1)]
        for index in range(_HORNER_GROUPS)
    ],
    dtype=np.int64,
)


#: What reading a value as binary rather than text saves, in nanoseconds, by column type
#: (10,000 rows, measured with ``bench/bench_pg_copy_formats.py``): the server writes
#: timestamps as text with the most work; for integers, numeric and text, decoding
#: binary costs the client more than the server saves.
BINARY_GAIN: Mapping[int, int] = MappingProxyType(
    {oids.TIMESTAMPTZ: 200, oids.TIMESTAMP: 65, oids.FLOAT8: 10, oids.DATE: 0, oids.BOOL: 0}
)
_OTHER_GAIN = -30  # integers, numeric, text


def binary_gain(plans: Sequence[ColumnPlan]) -> int:
    """What reading one row of these columns as binary saves, in nanoseconds (< 0: it costs)."""
    return sum(BINARY_GAIN.get(plan.oid, _OTHER_GAIN) for plan in plans)


def prefer_binary(plans: Sequence[ColumnPlan]) -> bool:
    """Whether a result of these columns is best read as binary ``COPY`` (all decoded here)."""
    return all(map(decodable, plans)) and binary_gain(plans) > 0


def decodable(plan: ColumnPlan) -> bool:
    """Whether a column read as binary ``COPY`` is decoded here to what the text path gives."""
    if plan.kind is ColumnKind.TEXT:
        return plan.oid in _TEXT_OIDS
    if plan.kind is not ColumnKind.NATIVE or plan.arrow_type is None:
        return False
    if plan.oid == oids.NUMERIC:
        arrow_type = plan.arrow_type
        return isinstance(arrow_type, pa.Decimal128Type) and arrow_type.precision <= _MAX_INT64_DIGITS
    return plan.oid in _FIXED


def decode_binary_copy(
    data: bytearray, ends: array[int], plans: Sequence[ColumnPlan], *, rows: int, keep: int
) -> list[Column]:
    """The first ``keep`` of the ``rows`` rows of a whole binary ``COPY``, one column per plan.

    ``data`` is everything the server sent (header to trailer) and ``ends`` where each
    message of it ends. ``data`` gets a few bytes of padding at its end.
    """
    starts, row_ends = _row_bounds(data, ends)
    if len(starts) != rows:
        raise ConversionError(f"COPY sent {rows} rows but {len(starts)} were read")
    rows = keep
    starts, row_ends = starts[:rows], row_ends[:rows]
    data += bytes(PADDING)
    reader = _Fields(np.frombuffer(data, dtype=np.uint8), starts)
    if rows and not (reader.read(np.dtype(">i2"), 0) == len(plans)).all():
        raise ConversionError(f"binary COPY rows do not all have {len(plans)} fields")
    reader.skip(2)
    columns = [_column(plan, reader) for plan in plans]
    if not np.array_equal(reader.positions(), row_ends):
        raise ConversionError("binary COPY rows do not match their column types")
    return columns


def _row_bounds(data: bytearray, ends: array[int]) -> tuple[np.ndarray, np.ndarray]:
    """Where each row starts and ends in ``data``, after checking the header and trailer."""
    if len(data) < HEADER_BYTES + len(TRAILER) or not data.startswith(SIGNATURE) or data[-2:] != TRAILER:
        raise ConversionError("the server's binary COPY data has no header or end")
    flags = int.from_bytes(data[11:15], "big")
    header = HEADER_BYTES + int.from_bytes(data[15:19], "big")
    if flags & (1 << 16):
        raise ConversionError("binary COPY with OIDs is not read")
    bounds = np.frombuffer(ends, dtype=np.int64)
    row_ends = bounds[(bounds > header) & (bounds < len(data) - len(TRAILER) + 1)]
    if row_ends.size and row_ends[-1] != len(data) - len(TRAILER):
        row_ends = np.append(row_ends, len(data) - len(TRAILER))
    starts = np.empty_like(row_ends)
    if row_ends.size:
        starts[0] = header
        starts[1:] = row_ends[:-1]
    return starts, row_ends


class _Fields:
    """Reads one field of every row at a time, moving to the next field as it goes."""

    def __init__(self, data: np.ndarray, starts: np.ndarray) -> None:
        self._data = data
        self._positions = starts
        #: Added to every position: the fixed-width fields passed since they were last moved.
        self._step = 0

    def positions(self) -> np.ndarray:
        """Where each row's current field starts."""
        if self._step:
            self._positions = self._positions + self._step
            self._step = 0
        return self._positions

    def read(self, dtype: np.dtype[Any], offset: int) -> np.ndarray:
        """The ``dtype`` value at ``offset`` bytes into each row's current field (one gather)."""
        items = np.ndarray(
            shape=(len(self._data) - dtype.itemsize + 1,),
            dtype=np.dtype(f"V{dtype.itemsize}"),
            buffer=self._data,
            strides=(1,),
        )
        gathered: np.ndarray = items[self.positions() + offset if offset else self.positions()].view(dtype)
        return gathered

    def skip(self, size: int) -> None:
        """Move every row on by ``size`` bytes."""
        self._step += size

    def advance(self, lengths: np.ndarray) -> None:
        """Move past fields of these lengths (-1: NULL, no bytes)."""
        self._positions = self.positions() + 4 + np.maximum(lengths, 0)

    def strings(self, sizes: np.ndarray, nulls: np.ndarray | None) -> pa.Array:
        """Each row's current value (``sizes`` bytes after the length word) as a string array.

        The values and the bytes between them, as they lie in the data, make an array of
        twice as many strings; taking every other one copies the values out, end to end.
        """
        starts = self.positions() + 4
        bounds = np.empty(2 * len(sizes) + 1, dtype=np.int64)
        bounds[0:-1:2] = starts
        bounds[1::2] = starts + sizes
        bounds[-1] = bounds[-2] if len(sizes) else 0
        both = pa.Array.from_buffers(
            pa.large_string(), len(bounds) - 1, [None, pa.py_buffer(bounds), pa.py_buffer(self._data)]
        )
        return both.take(pa.array(np.arange(0, len(bounds) - 1, 2), mask=nulls))

    def first_bytes(self, sizes: np.ndarray) -> np.ndarray:
        """The first byte of each row's current value, where it has any."""
        first: np.ndarray = self._data[self.positions()[sizes > 0] + 4]
        return first

    def raw(self, lengths: np.ndarray) -> list[bytes | None]:
        """Each row's current field as bytes (``None`` for NULL), for loading value by value."""
        data = self._data
        return [
            None if length < 0 else data[start + 4 : start + 4 + length].tobytes()
            for start, length in zip(self.positions().tolist(), lengths.tolist(), strict=True)
        ]


def _column(plan: ColumnPlan, fields: _Fields) -> Column:
    if plan.oid in _TEXT_OIDS:
        return _text(plan, fields)
    if plan.oid == oids.NUMERIC:
        return _numeric(plan, fields)
    return _fixed(plan, fields)


def _fixed(plan: ColumnPlan, fields: _Fields) -> Column:
    value_type = np.dtype(_FIXED[plan.oid])
    record = fields.read(np.dtype([("length", ">i4"), ("value", value_type)]), 0)
    lengths = record["length"]
    nulls = lengths < 0
    mask = nulls if nulls.any() else None
    if not ((lengths == value_type.itemsize) | nulls).all():
        raise ConversionError(f"column {plan.name!r} has values of an unexpected size in binary COPY")
    values = record["value"]
    if plan.oid in (oids.TIMESTAMP, oids.TIMESTAMPTZ, oids.DATE):
        is_date = plan.oid == oids.DATE
        low, high = (_FIRST_DAY, _LAST_DAY) if is_date else (_FIRST_MICROSECOND, _LAST_MICROSECOND)
        present = values if mask is None else values[~mask]
        if present.size and (present.min() < low or present.max() > high):
            column = _loaded(plan, fields, lengths)
        elif is_date:
            column = pa.array(values.astype(np.int32) + _EPOCH_DAYS, pa.date32(), mask=mask)
        else:
            column = pa.array(values.astype(np.int64) + _EPOCH_MICROSECONDS, plan.arrow_type, mask=mask)
    elif plan.oid == oids.BOOL:
        column = pa.array(values != 0, pa.bool_(), mask=mask)
    else:
        number = np.float64 if plan.oid == oids.FLOAT8 else np.int64
        column = pa.array(values.astype(number), plan.arrow_type, mask=mask)
    if mask is None:
        fields.skip(4 + value_type.itemsize)
    else:
        fields.advance(lengths)
    return column


def _text(plan: ColumnPlan, fields: _Fields) -> pa.Array:
    """Text values, copied out of the rows into one string array, checked to be UTF-8."""
    lengths = fields.read(np.dtype(">i4"), 0).astype(np.int64)
    nulls = lengths < 0
    null_count = int(nulls.sum())
    sizes = np.where(nulls, 0, lengths) if null_count else lengths
    widest = int(sizes.max(initial=0))
    if not null_count and int(sizes.min(initial=widest)) == widest > 0:  # one width: one gather
        body = fields.read(np.dtype(f"V{widest}"), 4).view(np.uint8)
        offsets = np.arange(0, (len(sizes) + 1) * widest, widest, dtype=np.int64)
        array = pa.Array.from_buffers(
            pa.large_string(), len(sizes), [None, pa.py_buffer(offsets), pa.py_buffer(body)]
        )
    else:
        array = fields.strings(sizes, nulls if null_count else None)
    if not _utf8(array, fields.first_bytes(sizes)):
        raise ConversionError(f"column {plan.name!r} holds text that is not UTF-8")
    fields.advance(lengths)
    return array


def _utf8(array: pa.Array, first_bytes: np.ndarray) -> bool:
    """Whether each value of a string array is UTF-8, given the first byte of each non-empty one.

    The values end to end must decode, and none may start inside a character.
    """
    body = array.buffers()[2]
    try:
        codecs.decode(memoryview(body) if body is not None else b"", "utf-8")
    except UnicodeDecodeError:
        return False
    return not ((first_bytes & 0xC0) == 0x80).any()


def _numeric(plan: ColumnPlan, fields: _Fields) -> Column:
    """``numeric(p, s)``, p <= 18, from its base-10000 digit groups to decimal128 via int64."""
    arrow_type = plan.arrow_type
    assert isinstance(arrow_type, pa.Decimal128Type)
    scale = arrow_type.scale
    groups = (arrow_type.precision - scale + 3) // 4 + (scale + 3) // 4
    header = np.dtype(
        [("length", ">i4"), ("count", ">i2"), ("weight", ">i2"), ("sign", ">u2"), ("scale", ">i2")]
    )
    record = fields.read(header, 0)
    lengths = record["length"].astype(np.int64)
    nulls = lengths < 0
    null_count = int(nulls.sum())
    counts = record["count"].astype(np.int64)
    signs = record["sign"]
    if null_count:
        counts[nulls] = 0
        signs = np.where(nulls, 0, signs)
    if (signs & ~np.uint16(_NUMERIC_NEGATIVE)).any() or (counts > groups).any():
        column: Column = _loaded(plan, fields, lengths)  # NaN, infinities
        fields.advance(lengths)
        return column
    digits = fields.read(np.dtype(f"V{2 * groups}"), header.itemsize)
    digits = digits.view(">i2").reshape(-1, groups).astype(np.int64)
    weights = record["weight"].astype(np.int64)
    if groups <= _HORNER_GROUPS:  # each value's own groups as one number, then the point put right
        units = np.zeros(len(counts), dtype=np.int64)
        for index in range(groups):
            units += digits[:, index] * _GROUP_POWERS[index][counts]
        units = _shifted(units, 4 * (weights - counts + 1) + scale)
    else:  # each group put right on its own, then added
        digits *= np.arange(groups) < counts[:, np.newaxis]  # past a value's own groups: other bytes
        units = _shifted(digits, 4 * (weights[:, np.newaxis] - np.arange(groups)) + scale).sum(axis=1)
    np.negative(units, out=units, where=signs == _NUMERIC_NEGATIVE)
    pairs = np.empty((len(units), 2), dtype=np.int64)  # 128-bit little-endian: low word, then sign
    pairs[:, 0] = units
    pairs[:, 1] = units >> 63
    fields.advance(lengths)
    return pa.Array.from_buffers(
        arrow_type, len(units), [_validity(nulls, null_count), pa.py_buffer(pairs)], null_count
    )


def _shifted(values: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """``values * 10**exponent``, exact (a negative exponent only drops zeros)."""
    index = np.clip(exponent, -_MAX_INT64_DIGITS, _MAX_INT64_DIGITS) + _MAX_INT64_DIGITS
    shifted: np.ndarray = values * _SCALE_UP[index] // _SCALE_DOWN[index]
    return shifted


def _validity(nulls: np.ndarray, null_count: int) -> pa.Buffer | None:
    return pa.py_buffer(np.packbits(~nulls, bitorder="little")) if null_count else None


def _loaded(plan: ColumnPlan, fields: _Fields, lengths: np.ndarray) -> Column:
    """The column loaded value by value by psycopg's binary loader (as the text path would)."""
    load = plan.load_binary
    if load is None:
        raise ConversionError(f"cannot load column {plan.name!r} from binary COPY")
    try:
        return Loaded([None if raw is None else load(raw) for raw in fields.raw(lengths)])
    except (psycopg.DataError, ValueError, TypeError) as error:
        raise ConversionError(f"cannot load column {plan.name!r}: {error}") from error

"""Arrow columns -> binary ``COPY`` data, column by column with numpy (no loop over rows).

The layout (PostgreSQL docs, "COPY", binary format): a 19-byte header, then per row an
int16 field count and, per field, an int32 length (-1 for NULL) and that many bytes, all
big-endian; an int16 -1 ends the data. Each column's field sizes are known for all rows at
once: each column becomes an array of whole fields (numpy builds the fixed-width ones), and
pyarrow joins each row's fields in one pass (:func:`encode_rows`).

Only the types whose binary form is simple are encoded here (:func:`encodable`): the server
parses binary ``COPY`` with less work than CSV, which is most of a large write's time (the
server has timestamps, numerics and floats to parse from text). Others go as CSV.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["HEADER", "TRAILER", "encodable", "encode_rows"]

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
TRAILER = b"\xff\xff"

_NULL_FIELD = pa.scalar(b"\xff\xff\xff\xff", pa.large_binary())
_EPOCH_2000_US = 946_684_800_000_000
_EPOCH_2000_DAYS = 10_957
_FIXED: dict[pa.DataType, str] = {
    pa.int16(): ">i2",
    pa.int32(): ">i4",
    pa.int64(): ">i8",
    pa.float32(): ">f4",
    pa.float64(): ">f8",
}
#: Decimals whose unscaled values (padded to whole base-10000 digits) fit in an int64.
_MAX_DECIMAL_DIGITS = 18


def encodable(data_type: pa.DataType) -> bool:
    """Whether columns of ``data_type`` are encoded here, as the type :func:`.write.column_type` names."""
    if data_type in _FIXED or pa.types.is_boolean(data_type) or pa.types.is_date32(data_type):
        return True
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return True
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return True
    if pa.types.is_timestamp(data_type):
        return True
    return pa.types.is_decimal128(data_type) and _padded_digits(data_type) <= _MAX_DECIMAL_DIGITS


def _padded_digits(data_type: Any) -> int:
    """Decimal digits of the largest value once its fraction is padded to whole base-10000 digits."""
    precision, scale = int(data_type.precision), int(data_type.scale)
    return precision - scale + 4 * -(-scale // 4)


def encode_rows(table: pa.Table) -> bytes:
    """The rows of ``table`` (every column :func:`encodable`) as binary COPY data, without header.

    Each column becomes one binary value per row holding its whole field (length word and
    bytes, or the NULL word); pyarrow joins the fields of each row, and the joined values
    lie one after another in one buffer: the COPY data.
    """
    rows = table.num_rows
    count = np.full(rows, table.num_columns, dtype=">i2")
    fields = [_fixed_width_binary(count.view(np.uint8).reshape(rows, 2))]
    for column in table.columns:
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        fields.append(_text_field(array) if _is_variable(array.type) else _fixed_field(array))
    joined = pc.binary_join_element_wise(*fields, pa.scalar(b"", pa.large_binary()))
    offsets = np.frombuffer(joined.buffers()[1], np.int64, count=rows + 1, offset=joined.offset * 8)
    return joined.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]] if rows else b""


def _is_variable(data_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
    )


def _fixed_width_binary(block: np.ndarray[Any, Any]) -> pa.Array:
    """Rows of equal width (a 2-D array of bytes) as a ``large_binary`` array."""
    rows, width = block.shape
    buffer = pa.py_buffer(np.ascontiguousarray(block).tobytes())
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), rows, [None, buffer]).cast(
        pa.large_binary()
    )


def _with_nulls(column: pa.Array, fields: pa.Array) -> pa.Array:
    return pc.if_else(column.is_valid(), fields, _NULL_FIELD) if column.null_count else fields


def _fixed_field(column: pa.Array) -> pa.Array:
    values, _ = _fixed_values(column)
    rows, width = values.shape
    block = np.empty((rows, 4 + width), dtype=np.uint8)
    block[:, :4] = np.frombuffer(width.to_bytes(4, "big"), np.uint8)
    block[:, 4:] = values
    return _with_nulls(column, _fixed_width_binary(block))


def _text_field(column: pa.Array) -> pa.Array:
    """Text and bytes: the length word, then each value's UTF-8 (or raw) bytes."""
    raw = column.cast(pa.large_binary())
    lengths = pc.binary_length(raw).fill_null(0).to_numpy(zero_copy_only=False).astype(">i4")
    prefix = _fixed_width_binary(lengths.view(np.uint8).reshape(len(column), 4))
    fields = pc.binary_join_element_wise(prefix, raw, pa.scalar(b"", pa.large_binary()))
    return _with_nulls(column, fields)


def _fixed_values(column: pa.Array) -> tuple[np.ndarray[Any, Any], Any]:
    """The column's values as rows of big-endian bytes, and their width."""
    data_type = column.type
    filled = column.fill_null(_zero(data_type)) if column.null_count else column
    if data_type in _FIXED:
        dtype = _FIXED[data_type]
        return _rows(filled.to_numpy(zero_copy_only=False).astype(dtype)), dtype
    if pa.types.is_boolean(data_type):
        return filled.to_numpy(zero_copy_only=False).astype(np.uint8).reshape(-1, 1), 1
    if pa.types.is_date32(data_type):
        days = filled.cast(pa.int32()).to_numpy() - _EPOCH_2000_DAYS
        return _rows(days.astype(">i4")), ">i4"
    if pa.types.is_timestamp(data_type):
        micros = filled.cast(pa.timestamp("us", data_type.tz), safe=False).cast(pa.int64()).to_numpy()
        return _rows((micros - _EPOCH_2000_US).astype(">i8")), ">i8"
    return _numeric(filled)


def _zero(data_type: pa.DataType) -> pa.Scalar:
    """A value to stand in for NULLs (their bytes are not sent)."""
    if pa.types.is_boolean(data_type):
        return pa.scalar(False)
    if pa.types.is_decimal(data_type):
        return pa.scalar(Decimal(0), data_type)
    if pa.types.is_date32(data_type):
        return pa.scalar(0, pa.int32()).cast(data_type)
    if pa.types.is_timestamp(data_type):
        return pa.scalar(0, pa.int64()).cast(data_type)
    return pa.scalar(0, data_type)


def _rows(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return values.view(np.uint8).reshape(len(values), values.dtype.itemsize)


def _numeric(column: pa.Array) -> tuple[np.ndarray[Any, Any], int]:
    """Decimals as PostgreSQL numerics: ndigits, weight, sign, dscale, then base-10000 digits.

    Every value of the column gets the same digits (leading and trailing zero digits
    included, which the server strips): the integer part's and the fraction's, padded to
    whole base-10000 digits.
    """
    data_type = column.type
    scale = data_type.scale
    fraction_digits = -(-scale // 4)
    integer_digits = -(-(data_type.precision - scale) // 4)
    ndigits = integer_digits + fraction_digits
    unscaled = _unscaled(column) * 10 ** (4 * fraction_digits - scale)
    negative = unscaled < 0
    magnitude = np.abs(unscaled)
    packed = np.empty((len(column), 4 + ndigits), dtype=">i2")  # big-endian, as sent
    for position in range(ndigits - 1, -1, -1):
        packed[:, 4 + position] = magnitude % 10_000
        magnitude //= 10_000
    packed[:, 0] = ndigits
    packed[:, 1] = integer_digits - 1
    packed[:, 2] = np.where(negative, 0x4000, 0)
    packed[:, 3] = scale
    return packed.view(np.uint8).reshape(len(column), 2 * (4 + ndigits)), 2 * (4 + ndigits)


def _unscaled(column: pa.Array) -> np.ndarray[Any, Any]:
    """The decimals' unscaled values as int64 (the low half of each 128-bit value: they fit)."""
    words = np.frombuffer(column.buffers()[1], dtype="<i8", offset=column.offset * 16, count=2 * len(column))
    return words[0::2].astype(np.int64)

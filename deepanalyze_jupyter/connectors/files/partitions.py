"""Hive-style partition folders (``flights/month=1/part.parquet``) as columns, and natural order.

A folder named ``key=value`` gives each row of the files below it a column ``key``,
as pyarrow datasets and pandas do: typed as pyarrow's partition discovery types it
(``int32`` when every value of the key is an integer that fits, else ``string``;
``__HIVE_DEFAULT_PARTITION__`` is missing), values URL-decoded, parsed by pyarrow's
own :class:`~pyarrow.dataset.HivePartitioning`. Files are read in natural order, numbers
compared as numbers: ``month=2`` before ``month=10``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from ...frames import arrow_to_frame

__all__ = ["PartitionValues", "natural_key", "partition_values", "with_partition_columns"]

#: A file's partition columns: key -> typed value (``None`` for a missing one).
PartitionValues = dict[str, pa.Scalar]

_NULL_VALUE = "__HIVE_DEFAULT_PARTITION__"
_DIGITS = re.compile(r"(\d+)")
_INTEGER = re.compile(r"-?\d{1,10}")
_INT32 = (-(2**31), 2**31 - 1)


def natural_key(path: str) -> tuple[Any, ...]:
    """A sort key comparing runs of digits as numbers: ``a=2/x`` before ``a=10/x``."""
    runs = _DIGITS.split(path)
    return (*(int(run) if index % 2 else run for index, run in enumerate(runs)), path)


def _segments(path: str) -> list[tuple[str, str]]:
    """The ``(key, raw value)`` of each ``key=value`` folder of ``path`` (not its file name)."""
    folders = path.strip("/").split("/")[:-1]
    pairs = [folder.partition("=") for folder in folders]
    return [(key, value) for key, equals, value in pairs if key and equals]


def _fits_int32(value: str) -> bool:
    return _INTEGER.fullmatch(value) is not None and _INT32[0] <= int(value) <= _INT32[1]


def _inferred_schema(paths: Sequence[str]) -> pa.Schema:
    """The type of each partition key over every path, as pyarrow's discovery infers it."""
    values: dict[str, list[str]] = {}
    for path in paths:
        for key, value in _segments(path):
            values.setdefault(key, []).append(value)
    fields = []
    for key, seen in values.items():
        given = [value for value in seen if value != _NULL_VALUE]
        integers = bool(given) and all(_fits_int32(value) for value in given)
        fields.append(pa.field(key, pa.int32() if integers or not given else pa.string()))
    return pa.schema(fields)


def partition_values(paths: Sequence[str]) -> list[PartitionValues]:
    """The partition columns of each path, typed alike across ``paths``; ``{}`` for none."""
    schema = _inferred_schema(paths)
    if not len(schema):
        return [{} for _ in paths]
    partitioning = ds.HivePartitioning(schema)
    found: list[PartitionValues] = []
    for path in paths:
        values: PartitionValues = {}
        for key, text in _segments(path):
            values.setdefault(key, pa.scalar(_parsed(partitioning, key, text), schema.field(key).type))
        found.append(values)
    return found


def _parsed(partitioning: ds.HivePartitioning, key: str, text: str) -> Any:
    """The value of folder ``key=text`` as pyarrow reads it; the text as it is when pyarrow
    cannot URL-decode it (``%FF`` is not UTF-8), which can only be a text value."""
    try:
        return ds.get_partition_keys(partitioning.parse(f"/{key}={text}/")).get(key)
    except pa.ArrowInvalid:
        return text


def with_partition_columns(
    parsed: pa.Table | pd.DataFrame, values: PartitionValues
) -> pa.Table | pd.DataFrame:
    """``parsed`` with a column per partition key it lacks, each row holding the file's value."""
    for key, value in values.items():
        if isinstance(parsed, pa.Table):
            if key not in parsed.column_names:
                parsed = parsed.append_column(key, pa.repeat(value, parsed.num_rows))
        elif key not in parsed.columns:
            column = arrow_to_frame(pa.table({key: pa.repeat(value, len(parsed))}))[key]
            parsed = parsed.assign(**{key: column.set_axis(parsed.index)})
    return parsed

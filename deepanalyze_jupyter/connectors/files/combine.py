"""Many parsed files -> one DataFrame, in order, optionally naming each row's file."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ...errors import ConfigurationError
from ...frames import mark_result
from ...results import with_info
from .conversion import STRING, ParsedFile, parse_errors, to_frame
from .options import ARROW_TYPES, ReaderOptions

__all__ = ["combine_arrow", "combine_frames", "combine_tables", "read_result"]


def combine_tables(
    parts: Sequence[tuple[str, ParsedFile]],
    *,
    source: str,
    source_column: str | None,
    reader_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Combine files parsed by :func:`~.formats.parse_table` into one DataFrame, in order.

    Arrow tables are concatenated first and converted to pandas once, which is much
    faster than converting each file; files whose columns Arrow cannot unify (or that
    only pandas could hold) are combined by :func:`combine_frames` instead.
    """
    options = ReaderOptions.parse(reader_options, source)
    _check_source_column(parts, source_column)
    tables = [parsed for _, parsed in parts if isinstance(parsed, pa.Table)]
    others = [parsed for _, parsed in parts if not isinstance(parsed, pa.Table) and len(parsed)]
    combined: pd.DataFrame | None = None
    if tables and not others:
        try:
            table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            table = None
        if table is not None:
            with parse_errors("cannot combine the files", source):
                combined = to_frame(table, options)
    if combined is None:
        with parse_errors("cannot combine the files", source):
            frames = [(name, to_frame(parsed, options)) for name, parsed in parts]
        return combine_frames(frames, source_column=source_column)
    if source_column is not None:
        combined = _with_source_column(combined, parts, source_column)
    return combined


def combine_arrow(
    parts: Sequence[tuple[str, ParsedFile]],
    *,
    source: str,
    source_column: str | None,
    reader_options: Mapping[str, Any] | None = None,
) -> pa.Table | None:
    """Combine files parsed by :func:`~.formats.parse_table` into one Arrow table, never building pandas.

    ``None`` when only pandas can hold the result: a file parsed to a DataFrame (JSON values
    of changing types), a dtype Arrow has no type for (``category``), files whose columns Arrow
    cannot unify, or only empty files. The caller then combines with :func:`combine_tables`.
    """
    options = ReaderOptions.parse(reader_options, source)
    _check_source_column(parts, source_column)
    if any(dtype not in ARROW_TYPES for dtype in options.dtypes.values()):
        return None
    if any(not isinstance(parsed, pa.Table) and len(parsed) for _, parsed in parts):
        return None
    tables = [parsed for _, parsed in parts if isinstance(parsed, pa.Table)]
    if not tables:
        return None
    try:
        table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    table = _large_text(table)
    if source_column is not None:
        names = pa.array([name for name, _ in parts], type=pa.large_string())
        counts = np.array([len(parsed) for _, parsed in parts], dtype=np.int64)
        labels = names.take(pa.array(np.repeat(np.arange(len(parts)), counts)))
        table = table.add_column(0, source_column, labels)
    return table


def _large_text(table: pa.Table) -> pa.Table:
    """``table`` with text as ``large_string``, the type pandas' pyarrow-backed text gives back."""
    for position, column_field in enumerate(table.schema):
        if pa.types.is_string(column_field.type):
            table = table.set_column(
                position, column_field.name, table.column(position).cast(pa.large_string())
            )
    return table


async def read_result(
    parts: Sequence[tuple[str, ParsedFile]],
    *,
    source: str,
    source_column: str | None,
    reader_options: Mapping[str, Any] | None,
    limit: int | None,
    output: str = "pandas",
) -> pd.DataFrame | pa.Table:
    """The result of a read: the files combined (in a worker thread), cut at ``limit`` rows
    and marked as cut (``attrs["truncated"]``, or the Arrow schema metadata) when it was.

    With ``output="arrow"`` an Arrow table comes back when the files can be combined in
    Arrow (see :func:`combine_arrow`), with no pandas frame built; else a DataFrame.
    """
    if output == "arrow":
        table = await asyncio.to_thread(
            combine_arrow, parts, source=source, source_column=source_column, reader_options=reader_options
        )
        if table is not None:
            cut = limit is not None and table.num_rows > limit
            info = {"source": source, "truncated": cut, "row_limit": limit}
            return with_info(table.slice(0, limit) if cut else table, info)
    frame = await asyncio.to_thread(
        combine_tables, parts, source=source, source_column=source_column, reader_options=reader_options
    )
    truncated = limit is not None and len(frame) > limit
    if truncated:
        frame = frame.iloc[:limit].copy()
    return mark_result(frame, source=source, truncated=truncated, limit=limit)


def combine_frames(frames: Sequence[tuple[str, pd.DataFrame]], *, source_column: str | None) -> pd.DataFrame:
    """Concatenate ``(name, frame)`` pairs into one frame, in order.

    Columns missing from some files are filled with missing values. With
    ``source_column``, a first column of that name tells which file each row came from.
    """
    _check_source_column(frames, source_column)
    kept = [frame for _, frame in frames if len(frame)] or [frame for _, frame in frames[:1]]
    if not kept:
        combined = pd.DataFrame()
    elif len(kept) == 1:
        combined = kept[0].copy()
    else:
        combined = pd.concat(kept, ignore_index=True)
    if source_column is not None:
        combined = _with_source_column(combined, frames, source_column)
    return combined


def _check_source_column(parts: Sequence[tuple[str, ParsedFile]], source_column: str | None) -> None:
    if source_column is None:
        return
    for name, parsed in parts:
        columns = parsed.column_names if isinstance(parsed, pa.Table) else parsed.columns
        if source_column in columns:
            raise ConfigurationError(f"the source column {source_column!r} clashes with a column of {name}")


def _with_source_column(
    frame: pd.DataFrame, parts: Sequence[tuple[str, ParsedFile]], source_column: str
) -> pd.DataFrame:
    """``frame`` with a first column naming, for each row, the file it came from."""
    names = pd.array([name for name, _ in parts], dtype=STRING)
    counts = np.array([len(parsed) for _, parsed in parts], dtype=np.int64)
    labels = names.take(np.repeat(np.arange(len(parts)), counts)) if len(parts) else names
    frame.insert(0, source_column, pd.Series(labels, index=frame.index))
    return frame

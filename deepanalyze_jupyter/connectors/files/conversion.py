"""After parsing: column selection, dtypes, the conversion to pandas and one-line errors."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa

from ...errors import FormatError
from ...frames import arrow_to_frame
from .options import ARROW_TYPES, PANDAS_AFTER, ReaderOptions

__all__ = [
    "STRING",
    "ParsedFile",
    "check_columns",
    "empty_frame",
    "parse_errors",
    "reason",
    "select",
    "to_frame",
]

#: A parsed file before its conversion to pandas: an Arrow table, or a DataFrame when
#: only pandas can hold the data (JSON values of changing types).
ParsedFile: TypeAlias = "pa.Table | pd.DataFrame"

STRING = pd.StringDtype("pyarrow")
_REASON_LENGTH = 160


@contextmanager
def parse_errors(context: str, source: str) -> Iterator[None]:
    """Turn a parser's error into a one-line :class:`FormatError` starting with ``context``."""
    try:
        yield
    except FormatError:
        raise
    except (pa.ArrowException, ValueError, TypeError, KeyError, OSError, EOFError, zlib.error) as error:
        raise FormatError(f"{context}: {reason(error)}", source=source) from None


def reason(error: BaseException) -> str:
    """The first line of an error's text, cut to a readable length."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if len(text) > _REASON_LENGTH:
        text = text[: _REASON_LENGTH - 3] + "..."
    return text


def empty_frame(options: ReaderOptions) -> pd.DataFrame:
    """The frame of an empty file: the columns asked for (or named), no rows."""
    columns = options.columns or options.names or []
    return pd.DataFrame({column: pd.Series([], dtype=object) for column in columns})


def check_columns(wanted: Sequence[str], present: Sequence[str]) -> None:
    """Refuse columns asked for that the file does not have."""
    missing = [column for column in wanted if column not in present]
    if missing:
        raise ValueError(f"no column(s) {', '.join(map(repr, missing))} in the file")


def select(parsed: ParsedFile, options: ReaderOptions) -> ParsedFile:
    """Keep the wanted columns and cast those whose dtype Arrow can hold."""
    if isinstance(parsed, pd.DataFrame):
        if options.columns is not None:
            check_columns(options.columns, [str(column) for column in parsed.columns])
            return parsed[options.columns]
        return parsed
    table = parsed
    if options.columns is not None:
        check_columns(options.columns, table.column_names)
        table = table.select(options.columns)
    for column, dtype in options.dtypes.items():
        target = ARROW_TYPES.get(dtype)
        if target is not None and column in table.column_names:
            position = table.column_names.index(column)
            if table.schema.field(position).type != target:
                table = table.set_column(position, column, table.column(position).cast(target))
    return table


def to_frame(parsed: ParsedFile, options: ReaderOptions) -> pd.DataFrame:
    """Convert to pandas, then apply the dtypes only pandas has (nullable, categorical)."""
    after: dict[str, Any]
    if isinstance(parsed, pa.Table):
        frame = arrow_to_frame(parsed)
        after = {
            column: dtype
            for column, dtype in options.dtypes.items()
            if column in frame.columns and (dtype not in ARROW_TYPES or dtype in PANDAS_AFTER)
        }
    else:
        frame = parsed
        after = {
            column: (STRING if dtype in ("str", "string") else dtype)
            for column, dtype in options.dtypes.items()
            if column in frame.columns
        }
    for column, dtype in after.items():
        try:
            frame[column] = frame[column].astype(dtype)
        except (TypeError, ValueError) as error:
            raise ValueError(f"column {column!r} cannot be converted to {dtype}: {reason(error)}") from None
    return frame

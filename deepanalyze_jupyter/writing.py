"""What every write shares: the request, the read-only guard and the frame's checks.

A DataFrame is checked and turned into an Arrow table once, before any connector sees
it: duplicate column names, names a source cannot hold and dtypes no writer can store
are refused here, so nothing is sent to a service for a frame that cannot be written.
Connectors then write Arrow (:mod:`.connectors.postgresql.write`,
:mod:`.connectors.files.write`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import ConfigurationError, DataSourceError, quoted
from .models import OptionSpec

__all__ = [
    "FILE_WRITE_MODES",
    "READ_ONLY_OPTION",
    "WRITE_MODES",
    "WriteInterrupted",
    "WriteMode",
    "WriteRequest",
    "WriteStage",
    "frame_to_arrow",
    "nothing_written",
    "refuse_read_only",
    "refuse_table_mode",
    "write_request",
]

WriteMode = Literal["create", "append", "replace"]
WRITE_MODES: tuple[str, ...] = get_args(WriteMode)
#: The modes a file takes: it is made, or replaced (``overwrite=True``), never appended to.
FILE_WRITE_MODES: tuple[str, ...] = ("create", "replace")

#: The option that allows writes, for sources that hold files (PostgreSQL and SQLite have their own).
READ_ONLY_OPTION = OptionSpec("read_only", bool, "refuse writes (set false to allow them)", default=True)


class WriteInterrupted(KeyboardInterrupt):
    """An interrupted write: it stops the caller like any interrupt, saying what was written."""


class WriteStage:
    """How far a write got, as its connector tells: what an interrupt left behind follows from it.

    ``writing`` until the last step (the ``COMMIT``, the file renamed into place, the blob's
    block list committed) begins, then ``committing``, whose outcome an interrupt cannot know,
    then ``done``.
    """

    def __init__(self) -> None:
        self.step: Literal["writing", "committing", "done"] = "writing"
        self.what = ""

    def committing(self, what: str) -> None:
        """The last step begins; ``what`` names the thing to check (``the table t``)."""
        self.step, self.what = "committing", what

    def done(self) -> None:
        """The last step returned: the write is there."""
        self.step = "done"

    def interrupted(self, source: str, target: str) -> str:
        """The line that tells what an interrupt of the write left behind."""
        if self.step == "writing":
            return f"{source}: interrupted; nothing was written to {target}"
        if self.step == "committing":
            return (
                f"{source}: interrupted while committing; the write may or may not have been committed; "
                f"check {self.what}"
            )
        return f"{source}: interrupted after the write was committed; {self.what} was written"


@dataclass(frozen=True)
class WriteRequest:
    """How to write: ``mode`` (tables), ``format`` (files), SQL ``types`` per column.

    ``stage`` is where the connector records how far the write got (:class:`WriteStage`).
    """

    target: str
    mode: WriteMode = "create"
    format: str | None = None
    types: Mapping[str, str] = field(default_factory=dict)
    stage: WriteStage = field(default_factory=WriteStage, compare=False, repr=False)

    @property
    def replaces(self) -> bool:
        """Whether an existing table or file may be replaced."""
        return self.mode == "replace"


def write_request(
    target: str,
    *,
    mode: str,
    overwrite: bool,
    format: str | None,
    types: Mapping[str, str] | None,
    source: str,
) -> WriteRequest:
    """Check the write's arguments; ``overwrite`` is ``mode="replace"`` said for files."""
    if mode not in WRITE_MODES:
        raise ConfigurationError(
            f"unknown write mode {mode!r}; use one of {', '.join(WRITE_MODES)}", source=source
        )
    if not str(target).strip():
        raise ConfigurationError("give a table or path to write to", source=source)
    if overwrite and mode == "append":
        raise ConfigurationError(
            "overwrite replaces the target; it cannot go with mode 'append'", source=source
        )
    chosen: WriteMode = "replace" if overwrite else mode  # type: ignore[assignment]
    return WriteRequest(str(target).strip(), chosen, format, dict(types or {}))


def nothing_written(error: DataSourceError, target: str) -> DataSourceError:
    """``error`` (of the same class) saying that nothing was written to ``target``."""
    return type(error)(f"{error.message}; nothing was written to {target}", source=error.source)


def refuse_read_only(options: Mapping[str, Any], *, source: str) -> None:
    """Refuse a write to a source registered read-only, naming the setting that allows it."""
    if options.get("read_only", True):
        raise ConfigurationError(
            "the source is read-only: nothing was written; register it with read_only=False to allow writes",
            source=source,
        )


def refuse_table_mode(request: WriteRequest, *, source: str) -> None:
    """Refuse, before anything is written, a mode only tables take (``append``) for a file."""
    if request.mode not in FILE_WRITE_MODES:
        raise ConfigurationError(
            f"files are written whole: mode={request.mode!r} is for tables; pass overwrite=True to "
            f"replace {quoted(request.target, 80)}",
            source=source,
        )


def frame_to_arrow(frame: pd.DataFrame, *, index: bool, source: str, json_values: bool = False) -> pa.Table:
    """``frame`` (with its index as columns if ``index``) as an Arrow table, or one clear refusal.

    With ``json_values``, an object column of lists and dicts becomes JSON text (``pa.json_()``),
    each value's own JSON: as Arrow structs, every dict of a column would get the keys of all
    the others (as ``None``).
    """
    if not isinstance(frame, pd.DataFrame):
        raise ConfigurationError(
            f"only a DataFrame can be written, not {type(frame).__name__}", source=source
        )
    data = frame.reset_index() if index else frame
    names = [str(name) for name in data.columns]
    _check_names(names, source)
    columns = [
        _arrow_column(name, data.iloc[:, position], source, json_values=json_values)
        for position, name in enumerate(names)
    ]
    return pa.Table.from_arrays(columns, names=names)


def _check_names(names: list[str], source: str) -> None:
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ConfigurationError(
            f"the frame has duplicate column names ({', '.join(map(repr, duplicates))}); "
            "rename them before writing",
            source=source,
        )
    if not names:
        raise ConfigurationError("the frame has no columns: nothing to write", source=source)
    if any(not name for name in names):
        raise ConfigurationError("the frame has a column with an empty name", source=source)


def _arrow_column(name: str, column: pd.Series[Any], source: str, *, json_values: bool) -> pa.Array:
    """One column as Arrow; categories become their values, anything Arrow cannot hold is refused."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(_values_dtype(column.dtype.categories))
    if pd.api.types.is_timedelta64_dtype(column.dtype) or pd.api.types.is_complex_dtype(column.dtype):
        raise _unsupported(name, str(column.dtype), source)
    if isinstance(column.dtype, (pd.PeriodDtype, pd.IntervalDtype, pd.SparseDtype)):
        raise _unsupported(name, str(column.dtype), source)
    # NaN in a float column stays NaN (PostgreSQL's 'NaN', not NULL): it reads back the same.
    keep_nan = pd.api.types.is_float_dtype(column.dtype)
    try:
        array = pa.array(column, from_pandas=not keep_nan)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
        reason = str(error).splitlines()[0][:120]
        raise ConfigurationError(
            f"column {name!r} ({column.dtype}) cannot be written: {reason}", source=source
        ) from None
    if json_values and column.dtype == object and pa.types.is_nested(array.type):
        return _json_text(column)
    return array


def _values_dtype(categories: pd.Index) -> Any:
    """The dtype of a categorical's values that also holds its missing ones: whole numbers and
    booleans go nullable (``Int64``, ``boolean``), as NumPy's ``int64`` has no missing value."""
    if categories.dtype.kind in "iub":
        return pd.array(categories.to_numpy()).dtype
    return categories.dtype


def _json_text(column: pd.Series[Any]) -> pa.Array:
    """Lists and dicts as the JSON text of each (missing values and NaN as Arrow made them: null)."""
    texts = [None if _missing(value) else json.dumps(_plain(value), default=str) for value in column]
    return pa.ExtensionArray.from_storage(pa.json_(), pa.array(texts, pa.string()))


def _missing(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    return value is None or value is pd.NA or value is pd.NaT


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python ones, and missing values as ``None``."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    return None if _missing(value) else value


def _unsupported(name: str, dtype: str, source: str) -> ConfigurationError:
    return ConfigurationError(
        f"column {name!r} has dtype {dtype}, which cannot be written; convert it first "
        "(e.g. to string or float)",
        source=source,
    )

"""What the Dask hand-offs share: the import, the collection of one task per part, its nullable
dtypes, worker errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigurationError, DataSourceError
from ..frames import nullable_floats

__all__ = ["WORKER_SOURCE", "dask_dataframe", "for_source", "from_parts", "nullable"]

#: The name of the source on a worker's own session.
WORKER_SOURCE = "worker"


def dask_dataframe() -> Any:
    """``dask.dataframe``, or one line saying how to install it."""
    try:
        import dask.dataframe as dd
    except ImportError:
        raise ConfigurationError(
            "Dask is not installed: pip install 'deepanalyze-jupyter[dask]' (dask and distributed)"
        ) from None
    return dd


def from_parts(read: Callable[[Any], pd.DataFrame], parts: Sequence[Any], meta: pd.DataFrame) -> Any:
    """A lazy ``dask.dataframe`` of one task per part, its frames kept as the reader made them.

    Dask's own conversion of object columns to text is off: it would turn exact decimals
    (and bytes) into strings.
    """
    import dask

    with dask.config.set({"dataframe.convert-string": False}):
        return dask_dataframe().from_map(read, parts, meta=meta, enforce_metadata=False)


def for_source(error: DataSourceError, source: str) -> DataSourceError:
    """A worker's error as the kernel's source would have given it (named after that source)."""
    return type(error)(error.message, source=source)


def nullable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with integer, boolean and float columns in pandas' nullable dtypes (NaN kept).

    A file (or a query's range) without a missing value reads as ``int64``, one with as
    ``Int64``; a task cannot know whether another part holds one, so every partition (and
    the ``meta``) takes the nullable dtype.
    """
    changed: dict[int, Any] = {}
    for position, dtype in enumerate(frame.dtypes):
        if not isinstance(dtype, np.dtype) or dtype.kind not in "iubf" or dtype == np.float16:
            continue
        values = frame.iloc[:, position].to_numpy()
        if dtype.kind == "f":
            changed[position] = nullable_floats(values, np.zeros(len(values), dtype=bool))
        else:
            name = "boolean" if dtype.kind == "b" else dtype.name.replace("int", "Int").replace("uI", "UI")
            changed[position] = frame.iloc[:, position].astype(pd.api.types.pandas_dtype(name)).array
    if not changed:
        return frame
    frame = frame.copy(deep=False)
    for position, column in changed.items():
        frame.isetitem(position, column)
    return frame

"""What the Dask hand-offs share: the import, the collection of one task per part, worker errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from ..errors import ConfigurationError, DataSourceError

__all__ = ["WORKER_SOURCE", "dask_dataframe", "for_source", "from_parts"]

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

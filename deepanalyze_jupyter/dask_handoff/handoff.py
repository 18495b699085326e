"""A query or files handed to Dask as a lazy DataFrame: :func:`to_dask` for every source type.

A PostgreSQL query becomes one task per range partition (:mod:`.query`); the files of a
local or blob source one task per file (:mod:`.files`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from ..errors import ConfigurationError
from .collection import dask_dataframe
from .query import query_to_dask

__all__ = ["to_dask"]


def to_dask(
    session: Any,
    source_id: str,
    what: str | Sequence[str],
    *,
    partition_on: str | None,
    partitions: int,
    sas_expiry: timedelta,
    read_options: Mapping[str, Any],
) -> Any:
    """A lazy ``dask.dataframe``: a PostgreSQL query by ranges, or files one task per file."""
    dask_dataframe()
    config = session.registry.get_config(source_id)
    if config.type in ("local", "azure_blob"):
        if partition_on is not None:
            raise ConfigurationError(
                "partition_on splits a PostgreSQL query; the files of a file source are split one "
                "task per file",
                source=source_id,
            )
        from .files import files_to_dask

        return files_to_dask(session, source_id, what, sas_expiry=sas_expiry, read_options=read_options)
    if config.type != "postgresql":
        raise ConfigurationError(
            "to_dask reads PostgreSQL, local-folder and Azure Blob sources", source=source_id
        )
    if partition_on is None:
        raise ConfigurationError(
            "to_dask of a PostgreSQL query needs partition_on=COLUMN, an integer column to split its rows by",
            source=source_id,
        )
    if read_options:
        raise ConfigurationError(
            f"to_dask of a PostgreSQL query takes no {', '.join(sorted(read_options))}", source=source_id
        )
    if not isinstance(what, str):
        raise ConfigurationError("to_dask of a PostgreSQL source takes one SQL query", source=source_id)
    return query_to_dask(session, source_id, what, partition_on=partition_on, partitions=partitions)

"""A query or files handed to Dask as a lazy DataFrame: :func:`to_dask` for every source type.

A PostgreSQL query becomes one task per range partition (below); the files of a local or
blob source one task per file (:mod:`.dask_files`).

What travels to a worker is the source's options (host, port, database, user, and the
other connection settings, which never hold a password: it is kept apart, encrypted)
and the SQL of one partition. The worker opens its own connection and signs in with
what its machine has: a password file (``~/.pgpass``, or ``PGPASSFILE``), a service
file, a client certificate, or ``PGPASSWORD`` in its environment. Each part is read by
the same code as in the kernel (a private :class:`~deepanalyze_jupyter.Session` on the
worker), so its dtypes are those of ``Session.query``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pandas as pd

from .dask_parts import WORKER_SOURCE, dask_dataframe, for_source, from_parts
from .errors import AuthenticationFailed, ConfigurationError, DataSourceError
from .sqlparams import strip_terminator

__all__ = ["WorkerPart", "read_part", "to_dask"]


class WorkerPart:
    """One partition's work: secret-free connection options and the SQL of its range."""

    def __init__(self, session_class: type, source: str, options: Mapping[str, Any], sql: str) -> None:
        #: The kernel's Session class (pickled by name): the worker reads with one of its own.
        self.session_class = session_class
        self.source = source
        self.options = dict(options)
        self.sql = sql

    def __repr__(self) -> str:
        return f"<WorkerPart of {self.source!r}>"


def read_part(part: WorkerPart) -> pd.DataFrame:
    """(On a worker.) Read one partition, signing in with what the worker's machine has."""
    with part.session_class() as session:
        try:
            session.add(WORKER_SOURCE, "postgresql", **part.options)
            frame: pd.DataFrame = session.query(WORKER_SOURCE, part.sql, limit=None)
        except AuthenticationFailed:
            options = part.options
            target = f"{options.get('user', '')}@{options.get('host', '')}:{options.get('port', '')}"
            raise AuthenticationFailed(
                f"this worker cannot sign in to {target}: give it a password file (~/.pgpass or "
                "PGPASSFILE), a service file, a client certificate or PGPASSWORD",
                source=part.source,
            ) from None
        except DataSourceError as error:
            raise for_source(error, part.source) from None
    frame.attrs.clear()
    return frame


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
        from .dask_files import files_to_dask

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
    return _query_to_dask(session, source_id, what, partition_on=partition_on, partitions=partitions)


def _query_to_dask(session: Any, source_id: str, sql: str, *, partition_on: str, partitions: int) -> Any:
    """A lazy ``dask.dataframe`` of ``sql`` on PostgreSQL source ``source_id``, one task per range."""
    from .connectors.postgresql.partitions import partition_ranges, range_statements  # psycopg: on use

    if partitions < 1:
        raise ConfigurationError(f"partitions must be at least 1, got {partitions}", source=source_id)
    inner = f"SELECT * FROM (\n{strip_terminator(sql)}\n) AS q"
    column = '"' + partition_on.replace('"', '""') + '"'
    bounds = session.query(
        source_id, f"SELECT min({column}) AS low, max({column}) AS high FROM ({inner}) AS b"
    )
    meta = session.query(source_id, f"{inner} LIMIT 0", limit=None)
    meta.attrs.clear()
    low, high = bounds["low"].iloc[0], bounds["high"].iloc[0]
    if pd.isna(low):
        parts = [inner]
    elif not (pd.api.types.is_integer(low) and pd.api.types.is_integer(high)):
        raise ConfigurationError(
            f"partition_on needs an integer column; {partition_on!r} is not one", source=source_id
        )
    else:
        parts = range_statements(inner, column, partition_ranges(int(low), int(high), partitions))
    options = session.registry.get_config(source_id).options
    work = [WorkerPart(type(session), source_id, options, part) for part in parts]
    return from_parts(read_part, work, meta)

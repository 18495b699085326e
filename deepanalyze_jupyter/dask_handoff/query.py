"""A PostgreSQL query handed to Dask as a lazy DataFrame, one task per range partition.

What travels to a worker is the source's options (host, port, database, user, and the
other connection settings, which never hold a password: it is kept apart, encrypted)
and the SQL of one partition. The worker opens its own connection and signs in with
what its machine has: a password file (``~/.pgpass``, or ``PGPASSFILE``), a service
file, a client certificate, or ``PGPASSWORD`` in its environment. Each part is read by
the same code as in the kernel (a private :class:`~deepanalyze_jupyter.Session` on the
worker), so its dtypes are those of ``Session.query``, but for integer, boolean and float
columns: these take pandas' nullable dtypes in every partition (and in the ``meta``), as a
range without a NULL would read as ``int64`` and one with as ``Int64``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import AuthenticationFailed, ConfigurationError, DataSourceError
from ..sqlparams import strip_terminator
from .collection import WORKER_SOURCE, for_source, from_parts, nullable

__all__ = ["WorkerPart", "query_to_dask", "read_part"]


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
    frame = nullable(frame)
    frame.attrs.clear()
    return frame


def query_to_dask(session: Any, source_id: str, sql: str, *, partition_on: str, partitions: int) -> Any:
    """A lazy ``dask.dataframe`` of ``sql`` on PostgreSQL source ``source_id``, one task per range."""
    from ..connectors.postgresql.partitions import partition_ranges, range_statements  # psycopg: on use

    if partitions < 1:
        raise ConfigurationError(f"partitions must be at least 1, got {partitions}", source=source_id)
    inner = f"SELECT * FROM (\n{strip_terminator(sql)}\n) AS q"
    column = '"' + partition_on.replace('"', '""') + '"'
    bounds = session.query(
        source_id, f"SELECT min({column}) AS low, max({column}) AS high FROM ({inner}) AS b"
    )
    meta = nullable(session.query(source_id, f"{inner} LIMIT 0", limit=None))
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

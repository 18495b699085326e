"""A session: one registry, one credential store and one runner, with a sync API.

The IPython extension makes one session per shell (per kernel). Scripts make their
own::

    from deepanalyze_jupyter import Session

    with Session() as session:
        session.add("shop", "sqlite", path="shop.db")
        orders = session.query("shop", "SELECT * FROM orders WHERE region = :region",
                               {"region": "EU"})
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
from collections.abc import Coroutine, Generator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pandas as pd

from .credentials import CredentialManager
from .errors import DataSourceError
from .export import export_batches
from .fetching import ResultTruncated, query_work, read_work, value_warning_if_cut
from .models import DataSourceConfig, Secret, as_secrets
from .progress import ProgressFactory, null_progress
from .redaction import Redactor
from .registry import DEFAULT_ROW_LIMIT, DataSourceRegistry, RowLimit
from .results import Result
from .runner import LoopRunner, traceback_past_the_bridge
from .saved.store import SavedSources
from .shutdown import close_at_exit
from .streaming import DEFAULT_BATCH_ROWS, iterate_batches, query_batches, read_batches
from .writing import WriteInterrupted, write_request

__all__ = ["ResultTruncated", "Session"]

T = TypeVar("T")


class Session:
    """Owns the registry of data sources and the loop its async work runs on."""

    def __init__(
        self,
        *,
        key: bytes | str | None = None,
        cache_ttl: float = 300.0,
        default_row_limit: int | None = DEFAULT_ROW_LIMIT,
        progress: ProgressFactory = null_progress,
        discover: bool = True,
    ) -> None:
        self.credentials = CredentialManager(key)
        self.redactor = Redactor()
        self.registry = DataSourceRegistry(
            self.credentials,
            redactor=self.redactor,
            cache_ttl=cache_ttl,
            default_row_limit=default_row_limit,
            progress=progress,
            discover=discover,
        )
        self.runner = LoopRunner()
        self._closed = False
        self._finalizer = close_at_exit(self, self.runner, self.registry)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.registry)} source(s)"
        return f"<Session {state}>"

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run a coroutine of the async core and return its result.

        An error shows from the caller's line: without the frames of the loop thread and
        the bridge to it, and for one of ours (whose one line says it all) without the
        library error it was made from.
        """
        if self._closed:
            coro.close()
            raise RuntimeError("this session is closed")
        try:
            return self.runner.run_sync(coro, timeout=timeout)
        except DataSourceError as error:
            raise error.with_traceback(None) from None
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            if self._closed:  # closed by another thread while this work ran: it was stopped
                raise RuntimeError("this session is closed; the work running was stopped") from None
            raise
        except Exception as error:  # the same error again, so nothing to chain
            raise error.with_traceback(traceback_past_the_bridge(error.__traceback__, sys._getframe()))  # noqa: B904

    def close(self) -> None:
        """Disconnect every source and stop the session's loop. Safe to call twice."""
        self._closed = True
        self._finalizer()

    # -- the sync API ----------------------------------------------------------------

    def add(
        self,
        source_id: str,
        type: str,
        *,
        name: str = "",
        secrets: Mapping[str, Secret | str] | None = None,
        test: bool = True,
        secret_references: Mapping[str, str] | None = None,
        **options: Any,
    ) -> DataSourceConfig:
        """Register a source; ``secrets`` holds its secret fields (password, sas_token...).

        ``secret_references`` says where some of them came from (``{"password": "env:PGPASSWORD"}``):
        ``save`` writes that reference for them.
        """
        config = DataSourceConfig(
            id=source_id, type=type, name=name, options=options, secrets=as_secrets(secrets)
        )
        # The plain texts given (secrets, and a DSN that may hold a password) stay out of this
        # frame, which a verbose traceback or a debugger may show.
        secrets, options = None, {}
        register = self.registry.register_data_source(
            config, test_connection=test, secret_references=secret_references
        )
        return self.run(register)

    def update(
        self,
        source_id: str,
        *,
        name: str | None = None,
        secrets: Mapping[str, Secret | str] | None = None,
        test: bool = True,
        secret_references: Mapping[str, str] | None = None,
        **options: Any,
    ) -> DataSourceConfig:
        """Change a source's options or secrets, keeping its id (``secret_references`` as for ``add``)."""
        update = self.registry.update_data_source(
            source_id,
            options=options,
            secrets=as_secrets(secrets),
            name=name,
            test_connection=test,
            secret_references=secret_references,
        )
        # The plain texts given (secrets, and a DSN that may hold a password) stay out of this
        # frame, which a verbose traceback or a debugger may show.
        secrets, options = None, {}
        return self.run(update)

    def remove(self, source_id: str) -> None:
        """Disconnect and forget a source."""
        self.run(self.registry.unregister_data_source(source_id))

    def test(self, source_id: str) -> str:
        """Check that a source answers; return a line describing it."""
        return self.run(self.registry.test_connection(source_id))

    def sources(self) -> pd.DataFrame:
        """A DataFrame of the registered sources (no secrets)."""
        return self.registry.sources_frame()

    def list_items(
        self,
        source_id: str,
        prefix: str | None = None,
        *,
        recursive: bool = False,
        limit: int | None = None,
        refresh: bool = False,
    ) -> pd.DataFrame:
        """List a source's tables or files under ``prefix``."""
        return self.run(
            self.registry.list_items(source_id, prefix, recursive=recursive, limit=limit, refresh=refresh)
        )

    def describe(self, source_id: str, item: str, *, refresh: bool = False) -> pd.DataFrame:
        """Describe a table's columns or a file's properties."""
        return self.run(self.registry.describe(source_id, item, refresh=refresh))

    def query(
        self,
        source_id: str,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: RowLimit = "default",
        timeout: float | None = None,
        output: str = "pandas",
        cache_ttl: float | None = None,
        **options: Any,
    ) -> Any:
        """Run SQL with ``:name`` parameters bound from ``params``; return a DataFrame.

        ``limit`` caps the rows fetched: by default the session's ``default_row_limit``
        (100,000 rows unless the Session was made with another), with a
        :class:`ResultTruncated` warning when rows were cut; an int for another cap,
        ``None`` for every row. A cut result has ``df.attrs["truncated"]`` set to True.
        ``output`` is ``"pandas"``, ``"arrow"`` (a ``pyarrow.Table``) or ``"polars"``.
        ``cache_ttl`` (seconds) reuses this session's result of the same query, parameters,
        limit, format and options if it is younger, without asking the source.
        """
        work = query_work(self.registry, source_id, sql, params, limit, timeout, output, cache_ttl, options)
        return value_warning_if_cut(self.registry, self.run(work), source_id, limit)

    def query_batches(
        self,
        source_id: str,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        rows: int = DEFAULT_BATCH_ROWS,
        output: str = "arrow",
        timeout: float | None = None,
        **options: Any,
    ) -> Generator[Any, None, None]:
        """Run SQL and yield its rows in batches of at most ``rows`` rows, as they are read.

        Each batch is a ``pyarrow.Table`` (``output="arrow"``) or a DataFrame (``"pandas"``)
        and only it is held in memory; no row limit applies. Stopping early (``break``,
        ``close()``) or an interrupt cancels the query on the server.
        """
        batches = query_batches(
            self.registry, source_id, sql, params, rows=rows, output=output, timeout=timeout, options=options
        )
        return iterate_batches(self.run, batches)

    def export(
        self,
        source_id: str,
        sql: str,
        to: str | os.PathLike[str],
        params: Mapping[str, Any] | None = None,
        *,
        overwrite: bool = False,
        rows: int = DEFAULT_BATCH_ROWS,
        timeout: float | None = None,
        **options: Any,
    ) -> str:
        """Write every row of a query to ``to`` batch by batch, as the rows arrive (:mod:`.export`).

        ``to`` is a local path or a path in a local or blob source (``dsrc://SOURCE/path``, the
        source registered with ``read_only=False``). Parquet, CSV, TSV or JSON lines by
        extension; the file appears only when complete, and an existing one is replaced only
        with ``overwrite=True``. Returns what was written.
        """
        batches = query_batches(
            self.registry, source_id, sql, params, rows=rows, output="arrow", timeout=timeout, options=options
        )
        return self.run(export_batches(self.registry, batches, to, overwrite=overwrite, source=source_id))

    def read_batches(
        self,
        source_id: str,
        paths: str | Sequence[str],
        *,
        rows: int = DEFAULT_BATCH_ROWS,
        output: str = "arrow",
        format: str | None = None,
        source_column: str | None = None,
        **reader_options: Any,
    ) -> Generator[Any, None, None]:
        """Read files (paths, folders or globs) of a file source and yield their rows in batches.

        Batches of at most ``rows`` rows, in the order and with the dtypes of :meth:`read`;
        only the batch being read is held in memory (Parquet by row group, text by block).
        Stopping early (``break``, ``close()``) or an interrupt stops the downloads.
        """
        batches = read_batches(
            self.registry,
            source_id,
            paths,
            rows=rows,
            output=output,
            format=format,
            source_column=source_column,
            reader_options=reader_options,
        )
        return iterate_batches(self.run, batches)

    def export_files(
        self,
        source_id: str,
        paths: str | Sequence[str],
        to: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        rows: int = DEFAULT_BATCH_ROWS,
        format: str | None = None,
        source_column: str | None = None,
        **reader_options: Any,
    ) -> str:
        """Write the rows of files of a file source to ``to`` batch by batch, as :meth:`export` does."""
        batches = read_batches(
            self.registry,
            source_id,
            paths,
            rows=rows,
            output="arrow",
            format=format,
            source_column=source_column,
            reader_options=reader_options,
        )
        return self.run(export_batches(self.registry, batches, to, overwrite=overwrite, source=source_id))

    def to_dask(
        self,
        source_id: str,
        what: str | Sequence[str],
        *,
        partition_on: str | None = None,
        partitions: int = 4,
        sas_expiry: timedelta = timedelta(hours=1),
        format: str | None = None,
        **reader_options: Any,
    ) -> Any:
        """A lazy ``dask.dataframe`` of a PostgreSQL query or of a file source's files.

        PostgreSQL: ``what`` is SQL, one task per range of ``partition_on``; tasks never
        carry the password: each worker signs in with what its machine has (``~/.pgpass``
        or ``PGPASSFILE``, a service file, a client certificate, ``PGPASSWORD``). Local
        folder or Azure Blob: ``what`` is paths, folders or globs as :meth:`read` takes
        them, one task per file; a blob source's account key never travels, only a
        read+list SAS of the container valid for ``sas_expiry`` (:mod:`.dask_handoff.files`).
        Needs the ``dask`` extra.
        """
        from .dask_handoff import to_dask  # it reads parts with a Session of its own on each worker

        read_options = {**({"format": format} if format else {}), **reader_options}
        return to_dask(
            self,
            source_id,
            what,
            partition_on=partition_on,
            partitions=partitions,
            sas_expiry=sas_expiry,
            read_options=read_options,
        )

    def query_result(
        self,
        source_id: str,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: RowLimit = "default",
        timeout: float | None = None,
        output: str = "pandas",
        cache_ttl: float | None = None,
        **options: Any,
    ) -> Result:
        """:meth:`query`, with what the result says of itself (cut, cache age) in every format."""
        work = query_work(self.registry, source_id, sql, params, limit, timeout, output, cache_ttl, options)
        return self.run(work)

    def read(
        self,
        source_id: str,
        paths: str | Sequence[str],
        *,
        format: str | None = None,
        limit: RowLimit = "default",
        source_column: str | None = None,
        output: str = "pandas",
        cache_ttl: float | None = None,
        **reader_options: Any,
    ) -> Any:
        """Read files (paths or globs) into one DataFrame.

        Rows are limited as in :meth:`query` (the default limit warns when it cuts);
        ``output`` and ``cache_ttl`` as there.
        """
        work = read_work(
            self.registry, source_id, paths, format, limit, source_column, output, cache_ttl, reader_options
        )
        return value_warning_if_cut(self.registry, self.run(work), source_id, limit)

    def read_result(
        self,
        source_id: str,
        paths: str | Sequence[str],
        *,
        format: str | None = None,
        limit: RowLimit = "default",
        source_column: str | None = None,
        output: str = "pandas",
        cache_ttl: float | None = None,
        **reader_options: Any,
    ) -> Result:
        """:meth:`read`, with what the result says of itself (cut, cache age) in every format."""
        work = read_work(
            self.registry, source_id, paths, format, limit, source_column, output, cache_ttl, reader_options
        )
        return self.run(work)

    def write(
        self,
        source_id: str,
        target: str,
        frame: pd.DataFrame,
        *,
        mode: str = "create",
        overwrite: bool = False,
        index: bool = False,
        types: Mapping[str, str] | None = None,
        format: str | None = None,
    ) -> str:
        """Write ``frame`` to a table (``mode`` create, append, replace) or a file; all or nothing.

        An interrupt raises :class:`~deepanalyze_jupyter.writing.WriteInterrupted` (a
        ``KeyboardInterrupt``) saying that nothing was written, or, when it came during the
        final commit, that the write may or may not have been committed.
        """
        request = write_request(
            target, mode=mode, overwrite=overwrite, format=format, types=types, source=source_id
        )
        try:
            return self.run(self.registry.write(source_id, request, frame, index=index))
        except KeyboardInterrupt:
            pass
        # raised here, not in the except block: it holds neither the interrupt nor the work's frames
        raise WriteInterrupted(request.stage.interrupted(source_id, request.target))

    # -- saved sources (kept across kernel restarts) -----------------------------------

    def save(
        self,
        *source_ids: str,
        all_sources: bool = False,
        project: bool = False,
        references: Mapping[str, str] | None = None,
    ) -> Path:
        """Save sources' definitions (secrets only as references, e.g. ``{"password": "env:PGPASSWORD"}``)."""
        saved = self.saved()
        return saved.save(source_ids, all_sources=all_sources, project=project, references=references)[0]

    def load(self, path: str | Path | None = None) -> list[str]:
        """Register the saved sources (connecting nothing); one line per source or problem."""
        return self.saved().load(Path(path) if path is not None else None)

    def forget(self, source_id: str, *, project: bool = False) -> Path:
        """Remove a source from the sources file (the kernel keeps it)."""
        return self.saved().forget(source_id, project=project)

    def saved_sources(self) -> pd.DataFrame:
        """The saved sources: id, type, name, file, secrets (references), status."""
        return self.saved().frame()

    def saved(self) -> SavedSources:
        """The saved sources of this session's registry (the user and project files)."""
        return SavedSources(self.registry, self.run)

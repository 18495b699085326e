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

import weakref
from collections.abc import Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import pandas as pd

from .credentials import CredentialManager
from .models import DataSourceConfig, Secret
from .progress import ProgressFactory, null_progress
from .redaction import Redactor
from .registry import DEFAULT_ROW_LIMIT, DataSourceRegistry, RowLimit
from .runner import LoopRunner

__all__ = ["Session"]

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
        # Closes the session when it is collected or the interpreter exits, so that a
        # script (or a kernel) that never calls close() leaves no connection or task behind.
        self._finalizer = weakref.finalize(self, _shut_down, self.runner, self.registry)

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
        """Run a coroutine of the async core and return its result."""
        if self._closed:
            coro.close()
            raise RuntimeError("this session is closed")
        return self.runner.run_sync(coro, timeout=timeout)

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
        **options: Any,
    ) -> DataSourceConfig:
        """Register a source; ``secrets`` holds its secret fields (password, sas_token...)."""
        config = DataSourceConfig(
            id=source_id,
            type=type,
            name=name,
            options=options,
            secrets={
                key: value if isinstance(value, Secret) else Secret(value)
                for key, value in (secrets or {}).items()
            },
        )
        # The plain texts given (secrets, and a DSN that may hold a password) stay out of this
        # frame, which a verbose traceback or a debugger may show.
        secrets, options = None, {}
        return self.run(self.registry.register_data_source(config, test_connection=test))

    def update(
        self,
        source_id: str,
        *,
        name: str | None = None,
        secrets: Mapping[str, Secret | str] | None = None,
        test: bool = True,
        **options: Any,
    ) -> DataSourceConfig:
        """Change a source's options or secrets, keeping its id."""
        sealed = {
            key: value if isinstance(value, Secret) else Secret(value)
            for key, value in (secrets or {}).items()
        }
        update = self.registry.update_data_source(
            source_id, options=options, secrets=sealed, name=name, test_connection=test
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
        **options: Any,
    ) -> pd.DataFrame:
        """Run SQL with ``:name`` parameters bound from ``params``; return a DataFrame."""
        return self.run(
            self.registry.query(source_id, sql, params, limit=limit, timeout=timeout, options=options)
        )

    def read(
        self,
        source_id: str,
        paths: str | Sequence[str],
        *,
        format: str | None = None,
        limit: RowLimit = "default",
        source_column: str | None = None,
        **reader_options: Any,
    ) -> pd.DataFrame:
        """Read files (paths or globs) into one DataFrame."""
        return self.run(
            self.registry.read(
                source_id,
                paths,
                format=format,
                limit=limit,
                source_column=source_column,
                reader_options=reader_options,
            )
        )


def _shut_down(runner: LoopRunner, registry: DataSourceRegistry) -> None:
    """Disconnect every source and stop the loop (once; not from the loop's own thread)."""
    if not runner.is_running or runner.in_runner_thread():
        return
    try:
        runner.run_sync(registry.disconnect_all(), timeout=30)
    finally:
        runner.close()

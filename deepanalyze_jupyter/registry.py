"""The registry of data sources: configs, encrypted secrets and live connectors.

Everything that touches a source goes through :class:`DataSourceRegistry`: the magics,
the widget forms and scripts alike. It is async and lives on one event loop (the
session's runner). State changes never await between their check and their write, so
no registry-wide lock is needed; each source has its own lock for connecting, so a slow
source never delays another and concurrent callers share one connect.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal, NoReturn

import pandas as pd

from .cache import MetadataCache
from .connectors import BUILTIN_CONNECTORS, ENTRY_POINT_GROUP, Connector, SourceContext
from .credentials import CredentialManager, EncryptedSecrets
from .errors import (
    ConfigurationError,
    ConnectionFailed,
    CredentialError,
    DataSourceError,
    DataSourceExists,
    DataSourceNotFound,
    QueryError,
    UnknownSourceType,
)
from .models import DataSourceConfig, Secret, validate_source_id
from .progress import ProgressFactory, null_progress
from .redaction import MASK, MIN_REDACTED_LENGTH, Redactor, SecretNotMaskedWarning, mask_text

__all__ = ["DEFAULT_ROW_LIMIT", "DataSourceRegistry"]

logger = logging.getLogger(__name__)

#: The row limit applied when a caller does not give one.
DEFAULT_ROW_LIMIT = 100_000

RowLimit = int | None | Literal["default"]

#: Errors that say the source itself cannot be used (not the request): they set its status.
_SOURCE_FAILURES = (ConnectionFailed, CredentialError)


@dataclass
class _Source:
    """One registered source: its config (secrets stripped), tokens and connector."""

    config: DataSourceConfig
    secrets: EncryptedSecrets
    connector_class: type[Connector]
    connector: Connector | None = None
    #: Why the last operation could not reach the source (cleared by the next success).
    last_error: str | None = None
    #: When an operation (connect, query, read, listing, test) last succeeded.
    last_success: datetime | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class DataSourceRegistry:
    """Registers data sources and hands out connected connectors for them."""

    def __init__(
        self,
        credentials: CredentialManager | None = None,
        *,
        redactor: Redactor | None = None,
        cache_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        default_row_limit: int | None = DEFAULT_ROW_LIMIT,
        progress: ProgressFactory = null_progress,
        discover: bool = True,
    ) -> None:
        self.credentials = credentials or CredentialManager()
        self.redactor = redactor or Redactor()
        self.cache = MetadataCache(cache_ttl, clock=clock)
        self.default_row_limit = default_row_limit
        self.progress = progress
        self._types: dict[str, type[Connector] | str | EntryPoint] = dict(BUILTIN_CONNECTORS)
        self._sources: dict[str, _Source] = {}
        self._pending: set[str] = set()
        if discover:
            self.discover_connectors()

    def __repr__(self) -> str:
        return f"<DataSourceRegistry sources={sorted(self._sources)}>"

    # -- connector types -----------------------------------------------------------

    def register_connector_class(self, cls: type[Connector], *, replace: bool = False) -> None:
        """Make ``cls`` the connector for sources of type ``cls.type_name``."""
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise ConfigurationError(f"{cls!r} is not a Connector subclass")
        name = cls.type_name
        if name in self._types and not replace and self._types[name] is not cls:
            raise ConfigurationError(f"a connector for type {name!r} is already registered")
        self._types[name] = cls

    def discover_connectors(self) -> list[str]:
        """Add the connectors that installed packages declare as entry points."""
        found = []
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if entry.name not in self._types:
                self._types[entry.name] = entry
                found.append(entry.name)
        return found

    @property
    def source_types(self) -> list[str]:
        """The type names sources can be registered with."""
        return sorted(self._types)

    def connector_class(self, type_name: str, *, source: str | None = None) -> type[Connector]:
        """The connector class for ``type_name``, imported on first use.

        ``source`` names the source asking, for the error message when there is none.
        """
        target = self._types.get(type_name)
        if target is None:
            raise UnknownSourceType(
                f"unknown source type {type_name!r}; known types: {', '.join(self.source_types)}",
                source=source,
            )
        if isinstance(target, type):
            return target
        try:
            loaded = _load(target)
        except Exception as error:
            raise ConfigurationError(
                f"the connector for type {type_name!r} cannot be loaded: {type(error).__name__}: {error}",
                source=source,
            ) from error
        if not (isinstance(loaded, type) and issubclass(loaded, Connector)):
            raise ConfigurationError(
                f"the connector for type {type_name!r} is not a Connector subclass", source=source
            )
        self._types[type_name] = loaded
        return loaded

    # -- sources -------------------------------------------------------------------

    def exists(self, source_id: str) -> bool:
        """Whether a source with this id is registered."""
        return source_id in self._sources

    def __contains__(self, source_id: object) -> bool:
        return source_id in self._sources

    def __len__(self) -> int:
        return len(self._sources)

    @property
    def source_ids(self) -> list[str]:
        """The registered ids, in registration order."""
        return list(self._sources)

    async def register_data_source(
        self, config: DataSourceConfig, *, test_connection: bool = True
    ) -> DataSourceConfig:
        """Register ``config``; with ``test_connection`` it must connect first.

        Refused (nothing registered) on a duplicate id, an unknown type, invalid options
        or a failed test. Returns the sanitized config as stored.
        """
        with self._watched_if_refused(str(config.id), config.secrets):
            source_id = validate_source_id(config.id)
            if source_id in self._sources or source_id in self._pending:
                raise DataSourceExists("a data source with this id is already registered", source=source_id)
            source, secrets = self._new_source(config)
        # Known to the redactor before the test, so that an error it raises is masked too.
        self._watch(source.config, secrets)
        self._pending.add(source_id)
        try:
            if test_connection:
                source.connector = await self._open(source)
        except BaseException:
            self._keep_watching(source_id, secrets)
            raise
        finally:
            self._pending.discard(source_id)
        self._sources[source_id] = source
        logger.info("registered data source %r of type %s", source_id, config.type)
        return self.get_config(source_id)

    async def check_data_source(self, config: DataSourceConfig) -> str:
        """Connect with ``config`` and make a round trip, without registering anything.

        Returns the line describing what answered; raises like a failed registration.
        """
        with self._watched_if_refused(str(config.id), config.secrets):
            source, secrets = self._new_source(config)
        self._watch(source.config, secrets)
        try:
            connector = await self._open(source)
            try:
                async with self._guard(source.config.id, ConnectionFailed):
                    return await connector.test_connection()
            finally:
                await self._close_connector(connector)
        except BaseException:
            self._keep_watching(source.config.id, secrets)
            raise

    def _watch(self, config: DataSourceConfig, secrets: Mapping[str, Secret]) -> None:
        """Mask ``secrets`` in outputs from now on; warn about any that masking would give away."""
        unmasked = self.redactor.watch(
            {name: secret.reveal() for name, secret in secrets.items()}, ordinary=_ordinary_texts(config)
        )
        if unmasked:
            fields = ", ".join(sorted(unmasked))
            warnings.warn(
                SecretNotMaskedWarning(
                    f"{config.id}: {fields} cannot be masked in outputs: it is shorter than "
                    f"{MIN_REDACTED_LENGTH} characters, a common word or text of another option, and "
                    "masking it would tell it; outputs show it as it is. Use a longer, unique secret."
                ),
                stacklevel=2,
            )

    def _new_source(self, config: DataSourceConfig) -> tuple[_Source, dict[str, Secret]]:
        """Validate ``config`` into an unregistered source, and return its secrets too."""
        source_id = validate_source_id(config.id)
        connector_class = self.connector_class(config.type, source=source_id)
        options, secrets = connector_class.prepare(source_id, config.options, config.secrets)
        stored = replace(config, options=options, secrets={})
        return _Source(stored, self.credentials.seal(secrets, source=source_id), connector_class), secrets

    async def unregister_data_source(self, source_id: str) -> None:
        """Disconnect and forget a source, its secrets and its cached metadata."""
        source = self._source(source_id)
        del self._sources[source_id]
        self.cache.clear(source_id)
        await self._close(source)  # its secrets stay masked, also in an error closing shows
        logger.info("unregistered data source %r", source_id)

    async def update_data_source(
        self,
        source_id: str,
        *,
        options: Mapping[str, Any] | None = None,
        secrets: Mapping[str, Secret | str] | None = None,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        test_connection: bool = True,
    ) -> DataSourceConfig:
        """Change options, rotate secrets or rename a source, keeping its id.

        ``options`` and ``secrets`` are merged into what the source had; a value of
        ``None`` (option) or ``""`` (secret) removes the field. The change is tested
        like a new registration and, if refused, the source stays as it was.
        """
        current = self._source(source_id)
        merged_options = {**current.config.options, **(options or {})}
        new_secrets = {
            key: value if isinstance(value, Secret) else Secret(value)
            for key, value in (secrets or {}).items()
        }
        secrets = None  # the plain texts given stay out of this frame, which an error may show
        removed = {key for key, value in new_secrets.items() if not value}
        kept_tokens = {key: token for key, token in current.secrets.tokens.items() if key not in new_secrets}
        with self._watched_if_refused(source_id, new_secrets):
            clean_options, clean_secrets = current.connector_class.prepare(
                source_id,
                {key: value for key, value in merged_options.items() if value is not None},
                {key: value for key, value in new_secrets.items() if value},
                present_secrets=frozenset(kept_tokens),
            )
        # A DSN given may hold a password (now in clean_secrets): out of this frame, which an
        # error may show.
        options = None
        del merged_options
        tokens = {
            **kept_tokens,
            **{key: self.credentials.encrypt(value) for key, value in clean_secrets.items()},
        }
        for key in removed:
            tokens.pop(key, None)
        config = replace(
            current.config,
            options=clean_options,
            name=current.config.name if name is None else name,
            metadata=current.config.metadata if metadata is None else metadata,
        )
        updated = _Source(
            config, EncryptedSecrets(self.credentials, source_id, tokens), current.connector_class
        )
        self._watch(config, clean_secrets)
        try:
            if test_connection:
                updated.connector = await self._open(updated)
        except BaseException:
            self._keep_watching(source_id, clean_secrets)
            raise
        if self._sources.get(source_id) is not current:
            await self._close(updated)
            raise DataSourceNotFound("the source was removed while it was being updated", source=source_id)
        self._sources[source_id] = updated
        self.cache.clear(source_id)
        await self._close(current)
        logger.info("updated data source %r", source_id)
        return self.get_config(source_id)

    def get_config(self, source_id: str, *, decrypt: bool = False) -> DataSourceConfig:
        """The config of a source: secrets masked, unless ``decrypt`` is asked explicitly."""
        source = self._source(source_id)
        if decrypt:
            return replace(source.config, secrets=source.secrets.secrets())
        return replace(source.config, secrets={name: Secret(MASK) for name in sorted(source.secrets.names)})

    def list_data_sources(self) -> list[DataSourceConfig]:
        """The sanitized configs of every registered source."""
        return [self.get_config(source_id) for source_id in self._sources]

    def status(self, source_id: str) -> str:
        """``connected``, ``not connected`` or ``error: <reason>``, as of the last operation.

        No round trip is made: a server that went down since the last operation shows
        as ``connected`` until the next operation fails (``test`` makes one now).
        """
        source = self._source(source_id)
        if source.last_error:
            return f"error: {source.last_error}"
        return "connected" if source.connector is not None else "not connected"

    def last_success(self, source_id: str) -> datetime | None:
        """When an operation on the source last succeeded (``None``: never)."""
        return self._source(source_id).last_success

    def sources_frame(self) -> pd.DataFrame:
        """One row per source: id, type, name, status, last_success, created (never a secret)."""
        columns = ["id", "type", "name", "status", "last_success", "created"]
        rows = [
            {
                "id": source_id,
                "type": source.config.type,
                "name": source.config.display_name,
                "status": self.status(source_id),
                "last_success": source.last_success,
                "created": source.config.created_at,
            }
            for source_id, source in self._sources.items()
        ]
        frame = pd.DataFrame(rows, columns=columns)
        for column in ("last_success", "created"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame.astype({"id": "string", "type": "string", "name": "string", "status": "string"})

    # -- connections ---------------------------------------------------------------

    async def get_connector(self, source_id: str) -> Connector:
        """A connected connector for the source: made on first use, reused while alive,
        and replaced when its connection died. Concurrent callers share one connect."""
        source = self._source(source_id)
        connector = source.connector
        if connector is not None and await _is_alive(connector):
            return connector
        async with source.lock:
            connector = source.connector
            if connector is not None:
                if await _is_alive(connector):
                    return connector
                logger.info("connection of %r was lost; reconnecting", source_id)
                source.connector = None
                await self._close_connector(connector)
            connector = await self._open(source)
            if self._sources.get(source_id) is not source:  # removed or replaced meanwhile
                await self._close_connector(connector)
                raise DataSourceNotFound("the source was removed while it was connecting", source=source_id)
            source.connector = connector
            return connector

    async def test_connection(self, source_id: str) -> str:
        """Make a real round trip to the source; return a line describing what answered."""
        async with self._operation(source_id, ConnectionFailed):
            connector = await self.get_connector(source_id)
            return await connector.test_connection()

    async def disconnect(self, source_id: str) -> None:
        """Close the source's connection; the next use connects again."""
        await self._close(self._source(source_id))

    async def disconnect_all(self) -> None:
        """Close every source's connection (at unload and kernel shutdown)."""
        await asyncio.gather(*(self._close(source) for source in list(self._sources.values())))

    # -- metadata cache ------------------------------------------------------------

    def cache_metadata(self, source_id: str, key: Hashable, value: Any) -> None:
        """Keep ``value`` for the source under ``key`` for the cache's TTL."""
        self._source(source_id)
        self.cache.put(source_id, key, value)

    def get_cached_metadata(self, source_id: str, key: Hashable) -> Any | None:
        """The cached value for the source under ``key``, or ``None`` once expired."""
        return self.cache.get(source_id, key)

    def clear_cache(self, source_id: str | None = None) -> int:
        """Forget cached metadata of one source (or all); return how much was dropped."""
        if source_id is not None:
            self._source(source_id)
        return self.cache.clear(source_id)

    # -- operations ------------------------------------------------------------------

    async def list_items(
        self,
        source_id: str,
        prefix: str | None = None,
        *,
        recursive: bool = False,
        limit: int | None = None,
        refresh: bool = False,
    ) -> pd.DataFrame:
        """List the source's items under ``prefix`` (cached for the TTL)."""
        key = ("list_items", prefix, recursive, limit)
        cached = None if refresh else self.cache.get(source_id, key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        async with self._operation(source_id, QueryError):
            connector = await self.get_connector(source_id)
            frame = await connector.list_items(prefix, recursive=recursive, limit=limit)
        self.cache.put(source_id, key, frame)
        return frame

    async def describe(self, source_id: str, item: str, *, refresh: bool = False) -> pd.DataFrame:
        """Describe one item of the source: a table's columns, a file's properties."""
        key = ("describe", item)
        cached = None if refresh else self.cache.get(source_id, key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        async with self._operation(source_id, QueryError):
            connector = await self.get_connector(source_id)
            frame = await connector.describe(item)
        self.cache.put(source_id, key, frame)
        return frame

    async def query(
        self,
        source_id: str,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: RowLimit = "default",
        timeout: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Run a query on an SQL source and return a DataFrame of at most ``limit`` rows.

        ``options`` are the connector's own per-query settings (PostgreSQL: ``numeric_as_float``).
        """
        async with self._operation(source_id, QueryError):
            connector = await self.get_connector(source_id)
            return await connector.query(
                sql, params, limit=self._row_limit(limit), timeout=timeout, **dict(options or {})
            )

    async def read(
        self,
        source_id: str,
        paths: str | Sequence[str],
        *,
        format: str | None = None,
        limit: RowLimit = "default",
        source_column: str | None = None,
        reader_options: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Read files (paths or globs) of a file source into one DataFrame."""
        path_list = [paths] if isinstance(paths, str) else list(paths)
        async with self._operation(source_id, QueryError):
            connector = await self.get_connector(source_id)
            return await connector.read(
                path_list,
                format=format,
                limit=self._row_limit(limit),
                source_column=source_column,
                reader_options=reader_options,
            )

    # -- internals -----------------------------------------------------------------

    def _source(self, source_id: str) -> _Source:
        try:
            return self._sources[source_id]
        except KeyError:
            known = ", ".join(self._sources) or "none registered"
            raise DataSourceNotFound(
                f"no such data source (known: {known})", source=str(source_id)[:80]
            ) from None

    def _row_limit(self, limit: RowLimit) -> int | None:
        return self.default_row_limit if limit == "default" else limit

    def _context(self, source: _Source) -> SourceContext:
        return SourceContext(source.config.id, source.config.options, source.secrets, self.progress)

    async def _open(self, source: _Source) -> Connector:
        """Make and connect a connector for ``source``; record the outcome.

        A failed connect's frames held decrypted secrets (a connection string, a key): their
        locals are cleared, so that no traceback or debugger shows them later.
        """
        source_id = source.config.id
        connector = source.connector_class(self._context(source))
        try:
            async with self._guard(source_id, ConnectionFailed):
                await connector.connect()
        except BaseException as error:
            _clear_finished_frames(error)
            if isinstance(error, DataSourceError):
                source.last_error = error.message
            with suppress(Exception):
                await connector.disconnect()
            raise
        source.last_error, source.last_success = None, datetime.now(timezone.utc)
        logger.debug("connected data source %r", source_id)
        return connector

    async def _close(self, source: _Source) -> None:
        connector, source.connector = source.connector, None
        if connector is not None:
            await self._close_connector(connector)

    async def _close_connector(self, connector: Connector) -> None:
        try:
            await connector.disconnect()
        except Exception as error:
            logger.warning("closing %r failed: %s", connector.source_id, self._clean(str(error)))

    def _clean(self, text: str) -> str:
        return self.redactor.redact(mask_text(text))

    @contextmanager
    def _watched_if_refused(self, source_id: str, secrets: Mapping[str, Secret]) -> Iterator[None]:
        """Keep watching ``secrets`` if the block raises (see :meth:`_keep_watching`)."""
        try:
            yield
        except BaseException:
            self._keep_watching(source_id, secrets)
            raise

    def _keep_watching(self, source_id: str, secrets: Mapping[str, Secret]) -> None:
        """Mask the secrets of a refused add, update or check for the kernel's lifetime: the
        error that refused them may be shown again at any time (``%debug``, ``%tb``), with
        them in its frames."""
        self.redactor.add(f"{source_id} (refused)", (secret.reveal() for secret in secrets.values()))

    @asynccontextmanager
    async def _operation(self, source_id: str, wrap_as: type[DataSourceError]) -> AsyncIterator[None]:
        """:meth:`_guard` an operation on a source, and record its outcome as the source's status."""
        source = self._sources.get(source_id)
        try:
            async with self._guard(source_id, wrap_as):
                yield
        except _SOURCE_FAILURES as error:
            if source is not None:
                source.last_error = self._clean(error.message)
            raise
        if source is not None:
            source.last_error, source.last_success = None, datetime.now(timezone.utc)

    @asynccontextmanager
    async def _guard(self, source_id: str, wrap_as: type[DataSourceError]) -> AsyncIterator[None]:
        """Keep secrets out of errors, and wrap unexpected library errors as ``wrap_as``."""
        try:
            yield
        except DataSourceError as error:
            cleaned = self._clean(error.message)
            if cleaned == error.message and not self._holds_secret(error):
                raise
            _raise_detached(type(error)(cleaned, source=error.source))
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except Exception as error:
            text = f"{type(error).__name__}: {error}".strip().splitlines()[0]
            message = self._clean(text)
            if self._holds_secret(error):  # the library's own text held a secret: do not chain it
                _raise_detached(wrap_as(message, source=source_id))
            raise wrap_as(message, source=source_id) from error

    def _holds_secret(self, error: BaseException) -> bool:
        """Whether ``error`` or an error chained to it shows a secret in its str or repr."""
        pending, seen = [error], set()
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            try:
                texts = (str(current), repr(current))
            except Exception:
                return True  # cannot be checked, so cannot be shown
            if any(self._clean(text) != text for text in texts):
                return True
            pending.extend(chained for chained in (current.__cause__, current.__context__) if chained)
        return False


async def _is_alive(connector: Connector) -> bool:
    """Whether the connector's connection can be used; a failing check means it cannot."""
    try:
        return await connector.is_alive()
    except Exception:
        logger.debug("liveness check of %r failed", connector.source_id)
        return False


def _clear_finished_frames(error: BaseException) -> None:
    """Clear the locals of the finished frames of ``error``'s traceback and of the errors
    chained to it (the frames still running, the caller's among them, are left alone)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        pending.extend(chained for chained in (current.__cause__, current.__context__) if chained)


def _raise_detached(error: DataSourceError) -> NoReturn:
    """Raise ``error`` with neither cause nor context: the error it replaces shows a secret."""
    try:
        raise error from None
    except DataSourceError as raised:
        raised.__context__ = None  # Python set it to the error being handled
        raise


def _load(target: str | EntryPoint) -> Any:
    if isinstance(target, EntryPoint):
        return target.load()
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _ordinary_texts(config: DataSourceConfig) -> list[str]:
    """The texts of a source that are not secret: its id, name, type and option values."""
    texts = [config.id, config.name, config.type]
    pending: list[Any] = list(config.options.values())
    while pending:
        value = pending.pop()
        if isinstance(value, Mapping):
            pending += [*value.keys(), *value.values()]
        elif isinstance(value, (list, tuple, set, frozenset)):
            pending += list(value)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            texts.append(str(value))
    return texts

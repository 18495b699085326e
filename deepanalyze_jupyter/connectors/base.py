"""The interface every connector implements, and what it is given to work with.

A connector is made by the registry for one registered source, with a
:class:`SourceContext`: the source's id, its validated options and its secrets, still
encrypted. It decrypts a secret only inside :meth:`Connector.connect`. Every method is
async and must not block the event loop: blocking libraries run in a worker thread.

Cancelling the task that awaits a connector method (the kernel's interrupt does) must
stop the work on the service too, and leave the connector usable.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import pandas as pd
import pyarrow as pa

from ..credentials import EncryptedSecrets
from ..errors import ConfigurationError, unknown_name
from ..models import OptionSpec, Secret
from ..progress import ProgressFactory, null_progress
from ..writing import WriteRequest

__all__ = ["Connector", "DirectFile", "SourceContext", "SourceKind", "absolute_path"]

#: ``"sql"`` sources answer queries; ``"files"`` sources hold files read by path.
SourceKind = Literal["sql", "files"]


def absolute_path(value: object, *, source: str, naming: str) -> str:
    """``value`` as an absolute path (``~`` expanded), so a later change of directory keeps it valid.

    An empty value is refused: option 'path' must name ``naming``.
    """
    path = str(value).strip()
    if not path:
        raise ConfigurationError(f"option 'path' must name {naming}", source=source)
    return os.path.abspath(os.path.expanduser(path))


class DirectFile(Protocol):
    """A source's file opened for reading in the caller's own thread (:meth:`Connector.open_direct`)."""

    def read_range(self, start: int, end: int | None) -> bytes:
        """Bytes ``start`` to ``end`` (``None``: its end); fewer at its end."""

    def close(self) -> None:
        """Close the file."""


@dataclass(frozen=True)
class SourceContext:
    """What a connector knows of its source."""

    id: str
    options: Mapping[str, Any]
    secrets: EncryptedSecrets
    progress: ProgressFactory = field(default=null_progress)


class Connector(ABC):
    """Base class of the connectors; subclasses set the class attributes and methods."""

    #: The type name users give (``--type postgresql``).
    type_name: ClassVar[str]
    #: A name for people (``PostgreSQL``).
    display_name: ClassVar[str]
    #: Whether the source takes SQL queries or file paths.
    kind: ClassVar[SourceKind]
    #: The options (and secret fields) the connector accepts.
    option_specs: ClassVar[tuple[OptionSpec, ...]] = ()
    #: Result formats other than pandas that :meth:`query` (or :meth:`read`) builds itself
    #: (``output="arrow"`` returns a ``pyarrow.Table``), skipping a pandas frame; the others are
    #: converted from one.
    native_outputs: ClassVar[frozenset[str]] = frozenset()
    #: Whether :meth:`write` takes an object column of lists and dicts as JSON text
    #: (``pa.json_()``, each value's own JSON) rather than as Arrow lists and structs.
    json_values: ClassVar[bool] = False
    #: Whether a statement sent to :meth:`query` can write when the source allows writes
    #: (``read_only=False``): then it forgets what was cached of the source once it has run.
    statements_write: ClassVar[bool] = False

    def __init__(self, context: SourceContext) -> None:
        self.context = context

    @property
    def source_id(self) -> str:
        """The id of the source this connector serves."""
        return self.context.id

    @property
    def options(self) -> Mapping[str, Any]:
        """The source's validated, non-secret options."""
        return self.context.options

    def __repr__(self) -> str:
        return f"<{type(self).__name__} for {self.source_id!r}>"

    # -- configuration -------------------------------------------------------------

    @classmethod
    def spec(cls, name: str) -> OptionSpec | None:
        """The spec of option ``name``, or ``None``."""
        return next((spec for spec in cls.option_specs if spec.name == name), None)

    @classmethod
    def prepare(
        cls,
        source: str,
        options: Mapping[str, Any],
        secrets: Mapping[str, Secret],
        *,
        present_secrets: frozenset[str] = frozenset(),
    ) -> tuple[dict[str, Any], dict[str, Secret]]:
        """Validate and normalise a source's options and secrets before they are stored.

        The default checks names against :attr:`option_specs`, converts values to their
        kinds, fills defaults, moves values of secret options into the secrets, and
        checks required options (``present_secrets`` names secrets already stored, on an
        update). Subclasses extend it (e.g. to pull a password out of a DSN); it raises
        :class:`ConfigurationError` naming the source and the problem.
        """
        known = {spec.name: spec for spec in cls.option_specs}
        clean_options: dict[str, Any] = {}
        clean_secrets: dict[str, Secret] = {}
        for name, value in options.items():
            spec = known.get(name)
            if spec is None:
                raise ConfigurationError(
                    f"{unknown_name('option', name)} for a {cls.type_name} source; "
                    f"known options: {', '.join(sorted(known)) or 'none'}",
                    source=source,
                )
            if value is None:
                continue
            if spec.secret:
                clean_secrets[name] = value if isinstance(value, Secret) else Secret(str(value))
            else:
                clean_options[name] = spec.coerce(value, source=source)
        for name, secret in secrets.items():
            spec = known.get(name)
            if spec is None or not spec.secret:
                raise ConfigurationError(
                    f"{name!r} is not a secret field of a {cls.type_name} source", source=source
                )
            clean_secrets[name] = secret
        for spec in cls.option_specs:
            if not spec.secret and spec.name not in clean_options and spec.default is not None:
                clean_options[spec.name] = spec.default
        for spec in cls.option_specs:
            held = (clean_secrets.keys() | present_secrets) if spec.secret else clean_options.keys()
            present = spec.name in held
            if spec.required and not present and spec.applies(clean_options):
                raise ConfigurationError(f"missing required option {spec.name!r}", source=source)
        return clean_options, clean_secrets

    # -- lifecycle -----------------------------------------------------------------

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection (or check access); the only place secrets are decrypted."""

    @abstractmethod
    async def disconnect(self) -> None:
        """Close the connection and release everything held. Safe to call twice."""

    async def is_alive(self) -> bool:
        """Tell, cheaply, whether the connection can still be used."""
        return True

    @abstractmethod
    async def test_connection(self) -> str:
        """Make a real round trip and return a one-line description of what answered."""

    # -- browsing ------------------------------------------------------------------

    @abstractmethod
    async def list_items(
        self, prefix: str | None = None, *, recursive: bool = False, limit: int | None = None
    ) -> pd.DataFrame:
        """List what the source holds under ``prefix`` (schemas/tables, folders/files).

        ``prefix`` may be a shell-style glob for file sources. The frame's
        ``attrs["truncated"]`` says whether ``limit`` cut the listing.
        """

    async def describe(self, item: str) -> pd.DataFrame:
        """Describe one item: a table's columns, or a file's properties."""
        raise ConfigurationError(f"{self.display_name} sources cannot describe items", source=self.source_id)

    # -- data ----------------------------------------------------------------------

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> pd.DataFrame:
        """Run ``sql`` with named ``:param`` values bound, and return at most ``limit`` rows.

        ``options`` are the connector's own per-query settings (PostgreSQL:
        ``numeric_as_float``); a connector refuses those it does not know with
        :meth:`refuse_query_options`.
        """
        raise ConfigurationError(
            f"{self.display_name} sources take file paths, not SQL queries", source=self.source_id
        )

    def refuse_query_options(self, options: Mapping[str, Any]) -> None:
        """Raise :class:`ConfigurationError` naming query options this connector does not take."""
        if options:
            raise ConfigurationError(
                f"{self.display_name} queries take no option {', '.join(sorted(options))}",
                source=self.source_id,
            )

    async def read_range(self, path: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        """The bytes ``start`` to ``end`` (exclusive) of the file at ``path``; fewer at its end.

        What the filesystem over sources (:mod:`deepanalyze_jupyter.filesystem`) reads
        with: a Parquet footer or the columns a query needs, never the whole file. ``etag``,
        the file's version its listing gave, is checked by a source whose files have one: a
        file replaced since is refused rather than read as pieces of two versions.
        """
        raise ConfigurationError(f"{self.display_name} sources do not hold files", source=self.source_id)

    def open_direct(self, path: str) -> DirectFile | None:
        """The file at ``path`` opened for reading in the caller's own thread, or ``None``
        when its bytes come only through :meth:`read_range` (from the source's loop).

        A file on this machine is read so by the filesystem over sources: each read of a
        Parquet column chunk is then one ``pread`` where a trip to the loop and back costs
        a few milliseconds while other threads hold the GIL.
        """
        return None

    async def read_whole(self, path: str, size: int) -> bytes | memoryview:
        """All of the file at ``path``, whose listing gave ``size`` (a batch of small files reads so).

        One ranged read unless the connector has a faster way to download a whole file; a
        byte beyond ``size`` is asked for too, so that a file grown since its listing shows it.
        """
        return await self.read_range(path, 0, size + 1)

    async def read(
        self,
        paths: Sequence[str],
        *,
        format: str | None = None,
        limit: int | None = None,
        source_column: str | None = None,
        reader_options: Mapping[str, Any] | None = None,
        output: str = "pandas",
    ) -> pd.DataFrame | pa.Table:
        """Read the files at ``paths`` (globs allowed) into one DataFrame.

        ``output`` may name one of :attr:`native_outputs` (an Arrow table comes back) and is
        otherwise ``"pandas"``.
        """
        raise ConfigurationError(f"{self.display_name} sources do not hold files", source=self.source_id)

    async def write(self, request: WriteRequest, table: pa.Table) -> str:
        """Write ``table`` (checked already) as ``request`` says, all or nothing; return what was done."""
        raise ConfigurationError(f"{self.display_name} sources cannot be written to", source=self.source_id)

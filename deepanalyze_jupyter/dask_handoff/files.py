"""Files of a local-folder or Azure Blob source handed to Dask as a lazy DataFrame, one task per file.

The kernel lists the files with the source's own listing and globs (as ``Session.read``
would read them, in the same order) and reads the first one for the columns and dtypes.
Each task names one file and how to open its source, never a long-lived secret:

- a local folder: its path (the workers must see the same filesystem, a shared disk);
- Azure Blob with an account key or a connection string: the account URL and a SAS the
  kernel mints for the file's container, read and list only, valid for ``sas_expiry``;
- a SAS token given by the user: that token, as given (it is scoped already);
- Microsoft Entra ID (default credential or service principal): nothing; each worker
  signs in with its own ``DefaultAzureCredential``;
- anonymous access: nothing.

A worker reads its file with a private :class:`~deepanalyze_jupyter.Session`, by the code
of ``Session.read``, so values and dtypes are those of the kernel's read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from ..connectors.files.globs import glob_escape
from ..errors import AuthenticationFailed, ConfigurationError, DataSourceError, FormatError, ItemNotFound
from .collection import WORKER_SOURCE, for_source, from_parts, nullable

if TYPE_CHECKING:
    from ..connectors.azure_blob.sas import WorkerCredential
    from ..registry import DataSourceRegistry

__all__ = ["FilePart", "SourceAccess", "files_to_dask", "read_file_part"]


@dataclass(frozen=True)
class SourceAccess:
    """How a worker opens a file source: type, options, the secret that may travel (a SAS)."""

    source_type: str
    options: Mapping[str, Any]
    #: The error a worker gets when the source refuses it (or is not there), and its one line.
    refusal: type[DataSourceError]
    refused: str
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)


class FilePart:
    """One task's work: the file to read, how to open its source, and the frame it must give."""

    def __init__(
        self,
        session_class: type,
        source: str,
        access: SourceAccess,
        path: str,
        read_options: Mapping[str, Any],
        meta: pd.DataFrame,
    ) -> None:
        #: The kernel's Session class (pickled by name): the worker reads with one of its own.
        self.session_class = session_class
        self.source = source
        self.access = access
        self.path = path
        #: ``format`` and the reader options, as ``Session.read`` takes them.
        self.read_options = dict(read_options)
        self.meta = meta

    def __repr__(self) -> str:
        return f"<FilePart {self.path!r} of {self.source!r}>"


def read_file_part(part: FilePart) -> pd.DataFrame:
    """(On a worker.) Read one file with a session of this process, as the kernel would."""
    with part.session_class() as session:
        access = part.access
        # a folder or a worker's own identity is checked when added (what the worker lacks is
        # its own problem); a SAS is not: the read's first request tells as much as a test would
        checked = access.source_type == "local" or not access.secrets
        try:
            secrets = dict(access.secrets)
            session.add(WORKER_SOURCE, access.source_type, secrets=secrets, test=checked, **access.options)
            frame: pd.DataFrame = session.read(
                WORKER_SOURCE, [glob_escape(part.path)], limit=None, **part.read_options
            )
        except access.refusal as refusal:
            if checked and session.registry.exists(WORKER_SOURCE):
                raise for_source(refusal, part.source) from None  # the source answered: not what it lacks
            raise access.refusal(access.refused, source=part.source) from None
        except DataSourceError as error:
            raise for_source(error, part.source) from None
    frame = _like_first_file(nullable(frame), part)
    frame.attrs.clear()
    return frame


def _like_first_file(frame: pd.DataFrame, part: FilePart) -> pd.DataFrame:
    """``frame`` in the first file's dtypes (Dask's ``meta``), or one line saying how it differs.

    Integers where the first file has floats become floats, and a column with no value (a
    header-only CSV's, a JSON key always null) takes the first file's dtype, as the kernel's
    read of all the files does. Where the first file's column is untyped (``object``: no value
    there, or values of mixed types), a file's values of any type are taken as objects. Any
    other difference is refused.
    """
    meta = part.meta
    if frame.empty and not len(frame.columns):
        return meta.copy()  # an empty file: no rows, as the kernel's read of all the files has from it
    if list(frame.columns) != list(meta.columns) and _same_names(frame.columns, meta.columns):
        frame = frame[list(meta.columns)]  # the kernel's read lines the columns up by name too
    if list(frame.columns) != list(meta.columns):
        detail = _column_difference(list(frame.columns), list(meta.columns))
    else:
        for position, (got, wanted) in enumerate(zip(frame.dtypes, meta.dtypes, strict=True)):
            column = frame.iloc[:, position]
            if got != wanted and (
                (pd.api.types.is_integer_dtype(got) and pd.api.types.is_float_dtype(wanted))
                or _no_value(column)
                or pd.api.types.is_object_dtype(wanted)
            ):
                frame = frame.copy(deep=False)
                # A Series: pandas reads an array of objects holding text as text again.
                frame.isetitem(position, cast(Any, column.astype(wanted)))
        pairs = enumerate(zip(frame.dtypes, meta.dtypes, strict=True))
        differing = next((index for index, (got, wanted) in pairs if got != wanted), None)
        if differing is None:
            return frame
        detail = (
            f"column {meta.columns[differing]!r} is {frame.dtypes.iloc[differing]} there, "
            f"{meta.dtypes.iloc[differing]} in the first file"
        )
    raise FormatError(
        f"{part.path!r} does not match the first file ({detail}); give dtype={{...}} or read the files apart",
        source=part.source,
    )


def _no_value(column: pd.Series) -> bool:
    """Whether ``column`` holds no value at all (no rows, or only missing ones) in an untyped dtype."""
    return column.dtype == object and bool(column.isna().all())


def _column_difference(columns: Sequence[Any], first: Sequence[Any]) -> str:
    """How a file's columns differ from the first file's, in a few names however wide they are."""
    missing = [name for name in first if name not in set(columns)]
    extra = [name for name in columns if name not in set(first)]
    parts = [f"no {_names(missing)}"] if missing else []
    if extra:
        parts.append(f"{_names(extra)} the first file does not have")
    return "; ".join(parts) or "columns of the same names, some twice"


def _same_names(columns: pd.Index, first: pd.Index) -> bool:
    return columns.is_unique and first.is_unique and set(columns) == set(first)


def _names(names: Sequence[Any], shown: int = 5) -> str:
    """``column 'a'``, ``columns 'a', 'b'``, ``columns 'a', ... and 7 more``."""
    text = ", ".join(repr(name) for name in names[:shown])
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"column{'s' if len(names) > 1 else ''} {text}{more}"


def files_to_dask(
    session: Any,
    source_id: str,
    paths: str | Sequence[str],
    *,
    sas_expiry: timedelta,
    read_options: Mapping[str, Any],
) -> Any:
    """A lazy ``dask.dataframe`` of the files ``paths`` (paths, folders or globs), one task per file."""
    if sas_expiry <= timedelta(0):
        raise ConfigurationError(f"sas_expiry must be positive, got {sas_expiry}", source=source_id)
    _refuse_whole_read_options(read_options, source_id)
    path_list = [paths] if isinstance(paths, str) else list(paths)
    files = session.run(
        _files_and_access(session.registry, source_id, path_list, read_options.get("format"), sas_expiry)
    )
    meta = nullable(_first_columns(session, source_id, [path for path, _, _ in files], read_options).iloc[:0])
    meta.attrs.clear()
    work = [FilePart(type(session), source_id, access, path, read_options, meta) for _, path, access in files]
    return from_parts(read_file_part, work, meta)


#: ``Session.read`` options that do not apply to a Dask read, and what to do instead.
_NOT_FOR_DASK = {
    "limit": "it reads every row of every file (ddf.head(n) gives the first rows)",
    "output": "it gives a Dask DataFrame of pandas partitions",
    "cache_ttl": "its tasks read the files when computed",
}


def _refuse_whole_read_options(read_options: Mapping[str, Any], source_id: str) -> None:
    """One line for an option of ``Session.read`` that a read one task per file cannot take."""
    for name, reason in _NOT_FOR_DASK.items():
        if name in read_options:
            raise ConfigurationError(f"to_dask takes no {name}=: {reason}", source=source_id)


def _first_columns(
    session: Any, source_id: str, paths: Sequence[str], read_options: Mapping[str, Any]
) -> pd.DataFrame:
    """The first of the files that has rows, else the first that has columns, read in the kernel.

    A file of columns but no rows (a CSV header) tells no types: it sets the columns' order only.
    """
    first: pd.DataFrame | None = None
    for path in paths:
        frame: pd.DataFrame = session.read(source_id, [glob_escape(path)], limit=None, **read_options)
        if not len(frame.columns):
            continue
        first = frame if first is None else first
        if len(frame):
            break
    if first is None:
        return frame
    if list(frame.columns) != list(first.columns) and _same_names(frame.columns, first.columns):
        frame = frame[list(first.columns)]
    return frame if len(frame) else first


async def _files_and_access(
    registry: DataSourceRegistry,
    source_id: str,
    paths: Sequence[str],
    format: str | None,
    sas_expiry: timedelta,
) -> list[tuple[str, str, SourceAccess]]:
    """The files to read: each one's path in the kernel's source, in the worker's, and the worker's access."""
    config = registry.get_config(source_id)
    connector: Any = await registry.get_connector(source_id)  # a local or blob connector
    if config.type == "local":
        folder = str(config.options["path"])
        access = SourceAccess(
            "local",
            {"path": folder, "read_only": True},
            ItemNotFound,
            f"folder {folder} is not on this worker: Dask workers read a local-folder source at the "
            "kernel's path, so they must see the same filesystem (a shared disk)",
        )
        return [(name, name, access) for name, _ in await connector.files_to_read(paths)]
    targets = await connector.blob_targets(paths, format)
    accesses = {
        container: _blob_access(config.options, connector.worker_credential(container, sas_expiry), container)
        for container in sorted({target.container for target in targets})
    }
    return [(target.shown, target.name, accesses[target.container]) for target in targets]


def _blob_access(options: Mapping[str, Any], credential: WorkerCredential, container: str) -> SourceAccess:
    """The worker's definition of one container of a blob source (its tuning options kept)."""
    worker_options = {
        **options,
        "auth": credential.auth,
        "account_url": credential.account_url,
        "container": container,
        "show_progress": False,
        "read_only": True,
    }
    if credential.expires is not None:
        refused = (
            f"the SAS the kernel made for container {container!r} (valid until "
            f"{credential.expires:%Y-%m-%d %H:%M:%S} UTC) was refused, most likely because it expired: "
            "call to_dask again (sas_expiry= sets its lifetime)"
        )
    elif credential.auth == "entra_id":
        refused = (
            f"this worker cannot sign in to container {container!r} with Microsoft Entra ID: give it an "
            "identity DefaultAzureCredential finds (AZURE_TENANT_ID, AZURE_CLIENT_ID and "
            "AZURE_CLIENT_SECRET, a managed identity, or az login)"
        )
    else:
        refused = f"container {container!r} refused this worker's {credential.auth.replace('_', ' ')}"
    secrets = {"sas_token": credential.sas_token} if credential.sas_token else {}
    return SourceAccess("azure_blob", worker_options, AuthenticationFailed, refused, secrets)

"""Sources files: the TOML that keeps source definitions across kernel restarts.

::

    [sources.warehouse]
    type = "postgresql"
    name = "Sales warehouse"

    [sources.warehouse.options]
    host = "db.internal"
    dbname = "sales"
    user = "analyst"

    [sources.warehouse.secrets]
    password = "env:PGPASSWORD"      # or "prompt", "keyring:SERVICE/USERNAME", "none"

A secret field holds a reference, never a value (:mod:`.references`). Files are written
atomically (a temporary file renamed over the old one) with owner-only permissions,
under an exclusive lock on their folder, so that two kernels saving at once lose neither
write.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import ConfigurationError, unknown_name
from ..models import SOURCE_ID_RULE, is_source_id
from .references import SecretReference, parse_reference

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "PROJECT_FILE_NAME",
    "SavedSource",
    "SourcesFile",
    "project_sources_file",
    "read_sources_file",
    "update_sources_file",
    "user_sources_file",
]

#: The project file, next to the notebook (the kernel's working directory).
PROJECT_FILE_NAME = ".deepanalyze-sources.toml"
#: The keys a source's table may hold.
_ENTRY_KEYS = frozenset({"type", "name", "options", "secrets"})
_HEADER = (
    "# deepanalyze-jupyter saved data sources (%datasource save / load / forget).\n"
    "# No secret is ever written here: a secret field holds a reference only\n"
    "# (env:VAR, prompt, keyring:SERVICE/USERNAME or none).\n\n"
)


def user_sources_file() -> Path:
    """The user's sources file, in the Jupyter config directory (``jupyter --config-dir``)."""
    from jupyter_core.paths import jupyter_config_dir

    return Path(jupyter_config_dir()) / "deepanalyze" / "sources.toml"


def project_sources_file(directory: str | os.PathLike[str] | None = None) -> Path:
    """The project's sources file in ``directory`` (default: the working directory)."""
    return Path(directory if directory is not None else os.getcwd()) / PROJECT_FILE_NAME


@dataclass(frozen=True)
class SavedSource:
    """One source as a sources file defines it: no secret, only references."""

    id: str
    type: str
    file: Path
    name: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    references: Mapping[str, SecretReference] = field(default_factory=dict)

    def to_table(self) -> dict[str, Any]:
        """The TOML table of this source."""
        table: dict[str, Any] = {"type": self.type}
        if self.name and self.name != self.id:
            table["name"] = self.name
        if self.options:
            table["options"] = dict(self.options)
        if self.references:
            table["secrets"] = {key: str(reference) for key, reference in self.references.items()}
        return table


@dataclass
class SourcesFile:
    """What one file holds: the sources that read well, and one line per problem."""

    path: Path
    sources: list[SavedSource] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_sources_file(path: Path) -> SourcesFile:
    """Read ``path``; a missing file holds nothing. Nothing is raised: problems are listed.

    A file that is not valid TOML (or cannot be read) gives one problem naming it and the
    line, and no source at all; a malformed source gives one problem and is left out.
    """
    result = SourcesFile(path)
    try:
        document = _parse(path)
    except ConfigurationError as error:
        result.problems.append(str(error))
        return result
    for position, (source_id, table) in enumerate(document.items(), start=1):
        if not is_source_id(source_id):
            result.problems.append(f"{path}: {_invalid_id(position, source_id)}")
            continue
        try:
            result.sources.append(_saved_source(path, source_id, table))
        except ConfigurationError as error:
            result.problems.append(f"{path}: {error}")
    return result


def _invalid_id(position: int, source_id: str) -> str:
    """The line of a source whose id is invalid: its place in the file and its length, not its text,
    which may be a secret pasted there (a connection string holding a password)."""
    return (
        f"source {position} of the file has an invalid id ({len(source_id)} characters, not shown: it "
        f"may hold a secret): {SOURCE_ID_RULE}; the source is not loaded"
    )


def _parse(path: Path) -> dict[str, Any]:
    """The ``sources`` table of ``path`` (empty when the file does not exist)."""
    document = _read_document(path, refused="nothing was loaded from it")
    sources = document.get("sources", {})
    if not isinstance(sources, dict):
        raise ConfigurationError(f"{path}: 'sources' must be a table of sources; nothing was loaded from it")
    return sources


def _saved_source(path: Path, source_id: str, table: object) -> SavedSource:
    if not isinstance(table, dict):
        raise ConfigurationError("must be a table ([sources.ID])", source=source_id)
    unknown = sorted(set(table) - _ENTRY_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{unknown_name('key', unknown[0])} (a source takes {', '.join(sorted(_ENTRY_KEYS))})",
            source=source_id,
        )
    source_type, name = table.get("type"), table.get("name", "")
    options, secrets = table.get("options", {}), table.get("secrets", {})
    if not isinstance(source_type, str) or not source_type:
        raise ConfigurationError('missing its type (type = "postgresql", ...)', source=source_id)
    if not isinstance(name, str):
        raise ConfigurationError("its name must be text", source=source_id)
    for key, value in (("options", options), ("secrets", secrets)):
        if not isinstance(value, dict):
            raise ConfigurationError(f"{key!r} must be a table", source=source_id)
    references = {key: parse_reference(value, source=source_id, field=key) for key, value in secrets.items()}
    return SavedSource(source_id, source_type, path, name, options, references)


def update_sources_file(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the ``sources`` table of ``path`` and write it back.

    Read, change and write happen under an exclusive lock, so that two kernels updating
    the file at once lose neither change; the write is atomic and owner-only. A file that
    cannot be parsed is left as it is (the change is refused) so that nothing is lost. A file
    that is a symbolic link (kept with one's dotfiles) is written where it points. A file
    that cannot be written (no space left, no permission, a link that loops) is refused in
    one line naming it, and stays as it was.
    """
    path = _resolved(path)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(path):
            document = _read_for_update(path)
            change(document["sources"])
            _write_atomically(path, _HEADER + tomli_w.dumps(document))
    except OSError as error:
        problem = error.strerror or type(error).__name__
        raise ConfigurationError(f"{path}: cannot be written ({problem}); nothing was written") from None


def _resolved(path: Path) -> Path:
    """``path`` with its symbolic links followed; one that loops is refused in one line.

    ``resolve()`` raised for a loop before Python 3.13 (``RuntimeError``, or ``OSError``);
    since then it returns the path, and only opening it fails (``ELOOP``).
    """
    loops = ConfigurationError(f"{path}: a symbolic link that loops; nothing was written")
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        raise loops from None
    try:
        os.stat(resolved)
    except OSError as error:  # a missing file is made; other errors are told when it is read
        if error.errno == errno.ELOOP:
            raise loops from None
    return resolved


def _read_document(path: Path, *, refused: str, invalid: str | None = None) -> dict[str, Any]:
    """The TOML document of ``path`` (empty when there is no file).

    A file that cannot be read is refused saying ``refused`` (what was not done), one that is
    not valid TOML saying ``invalid`` (by default ``refused``).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        problem = "permission denied" if isinstance(error, PermissionError) else type(error).__name__
        raise ConfigurationError(f"{path}: cannot be read ({problem}); {refused}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # The decoder's message names the line and column and quotes nothing of the file.
        raise ConfigurationError(f"{path}: not valid TOML: {error}; {invalid or refused}") from None


def _read_for_update(path: Path) -> dict[str, Any]:
    """The document of ``path`` about to be changed, with its ``sources`` table; a file that does
    not parse is refused."""
    document = _read_document(
        path, refused="nothing was written", invalid="fix it first, nothing was written"
    )
    sources = document.setdefault("sources", {})
    if not isinstance(sources, dict):
        raise ConfigurationError(f"{path}: 'sources' is not a table; fix it first, nothing was written")
    return document


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock for updating ``path`` while the block runs.

    The lock is taken on the folder holding it (the file itself is replaced by each write,
    so it cannot carry the lock), which leaves no lock file beside a project's file. Windows,
    which cannot lock a folder, locks a ``.lock`` file beside it instead.
    """
    if sys.platform == "win32":  # pragma: no cover
        descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    else:
        descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        _lock_exclusively(descriptor)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _lock_exclusively(descriptor: int) -> None:
    """Wait for, then take, an exclusive lock on the open file or folder ``descriptor``."""
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        msvcrt.locking(descriptor, msvcrt.LK_LOCK, 1)
    else:
        import fcntl

        fcntl.flock(descriptor, fcntl.LOCK_EX)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a new owner-only file beside ``path``, then rename it over ``path``."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise

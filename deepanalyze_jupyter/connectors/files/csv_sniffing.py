"""Many small CSV files of one glob, sniffed once and parsed as one stream.

DuckDB sniffs each file of a glob of CSV files (its dialect, header and types) and reads
it through a call into Python's filesystem; over hundreds of small files that is most of
a query's time. So a glob with no option (``read_csv('x/*.csv')``, ``FROM 'x/*.csv'``) of
plain ``.csv``/``.tsv`` files that are all small (held whole for the statement,
:mod:`.batched`) is read as one stream: a header line, then each file's rows. What DuckDB
would read is kept:

* every file must start with the same header line (DuckDB checks each file's header);
* the dialect is what DuckDB sniffs in the first file (it reads every file so), and its sniff
  of each other of the first :data:`FILES_TO_SNIFF` files finds the same dialect and column
  names (it refuses another: a file of one column may sniff as ``;``-separated); the types
  what it sniffs in the first :data:`FILES_TO_SNIFF` files' rows joined (it sniffs as many
  to bind a read and combines their types), taken only when those rows fit in one
  sniff's sample, so that the sniff sees every value they hold;
* types are text, ``BIGINT`` or ``DOUBLE`` only, and each value of a number column must be
  written as a number of that type (DuckDB refuses a later file its sniff finds of
  another type, where a cast would round ``2.5`` into ``3``);
* where the first files quote nothing, no file may hold a ``"``;
* the statement asks nothing of the files themselves (``filename``, ``file_index``,
  hive partitions ``key=value/`` in their paths).

Otherwise, and when the joined read fails (a value of another type, a bad row), the
statement runs as written: DuckDB's own reading, file by file, has the last word.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb

from .batched import StatementFileSystem
from .joined import NotAlike, Part
from .sql_paths import CsvGlobRead, csv_glob_reads, mentions, sql_literal

__all__ = ["with_csv_globs_joined"]

_DIALECT = (
    "Delimiter",
    "Quote",
    "Escape",
    "NewLineDelimiter",
    "Comment",
    "SkipRows",
    "HasHeader",
    "Columns",
)
_EMPTY = "(empty)"  # how sniff_csv writes an empty quote, escape or comment
#: Files of a glob DuckDB sniffs to find a CSV read's columns (its ``files_to_sniff``).
FILES_TO_SNIFF = 10
#: Rows of each file DuckDB's sniff looks at (its ``sample_size``).
SAMPLE_ROWS = 20_480
#: The column types a joined read gives, with the text each must match (``None``: any text).
#: A value DuckDB's sniff of a later file would find of another type fails the read, which
#: then runs as written (where DuckDB refuses that file), rather than being cast.
_CHECKED: dict[str, str | None] = {
    "VARCHAR": None,
    # As DuckDB's sniff finds them: no "+", no leading zero ("007" is text), spaces around a
    # whole number but none after a point or an exponent ("1.5 " is text).
    "BIGINT": r"\s*-?(0|[1-9][0-9]*)\s*",
    "DOUBLE": r"\s*-?(0|[1-9][0-9]*)\s*|\s*-?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?",
}
#: DuckDB's virtual columns of a file read, which tell the files apart.
_FILE_COLUMNS = ("filename", "file_index")


def with_csv_globs_joined(
    connection: duckdb.DuckDBPyConnection, filesystem: StatementFileSystem, sql: str
) -> str | None:
    """``sql`` with its globs of small CSV files read as one stream (see the module), or ``None``."""
    reads = csv_glob_reads(sql)
    if not reads or mentions(sql, _FILE_COLUMNS):
        return None
    changed = sql
    for read in reversed(reads):
        joined = _joined_read(connection, filesystem, read)
        if joined is not None:
            changed = changed[: read.start] + joined + changed[read.end :]
    return None if changed == sql else changed


def _joined_read(
    connection: duckdb.DuckDBPyConnection, filesystem: StatementFileSystem, read: CsvGlobRead
) -> str | None:
    """A read of the files of ``read`` joined into one, or ``None`` to read them one by one."""
    names = sorted(filesystem.glob(read.pattern))
    if len(names) < 2 or any("=" in name or not filesystem.is_held(name) for name in names):
        return None  # one file is sniffed once anyway; a large file is read in ranges, not held
    first_files = [filesystem.held_bytes(name) or b"" for name in names[:FILES_TO_SNIFF]]
    header = _first_line(first_files[0])
    dialect = _sniff(connection, filesystem.unstrip_protocol(names[0]))  # DuckDB reads every file so
    if dialect is None or not dialect["HasHeader"] or dialect["SkipRows"]:
        return None
    quoted = dialect["Quote"] != _EMPTY
    check = _alike(header, quoted)
    try:
        for data in first_files:
            check(data)
    except NotAlike:
        return None
    if sum(bytes(data).count(b"\n") for data in first_files) > SAMPLE_ROWS:
        return None  # DuckDB's sniff of each file sees rows a sniff of them joined would not
    parts: list[bytes | Part] = [header + b"\n"]
    for name in names:
        rows = filesystem.listed_size(name) - len(header) - 1
        if rows > 0:
            parts.append(Part(name, len(header) + 1, rows, check))
        elif rows < 0 or filesystem.held_bytes(name) != header + b"\n":
            return None  # not a file of the header line alone
    # The costly part last, once the byte checks have passed: DuckDB sniffs each of the first
    # files, and another dialect or header there fails its read.
    for name in names[1:FILES_TO_SNIFF]:
        if _layout(_sniff(connection, filesystem.unstrip_protocol(name))) != _layout(dialect):
            return None
    if not quoted:  # the first file quotes nothing: '"' parses files without one alike
        dialect = {**dialect, "Quote": '"', "Escape": '"'}
    sniffed = [part for part in parts if isinstance(part, bytes) or part.name in names[:FILES_TO_SNIFF]]
    options = _dialect_options(dialect)
    typed = _sniff(connection, filesystem.hold_joined(names[0], sniffed), options)
    if typed is None or any(column["type"] not in _CHECKED for column in typed["Columns"]):
        return None
    joined = filesystem.hold_joined(names[0], parts)
    as_text = ", ".join(f"{sql_literal(column['name'])}: 'VARCHAR'" for column in typed["Columns"])
    read_as_text = f"read_csv({sql_literal(joined)}, auto_detect = false, {options}, columns = {{{as_text}}})"
    return _typed_read(typed["Columns"], read_as_text)


def _alike(header: bytes, quoted: bool) -> Callable[[bytes | memoryview], None]:
    """A check that a file starts with ``header``, ends its last line and, unless ``quoted``,
    holds no ``"``; it raises :class:`NotAlike`."""

    def check(data: bytes | memoryview) -> None:
        if _first_line(data) != header:
            raise NotAlike("a file of the glob starts with another header line")
        if bytes(data[-1:]) != b"\n":
            raise NotAlike("a file of the glob does not end its last line")
        if not quoted and bytes(data).find(b'"') >= 0:
            raise NotAlike("a file of the glob quotes values where the first one does not")

    return check


def _typed_read(columns: list[dict[str, str]], read_as_text: str) -> str:
    """``read_as_text`` with each column turned into its sniffed type, failing on the first row
    holding a value DuckDB's sniff of its file would not have found of that type (whichever
    columns the statement uses: DuckDB refuses such a file whatever is asked of it)."""
    selected = []
    checks = []
    for column in columns:
        name = '"' + column["name"].replace('"', '""') + '"'
        pattern = _CHECKED[column["type"]]
        if pattern is None:
            selected.append(name)
        else:
            selected.append(f"CAST({name} AS {column['type']}) AS {name}")
            checks.append(
                f"({name} IS NULL OR regexp_full_match({name}, {sql_literal(pattern)}) "
                f"AND TRY_CAST({name} AS {column['type']}) IS NOT NULL)"
            )
    where = (
        f" WHERE CASE WHEN {' AND '.join(checks)} THEN true "
        "ELSE error('a value of another type than in the first files') END"
        if checks
        else ""
    )
    return f"(SELECT {', '.join(selected)} FROM {read_as_text}{where})"


def _sniff(connection: duckdb.DuckDBPyConnection, url: str, options: str = "") -> dict[str, Any] | None:
    """What DuckDB sniffs in the file at ``url`` (given the ``read_csv`` ``options``)."""
    columns = ", ".join(f'"{name}"' for name in _DIALECT)
    given = f", {options}" if options else ""
    try:
        rows = connection.execute(f"SELECT {columns} FROM sniff_csv({sql_literal(url)}{given})").fetchall()
    except duckdb.InterruptException:
        raise
    except duckdb.Error:
        return None  # DuckDB says what is wrong when the statement runs as written
    return dict(zip(_DIALECT, rows[0], strict=True)) if rows else None


def _layout(sniffed: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """The dialect and column names DuckDB sniffed in a file (not the columns' types)."""
    if sniffed is None:
        return None
    names = tuple(column["name"] for column in sniffed["Columns"])
    return (*(sniffed[key] for key in _DIALECT if key != "Columns"), names)


def _dialect_options(sniffed: dict[str, Any]) -> str:
    """``read_csv`` options of the dialect DuckDB sniffed (its header: a line of column names)."""

    def text(value: str) -> str:
        return sql_literal("" if value == _EMPTY else value)

    return (
        f"delim = {text(sniffed['Delimiter'])}, quote = {text(sniffed['Quote'])}, "
        f"escape = {text(sniffed['Escape'])}, new_line = {text(sniffed['NewLineDelimiter'])}, "
        f"comment = {text(sniffed['Comment'])}, header = true"
    )


def _first_line(data: bytes | memoryview) -> bytes:
    """The bytes of ``data`` before its first ``\\n``."""
    start = bytes(data[: 1 << 16])
    end = start.find(b"\n")
    if end < 0 and len(data) > len(start):
        start = bytes(data)
        end = start.find(b"\n")
    return start if end < 0 else start[:end]

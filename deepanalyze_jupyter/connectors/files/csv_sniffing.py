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

import re
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .batched import StatementFileSystem
from .joined import FilesCheck, NotAlike, Part
from .sniffs import EMPTY, layout, sniff, sniff_each
from .sql_paths import CsvGlobRead, csv_glob_reads, mentions, sql_literal

__all__ = ["with_csv_globs_joined"]

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
    # A whole number with spaces after it is a BIGINT to the sniff but not a DOUBLE: in a column
    # of decimals only before the file's first decimal, so it is not taken at all.
    "DOUBLE": r"\s*-?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?",
}
#: How DuckDB widens a column's type over the files it sniffs (its ``MergeSchemas``), for the
#: types a joined read gives: each is cast to those after it.
_WIDER = ("BIGINT", "DOUBLE", "VARCHAR")
#: The values of number columns :func:`_rows_pattern` lets a joined read parse as their types
#: (RE2): those of :data:`_CHECKED` without whitespace, of digits few enough that the value
#: fits the type (an empty value is NULL).
_WRITTEN = {
    "BIGINT": r"(?:-?(?:0|[1-9][0-9]{0,17}))?",
    "DOUBLE": r"(?:-?(?:(?:0|[1-9][0-9]{0,17})(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,2})?)?",
}
#: The types DuckDB's sniff finds in a column, whose values a header name must not be.
_HEADER_TYPES = ("BOOLEAN", "BIGINT", "HUGEINT", "DOUBLE", "DATE", "TIME", "TIMESTAMP", "TIMESTAMPTZ")
#: Those of a column whose values are checked to be numbers.
_NUMBER_TYPES = ("BIGINT", "HUGEINT", "DOUBLE")
#: A letter no number (hexadecimal, binary, octal, exponent), date or time (``T``, ``Z``,
#: ``AM``/``PM``) in the sniff's formats holds.
_NO_NUMBER_LETTER = r"[^\W\d_abcdefmoptxzABCDEFMOPTXZ]"
#: Files of a glob still downloading joined in one file of a joined read.
_ARRIVING_PER_FILE = 20
#: DuckDB's virtual columns of a file read, which tell the files apart.
_FILE_COLUMNS = ("filename", "file_index")


def with_csv_globs_joined(
    connection: duckdb.DuckDBPyConnection, filesystem: StatementFileSystem, sql: str
) -> list[str] | None:
    """``sql`` with its globs of small CSV files read as one stream (see the module), or ``None``.

    The statements are tried in turn: the first parses number columns as their types, taken
    only when each file's values are written as DuckDB's sniff would find them of that type
    (a check of the whole file at once); the second checks each value as it reads it.
    """
    reads = csv_glob_reads(sql)
    if not reads or mentions(sql, _FILE_COLUMNS):
        return None
    typed, checked = sql, sql
    for read in reversed(reads):
        joined = _joined_read(connection, filesystem, read)
        if joined is not None:
            typed = typed[: read.start] + joined[0] + typed[read.end :]
            checked = checked[: read.start] + joined[1] + checked[read.end :]
    if checked == sql:
        return None
    return [checked] if typed == checked else [typed, checked]


def _joined_read(
    connection: duckdb.DuckDBPyConnection, filesystem: StatementFileSystem, read: CsvGlobRead
) -> tuple[str, str] | None:
    """Two reads of the files of ``read`` joined into one (parsed as their types, and checked
    value by value), or ``None`` to read them one by one."""
    names = sorted(filesystem.glob(read.pattern))
    if len(names) < 2 or any("=" in name or not filesystem.is_held(name) for name in names):
        return None  # one file is sniffed once anyway; a large file is read in ranges, not held
    first_files = [(name, filesystem.held_bytes(name) or b"") for name in names[:FILES_TO_SNIFF]]
    header = _first_line(first_files[0][1])
    try:
        _alike(header, quoted=True)(first_files)
    except NotAlike:
        return None
    if sum(bytes(data).count(b"\n") for _, data in first_files) > SAMPLE_ROWS:
        return None  # DuckDB's sniff of each file sees rows a sniff of them joined would not
    parts: list[Part] = []
    for name in names:
        rows = filesystem.listed_size(name) - len(header) - 1
        if rows > 0:
            parts.append(Part(name, len(header) + 1, rows))
        elif rows < 0 or filesystem.held_bytes(name) != header + b"\n":
            return None  # not a file of the header line alone
    # The costly part last, once the byte checks have passed: DuckDB sniffs each of the first
    # files; it reads every file in the first one's dialect, and another dialect or header in
    # one of the others fails its read.
    first_urls = [(filesystem.unstrip_protocol(name), data) for name, data in first_files]
    dialect, *others = sniff_each(connection, first_urls)
    if dialect is None or not dialect["HasHeader"] or dialect["SkipRows"]:
        return None
    if any(layout(other) != layout(dialect) for other in others):
        return None
    quoted = dialect["Quote"] != EMPTY
    alike = _alike(header, quoted)
    try:
        alike(first_files)
    except NotAlike:
        return None
    if not quoted:  # the first file quotes nothing: '"' parses files without one alike
        dialect = {**dialect, "Quote": '"', "Escape": '"'}
    options = _dialect_options(dialect)
    header_line = header + b"\n"
    held = dict(first_files)
    sniffed = [part for part in parts if part.name in held]
    joint = {part.name for part in sniffed}  # the first files with rows
    content: list[bytes | memoryview] = [header_line, *(part.taken_from(held[part.name]) for part in sniffed)]
    joined = filesystem.hold_joined(names[0], [header_line, *sniffed], alike)
    typed = sniff(connection, joined, content, options)
    if typed is None or any(column["type"] not in _CHECKED for column in typed["Columns"]):
        return None
    columns: list[dict[str, str]] = typed["Columns"]
    # DuckDB binds the types of each file's own sniff, widened: the sniff of the files joined
    # must find the same (it may not: a type is found value by value, in a file's order).
    found_in = zip((name for name, _ in first_files), [dialect, *others], strict=True)
    each = [(filesystem.unstrip_protocol(name), found) for name, found in found_in if name in joint and found]
    as_text = {column["name"]: "VARCHAR" for column in columns}

    def empty(url: str) -> list[int]:
        return _empty_columns(connection, _read_csv([url], options, as_text), len(columns))

    bound = [column["type"] for column in columns]
    if _widened(each) != bound and _widened(each, empty) != bound:
        return None
    if not _always_a_header(connection, header, dialect["Delimiter"], columns):
        return None

    # In as many files as DuckDB has threads (it parses each file in one), or, while files
    # still download, in files of a few of them: each is parsed once its files arrived.
    count = int(connection.execute("SELECT current_setting('threads')").fetchall()[0][0])
    if not all(filesystem.has_arrived(part.name) for part in parts):
        count = max(count, len(parts) // _ARRIVING_PER_FILE)

    def read_joined(check: FilesCheck, types: dict[str, str]) -> str:
        urls = [filesystem.hold_joined(names[0], [header_line, *run], check) for run in _split(parts, count)]
        return _read_csv(urls, options, types)

    checked = _checked_read(columns, read_joined(alike, as_text))
    pattern = _rows_pattern(dialect, columns, quoted)
    if pattern is None:
        return checked, checked
    written_alike = _written_alike(header, pattern)
    return read_joined(written_alike, {column["name"]: column["type"] for column in columns}), checked


def _split(parts: list[Part], count: int) -> list[list[Part]]:
    """``parts`` in at most ``count`` runs of about the same number of bytes, in order."""
    total = sum(part.size for part in parts)
    runs: list[list[Part]] = [[]]
    taken = 0
    for part in parts:
        if runs[-1] and taken >= total * len(runs) / count:
            runs.append([])
        runs[-1].append(part)
        taken += part.size
    return runs


def _widened(
    sniffed: list[tuple[str, dict[str, Any]]], empty: Callable[[str], list[int]] | None = None
) -> list[str] | None:
    """The types DuckDB binds for files whose sniffs (URL, what it found) are ``sniffed``: each
    column's type widened to the widest of the files', or ``None`` for another type.

    A column without a value in a file has no type there, where its sniff says text; with
    ``empty``, which tells the columns of a file that are so, such columns are left out.
    """
    types: list[list[str | None]] = [[column["type"] for column in found["Columns"]] for _, found in sniffed]
    if not types or any(type_ not in _WIDER for row in types for type_ in row):
        return None
    for row, (url, _) in zip(types, sniffed, strict=True):
        if empty is not None and "VARCHAR" in row:
            for index in empty(url):
                row[index] = None
    widest = []
    for column in zip(*types, strict=True):
        found = [type_ for type_ in column if type_ is not None]
        widest.append(max(found, key=_WIDER.index) if found else "VARCHAR")
    return widest


def _empty_columns(connection: duckdb.DuckDBPyConnection, read_as_text: str, count: int) -> list[int]:
    """The columns of the ``count`` of ``read_as_text`` (a read of one file) holding no value."""
    counts = ", ".join(f"count(#{index + 1})" for index in range(count))
    (found,) = connection.execute(f"SELECT {counts} FROM {read_as_text}").fetchall()
    return [index for index, values in enumerate(found) if values == 0]


def _always_a_header(
    connection: duckdb.DuckDBPyConnection, header: bytes, delimiter: str, columns: list[dict[str, str]]
) -> bool:
    """Whether DuckDB finds the line ``header`` a header in every file of the glob.

    It sniffs each file's header anew: the first line is data where the name of each column
    not of text in that file parses as its type there. So no name may be a value of a type
    its column may have in a later file: a number column's (its values are checked) no number
    (``2024``, ``0x1F``); a text column's (whatever its values) no boolean, number, date or
    time either (``n``, ``today``), and, if it holds a digit, a letter no number, date or time
    in any of the sniff's formats holds (as ``v1`` does, not ``1e5``, ``0b1``, ``12 PM`` or
    ``2024-01-31T12:00Z``). A header with a quote, or a name without a letter, is not taken.
    """
    text = header.decode("utf-8", errors="replace")
    if '"' in text or "'" in text or len(delimiter) != 1:
        return False
    names = [name.strip() for name in text.split(delimiter)]
    if len(names) != len(columns) or any(not re.search(r"[^\W\d_]", name) for name in names):
        return False
    checks = []
    for name, column in zip(names, columns, strict=True):
        if column["type"] in _WRITTEN:
            types: tuple[str, ...] = _NUMBER_TYPES
        elif re.search(r"\d", name) and not re.search(_NO_NUMBER_LETTER, name):
            return False
        else:
            types = _HEADER_TYPES
        checks += [f"TRY_CAST({sql_literal(name)} AS {type_}) IS NOT NULL" for type_ in types]
    (taken,) = connection.execute(f"SELECT {' OR '.join(checks)}").fetchall()[0]
    return not taken


def _read_csv(urls: list[str], options: str, columns: dict[str, str]) -> str:
    """A ``read_csv`` of ``urls`` in the given dialect, of ``columns`` (name: type), sniffing nothing."""
    files = ", ".join(sql_literal(url) for url in urls)
    types = ", ".join(f"{sql_literal(name)}: {sql_literal(type_)}" for name, type_ in columns.items())
    return f"read_csv([{files}], auto_detect = false, {options}, columns = {{{types}}})"


def _alike(header: bytes, quoted: bool) -> FilesCheck:
    """A check that files start with ``header``, end their last line and, unless ``quoted``,
    hold no ``"``; it raises :class:`NotAlike`."""

    def check(files: Sequence[tuple[str, bytes | memoryview]]) -> None:
        for _, data in files:
            if _first_line(data) != header:
                raise NotAlike("a file of the glob starts with another header line")
            if bytes(data[-1:]) != b"\n":
                raise NotAlike("a file of the glob does not end its last line")
            if not quoted and bytes(data).find(b'"') >= 0:
                raise NotAlike("a file of the glob quotes values where the first one does not")

    return check


def _written_alike(header: bytes, pattern: str) -> FilesCheck:
    """A check that files start with the line ``header`` and that their rows after it match the
    RE2 ``pattern`` (:func:`_rows_pattern`: they end their last line, and quote only where the
    first file does), all files in one pass of the regular expression; it raises :class:`NotAlike`."""

    def check(files: Sequence[tuple[str, bytes | memoryview]]) -> None:
        if any(_first_line(data) != header for _, data in files):
            raise NotAlike("a file of the glob starts with another header line")
        rows = [memoryview(data)[len(header) + 1 :] for _, data in files]
        offsets = np.cumsum([0, *(len(part) for part in rows)], dtype=np.int64)
        data = pa.py_buffer(b"".join(rows))
        array = pa.Array.from_buffers(pa.large_binary(), len(rows), [None, pa.py_buffer(offsets), data])
        if not pc.all(pc.match_substring_regex(array, pattern)).as_py():
            raise NotAlike("a file of the glob holds a value not written as its column's type")

    return check


def _rows_pattern(dialect: dict[str, Any], columns: list[dict[str, str]], quoted: bool) -> str | None:
    """An RE2 pattern matching rows in ``dialect`` whose values of number columns are written
    as DuckDB's sniff takes them (a narrower form than :data:`_CHECKED`'s, of no whitespace and
    of digits few enough for the type's range), or ``None`` for a dialect it does not cover.

    A text column's value is unquoted or, if the first file is ``quoted``, in quotes holding no
    quote or escape character.
    """
    delimiter, quote, escape = (
        "" if dialect[key] == EMPTY else dialect[key] for key in ("Delimiter", "Quote", "Escape")
    )
    newline = {"\\n": "\\n", "\\r\\n": "\\r\\n"}.get(dialect["NewLineDelimiter"])
    single = len(delimiter) == len(quote) == 1 and len(escape) <= 1
    if dialect["Comment"] != EMPTY or not newline or not single:
        return None
    special = "".join(_re2_char(char) for char in {delimiter, quote, escape} if char)
    text = f"[^{special}\\r\\n]*"
    if quoted:
        inside = "".join(_re2_char(char) for char in {quote, escape} if char)
        text = f"(?:{text}|{_re2_char(quote)}[^{inside}]*{_re2_char(quote)})"
    fields = {"VARCHAR": text, **_WRITTEN}
    line = _re2_char(delimiter).join(fields[column["type"]] for column in columns)
    return f"^(?:{line}{newline})*$"


def _re2_char(char: str) -> str:
    """``char`` escaped for an RE2 pattern, also inside ``[...]``."""
    return f"\\x{{{ord(char):x}}}"


def _checked_read(columns: list[dict[str, str]], read_as_text: str) -> str:
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


def _dialect_options(sniffed: dict[str, Any]) -> str:
    """``read_csv`` options of the dialect DuckDB sniffed (its header: a line of column names)."""

    def text(value: str) -> str:
        return sql_literal("" if value == EMPTY else value)

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

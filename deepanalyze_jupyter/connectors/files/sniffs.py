"""What DuckDB sniffs in CSV files (dialect, header, column types), remembered by their bytes.

A sniff of a small file takes DuckDB a few milliseconds, most of it trying dialects: each
of four delimiters with each quote, escape and comment character it knows. In a file
holding none of those characters (:data:`UNUSED`), and no longer than the sample DuckDB
finds the dialect in, every quote, escape and comment reads the file alike, so the sniff is
asked with none of them, which tries the four delimiters alone and finds the same
(``tests/sql/test_sniffs.py`` compares the two).

A sniff is a function of the file's bytes, its name's extension and the options given, so
it is kept under a digest of those, for the kernel's lifetime (the last :data:`REMEMBERED`):
the same query run again, or another over the same files, sniffs nothing.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import threading
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import duckdb

from .sql_paths import sql_literal

__all__ = ["DIALECT", "EMPTY", "REMEMBERED", "layout", "sniff", "sniff_each"]

#: The columns of ``sniff_csv`` kept of a sniff.
DIALECT = (
    "Delimiter",
    "Quote",
    "Escape",
    "NewLineDelimiter",
    "Comment",
    "SkipRows",
    "HasHeader",
    "Columns",
)
EMPTY = "(empty)"  # how sniff_csv writes an empty quote, escape or comment
#: The quote, escape and comment characters DuckDB's sniff tries.
UNUSED = (b'"', b"'", b"\\", b"#")
#: Lines of the first sample DuckDB's sniff detects the dialect in (its ``sniff_size``).
SAMPLE_LINES = 2048
#: The options of a sniff of a file holding none of :data:`UNUSED`.
_NONE_OF_THEM = "quote = '', escape = '', comment = ''"
#: Sniffs kept, the least recently used let go first.
REMEMBERED = 1024

_remembered: collections.OrderedDict[bytes, dict[str, Any]] = collections.OrderedDict()
_lock = threading.Lock()

Content = Sequence[bytes | memoryview]


def sniff(
    connection: duckdb.DuckDBPyConnection, url: str, content: Content, options: str = ""
) -> dict[str, Any] | None:
    """What DuckDB sniffs in the file at ``url``, whose bytes are ``content`` in turn (given the
    ``read_csv`` ``options``); ``None`` when it cannot (the statement run as written says why)."""
    if not options and _narrow_alike(content):
        options = _NONE_OF_THEM
    key = _key(url, content, options)
    with _lock:
        found = _remembered.get(key)
        if found is not None:
            _remembered.move_to_end(key)
            return found
    columns = ", ".join(f'"{name}"' for name in DIALECT)
    given = f", {options}" if options else ""
    try:
        rows = connection.execute(f"SELECT {columns} FROM sniff_csv({sql_literal(url)}{given})").fetchall()
    except duckdb.InterruptException:
        raise
    except duckdb.Error:
        return None  # not kept: the file may have been unreadable only this time
    if not rows:
        return None
    sniffed = dict(zip(DIALECT, rows[0], strict=True))
    with _lock:
        _remembered[key] = sniffed
        while len(_remembered) > REMEMBERED:
            _remembered.popitem(last=False)
    return sniffed


def sniff_each(
    connection: duckdb.DuckDBPyConnection, files: Sequence[tuple[str, bytes | memoryview]]
) -> list[dict[str, Any] | None]:
    """:func:`sniff` of each file (URL, bytes), half of them in another thread (the statement's
    database is a file's only reader)."""
    if len(files) < 2:
        return [sniff(connection, url, [data]) for url, data in files]
    with concurrent.futures.ThreadPoolExecutor(1) as pool, connection.cursor() as other:
        theirs = pool.submit(lambda: [sniff(other, url, [data]) for url, data in files[1::2]])
        mine = [sniff(connection, url, [data]) for url, data in files[::2]]
        found: list[dict[str, Any] | None] = [None] * len(files)
        found[::2], found[1::2] = mine, theirs.result()
    return found


def _narrow_alike(content: Content) -> bool:
    """Whether a sniff with no quote, escape or comment finds in ``content`` what the full one
    does: no character of :data:`UNUSED`, and lines no more than the sniff's first sample (past
    it the full sniff checks later rows against all its candidates, and may refuse the file)."""
    data = b"".join(map(bytes, content))
    return data.count(b"\n") < SAMPLE_LINES and not any(char in data for char in UNUSED)


def layout(sniffed: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """The dialect and column names DuckDB sniffed in a file (not the columns' types)."""
    if sniffed is None:
        return None
    names = tuple(column["name"] for column in sniffed["Columns"])
    return (*(sniffed[key] for key in DIALECT if key != "Columns"), names)


def _key(url: str, content: Content, options: str) -> bytes:
    """A digest of what a sniff of ``url`` depends on."""
    digest = hashlib.blake2b(digest_size=20)
    for text in (PurePosixPath(url).suffix, options):
        digest.update(text.encode())
        digest.update(b"\0")
    for data in content:
        digest.update(data)
    return digest.digest()

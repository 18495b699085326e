"""Paths in the SQL of a file source: string literals in file positions become ``dsrc://SOURCE/...``.

``FROM 'sales/*.parquet'`` and ``read_csv('a.csv')`` on source ``lake`` read
``dsrc://lake/sales/*.parquet`` and ``dsrc://lake/a.csv``; an absolute path, a URL or a
``..`` written there is refused before anything runs (see :mod:`.sql`).
"""

from __future__ import annotations

from typing import NamedTuple

import duckdb

from ...errors import QueryError
from ...filesystem import source_url

__all__ = [
    "FILE_FUNCTIONS",
    "CsvGlobRead",
    "csv_glob_reads",
    "mentions",
    "rewrite_paths",
    "separates_statements",
    "sql_literal",
]

#: DuckDB's table functions whose leading string arguments are paths.
FILE_FUNCTIONS = frozenset(
    {
        "read_csv",
        "read_csv_auto",
        "read_parquet",
        "parquet_scan",
        "parquet_metadata",
        "parquet_schema",
        "parquet_file_metadata",
        "parquet_kv_metadata",
        "read_json",
        "read_json_auto",
        "read_ndjson",
        "read_ndjson_auto",
        "read_json_objects",
        "read_ndjson_objects",
        "read_text",
        "read_blob",
        "sniff_csv",
        "glob",
    }
)


def rewrite_paths(sql: str, source: str) -> str:
    """``sql`` with the string literals in file positions made ``dsrc://SOURCE/...`` paths.

    A file position is a table's (see :func:`_table_literals`), or a positional argument (or
    a member of a list argument) of one of :data:`FILE_FUNCTIONS`. Absolute paths, URLs and
    ``..`` there are refused with :class:`QueryError`.
    """
    tokens = _tokens(sql)
    tables = _table_literals(sql, tokens)
    out: list[str] = []
    position = 0
    # For each open bracket: the function whose arguments it holds, if any; a list ("[")
    # counts as its function's only when it is a positional argument (not "names = [...]").
    calls: list[str | None] = []
    for index, (start, end, kind) in enumerate(tokens):
        word = sql[start:end]
        previous = sql[tokens[index - 1][0] : tokens[index - 1][1]] if index else ""
        before = sql[tokens[index - 2][0] : tokens[index - 2][1]].lower() if index > 1 else ""
        if word == "(":
            calls.append(previous.lower() if index and tokens[index - 1][2] != "operator" else None)
        elif word == "[":
            calls.append(calls[-1] if calls and previous in ("(", ",") else None)
        elif word == "{":
            calls.append(None)
        elif word in (")", "]", "}") and calls:
            calls.pop()
        if kind != "string_const" or not word.startswith("'"):
            continue
        in_file_call = bool(calls) and calls[-1] in FILE_FUNCTIONS and previous in ("(", ",", "[")
        if previous == "," and before == "=":
            in_file_call = False
        if index in tables or in_file_call:
            out.append(sql[position:start])
            out.append(sql_literal(_source_path(word[1:-1].replace("''", "'"), source)))
            position = end
    out.append(sql[position:])
    return "".join(out)


#: Keywords that end a FROM clause's list of tables.
_AFTER_TABLES = frozenset(
    {
        "where",
        "group",
        "having",
        "order",
        "limit",
        "offset",
        "qualify",
        "window",
        "union",
        "except",
        "intersect",
        "select",
        "values",
        "returning",
    }
)


#: Statements that name a table first: ``DESCRIBE 'a.csv'``, ``PIVOT 'a.csv' ON ...``.
_TABLE_STATEMENTS = frozenset({"describe", "summarize", "pivot", "unpivot"})

#: Functions whose parentheses hold a FROM of their own: ``trim(both 'x' FROM 'xax')``.
_FROM_FUNCTIONS = frozenset({"extract", "trim", "substring", "overlay"})


def _table_literals(sql: str, tokens: list[tuple[int, int, str]]) -> set[int]:
    """The indices of the string literals among ``tokens`` that name a table: right after
    ``FROM`` or ``JOIN``, or after a comma of a FROM clause's list (``FROM 'a.csv' a, 'b.csv' b``),
    or first in a statement of :data:`_TABLE_STATEMENTS`.

    ``IS [NOT] DISTINCT FROM 'x'`` compares with a value, and ``EXTRACT(x FROM ...)`` and the
    like are no FROM clause either. A comma inside parentheses, a list (``[...]``) or a
    struct or map (``{...}``) is another level's.
    """
    found: set[int] = set()
    listing = [False]  # for each level of brackets: whether a FROM clause's list is open
    in_function = [False]  # for each level: whether it holds the arguments of one of _FROM_FUNCTIONS
    words = [sql[start:end].lower() for start, end, _ in tokens]
    for index, (_, _, kind) in enumerate(tokens):
        word = words[index]
        previous = words[index - 1] if index else ""
        if word in ("(", "[", "{"):
            listing.append(False)
            in_function.append(word == "(" and previous in _FROM_FUNCTIONS)
        elif word in (")", "]", "}"):
            if len(listing) > 1:
                listing.pop()
                in_function.pop()
        elif word in ("from", "join") and kind == "keyword":
            if not _compares(words[max(index - 2, 0) : index + 1]) and not in_function[-1]:
                listing[-1] = True
        elif word in _AFTER_TABLES and kind == "keyword":
            listing[-1] = False
        elif listing[-1] and _is_table(kind, word, words[max(index - 3, 0) : index]):
            found.add(index)
        elif previous in _TABLE_STATEMENTS and kind == "string_const" and word.startswith("'"):
            found.add(index)  # DESCRIBE 'a.csv', PIVOT 'a.csv' ON ...
    return found


class CsvGlobRead(NamedTuple):
    """A read of ``.csv``/``.tsv`` files by one glob, no option: ``sql[start:end]`` reads ``pattern``."""

    start: int
    end: int
    pattern: str


#: The suffixes of plain (not compressed) CSV files, which DuckDB reads as CSV after ``FROM``.
_CSV_SUFFIXES = (".csv", ".tsv")


def csv_glob_reads(sql: str) -> list[CsvGlobRead]:
    """The reads of CSV files by a glob with no option in ``sql``: ``read_csv('x/*.csv')``,
    ``read_csv_auto('x/*.csv')`` or a table's ``'x/*.csv'`` (after :func:`rewrite_paths`)."""
    tokens = _tokens(sql)
    tables = _table_literals(sql, tokens)
    words = [sql[start:end] for start, end, _ in tokens]
    reads = []
    for index, (start, end, kind) in enumerate(tokens):
        if kind != "string_const" or not words[index].startswith("'"):
            continue
        pattern = words[index][1:-1].replace("''", "'")
        if not any(mark in pattern for mark in "*?[") or not pattern.lower().endswith(_CSV_SUFFIXES):
            continue
        called = (
            index >= 2
            and words[index - 1] == "("
            and words[index - 2].lower() in ("read_csv", "read_csv_auto")
            and index + 1 < len(words)
            and words[index + 1] == ")"
        )
        if called:
            reads.append(CsvGlobRead(tokens[index - 2][0], tokens[index + 1][1], pattern))
        elif index in tables:
            reads.append(CsvGlobRead(start, end, pattern))
    return reads


def separates_statements(sql: str) -> bool:
    """Whether ``sql`` holds a ``;`` with more SQL after it (outside strings and comments)."""
    tokens = _tokens(sql)
    # Some DuckDB versions give ";" and a comment after it as one token.
    return any(sql.startswith(";", start) for start, _, kind in tokens[:-1] if kind == "operator")


def mentions(sql: str, names: tuple[str, ...]) -> bool:
    """Whether ``sql`` names any of ``names`` (lower case), quoted or not, outside strings and comments."""
    for start, end, kind in _tokens(sql):
        if kind == "string_const":
            continue
        word = sql[start:end].strip('"').lower()
        if word in names:
            return True
    return False


_PUNCTUATION = "(),[]{}"


def _is_table(kind: str, word: str, before: list[str]) -> bool:
    """Whether a string literal after the tokens ``before`` (lower case) of a FROM clause names a table:
    it follows ``FROM``, ``JOIN`` or a comma, but not ``IS [NOT] DISTINCT FROM``."""
    return (
        kind == "string_const"
        and word.startswith("'")
        and before[-1:] in (["from"], ["join"], [","])
        and not _compares(before)
    )


def _compares(words: list[str]) -> bool:
    """Whether ``words`` (lower case) end with ``IS DISTINCT FROM`` or ``NOT DISTINCT FROM``, a
    comparison (``t.distinct FROM`` is a column named ``distinct``, then a FROM clause)."""
    return words[-3:] in (["is", "distinct", "from"], ["not", "distinct", "from"])


def _tokens(sql: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each token of ``sql`` (comments left out)."""
    found = duckdb.tokenize(sql)
    result: list[tuple[int, int, str]] = []
    for index, (start, kind) in enumerate(found):
        end = found[index + 1][0] if index + 1 < len(found) else len(sql)
        text = sql[start:end].rstrip()
        name = str(kind).rsplit(".", 1)[-1]
        if name == "comment":
            continue
        if name == "operator" and text[:1] in _PUNCTUATION:
            # Some DuckDB versions give a run of punctuation ("()", "))") as one token.
            run = len(text) - len(text.lstrip(_PUNCTUATION))
            result.extend((start + offset, start + offset + 1, name) for offset in range(run))
            start, text = start + run, text[run:]
            if not text:
                continue
        result.append((start, start + len(text), name))
    return result


def _source_path(path: str, source: str) -> str:
    if "://" in path or path.startswith(("/", "\\", "~")) or (len(path) > 1 and path[1] == ":"):
        raise QueryError(
            f"refused: {path!r} is not a path in this source; write paths relative to it", source=source
        )
    if "\x00" in path:
        raise QueryError(
            f"refused: {path!r} holds a NUL character ('\\x00'), which no path can hold", source=source
        )
    if ".." in path.replace("\\", "/").split("/"):
        raise QueryError(f"refused: {path!r} leads outside the source ('..')", source=source)
    return source_url(source, path)


def sql_literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"

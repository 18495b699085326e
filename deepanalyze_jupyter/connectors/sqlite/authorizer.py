"""The authorizer of a read-only SQLite source: it allows reading only.

Installed on every read-only connection, it refuses a statement before it runs when it
could write anywhere: no ``ATTACH`` (which would reach other files or the same file
writable), no ``VACUUM INTO``, no temporary tables, no pragma that changes anything.
"""

from __future__ import annotations

import sqlite3

__all__ = ["is_refusal", "read_only_authorizer"]

#: The authorizer's actions a read-only connection allows: reading, functions, transactions.
_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE, sqlite3.SQLITE_TRANSACTION}
    | {sqlite3.SQLITE_SAVEPOINT}
)
#: SQLite's texts for a statement its authorizer refused.
_REFUSALS = frozenset({"not authorized", "authorization denied"})
#: The schema tables, which SQLite never lets a statement change without writable_schema.
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_temp_schema"})
#: Pragmas that only read, even when given an argument (the table or index they describe).
_PRAGMAS_READING_ARGUMENT = frozenset(
    {"table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list"}
    | {"foreign_key_list", "foreign_key_check", "integrity_check", "quick_check"}
)
#: Pragmas that write (or checkpoint, or analyse) even without an argument.
_PRAGMAS_WRITING_ALONE = frozenset({"optimize", "wal_checkpoint", "incremental_vacuum"})


def read_only_authorizer(action: int, first: str | None, second: str | None, *_: str | None) -> int:
    """SQLite's authorizer of a read-only source: allow what reads, deny all else.

    Denied: every write, ``CREATE``/``DROP``/``ALTER`` (temporary objects too), ``ATTACH``
    (which ``VACUUM INTO`` uses), ``DETACH``, ``ANALYZE``, ``REINDEX``, virtual tables,
    ``load_extension()``, and a pragma that sets a value or changes the file.
    """
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_UPDATE and first in _SCHEMA_TABLES:
        # Asked when a table-valued pragma (pragma_table_info) is prepared; SQLite itself
        # refuses a real change of the schema table unless writable_schema, which is denied.
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (second or "").lower() == "load_extension" else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (first or "").lower()
        reads = (
            name in _PRAGMAS_READING_ARGUMENT if second is not None else name not in _PRAGMAS_WRITING_ALONE
        )
        return sqlite3.SQLITE_OK if reads else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_DENY


def is_refusal(text: str) -> bool:
    """Whether SQLite's error ``text`` says the authorizer refused the statement."""
    return text in _REFUSALS or text.startswith("not authorized to use function")

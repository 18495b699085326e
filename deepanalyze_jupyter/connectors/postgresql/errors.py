"""psycopg errors rewritten as the package's errors: one line, the source named, no secret.

- connecting: a refused password, a missing role or a pg_hba rule ->
  :class:`AuthenticationFailed`; anything else -> :class:`ConnectionFailed`;
- querying: the server's message with its SQLSTATE and the error's position in the SQL
  the user wrote -> :class:`QueryError` (a missing table too: it is the query that is
  wrong); a connection that broke during the query -> :class:`ConnectionFailed`.

The texts come from libpq and the server, which never repeat a password; the registry
masks registered secrets in every message on top of that.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import psycopg
from psycopg import errors as pg_errors

from ...errors import AuthenticationFailed, ConfigurationError, ConnectionFailed, QueryError

__all__ = ["connect_error", "one_line", "query_error"]

_AUTH_SQLSTATES = frozenset({"28P01", "28000"})
_AUTH_TEXT_RE = re.compile(
    r"password authentication failed|authentication failed|no password supplied|"
    r"pg_hba\.conf|role \".*\" does not exist|password is required",
    re.IGNORECASE,
)
_SETTING_TEXT_RE = re.compile(
    r'unrecognized configuration parameter "[^"]*"|invalid value for parameter "[^"]*": "[^"]*"|'
    r'parameter "[^"]*" cannot be [a-z ]*'
)
_LIBPQ_NOISE_RE = re.compile(r"^(connection failed:\s*)+|\b(FATAL|ERROR):\s+", re.IGNORECASE)


_SENTENCE_ENDS = (".", "!", "?", ":", ";", ",")


def one_line(text: str) -> str:
    """``text`` in one line, each of its lines read as a sentence.

    libpq writes one sentence a line and ends only some of them (``...failed: Connection
    refused`` then ``Is the server running...?``): a line that does not end a sentence
    gets a full stop before the next one.
    """
    sentences: list[str] = []
    for line in text.splitlines():
        words = " ".join(line.split())
        if not words:
            continue
        if sentences and not sentences[-1].endswith(_SENTENCE_ENDS):
            sentences[-1] += "."
        sentences.append(words)
    return " ".join(sentences)


def connect_error(error: psycopg.Error, *, source: str, target: str) -> ConnectionFailed | ConfigurationError:
    """The error for a failed connection attempt to ``target`` (host, port, database)."""
    reason = one_line(_LIBPQ_NOISE_RE.sub("", str(error))) or type(error).__name__
    setting = _SETTING_TEXT_RE.search(reason)
    if setting:  # a server setting of options 'set' or 'options'
        return ConfigurationError(f"the server refused a setting: {setting.group().strip()}", source=source)
    if getattr(error, "sqlstate", None) in _AUTH_SQLSTATES or _AUTH_TEXT_RE.search(reason):
        return AuthenticationFailed(f"authentication failed for {target}: {reason}", source=source)
    return ConnectionFailed(f"cannot connect to {target}: {reason}", source=source)


def query_error(
    error: psycopg.Error,
    *,
    source: str,
    connection_lost: bool = False,
    position: Callable[[int], int | None] | None = None,
) -> ConnectionFailed | QueryError:
    """The error for a failed query; ``position`` maps the server's error position to the user's SQL."""
    diag = error.diag
    primary = one_line(diag.message_primary or str(error)) or type(error).__name__
    if connection_lost:
        return ConnectionFailed(
            f"the connection was lost during the query ({primary}); the next query reconnects",
            source=source,
        )
    parts = [primary]
    details = []
    if diag.sqlstate:
        details.append(f"SQLSTATE {diag.sqlstate}")
    where = _position(diag.statement_position, position)
    if where is not None:
        details.append(f"at character {where}")
    if details:
        parts.append(f"({', '.join(details)})")
    if diag.message_detail:
        parts.append(f"- {one_line(diag.message_detail)}")
    if diag.message_hint:
        parts.append(f"- hint: {one_line(diag.message_hint)}")
    if isinstance(error, pg_errors.ReadOnlySqlTransaction):
        parts.append("- the source is read-only; register it with read_only=False to allow writes")
    return QueryError(" ".join(parts), source=source)


def _position(reported: str | None, mapping: Callable[[int], int | None] | None) -> int | None:
    if not reported or not reported.isdigit():
        return None
    value = int(reported)
    return mapping(value) if mapping is not None else value

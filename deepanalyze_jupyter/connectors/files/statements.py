"""Telling an SQL statement from a list of paths, in a ``%%dsquery`` cell on a file source."""

from __future__ import annotations

__all__ = ["is_sql"]

#: The words an SQL statement on files starts with; a path never starts with one and a space.
_STATEMENT_WORDS = frozenset(
    {"select", "with", "from", "describe", "summarize", "pivot", "unpivot", "values", "table", "explain"}
)


def is_sql(text: str) -> bool:
    """Whether ``text`` is an SQL statement (``SELECT ...``, ``FROM 'x.csv'``) rather than paths.

    Comment lines (``#``, ``--``) before it are skipped.
    """
    lines = [line.strip() for line in text.strip().splitlines()]
    words = " ".join(line for line in lines if line and not line.startswith(("#", "--"))).split()
    return len(words) > 1 and words[0].lower() in _STATEMENT_WORDS

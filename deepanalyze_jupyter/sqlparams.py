"""Named ``:name`` parameters in SQL text: finding them and handing them to a driver.

Users write ``WHERE city = :city``; the values come from a mapping and are bound by the
driver, never pasted into the text by hand. This module only reads the SQL: it tells
which names a statement uses and rewrites the placeholders for drivers that spell them
differently (psycopg's ``%(name)s``). A placeholder is a ``:`` followed by a name, where
the ``:`` does not follow a letter, digit, ``_``, ``:`` or ``\\``, so that casts
(``x::int``), array slices (``a[lo:hi]``) and ``:=`` stay SQL. ``\\:`` writes a literal
colon. Nothing inside string literals (``'..'``, ``E'..'``, ``$tag$..$tag$``), quoted
identifiers or comments is a placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "BoundSQL",
    "bind_literals",
    "find_parameters",
    "has_statement",
    "missing_parameters",
    "strip_terminator",
    "to_numbered",
    "to_pyformat",
]

_DOLLAR_TAG_RE = re.compile(r"\$(?:[^\W\d$]\w*)?\$")
_WORD_CHAR_RE = re.compile(r"[\w$]")


class _Piece(NamedTuple):
    """A slice of the SQL text: code, a comment, or one placeholder (``name`` set)."""

    text: str
    start: int
    name: str | None = None
    comment: bool = False
    #: The backslash of a ``\\:`` escape, dropped from the output.
    escape: bool = False


def _scan(sql: str) -> Iterator[_Piece]:
    """Split ``sql`` into code, comments and placeholders; quoted parts stay inside code.

    Linear in the length of ``sql``: ordinary text, quoted parts and comments are each
    passed over by one regular expression that cannot back off more than it read.
    """
    length = len(sql)
    run_start = 0
    index = 0
    while index < length:
        special = _SPECIAL_CHAR_RE.search(sql, index)
        if special is None:
            break
        index = special.start()
        char = sql[index]
        name = special.group("name")
        if name is not None:
            yield _Piece(sql[run_start:index], run_start)
            yield _Piece(special.group(), index, name)
            index = run_start = special.end()
        elif (char == "-" and sql.startswith("--", index)) or (char == "/" and sql.startswith("/*", index)):
            end = _line_comment_end(sql, index) if char == "-" else _block_comment_end(sql, index)
            yield _Piece(sql[run_start:index], run_start)
            yield _Piece(sql[index:end], index, comment=True)
            index = run_start = end
        elif char == "'":
            escapes = index > 0 and sql[index - 1] in "eE" and not _is_word_at(sql, index - 2)
            body = _E_STRING_BODY_RE if escapes else _STRING_BODY_RE
            index = body.match(sql, index + 1).end()  # type: ignore[union-attr]
        elif char == '"':
            index = _IDENTIFIER_BODY_RE.match(sql, index + 1).end()  # type: ignore[union-attr]
        elif char == "$" and not _is_word_at(sql, index - 1) and (tag := _DOLLAR_TAG_RE.match(sql, index)):
            end = sql.find(tag.group(), tag.end())
            index = length if end < 0 else end + len(tag.group())
        elif char == "\\" and sql.startswith("\\:", index):
            yield _Piece(sql[run_start:index], run_start)
            yield _Piece("\\", index, escape=True)
            run_start = index + 1
            index += 2
        else:
            index += 1
    yield _Piece(sql[run_start:], run_start)


#: A placeholder (``:`` not after a letter, digit, ``_``, ``$``, ``:`` or ``\\``, then a
#: name), or where something else than ordinary text may start.
_SPECIAL_CHAR_RE = re.compile(r"""(?<![\w$:\\]):(?P<name>[^\W\d]\w*)|[-/'"$\\:]""")
#: The rest of a string after its opening quote (``''`` is a quote inside); to the end if open.
_STRING_BODY_RE = re.compile(r"[^']*(?:''[^']*)*'?")
#: The same for an ``E'..'`` string, where a backslash also escapes the next character.
_E_STRING_BODY_RE = re.compile(r"[^'\\]*(?:(?:\\.|'')[^'\\]*)*(?:'|\\\Z)?", re.DOTALL)
#: The rest of a quoted identifier after its opening quote.
_IDENTIFIER_BODY_RE = re.compile(r'[^"]*(?:""[^"]*)*"?')
_COMMENT_MARK_RE = re.compile(r"/\*|\*/")


def _line_comment_end(sql: str, index: int) -> int:
    end = sql.find("\n", index)
    return len(sql) if end < 0 else end


def _is_word_at(sql: str, index: int) -> bool:
    return index >= 0 and _WORD_CHAR_RE.match(sql[index]) is not None


def _block_comment_end(sql: str, index: int) -> int:
    depth = 0
    for mark in _COMMENT_MARK_RE.finditer(sql, index):
        depth += 1 if mark.group() == "/*" else -1
        if depth == 0:
            return mark.end()
    return len(sql)


def find_parameters(sql: str) -> list[str]:
    """The names of the ``:name`` placeholders in ``sql``, each once, in order of appearance."""
    if ":" not in sql:
        return []
    names: dict[str, None] = {}
    for piece in _scan(sql):
        if piece.name is not None:
            names.setdefault(piece.name)
    return list(names)


def has_statement(sql: str) -> bool:
    """Whether ``sql`` holds more than comments, blanks and ``;`` (a cell of comments has none)."""
    return any(not piece.comment and piece.text.strip(" \t\r\n;") for piece in _scan(sql))


def missing_parameters(sql: str, params: Mapping[str, Any] | None) -> list[str]:
    """The placeholder names of ``sql`` that ``params`` gives no value for."""
    given = params or {}
    return [name for name in find_parameters(sql) if name not in given]


def to_pyformat(sql: str) -> str:
    """Rewrite ``:name`` as ``%(name)s`` and ``%`` as ``%%``, for psycopg's ``execute``."""
    return "".join(
        f"%({piece.name})s" if piece.name is not None else piece.text.replace("%", "%%")
        for piece in _scan(sql)
        if not piece.escape
    )


@dataclass(frozen=True)
class BoundSQL:
    """SQL text with every placeholder rewritten (as a quoted literal, or as ``$n``).

    ``shifts`` maps positions in ``text`` back to positions in the text the user wrote,
    so that a server's error position points at the right character.
    """

    text: str
    #: (start in ``text``, start in the original, length there, length in the original)
    shifts: tuple[tuple[int, int, int, int], ...] = ()

    def original_position(self, position: int) -> int:
        """Map a 1-based character position in :attr:`text` to one in the original SQL."""
        offset = 0
        for bound_start, original_start, bound_length, original_length in self.shifts:
            if position - 1 < bound_start:
                break
            if position - 1 < bound_start + bound_length:
                return original_start + 1
            offset = (original_start + original_length) - (bound_start + bound_length)
        return position + offset


def bind_literals(sql: str, params: Mapping[str, Any] | None, literal: Callable[[Any], str]) -> BoundSQL:
    """Replace each ``:name`` by ``literal(params[name])``, the driver's quoting of the value.

    For statements that cannot take server-side parameters (such as ``COPY``). Raises
    ``KeyError`` naming the first placeholder without a value.
    """
    values = params or {}
    literals: dict[str, str] = {}

    def replacement(name: str) -> str:
        if name not in literals:
            literals[name] = literal(values[name])
        return literals[name]

    return _render(sql, replacement)


def to_numbered(sql: str) -> tuple[BoundSQL, list[str]]:
    """Rewrite ``:name`` as ``$1``, ``$2``... (one number per name), for server-side binding.

    Returns the rewritten SQL and the names in the order of their numbers.
    """
    numbers: dict[str, int] = {}

    def replacement(name: str) -> str:
        return f"${numbers.setdefault(name, len(numbers) + 1)}"

    return _render(sql, replacement), list(numbers)


def _render(sql: str, replacement: Callable[[str], str]) -> BoundSQL:
    if ":" not in sql and "\\" not in sql:
        return BoundSQL(sql)
    parts: list[str] = []
    shifts: list[tuple[int, int, int, int]] = []
    size = 0
    for piece in _scan(sql):
        if piece.escape:
            text = ""
        elif piece.name is not None:
            text = replacement(piece.name)
        else:
            text = piece.text
        if piece.escape or piece.name is not None:
            shifts.append((size, piece.start, len(text), len(piece.text)))
        parts.append(text)
        size += len(text)
    return BoundSQL("".join(parts), tuple(shifts))


def strip_terminator(sql: str) -> str:
    """Remove the ``;`` that ends the (last) statement, if any, keeping comments after it."""
    if ";" not in sql:
        return sql
    last: _Piece | None = None
    for piece in _scan(sql):
        if not piece.comment and not piece.escape and piece.text.strip():
            last = piece
    if last is None or last.name is not None or not last.text.rstrip().endswith(";"):
        return sql
    cut = last.start + len(last.text.rstrip()) - 1
    return sql[:cut] + sql[cut + 1 :]

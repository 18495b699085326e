"""Shell-like splitting of a magic line into words, in time linear in the line."""

from __future__ import annotations

import os
import re

from IPython.core.error import UsageError
from IPython.utils.process import arg_split  # type: ignore[attr-defined]

__all__ = ["split_line", "without_final_semicolon"]


def split_line(line: str, *, strict: bool = True) -> list[str]:
    """Split a magic line into words the way a shell does (quotes group, backslashes escape).

    The words are those of :func:`shlex.split` (POSIX rules; on Windows, IPython's own),
    found in time linear in the line. When ``strict`` is false, a line that ends inside
    quotes or after a backslash gives what was read of its last word as that word.
    """
    if os.name == "nt":  # pragma: no cover - backslashes are path separators there
        try:
            return arg_split(line, posix=False, strict=strict)
        except ValueError as error:
            raise UsageError(f"cannot read the line: {error} (check the quotes)") from None
    if not _QUOTING_CHAR_RE.search(line):
        return _BLANKS_RE.split(line.strip(_BLANKS)) if line.strip(_BLANKS) else []
    well_formed = _SHELL_WORDS_RE.match(line).end()  # type: ignore[union-attr]
    words = [_unquoted(word) for word in _SHELL_WORD_RE.findall(line, 0, well_formed)]
    rest = line[well_formed:]
    if rest:  # an open quote or a final backslash: the rest is the last word
        head = _SHELL_WORD_START_RE.match(rest).group()  # type: ignore[union-attr]
        problem, tail = _unfinished(rest[len(head) :])
        if strict:
            raise UsageError(f"cannot read the line: {problem} (check the quotes)")
        words.append(_unquoted(head) + tail)
    return words


def without_final_semicolon(line: str) -> tuple[str, bool]:
    """``line`` without the ``;`` that ends it outside quotes, and whether it had one.

    A final ``;`` is IPython's sign that the output is not to be shown (``%datasource
    list;``); it is no part of the last word. A quoted or escaped ``;`` (``'a;'``, ``a\\;``)
    is text and stays.
    """
    stripped = line.rstrip(_BLANKS)
    if not stripped.endswith(";"):
        return line, False
    head = stripped[:-1]
    try:
        split_line(head)
    except UsageError:  # the ``;`` is inside an open quote or after a backslash
        return line, False
    return head, True


_BLANKS = " \t\r\n"
# A word is runs of plain text between escapes and quoted parts, written so that no text
# can be read as pieces in two ways: a failed match backs off in linear time.
_PLAIN = r"""[^ \t\r\n'"\\]*"""
_SPECIAL = r"""(?:\\.|'[^']*'|"[^"\\]*(?:\\.[^"\\]*)*")"""
_WORD = rf"(?=[^ \t\r\n]){_PLAIN}(?:{_SPECIAL}{_PLAIN})*"
#: A whole POSIX shell word (:mod:`shlex` rules): plain text, escapes and quoted parts.
_SHELL_WORD_RE = re.compile(rf"{_WORD}(?=[ \t\r\n]|\Z)", re.DOTALL)
#: The words of a line up to where one is left open (a quote, a final backslash).
_SHELL_WORDS_RE = re.compile(rf"[ \t\r\n]*(?:{_WORD}(?:[ \t\r\n]+|\Z))*", re.DOTALL)
#: The complete pieces at the start of a word that does not end well.
_SHELL_WORD_START_RE = re.compile(rf"{_PLAIN}(?:{_SPECIAL}{_PLAIN})*", re.DOTALL)
_BLANKS_RE = re.compile(r"[ \t\r\n]+")
_QUOTING_CHAR_RE = re.compile(r"""['"\\]""")
_QUOTING_RE = re.compile(r"""\\(.)|'([^']*)'|"([^"\\]*(?:\\.[^"\\]*)*)\"""", re.DOTALL)
#: Inside double quotes a backslash escapes only ``"`` and itself.
_DOUBLE_QUOTED_ESCAPE_RE = re.compile(r'\\(["\\])')


def _unquoted(word: str) -> str:
    return _QUOTING_RE.sub(_unquote, word) if _QUOTING_CHAR_RE.search(word) else word


def _unquote(piece: re.Match[str]) -> str:
    escaped, single, double = piece.groups()
    if double is not None:
        return _DOUBLE_QUOTED_ESCAPE_RE.sub(r"\1", double) if "\\" in double else double
    return escaped if escaped is not None else single


def _unfinished(rest: str) -> tuple[str, str]:
    """Why ``rest`` (starting at a quote or a backslash) ends the line early, and its text."""
    if rest[0] == "\\":
        return "No escaped character", ""
    body = rest[1:]
    if rest[0] == '"':
        body = _DOUBLE_QUOTED_ESCAPE_RE.sub(r"\1", body.removesuffix("\\"))
    return "No closing quotation", body

"""Shell-style globs over '/'-separated paths (blob names, files under a folder).

``*``, ``?`` and ``[...]`` match within one path segment and never cross ``/``;
a segment that is exactly ``**`` matches any number of segments, none included, so
``**/*.parquet`` matches ``a.parquet`` and ``x/y/a.parquet``. Matching is
case-sensitive, like blob names.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["glob_escape", "glob_matcher", "glob_prefix", "is_glob"]

_WILDCARDS = frozenset("*?[")


def is_glob(text: str) -> bool:
    """Tell whether ``text`` holds a wildcard (``*``, ``?`` or ``[``)."""
    return any(char in _WILDCARDS for char in text)


def glob_escape(path: str) -> str:
    """A pattern matching exactly the file ``path``, even when its name holds ``*``, ``?`` or ``[``.

    ``data[1].csv`` -> ``data[[]1].csv``; a path without a wildcard is returned as it is.
    """
    return "".join(f"[{char}]" if char in _WILDCARDS else char for char in path)


def glob_prefix(pattern: str) -> str:
    """The literal folder part of ``pattern`` before its first wildcard, to list from.

    ``sales/2024/*.csv`` -> ``sales/2024/``; ``sales/q*/x.csv`` -> ``sales/``;
    ``**/*.parquet`` -> ``""``. The result is empty or ends with ``/``, and every path
    the pattern matches starts with it.
    """
    first = next((index for index, char in enumerate(pattern) if char in _WILDCARDS), len(pattern))
    return pattern[: pattern.rfind("/", 0, first) + 1]


def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A predicate telling whether a whole path matches ``pattern``."""
    regex = re.compile(_translate(pattern), re.DOTALL)

    def matches(path: str) -> bool:
        return regex.fullmatch(path) is not None

    return matches


def _translate(pattern: str) -> str:
    """The regular expression (for ``fullmatch``) equivalent to ``pattern``."""
    segments = pattern.split("/")
    parts: list[str] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "**":
            # Any number of whole segments: "a/**/b" matches "a/b" and "a/x/y/b";
            # a trailing "**" matches everything below the folder.
            parts.append(".*" if index == last else "(?:[^/]*/)*")
            continue
        parts.append(_translate_segment(segment))
        if index != last:
            parts.append("/")
    return "".join(parts)


def _translate_segment(segment: str) -> str:
    out: list[str] = []
    index, size = 0, len(segment)
    while index < size:
        char = segment[index]
        index += 1
        if char == "*":
            while index < size and segment[index] == "*":
                index += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = _class_end(segment, index)
            if end < 0:
                out.append(re.escape(char))
            else:
                out.append(_translate_class(segment[index:end]))
                index = end + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


def _class_end(segment: str, start: int) -> int:
    """The index of the ``]`` closing a class opened before ``start``, or -1."""
    index = start
    if index < len(segment) and segment[index] in "!^":
        index += 1
    if index < len(segment) and segment[index] == "]":
        index += 1  # a leading ']' is a member, as in the shell
    return segment.find("]", index)


def _translate_class(body: str) -> str:
    negated = body[:1] in ("!", "^")
    if negated:
        body = body[1:]
    members = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[").replace("]", "\\]")
    # A range such as "a-z" stays a range; '-' at either end is literal, as in regex.
    if negated:
        return f"[^/{members}]"
    return f"(?!/)[{members}]"

"""Removing a refused secret from IPython's input history, in memory and on disk.

By the time a magic runs, IPython has already stored its cell: in ``In``/``_ih`` (the
history manager's parsed and raw input lists), in ``_i``/``_ii``/``_iii``/``_iN``, in the
history manager's cache of rows to write, in ``linecache`` (the source tracebacks and
debuggers show), and (through its saving thread) in the current session's rows of the
SQLite history file. Each copy is rewritten with the secret masked.
"""

from __future__ import annotations

import linecache
import os
import re
import sqlite3
from collections.abc import Callable, MutableSequence, Sequence
from contextlib import closing, nullcontext
from pathlib import Path
from typing import Any

from ..redaction import MASK

__all__ = ["Replacement", "scrub_input_history", "scrub_text"]

#: ``(secret text, what replaces it)``.
Replacement = tuple[str, str]

_INPUT_VARIABLE_RE = re.compile(r"_i(?:i{0,2}|\d+|00)")
_HISTORY_TRAITS = ("_i00", "_i", "_ii", "_iii")
#: Shortest secret replaced wherever it appears in a cell (shorter ones only inside the line).
_MIN_LOOSE_LENGTH = 3


def _python_single(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _python_double(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _shell_double(text: str) -> str:
    return re.sub(r'([\\"$`])', r"\\\1", text)


#: How a typed value may appear in stored input: as typed, inside the Python string
#: IPython makes of a magic line, or escaped inside double quotes in the line.
_ESCAPES: tuple[Callable[[str], str], ...] = (str, _python_single, _python_double, _shell_double)


def scrub_text(text: str, replacements: Sequence[Replacement], *, line: str | None = None) -> str:
    """Return ``text`` with each secret masked.

    When ``line`` (the magic line as the magic received it) appears in ``text``, as typed
    or as the Python string IPython makes of it, it is replaced by its masked version
    first; secrets left elsewhere (a line continued with a backslash) are masked wherever
    they appear.
    """
    if line:
        masked_line = _mask(line, replacements, loose=True)
        text = text.replace(line, masked_line).replace(repr(line), repr(masked_line))
    return _mask(text, replacements, loose=False)


def _mask(text: str, replacements: Sequence[Replacement], *, loose: bool) -> str:
    for secret, masked in replacements:
        if not secret or (not loose and len(secret) < _MIN_LOOSE_LENGTH):
            continue
        for escape in _ESCAPES:
            text = text.replace(escape(secret), escape(masked))
    return text


def scrub_input_history(shell: Any, replacements: Sequence[Replacement], *, line: str | None = None) -> None:
    """Mask the secrets in every copy of the input history that ``shell`` keeps."""
    replacements = [(secret, masked or MASK) for secret, masked in replacements if secret]
    if not replacements:
        return

    def scrub(text: str) -> str:
        return scrub_text(text, replacements, line=line)

    history = getattr(shell, "history_manager", None)
    if history is not None:
        _scrub_history_manager(history, scrub)
    namespace = getattr(shell, "user_ns", None)
    if isinstance(namespace, dict):
        for name, value in list(namespace.items()):
            if isinstance(value, str) and _INPUT_VARIABLE_RE.fullmatch(name):
                namespace[name] = scrub(value)
    _scrub_prompt_history(shell, scrub)
    _scrub_compiled_cells(scrub)
    _scrub_log_file(shell, scrub)


def _scrub_log_file(shell: Any, scrub: Callable[[str], str]) -> None:
    """``%logstart`` writes each cell to its log file before the cell runs: rewrite the file."""
    logger: Any = getattr(shell, "logger", None)
    logfile = getattr(logger, "logfile", None)
    if logfile is None or logfile.closed:
        return
    logfile.flush()
    path = Path(logger.logfname)
    text = path.read_text(encoding="utf-8")
    cleaned = scrub(text)
    if cleaned != text:
        path.write_text(cleaned, encoding="utf-8")
        logfile.seek(0, os.SEEK_END)  # a log opened for writing goes on at the new end


def _scrub_history_manager(history: Any, scrub: Callable[[str], str]) -> None:
    for name in ("input_hist_parsed", "input_hist_raw"):
        entries = getattr(history, name, None)
        if isinstance(entries, MutableSequence):
            _scrub_list(entries, scrub)
    for name in _HISTORY_TRAITS:
        value = getattr(history, name, None)
        if isinstance(value, str):
            setattr(history, name, scrub(value))
    # Holding the cache lock keeps the saving thread from writing rows meanwhile: each
    # row is scrubbed either in the cache or in the file.
    lock = getattr(history, "db_input_cache_lock", None)
    with lock if lock is not None else nullcontext():
        history.db_input_cache = [
            (number, scrub(source), scrub(source_raw))
            for number, source, source_raw in history.db_input_cache
        ]
        if getattr(history, "enabled", False):
            _scrub_database(history, scrub)


def _scrub_list(entries: MutableSequence[Any], scrub: Callable[[str], str]) -> None:
    for index, entry in enumerate(entries):
        if isinstance(entry, str):
            cleaned = scrub(entry)
            if cleaned != entry:
                entries[index] = cleaned


def _scrub_database(history: Any, scrub: Callable[[str], str]) -> None:
    """Rewrite the current session's rows of the history database."""
    hist_file = str(getattr(history, "hist_file", ":memory:"))
    # A connection of our own: the history manager's belongs to the thread that made it.
    connection = history.db if hist_file == ":memory:" else sqlite3.connect(hist_file, timeout=10)
    owner = nullcontext(connection) if hist_file == ":memory:" else closing(connection)
    with owner, connection:
        rows = connection.execute(
            "SELECT line, source, source_raw FROM history WHERE session = ?", (history.session_number,)
        ).fetchall()
        for number, source, source_raw in rows:
            cleaned, cleaned_raw = scrub(source or ""), scrub(source_raw or "")
            if (cleaned, cleaned_raw) != (source or "", source_raw or ""):
                connection.execute(
                    "UPDATE history SET source = ?, source_raw = ? WHERE session = ? AND line = ?",
                    (cleaned, cleaned_raw, history.session_number, number),
                )


def _scrub_compiled_cells(scrub: Callable[[str], str]) -> None:
    """IPython caches each cell's source in ``linecache`` (entries without a file time)."""
    for name, entry in list(linecache.cache.items()):
        if len(entry) != 4 or entry[1] is not None:
            continue
        size, mtime, lines, fullname = entry
        cleaned = scrub("".join(lines))
        if cleaned != "".join(lines):
            linecache.cache[name] = (size, mtime, cleaned.splitlines(keepends=True), fullname)


def _scrub_prompt_history(shell: Any, scrub: Callable[[str], str]) -> None:
    """A terminal IPython's prompt keeps its own copy of recent inputs (for the Up key)."""
    prompt_history = getattr(getattr(shell, "pt_app", None), "history", None)
    strings = getattr(prompt_history, "_loaded_strings", None)
    if isinstance(strings, list):
        _scrub_list(strings, scrub)

"""Showing the frames the magics return with a chosen number of rows.

pandas decides how many rows a DataFrame shows from its global ``display.max_rows``.
``DataSourceMagics.displaylimit`` should change that for the magics' results only, so the
frames the magics return are remembered (weakly, by identity) and IPython's HTML and text
formatters show just those within a ``pandas.option_context``. Every other frame, and
pandas' own options, are left alone.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, cast

import pandas as pd

__all__ = ["DisplayLimit"]


class DisplayLimit:
    """Formats remembered frames with at most ``rows()`` rows (0 leaves them alone).

    The formatters are installed only while a limit is set (see ``DataSourceMagics``).
    """

    def __init__(self, rows: Callable[[], int]) -> None:
        self._rows = rows
        self._frames: weakref.WeakValueDictionary[int, pd.DataFrame] = weakref.WeakValueDictionary()
        self._formatters: list[tuple[Any, Any]] = []

    def __repr__(self) -> str:
        return f"<DisplayLimit rows={self._rows()} frames={len(self._frames)}>"

    def remember(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Show ``frame`` with the limit from now on; return it."""
        self._frames[id(frame)] = frame
        return frame

    def install(self, shell: Any) -> None:
        """Register the formatters with ``shell`` (kept: the ones registered before)."""
        formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
        if formatters is None or self._formatters:
            return
        html, plain = formatters["text/html"], formatters["text/plain"]
        previous_html = html.for_type(pd.DataFrame, self._html_printer(html.lookup_by_type))
        self._formatters.append((html, previous_html))
        previous_plain = plain.for_type(pd.DataFrame, self._text_printer(plain.lookup_by_type))
        self._formatters.append((plain, previous_plain))

    def uninstall(self) -> None:
        """Put back the formatters that were there before :meth:`install`."""
        for formatter, previous in reversed(self._formatters):
            if previous is None:
                formatter.pop(pd.DataFrame, None)
            else:
                formatter.for_type(pd.DataFrame, previous)
        self._formatters.clear()

    def _limit(self, frame: Any) -> int:
        rows = self._rows()
        return rows if rows > 0 and self._frames.get(id(frame)) is frame else 0

    def _html_printer(self, lookup: Callable[[type], Any]) -> Callable[[pd.DataFrame], str | None]:
        previous = _previous_printer(lookup)

        def print_html(frame: pd.DataFrame) -> str | None:
            rows = self._limit(frame)
            if not rows:
                return previous(frame) if previous is not None else _html_of(frame)
            with pd.option_context("display.max_rows", rows, "display.min_rows", rows):
                return _html_of(frame)

        return print_html

    def _text_printer(self, lookup: Callable[[type], Any]) -> Callable[[pd.DataFrame, Any, bool], None]:
        previous = _previous_printer(lookup)

        def print_text(frame: pd.DataFrame, printer: Any, cycle: bool) -> None:
            rows = self._limit(frame)
            if not rows:
                if previous is not None:
                    previous(frame, printer, cycle)
                else:
                    _print_lines(repr(frame), printer)
                return
            with pd.option_context("display.max_rows", rows, "display.min_rows", rows):
                _print_lines(repr(frame), printer)

        return print_text


def _print_lines(text: str, printer: Any) -> None:
    """Write a multi-line repr the way IPython's pretty printer does."""
    for index, line in enumerate(text.splitlines()):
        if index:
            printer.break_()
        printer.text(line)


def _html_of(frame: pd.DataFrame) -> str | None:
    html = cast(Any, frame)._repr_html_()
    return None if html is None else str(html)


def _previous_printer(lookup: Callable[[type], Any]) -> Any:
    try:
        return lookup(pd.DataFrame)
    except KeyError:
        return None

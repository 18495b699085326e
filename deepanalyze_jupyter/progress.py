"""Progress reporting for long reads and queries.

Connectors report through the small :class:`Progress` protocol and never import a
progress-bar library. The notebook front end draws them with ``tqdm.auto``
(:mod:`deepanalyze_jupyter.notebook.progress_bar`).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["NullProgress", "Progress", "ProgressFactory", "null_progress"]


class Progress(Protocol):
    """A running progress report: bytes and items done so far."""

    def update(self, nbytes: int = 0, items: int = 0) -> None:
        """Record ``nbytes`` more bytes and ``items`` more files or rows done."""

    def close(self) -> None:
        """End the report (also when the work failed or was interrupted)."""


class ProgressFactory(Protocol):
    """Makes a :class:`Progress` for one piece of work."""

    def __call__(
        self, description: str, *, total_bytes: int | None, total_items: int | None, items: str = "files"
    ) -> Progress:
        """A report of ``description``; ``items`` names what the items are (files, rows)."""


class NullProgress:
    """A progress report that shows nothing."""

    def update(self, nbytes: int = 0, items: int = 0) -> None:
        """Ignore the update."""

    def close(self) -> None:
        """Nothing to close."""


def null_progress(
    description: str, *, total_bytes: int | None, total_items: int | None, items: str = "files"
) -> Progress:
    """A :class:`ProgressFactory` that shows nothing."""
    return NullProgress()

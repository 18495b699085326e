"""Progress reporting for long reads and queries.

Connectors report through the small :class:`Progress` protocol and never import a
progress-bar library. :class:`TqdmProgress` draws with ``tqdm.auto`` (a widget in
notebooks, text in terminals) and only appears once the work has taken a moment.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["NullProgress", "Progress", "ProgressFactory", "TqdmProgress", "tqdm_progress"]


class Progress(Protocol):
    """A running progress report: bytes and items done so far."""

    def update(self, nbytes: int = 0, items: int = 0) -> None:
        """Record ``nbytes`` more bytes and ``items`` more files or rows done."""

    def close(self) -> None:
        """End the report (also when the work failed or was interrupted)."""


class ProgressFactory(Protocol):
    """Makes a :class:`Progress` for one piece of work."""

    def __call__(self, description: str, *, total_bytes: int | None, total_items: int | None) -> Progress: ...


class NullProgress:
    """A progress report that shows nothing."""

    def update(self, nbytes: int = 0, items: int = 0) -> None:
        """Ignore the update."""

    def close(self) -> None:
        """Nothing to close."""


def null_progress(description: str, *, total_bytes: int | None, total_items: int | None) -> Progress:
    """A :class:`ProgressFactory` that shows nothing."""
    return NullProgress()


class TqdmProgress:
    """Progress drawn by ``tqdm.auto``: bytes on the bar, files in its postfix."""

    def __init__(
        self,
        description: str,
        *,
        total_bytes: int | None,
        total_items: int | None,
        delay: float = 0.5,
    ) -> None:
        from tqdm.auto import tqdm

        self._total_items = total_items
        self._items = 0
        self._bar: Any = tqdm(
            total=total_bytes,
            desc=description,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            delay=delay,
            leave=False,
            dynamic_ncols=True,
        )

    def update(self, nbytes: int = 0, items: int = 0) -> None:
        """Advance the bar."""
        if items:
            self._items += items
            total = f"/{self._total_items}" if self._total_items else ""
            self._bar.set_postfix_str(f"{self._items}{total} files", refresh=False)
        if nbytes:
            self._bar.update(nbytes)

    def close(self) -> None:
        """Remove the bar."""
        self._bar.close()


def tqdm_progress(description: str, *, total_bytes: int | None, total_items: int | None) -> Progress:
    """A :class:`ProgressFactory` drawing with tqdm after half a second of work."""
    return TqdmProgress(description, total_bytes=total_bytes, total_items=total_items)

"""Progress bars for the notebook front end: ``tqdm.auto`` (a widget in notebooks, text in
terminals), shown only once the work has taken a moment."""

from __future__ import annotations

from typing import Any

from ..progress import Progress

__all__ = ["TqdmProgress", "tqdm_progress"]


class TqdmProgress:
    """Progress drawn by ``tqdm.auto``: bytes on the bar, files in its postfix."""

    def __init__(
        self,
        description: str,
        *,
        total_bytes: int | None,
        total_items: int | None,
        items: str = "files",
        delay: float = 0.5,
    ) -> None:
        from tqdm.auto import tqdm

        self._total_items = total_items
        self._items_name = items
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
            self._bar.set_postfix_str(f"{self._items:,}{total} {self._items_name}", refresh=False)
        if nbytes:
            self._bar.update(nbytes)

    def close(self) -> None:
        """Remove the bar."""
        self._bar.close()


def tqdm_progress(
    description: str, *, total_bytes: int | None, total_items: int | None, items: str = "files"
) -> Progress:
    """A :class:`ProgressFactory` drawing with tqdm after half a second of work."""
    return TqdmProgress(description, total_bytes=total_bytes, total_items=total_items, items=items)

"""Progress bars for the notebook front end: ``tqdm.auto`` (a widget in notebooks, text in
terminals), shown only once the work has taken a moment."""

from __future__ import annotations

from typing import Any

from ..progress import Progress

__all__ = ["TqdmProgress", "tqdm_progress"]


class TqdmProgress:
    """Progress drawn by ``tqdm.auto`` once the work has taken ``delay`` seconds.

    The bar counts what the work gives a total for: its items (the rows of a write, a
    query's percentage) when only they have one, else its bytes. What it does not count
    (the files or rows beside the bytes, the bytes beside the rows) goes after it. The bar
    is made here, where the work starts (a widget made later, in a worker thread, would
    not show in the cell), and appears after ``delay`` seconds of work.
    """

    def __init__(
        self,
        description: str,
        *,
        total_bytes: int | None,
        total_items: int | None,
        items: str = "files",
        delay: float = 0.5,
        **tqdm_options: Any,
    ) -> None:
        """``tqdm_options`` go to tqdm as they are (``file=``, ``mininterval=``...)."""
        from tqdm.auto import tqdm

        self._total_items = total_items
        self._items_name = items
        self._counts_items = total_items is not None and total_bytes is None
        self._bytes = 0
        self._items = 0
        if self._counts_items:  # a large count scaled (1.2M), a small one as it is (45/100)
            shape: dict[str, Any] = {
                "total": total_items,
                "unit": f" {items}",
                "unit_scale": (total_items or 0) >= 1000,
            }
        else:
            shape = {"total": total_bytes, "unit": "B", "unit_scale": True, "unit_divisor": 1024}
        options = {"delay": delay, "leave": False, "dynamic_ncols": True, **shape, **tqdm_options}
        self._bar: Any = tqdm(desc=description, **options)

    def update(self, nbytes: int = 0, items: int = 0) -> None:
        """Advance the bar by what it counts; note the rest beside it."""
        self._bytes += nbytes
        self._items += items
        counted, other = (items, nbytes) if self._counts_items else (nbytes, items)
        if other:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
        if counted:
            self._bar.update(counted)

    def close(self) -> None:
        """Remove the bar."""
        self._bar.close()

    def _postfix(self) -> str:
        """What the bar does not count: the items beside its bytes, or the bytes beside its items."""
        if not self._counts_items:
            total = f"/{self._total_items:,}" if self._total_items else ""
            return f"{self._items:,}{total} {self._items_name}"
        from tqdm import tqdm

        return str(tqdm.format_sizeof(self._bytes, "B", 1024))


def tqdm_progress(
    description: str, *, total_bytes: int | None, total_items: int | None, items: str = "files"
) -> Progress:
    """A :class:`ProgressFactory` drawing with tqdm after half a second of work."""
    return TqdmProgress(description, total_bytes=total_bytes, total_items=total_items, items=items)

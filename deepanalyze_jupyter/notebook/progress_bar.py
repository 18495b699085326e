"""Progress bars for the notebook front end: ``tqdm.auto`` (a widget in notebooks, text in
terminals), shown only once the work has taken a moment."""

from __future__ import annotations

import time
from typing import IO, Any

from ..progress import Progress

__all__ = ["TqdmProgress", "tqdm_progress"]


class TqdmProgress:
    """Progress drawn by ``tqdm.auto`` once the work has taken ``delay`` seconds.

    The bar counts what the work reports: bytes when it reports bytes (its files or rows
    then go in the postfix), else its items (the rows of a write, a query's percentage),
    with the bytes, if some come later, in the postfix. It is made at the first report,
    when that is known, and appears ``delay`` seconds after the work began.
    """

    def __init__(
        self,
        description: str,
        *,
        total_bytes: int | None,
        total_items: int | None,
        items: str = "files",
        delay: float = 0.5,
        file: IO[str] | None = None,
    ) -> None:
        self._description = description
        self._total_bytes = total_bytes
        self._total_items = total_items
        self._items_name = items
        self._delay = delay
        self._file = file
        self._started = time.monotonic()
        self._bytes = 0
        self._items = 0
        self._counts_bytes = True
        self._bar: Any = None

    def update(self, nbytes: int = 0, items: int = 0) -> None:
        """Advance the bar (made by the first report of any work)."""
        self._bytes += nbytes
        self._items += items
        if self._bar is None:
            if nbytes or items:
                self._bar = self._open(counts_bytes=bool(nbytes) or self._total_bytes is not None)
            return
        counted, other = (nbytes, items) if self._counts_bytes else (items, nbytes)
        if other:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
        if counted:
            self._bar.update(counted)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()

    def _open(self, *, counts_bytes: bool) -> Any:
        from tqdm.auto import tqdm

        self._counts_bytes = counts_bytes
        if counts_bytes:
            shape: dict[str, Any] = {
                "total": self._total_bytes,
                "initial": self._bytes,
                "unit": "B",
                "unit_scale": True,
                "unit_divisor": 1024,
            }
        else:  # a large count scaled (1.2M), a small one as it is (45/100)
            small = self._total_items is not None and self._total_items < 1000
            shape = {
                "total": self._total_items,
                "initial": self._items,
                "unit": f" {self._items_name}",
                "unit_scale": not small,
            }
        waited = time.monotonic() - self._started
        return tqdm(
            desc=self._description,
            postfix=self._postfix() or None,
            delay=max(0.0, self._delay - waited),
            leave=False,
            dynamic_ncols=True,
            file=self._file,
            **shape,
        )

    def _postfix(self) -> str:
        """What the bar does not count: the items of a bar of bytes, the bytes of a bar of items."""
        if self._counts_bytes:
            if not self._items:
                return ""
            total = f"/{self._total_items:,}" if self._total_items else ""
            return f"{self._items:,}{total} {self._items_name}"
        if not self._bytes:
            return ""
        from tqdm import tqdm

        return str(tqdm.format_sizeof(self._bytes, "B", 1024))


def tqdm_progress(
    description: str, *, total_bytes: int | None, total_items: int | None, items: str = "files"
) -> Progress:
    """A :class:`ProgressFactory` drawing with tqdm after half a second of work."""
    return TqdmProgress(description, total_bytes=total_bytes, total_items=total_items, items=items)

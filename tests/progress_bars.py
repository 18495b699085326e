"""The notebook's progress bar drawn into a text stream at once, for tests of what it shows."""

from __future__ import annotations

import io
from typing import IO

from deepanalyze_jupyter.notebook.progress_bar import TqdmProgress
from deepanalyze_jupyter.progress import Progress, ProgressFactory


def drawing_into(stream: IO[str]) -> ProgressFactory:
    """A progress factory of the notebook's bar, drawn into ``stream`` at once, at every update
    (rather than after half a second, ten times a second at most)."""

    def bar(
        description: str, *, total_bytes: int | None, total_items: int | None, items: str = "files"
    ) -> Progress:
        return TqdmProgress(
            description,
            total_bytes=total_bytes,
            total_items=total_items,
            items=items,
            delay=0,
            file=stream,
            mininterval=0,
        )

    return bar


def drawn_lines(stream: io.StringIO) -> list[str]:
    """The lines the bars drew into ``stream``, in order (each redraw is one)."""
    return [line.strip() for line in stream.getvalue().split("\r") if line.strip()]

"""The notebook's progress bar (tqdm), drawn into a text stream: what each kind of report shows."""

from __future__ import annotations

import io
from typing import Any

from deepanalyze_jupyter.notebook.progress_bar import TqdmProgress


def drawn(reports: list[dict[str, int]], **shape: Any) -> list[str]:
    """The lines a bar drawn at once shows for ``reports``, in order."""
    stream = io.StringIO()
    bar = TqdmProgress("work", delay=0, file=stream, **shape)
    for report in reports:
        bar.update(**report)
    bar.close()
    return [line.strip() for line in stream.getvalue().split("\r") if line.strip()]


def test_items_alone_draw_a_bar_of_items() -> None:
    lines = drawn([{"items": 500}], total_bytes=None, total_items=1000, items="rows")
    assert lines[0].startswith("work:  50%|")
    assert "500/1.00k" in lines[0]
    assert "rows/s" in lines[0]


def test_a_percentage_is_counted_as_it_is() -> None:
    lines = drawn([{"items": 45}], total_bytes=None, total_items=100, items="%")
    assert lines[0].startswith("work:  45%|")
    assert "45/100" in lines[0]


def test_bytes_are_counted_and_items_told_beside_them() -> None:
    lines = drawn([{"nbytes": 2048, "items": 10}], total_bytes=None, total_items=40, items="rows")
    assert lines[0].startswith("work: 2.00kB [")
    assert lines[0].endswith("10/40 rows]")


def test_a_bar_appears_only_once_the_delay_has_passed() -> None:
    stream = io.StringIO()
    bar = TqdmProgress("work", total_bytes=None, total_items=None, items="rows", delay=3600, file=stream)
    bar.update(items=5)
    bar.update(nbytes=10)
    bar.close()
    assert "work" not in stream.getvalue()

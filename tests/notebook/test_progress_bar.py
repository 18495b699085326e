"""The notebook's progress bar (tqdm), drawn into a text stream: what each kind of report shows."""

from __future__ import annotations

import io
from typing import Any

from deepanalyze_jupyter.notebook.progress_bar import TqdmProgress


def drawn(reports: list[dict[str, int]], **shape: Any) -> list[str]:
    """The lines a bar drawn at once shows for ``reports``, in order."""
    stream = io.StringIO()
    bar = TqdmProgress("work", delay=0, file=stream, mininterval=0, **shape)
    for report in reports:
        bar.update(**report)
    bar.close()
    return [line.strip() for line in stream.getvalue().split("\r") if line.strip()]


def test_items_alone_draw_a_bar_of_items() -> None:
    lines = drawn([{"items": 500}], total_bytes=None, total_items=1000, items="rows")
    assert lines[-1].startswith("work:  50%|")
    assert "500/1.00k" in lines[-1]
    assert "rows/s" in lines[-1]


def test_a_percentage_is_counted_as_it_is() -> None:
    lines = drawn([{"items": 45}], total_bytes=None, total_items=100, items="%")
    assert lines[-1].startswith("work:  45%|")
    assert "45/100" in lines[-1]


def test_bytes_are_counted_and_items_told_beside_them() -> None:
    lines = drawn([{"nbytes": 2048, "items": 10}], total_bytes=4096, total_items=40, items="rows")
    assert lines[-1].startswith("work:  50%|")
    assert lines[-1].endswith("10/40 rows]")
    lines = drawn([{"nbytes": 2048, "items": 10}], total_bytes=None, total_items=None, items="rows")
    assert lines[-1].startswith("work: 2.00kB [")
    assert lines[-1].endswith("10 rows]")


def test_items_with_a_total_are_counted_and_bytes_told_beside_them() -> None:
    # a write of 40 rows into a file: the rows are the progress, the file's bytes beside them
    lines = drawn([{"nbytes": 2048, "items": 10}], total_bytes=None, total_items=40, items="rows")
    assert lines[-1].startswith("work:  25%|")
    assert "10/40" in lines[-1]
    assert lines[-1].endswith("2.00kB]")


def test_the_bar_is_made_where_the_work_starts_not_at_its_first_report() -> None:
    # a widget made at a first report, in a worker thread, would not show in the notebook's cell
    made: list[str] = []
    import threading

    import tqdm.auto

    original = tqdm.auto.tqdm

    def recording(*args: Any, **kwargs: Any) -> Any:
        made.append(threading.current_thread().name)
        return original(*args, **kwargs)

    tqdm.auto.tqdm = recording  # type: ignore[misc]
    try:
        bar = TqdmProgress("work", total_bytes=None, total_items=None, delay=3600, file=io.StringIO())
        assert made == [threading.current_thread().name]
        worker = threading.Thread(target=bar.update, kwargs={"items": 3}, name="worker")
        worker.start()
        worker.join()
        bar.close()
    finally:
        tqdm.auto.tqdm = original  # type: ignore[misc]
    assert made == [threading.current_thread().name]


def test_a_bar_appears_only_once_the_delay_has_passed() -> None:
    stream = io.StringIO()
    bar = TqdmProgress("work", total_bytes=None, total_items=None, items="rows", delay=3600, file=stream)
    bar.update(items=5)
    bar.update(nbytes=10)
    bar.close()
    assert "work" not in stream.getvalue()

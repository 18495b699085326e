"""SQL over many small files: the small files a glob matches are fetched once, all at once."""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import Any

import pytest

from deepanalyze_jupyter import ItemNotFound, QueryError, Session
from deepanalyze_jupyter.connectors.files.batched import SMALL_FILE_BYTES
from tests.sql.conftest import CSV_FILES, csv_frame, dataset_files, lake_connector_class


class _ReadSpy:
    """Counts the reads of a source's files (ranged or whole) and how many were in flight at once."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.inside = contextvars.ContextVar("inside", default=False)
        #: The files opened to be read in the reader's own thread (a local folder's larger files).
        self.opened: list[str] = []

    def wrap(self, read: Any) -> Any:
        """``read`` (a connector method taking a path first), counted unless another counted read calls it."""

        async def counted(connector: Any, path: str, *args: Any) -> Any:
            if self.inside.get():
                return await read(connector, path, *args)
            self.calls.append(path)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            token = self.inside.set(True)
            try:
                return await read(connector, path, *args)
            finally:
                self.inside.reset(token)
                self.in_flight -= 1

        return counted


def _spy_on_reads(session: Session, monkeypatch: pytest.MonkeyPatch) -> _ReadSpy:
    connector_class = lake_connector_class(session)
    spy = _ReadSpy()
    for name in ("read_range", "read_whole"):
        if hasattr(connector_class, name):
            monkeypatch.setattr(connector_class, name, spy.wrap(getattr(connector_class, name)))
    open_direct = connector_class.open_direct

    def opened(connector: Any, path: str) -> Any:
        spy.opened.append(path)
        return open_direct(connector, path)

    monkeypatch.setattr(connector_class, "open_direct", opened)
    return spy


def test_the_small_files_of_a_glob_come_once_and_concurrently(
    lake: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _spy_on_reads(lake, monkeypatch)
    frame = lake.query("lake", "SELECT sum(qty) AS total, count(*) AS n FROM read_csv('csv/day-*.csv')")
    days = [csv_frame(day) for day in range(CSV_FILES)]
    assert int(frame["total"][0]) == sum(int(day["qty"].sum()) for day in days)
    assert int(frame["n"][0]) == sum(len(day) for day in days)
    # DuckDB opens a file when it sniffs it and again when it scans it: one fetch each all the same.
    assert sorted(spy.calls) == [f"csv/day-{day}.csv" for day in range(CSV_FILES)]
    assert spy.most_in_flight > 1
    files = dataset_files()
    assert frame.attrs["bytes_fetched"] == sum(len(files[name]) for name in spy.calls)


def test_a_large_file_is_still_read_in_ranges(local_lake: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _spy_on_reads(local_lake, monkeypatch)
    frame = local_lake.query("lake", "SELECT count(*) AS n FROM 'sales/2024/*.parquet'")
    assert int(frame["n"][0]) > 0
    # Files above the small-file size are not batched: only their footers and chunks are read,
    # from the files themselves (a local folder's are opened once and read in DuckDB's threads).
    parquet = {name: data for name, data in dataset_files().items() if name.endswith(".parquet")}
    assert 0 < frame.attrs["bytes_fetched"] < sum(len(data) for data in parquet.values())
    large = sorted(name for name, data in parquet.items() if len(data) > SMALL_FILE_BYTES)
    assert large
    assert sorted(set(spy.opened)) == large
    assert not set(spy.calls) & set(large)


def test_a_timeout_stops_a_batch_still_downloading(
    local_lake: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector_class = lake_connector_class(local_lake)
    stopped: list[str] = []

    async def stuck(connector: Any, path: str, size: int) -> bytes:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append(path)
            raise
        return b""

    monkeypatch.setattr(connector_class, "read_whole", stuck)
    started = time.perf_counter()
    with pytest.raises(QueryError, match="did not finish within"):
        local_lake.query("lake", "SELECT count(*) FROM read_csv('csv/day-*.csv')", timeout=1)
    assert time.perf_counter() - started < 10
    deadline = time.perf_counter() + 5
    while len(stopped) < CSV_FILES and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert sorted(stopped) == [f"csv/day-{day}.csv" for day in range(CSV_FILES)]


def test_a_timeout_stops_a_listing_that_never_answers(
    local_lake: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector_class = lake_connector_class(local_lake)
    list_items = connector_class.list_items
    stopped: list[str | None] = []

    async def stuck(connector: Any, prefix: str | None = None, **kwargs: Any) -> Any:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append(prefix)
            raise

    monkeypatch.setattr(connector_class, "list_items", stuck)
    started = time.perf_counter()
    with pytest.raises(QueryError, match="did not finish within 1 s"):
        local_lake.query("lake", "SELECT count(*) AS n FROM read_csv('csv/day-*.csv')", timeout=1)
    assert time.perf_counter() - started < 10
    assert stopped  # the listing itself was cancelled, not left waiting
    monkeypatch.setattr(connector_class, "list_items", list_items)
    frame = local_lake.query("lake", "SELECT count(*) AS n FROM read_csv('csv/day-*.csv')")
    assert int(frame["n"][0]) == sum(len(csv_frame(day)) for day in range(CSV_FILES))


def test_a_file_that_fails_in_a_batch_fails_with_its_own_error(
    local_lake: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector_class = lake_connector_class(local_lake)
    read_whole = connector_class.read_whole
    last = f"csv/day-{CSV_FILES - 1}.csv"

    async def one_gone(connector: Any, path: str, size: int) -> Any:
        if path == last:
            raise ItemNotFound(f"no file {path!r}", source="lake")
        await asyncio.sleep(0.3)  # the others arrive after the failure
        return await read_whole(connector, path, size)

    monkeypatch.setattr(connector_class, "read_whole", one_gone)
    with pytest.raises(QueryError) as raised:
        local_lake.query("lake", "SELECT count(*) FROM read_csv('csv/day-*.csv')")
    message = str(raised.value)
    assert f"no file {last!r}" in message
    assert "\n" not in message

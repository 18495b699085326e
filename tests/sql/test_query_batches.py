"""SQL on file sources in batches: the values and dtypes of a whole query, the same sandbox,
and a stop (early close or Ctrl-C) that interrupts DuckDB and leaves nothing running."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from deepanalyze_jupyter import QueryError, Session
from deepanalyze_jupyter.connectors.files import sandbox
from deepanalyze_jupyter.connectors.files import sql as files_sql
from deepanalyze_jupyter.errors import OperationCancelled
from tests.connectors.files.test_batches import PEAK_RSS
from tests.sql.conftest import PARQUET_FILES, ROWS
from tests.sql.test_files_sql import ESCAPES

MIXED = (
    "SELECT c0 AS id, region, (c1 / 100)::DECIMAL(12, 2) AS amount, "
    "CASE WHEN c0 % 3 = 0 THEN NULL ELSE c2 END AS maybe, "
    "TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(c0) AS at "
    "FROM 'sales/2024/*.parquet' ORDER BY id"
)
GROUPED = "SELECT region, count(*) AS n, sum(c3) AS total FROM 'sales/2024/*.parquet' GROUP BY 1 ORDER BY 1"
#: Minutes of work for DuckDB if nothing stops it; its first rows come at once.
ENDLESS = "SELECT i, hash(i) AS h FROM range(100_000_000_000) t(i)"
#: Minutes of work before the first row.
ENDLESS_SUM = "SELECT sum(hash(i)) AS s FROM range(100_000_000_000) t(i)"


def interrupt_main_thread() -> None:
    """Ctrl-C as a kernel gets it: a real SIGINT to the main thread."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def interrupt_once_waiting(working: threading.Event) -> None:
    """Ctrl-C once DuckDB works on a batch and the main thread waits for it (not mid-import)."""
    if not working.wait(30):
        return
    main = threading.main_thread().ident or 0
    for _ in range(30_000):
        frame = sys._current_frames().get(main)
        if frame is not None and frame.f_code.co_name == "wait" and "threading" in frame.f_code.co_filename:
            break
        time.sleep(0.001)
    interrupt_main_thread()


def test_arrow_batches_equal_the_whole_query(lake: Session) -> None:
    whole = lake.query("lake", MIXED, limit=None, output="arrow")
    batches = list(lake.query_batches("lake", MIXED, rows=25_000))
    assert [batch.num_rows for batch in batches] == [25_000] * 4 + [ROWS * PARQUET_FILES - 100_000]
    assert all(batch.schema == whole.schema.remove_metadata() for batch in batches)
    assert pa.concat_tables(batches).equals(whole.replace_schema_metadata(None))


def test_pandas_batches_have_the_dtypes_and_values_of_the_whole_query(lake: Session) -> None:
    whole = lake.query("lake", MIXED, limit=None)
    frames = list(lake.query_batches("lake", MIXED, rows=50_000, output="pandas"))
    assert all(frame.dtypes.equals(whole.dtypes) for frame in frames)
    assert str(whole["maybe"].dtype) == "Int64"
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), whole, check_column_type=False)


def test_a_group_by_and_parameters_stream_too(lake: Session) -> None:
    whole = lake.query("lake", GROUPED, limit=None)
    frames = list(lake.query_batches("lake", GROUPED, rows=2, output="pandas"))
    assert [len(frame) for frame in frames] == [2, 1]
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), whole, check_column_type=False)
    picked = "SELECT count(*) AS n FROM 'sales/2024/*.parquet' WHERE region = :region"
    (batch,) = lake.query_batches("lake", picked, {"region": "EU"})
    assert batch["n"].to_pylist() == [lake.query("lake", picked, {"region": "EU"})["n"][0]]


@pytest.mark.parametrize("sql", list(ESCAPES.values()), ids=list(ESCAPES))
def test_every_way_out_is_refused_in_batches_too(lake: Session, sql: str) -> None:
    with pytest.raises(QueryError) as caught:
        list(lake.query_batches("lake", sql))
    message = str(caught.value)
    with pytest.raises(QueryError) as whole:
        lake.query("lake", sql)
    assert message == str(whole.value)  # the refusal of a whole query, word for word
    assert message.startswith("lake: ")
    assert "\n" not in message
    assert "secret" not in message
    assert "root:" not in message


def _busy_threads() -> set[str]:
    """Python threads other than idle pool workers and the one making DuckDB's next database."""
    return {
        thread.name
        for thread in threading.enumerate()
        if not thread.name.startswith(("asyncio_", "duckdb-spare"))
    }


def _closed(connection: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``connection`` is closed once the closes handed to the sandbox's thread are done."""
    with sandbox._spare._lock:
        closing = list(sandbox._spare._closing)
    concurrent.futures.wait(closing, timeout=5)
    try:
        connection.execute("SELECT 1")
    except duckdb.ConnectionException:
        return True
    return False


def test_closing_early_interrupts_duckdb_and_frees_everything(
    lake: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[Any] = []
    sandboxed = files_sql.sandboxed

    def watched(*args: Any) -> Any:
        connection = sandboxed(*args)
        closed.append((args[0], connection))  # the statement's filesystem and connection
        return connection

    monkeypatch.setattr(files_sql, "sandboxed", watched)
    threads = _busy_threads()
    started = time.monotonic()
    batches = lake.query_batches("lake", ENDLESS, rows=1000)
    assert next(batches).num_rows == 1000
    batches.close()
    assert time.monotonic() - started < 10
    ((filesystem, connection),) = closed
    assert filesystem._closed  # the statement's downloads were stopped
    assert _closed(connection)  # and its connection was closed (off the statement's path)
    before = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - before < 0.3  # DuckDB is not still scanning in the background
    assert _busy_threads() == threads
    assert lake.query("lake", "SELECT 2 AS two")["two"][0] == 2


def test_breaking_out_of_a_loop_stops_the_query(lake: Session) -> None:
    started = time.monotonic()
    for seen, _ in enumerate(lake.query_batches("lake", ENDLESS, rows=500)):
        if seen == 3:
            break
    assert time.monotonic() - started < 10
    before = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - before < 0.3


@pytest.fixture
def fetching(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[BaseException]]:
    """(set once DuckDB works on a batch, what DuckDB's work ended with)."""
    working = threading.Event()
    ended: list[BaseException] = []
    next_batch = files_sql._next_batch

    def watched(*args: Any) -> Any:
        working.set()
        try:
            return next_batch(*args)
        except BaseException as error:
            ended.append(error)
            raise

    monkeypatch.setattr(files_sql, "_next_batch", watched)
    return working, ended


def test_ctrl_c_while_a_batch_is_read_interrupts_duckdb(
    lake: Session, fetching: tuple[threading.Event, list[BaseException]]
) -> None:
    working, ended = fetching
    threading.Thread(target=interrupt_once_waiting, args=(working,), daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        list(lake.query_batches("lake", ENDLESS_SUM))
    assert time.monotonic() - started < 15
    assert [type(error) for error in ended] == [OperationCancelled]  # DuckDB itself was interrupted
    assert lake.query("lake", "SELECT 3 AS three")["three"][0] == 3


def test_a_timeout_stops_the_stream(lake: Session) -> None:
    started = time.monotonic()
    with pytest.raises(QueryError, match=r"did not finish within 0\.5 s"):
        list(lake.query_batches("lake", ENDLESS_SUM, timeout=0.5))
    assert time.monotonic() - started < 10


def test_an_export_of_a_sql_result_reads_back_equal(lake: Session, tmp_path: Path) -> None:
    target = tmp_path / "grouped.parquet"
    line = lake.export("lake", MIXED, target, rows=30_000)
    assert f"{ROWS * PARQUET_FILES} row(s)" in line
    back = pd.read_parquet(target)
    whole = lake.query("lake", MIXED, limit=None)
    assert back["id"].tolist() == whole["id"].tolist()
    assert back["amount"].astype(str).tolist() == whole["amount"].astype(str).tolist()
    assert back["maybe"].isna().sum() == whole["maybe"].isna().sum()


def test_an_interrupted_export_leaves_no_file(
    lake: Session, tmp_path: Path, fetching: tuple[threading.Event, list[BaseException]]
) -> None:
    working, _ = fetching
    threading.Thread(target=interrupt_once_waiting, args=(working,), daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        lake.export("lake", ENDLESS_SUM, tmp_path / "never.parquet")
    assert list(tmp_path.iterdir()) == [] or not (tmp_path / "never.parquet").exists()
    assert not any(path.name.startswith("never") for path in tmp_path.iterdir())


_MEASURE = PEAK_RSS + textwrap.dedent(
    """
    import json, sys
    from deepanalyze_jupyter import Session
    folder, rows = sys.argv[1], int(sys.argv[2])
    sql = f"SELECT i, repeat('x', 100) || i::VARCHAR AS payload FROM range({rows}) t(i)"
    with Session() as session:
        session.add("files", "local", path=folder)
        before = peak_mib()
        seen = 0
        for batch in session.query_batches("files", sql, rows=50_000):
            seen += batch.num_rows
        after = peak_mib()
    print(json.dumps([before, after, seen]))
    """
)


def _growth_streaming(folder: Path, rows: int) -> int:
    """MiB the peak RSS of a fresh process grew by while it streamed ``rows`` rows of ~110 bytes."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(folder), str(rows)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        check=True,
    )
    before, after, seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == rows
    return int(after - before)


def test_a_large_result_streams_at_flat_memory(tmp_path: Path) -> None:
    """About 250 MB and 750 MB of result (a whole query holds all of it): the same bounded growth."""
    smaller = _growth_streaming(tmp_path, 2_000_000)
    larger = _growth_streaming(tmp_path, 6_000_000)
    assert smaller < 250, f"peak RSS grew by {smaller} MiB streaming 2M rows"
    assert larger < 250, f"peak RSS grew by {larger} MiB streaming 6M rows"
    assert larger - smaller < 80, f"peak RSS grew with the result: {smaller} then {larger} MiB"


def test_zoned_timestamps_match_the_whole_query_in_any_kernel_time_zone(
    local_lake: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        sql = "SELECT TIMESTAMPTZ '2024-01-01 10:00:00+00' AS at"
        whole = local_lake.query("lake", sql)
        (frame,) = local_lake.query_batches("lake", sql, output="pandas")
        assert frame["at"].dtype == whole["at"].dtype
        assert frame["at"].tolist() == whole["at"].tolist()
        (batch,) = local_lake.query_batches("lake", sql)
        assert batch.schema == local_lake.query("lake", sql, output="arrow").schema.remove_metadata()
    finally:
        monkeypatch.undo()
        time.tzset()

"""The dsrc:// filesystem: every data tool reads a source's files by URL, with no credential in the call."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from deepanalyze_jupyter import ConfigurationError, DataSourceError, QueryError, Session
from deepanalyze_jupyter.filesystem import SourceFileSystem
from tests.services import AzuriteServer
from tests.sql.conftest import PARQUET_FILES, ROWS, parquet_frame


def _expected() -> pd.DataFrame:
    return pd.concat([parquet_frame(part) for part in range(PARQUET_FILES)], ignore_index=True)


def test_the_protocol_is_registered_through_the_entry_point(local_lake: Session) -> None:
    filesystem = fsspec.filesystem("dsrc", session=local_lake)
    assert isinstance(filesystem, SourceFileSystem)
    assert fsspec.get_filesystem_class("dsrc") is SourceFileSystem


def test_listing_info_glob_and_find(lake: Session) -> None:
    filesystem = fsspec.filesystem("dsrc", session=lake)
    assert sorted(filesystem.ls("lake", detail=False)) == ["lake/csv", "lake/json", "lake/sales"]
    parts = [f"lake/sales/2024/part-{part}.parquet" for part in range(PARQUET_FILES)]
    assert filesystem.glob("dsrc://lake/sales/*/*.parquet") == parts
    assert filesystem.find("lake/sales") == parts
    assert filesystem.info("lake/sales")["type"] == "directory"
    info = filesystem.info("dsrc://lake/json/items.jsonl")
    assert (info["type"], info["size"]) == ("file", 66)
    with pytest.raises(FileNotFoundError):
        filesystem.info("lake/no/such.csv")


def test_ranged_reads_fetch_only_the_range(lake: Session) -> None:
    filesystem = fsspec.filesystem("dsrc", session=lake)
    assert filesystem.cat_file("lake/json/items.jsonl", 2, 6) == b"item"
    assert filesystem.cat_file("lake/json/items.jsonl", -5) == b"4.0}\n"
    with filesystem.open("lake/json/items.jsonl") as file:
        file.seek(10)
        assert file.read(8) == b'item-1",'
    # cat_file fetched only its ranges; a small file opened comes whole, in one request.
    assert filesystem.bytes_fetched == 4 + 5 + 66
    with filesystem.open("lake/sales/2024/part-0.parquet") as file:
        file.seek(-8, 2)
        assert file.read(8)[4:] == b"PAR1"
    assert filesystem.bytes_fetched == 4 + 5 + 66 + 8


def test_pandas_reads_a_folder_url(lake: Session) -> None:
    frame = pd.read_parquet("dsrc://lake/sales/2024/", storage_options={"session": lake})
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), _expected(), check_dtype=False)


def test_pyarrow_reads_a_dataset_with_the_filesystem(lake: Session) -> None:
    filesystem = fsspec.filesystem("dsrc", session=lake)
    table = pq.read_table("lake/sales/2024/part-2.parquet", filesystem=filesystem, columns=["c4"])
    assert table.column("c4").to_pylist() == parquet_frame(2)["c4"].tolist()
    dataset = ds.dataset("lake/sales/2024", filesystem=filesystem, format="parquet")
    assert dataset.count_rows() == ROWS * PARQUET_FILES


def test_duckdb_reads_a_url_through_the_registered_filesystem(lake: Session) -> None:
    connection = duckdb.connect()
    connection.register_filesystem(fsspec.filesystem("dsrc", session=lake))
    total = connection.sql("SELECT sum(c2) FROM 'dsrc://lake/sales/2024/*.parquet'").fetchall()[0]
    assert total == (int(_expected()["c2"].sum()),)


_POLARS_SCRIPT = """
import sys
import fsspec, polars as pl, pyarrow.dataset as ds
from deepanalyze_jupyter import Session

with Session() as session:
    session.add("lake", "local", path=sys.argv[1])
    filesystem = fsspec.filesystem("dsrc", session=session)
    dataset = ds.dataset("lake/sales/2024", filesystem=filesystem, format="parquet")
    print(pl.scan_pyarrow_dataset(dataset).select(pl.col("c5").sum()).collect().item())
"""


def test_polars_reads_through_a_pyarrow_dataset(local_lake: Session) -> None:
    """Polars' own readers take only object-store URLs (s3, az, gs, http), not fsspec protocols;
    a pyarrow dataset over the filesystem gives a lazy scan with column pruning instead.

    In a process of its own: once Polars has run, a Ctrl-C no longer reaches Python's handler
    in time for the interrupt tests that follow in the same process."""
    if importlib.util.find_spec("polars") is None:
        pytest.skip("polars is not installed (pip install -e '.[polars]')")
    root = local_lake.registry.get_config("lake").options["path"]
    done = subprocess.run(
        [sys.executable, "-c", _POLARS_SCRIPT, root], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip().splitlines()[-1]) == int(_expected()["c5"].sum())


_DASK_SCRIPT = """
import json, os, sys
import dask.dataframe as dd, distributed, fsspec
from deepanalyze_jupyter import Session

with Session() as session:
    session.add("lake", "local", path=sys.argv[1])
    filesystem = fsspec.filesystem("dsrc", session=session)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        frame = dd.read_parquet("dsrc://lake/sales/2024/", filesystem=filesystem)
        sums = frame.groupby("region")["c6"].sum().compute().sort_index()
        pids = client.run(os.getpid)
print(json.dumps({"sums": [int(value) for value in sums], "workers": sorted(set(pids.values())),
                  "me": os.getpid()}))
"""


@pytest.mark.timeout(240)
def test_dask_workers_read_a_local_source_by_url(local_lake: Session) -> None:
    """In a process of its own: Dask's cluster changes process-wide state (signal handlers)."""
    if importlib.util.find_spec("distributed") is None:  # not imported here: it starts threads
        pytest.skip("dask[distributed] is not installed (pip install -e '.[dask]')")
    root = local_lake.registry.get_config("lake").options["path"]
    done = subprocess.run(
        [sys.executable, "-c", _DASK_SCRIPT, root], capture_output=True, text=True, timeout=200, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = _expected().groupby("region")["c6"].sum().sort_index()
    assert result["sums"] == expected.tolist()
    assert len(result["workers"]) == 2
    assert result["me"] not in result["workers"]


def test_a_worker_refuses_a_source_that_needs_a_secret(blob_lake: Session) -> None:
    shipped = pickle.loads(pickle.dumps(fsspec.filesystem("dsrc", session=blob_lake)))
    # Outside a kernel the unpickled filesystem has only what it carried: no secret, so no read.
    with pytest.raises(ConfigurationError, match="needs a secret, which a pickled filesystem never carries"):
        shipped.ls("lake")


def test_canary_no_secret_in_the_pickle_or_any_url(blob_lake: Session, azurite: AzuriteServer) -> None:
    filesystem = fsspec.filesystem("dsrc", session=blob_lake)
    shown = [
        pickle.dumps(filesystem),
        repr(filesystem).encode(),
        str(filesystem.glob("dsrc://lake/**")).encode(),
        str(filesystem.info("lake/json/items.jsonl")).encode(),
        str(blob_lake.query("lake", "SELECT * FROM glob('**')")).encode(),
    ]
    secrets = [azurite.account_key.encode(), azurite.connection_string.encode(), b"AccountKey"]
    for text in shown:
        for secret in secrets:
            assert secret not in text


def test_writes_are_refused(local_lake: Session) -> None:
    filesystem = fsspec.filesystem("dsrc", session=local_lake)
    with pytest.raises(ConfigurationError, match="read-only"):
        filesystem.open("lake/new.csv", "wb")
    with pytest.raises(ConfigurationError, match="read-only"):
        filesystem.rm("lake/csv/day-0.csv")
    assert filesystem.exists("lake/csv/day-0.csv")


def test_paths_cannot_leave_a_local_folder(local_lake: Session) -> None:
    filesystem = fsspec.filesystem("dsrc", session=local_lake)
    with pytest.raises(ConfigurationError, match="outside the folder"):
        filesystem.cat_file("lake/../outside.csv")


def _open_below(folder: Path) -> list[str]:
    """The files below ``folder`` that this process holds open."""
    inside = f"{folder.resolve()}{os.sep}"
    held = []
    for descriptor in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(descriptor)
            if target.startswith(inside):
                held.append(target)
    return held


def test_reads_leave_no_file_of_a_local_folder_open(local_lake: Session, tmp_path: Path) -> None:
    total = local_lake.query("lake", "SELECT sum(c1) AS s FROM 'sales/2024/*.parquet'")
    assert int(total["s"][0]) == int(_expected()["c1"].sum())
    with pytest.raises(QueryError, match="Conversion Error"):
        local_lake.query("lake", "SELECT CAST(region AS INTEGER) FROM 'sales/2024/*.parquet'")
    pd.read_parquet("dsrc://lake/sales/2024/", storage_options={"session": local_lake})
    with fsspec.open("dsrc://lake/sales/2024/part-0.parquet", session=local_lake) as file:
        assert file.read(4) == b"PAR1"
    gc.collect()
    assert _open_below(tmp_path / "lake") == []


def test_a_query_closes_the_files_it_read_when_it_ends_not_at_a_garbage_collection(
    local_lake: Session, tmp_path: Path
) -> None:
    """DuckDB drops the files it opened without closing them: each must close as it is freed."""
    gc.disable()
    try:
        for _ in range(3):
            local_lake.query("lake", "SELECT sum(c1) AS s FROM 'sales/2024/*.parquet'")
            with pytest.raises(QueryError, match="Conversion Error"):
                local_lake.query("lake", "SELECT CAST(region AS INTEGER) FROM 'sales/2024/*.parquet'")
        assert _open_below(tmp_path / "lake") == []
    finally:
        gc.enable()


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_while_a_session_opens_a_large_file_leaves_it_closed(
    local_lake: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector_class = type(local_lake.run(local_lake.registry.get_connector("lake")))
    open_direct = connector_class.open_direct
    main_thread = threading.get_ident()
    interrupted, settled = threading.Event(), threading.Event()

    def interrupted_while_opening(connector: Any, path: str) -> Any:
        try:
            signal.pthread_kill(main_thread, signal.SIGINT)
            interrupted.wait(10)
            return open_direct(connector, path)
        finally:
            settled.set()

    monkeypatch.setattr(connector_class, "open_direct", interrupted_while_opening)
    filesystem = fsspec.filesystem("dsrc", session=local_lake)
    with pytest.raises(KeyboardInterrupt):
        filesystem.open("lake/sales/2024/part-0.parquet")
    interrupted.set()
    assert settled.wait(10)
    gc.collect()
    assert _open_below(tmp_path / "lake") == []


@pytest.mark.timeout(60)
def test_a_fifo_in_a_local_folder_is_refused_at_once_not_waited_on(
    local_lake: Session, tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "lake" / "csv" / "pipe.csv")
    reads: dict[str, Callable[[], object]] = {
        "read": lambda: local_lake.read("lake", "csv/pipe.csv"),
        "query": lambda: local_lake.query("lake", "SELECT * FROM 'csv/pipe.csv'"),
        "glob": lambda: local_lake.query("lake", "SELECT count(*) FROM 'csv/*.csv'"),
        "pandas": lambda: pd.read_csv("dsrc://lake/csv/pipe.csv", storage_options={"session": local_lake}),
    }
    for how, read in reads.items():
        with pytest.raises(DataSourceError) as refused:
            read()
        assert str(refused.value) == "lake: cannot read 'csv/pipe.csv': not a regular file", how

"""Exports (``--to``) into a path of a local folder or a blob container (real Azurite), batch by
batch: the file appears only complete, an interrupt leaves nothing (and an old file intact),
``overwrite`` is needed to replace, a read-only source refuses, and progress counts rows and bytes."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import ConfigurationError, WriteConflict
from deepanalyze_jupyter.progress import NullProgress, Progress
from tests.services import AzuriteServer

ROWS = 3_000_000


@pytest.fixture
def files(session: Session, tmp_path: Path) -> Session:
    """Source ``files`` (read-only) holding ``big.parquet``, and source ``out`` (writable)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    numbers = np.arange(ROWS)
    table = pa.table({"id": numbers, "value": np.random.default_rng(3).random(ROWS), "tag": numbers % 7})
    pq.write_table(table, tmp_path / "in" / "big.parquet", row_group_size=250_000)
    session.add("files", "local", path=str(tmp_path / "in"))
    session.add("out", "local", path=str(tmp_path / "out"), read_only=False)
    return session


@pytest.fixture
def lake(files: Session, azurite: AzuriteServer, blob_container: str) -> Session:
    secrets = {"connection_string": azurite.connection_string}
    files.add("lake", "azure_blob", container=blob_container, read_only=False, secrets=secrets)
    return files


def _service(azurite: AzuriteServer) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite.connection_string)


def _blob_names(azurite: AzuriteServer, container: str) -> list[str]:
    with _service(azurite) as service:
        return sorted(blob.name for blob in service.get_container_client(container).list_blobs())


def _blob_bytes(azurite: AzuriteServer, container: str, name: str) -> bytes:
    with _service(azurite) as service:
        return bytes(service.get_blob_client(container, name).download_blob().readall())


def test_an_export_into_a_local_source_reads_back_the_same(files: Session, tmp_path: Path) -> None:
    line = files.export_files("files", "big.parquet", "dsrc://out/copies/big.parquet", rows=400_000)
    assert line == f"out: {ROWS} row(s) written to copies/big.parquet (parquet)"
    assert files.read("out", "copies/big.parquet", limit=None, output="arrow").equals(
        files.read("files", "big.parquet", limit=None, output="arrow")
    )
    assert os.listdir(tmp_path / "out" / "copies") == ["big.parquet"]  # no temporary file left


def test_an_export_into_a_blob_reads_back_the_same(
    lake: Session, azurite: AzuriteServer, blob_container: str
) -> None:
    line = lake.export_files("files", "big.parquet", "dsrc://lake/x/big.csv", rows=500_000)
    assert line == f"lake: {ROWS} row(s) written to x/big.csv (csv)"
    back = lake.read("lake", "x/big.csv", limit=None)
    whole = lake.read("files", "big.parquet", limit=None)
    pd.testing.assert_frame_equal(back, whole, check_column_type=False)
    assert _blob_names(azurite, blob_container) == ["x/big.csv"]


def test_replacing_needs_overwrite_and_read_only_sources_refuse(
    lake: Session, azurite: AzuriteServer, blob_container: str, tmp_path: Path
) -> None:
    (tmp_path / "out" / "kept.csv").write_text("a\n1\n")
    with pytest.raises(WriteConflict, match=r"^out: kept.csv exists: nothing was written; pass overwrite"):
        lake.export_files("files", "big.parquet", "dsrc://out/kept.csv")
    assert (tmp_path / "out" / "kept.csv").read_text() == "a\n1\n"
    lake.export_files("files", "big.parquet", "dsrc://lake/kept.csv")
    with pytest.raises(
        WriteConflict, match=r"exists: nothing was written; pass overwrite=True to replace it$"
    ):
        lake.export_files("files", "big.parquet", "dsrc://lake/kept.csv")
    lake.export_files("files", "big.parquet", "dsrc://lake/kept.csv", overwrite=True)
    assert len(lake.read("lake", "kept.csv", limit=None)) == ROWS
    with pytest.raises(ConfigurationError, match=r"^files: the source is read-only: nothing was written"):
        lake.export_files("files", "big.parquet", "dsrc://files/copy.parquet")
    assert os.listdir(tmp_path / "in") == ["big.parquet"]
    lake.add(
        "ro", "azure_blob", container=blob_container, secrets={"connection_string": azurite.connection_string}
    )
    with pytest.raises(ConfigurationError, match="read-only") as refused:
        lake.export_files("files", "big.parquet", "dsrc://ro/new.csv")
    assert azurite.account_key not in str(refused.value)
    assert _blob_names(azurite, blob_container) == ["kept.csv"]


def test_a_target_that_holds_no_files_is_one_clear_line(files: Session, tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "db.sqlite").close()
    files.add("db", "sqlite", path=str(tmp_path / "db.sqlite"))
    with pytest.raises(ConfigurationError, match=r"^db: SQLite sources hold no files to export into"):
        files.export_files("files", "big.parquet", "dsrc://db/x.csv")
    with pytest.raises(ConfigurationError, match="dsrc:// paths start with a source id"):
        files.export_files("files", "big.parquet", "dsrc:///x.csv")
    with pytest.raises(ConfigurationError, match=r"^out: 'dsrc://out/' names no file"):
        files.export_files("files", "big.parquet", "dsrc://out/")


def _interrupt_main_once(ready: Callable[[], bool]) -> threading.Thread:
    """A thread that sends Ctrl-C to the main thread as soon as ``ready()`` (polled) is true."""
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ready():
                signal.pthread_kill(main_thread, signal.SIGINT)
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


@pytest.mark.usefixtures("ctrl_c")
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_an_interrupted_export_into_a_folder_leaves_no_file(
    files: Session, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / "out"
    (out / f"kept.{suffix}").write_text("a\n1\n")
    for target, overwrite in ((f"kept.{suffix}", True), (f"new.{suffix}", False)):
        watcher = _interrupt_main_once(lambda: len(os.listdir(out)) > 1)  # the temporary file is there
        with pytest.raises(KeyboardInterrupt):
            files.export_files(
                "files", "big.parquet", f"dsrc://out/{target}", overwrite=overwrite, rows=50_000
            )
        watcher.join()
        assert os.listdir(out) == [f"kept.{suffix}"]
    assert (out / f"kept.{suffix}").read_text() == "a\n1\n"


@pytest.mark.usefixtures("ctrl_c")
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_an_interrupted_export_into_a_blob_commits_nothing(
    lake: Session, azurite: AzuriteServer, blob_container: str, suffix: str
) -> None:
    kept = f"kept.{suffix}"
    with _service(azurite) as service:
        container = service.get_container_client(blob_container)
        container.upload_blob(kept, b"a\n1\n")
        for target, overwrite in ((kept, True), (f"new.{suffix}", False)):
            blob = container.get_blob_client(target)

            def block_staged(blob: object = blob) -> bool:
                try:
                    return bool(blob.get_block_list("uncommitted")[1])  # type: ignore[attr-defined]
                except Exception:
                    return False

            watcher = _interrupt_main_once(block_staged)
            with pytest.raises(KeyboardInterrupt):
                lake.export_files(
                    "files", "big.parquet", f"dsrc://lake/{target}", overwrite=overwrite, rows=50_000
                )
            watcher.join()
            assert block_staged(), "the interrupt came before a block was staged"
    assert _blob_names(azurite, blob_container) == [kept]
    assert _blob_bytes(azurite, blob_container, kept) == b"a\n1\n"
    assert lake.list_items("lake", refresh=True)["name"].tolist() == [kept]


class Recorder:
    """A progress factory that keeps the bytes and rows each report was told, in order."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, str, list[tuple[int, int]], list[bool]]] = []

    def __call__(
        self, description: str, *, total_bytes: int | None, total_items: int | None, items: str = "files"
    ) -> Progress:
        updates: list[tuple[int, int]] = []
        closed: list[bool] = []
        self.reports.append((description, items, updates, closed))

        class Report(NullProgress):
            def update(self, nbytes: int = 0, items: int = 0) -> None:
                updates.append((nbytes, items))

            def close(self) -> None:
                closed.append(True)

        return Report()


@pytest.mark.parametrize("target", ["dsrc://out/p/big.csv", "dsrc://lake/p/big.csv", "LOCAL"])
def test_exports_report_rows_and_bytes_up_to_the_totals(
    files: Session, azurite: AzuriteServer, blob_container: str, tmp_path: Path, target: str
) -> None:
    recorder = Recorder()
    with Session(progress=recorder) as session:
        session.add("files", "local", path=str(tmp_path / "in"))
        session.add("out", "local", path=str(tmp_path / "out"), read_only=False)
        secrets = {"connection_string": azurite.connection_string}
        session.add("lake", "azure_blob", container=blob_container, read_only=False, secrets=secrets)
        if target == "LOCAL":
            target = str(tmp_path / "local" / "big.csv")
        session.export_files("files", "big.parquet", target, rows=200_000)
    writing = [report for report in recorder.reports if "writing" in report[0]]
    ((description, noun, updates, closed),) = writing
    assert description.endswith("writing p/big.csv") or description.endswith(target)
    assert noun == "rows"
    rows = np.cumsum([items for _, items in updates])
    sent = np.cumsum([nbytes for nbytes, _ in updates])
    assert len(set(rows.tolist())) > 5  # rows grew batch by batch
    assert len(set(sent.tolist())) > 2  # and bytes too
    assert rows[-1] == ROWS
    if target.startswith("dsrc://lake/"):
        assert sent[-1] == len(_blob_bytes(azurite, blob_container, "p/big.csv"))
    else:
        written = tmp_path / "out" / "p" / "big.csv" if target.startswith("dsrc://") else Path(target)
        assert sent[-1] == written.stat().st_size
    assert closed == [True]

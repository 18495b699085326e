"""Writing DataFrames as files into local folders and blob containers (real Azurite)."""

from __future__ import annotations

import errno
import io
import os
import re
import signal
import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from azure.storage.blob import BlobServiceClient

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import ConfigurationError, FormatError, WriteConflict
from deepanalyze_jupyter.progress import NullProgress, Progress
from deepanalyze_jupyter.writing import write_request
from tests.progress_bars import drawing_into, drawn_lines
from tests.services import AzuriteServer


def sample() -> pd.DataFrame:
    """Columns of the dtypes a Parquet file keeps exactly, NULLs included (CSV holds no bytes or lists)."""
    return pd.DataFrame(
        {
            "id": np.arange(3, dtype=np.int64),
            "count": pd.array([1, None, 3], dtype="Int64"),
            "ratio": [0.1 + 0.2, float("nan"), 1e300],
            "flag": pd.array([True, None, False], dtype="boolean"),
            "name": pd.array(['a "quoted", text', None, ""], dtype="string[pyarrow]"),
            "at": pd.to_datetime(["2024-01-01 10:00:00.123456", "2024-06-01", None], format="ISO8601")
            .as_unit("us")
            .tz_localize("UTC"),
            "price": pd.array(
                [Decimal("1.25"), None, Decimal("-3.50")], dtype=pd.ArrowDtype(pa.decimal128(9, 2))
            ),
            "naive": pd.to_datetime(["2024-01-01 10:00:00.5", "1999-12-31", None], format="ISO8601").as_unit(
                "us"
            ),
            "day": [date(2024, 2, 29), None, date(1, 1, 1)],  # as a date column reads: datetime.date
            "raw": [b'\x00\xff"', None, b""],
            "items": [[1, 2], None, []],
            "words": [["a", None], [], None],
        }
    )


@pytest.fixture
def folder(session: Session, tmp_path: Path) -> Session:
    session.add("out", "local", path=str(tmp_path), read_only=False)
    return session


def test_parquet_round_trips_every_dtype_exactly(folder: Session, tmp_path: Path) -> None:
    frame = sample()
    line = folder.write("out", "exports/sample.parquet", frame)
    assert line == "out: 3 row(s) written to exports/sample.parquet (parquet)"
    back = folder.read("out", "exports/sample.parquet")
    pd.testing.assert_frame_equal(back, frame, check_column_type=False)
    assert sorted(os.listdir(tmp_path / "exports")) == ["sample.parquet"]  # no temporary file left


@pytest.mark.parametrize("path", ["t.csv", "t.csv.gz", "t.tsv"])
def test_csv_round_trips_the_dtypes_it_holds_exactly(folder: Session, path: str) -> None:
    # CSV text has no bytes, no lists, no decimals (they read back as floats), and tells
    # neither NaN nor "" from a missing value: the columns it does hold come back equal
    frame = sample()[["id", "count", "flag", "at", "naive", "day"]]
    frame.insert(4, "name", pd.array(['a "quoted", text', None, "tab\there"], dtype="string[pyarrow]"))
    folder.write("out", path, frame)
    pd.testing.assert_frame_equal(folder.read("out", path), frame, check_column_type=False)


@pytest.mark.parametrize("path", ["t.csv", "t.csv.gz", "t.tsv"])
@pytest.mark.parametrize(
    "column",
    [
        pd.array([1, None, 3, None], dtype="Int64"),
        pd.array([1.5, None, 3.0, None], dtype="Float64"),
        pd.array(["x", None, "z", None], dtype="string[pyarrow]"),
        pd.array([True, None, False, None], dtype="boolean"),
    ],
    ids=["Int64", "Float64", "string", "boolean"],
)
def test_a_missing_value_in_a_one_column_file_is_no_lost_row(
    folder: Session, tmp_path: Path, path: str, column: Any
) -> None:
    # written empty, it would be an empty line, which every reader skips (pandas, pyarrow, DuckDB)
    frame = pd.DataFrame({"v": column})
    folder.write("out", path, frame)
    pd.testing.assert_frame_equal(folder.read("out", path), frame, check_column_type=False)
    assert len(pd.read_csv(tmp_path / path, sep="\t" if ".tsv" in path else ",")) == 4


def test_a_missing_zoned_time_in_json_lines_is_null(folder: Session, tmp_path: Path) -> None:
    # one column, as the CSV writer's one-column case also is: a missing value stays null, not ""
    frame = pd.DataFrame({"at": pd.to_datetime(["2024-01-01T00:00Z", None], utc=True)})
    folder.write("out", "t.jsonl", frame)
    assert (tmp_path / "t.jsonl").read_text().splitlines()[1] == '{"at": null}'
    assert folder.read("out", "t.jsonl")["at"].isna().tolist() == [False, True]


@pytest.mark.parametrize("path", ["t.csv", "t.csv.gz", "t.tsv", "t.jsonl", "t.jsonl.gz"])
def test_text_formats_by_extension_read_back(folder: Session, path: str) -> None:
    frame = pd.DataFrame({"id": [1, 2], "name": pd.array(["x, y", "z"], dtype="string[pyarrow]")})
    folder.write("out", path, frame)
    back = folder.read("out", path)
    assert back["id"].tolist() == [1, 2]
    assert back["name"].tolist() == ["x, y", "z"]


def test_format_given_explicitly_wins_over_the_name(folder: Session, tmp_path: Path) -> None:
    folder.write("out", "data.out", pd.DataFrame({"a": [1]}), format="csv")
    assert (tmp_path / "data.out").read_text() == '"a"\n"1"\n'
    with pytest.raises(FormatError, match="cannot write json files"):
        folder.write("out", "data.json", pd.DataFrame({"a": [1]}))


def test_an_existing_file_needs_overwrite(folder: Session, tmp_path: Path) -> None:
    folder.write("out", "a.csv", pd.DataFrame({"a": [1]}))
    with pytest.raises(WriteConflict, match=r"a.csv exists: nothing was written; pass overwrite=True"):
        folder.write("out", "a.csv", pd.DataFrame({"a": [2]}))
    assert (tmp_path / "a.csv").read_text() == '"a"\n"1"\n'
    folder.write("out", "a.csv", pd.DataFrame({"a": [3]}), overwrite=True)
    assert (tmp_path / "a.csv").read_text() == '"a"\n"3"\n'


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
def test_a_file_refuses_mode_append_before_writing(folder: Session, tmp_path: Path, existing: bool) -> None:
    if existing:
        folder.write("out", "x.csv", pd.DataFrame({"a": [1]}))
    with pytest.raises(ConfigurationError) as raised:
        folder.write("out", "x.csv", pd.DataFrame({"a": [2]}), mode="append")
    assert str(raised.value) == (
        "out: files are written whole: mode='append' is for tables; pass overwrite=True to replace 'x.csv'"
    )
    assert [path.name for path in tmp_path.iterdir()] == (["x.csv"] if existing else [])
    if existing:
        assert (tmp_path / "x.csv").read_text() == '"a"\n"1"\n'
    folder.write("out", "x.csv", pd.DataFrame({"a": [3]}), mode="replace")  # replace is overwrite=True
    assert (tmp_path / "x.csv").read_text() == '"a"\n"3"\n'


def test_paths_cannot_leave_the_folder(folder: Session, tmp_path: Path) -> None:
    for path in ("../escape.csv", "/tmp/escape.csv"):
        with pytest.raises(ConfigurationError, match=r"outside the folder|absolute path"):
            folder.write("out", path, pd.DataFrame({"a": [1]}))
    assert not (tmp_path.parent / "escape.csv").exists()


def test_a_path_with_a_nul_character_is_refused_saying_so(folder: Session, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        folder.write("out", "a\x00b.csv", pd.DataFrame({"a": [1]}))
    message = str(raised.value)
    assert message == "out: 'a\\x00b.csv' holds a NUL character ('\\x00'), which no file name can hold"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["c.parquet", "c.csv", "c.jsonl"])
def test_categories_with_a_missing_value_are_written_as_their_values(folder: Session, path: str) -> None:
    frame = pd.DataFrame(
        {
            "n": pd.Categorical([1, None, 2]),
            "flag": pd.Categorical([True, None, False]),
            "word": pd.Categorical(["a", None, "b"]),
        }
    )
    folder.write("out", path, frame)
    back = folder.read("out", path)
    assert back["n"].tolist() == [1, pd.NA, 2]
    assert back["flag"].tolist() == [True, pd.NA, False]
    assert back["word"].tolist() == ["a", pd.NA, "b"]


def _no_space(descriptor: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("how", ["write", "export"])
def test_a_failed_write_leaves_no_folder_it_made(
    folder: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    (tmp_path / "kept").mkdir()
    folder.write("out", "kept/in.csv", pd.DataFrame({"a": [1, 2]}))
    before = sorted(tmp_path.rglob("*"))
    monkeypatch.setattr(os, "fsync", _no_space)
    target = "kept/new/deeper/x.csv"
    write = {
        "write": lambda: folder.write("out", target, pd.DataFrame({"a": [1]})),
        "export": lambda: folder.export_files("out", "kept/in.csv", f"dsrc://out/{target}"),
    }[how]
    with pytest.raises(ConfigurationError, match=r"No space left on device; nothing was written$"):
        write()
    assert sorted(tmp_path.rglob("*")) == before


def test_a_read_only_folder_refuses(session: Session, tmp_path: Path) -> None:
    session.add("ro", "local", path=str(tmp_path))
    with pytest.raises(
        ConfigurationError, match=r"ro: the source is read-only: nothing was written; .*read_only=False"
    ):
        session.write("ro", "a.csv", pd.DataFrame({"a": [1]}))
    assert os.listdir(tmp_path) == []


@pytest.mark.usefixtures("ctrl_c")
def test_an_interrupted_local_write_leaves_no_file_and_the_old_one_intact(
    folder: Session, tmp_path: Path
) -> None:
    folder.write("out", "big.csv", pd.DataFrame({"a": [1]}))
    big = pd.DataFrame({"id": np.arange(4_000_000), "value": np.random.default_rng(1).random(4_000_000)})
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def interrupt_once_writing() -> None:  # Ctrl-C once the write's temporary file is there
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if set(os.listdir(tmp_path)) - {"big.csv"}:
                signal.pthread_kill(main_thread, signal.SIGINT)
                return
            time.sleep(0.002)

    for target, overwrite in (("big.csv", True), ("new.csv", False)):
        watcher = threading.Thread(target=interrupt_once_writing, daemon=True)
        watcher.start()
        with pytest.raises(KeyboardInterrupt) as raised:
            folder.write("out", target, big, overwrite=overwrite)
        watcher.join()
        assert str(raised.value) == f"out: interrupted; nothing was written to {target}"
    assert sorted(os.listdir(tmp_path)) == ["big.csv"]  # no new file, no temporary file
    assert (tmp_path / "big.csv").read_text() == '"a"\n"1"\n'


# -- blob containers ------------------------------------------------------------------------------


@pytest.fixture
def lake(session: Session, azurite: AzuriteServer, blob_container: str) -> Session:
    session.add(
        "lake",
        "azure_blob",
        container=blob_container,
        read_only=False,
        secrets={"connection_string": azurite.connection_string},
    )
    return session


def blob_bytes(azurite: AzuriteServer, container: str, name: str) -> bytes:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        return service.get_blob_client(container, name).download_blob().readall()


def put_blob(azurite: AzuriteServer, container: str, name: str, data: bytes) -> None:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.get_blob_client(container, name).upload_blob(data, overwrite=True)


def test_a_blob_round_trips_and_needs_overwrite(
    lake: Session, azurite: AzuriteServer, blob_container: str
) -> None:
    frame = sample()
    assert (
        lake.write("lake", "exports/s.parquet", frame)
        == "lake: 3 row(s) written to exports/s.parquet (parquet)"
    )
    pd.testing.assert_frame_equal(lake.read("lake", "exports/s.parquet"), frame, check_column_type=False)
    with pytest.raises(WriteConflict, match=r"exports/s\.parquet exists: nothing was written"):
        lake.write("lake", "exports/s.parquet", frame.head(1))
    assert len(lake.read("lake", "exports/s.parquet")) == 3
    lake.write("lake", "exports/s.parquet", frame.head(1), overwrite=True)
    assert len(lake.read("lake", "exports/s.parquet")) == 1
    lake.write("lake", "exports/s.csv.gz", frame[["id"]])
    assert blob_bytes(azurite, blob_container, "exports/s.csv.gz")[:2] == b"\x1f\x8b"


class _OtherWriter:
    """A progress report that lets another writer change the blob while ours is being staged."""

    def __init__(self, azurite: AzuriteServer, container: str, name: str) -> None:
        self.azurite, self.container, self.name, self.done = azurite, container, name, False

    def __call__(
        self, description: str, *, total_bytes: int | None, total_items: int | None, items: str = "files"
    ) -> Progress:
        writer = self

        class Report(NullProgress):
            def update(self, nbytes: int = 0, items: int = 0) -> None:
                if nbytes and not writer.done:
                    writer.done = True
                    put_blob(writer.azurite, writer.container, writer.name, b"theirs")

        return Report()


@pytest.mark.parametrize("overwrite", [False, True], ids=["new-blob", "replacing"])
def test_two_writers_cannot_overwrite_each_other(
    lake: Session, azurite: AzuriteServer, blob_container: str, overwrite: bool
) -> None:
    if overwrite:
        put_blob(azurite, blob_container, "race.csv", b"first")
    lake.registry.progress = _OtherWriter(azurite, blob_container, "race.csv")
    lake.run(lake.registry.disconnect("lake"))  # the next connect takes the new progress factory
    with pytest.raises(WriteConflict, match="nothing was written") as raised:
        lake.write("lake", "race.csv", pd.DataFrame({"a": [1]}), overwrite=overwrite)
    assert str(raised.value).count("\n") == 0
    assert blob_bytes(azurite, blob_container, "race.csv") == b"theirs"  # the other writer's blob is kept


def test_a_blob_name_with_a_nul_character_is_refused_saying_so(lake: Session) -> None:
    with pytest.raises(ConfigurationError) as raised:
        lake.write("lake", "a\x00b.csv", pd.DataFrame({"a": [1]}))
    message = str(raised.value)
    assert message == "lake: 'a\\x00b.csv' holds a NUL character ('\\x00'), which no blob name can hold"


def test_a_blob_refuses_mode_append(lake: Session, azurite: AzuriteServer, blob_container: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        lake.write("lake", "x.csv", pd.DataFrame({"a": [1]}), mode="append")
    assert str(raised.value) == (
        "lake: files are written whole: mode='append' is for tables; pass overwrite=True to replace 'x.csv'"
    )
    with _container(azurite, blob_container) as container:
        assert list(container.list_blob_names()) == []


def test_a_read_only_container_refuses(session: Session, azurite: AzuriteServer, blob_container: str) -> None:
    session.add(
        "ro", "azure_blob", container=blob_container, secrets={"connection_string": azurite.connection_string}
    )
    with pytest.raises(ConfigurationError, match="read-only: nothing was written") as raised:
        session.write("ro", "a.csv", pd.DataFrame({"a": [1]}))
    assert "AccountKey" not in str(raised.value)
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        assert list(service.get_container_client(blob_container).list_blobs()) == []


class Recorder:
    """A progress factory that keeps what each report was told."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, int | None, str, list[tuple[int, int]], list[bool]]] = []

    def __call__(
        self, description: str, *, total_bytes: int | None, total_items: int | None, items: str = "files"
    ) -> Progress:
        done: list[tuple[int, int]] = []
        closed: list[bool] = []
        self.reports.append((description, total_items, items, done, closed))

        class Report(NullProgress):
            def update(self, nbytes: int = 0, items: int = 0) -> None:
                done.append((nbytes, items))

            def close(self) -> None:
                closed.append(True)

        return Report()


def test_a_large_write_reports_progress(tmp_path: Path) -> None:
    recorder = Recorder()
    with Session(progress=recorder) as session:
        session.add("out", "local", path=str(tmp_path), read_only=False)
        session.write("out", "big.csv", pd.DataFrame({"id": np.arange(200_000)}))
    ((description, total, unit, done, closed),) = recorder.reports
    assert (description, total, unit) == ("out: writing big.csv", 200_000, "rows")
    assert sum(items for _, items in done) == 200_000
    assert len([items for _, items in done if items]) > 1  # batch by batch
    assert sum(nbytes for nbytes, _ in done) == (tmp_path / "big.csv").stat().st_size  # the file as it grows
    assert closed == [True]


def test_a_large_write_draws_a_bar(tmp_path: Path) -> None:
    drawn = io.StringIO()
    bar = drawing_into(drawn)

    with Session(progress=bar) as session:
        session.add("out", "local", path=str(tmp_path), read_only=False)
        session.write("out", "big.csv", pd.DataFrame({"id": np.arange(200_000)}))
    lines = drawn_lines(drawn)
    assert lines, "no bar was drawn"
    # the rows are the progress, the file's size beside them
    bar_of_rows = r"out: writing big\.csv:\s+([1-9]\d*)%\|.*\| [\d.]+k/200k \[.*rows/s, [\d.]+[kM]B\]"
    assert any(re.fullmatch(bar_of_rows, line) for line in lines), lines


def test_an_interrupted_blob_write_leaves_the_blob_as_it_was(
    lake: Session, azurite: AzuriteServer, blob_container: str
) -> None:
    put_blob(azurite, blob_container, "kept.csv", b"a\n1\n")
    big = pd.DataFrame({"id": np.arange(12_000_000), "value": np.random.default_rng(2).random(12_000_000)})
    request = write_request("kept.csv", mode="create", overwrite=True, format=None, types=None, source="lake")
    with pytest.raises(TimeoutError):
        lake.runner.run_sync(lake.registry.write("lake", request, big, index=False), timeout=0.5)
    assert blob_bytes(azurite, blob_container, "kept.csv") == b"a\n1\n"
    assert lake.read("lake", "kept.csv")["a"].tolist() == [1]


@pytest.mark.parametrize(
    ("column", "what"),
    [
        (pd.Series([b"\x00\xff", None], dtype=object), "bytes"),
        (pd.Series([[1, 2], None], dtype=object), "nested values"),
        (pd.Series([{"a": 1}, None], dtype=object), "nested values"),
    ],
    ids=["bytes", "list", "dict"],
)
@pytest.mark.parametrize("path", ["t.csv", "t.tsv.gz"])
def test_a_column_a_text_file_cannot_hold_is_refused_before_anything_is_written(
    folder: Session,
    lake: Session,
    azurite: AzuriteServer,
    blob_container: str,
    tmp_path: Path,
    column: pd.Series,
    what: str,
    path: str,
) -> None:
    frame = pd.DataFrame({"id": [1, 2], "v": column})
    fmt = "TSV" if ".tsv" in path else "CSV"
    refused = rf"^{{}}: column 'v' holds {what}.*, which a {fmt} file cannot hold: nothing was written; "
    with pytest.raises(FormatError, match=refused.format("out")):
        folder.write("out", path, frame)
    assert os.listdir(tmp_path) == []
    with pytest.raises(FormatError, match=refused.format("lake")):
        lake.write("lake", path, frame)
    folder.write("out", "kept.parquet", frame)
    # streamed (an export): refused at the first batch, before any byte of the file
    with pytest.raises(FormatError, match=refused.format("out")):
        folder.export_files("out", "kept.parquet", tmp_path / path)
    with pytest.raises(FormatError, match=refused.format("lake")):
        folder.export_files("out", "kept.parquet", f"dsrc://lake/{path}")
    assert os.listdir(tmp_path) == ["kept.parquet"]
    names = [blob.name for blob in _container(azurite, blob_container).list_blobs()]
    assert names == []


def _container(azurite: AzuriteServer, container: str) -> Any:
    return BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)

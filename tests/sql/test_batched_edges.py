"""SQL over many small files, as users' folders are: files that change or vanish between the
listing and the download, files at the small-file size and just over, empty files, a batch
over its byte cap, thousands of tiny files, and Ctrl-C while a batch is downloading. Results
are DuckDB's own over the same folder; a failure is one line naming the file."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from azure.storage.blob import BlobServiceClient

from deepanalyze_jupyter import QueryError, Session
from deepanalyze_jupyter.connectors.files import batched
from tests.services import AzuriteServer
from tests.sql.conftest import lake_connector_class

_ROWS = "".join(f"{number},name-{number}\n" for number in range(200))
_DAYS = {f"c/d{day}.csv": "id,name\n" + _ROWS for day in range(4)}
_CHANGED = "c/d1.csv"
#: What happens to one file after the listing and before its download.
_CHANGES: dict[str, Callable[[str], str | None]] = {
    "grown": lambda text: text + "".join(f"{n},late-{n}\n" for n in range(300, 500)),
    "rewritten longer": lambda text: "id,name\n" + "".join(f"{n},other-name-{n}\n" for n in range(200)),
    "shrunk": lambda text: "id,name\n1,x\n",
    "deleted": lambda text: None,
}


def _local(session: Session, root: Path, files: dict[str, str | bytes]) -> Callable[[str, str | None], None]:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data.encode() if isinstance(data, str) else data)
    session.add("lake", "local", path=str(root))

    def change(name: str, text: str | None) -> None:
        if text is None:
            (root / name).unlink()
        else:
            (root / name).write_text(text)

    return change


def _blob(
    request: pytest.FixtureRequest, session: Session, files: dict[str, str]
) -> Callable[[str, str | None], None]:
    azurite: AzuriteServer = request.getfixturevalue("azurite")
    container: str = request.getfixturevalue("blob_container")
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    request.addfinalizer(service.close)
    box = service.get_container_client(container)
    for name, data in files.items():
        box.upload_blob(name, data.encode())
    session.add(
        "lake", "azure_blob", container=container, secrets={"connection_string": azurite.connection_string}
    )

    def change(name: str, text: str | None) -> None:
        if text is None:
            box.delete_blob(name)
        else:
            box.upload_blob(name, text.encode(), overwrite=True)

    return change


@pytest.fixture(params=["local", pytest.param("blob", marks=[pytest.mark.integration, pytest.mark.azurite])])
def days(
    request: pytest.FixtureRequest, session: Session, tmp_path: Path
) -> Callable[[str, str | None], None]:
    """Source ``lake`` holding :data:`_DAYS`; returns how to change one of its files for real."""
    if request.param == "local":
        return _local(session, tmp_path / "lake", dict(_DAYS))
    return _blob(request, session, dict(_DAYS))


@pytest.mark.parametrize("how", sorted(_CHANGES))
def test_a_file_changed_between_listing_and_download_fails_the_query_in_one_line(
    session: Session, days: Callable[[str, str | None], None], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    connector_class = lake_connector_class(session)
    read_whole = connector_class.read_whole

    async def changed_meanwhile(connector: Any, path: str, size: int) -> Any:
        if path == _CHANGED:
            await asyncio.to_thread(days, path, _CHANGES[how](_DAYS[path]))
        return await read_whole(connector, path, size)

    monkeypatch.setattr(connector_class, "read_whole", changed_meanwhile)
    with pytest.raises(QueryError) as raised:
        session.query("lake", "SELECT count(*) AS n, max(name) AS top FROM read_csv('c/*.csv')")
    message = str(raised.value)
    if how == "deleted":
        assert message.startswith(f"lake: no {'file' if 'container' not in message else 'blob'} {_CHANGED!r}")
    else:
        assert message.startswith(f"lake: {_CHANGED!r} changed while the query read it")
    assert "\n" not in message


def _duckdb_over_folder(root: Path, sql: str) -> pd.DataFrame:
    """DuckDB's own answer over the folder on disk (the reference)."""
    with duckdb.connect() as connection:
        return connection.sql(sql.replace("('", f"('{root}/")).df()


def _csv_of_size(size: int, tag: str) -> bytes:
    """A CSV of exactly ``size`` bytes whose last row ends the file."""
    head = f"id,tag,pad\n1,{tag},".encode()
    return head + b"x" * (size - len(head) - 1) + b"\n"


def test_small_files_at_the_threshold_and_over_and_empty_ones_read_as_duckdb_reads_them(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threshold = 4096
    monkeypatch.setattr(batched, "TEXT_FILE_BYTES", threshold)  # a CSV's, above a Parquet file's
    files: dict[str, str | bytes] = {
        "c/a-at.csv": _csv_of_size(threshold, "at"),
        "c/b-over.csv": _csv_of_size(threshold + 1, "over"),
        "c/c-under.csv": _csv_of_size(threshold - 1, "under"),
        "c/d-tiny.csv": "id,tag,pad\n2,tiny,y\n",
        "e/a.jsonl": "",
        "e/b.jsonl": '{"id": 3}\n',
        "e/c.jsonl": "",
    }
    _local(session, tmp_path / "lake", files)
    fetched: list[str] = []
    read_whole = lake_connector_class(session).read_whole

    async def counted(connector: Any, path: str, size: int) -> Any:
        fetched.append(path)
        return await read_whole(connector, path, size)

    monkeypatch.setattr(lake_connector_class(session), "read_whole", counted)
    sql = "SELECT tag, length(pad) AS pad FROM read_csv('c/*.csv') ORDER BY id, tag"
    frame = session.query("lake", sql)
    expected = _duckdb_over_folder(tmp_path / "lake", sql)
    assert frame["tag"].tolist() == expected["tag"].tolist() == ["at", "over", "under", "tiny"]
    assert frame["pad"].tolist() == expected["pad"].tolist()
    assert sorted(fetched) == ["c/a-at.csv", "c/c-under.csv", "c/d-tiny.csv"]  # not the one over
    sql = "SELECT id FROM read_json('e/*.jsonl')"
    expected = _duckdb_over_folder(tmp_path / "lake", sql)
    assert session.query("lake", sql)["id"].tolist() == expected["id"].tolist() == [3]


def test_a_batch_over_its_byte_cap_reads_the_rest_in_ranges(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files: dict[str, str | bytes] = {f"c/f{n:02d}.csv": _csv_of_size(1000 + n, f"t{n}") for n in range(12)}
    _local(session, tmp_path / "lake", files)
    monkeypatch.setattr(batched, "BATCH_BYTES", 5000)  # room for four of them
    connector_class = lake_connector_class(session)
    whole: list[str] = []
    read_whole = connector_class.read_whole

    async def counted(connector: Any, path: str, size: int) -> Any:
        whole.append(path)
        return await read_whole(connector, path, size)

    monkeypatch.setattr(connector_class, "read_whole", counted)
    sql = "SELECT tag, length(pad) AS pad FROM read_csv('c/*.csv') ORDER BY tag"
    frame = session.query("lake", sql)
    expected = _duckdb_over_folder(tmp_path / "lake", sql)
    assert frame["tag"].tolist() == expected["tag"].tolist()
    assert frame["pad"].tolist() == expected["pad"].tolist()
    assert sorted(whole) == [f"c/f{n:02d}.csv" for n in range(4)]  # what fits; the rest in ranges
    assert sum(len(files[name]) for name in whole) <= 5000


def _csv_files(prefix: str, count: int, size: int) -> dict[str, str]:
    """``count`` CSV files of about ``size`` bytes: ``id,v`` rows, ``id`` numbering them all."""
    rows = size // 16
    return {
        f"{prefix}{n}.csv": "id,v\n" + "".join(f"{n * rows + i},{i % 97:012d}\n" for i in range(rows))
        for n in range(count)
    }


_STORES = ["local", pytest.param("blob", marks=[pytest.mark.integration, pytest.mark.azurite])]


def _rows_and_bytes(files: dict[str, str], prefix: str) -> tuple[int, int]:
    chosen = [data for name, data in files.items() if name.startswith(prefix)]
    return sum(data.count("\n") - 1 for data in chosen), sum(len(data) for data in chosen)


@pytest.mark.parametrize("store", _STORES)
def test_csv_files_larger_than_a_small_file_come_in_the_batch_once_each(
    request: pytest.FixtureRequest, session: Session, tmp_path: Path, store: str
) -> None:
    """DuckDB reads a CSV file two or three times (to sniff it, to bind and to scan): the
    files of a glob up to ``TEXT_FILE_BYTES`` come in its batch, each fetched once."""
    files = _csv_files("g/part-", 3, 3 * batched.SMALL_FILE_BYTES // 2)
    if store == "local":
        _local(session, tmp_path / "lake", dict(files))
    else:
        _blob(request, session, files)
    frame = session.query("lake", "SELECT count(*) AS n, sum(id) AS total FROM read_csv('g/*.csv')")
    rows, size = _rows_and_bytes(files, "g/")
    assert frame["n"].tolist() == [rows]
    assert frame["total"].tolist() == [rows * (rows - 1) // 2]
    assert frame.attrs["bytes_fetched"] == size


@pytest.mark.integration
@pytest.mark.azurite
def test_a_blob_read_in_ranges_fetches_each_range_once(
    request: pytest.FixtureRequest, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CSV blob above the batch's size is read in ranges, DuckDB's first buffer two or three
    times: the statement keeps what it fetched, so each byte crosses the network once."""
    monkeypatch.setattr(batched, "TEXT_FILE_BYTES", 2 * batched.SMALL_FILE_BYTES)
    files = _csv_files("big/only-", 1, 3 * batched.SMALL_FILE_BYTES)
    _blob(request, session, files)
    frame = session.query("lake", "SELECT count(*) AS n FROM read_csv('big/only-0.csv')")
    rows, size = _rows_and_bytes(files, "big/")
    assert frame["n"].tolist() == [rows]
    assert frame.attrs["bytes_fetched"] == size


def test_the_ranges_kept_for_a_statement_stay_within_their_bound(session: Session) -> None:
    filesystem = batched.StatementFileSystem(session=session)
    piece = b"x" * (batched.KEPT_BYTES // 4)
    for start in range(6):
        filesystem._keep(("lake/a.csv", start, start + len(piece)), piece)
    assert filesystem._kept_bytes == batched.KEPT_BYTES
    assert [key[1] for key in filesystem._kept] == [2, 3, 4, 5]  # the least recently read let go
    filesystem._keep(("lake/huge.csv", 0, batched.KEPT_BYTES), b"x" * batched.KEPT_BYTES)
    assert "lake/huge.csv" not in {key[0] for key in filesystem._kept}  # more than half: never kept
    filesystem.close()
    assert filesystem._kept_bytes == 0


def test_thousands_of_tiny_files(session: Session, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {f"t/f{n:05d}.csv": f"id,v\n{n},{n * 2}\n" for n in range(5000)}
    _local(session, tmp_path / "lake", files)
    sql = "SELECT count(*) AS n, sum(v)::BIGINT AS v FROM read_csv('t/*.csv')"
    frame = session.query("lake", sql)
    assert frame.to_dict("list") == _duckdb_over_folder(tmp_path / "lake", sql).to_dict("list")
    assert frame.attrs["bytes_fetched"] == sum(len(text) for text in files.values())


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_mid_batch_leaves_nothing_running(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _local(session, tmp_path / "lake", dict(_DAYS))
    connector_class = lake_connector_class(session)
    read_whole = connector_class.read_whole
    started: list[str] = []
    stopped: list[str] = []

    async def stuck(connector: Any, path: str, size: int) -> Any:
        started.append(path)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append(path)
            raise
        return b""

    monkeypatch.setattr(connector_class, "read_whole", stuck)
    main_thread = threading.get_ident()
    threads_before = {thread.ident for thread in threading.enumerate()}

    def interrupt_when_downloading() -> None:
        deadline = time.perf_counter() + 10
        while len(started) < len(_DAYS) and time.perf_counter() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(main_thread, signal.SIGINT)

    threading.Thread(target=interrupt_when_downloading, daemon=True).start()
    began = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        session.query("lake", "SELECT count(*) FROM read_csv('c/*.csv')")
    assert time.perf_counter() - began < 10
    assert sorted(stopped) == sorted(_DAYS)  # every download of the batch was cancelled

    async def still_running() -> list[str]:
        current = asyncio.current_task()
        return [repr(task) for task in asyncio.all_tasks() if task is not current and not task.done()]

    assert session.run(still_running()) == []
    monkeypatch.setattr(connector_class, "read_whole", read_whole)
    frame = session.query("lake", "SELECT count(*) AS n FROM read_csv('c/*.csv')")
    assert int(frame["n"][0]) == 800  # the source works on, right after
    busy = [
        thread.name
        for thread in threading.enumerate()
        if thread.ident not in threads_before
        # the loop's workers, and the one that makes DuckDB databases ahead, live as long as the kernel
        and not thread.name.startswith(("asyncio_", "deepanalyze", "duckdb-spare"))
    ]
    assert busy == []


_ODD_NAMES = ["my file \u00e9\u6f22.csv", "hash#1 %41+plus.csv", "data[1].csv", "what?.csv", "q'uote.csv"]


@pytest.fixture(params=["local", pytest.param("blob", marks=[pytest.mark.integration, pytest.mark.azurite])])
def odd_names(request: pytest.FixtureRequest, session: Session, tmp_path: Path) -> Session:
    files = {f"o/{name}": f"id,name\n{index},{name}\n" for index, name in enumerate(_ODD_NAMES)}
    if request.param == "local":
        _local(session, tmp_path / "lake", dict(files))
    else:
        _blob(request, session, files)
    return session


def test_files_with_odd_names_come_in_the_batch_once_each(
    odd_names: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector_class = lake_connector_class(odd_names)
    read_whole = connector_class.read_whole
    fetched: list[str] = []

    async def counted(connector: Any, path: str, size: int) -> Any:
        fetched.append(path)
        return await read_whole(connector, path, size)

    monkeypatch.setattr(connector_class, "read_whole", counted)
    frame = odd_names.query("lake", "SELECT id, name FROM read_csv('o/*.csv', quote='\"') ORDER BY id")
    assert frame["name"].tolist() == _ODD_NAMES
    assert sorted(fetched) == sorted(f"o/{name}" for name in _ODD_NAMES)


def test_a_batch_never_reads_through_a_link_out_of_the_folder(session: Session, tmp_path: Path) -> None:
    _local(session, tmp_path / "lake", dict(_DAYS))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.csv").write_text("id,name\n1,not-yours\n")
    (tmp_path / "lake" / "c" / "link.csv").symlink_to(tmp_path / "outside" / "secret.csv")
    (tmp_path / "lake" / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    read = session.query("lake", "SELECT name, filename FROM read_csv('c/*.csv', filename=true)", limit=None)
    assert sorted(set(read["filename"])) == sorted(f"dsrc://lake/{name}" for name in _DAYS)
    assert "not-yours" not in set(read["name"])
    everything = session.query("lake", "SELECT filename, content FROM read_text('**')", limit=None)
    assert "not-yours" not in everything["content"].str.cat()
    assert sorted(everything["filename"]) == sorted(f"dsrc://lake/{name}" for name in _DAYS)


def test_a_double_star_glob_gives_files_not_folders(
    session: Session, days: Callable[[str, str | None], None]
) -> None:
    files = sorted(f"dsrc://lake/{name}" for name in _DAYS)
    assert sorted(session.query("lake", "SELECT file FROM glob('**')")["file"]) == files
    text = session.query("lake", "SELECT filename, size FROM read_text('c/**')")
    assert sorted(text["filename"]) == files
    assert set(text["size"]) == {len(_DAYS[_CHANGED])}

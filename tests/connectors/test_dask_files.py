"""Files of a local folder and of an Azurite container handed to Dask, on a real LocalCluster of
worker processes: the values and dtypes of the kernel's read, one line for what a worker cannot
do, and a blob worker's SAS that reads one container and nothing more, until it expires."""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient, ContainerClient

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.dask_handoff.files import FilePart
from deepanalyze_jupyter.errors import AuthenticationFailed, ConfigurationError, FormatError, ItemNotFound
from tests.conftest import new_container
from tests.dask_cluster import worker_cluster
from tests.services import AzuriteServer

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")


def _parquet(day: int) -> bytes:
    """Nullable ints, zoned times, exact decimals, text and bytes (which Dask would make text)."""
    table = pa.table(
        {
            "id": pa.array([day * 10 + 1, None, day * 10 + 3], pa.int64()),
            "at": pa.array(
                [datetime(2024, 1, day, hour, tzinfo=timezone.utc) for hour in (1, 2, 3)],
                pa.timestamp("us", tz="UTC"),
            ),
            "amount": pa.array([Decimal("1.25"), None, Decimal(f"-{day}.10")], pa.decimal128(10, 2)),
            "name": pa.array([f"n{day}", None, "c"]),
            "raw": pa.array([b"x", None, bytes([day])]),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


FILES = {
    **{f"events/day={day}/part-0.parquet": _parquet(day) for day in (1, 2, 10)},
    "sales/2024-q1.csv": b"day,store,units,revenue\n2024-01-03,S01,12,637.56\n2024-02-01,S02,,10.5\n",
    "sales/2024-q2.csv": b"day,store,units,revenue\n2024-04-03,S01,7,1.25\n",
    "logs/a.jsonl": b'{"level": "info", "n": 1}\n{"level": null, "n": 2}\n',
    "logs/b.jsonl": b'{"level": "warn", "n": 3}\n',
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with worker_cluster() as client:
        yield client


def folder_lake(session: Session, root: Path, files: dict[str, bytes]) -> Session:
    """Source ``lake``: the local folder ``root``, made to hold ``files``."""
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    session.add("lake", "local", path=str(root))
    return session


def container_lake(
    session: Session, azurite: AzuriteServer, container: str, files: dict[str, bytes]
) -> Session:
    """Source ``lake``: the Azurite ``container``, made to hold ``files``, signed in with the account key."""
    azurite.upload(container, files)
    session.add("lake", "azure_blob", **azurite.keyed_source(container))
    return session


@pytest.fixture
def local_lake(session: Session, tmp_path: Path) -> Session:
    """Source ``lake``: a local folder holding :data:`FILES`."""
    return folder_lake(session, tmp_path / "lake", FILES)


@pytest.fixture
def blob_lake(session: Session, azurite: AzuriteServer, blob_container: str) -> Session:
    """Source ``lake``: an Azurite container holding :data:`FILES`, signed in with the account key."""
    return container_lake(session, azurite, blob_container, FILES)


@pytest.fixture(params=["local", pytest.param("blob", marks=[pytest.mark.integration, pytest.mark.azurite])])
def lake(request: pytest.FixtureRequest) -> Session:
    return request.getfixturevalue(f"{request.param}_lake")  # type: ignore[no-any-return]


#: Numbers in the dtype a column takes once a value is missing: every Dask partition has it,
#: since one file cannot tell whether another holds a missing value.
_NULLABLE = {"int64": "Int64", "int32": "Int32", "bool": "boolean", "float64": "Float64"}


def _in_dask_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(
        {name: _NULLABLE[str(dtype)] for name, dtype in frame.dtypes.items() if str(dtype) in _NULLABLE}
    )


def _parts(ddf: Any) -> list[FilePart]:
    """The file parts the graph's tasks carry to the workers."""
    tasks = dict(ddf.__dask_graph__()).values()
    return [arg for task in tasks for arg in getattr(task, "args", ()) if isinstance(arg, FilePart)]


@pytest.mark.parametrize(
    ("what", "files"),
    [("events/**/*.parquet", 3), ("sales", 2), ("logs/*.jsonl", 2), ("logs/b.jsonl", 1)],
)
def test_a_dask_read_on_worker_processes_equals_the_kernel_read(
    lake: Session, cluster: Any, what: str, files: int
) -> None:
    ddf = lake.to_dask("lake", what)
    assert ddf.npartitions == files
    expected = _in_dask_dtypes(lake.read("lake", what, limit=None))
    expected.attrs.clear()
    assert ddf.dtypes.to_dict() == expected.dtypes.to_dict()
    computed = ddf.compute()
    pd.testing.assert_frame_equal(computed.reset_index(drop=True), expected)
    workers = cluster.run(os.getpid)
    assert os.getpid() not in workers.values()


def test_partition_on_is_refused_for_a_file_source(local_lake: Session) -> None:
    with pytest.raises(ConfigurationError, match="one task per file"):
        local_lake.to_dask("lake", "sales", partition_on="units")


def test_a_postgresql_source_needs_partition_on(session: Session) -> None:
    session.add("pg", "postgresql", host="127.0.0.1", dbname="x", user="u", test=False)
    with pytest.raises(ConfigurationError, match="needs partition_on=COLUMN"):
        session.to_dask("pg", "SELECT 1")


def test_a_worker_that_cannot_see_the_folder_gets_one_line(local_lake: Session, cluster: Any) -> None:
    ddf = local_lake.to_dask("lake", "sales")
    root = Path(local_lake.registry.get_config("lake").options["path"])
    shutil.move(root, root.with_name("moved"))
    with pytest.raises(ItemNotFound, match=r"not on this worker.*same filesystem") as raised:
        ddf.compute()
    assert str(raised.value).startswith("lake: folder ")
    assert "\n" not in str(raised.value)


def test_a_file_unlike_the_first_gets_one_line(local_lake: Session, cluster: Any, tmp_path: Path) -> None:
    (tmp_path / "lake" / "sales" / "2024-q3.csv").write_text(
        "day,store,units,revenue\n2024-07-01,S09,many,1\n"
    )
    ddf = local_lake.to_dask("lake", "sales")
    with pytest.raises(FormatError, match=r"'sales/2024-q3\.csv' does not match the first file") as raised:
        ddf.compute()
    assert "\n" not in str(raised.value)
    # reader options travel; revenue 1 (an integer) becomes a float like the other files' revenues
    as_text = local_lake.to_dask("lake", "sales", dtype={"units": "string"}).compute()
    expected = _in_dask_dtypes(local_lake.read("lake", "sales", limit=None, dtype={"units": "string"}))
    expected.attrs.clear()
    pd.testing.assert_frame_equal(as_text.reset_index(drop=True), expected)
    assert as_text["units"].tolist()[-1] == "many"


# -- what a blob worker holds --------------------------------------------------------------


@pytest.fixture
def other_container(azurite: AzuriteServer) -> Iterator[str]:
    """A second container with one blob, which the lake's workers must not reach."""
    for name in new_container(azurite):
        with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            service.get_container_client(name).upload_blob("private.csv", b"a\n1\n")
        yield name


def _worker_client(part: FilePart, container: str | None = None) -> ContainerClient:
    """A container client signed in with exactly what ``part`` gives its worker."""
    options = part.access.options
    return ContainerClient(
        options["account_url"], container or options["container"], credential=part.access.secrets["sas_token"]
    )


def _refused(action: Any) -> int:
    with pytest.raises(HttpResponseError) as raised:
        action()
    return int(raised.value.status_code or 0)


@pytest.mark.integration
@pytest.mark.azurite
def test_a_blob_worker_gets_a_sas_that_reads_and_lists_its_container_only(
    blob_lake: Session, azurite: AzuriteServer, blob_container: str, other_container: str
) -> None:
    parts = _parts(blob_lake.to_dask("lake", "sales"))
    assert len(parts) == 2
    assert parts[0].access.options["auth"] == "sas_token"
    assert set(parts[0].access.secrets) == {"sas_token"}
    with _worker_client(parts[0]) as box:
        assert sorted(blob.name for blob in box.list_blobs()) == sorted(FILES)
        assert box.download_blob("sales/2024-q2.csv").readall() == FILES["sales/2024-q2.csv"]
        assert _refused(lambda: box.upload_blob("new.csv", b"a\n")) == 403
        assert _refused(lambda: box.upload_blob("sales/2024-q2.csv", b"a\n", overwrite=True)) == 403
        assert _refused(lambda: box.delete_blob("sales/2024-q1.csv")) == 403
    with _worker_client(parts[0], other_container) as other:
        assert _refused(lambda: other.download_blob("private.csv").readall()) == 403
        assert _refused(lambda: list(other.list_blobs())) == 403
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        names = [blob.name for blob in service.get_container_client(blob_container).list_blobs()]
    assert sorted(names) == sorted(FILES)  # nothing was written or deleted


@pytest.mark.integration
@pytest.mark.azurite
def test_a_blob_workers_sas_expires(blob_lake: Session, cluster: Any) -> None:
    ddf = blob_lake.to_dask("lake", "logs", sas_expiry=timedelta(seconds=3))
    part = _parts(ddf)[0]
    with _worker_client(part) as box:
        assert box.download_blob("logs/a.jsonl").readall() == FILES["logs/a.jsonl"]
        time.sleep(5)
        assert _refused(lambda: box.download_blob("logs/a.jsonl").readall()) == 403
    with pytest.raises(AuthenticationFailed, match="because it expired: call to_dask again") as raised:
        ddf.compute()
    assert "\n" not in str(raised.value)


@pytest.mark.integration
@pytest.mark.azurite
def test_a_user_sas_travels_as_given(
    session: Session, azurite: AzuriteServer, blob_container: str, cluster: Any
) -> None:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.get_container_client(blob_container).upload_blob("logs/a.jsonl", FILES["logs/a.jsonl"])
    sas = generate_container_sas(
        azurite.account_name,
        blob_container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    session.add(
        "lake",
        "azure_blob",
        account_url=azurite.blob_endpoint,
        container=blob_container,
        secrets={"sas_token": sas},
    )
    ddf = session.to_dask("lake", "logs/a.jsonl")
    assert [part.access.secrets["sas_token"] for part in _parts(ddf)] == [sas]
    expected = _in_dask_dtypes(session.read("lake", "logs/a.jsonl", limit=None))
    expected.attrs.clear()
    pd.testing.assert_frame_equal(ddf.compute().reset_index(drop=True), expected)


@pytest.mark.integration
@pytest.mark.azurite
def test_a_source_of_a_whole_account_reads_each_container_with_its_own_sas(
    blob_lake: Session, azurite: AzuriteServer, blob_container: str, other_container: str, cluster: Any
) -> None:
    blob_lake.add(
        "account",
        "azure_blob",
        account_url=azurite.blob_endpoint,
        secrets={"account_key": azurite.account_key},
    )
    paths = [f"{blob_container}/sales/2024-q1.csv", f"{other_container}/private.csv"]
    ddf = blob_lake.to_dask("account", paths[0])
    expected = _in_dask_dtypes(blob_lake.read("account", paths[0], limit=None))
    expected.attrs.clear()
    pd.testing.assert_frame_equal(ddf.compute().reset_index(drop=True), expected)
    parts = _parts(blob_lake.to_dask("account", paths[1]))
    assert parts[0].access.options["container"] == other_container
    with _worker_client(parts[0], blob_container) as elsewhere:
        assert _refused(lambda: list(elsewhere.list_blobs())) == 403

"""Files a user may well have, handed to Dask on a real LocalCluster of worker processes: names
with glob characters, spaces and unicode, empty files, very wide files, nothing matched, and
sources whose credential cannot see what is asked; values equal the kernel's read, and each
failure is one line naming the source with no secret in it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import ConfigurationError, DataSourceError, FormatError, ItemNotFound
from tests.conftest import new_container
from tests.connectors.test_dask_files import _in_dask_dtypes, _parts, container_lake, folder_lake
from tests.dask_cluster import worker_cluster
from tests.services import AzuriteServer

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

#: Names a glob would take for a pattern, or mangle: each must read as exactly that file.
ODD_FILES = {
    "odd/data[1].csv": b"a,b\n1,bracket\n",
    "odd/data1.csv": b"a,b\n2,plain\n",
    "odd/what?.csv": b"a,b\n3,question\n",
    "odd/whatX.csv": b"a,b\n4,x\n",
    "odd/star*.csv": b"a,b\n5,star\n",
    "odd/starry.csv": b"a,b\n6,starry\n",
    "odd/my file \u00e9\u6f22.csv": b"a,b\n7,unicode\n",
    "odd/hash#1 %41+plus.csv": b"a,b\n9,escapes\n",
    "empty/a.csv": b"",
    "empty/b.csv": b"a,b\n8,after-empty\n",
    "empty/c.csv": b"",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with worker_cluster() as client:
        yield client


@pytest.fixture
def local_odd(session: Session, tmp_path: Path) -> Session:
    return folder_lake(session, tmp_path / "lake", ODD_FILES)


@pytest.fixture
def blob_odd(session: Session, azurite: AzuriteServer, blob_container: str) -> Session:
    return container_lake(session, azurite, blob_container, ODD_FILES)


@pytest.fixture(params=["local", pytest.param("blob", marks=[pytest.mark.integration, pytest.mark.azurite])])
def odd(request: pytest.FixtureRequest) -> Session:
    return request.getfixturevalue(f"{request.param}_odd")  # type: ignore[no-any-return]


def _kernel_read(session: Session, what: str | list[str], **options: Any) -> pd.DataFrame:
    expected = _in_dask_dtypes(session.read("lake", what, limit=None, **options))
    expected.attrs.clear()
    return expected


@pytest.mark.parametrize(
    "what", ["odd", "odd/*.csv", "odd/data[[]1].csv", "empty", "empty/*.csv", "empty/a.csv"]
)
def test_odd_names_and_empty_files_read_as_in_the_kernel(odd: Session, cluster: Any, what: str) -> None:
    """A worker reads the very file it was given: ``data[1].csv`` is not the pattern of ``data1.csv``."""
    expected = _kernel_read(odd, what)
    computed = odd.to_dask("lake", what).compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(computed, expected)


def test_nothing_matched_is_the_kernel_reads_one_line(odd: Session) -> None:
    for what in ("nowhere/*.parquet", "odd/*.parquet", "nowhere", "odd/nothing.csv"):
        with pytest.raises(DataSourceError) as kernel:
            odd.read("lake", what, limit=None)
        with pytest.raises(type(kernel.value)) as raised:
            odd.to_dask("lake", what)
        message = str(raised.value)
        assert message == str(kernel.value)
        assert message.startswith("lake: ")
        assert "\n" not in message


# -- a SAS the user gave -------------------------------------------------------------------------


def _user_sas(azurite: AzuriteServer, container: str, permission: ContainerSasPermissions) -> str:
    return generate_container_sas(
        azurite.account_name,
        container,
        account_key=azurite.account_key,
        permission=permission,
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


def _shown(*things: Any) -> str:
    """Everything a user may see of these objects: their reprs and texts."""
    return "\n".join(f"{thing!r}\n{thing!s}" for thing in things)


@pytest.mark.integration
@pytest.mark.azurite
def test_a_user_sas_with_write_rights_travels_but_is_never_shown(
    session: Session, azurite: AzuriteServer, blob_container: str, cluster: Any
) -> None:
    sas = _user_sas(azurite, blob_container, ContainerSasPermissions(read=True, write=True, list=True))
    signature = sas.rsplit("sig=", 1)[1]
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        box = service.get_container_client(blob_container)
        for name in ("odd/data[1].csv", "odd/gone.csv"):
            box.upload_blob(name, ODD_FILES.get(name, b"a,b\n9,gone\n"))
        session.add(
            "lake",
            "azure_blob",
            account_url=azurite.blob_endpoint,
            container=blob_container,
            secrets={"sas_token": sas},
        )
        ddf = session.to_dask("lake", "odd")
        parts = _parts(ddf)
        assert [part.access.secrets["sas_token"] for part in parts] == [sas, sas]  # as given
        box.delete_blob("odd/gone.csv")
    with pytest.raises(ItemNotFound) as raised:
        ddf.compute()
    message = str(raised.value)
    assert message.startswith("lake: ")
    assert "odd/gone.csv" in message
    assert "\n" not in message
    shown = _shown(ddf, parts, parts[0].access, raised.value, raised.value.args)
    assert signature not in shown
    assert signature not in repr(cluster.get_worker_logs())


@pytest.mark.integration
@pytest.mark.azurite
def test_a_container_the_sas_cannot_see_is_one_line(
    session: Session, azurite: AzuriteServer, blob_container: str
) -> None:
    for other in new_container(azurite):
        sas = _user_sas(azurite, other, ContainerSasPermissions(read=True, list=True))
        session.add(
            "lake",
            "azure_blob",
            account_url=azurite.blob_endpoint,
            container=blob_container,
            secrets={"sas_token": sas},
            test=False,
        )
        with pytest.raises(DataSourceError) as raised:
            session.to_dask("lake", "odd/*.csv")
        message = str(raised.value)
        assert message.startswith("lake: "), message
        assert "\n" not in message
        assert sas.rsplit("sig=", 1)[1] not in _shown(raised.value, raised.value.args)


def test_wide_files_that_differ_are_one_short_line_or_lined_up_by_name(
    local_odd: Session, cluster: Any
) -> None:
    first = pd.DataFrame([range(1600), range(1, 1601)], columns=[f"c{index}" for index in range(1600)])
    folder = Path(local_odd.registry.get_config("lake").options["path"]) / "wide"
    folder.mkdir()
    first.to_parquet(folder / "a.parquet")
    first[first.columns[::-1]].to_parquet(folder / "b.parquet")  # the same columns, reversed
    other = pd.concat([first.drop(columns=["c7"]), pd.DataFrame({"extra": [1, 2]})], axis=1)
    other.to_parquet(folder / "c.parquet")
    reordered = local_odd.to_dask("lake", ["wide/a.parquet", "wide/b.parquet"]).compute()
    expected = _kernel_read(local_odd, ["wide/a.parquet", "wide/b.parquet"])
    pd.testing.assert_frame_equal(reordered.reset_index(drop=True), expected)
    with pytest.raises(FormatError) as raised:
        local_odd.to_dask("lake", "wide").compute()
    message = str(raised.value)
    assert message.startswith("lake: 'wide/c.parquet' does not match the first file")
    assert "no column 'c7'" in message
    assert "column 'extra' the first file does not have" in message
    assert len(message) < 300


@pytest.mark.parametrize("option", [{"limit": 5}, {"output": "arrow"}, {"cache_ttl": 60}])
def test_an_option_of_read_that_a_dask_read_cannot_take_is_one_line(
    local_odd: Session, option: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        local_odd.to_dask("lake", "odd", **option)
    message = str(raised.value)
    assert message.startswith(f"lake: to_dask takes no {next(iter(option))}=: ")
    assert "\n" not in message


@pytest.mark.integration
@pytest.mark.azurite
def test_nothing_matched_in_a_source_of_a_whole_account_is_the_kernel_reads_one_line(
    blob_odd: Session, azurite: AzuriteServer, blob_container: str
) -> None:
    blob_odd.add(
        "account",
        "azure_blob",
        account_url=azurite.blob_endpoint,
        secrets={"account_key": azurite.account_key},
    )
    for what in (f"{blob_container}/odd/*.parquet", "no-such-container/x.csv", "*/x.csv"):
        with pytest.raises(DataSourceError) as kernel:
            blob_odd.read("account", what, limit=None)
        with pytest.raises(type(kernel.value)) as raised:
            blob_odd.to_dask("account", what)
        assert str(raised.value) == str(kernel.value)
        assert str(raised.value).startswith("account: ")
        assert "\n" not in str(raised.value)


#: A CSV header with no rows first, and a file whose column holds no value: neither tells a type.
UNTYPED_FILES = {
    "untyped/a.csv": b"id,amount,done\n",
    "untyped/b.csv": b"id,amount,done\n1,2.5,true\n2,,false\n",
    "untyped/c.csv": b"id,amount,done\n3,4.25,\n",
}


def test_files_whose_columns_tell_no_type_read_as_in_the_kernel(
    session: Session, cluster: Any, tmp_path: Path
) -> None:
    """A header-only CSV first sets no dtypes (they were ``object``, refusing every later file);
    a column with no value takes the dtype of the first file, as the kernel's read widens it."""
    lake = folder_lake(session, tmp_path / "lake", UNTYPED_FILES)
    expected = _kernel_read(lake, "untyped")
    ddf = lake.to_dask("lake", "untyped")
    assert ddf.dtypes.to_dict() == expected.dtypes.to_dict()
    pd.testing.assert_frame_equal(ddf.compute().reset_index(drop=True), expected)


def test_a_column_the_first_file_leaves_empty_takes_later_values_as_objects(
    session: Session, cluster: Any, tmp_path: Path
) -> None:
    """The first file with rows has no value in ``name`` (so ``object``); a later file's text
    is taken as objects rather than refused."""
    files = {"late/1.csv": b"id,name\n1,\n", "late/2.csv": b"id,name\n2,x\n"}
    lake = folder_lake(session, tmp_path / "lake", files)
    ddf = lake.to_dask("lake", "late")
    assert str(ddf.dtypes["name"]) == "object"
    computed = ddf.compute().reset_index(drop=True)
    assert computed["id"].tolist() == [1, 2]
    assert computed["name"].isna().tolist() == [True, False]
    assert computed["name"][1] == "x"

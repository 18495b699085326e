"""The Azure Blob Storage connector on the real Azurite of the test session."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    ContentSettings,
    ResourceTypes,
    generate_account_sas,
    generate_container_sas,
)

from deepanalyze_jupyter import DataSourceConfig, DataSourceRegistry, Session
from deepanalyze_jupyter.connectors.azure_blob import download as _azure_download
from deepanalyze_jupyter.connectors.azure_blob import listing as _azure_listing
from deepanalyze_jupyter.errors import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    DataSourceError,
    FormatError,
    ItemNotFound,
)
from deepanalyze_jupyter.frames import arrow_to_frame, is_truncated
from deepanalyze_jupyter.models import Secret
from deepanalyze_jupyter.progress import Progress
from tests.services import AzuriteServer
from tests.services.process import free_loopback_port

LISTING_DTYPES = {
    "name": "string",
    "kind": "string",
    "size": "Int64",
    "last_modified": "datetime64[us, UTC]",
    "content_type": "string",
    "etag": "string",
}
RECORDS: list[dict[str, Any]] = [
    {"id": 1, "city": "Lisbon", "amount": 1.5},
    {"id": 2, "city": None, "amount": 2.5},
    {"id": 3, "city": "Oslo", "amount": None},
]
CSV = b"id,city,amount\n1,Lisbon,1.5\n2,,2.5\n3,Oslo,\n"


def _parquet(records: list[dict[str, Any]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), sink)
    return sink.getvalue()


FORMAT_FILES: dict[str, bytes] = {
    "formats/data.csv": CSV,
    "formats/data.tsv": CSV.replace(b",", b"\t"),
    "formats/data.json": json.dumps(RECORDS).encode(),
    "formats/data.jsonl": b"\n".join(json.dumps(r).encode() for r in RECORDS) + b"\n",
    "formats/data.parquet": _parquet(RECORDS),
}


def _add_container_source(
    session: Session, azurite: AzuriteServer, container: str, source_id: str, **options: Any
) -> None:
    """Register ``container`` of the test Azurite as ``source_id``, by connection string."""
    session.add(
        source_id,
        "azure_blob",
        container=container,
        secrets={"connection_string": azurite.connection_string},
        **options,
    )


def _large_csv(rows: int) -> bytes:
    lines = [b"n,label"] + [f"{n},row-{n:07d}".encode() for n in range(rows)]
    return b"\n".join(lines) + b"\n"


LARGE_ROWS = 300_000  # about 4.5 MB: several 1 MiB ranges


@pytest.fixture(scope="module")
def data_container(azurite: AzuriteServer) -> Iterator[str]:
    """A container holding every kind of file the tests read, made once for the module."""
    name = f"data-{uuid4().hex[:16]}"
    blobs: dict[str, bytes] = {
        "sales/2024/q1.csv": b"region,amount\nEU,10\nUS,20\n",
        "sales/2024/q2.csv": b"region,amount\nEU,30\n",
        "sales/2024/q3.csv.gz": gzip.compress(b"region,amount\nAS,40\n"),
        "sales/2023/q4.csv": b"region,amount\nEU,5\n",
        "sales/notes.tsv": b"a\tb\n1\tx\n",
        "sales/_SUCCESS": b"",
        "products.parquet": _parquet([{"id": 1, "name": "tea"}, {"id": 2, "name": "cake"}]),
        "logs/2024/events.parquet": _parquet([{"n": 1}]),
        "bad/broken.csv": b"a,b\n1,2\n3,4,5\n",
        "bad/broken.parquet": b"PAR1 not really parquet",
        "bad/broken.json": b'[{"a": 1},',
        "bad/readme.txt": b"not data",
        "empty.csv": b"",
        "big/large.csv": _large_csv(LARGE_ROWS),
        **FORMAT_FILES,
        **{f"{path}.gz": gzip.compress(data) for path, data in FORMAT_FILES.items()},
    }
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.create_container(name)
        for blob, data in blobs.items():
            container.upload_blob(blob, data)
        container.upload_blob(
            "meta.json",
            b'{"a": [1]}',
            metadata={"owner": "ana", "project": "q"},
            content_settings=ContentSettings(content_type="application/json"),
        )
    yield name
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.delete_container(name)


@dataclass
class RecordedProgress:
    """A progress report that remembers what it was told."""

    description: str
    total_bytes: int | None
    total_items: int | None
    nbytes: int = 0
    items: int = 0
    closed: bool = False
    on_bytes: Callable[[], None] | None = None

    def update(self, nbytes: int = 0, items: int = 0) -> None:
        self.nbytes += nbytes
        self.items += items
        if nbytes and self.on_bytes is not None:
            self.on_bytes()

    def close(self) -> None:
        self.closed = True


@dataclass
class ProgressRecorder:
    """A progress factory keeping every report it made."""

    reports: list[RecordedProgress] = field(default_factory=list)
    on_bytes: Callable[[], None] | None = None

    def __call__(self, description: str, *, total_bytes: int | None, total_items: int | None) -> Progress:
        report = RecordedProgress(description, total_bytes, total_items, on_bytes=self.on_bytes)
        self.reports.append(report)
        return report


@pytest.fixture
def recorder() -> ProgressRecorder:
    return ProgressRecorder()


@pytest.fixture
def session(recorder: ProgressRecorder) -> Iterator[Session]:
    with Session(progress=recorder) as session:
        yield session


@pytest.fixture
def blobs(session: Session, azurite: AzuriteServer, data_container: str) -> Session:
    """A session with source ``blobs``: the data container, by connection string."""
    _add_container_source(session, azurite, data_container, "blobs")
    return session


def _assert_secret_free(error: BaseException, *secrets: str) -> None:
    texts = [str(error), repr(error)]
    cause = error.__cause__ or error.__context__
    while cause is not None:
        texts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    for secret in secrets:
        for text in texts:
            assert secret not in text


def _wrong_key() -> str:
    """A well-formed account key that is not the account's."""
    return base64.b64encode(bytes(range(64))).decode()


def _sas_expiry(hours: float = 1.0) -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=hours)


# -- authentication ----------------------------------------------------------------------------


def test_connection_string_source_lists_and_hides_the_string(
    blobs: Session, azurite: AzuriteServer, data_container: str
) -> None:
    assert "answered" in blobs.test("blobs")
    config = blobs.registry.get_config("blobs")
    assert config.options["auth"] == "connection_string"
    assert azurite.account_key not in repr(config)
    assert azurite.account_key not in blobs.sources().to_string()
    assert "products.parquet" in set(blobs.list_items("blobs")["name"])


def test_account_key_source(session: Session, azurite: AzuriteServer, data_container: str) -> None:
    session.add("keyed", "azure_blob", **azurite.keyed_source(data_container))
    assert session.registry.get_config("keyed").options["auth"] == "account_key"
    assert session.read("keyed", "sales/2024/q1.csv")["amount"].tolist() == [10, 20]


def test_container_sas_source(session: Session, azurite: AzuriteServer, data_container: str) -> None:
    sas = generate_container_sas(
        azurite.account_name,
        data_container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=_sas_expiry(),
    )
    session.add(
        "shared",
        "azure_blob",
        account_url=azurite.blob_endpoint,
        container=data_container,
        secrets={"sas_token": sas},
    )
    assert session.registry.get_config("shared").options["auth"] == "sas_token"
    assert len(session.list_items("shared", "sales/2024/")) == 3
    assert session.read("shared", "sales/2024/q2.csv")["amount"].tolist() == [30]


def test_account_sas_source_reaches_every_container(
    session: Session, azurite: AzuriteServer, data_container: str
) -> None:
    sas = generate_account_sas(
        azurite.account_name,
        azurite.account_key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, list=True),
        expiry=_sas_expiry(),
    )
    session.add("account", "azure_blob", account_url=azurite.blob_endpoint, secrets={"sas_token": sas})
    containers = session.list_items("account")
    assert f"{data_container}/" in set(containers["name"])
    assert set(containers["kind"]) == {"container"}
    frame = session.read("account", f"{data_container}/sales/2024/q1.csv")
    assert frame["region"].tolist() == ["EU", "US"]


def test_sas_in_the_account_url_is_moved_into_the_secrets(
    session: Session, azurite: AzuriteServer, data_container: str
) -> None:
    sas = generate_container_sas(
        azurite.account_name,
        data_container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=_sas_expiry(),
    )
    signature = dict(part.split("=", 1) for part in sas.split("&"))["sig"]
    session.add("url", "azure_blob", account_url=f"{azurite.blob_endpoint}/{data_container}?{sas}")
    config = session.registry.get_config("url")
    assert config.options["container"] == data_container
    assert config.options["account_url"] == azurite.blob_endpoint
    assert config.options["auth"] == "sas_token"
    assert set(config.secrets) == {"sas_token"}
    assert signature not in repr(config)
    assert signature not in repr(session.registry.list_data_sources())
    assert session.read("url", "sales/2024/q2.csv")["amount"].tolist() == [30]


def test_anonymous_access_to_a_public_container(session: Session, azurite: AzuriteServer) -> None:
    name = f"public-{uuid4().hex[:12]}"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.create_container(name, public_access="container").upload_blob("open/x.csv", b"a\n1\n2\n")
    try:
        session.add("open", "azure_blob", account_url=azurite.blob_endpoint, container=name)
        assert session.registry.get_config("open").options["auth"] == "anonymous"
        assert session.list_items("open", "open/")["name"].tolist() == ["open/x.csv"]
        assert session.read("open", "open/*.csv")["a"].tolist() == [1, 2]
    finally:
        with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            service.delete_container(name)


def test_anonymous_access_to_a_private_container_is_refused(
    session: Session, azurite: AzuriteServer, data_container: str
) -> None:
    with pytest.raises(AuthenticationFailed, match="does not allow anonymous access") as caught:
        session.add("closed", "azure_blob", account_url=azurite.blob_endpoint, container=data_container)
    assert str(caught.value).startswith("closed: ")
    assert "closed" not in session.registry


def test_entra_id_without_the_extra_says_how_to_install_it(
    session: Session, azurite: AzuriteServer, data_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whether or not azure-identity is installed here, the import fails as if it were not.
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    monkeypatch.setitem(sys.modules, "azure.identity.aio", None)
    with pytest.raises(ConfigurationError) as caught:
        session.add(
            "entra",
            "azure_blob",
            auth="entra_id",
            account_url=azurite.blob_endpoint,
            container=data_container,
        )
    message = str(caught.value)
    assert message.startswith("entra: ")
    assert "pip install 'deepanalyze-jupyter[azure-identity]'" in message
    assert "\n" not in message
    with pytest.raises(ConfigurationError, match="azure-identity"):
        session.add(
            "principal",
            "azure_blob",
            account_url=azurite.blob_endpoint,
            container=data_container,
            tenant_id="tenant",
            client_id="client",
            secrets={"client_secret": "a-client-secret-value"},
        )


# -- errors ------------------------------------------------------------------------------------


def test_wrong_account_key_is_an_authentication_error_without_the_key(
    session: Session, azurite: AzuriteServer, data_container: str
) -> None:
    wrong = _wrong_key()
    with pytest.raises(AuthenticationFailed) as caught:
        session.add(
            "wrong",
            "azure_blob",
            account_url=azurite.blob_endpoint,
            container=data_container,
            secrets={"account_key": wrong},
        )
    assert str(caught.value).startswith(f"wrong: access to container '{data_container}' was refused")
    _assert_secret_free(caught.value, wrong, azurite.account_key)
    assert "wrong" not in session.registry


def test_wrong_key_in_a_connection_string(
    session: Session, azurite: AzuriteServer, data_container: str
) -> None:
    wrong_key = _wrong_key()
    text = azurite.connection_string.replace(azurite.account_key, wrong_key)
    with pytest.raises(AuthenticationFailed) as caught:
        session.add("wrongcs", "azure_blob", container=data_container, secrets={"connection_string": text})
    _assert_secret_free(caught.value, wrong_key, text)


def test_expired_sas_is_an_authentication_error_without_the_sas(
    session: Session, azurite: AzuriteServer, data_container: str
) -> None:
    sas = generate_container_sas(
        azurite.account_name,
        data_container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True, list=True),
        start=datetime.now(timezone.utc) - timedelta(hours=2),
        expiry=datetime.now(timezone.utc) - timedelta(hours=1),
    )
    signature = dict(part.split("=", 1) for part in sas.split("&"))["sig"]
    with pytest.raises(AuthenticationFailed) as caught:
        session.add(
            "expired",
            "azure_blob",
            account_url=azurite.blob_endpoint,
            container=data_container,
            secrets={"sas_token": sas},
        )
    assert str(caught.value).startswith("expired: ")
    _assert_secret_free(caught.value, sas, signature)


def test_missing_container_is_not_found(session: Session, azurite: AzuriteServer) -> None:
    with pytest.raises(ItemNotFound, match=r"^nobox: container 'no-such-box' does not exist$"):
        session.add(
            "nobox",
            "azure_blob",
            container="no-such-box",
            secrets={"connection_string": azurite.connection_string},
        )


def test_missing_blob_is_not_found_naming_it(blobs: Session, data_container: str) -> None:
    with pytest.raises(ItemNotFound) as caught:
        blobs.read("blobs", "sales/2024/missing.csv")
    assert str(caught.value) == f"blobs: no blob 'sales/2024/missing.csv' in container '{data_container}'"
    with pytest.raises(ItemNotFound, match=r"^blobs: no files match 'nowhere/\*\.csv'$"):
        blobs.read("blobs", "nowhere/*.csv")
    with pytest.raises(ItemNotFound, match=r"no blob 'nope\.json'"):
        blobs.describe("blobs", "nope.json")


def test_unreachable_service_fails_fast_with_a_connection_error(
    session: Session, azurite: AzuriteServer
) -> None:
    port = free_loopback_port()
    key = azurite.account_key
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as caught:
        session.add(
            "down",
            "azure_blob",
            account_url=f"http://127.0.0.1:{port}/{azurite.account_name}",
            container="box",
            secrets={"account_key": key},
        )
    assert time.monotonic() - started < 10
    assert not isinstance(caught.value, AuthenticationFailed)
    assert (
        str(caught.value)
        == f"down: cannot reach the blob service at http://127.0.0.1:{port}: connection refused"
    )
    _assert_secret_free(caught.value, key)


def test_a_restarted_service_fails_fast_then_works_again(
    blobs: Session, azurite: AzuriteServer, data_container: str
) -> None:
    assert len(blobs.read("blobs", "sales/2024/q1.csv")) == 2
    azurite.stop()
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed, match="cannot reach the blob service"):
            blobs.read("blobs", "sales/2024/q2.csv")
        assert time.monotonic() - started < 10
    finally:
        azurite.start()
    assert blobs.read("blobs", "sales/2024/q2.csv")["amount"].tolist() == [30]


def test_malformed_and_unsupported_files_name_the_blob_and_the_format(blobs: Session) -> None:
    cases = {
        "bad/broken.csv": "cannot parse bad/broken.csv as csv: ",
        "bad/broken.parquet": "cannot parse bad/broken.parquet as parquet: ",
        "bad/broken.json": "cannot parse bad/broken.json as json: ",
        "bad/readme.txt": "cannot tell the format of bad/readme.txt",
    }
    for path, start in cases.items():
        with pytest.raises(FormatError) as caught:
            blobs.read("blobs", path)
        assert str(caught.value).startswith(f"blobs: {start}"), str(caught.value)
        assert "\n" not in str(caught.value)
    with pytest.raises(FormatError, match="unsupported format 'xlsx'"):
        blobs.read("blobs", "sales/2024/q1.csv", format="xlsx")


# -- listing -----------------------------------------------------------------------------------


def test_folder_style_listing_of_the_top(blobs: Session) -> None:
    frame = blobs.list_items("blobs")
    assert {column: str(dtype) for column, dtype in frame.dtypes.items()} == LISTING_DTYPES
    rows = dict(zip(frame["name"], frame["kind"], strict=True))
    assert rows["sales/"] == "folder"
    assert rows["products.parquet"] == "file"
    assert rows["empty.csv"] == "file"
    assert not any("/" in name.rstrip("/") for name in rows)
    files = frame[frame["kind"] == "file"]
    assert files["size"].notna().all()
    assert files["last_modified"].dt.tz is not None
    assert frame.loc[frame["name"] == "meta.json", "content_type"].item() == "application/json"
    assert frame[frame["kind"] == "folder"]["size"].isna().all()
    assert not is_truncated(frame)


def test_folder_listing_with_and_without_the_trailing_slash(blobs: Session) -> None:
    expected = ["sales/2023/", "sales/2024/", "sales/_SUCCESS", "sales/notes.tsv"]
    assert sorted(blobs.list_items("blobs", "sales/")["name"]) == expected
    assert sorted(blobs.list_items("blobs", "sales")["name"]) == expected
    # a prefix that is not a folder keeps its meaning: names that start with it
    assert blobs.list_items("blobs", "sales/2024/q")["name"].tolist() == [
        "sales/2024/q1.csv",
        "sales/2024/q2.csv",
        "sales/2024/q3.csv.gz",
    ]


def test_flat_recursive_listing(blobs: Session) -> None:
    frame = blobs.list_items("blobs", "sales/", recursive=True)
    assert frame["name"].tolist() == [
        "sales/2023/q4.csv",
        "sales/2024/q1.csv",
        "sales/2024/q2.csv",
        "sales/2024/q3.csv.gz",
        "sales/_SUCCESS",
        "sales/notes.tsv",
    ]
    assert set(frame["kind"]) == {"file"}
    assert frame["size"].tolist()[1] == len(b"region,amount\nEU,10\nUS,20\n")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("sales/2024/*.csv", ["sales/2024/q1.csv", "sales/2024/q2.csv"]),
        ("sales/*/q?.csv", ["sales/2023/q4.csv", "sales/2024/q1.csv", "sales/2024/q2.csv"]),
        (
            "**/*.parquet",
            ["bad/broken.parquet", "formats/data.parquet", "logs/2024/events.parquet", "products.parquet"],
        ),
        ("sales/202[3]/*", ["sales/2023/q4.csv"]),
        ("sales/*", ["sales/2023/", "sales/2024/", "sales/_SUCCESS", "sales/notes.tsv"]),
    ],
)
def test_glob_listing(blobs: Session, pattern: str, expected: list[str]) -> None:
    assert blobs.list_items("blobs", pattern)["name"].tolist() == expected


@pytest.mark.parametrize(
    ("prefix", "recursive"), [("", True), ("sales/", False), ("**/*.csv", False), ("", False)]
)
def test_listings_from_the_xml_match_the_sdk_models(
    blobs: Session, monkeypatch: pytest.MonkeyPatch, prefix: str, recursive: bool
) -> None:
    made: list[Any] = []
    original = _azure_listing._raw_listing_operations

    def recorded(container: Any) -> Any:
        made.append(original(container))
        return made[-1]

    monkeypatch.setattr(_azure_listing, "_raw_listing_operations", recorded)
    fast = blobs.list_items("blobs", prefix, recursive=recursive, refresh=True)
    assert made
    assert all(operations is not None for operations in made)  # the XML path was taken
    # Without the SDK's raw listing path, the public list_blobs/walk_blobs give the rows.
    monkeypatch.setattr(_azure_listing, "_raw_listing_operations", lambda container: None)
    slow = blobs.list_items("blobs", prefix, recursive=recursive, refresh=True)
    pd.testing.assert_frame_equal(fast, slow)
    assert len(fast) > 3


def test_listing_limit_cuts_and_says_so(blobs: Session) -> None:
    frame = blobs.list_items("blobs", recursive=True, limit=3)
    assert len(frame) == 3
    assert is_truncated(frame)
    everything = blobs.list_items("blobs", recursive=True, limit=1000)
    assert not is_truncated(everything)
    exact = blobs.list_items("blobs", recursive=True, limit=len(everything))
    assert not is_truncated(exact)
    assert exact["name"].tolist() == everything["name"].tolist()
    globbed = blobs.list_items("blobs", "**/*.csv", limit=2)
    assert len(globbed) == 2
    assert is_truncated(globbed)


def test_max_listing_option_bounds_listings_by_default(
    session: Session, azurite: AzuriteServer, data_container: str
) -> None:
    _add_container_source(session, azurite, data_container, "small", max_listing=4)
    frame = session.list_items("small", recursive=True)
    assert len(frame) == 4
    assert is_truncated(frame)


def test_listings_go_through_the_metadata_cache(
    blobs: Session, azurite: AzuriteServer, data_container: str
) -> None:
    first = blobs.list_items("blobs", "cache/", recursive=True)
    assert first.empty
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.get_container_client(data_container).upload_blob("cache/new.csv", b"a\n1\n")
    try:
        assert blobs.list_items("blobs", "cache/", recursive=True).empty
        refreshed = blobs.list_items("blobs", "cache/", recursive=True, refresh=True)
        assert refreshed["name"].tolist() == ["cache/new.csv"]
    finally:
        with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            service.get_container_client(data_container).delete_blob("cache/new.csv")


def test_account_level_source_lists_containers_then_blobs(
    session: Session, azurite: AzuriteServer, data_container: str
) -> None:
    session.add("account", "azure_blob", secrets={"connection_string": azurite.connection_string})
    assert f"{data_container}/" in set(session.list_items("account")["name"])
    inside = session.list_items("account", f"{data_container}/sales/2024/*.csv")
    assert inside["name"].tolist() == [
        f"{data_container}/sales/2024/q1.csv",
        f"{data_container}/sales/2024/q2.csv",
    ]
    with pytest.raises(ConfigurationError, match="start the path with a container name"):
        session.read("account", "*/x.csv")


# -- reading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FORMAT_FILES) + sorted(f"{path}.gz" for path in FORMAT_FILES))
def test_every_format_and_its_gzip_variant(blobs: Session, path: str) -> None:
    frame = blobs.read("blobs", path)
    assert frame["id"].tolist() == [1, 2, 3]
    assert str(frame["id"].dtype) == "int64"
    assert frame["city"].isna().tolist() == [False, True, False]
    assert frame["amount"].dtype == "Float64"  # a float column with a missing value


def test_explicit_format_and_reader_options_pass_through(blobs: Session) -> None:
    frame = blobs.read(
        "blobs",
        "sales/notes.tsv",
        format="csv",
        sep="\t",
        columns=["b", "a"],
        dtype={"a": "Int32"},
    )
    assert list(frame.columns) == ["b", "a"]
    assert str(frame["a"].dtype) == "Int32"
    with pytest.raises(ConfigurationError, match="unknown reader option"):
        blobs.read("blobs", "sales/notes.tsv", delimeter="\t")


def test_many_paths_globs_and_folders_make_one_frame_in_order(blobs: Session) -> None:
    frame = blobs.read(
        "blobs",
        ["sales/2024/q2.csv", "sales/2024/*.csv*", "sales/2023/"],
        source_column="blob",
    )
    assert frame["blob"].tolist() == [
        "sales/2024/q2.csv",
        "sales/2024/q1.csv",
        "sales/2024/q1.csv",
        "sales/2024/q3.csv.gz",
        "sales/2023/q4.csv",
    ]
    assert frame["amount"].tolist() == [30, 10, 20, 40, 5]
    assert frame.index.tolist() == list(range(5))


def test_a_folder_reads_its_data_files_and_skips_markers(blobs: Session) -> None:
    frame = blobs.read("blobs", "sales", source_column="blob")
    assert set(frame["blob"]) == {
        "sales/2023/q4.csv",
        "sales/2024/q1.csv",
        "sales/2024/q2.csv",
        "sales/2024/q3.csv.gz",
        "sales/notes.tsv",
    }


def test_blob_typed_as_json_is_read_as_data(blobs: Session) -> None:
    assert blobs.read("blobs", "meta.json")["a"].tolist() == [1]


def test_reads_through_the_sdk_downloader_give_the_same(
    session: Session, monkeypatch: pytest.MonkeyPatch, azurite: AzuriteServer, data_container: str
) -> None:
    _add_container_source(session, azurite, data_container, "small_ranges", range_size_mb=1)
    paths = ["sales/2024/*.csv*", "empty.csv", "formats/data.parquet.gz", "meta.json"]
    direct = session.read("small_ranges", paths, source_column="blob")
    large = bytes(session.run(_fetch(session, "small_ranges", "big/large.csv")))
    assert large == _large_csv(LARGE_ROWS)
    # Without the client's pipeline at hand, the SDK's download_blob brings the bytes.
    monkeypatch.setattr(_azure_download, "_pipeline_of", lambda container: None)
    pd.testing.assert_frame_equal(session.read("small_ranges", paths, source_column="blob"), direct)
    assert bytes(session.run(_fetch(session, "small_ranges", "big/large.csv"))) == large
    with pytest.raises(ItemNotFound, match=r"no blob 'nope\.csv'"):
        session.read("small_ranges", "nope.csv")


def test_empty_blob_reads_as_an_empty_frame(blobs: Session) -> None:
    assert blobs.read("blobs", "empty.csv").empty


def test_row_limit_cuts_the_result_and_says_so(blobs: Session) -> None:
    frame = blobs.read("blobs", "sales/2024/*.csv", limit=2)
    assert len(frame) == 2
    assert is_truncated(frame)
    assert not is_truncated(blobs.read("blobs", "sales/2024/*.csv", limit=3))


def test_large_blob_comes_in_ranges_with_progress(
    session: Session, recorder: ProgressRecorder, azurite: AzuriteServer, data_container: str
) -> None:
    _add_container_source(session, azurite, data_container, "ranged", range_size_mb=1, max_concurrency=3)
    frame = session.read("ranged", "big/large.csv", limit=None)
    assert len(frame) == LARGE_ROWS
    assert frame["n"].tolist() == list(range(LARGE_ROWS))
    assert frame["label"].iloc[-1] == f"row-{LARGE_ROWS - 1:07d}"
    report = recorder.reports[-1]
    assert report.nbytes == len(_large_csv(LARGE_ROWS))
    assert report.items == 1
    assert report.total_items == 1
    assert report.closed


def test_gzip_content_encoded_blob_in_ranges_stays_whole(
    session: Session, azurite: AzuriteServer, data_container: str
) -> None:
    rows = [f"{n},{os.urandom(12).hex()}" for n in range(120_000)]
    compressed = gzip.compress(("n,token\n" + "\n".join(rows) + "\n").encode())
    assert len(compressed) > 3 << 19  # two 1 MiB ranges at least
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.get_container_client(data_container).upload_blob(
            "encoded/tokens.csv",
            compressed,
            overwrite=True,
            content_settings=ContentSettings(content_type="text/csv", content_encoding="gzip"),
        )
    _add_container_source(session, azurite, data_container, "encoded", range_size_mb=1)
    frame = session.read("encoded", "encoded/tokens.csv", limit=None)
    assert frame["n"].tolist() == list(range(120_000))
    assert frame["token"].iloc[7] == rows[7].split(",")[1]
    assert bytes(session.run(_fetch(session, "encoded", "encoded/tokens.csv"))) == compressed


async def _fetch(session: Session, source: str, path: str) -> bytes | memoryview:
    connector: Any = await session.registry.get_connector(source)
    return await connector.fetch(path)  # type: ignore[no-any-return]


def test_glob_read_reports_known_totals(blobs: Session, recorder: ProgressRecorder) -> None:
    blobs.read("blobs", "sales/2024/*.csv")
    report = recorder.reports[-1]
    assert report.total_items == 2
    assert (
        report.total_bytes
        == report.nbytes
        == len(b"region,amount\nEU,10\nUS,20\n") + len(b"region,amount\nEU,30\n")
    )
    assert report.closed


def test_progress_can_be_turned_off(
    session: Session, recorder: ProgressRecorder, azurite: AzuriteServer, data_container: str
) -> None:
    _add_container_source(session, azurite, data_container, "quiet", show_progress=False)
    assert len(session.read("quiet", "sales/2024/*.csv")) == 3
    assert recorder.reports == []


def test_describe_a_blob_and_a_container(blobs: Session, data_container: str) -> None:
    frame = blobs.describe("blobs", "meta.json")
    properties = frame.attrs["properties"]
    assert list(frame.columns) == ["value"]
    assert frame.loc["size", "value"] == len(b'{"a": [1]}')
    assert properties["content_type"] == "application/json"
    assert properties["metadata.owner"] == "ana"
    assert properties["metadata.project"] == "q"
    assert properties["last_modified"].tzinfo is not None
    listed = blobs.list_items("blobs", "meta.json", recursive=True)
    assert properties["etag"] == listed["etag"].item()
    container = blobs.describe("blobs", "")
    assert container.loc["name", "value"] == data_container
    assert container.loc["kind", "value"] == "container"


# -- cancellation ------------------------------------------------------------------------------


def test_cancelling_a_read_cancels_every_download(azurite: AzuriteServer, data_container: str) -> None:
    async def scenario() -> None:
        first_bytes = asyncio.Event()
        recorder = ProgressRecorder(on_bytes=first_bytes.set)
        registry = DataSourceRegistry(progress=recorder)
        await registry.register_data_source(
            DataSourceConfig(
                "slow",
                "azure_blob",
                {"container": data_container, "range_size_mb": 1, "max_concurrency": 2},
                {"connection_string": Secret(azurite.connection_string)},
            )
        )
        try:
            read = asyncio.create_task(registry.read("slow", ["big/large.csv", "sales/**/*.csv"]))
            arrived = asyncio.create_task(first_bytes.wait())
            await asyncio.wait([read, arrived], return_when=asyncio.FIRST_COMPLETED)
            assert arrived.done()
            assert not read.done()
            read.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read
            report = recorder.reports[-1]
            assert report.closed
            assert report.items < report.total_items  # type: ignore[operator]
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            assert others == []
            # the source stays usable
            frame = await registry.read("slow", "sales/2024/q1.csv")
            assert frame["amount"].tolist() == [10, 20]
        finally:
            await registry.disconnect_all()

    asyncio.run(scenario())


def test_interrupted_read_through_the_session_returns_nothing(
    session: Session, recorder: ProgressRecorder, azurite: AzuriteServer, data_container: str
) -> None:
    _add_container_source(session, azurite, data_container, "slow", range_size_mb=1, max_concurrency=1)
    main_thread = threading.main_thread().ident
    assert main_thread is not None
    interrupted = threading.Event()

    def interrupt_once() -> None:  # a real SIGINT to the waiting thread, as Ctrl-C or a kernel sends
        if not interrupted.is_set():
            interrupted.set()
            signal.pthread_kill(main_thread, signal.SIGINT)

    recorder.on_bytes = interrupt_once  # once the first bytes of the blob have arrived
    # Python's own handler, even when the test run was started with SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            session.read("slow", "big/large.csv", limit=None)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupted.is_set()
    report = recorder.reports[-1]
    assert report.closed
    assert 0 < report.nbytes < len(_large_csv(LARGE_ROWS))  # stopped mid-way, not after the blob
    assert session.run(_pending_tasks()) == 0
    assert len(session.read("slow", "sales/2024/q1.csv")) == 2


async def _pending_tasks() -> int:
    return len([task for task in asyncio.all_tasks() if task is not asyncio.current_task()])


def test_errors_are_data_source_errors_on_one_line(blobs: Session) -> None:
    for path in ("bad/broken.csv", "nope.csv"):
        with pytest.raises(DataSourceError) as caught:
            blobs.read("blobs", path)
        assert "\n" not in str(caught.value)
        assert caught.value.source == "blobs"


# -- paths that leave the container, text encodings, row limits ----------------------------------


@pytest.mark.parametrize("path", ["../names/x.csv", "sales/../../names/x.csv", "/../x.csv", "sales/..", ".."])
def test_a_path_leaving_the_container_is_refused_as_such(blobs: Session, path: str) -> None:
    shown = re.escape(repr(path.lstrip("/")))
    expected = rf"^blobs: '/?{shown[1:]} leads outside the container \('\.\.'\)$"
    for attempt in (
        lambda: blobs.read("blobs", path),
        lambda: blobs.list_items("blobs", path),
        lambda: blobs.describe("blobs", path),
    ):
        with pytest.raises(ConfigurationError, match=expected):
            attempt()


def test_an_account_level_path_leaving_its_container_is_refused(
    session: Session, azurite: AzuriteServer, data_container: str
) -> None:
    session.add("account", "azure_blob", secrets={"connection_string": azurite.connection_string})
    with pytest.raises(ConfigurationError, match=r"leads outside the container"):
        session.read("account", f"{data_container}/../other/x.csv")


def test_a_latin_1_blob_is_refused_with_its_offset_and_read_with_its_encoding(
    session: Session, azurite: AzuriteServer, data_container: str
) -> None:
    data = "name,city\nZoë,Köln\n".encode("latin-1")
    name = f"latin/{uuid4().hex}.csv"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.get_container_client(data_container).upload_blob(name, data)
    _add_container_source(session, azurite, data_container, "latin")
    with pytest.raises(FormatError) as raised:
        session.read("latin", name)
    assert str(raised.value) == (
        f"latin: cannot parse {name} as csv: byte 0xeb at offset 12 is not valid utf-8; "
        "give the file's encoding (encoding='latin-1')"
    )
    frame = session.read("latin", name, encoding="latin-1")
    assert frame.to_dict("list") == {"name": ["Zoë"], "city": ["Köln"]}


MANY_BLOBS = 120
ROWS_PER_BLOB = 3_000


@pytest.fixture(scope="module")
def many_blobs(azurite: AzuriteServer) -> Iterator[str]:
    """A container of 120 CSV blobs of 3,000 rows each, numbered across blobs."""
    name = f"many-{uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.create_container(name)
        for index in range(MANY_BLOBS):
            first = index * ROWS_PER_BLOB
            rows = "".join(f"{n},{index}\n" for n in range(first, first + ROWS_PER_BLOB))
            container.upload_blob(f"part-{index:03d}.csv", ("n,blob\n" + rows).encode())
    yield name
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.delete_container(name)


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The blobs the connector downloads (name and bytes), recorded around its download path."""
    from deepanalyze_jupyter.connectors.azure_blob import reading as azure_blob

    record: list[tuple[str, int]] = []
    original = azure_blob.fetch_blob

    async def counting(container: Any, name: str, *args: Any, **kwargs: Any) -> bytes | memoryview:
        data = await original(container, name, *args, **kwargs)
        record.append((name, len(data)))
        return data

    monkeypatch.setattr(azure_blob, "fetch_blob", counting)
    return record


@pytest.mark.parametrize(("limit", "blobs_needed"), [(10, 1), (ROWS_PER_BLOB, 2), (7_000, 3)])
def test_a_row_limit_stops_fetching_blobs(
    session: Session,
    azurite: AzuriteServer,
    many_blobs: str,
    fetched: list[tuple[str, int]],
    limit: int,
    blobs_needed: int,
) -> None:
    _add_container_source(session, azurite, many_blobs, "many")
    frame = session.read("many", "*.csv", limit=limit)
    assert frame["n"].tolist() == list(range(limit))
    assert is_truncated(frame)
    names = sorted(name for name, _ in fetched)
    # The first blobs in name order; never more than the limit needs, plus at most one in flight.
    assert names[:blobs_needed] == [f"part-{index:03d}.csv" for index in range(blobs_needed)]
    assert len(names) <= blobs_needed + 1
    assert sum(size for _, size in fetched) < 0.05 * MANY_BLOBS * ROWS_PER_BLOB * 12


def test_without_a_limit_every_blob_is_read_in_order(
    session: Session, azurite: AzuriteServer, many_blobs: str, fetched: list[tuple[str, int]]
) -> None:
    _add_container_source(session, azurite, many_blobs, "many")
    frame = session.read("many", "*.csv", limit=None)
    assert frame["n"].tolist() == list(range(MANY_BLOBS * ROWS_PER_BLOB))
    assert len(fetched) == MANY_BLOBS
    limited = session.read("many", "*.csv", limit=MANY_BLOBS * ROWS_PER_BLOB)
    assert not is_truncated(limited)
    assert len(limited) == MANY_BLOBS * ROWS_PER_BLOB


LARGE_BLOBS = 40
#: One large blob's rows: about 1.2 MB of CSV, 48 MB over the container.
LARGE_BLOB_ROWS = 60_000

#: Reads ``*.csv`` of a container with a row limit and prints how far the peak RSS grew (MiB).
_PEAK_GROWTH = """
import resource, sys
from deepanalyze_jupyter import Session
with Session() as session:
    session.add("big", "azure_blob", container=sys.argv[2], show_progress=False,
                secrets={"connection_string": sys.argv[1]})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    frame = session.read("big", "*.csv", limit=10)
    assert len(frame) == 10, len(frame)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_a_row_limit_keeps_memory_flat_over_many_large_blobs(azurite: AzuriteServer) -> None:
    """48 MB of blobs, read with limit=10 in a fresh process: its peak RSS grows by a few MiB."""
    name = f"large-{uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.create_container(name)
        for index in range(LARGE_BLOBS):
            first = index * LARGE_BLOB_ROWS
            rows = "".join(f"{n},label-{n:09d}\n" for n in range(first, first + LARGE_BLOB_ROWS))
            container.upload_blob(f"part-{index:03d}.csv", ("n,label\n" + rows).encode())
        try:
            ran = subprocess.run(
                [sys.executable, "-c", _PEAK_GROWTH, azurite.connection_string, name],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
        finally:
            service.delete_container(name)
    growth = float(ran.stdout.strip().splitlines()[-1])
    assert growth < 16, f"peak RSS grew by {growth:.0f} MiB"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nope/*.csv", r"^blobs: no files match 'nope/\*\.csv'$"),
        ("nope/**/*.csv", r"^blobs: no files match 'nope/\*\*/\*\.csv'$"),
        ("sales/*.parquet", r"^blobs: no files match 'sales/\*\.parquet'$"),
        ("nope/", r"^blobs: no files in folder 'nope/'$"),
    ],
)
def test_a_glob_or_folder_that_is_not_there_is_one_line_as_for_a_local_folder(
    blobs: Session, path: str, message: str
) -> None:
    with pytest.raises(ItemNotFound, match=message):
        blobs.read("blobs", path)
    assert blobs.list_items("blobs", "nope/*.csv").empty


@pytest.fixture(scope="module")
def flights_container(azurite: AzuriteServer) -> Iterator[str]:
    """``flights/month=1..12/carrier=../part.parquet``, two rows each, and a marker file."""
    name = f"flights-{uuid4().hex[:16]}"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.create_container(name)
        for month in range(1, 13):
            carrier = "AA" if month % 2 else "B%2FC"
            rows = [{"delay": month * 10}, {"delay": month * 10 + 1}]
            container.upload_blob(f"flights/month={month}/carrier={carrier}/part.parquet", _parquet(rows))
        container.upload_blob("flights/_SUCCESS", b"")
    yield name
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.delete_container(name)


@pytest.mark.parametrize("path", ["flights/", "flights/**/*.parquet"])
def test_partition_folders_become_columns_read_in_natural_order(
    session: Session,
    azurite: AzuriteServer,
    flights_container: str,
    fetched: list[tuple[str, int]],
    path: str,
    tmp_path: Any,
) -> None:
    _add_container_source(session, azurite, flights_container, "flights")
    frame = session.read("flights", path, limit=3)
    assert is_truncated(frame)
    assert frame["month"].tolist() == [1, 1, 2]  # not month=1, then month=10
    assert frame["delay"].tolist() == [10, 11, 20]
    assert sorted(name.split("/")[1] for name, _ in fetched)[:2] == ["month=1", "month=2"]
    whole = session.read("flights", path, limit=None)
    assert whole["month"].tolist() == [month for month in range(1, 13) for _ in range(2)]
    # The same frame pyarrow's own dataset reading makes of these folders (types included).
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.get_container_client(flights_container)
        for blob in container.list_blobs(name_starts_with="flights/month="):
            local = tmp_path / blob.name
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(container.download_blob(blob.name).readall())
    dataset = ds.dataset(tmp_path / "flights", format="parquet", partitioning="hive")
    expected = arrow_to_frame(dataset.to_table())
    pd.testing.assert_frame_equal(
        whole.sort_values("delay", ignore_index=True), expected.sort_values("delay", ignore_index=True)
    )
    assert whole["carrier"].tolist()[2:4] == ["B/C", "B/C"]

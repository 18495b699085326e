"""Canaries through the Dask hand-off: no stored secret in the pickled graph or collection, nor in
any worker's (or the scheduler's) log, for blob sources signed in with an account key or a
connection string and for PostgreSQL, on a real LocalCluster of worker processes, after reads
that succeeded and reads that failed on the workers."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.dask_handoff.files import FilePart
from deepanalyze_jupyter.errors import AuthenticationFailed, ItemNotFound
from tests.dask_cluster import worker_cluster
from tests.security.canaries import CanaryBook
from tests.security.conftest import Planted
from tests.services import AzuriteServer

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
cloudpickle = pytest.importorskip("cloudpickle", reason="the dask extra is not installed")

pytestmark = [pytest.mark.integration, pytest.mark.azurite, pytest.mark.postgres]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, planted: Planted) -> Iterator[Any]:
    """Two worker processes whose PostgreSQL credential is a password file (the canary role's)."""
    passfile = tmp_path_factory.mktemp("worker") / "pgpass"
    passfile.write_text(f"*:*:*:{planted.role}:{planted.password}\n")
    passfile.chmod(0o600)
    with worker_cluster({"PGPASSFILE": str(passfile)}) as client:
        yield client


@pytest.fixture
def session() -> Iterator[Session]:
    with Session() as opened:
        yield opened


@pytest.fixture
def book(planted: Planted, azurite: AzuriteServer) -> CanaryBook:
    """The stored secrets of these sources: the account key (alone and inside the connection
    string) and the PostgreSQL passwords. The run's SAS canaries are left out: a SAS minted for
    the same container shares their unsigned fields (``sp=rl&sv=...&sr=c``), which are no secret."""
    own = CanaryBook()
    for canary in planted.book.canaries:
        if "SAS" not in canary.placement and "SharedAccessSignature" not in canary.placement:
            own.plant(canary.placement, canary.value)
    assert {azurite.account_key, planted.password} <= {canary.value for canary in own.canaries}
    return own


def _check_graph(book: CanaryBook, operation: str, ddf: Any) -> None:
    graph = dict(ddf.__dask_graph__())
    book.check(
        operation, pickle.dumps(graph), cloudpickle.dumps(graph), pickle.dumps(ddf), cloudpickle.dumps(ddf)
    )


def _check_logs(book: CanaryBook, client: Any, *extra_secrets: str) -> None:
    logs = [client.get_worker_logs(), client.get_worker_logs(nanny=True), client.get_scheduler_logs()]
    book.check("Dask worker and scheduler logs", logs)
    text = repr(logs)
    assert "Compute Failed" in text  # the failures below were logged: the check saw them
    for secret in extra_secrets:
        assert secret not in text


def _minted_sigs(ddf: Any) -> list[str]:
    tasks = dict(ddf.__dask_graph__()).values()
    parts = [arg for task in tasks for arg in getattr(task, "args", ()) if isinstance(arg, FilePart)]
    return [part.access.secrets["sas_token"].rsplit("sig=", 1)[1] for part in parts]


@pytest.mark.parametrize("auth", ["account_key", "connection_string"])
def test_a_blob_hand_off_holds_and_logs_no_stored_secret(
    session: Session, planted: Planted, azurite: AzuriteServer, cluster: Any, book: CanaryBook, auth: str
) -> None:
    secret = {"account_key": azurite.account_key, "connection_string": azurite.connection_string}[auth]
    where = {"account_url": planted.blob_endpoint} if auth == "account_key" else {}
    session.add("lake", "azure_blob", container=planted.container, secrets={auth: secret}, **where)
    ddf = session.to_dask("lake", "2024/*.csv")
    _check_graph(book, f"pickled Dask graph of a blob source ({auth})", ddf)
    assert len(ddf.compute()) == 2
    name = f"2024/gone-{auth}.csv"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.get_container_client(planted.container).upload_blob(name, b"id,amount\n3,30\n")
        failing = session.to_dask("lake", name)
        service.get_container_client(planted.container).delete_blob(name)
    with pytest.raises(ItemNotFound) as raised:
        failing.compute()
    book.check("a Dask worker's error", raised.value)
    _check_logs(book, cluster, *_minted_sigs(ddf), *_minted_sigs(failing))


def test_a_postgresql_hand_off_holds_and_logs_no_stored_secret(
    session: Session, planted: Planted, cluster: Any, book: CanaryBook
) -> None:
    session.add("pg", "postgresql", secrets={"password": planted.password}, **planted.pg_options())
    ddf = session.to_dask("pg", "SELECT * FROM orders", partition_on="id", partitions=2)
    _check_graph(book, "pickled Dask graph of a PostgreSQL source", ddf)
    assert sorted(ddf.compute()["id"]) == [1, 2]
    passfiles = set(cluster.run(os.environ.get, "PGPASSFILE").values())
    cluster.run(os.environ.__setitem__, "PGPASSFILE", str(Path("/nonexistent/pgpass")))
    try:
        with pytest.raises(AuthenticationFailed) as raised:
            ddf.compute()
    finally:
        cluster.run(os.environ.__setitem__, "PGPASSFILE", passfiles.pop())
    book.check("a Dask worker's error", raised.value)
    _check_logs(book, cluster)

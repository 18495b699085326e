"""A PostgreSQL query handed to Dask, on a real LocalCluster of worker processes that sign in
with a password file of their own: the values of the kernel's read, and no secret in the graph."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator

import pandas as pd
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import AuthenticationFailed
from tests.connectors.postgresql.postgres import source_options
from tests.dask_cluster import worker_cluster
from tests.services import PostgresServer

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

ROWS = """
SELECT CASE WHEN g % 97 = 0 THEN NULL ELSE g END AS id, 'n' || g AS name,
       (g / 7.0)::numeric(10, 3) AS share, timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' AS at
FROM generate_series(1, 3000) AS g
"""


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, pg_server: PostgresServer
) -> Iterator[distributed.Client]:
    """Two worker processes whose only credential is a password file (PGPASSFILE) the test writes."""
    passfile = tmp_path_factory.mktemp("worker") / "pgpass"
    passfile.write_text(f"*:*:*:{pg_server.user}:{pg_server.password}\n")
    passfile.chmod(0o600)
    with worker_cluster({"PGPASSFILE": str(passfile)}) as client:
        yield client


@pytest.fixture
def pg(session: Session, pg_server: PostgresServer) -> Session:
    session.add("pg", "postgresql", secrets={"password": pg_server.password}, **source_options(pg_server))
    return session


def test_a_dask_read_on_worker_processes_equals_the_kernel_read(
    pg: Session, cluster: distributed.Client
) -> None:
    ddf = pg.to_dask("pg", ROWS, partition_on="id", partitions=3)
    assert ddf.npartitions == 3
    computed = ddf.compute()
    single = pg.query("pg", ROWS, limit=None)
    single.attrs.clear()
    order = ["id", "name"]
    pd.testing.assert_frame_equal(
        computed.sort_values(order, na_position="first").reset_index(drop=True),
        single.sort_values(order, na_position="first").reset_index(drop=True),
    )
    workers = cluster.run(os.getpid)
    assert os.getpid() not in workers.values()


def test_the_graph_holds_no_secret(
    pg: Session, pg_server: PostgresServer, cluster: distributed.Client
) -> None:
    ddf = pg.to_dask("pg", ROWS, partition_on="id", partitions=2)
    graph = dict(ddf.__dask_graph__())
    import cloudpickle

    for blob in (pickle.dumps(graph), cloudpickle.dumps(graph)):
        assert pg_server.password.encode() not in blob


def test_a_worker_without_credentials_gets_one_clear_error(pg: Session, cluster: distributed.Client) -> None:
    ddf = pg.to_dask("pg", ROWS, partition_on="id", partitions=2)
    passfiles = set(cluster.run(os.environ.get, "PGPASSFILE").values())
    assert len(passfiles) == 1
    cluster.run(os.environ.__setitem__, "PGPASSFILE", "/nonexistent/pgpass")
    try:
        with pytest.raises(AuthenticationFailed, match="PGPASSFILE") as raised:
            ddf.compute()
        assert str(raised.value).count("\n") == 0
    finally:
        cluster.run(os.environ.__setitem__, "PGPASSFILE", passfiles.pop())


def test_dates_and_bytes_stay_as_the_kernel_reads_them(pg: Session, cluster: distributed.Client) -> None:
    """Dask would turn object columns (dates, bytes) into text; the hand-off keeps the reader's."""
    sql = "SELECT g AS id, date '2024-01-01' + g AS day, int4send(g) AS raw FROM generate_series(1, 50) AS g"
    ddf = pg.to_dask("pg", sql, partition_on="id", partitions=2)
    single = pg.query("pg", sql, limit=None).astype({"id": "Int64"})  # nullable in every partition
    single.attrs.clear()
    assert ddf.dtypes.to_dict() == single.dtypes.to_dict()
    pd.testing.assert_frame_equal(ddf.compute().sort_values("id").reset_index(drop=True), single)


def test_every_partition_has_the_dtypes_dask_was_told(pg: Session, cluster: distributed.Client) -> None:
    """A range whose rows hold a NULL reads as ``Int64``, one without as ``int64``: every partition
    (and the ``meta``) takes the nullable dtype, so ``ddf.dtypes`` is what each part gives."""
    sql = """
    SELECT g AS id, CASE WHEN g < 5 THEN NULL ELSE g END AS n, CASE WHEN g < 5 THEN NULL ELSE g > 7 END AS b,
           CASE WHEN g < 5 THEN NULL ELSE g / 3.0 END::float8 AS f
    FROM generate_series(1, 20) AS g
    """
    ddf = pg.to_dask("pg", sql, partition_on="id", partitions=3)
    meta = ddf.dtypes.to_dict()
    assert meta == {"id": "Int64", "n": "Int64", "b": "boolean", "f": "Float64"}
    parts = cluster.compute([ddf.partitions[index] for index in range(ddf.npartitions)], sync=True)
    assert [part.dtypes.to_dict() for part in parts] == [meta] * 3
    single = pg.query("pg", sql, limit=None).astype(meta)
    single.attrs.clear()
    pd.testing.assert_frame_equal(ddf.compute().sort_values("id").reset_index(drop=True), single)

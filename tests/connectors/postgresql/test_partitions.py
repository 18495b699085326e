"""Partitioned reads on the real server: the values of a single read, and an interrupt that
cancels every part."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pandas as pd
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.connectors.postgresql.partitions import partition_ranges
from deepanalyze_jupyter.errors import DataSourceError
from tests.connectors.postgresql.postgres import add_postgres
from tests.connectors.postgresql.test_failures import running_queries, wait_until
from tests.services import PostgresServer

ROWS = """
SELECT CASE WHEN g % 97 = 0 THEN NULL ELSE g * 3 - 500 END AS id, 'n' || g AS name,
       (g / 7.0)::numeric(10, 3) AS share, timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' AS at
FROM generate_series(1, 5000) AS g
"""


@pytest.fixture
def application() -> str:
    return f"partitions-{uuid4().hex[:8]}"


@pytest.fixture
def pg(session: Session, pg_server: PostgresServer, application: str) -> Session:
    return add_postgres(session, pg_server, application_name=application, pool_max_size=4)


def test_ranges_cover_the_bounds_once() -> None:
    assert partition_ranges(1, 10, 3) == [(1, 4), (4, 7), (7, 11)]
    assert partition_ranges(5, 5, 4) == [(5, 6)]
    assert partition_ranges(-3, 0, 8) == [(-3, -2), (-2, -1), (-1, 0), (0, 1)]


@pytest.mark.parametrize("partitions", [1, 2, 4, 7])
def test_a_partitioned_read_equals_the_single_read(pg: Session, partitions: int) -> None:
    single = pg.query("pg", ROWS, limit=None)
    parts = pg.query("pg", ROWS, limit=None, partition_on="id", partitions=partitions)
    assert len(parts) == len(single) == 5000
    pd.testing.assert_frame_equal(_in_order(parts), _in_order(single))
    # parts come in the order of their ranges: ids ascending after the NULLs of the first
    ids = parts["id"].dropna()
    assert ids.is_monotonic_increasing


def _in_order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["id", "name"], na_position="first").reset_index(drop=True)


def test_parameters_and_limits_apply(pg: Session) -> None:
    sql = "SELECT g AS id FROM generate_series(1, :n) AS g"
    frame = pg.query("pg", sql, {"n": 100}, limit=None, partition_on="id", partitions=3)
    assert frame["id"].tolist() == list(range(1, 101))
    cut = pg.query("pg", sql, {"n": 100}, limit=10, partition_on="id", partitions=3)
    assert len(cut) == 10
    assert cut.attrs["truncated"] is True


def test_a_column_that_is_no_integer_is_one_clear_error(pg: Session) -> None:
    with pytest.raises(DataSourceError, match="integer column") as raised:
        pg.query("pg", ROWS, limit=None, partition_on="name", partitions=2)
    assert str(raised.value).count("\n") == 0


def test_an_interrupt_cancels_every_part_on_the_server(
    pg: Session, pg_server: PostgresServer, application: str, tmp_path: Path
) -> None:
    sql = "SELECT g AS id, pg_sleep(0.002) FROM generate_series(1, 20000) AS g"
    work = pg.registry.query("pg", sql, limit=None, options={"partition_on": "id", "partitions": 4})
    with pytest.raises(TimeoutError):
        pg.runner.run_sync(work, timeout=1.0)
    assert wait_until(lambda: not running_queries(pg_server, application), 2.0)
    assert pg.query("pg", "SELECT 2 AS two")["two"].tolist() == [2]

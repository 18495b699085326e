"""bench/bench_outgrow.py runs against the real server, with tiny sizes, and reports what it times."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.services import PostgresServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """A database of its own, so the benchmark's tables never meet the other tests'."""
    name = f"bench_{uuid4().hex[:10]}"
    with pg_server.admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_conninfo(pg_server.dsn, dbname=name)
    with pg_server.admin_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.postgres
def test_outgrow_benchmark_times_our_export_and_each_partition(
    bench_dsn: str, pg_server: PostgresServer
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "bench/bench_outgrow.py",
            *("--dsn", bench_dsn, "--only", "export", "--only", "partitions"),
            *("--export-rows", "3000", "--export-rows", "5000", "--export-runs", "1"),
            *("--export-method", "ours", "--rows", "2000", "--runs", "1"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for rows in ("3,000", "5,000"):  # each size from its own table, every row in the file
        assert f"{rows} rows -> one Parquet file" in out
    assert len(re.findall(r"^  target: ours peak < 400 MiB: met", out, re.MULTILINE)) == 2
    for label in ("single COPY", "partition_on id, N=2", "partition_on id, N=4"):
        assert re.search(rf"^  {re.escape(label)}\s+\d+\.\d\d s \(", out, re.MULTILINE), out
    # the server's time of each of the 4 partitions' COPY, and of its scan
    assert re.search(r"^  N=4(\s+\d+ /\s+\d+;?){4}$", out, re.MULTILINE), out
    assert pg_server.password not in out + run.stderr

"""DataFrame -> PostgreSQL table and -> Parquet blob: this package against the usual Python tools.

Run (from the repository root)::

    pip install -e ".[test,bench]" && python bench/bench_write.py

It uses the server named by ``DEEPANALYZE_TEST_PG_DSN`` (else starts a throwaway one the
way the tests do) and Azurite (started the same way), builds a DataFrame of 1,000,000
rows with the PostgreSQL benchmark's columns (int64, float64, ~20-character text,
timestamp with time zone, decimal(12, 2), bool, Int64 with NULLs), and times,
interleaved in one run, the median of several runs of each way of writing it into a new
table:

- ``ours``          ``Session.write`` (binary COPY encoded from Arrow with numpy, one transaction)
- ``ours_csv``      the same, with the rows sent as CSV that pyarrow formats (its other path)
- ``copy_binary``   psycopg binary ``COPY`` with ``write_row`` (the binary alternative)
- ``copy_csv``      psycopg ``COPY`` of a CSV built by ``DataFrame.to_csv``
- ``adbc``          ADBC PostgreSQL driver, ``adbc_ingest`` (binary COPY from Arrow, in C++)
- ``to_sql``        ``pandas.to_sql`` with SQLAlchemy (psycopg 3), default inserts
- ``to_sql_multi``  the same with ``method="multi"``

The ``to_sql`` ways and ``copy_binary`` are slow: they write ``--small-rows`` rows
(default 100,000) and their time is scaled by the row ratio (said in the table). Then
1,000,000 rows -> a Parquet blob on Azurite: ours against ``DataFrame.to_parquet`` on an
``az://`` path (adlfs). Each line gives the median, the spread, and the time as a multiple
of ours (above 1: ours is faster). After the run, the tables of both of our paths
(``ours``, ``ours_csv``) and our blob are read back with our reader and compared with the
frame (``assert_frame_equal``). Options: ``--rows N``, ``--runs N``,
``--small-rows N``, ``--only pg|blob``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deepanalyze_jupyter import Session  # noqa: E402


def mixed_frame(rows: int) -> pd.DataFrame:
    """The PostgreSQL benchmark's columns, as a DataFrame."""
    rng = np.random.default_rng(42)
    ids = np.arange(1, rows + 1, dtype=np.int64)
    cents = rng.integers(-(10**9), 10**9, rows)
    maybe = pd.array(np.where(ids % 7 == 0, 0, ids % 1000), dtype="Int64")
    maybe[ids % 7 == 0] = pd.NA
    return pd.DataFrame(
        {
            "id": ids,
            "amount": rng.random(rows) * 1000,
            "label": pd.array([f"label-{i:014d}" for i in ids], dtype="string[pyarrow]"),
            "at": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(ids, unit="s"),
            "price": pd.array(
                pa.array([Decimal(int(c)).scaleb(-2) for c in cents], pa.decimal128(12, 2)),
                dtype=pd.ArrowDtype(pa.decimal128(12, 2)),
            ),
            "flag": ids % 2 == 0,
            "maybe": maybe,
        }
    )


_CREATE = (
    "CREATE TABLE {} (id bigint, amount double precision, label text, at timestamptz, "
    "price numeric(12, 2), flag boolean, maybe bigint)"
)


class Writers:
    """Each way of writing a frame into a new table named ``name``."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        params = {key: str(value) for key, value in conninfo_to_dict(dsn).items()}
        password = params.pop("password", None)
        self.session = Session()
        self.session.add(
            "bench",
            "postgresql",
            dsn=make_conninfo("", **params),
            read_only=False,
            secrets={"password": password} if password else None,
        )
        user = quote(params.get("user", ""), safe="")
        auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
        where = f"{params.get('host', 'localhost')}:{params.get('port', '5432')}"
        self.uri = f"postgresql://{auth}{where}/{quote(params.get('dbname', ''), safe='')}"
        self.conn = psycopg.connect(dsn, autocommit=True)
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(self.uri.replace("postgresql://", "postgresql+psycopg://", 1))

    def ours(self, frame: pd.DataFrame, name: str) -> None:
        self.session.write("bench", name, frame)

    def ours_csv(self, frame: pd.DataFrame, name: str) -> None:
        # a type given for a column makes the rows travel as CSV: the alternative to binary
        self.session.write("bench", name, frame, types={"id": "bigint"})

    def copy_binary(self, frame: pd.DataFrame, name: str) -> None:
        self.conn.execute(sql.SQL(_CREATE).format(sql.Identifier(name)))
        statement = sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(name))
        with self.conn.cursor().copy(statement) as copy:
            copy.set_types(["int8", "float8", "text", "timestamptz", "numeric", "bool", "int8"])
            for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False):
                copy.write_row(row)

    def copy_csv(self, frame: pd.DataFrame, name: str) -> None:
        self.conn.execute(sql.SQL(_CREATE).format(sql.Identifier(name)))
        data = frame.to_csv(index=False, header=False).encode()
        with self.conn.cursor().copy(
            sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(sql.Identifier(name))
        ) as copy:
            copy.write(data)

    def adbc(self, frame: pd.DataFrame, name: str) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        with adbc.connect(self.uri) as conn, conn.cursor() as cursor:
            cursor.adbc_ingest(name, pa.Table.from_pandas(frame, preserve_index=False), mode="create")
            conn.commit()

    def to_sql(self, frame: pd.DataFrame, name: str) -> None:
        frame.to_sql(name, self.engine, index=False)

    def to_sql_multi(self, frame: pd.DataFrame, name: str) -> None:
        frame.to_sql(name, self.engine, index=False, method="multi", chunksize=1000)

    def drop(self, name: str) -> None:
        self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))

    def close(self) -> None:
        self.session.close()
        self.conn.close()
        self.engine.dispose()


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bench_postgres(dsn: str, rows: int, small_rows: int, runs: int) -> None:
    frame = mixed_frame(rows)
    small = frame.head(small_rows)
    writers = Writers(dsn)
    slow = {"to_sql", "to_sql_multi", "copy_binary"}
    names = ["ours", "ours_csv", "adbc", "copy_csv", "copy_binary", "to_sql_multi", "to_sql"]
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        for run in range(runs):
            for name in names[run % len(names) :] + names[: run % len(names)]:
                table = f"bench_write_{name}"
                writers.drop(table)
                data = small if name in slow else frame
                scale = rows / len(data)
                times[name].append(timed(lambda: getattr(writers, name)(data, table)) * scale)  # noqa: B023
        for name in ("ours", "ours_csv"):  # both of our paths: binary and CSV
            back = writers.session.query("bench", f"SELECT * FROM bench_write_{name} ORDER BY id", limit=None)
            expected = frame.copy()
            expected["at"] = expected["at"].dt.tz_convert(back["at"].dt.tz)
            pd.testing.assert_frame_equal(back, expected, check_column_type=False)
            print(f"round trip ({name}, read back with our reader): assert_frame_equal passed")
        for name in names:
            writers.drop(f"bench_write_{name}")
    finally:
        writers.close()
    report(f"{rows:,}-row mixed DataFrame -> new PostgreSQL table", times, "ours", slow, small_rows)


def bench_blob(rows: int, runs: int) -> None:
    from tests.services import start_azurite

    server = start_azurite()
    try:
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(server.connection_string) as service:
            service.create_container("benchwrite")
        frame = mixed_frame(rows)
        session = Session()
        session.add(
            "lake",
            "azure_blob",
            container="benchwrite",
            read_only=False,
            secrets={"connection_string": server.connection_string},
        )
        options = {"connection_string": server.connection_string}
        methods: dict[str, Callable[[], Any]] = {
            "ours": lambda: session.write("lake", "ours.parquet", frame, overwrite=True),
            "pandas_adlfs": lambda: frame.to_parquet(
                "az://benchwrite/adlfs.parquet", storage_options=options
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in methods}
        for run in range(runs):
            for name in list(methods)[run % 2 :] + list(methods)[: run % 2]:
                times[name].append(timed(methods[name]))
        back = session.read("lake", "ours.parquet", limit=None)
        pd.testing.assert_frame_equal(back, frame, check_column_type=False)
        print("round trip (ours, blob read back): assert_frame_equal passed")
        session.close()
    finally:
        server.close()
    report(f"{rows:,}-row mixed DataFrame -> Parquet blob on Azurite", times, "ours", set(), rows)


def report(title: str, times: dict[str, list[float]], base: str, scaled: set[str], small_rows: int) -> None:
    ours = statistics.median(times[base])
    print(f"\n{title}")
    print(f"{'method':<14} {'median s':>9} {'min..max s':>15} {'x ours':>8}")
    for name, values in sorted(times.items(), key=lambda item: statistics.median(item[1])):
        median = statistics.median(values)
        note = f"  (timed on {small_rows:,} rows, scaled)" if name in scaled else ""
        spread = f"{min(values):.2f}..{max(values):.2f}"
        print(f"{name:<14} {median:>9.2f} {spread:>15} {median / ours:>8.2f}{note}")


def server_dsn() -> tuple[str, Callable[[], None]]:
    dsn = os.environ.get("DEEPANALYZE_TEST_PG_DSN", "").strip()
    if dsn:
        return dsn, lambda: None
    from tests.services import start_postgres

    server = start_postgres()
    return server.dsn, server.close


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=100_000, help="rows for the slow methods")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["pg", "blob"])
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; pandas {pd.__version__}, pyarrow {pa.__version__}")
    if args.only in (None, "pg"):
        dsn, stop = server_dsn()
        try:
            bench_postgres(dsn, args.rows, min(args.small_rows, args.rows), args.runs)
        finally:
            stop()
    if args.only in (None, "blob"):
        bench_blob(args.rows, args.runs)


if __name__ == "__main__":
    main()

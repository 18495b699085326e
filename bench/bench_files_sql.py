"""SQL over files: a group-by over CSV and Parquet files, ours against the usual ways.

On a local folder and on Azurite (started the way the tests do, or the service named by
``DEEPANALYZE_TEST_AZURE_CONN``), with 200 CSV files and a Parquet dataset of 20 columns
(``--parquet-mb``, 500 by default), it times, each in a fresh process so that its peak RSS
is its own, the median of ``--runs`` runs of:

(a) ``SELECT region, sum(v1) ... GROUP BY region`` over the CSV files and over the Parquet
    dataset, twice in each process: "cold" (the first run: imports, connections and what
    starts on first use in its time) and "warm" (the same again, as a notebook's second
    run of a cell): ours (``session.query``) vs. ``session.read`` of everything then a pandas
    groupby vs. DuckDB over adlfs (``register_filesystem``; on the local folder, DuckDB's
    own reader) vs. pandas over adlfs (on the local folder, pandas' own reader);
(b) the bytes fetched by ours for 2 of the 20 columns of the Parquet dataset, against
    the share of the file those columns' chunks take;
(c) the peak RSS of each process.

Multiples are the other method's time over ours (above 1: ours is faster)::

    pip install -e ".[test,bench]" && python bench/bench_files_sql.py --parquet-mb 200
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONTAINER = "bench-sql"
CSV_FILES = 200
ROWS_PER_CSV = 2_000
ROW_GROUP = 250_000
CONN_ENV = "BENCH_FILES_SQL_CONN"
GROUP_CSV = "SELECT region, sum(v1) AS total FROM read_csv('csv/*.csv') GROUP BY region"
GROUP_PARQUET = "SELECT region, sum(v1) AS total FROM 'parquet/*.parquet' GROUP BY region"
TWO_COLUMNS = "SELECT sum(v3) AS a, max(v17) AS b FROM 'parquet/*.parquet'"


def parquet_parts(megabytes: int) -> list[bytes]:
    """About ``megabytes`` of Parquet, 20 columns (19 float64 and ``region``), in parts of ~50 MB."""
    rows_per_mb = 1_000_000 // 160  # 19 random float64 columns compress little
    total_rows = megabytes * rows_per_mb
    part_rows = 50 * rows_per_mb
    parts = []
    rng = np.random.default_rng(7)
    for start in range(0, total_rows, part_rows):
        rows = min(part_rows, total_rows - start)
        columns = {f"v{index}": rng.random(rows) for index in range(1, 20)}
        columns["region"] = np.array(["EU", "US", "APAC", "LATAM"])[rng.integers(0, 4, rows)]
        buffer = io.BytesIO()
        pq.write_table(pa.table(columns), buffer, row_group_size=ROW_GROUP)
        parts.append(buffer.getvalue())
    return parts


def csv_files() -> list[bytes]:
    rng = np.random.default_rng(11)
    files = []
    for _ in range(CSV_FILES):
        frame = pd.DataFrame(
            {
                "region": np.array(["EU", "US", "APAC", "LATAM"])[rng.integers(0, 4, ROWS_PER_CSV)],
                "v1": rng.random(ROWS_PER_CSV).round(6),
                "v2": rng.integers(0, 1000, ROWS_PER_CSV),
            }
        )
        files.append(frame.to_csv(index=False).encode())
    return files


def load(root: Path, connection_string: str | None, megabytes: int) -> dict[str, int]:
    """Write the dataset to ``root`` and to the container; return the Parquet bytes and column share."""
    files = {f"csv/part-{index:03d}.csv": data for index, data in enumerate(csv_files())}
    parts = parquet_parts(megabytes)
    files.update({f"parquet/part-{index:03d}.parquet": data for index, data in enumerate(parts)})
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    if connection_string:
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(connection_string) as service:
            container = service.get_container_client(CONTAINER)
            if not container.exists():
                container.create_container()
            for name, data in files.items():
                container.upload_blob(name, data, overwrite=True, max_concurrency=4)
    share = 0
    for data in parts:
        metadata = pq.ParquetFile(io.BytesIO(data)).metadata
        for group in range(metadata.num_row_groups):
            for index in range(metadata.num_columns):
                column = metadata.row_group(group).column(index)
                if column.path_in_schema in ("v3", "v17"):
                    share += column.total_compressed_size
    return {"parquet_bytes": sum(len(data) for data in parts), "two_columns_bytes": share}


# -- the methods, each run in a process of its own -------------------------------------------


def _session(store: str, root: str) -> Any:
    from deepanalyze_jupyter import Session

    session = Session()
    if store == "local":
        session.add("lake", "local", path=root)
    else:
        session.add(
            "lake",
            "azure_blob",
            container=CONTAINER,
            secrets={"connection_string": os.environ[CONN_ENV]},
            max_listing=100_000,
        )
    return session


def _adlfs() -> Any:
    import adlfs

    return adlfs.AzureBlobFileSystem(connection_string=os.environ[CONN_ENV])


def run_method(method: str, store: str, data: str, root: str) -> dict[str, Any]:
    """Run one method twice in this process; return the seconds of each run, the bytes the
    second fetched (ours) and the peak RSS.

    The first run is "cold" (what it imports, connects and starts the first time is in its
    time); the second is "warm", as the same query again in a notebook would be.
    """
    sql = {"csv": GROUP_CSV, "parquet": GROUP_PARQUET, "two": TWO_COLUMNS}[data]
    if method in ("ours", "read_all"):
        session = _session(store, root)
    if method == "duckdb":
        base = root if store == "local" else f"abfs://{CONTAINER}"
        native = sql.replace("'csv/", f"'{base}/csv/").replace("'parquet/", f"'{base}/parquet/")
    connection = None
    fetched = None
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        if method == "ours":
            frame = session.query("lake", sql)
            fetched = frame.attrs["bytes_fetched"]
        elif method == "read_all":
            whole = session.read("lake", f"{data}/*.{data}", limit=None)
            whole.groupby("region")["v1"].sum()
        elif method == "duckdb":
            import duckdb

            if connection is None:
                connection = duckdb.connect()
                if store != "local":
                    connection.register_filesystem(_adlfs())
            connection.sql(native).fetchall()
        elif method == "pandas":
            _pandas_group_by(store, data, root)
        else:
            raise SystemExit(f"unknown method {method}")
        seconds.append(time.perf_counter() - started)
    return {"cold": seconds[0], "seconds": seconds[1], "bytes": fetched, "rss_mb": _peak_rss_mb()}


def _pandas_group_by(store: str, data: str, root: str) -> None:
    storage = None if store == "local" else {"connection_string": os.environ[CONN_ENV]}
    base = root if store == "local" else f"abfs://{CONTAINER}"
    if data == "csv":
        names = (
            sorted(str(path) for path in Path(root, "csv").glob("*.csv"))
            if store == "local"
            else [f"abfs://{name}" for name in _adlfs().glob(f"{CONTAINER}/csv/*.csv")]
        )
        whole = pd.concat(pd.read_csv(name, storage_options=storage) for name in names)
    else:
        whole = pd.read_parquet(f"{base}/parquet/", columns=["region", "v1"], storage_options=storage)
    whole.groupby("region")["v1"].sum()


def _peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``: unlike ``ru_maxrss``, not inherited
    from the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_process(method: str, store: str, data: str, root: str, conn: str | None) -> dict[str, Any]:
    environment = {**os.environ, CONN_ENV: conn or ""}
    command = [sys.executable, __file__, "--worker", method, store, data, root]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{method} on {store}/{data} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parquet-mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stores", default="local,blob")
    parser.add_argument("--data", default="csv,parquet", help="which of csv,parquet to time")
    parser.add_argument("--worker", nargs=4, metavar=("METHOD", "STORE", "DATA", "ROOT"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_method(*args.worker)))
        return
    stores = args.stores.split(",")
    conn = None
    if "blob" in stores:
        conn = os.environ.get("DEEPANALYZE_TEST_AZURE_CONN") or None
        if conn is None:
            from tests.services import start_azurite

            conn = start_azurite().connection_string
    with tempfile.TemporaryDirectory() as root:
        sizes = load(Path(root), conn, args.parquet_mb)
        print(f"{os.cpu_count()} CPUs; Parquet {sizes['parquet_bytes'] / 1e6:.0f} MB, {CSV_FILES} CSV files")
        print(
            "| store | data | method | warm: median s (min-max) | multiple "
            "| cold: median s | multiple | peak RSS MB |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for store in stores:
            for data in args.data.split(","):
                results: dict[str, list[dict[str, Any]]] = {}
                for _ in range(args.runs):  # interleaved, round by round
                    for method in ("ours", "read_all", "duckdb", "pandas"):
                        results.setdefault(method, []).append(_in_process(method, store, data, root, conn))
                ours = statistics.median(run["seconds"] for run in results["ours"])
                ours_cold = statistics.median(run["cold"] for run in results["ours"])
                for method, runs in results.items():
                    median = statistics.median(run["seconds"] for run in runs)
                    cold = statistics.median(run["cold"] for run in runs)
                    rss = max(run["rss_mb"] for run in runs)
                    seconds = [run["seconds"] for run in runs]
                    timing = f"{median:.3f} ({min(seconds):.3f}-{max(seconds):.3f})"
                    print(
                        f"| {store} | {data} | {method} | {timing} | {median / ours:.2f}x | "
                        f"{cold:.3f} | {cold / ours_cold:.2f}x | {rss:.0f} |"
                    )
            two = _in_process("ours", store, "two", root, conn)
            share = sizes["two_columns_bytes"]
            print(
                f"| {store} | 2 of 20 columns | ours | {two['seconds']:.3f} | fetched "
                f"{two['bytes'] / 1e6:.1f} MB = {two['bytes'] / share:.2f}x the columns' "
                f"{share / 1e6:.1f} MB (file {sizes['parquet_bytes'] / 1e6:.0f} MB) | | "
                f"| {two['rss_mb']:.0f} |"
            )


if __name__ == "__main__":
    main()

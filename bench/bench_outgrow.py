"""Data larger than the kernel: exports, partitioned reads and Dask, against the usual tools.

Run (from the repository root)::

    pip install -e ".[test,bench]" && python bench/bench_outgrow.py

It uses the PostgreSQL server named by ``DEEPANALYZE_TEST_PG_DSN`` (or ``--dsn``), else starts
a throwaway one, and builds the mixed-type table of ``bench_postgresql.py`` (int8, float8,
text, timestamptz, numeric(12,2), boolean, int4 with NULLs) at each size asked for. Sections
(``--only``, repeatable; all by default), each timed round by round with the order of the
methods turning every round, reported as medians with their spread (min-max) and as multiples
of ours (the method's time over ours: above 1, ours is faster):

- ``export``: the whole table -> one local Parquet file, each method in a fresh process whose
  peak RSS (``VmHWM`` from ``/proc``) is reported, after a one-row export as a warm-up: ours
  (``Session.export``, what ``%%dsquery --to`` runs), ``pandas.read_sql(chunksize=...)`` on a
  streaming SQLAlchemy connection + ``pyarrow.parquet.ParquetWriter``, ConnectorX
  ``return_type="arrow"`` (the whole table in memory) + ``pq.write_table``, and ConnectorX
  ``return_type="arrow_stream"`` + ``ParquetWriter``; at ``--export-rows`` (2M and 10M rows by
  default).
- ``partitions``: ``--rows`` (1M) rows read into one DataFrame by our single ``COPY`` and by
  ``partition_on="id"`` with 2 and 4 partitions (4 pooled connections), then the server's
  time for each partition's statement, from ``pg_stat_statements`` (the ``COPY``, which
  includes waiting for the client to take the rows) and from ``EXPLAIN (ANALYZE)`` (the scan
  alone).
- ``dask``: a ``dask.distributed.LocalCluster`` of 2 worker processes counts the rows of the
  ``--rows`` table (``map_partitions(len)``: every row read on the workers, only counts come
  back): ours (``Session.to_dask(..., partition_on="id")``; the workers sign in with a password
  file given to them alone) against ``dask.dataframe.read_sql_table`` (a URI holding the
  password), and of 200 Parquet blobs on Azurite: ours (``Session.to_dask("lake",
  "events/*.parquet")``) against ``dd.read_parquet("abfs://...")`` with adlfs and the
  connection string in ``storage_options``.

Options: ``--runs N``, ``--export-runs N``, ``--rows N``, ``--export-rows N`` (repeatable),
``--export-method NAME`` (repeatable, ours always runs: ``pandas_chunks``, ``connectorx``,
``connectorx_stream``), ``--partitions N`` (repeatable), ``--dsn``, ``--only export|partitions|dask``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from bench_postgresql import TABLE, Method, Ours, ReadSql, build_table, server_dsn

from deepanalyze_jupyter.connectors.postgresql.partitions import partition_ranges

SECTIONS = ("export", "partitions", "dask")
EXPORTERS = ("ours", "pandas_chunks", "connectorx", "connectorx_stream")
CHUNK_ROWS = 100_000
BLOB_CONTAINER = "bench-outgrow"
BLOB_FILES = 200
BLOB_ROWS = 5_000


# -- tables --------------------------------------------------------------------------------


def table_of(rows: int, base_rows: int) -> str:
    """The name of the table of the first ``rows`` rows of the base table."""
    return TABLE if rows == base_rows else f"{TABLE}_{rows}"


def ensure_tables(dsn: str, sizes: Iterable[int]) -> int:
    """Build the base table (the largest size, unless it holds that many rows already) and, for
    each smaller size, a table of its first rows; return the base table's row count."""
    wanted = sorted(set(sizes))
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            have = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        except psycopg.errors.UndefinedTable:
            have = None
    base = have[0] if have and have[0] >= wanted[-1] else wanted[-1]
    build_table(dsn, base, rebuild=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for rows in wanted:
            name = table_of(rows, base)
            if name == TABLE:
                continue
            try:
                count = conn.execute(f"SELECT count(*) FROM {name}").fetchone()
                if count and count[0] == rows:
                    continue
            except psycopg.errors.UndefinedTable:
                pass
            print(f"building {name} ({rows:,} rows of {TABLE}) ...", flush=True)
            conn.execute(f"DROP TABLE IF EXISTS {name}")
            conn.execute(f"CREATE TABLE {name} AS SELECT * FROM {TABLE} WHERE id <= %s", [rows])
            conn.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (id)")
            conn.execute(f"VACUUM ANALYZE {name}")
    return base


# -- timing and report ---------------------------------------------------------------------


Measure = Callable[[str], dict[str, Any]]


def rounds(names: list[str], runs: int, measure: Measure) -> dict[str, list[dict[str, Any]]]:
    """Call ``measure(name)`` for every name, ``runs`` times; the order turns every round."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            results[name].append(measure(name))
        print(f"  round {run + 1}/{runs} done", flush=True)
    return results


def timed(call: Callable[[], Any]) -> dict[str, Any]:
    """Run ``call``; its seconds and what it returned."""
    started = time.perf_counter()
    value = call()
    return {"seconds": time.perf_counter() - started, "value": value}


def spread(values: list[float], unit: str = "s") -> str:
    """``median (min-max)``, in seconds or MiB."""
    median = statistics.median(values)
    return f"{median:7.2f} {unit} ({min(values):.2f}-{max(values):.2f})"


def print_times(title: str, results: dict[str, list[dict[str, Any]]], ours: str) -> dict[str, float]:
    """Each method's median time with its spread and its multiple of ours; return the medians."""
    medians = {name: statistics.median(r["seconds"] for r in runs) for name, runs in results.items()}
    print(f"\n{title} (median (min-max) over {len(results[ours])} runs; multiple = time over ours)")
    for name, runs in results.items():
        seconds = [r["seconds"] for r in runs]
        print(f"  {name:<36} {spread(seconds)}  {medians[name] / medians[ours]:6.2f}x ours")
    return medians


def _status_kib(field: str, pid: int | str = "self") -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"{field} not in /proc/{pid}/status")
    return int(match.group(1))


# -- 1. export -----------------------------------------------------------------------------


def export_ours(dsn: str) -> Callable[[str, str], object]:
    session = Ours(dsn).session
    return lambda sql, path: session.export("bench", sql, path, overwrite=True)


def export_pandas_chunks(dsn: str) -> Callable[[str, str], object]:
    import pandas as pd

    engine = ReadSql(dsn).engine

    def run(sql: str, path: str) -> None:
        # pandas' own advice for chunks that are really streamed: without stream_results the
        # driver fetches the whole result before the first chunk.
        with engine.connect().execution_options(stream_results=True) as conn:
            writer: pq.ParquetWriter | None = None
            for chunk in pd.read_sql(sql, conn, chunksize=CHUNK_ROWS):
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table.cast(writer.schema))
            if writer is not None:
                writer.close()

    return run


def export_connectorx(dsn: str) -> Callable[[str, str], object]:
    import connectorx

    uri = Method(dsn).uri
    return lambda sql, path: pq.write_table(connectorx.read_sql(uri, sql, return_type="arrow"), path)


def export_connectorx_stream(dsn: str) -> Callable[[str, str], object]:
    import connectorx

    uri = Method(dsn).uri

    def run(sql: str, path: str) -> None:
        reader = connectorx.read_sql(uri, sql, return_type="arrow_stream", batch_size=CHUNK_ROWS)
        with pq.ParquetWriter(path, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)

    return run


EXPORT_MAKERS: dict[str, Callable[[str], Callable[[str, str], object]]] = {
    "ours": export_ours,
    "pandas_chunks": export_pandas_chunks,
    "connectorx": export_connectorx,
    "connectorx_stream": export_connectorx_stream,
}
EXPORT_LABELS = {
    "ours": "ours (Session.export / --to)",
    "pandas_chunks": "read_sql(chunksize) + ParquetWriter",
    "connectorx": "ConnectorX arrow + write_table",
    "connectorx_stream": "ConnectorX arrow_stream + writer",
}


def export_probe(method: str, dsn: str, sql: str, path: str) -> None:
    """(In a fresh process.) Export ``sql`` to ``path``, after one row as a warm-up; print its
    seconds and the process's RSS as JSON."""
    run = EXPORT_MAKERS[method](dsn)
    run(f"SELECT * FROM ({sql}) AS w LIMIT 1", path)  # warm: imports done, connection open
    os.unlink(path)
    gc.collect()
    start_kib = _status_kib("VmRSS")
    started = time.perf_counter()
    run(sql, path)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {"seconds": seconds, "start_mib": start_kib / 1024, "peak_mib": _status_kib("VmHWM") / 1024}
        )
    )


def run_export_probe(method: str, dsn: str, sql: str, folder: str, rows: int) -> dict[str, Any]:
    """Run :func:`export_probe` in its own interpreter; check the file holds every row."""
    path = os.path.join(folder, f"{method}.parquet")
    env = {**os.environ, "DEEPANALYZE_BENCH_DSN": dsn}
    probe = subprocess.run(
        [sys.executable, __file__, "--export-probe", method, sql, path],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if probe.returncode != 0:
        raise RuntimeError(f"the export probe of {method} failed:\n{probe.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(probe.stdout.strip().splitlines()[-1])
    metadata = pq.read_metadata(path)
    if metadata.num_rows != rows:
        raise RuntimeError(f"{method} wrote {metadata.num_rows:,} rows, not {rows:,}")
    result["file_mib"] = os.path.getsize(path) / 2**20
    result["types"] = {field.name: str(field.type) for field in metadata.schema.to_arrow_schema()}
    os.unlink(path)
    return result


def bench_export(dsn: str, base: int, sizes: list[int], runs: int, methods: list[str]) -> None:
    for rows in sizes:
        sql = f"SELECT * FROM {table_of(rows, base)}"
        with tempfile.TemporaryDirectory(prefix="bench-outgrow-") as folder:
            print(f"\nexport of {rows:,} rows -> Parquet ({runs} runs, a fresh process each)", flush=True)
            measured = rounds(
                methods,
                runs,
                functools.partial(run_export_probe, dsn=dsn, sql=sql, folder=folder, rows=rows),
            )
        results = {EXPORT_LABELS[name]: runs_of for name, runs_of in measured.items()}
        ours = EXPORT_LABELS["ours"]
        medians = print_times(f"{rows:,} rows -> one Parquet file", results, ours)
        print("  peak RSS of the process (VmHWM; its RSS after imports, before the export), file size")
        for name, runs_of in results.items():
            peaks = [r["peak_mib"] for r in runs_of]
            start = statistics.median(r["start_mib"] for r in runs_of)
            size = runs_of[0]["file_mib"]
            print(
                f"  {name:<36} peak {spread(peaks, 'MiB')}  "
                f"start {start:4.0f} MiB (+{statistics.median(peaks) - start:4.0f})  file {size:.0f} MiB"
            )
        print("  column types written (where they differ from ours)")
        ours_types = results[ours][0]["types"]
        for name, runs_of in results.items():
            other = {k: v for k, v in runs_of[0]["types"].items() if ours_types.get(k) != v}
            if name != ours and other:
                print(f"  {name:<36} {other}   (ours: { {k: ours_types.get(k) for k in other} })")
        peak = statistics.median(r["peak_mib"] for r in results[ours])
        fastest = min(medians, key=medians.__getitem__)
        print(f"  target: ours peak < 400 MiB: {'met' if peak < 400 else 'MISS'} ({peak:.0f} MiB)")
        print(f"  target: ours fastest: {'met' if fastest == ours else 'MISS (' + fastest + ')'}")


# -- 2. partitioned reads --------------------------------------------------------------------


def bench_partitions(dsn: str, table: str, rows: int, counts: list[int], runs: int) -> None:
    ours = Ours(dsn)
    session = ours.session
    session.update("bench", pool_max_size=max(counts))  # every partition at once (default: 2)
    sql = f"SELECT * FROM {table}"
    methods: dict[str, Callable[[], Any]] = {"single COPY": lambda: session.query("bench", sql, limit=None)}
    for count in counts:
        methods[f"partition_on id, N={count}"] = lambda count=count: session.query(
            "bench", sql, limit=None, partition_on="id", partitions=count
        )
    for call in methods.values():  # warm-up: the pool's connections open
        if len(call()) != rows:
            raise RuntimeError("a partitioned read did not return every row")
    statements = _reset_statements(dsn)
    print(f"\n{rows:,} rows, partitioned ({runs} runs, in this process)", flush=True)
    results = rounds(list(methods), runs, lambda name: timed(methods[name]))
    print_times(
        f"{rows:,} rows -> one DataFrame, {os.cpu_count()} CPUs (ours: our single COPY)",
        results,
        "single COPY",
    )
    print_server_times(dsn, table, rows, counts, statements)
    ours.close()


def _reset_statements(dsn: str) -> bool:
    """Empty ``pg_stat_statements``; False where it is not loaded."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
            return True
        except psycopg.Error as error:
            print(f"pg_stat_statements is not available ({error}); EXPLAIN (ANALYZE) only")
            return False


def print_server_times(dsn: str, table: str, rows: int, counts: list[int], statements: bool) -> None:
    """The server's time per partition: the COPY in pg_stat_statements, and EXPLAIN (ANALYZE)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        copies: dict[tuple[int, int] | None, float] = {}
        if statements:
            found = conn.execute(
                "SELECT query, mean_exec_time FROM pg_stat_statements "
                "WHERE query LIKE 'COPY%%' AND query LIKE %s",
                [f"%{table}%"],
            ).fetchall()
            for query, mean_ms in found:
                bounds = re.search(r">= (\d+) AND .*?< (\d+)", query, re.DOTALL)
                if "min(" in query:
                    print(f"  the min/max query of a partitioned read: {mean_ms:.1f} ms on the server")
                else:
                    copies[(int(bounds[1]), int(bounds[2])) if bounds else None] = mean_ms
        print("\n  server time per statement, ms: COPY (pg_stat_statements mean, includes waiting for")
        print("  the client to take the rows) / EXPLAIN (ANALYZE) execution time (the scan alone)")
        print(f"  {'single':<12} {_server_line(conn, table, None, copies)}")
        for count in counts:
            ranges = partition_ranges(1, rows, count)
            parts = "; ".join(_server_line(conn, table, bounds, copies) for bounds in ranges)
            print(f"  N={count:<10} {parts}")


def _server_line(
    conn: psycopg.Connection[Any], table: str, bounds: tuple[int, int] | None, copies: dict[Any, float]
) -> str:
    where = f" WHERE id >= {bounds[0]} AND id < {bounds[1]}" if bounds else ""
    plan = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM {table}{where}").fetchone()
    explain = plan[0][0]["Execution Time"] if plan else float("nan")
    copy = copies.get(bounds)
    copy_text = f"{copy:6.0f}" if copy is not None else "     -"
    return f"{copy_text} / {explain:5.0f}"


# -- 3. Dask -------------------------------------------------------------------------------


def count_rows(ddf: Any) -> int:
    """Every row read on the workers; only the counts come back."""
    return int(ddf.map_partitions(len).compute().sum())


def bench_dask(dsn: str, table: str, rows: int, counts: list[int], runs: int) -> None:
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    ours = Ours(dsn)
    session = ours.session
    uri = Method(dsn).uri.replace("postgresql://", "postgresql+psycopg://", 1)
    sql = f"SELECT * FROM {table}"
    with tempfile.TemporaryDirectory(prefix="bench-outgrow-") as folder:
        pgpass = _worker_password_file(folder, ours.params, Method(dsn).params.get("password", ""))
        # Only the workers get the password file: what a user sets up on their machines.
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"PGPASSFILE": pgpass},
        )
        try:
            with Client(cluster):
                methods: dict[str, Callable[[], int]] = {}
                for count in counts:
                    methods[f"ours to_dask, N={count}"] = lambda count=count: count_rows(
                        session.to_dask("bench", sql, partition_on="id", partitions=count)
                    )
                    methods[f"dd.read_sql_table, N={count}"] = lambda count=count: count_rows(
                        dd.read_sql_table(table, uri, index_col="id", npartitions=count)
                    )
                _check_counts(methods, rows)
                print(f"\n{rows:,} rows through Dask ({runs} runs)", flush=True)
                results = rounds(list(methods), runs, lambda name: timed(methods[name]))
                for count in counts:
                    print_times(
                        f"{rows:,}-row table counted on a LocalCluster of 2 worker processes, N={count}",
                        {name: value for name, value in results.items() if name.endswith(f"N={count}")},
                        f"ours to_dask, N={count}",
                    )
                bench_dask_blobs(session, runs)
        finally:
            cluster.close()
    ours.close()


def _worker_password_file(folder: str, params: dict[str, str], password: str) -> str:
    path = os.path.join(folder, "pgpass")
    fields = [params.get(k, "*") for k in ("host", "port", "dbname", "user")]
    escaped = [value.replace("\\", "\\\\").replace(":", "\\:") for value in [*fields, password]]
    Path(path).write_text(":".join(escaped) + "\n")
    os.chmod(path, 0o600)
    return path


def _check_counts(methods: dict[str, Callable[[], int]], rows: int) -> None:
    for name, call in methods.items():  # warm-up, and every row is there
        if (got := call()) != rows:
            raise RuntimeError(f"{name} counted {got:,} rows, not {rows:,}")


def bench_dask_blobs(session: Any, runs: int) -> None:
    """200 Parquet blobs on Azurite, through the cluster the caller opened."""
    import dask.dataframe as dd
    from azure.storage.blob import BlobServiceClient

    from tests.services import start_azurite

    server = start_azurite()
    try:
        connection_string = server.connection_string
        _load_blobs(connection_string)
        session.add(
            "lake", "azure_blob", container=BLOB_CONTAINER, secrets={"connection_string": connection_string}
        )
        methods: dict[str, Callable[[], int]] = {
            "ours to_dask(lake, events/*.parquet)": lambda: count_rows(
                session.to_dask("lake", "events/*.parquet")
            ),
            "dd.read_parquet abfs:// + adlfs": lambda: count_rows(
                dd.read_parquet(
                    f"abfs://{BLOB_CONTAINER}/events/*.parquet",
                    storage_options={"connection_string": connection_string},
                )
            ),
        }
        try:
            _check_counts(methods, BLOB_FILES * BLOB_ROWS)
        except TypeError as error:  # a version whose to_dask reads PostgreSQL only
            print(f"\nskipped the Parquet blobs: Session.to_dask cannot read a file source here ({error})")
            return
        print(f"\n{BLOB_FILES} Parquet blobs through Dask ({runs} runs)", flush=True)
        results = rounds(list(methods), runs, lambda name: timed(methods[name]))
        print_times(
            f"{BLOB_FILES} Parquet blobs ({BLOB_FILES * BLOB_ROWS:,} rows) counted on the same cluster",
            results,
            "ours to_dask(lake, events/*.parquet)",
        )
    finally:
        with BlobServiceClient.from_connection_string(server.connection_string) as service:
            service.delete_container(BLOB_CONTAINER)
        server.close()


def _load_blobs(connection_string: str) -> None:
    from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

    async def load() -> None:
        async with AsyncBlobServiceClient.from_connection_string(connection_string) as service:
            container = service.get_container_client(BLOB_CONTAINER)
            if not await container.exists():
                await container.create_container()
            await asyncio.gather(
                *(
                    container.upload_blob(f"events/part-{index:03d}.parquet", _events(index), overwrite=True)
                    for index in range(BLOB_FILES)
                )
            )

    asyncio.run(load())


def _events(index: int) -> bytes:
    """One Parquet file of ``BLOB_ROWS`` event rows."""
    first = index * BLOB_ROWS
    ids = pa.array(range(first, first + BLOB_ROWS), pa.int64())
    table = pa.table(
        {
            "id": ids,
            "user": pa.array([f"user-{n % 9973:05d}" for n in range(first, first + BLOB_ROWS)]),
            "value": pa.array([n * 0.25 for n in range(first, first + BLOB_ROWS)]),
            "at": pa.array(range(first, first + BLOB_ROWS), pa.int64()).cast(pa.timestamp("s", "UTC")),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


# -- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="libpq DSN (default: $DEEPANALYZE_TEST_PG_DSN, else a new server)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run this section (repeatable)")
    parser.add_argument("--runs", type=int, default=5, help="rounds of the partition and Dask sections")
    parser.add_argument("--export-runs", type=int, default=3, help="rounds of the export section")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the partition and Dask sections")
    parser.add_argument("--export-rows", type=int, action="append", help="rows exported (repeatable)")
    parser.add_argument(
        "--export-method", action="append", choices=EXPORTERS, help="export this way only (repeatable)"
    )
    parser.add_argument("--partitions", type=int, action="append", help="partition counts (repeatable)")
    parser.add_argument("--export-probe", nargs=3, metavar=("METHOD", "SQL", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.export_probe:
        method, sql, path = args.export_probe
        export_probe(method, os.environ["DEEPANALYZE_BENCH_DSN"], sql, path)
        return

    only = args.only or list(SECTIONS)
    export_sizes = sorted(args.export_rows or [2_000_000, 10_000_000])
    counts = sorted(args.partitions or [2, 4])
    dsn, stop_server = server_dsn(args.dsn)
    try:
        sizes = (export_sizes if "export" in only else []) + ([args.rows] if set(only) - {"export"} else [])
        base = ensure_tables(dsn, sizes)
        with psycopg.connect(dsn) as conn:
            print(f"{os.cpu_count()} CPUs; PostgreSQL {conn.info.server_version}; load {os.getloadavg()}")
        if "export" in only:
            others = [name for name in args.export_method or EXPORTERS if name != "ours"]
            bench_export(dsn, base, export_sizes, args.export_runs, ["ours", *others])
        if "partitions" in only:
            bench_partitions(dsn, table_of(args.rows, base), args.rows, counts, args.runs)
        if "dask" in only:
            bench_dask(dsn, table_of(args.rows, base), args.rows, counts, args.runs)
    finally:
        stop_server()


if __name__ == "__main__":
    main()

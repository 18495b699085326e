"""PostgreSQL query -> DataFrame: this package against the usual Python tools.

Run (from the repository root)::

    pip install -e ".[test,bench]" && python bench/bench_postgresql.py

It uses the server named by ``DEEPANALYZE_TEST_PG_DSN`` (or ``--dsn``), else starts a
throwaway one the way the tests do, builds a table of 1,000,000 rows of mixed types
(int8, float8, ~20-character text, timestamptz, numeric(12,2), boolean, int4 with NULLs),
and times, interleaved in one run, the median of several runs of:

- ``ours``      this package (``Session.query``, warm pooled connection)
- ``read_sql``  ``pandas.read_sql`` with a SQLAlchemy engine (psycopg 3 driver)
- ``fetchall``  psycopg ``cursor.fetchall()`` -> ``pandas.DataFrame``
- ``connectorx`` ``connectorx.read_sql`` (connects on every call)
- ``adbc``      the ADBC PostgreSQL driver, ``cursor.fetch_df()``
- ``copy_drain`` draining ``COPY (...) TO STDOUT`` with psycopg, no parsing: the ceiling

for the 1M-row query, a 10,000-row query and a 1-row query. It prints each median, each
method's time as a multiple of ours, the dtypes each produced, and the memory of each
method on the 1M-row query, each in a fresh subprocess: the peak RSS growth, as a multiple
of the size of the frame it made, and the RSS still above the start 0.2 s after ``del`` of it.
Options: ``--runs N`` (1M-row runs), ``--rows N``, ``--rebuild``, ``--no-memory``,
``--only all|10k|1`` (one size only: quicker, for checking one target).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TABLE = "bench_mixed"
QUERIES = {
    "all rows": f"SELECT * FROM {TABLE}",
    "10k rows": f"SELECT * FROM {TABLE} WHERE id <= 10000",
    "1 row": f"SELECT * FROM {TABLE} WHERE id = 4242",
}
METHODS = ("ours", "read_sql", "fetchall", "connectorx", "adbc", "copy_drain")


# -- the methods ---------------------------------------------------------------------------


class Method:
    """One way of running a query into a DataFrame, on a connection opened beforehand."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        params = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
        self.params = params
        user = quote(params.get("user", ""), safe="")
        password = quote(params.get("password", ""), safe="")
        auth = f"{user}:{password}@" if password else f"{user}@"
        where = f"{params.get('host', 'localhost')}:{params.get('port', '5432')}"
        self.uri = f"postgresql://{auth}{where}/{quote(params.get('dbname', ''), safe='')}"

    def run(self, sql: str) -> pd.DataFrame | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection."""


class Ours(Method):
    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        from deepanalyze_jupyter import Session

        self.session = Session()
        password = self.params.pop("password", None)
        self.session.add(
            "bench",
            "postgresql",
            dsn=make_conninfo("", **self.params),
            secrets={"password": password} if password else None,
        )

    def run(self, sql: str) -> pd.DataFrame:
        return self.session.query("bench", sql, limit=None)

    def close(self) -> None:
        self.session.close()


class ReadSql(Method):
    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(self.uri.replace("postgresql://", "postgresql+psycopg://", 1))

    def run(self, sql: str) -> pd.DataFrame:
        return pd.read_sql(sql, self.engine)

    def close(self) -> None:
        self.engine.dispose()


class Fetchall(Method):
    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.conn = psycopg.connect(dsn, autocommit=True)

    def run(self, sql: str) -> pd.DataFrame:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall()
            columns = [column.name for column in cursor.description or ()]
        return pd.DataFrame(rows, columns=columns)

    def close(self) -> None:
        self.conn.close()


class ConnectorX(Method):
    def run(self, sql: str) -> pd.DataFrame:
        import connectorx

        return connectorx.read_sql(self.uri, sql)


class Adbc(Method):
    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        import adbc_driver_postgresql.dbapi

        self.conn = adbc_driver_postgresql.dbapi.connect(self.uri)

    def run(self, sql: str) -> pd.DataFrame:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetch_df()

    def close(self) -> None:
        self.conn.close()


class CopyDrain(Method):
    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.conn = psycopg.connect(dsn, autocommit=True)

    def run(self, sql: str) -> None:
        size = 0
        with self.conn.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT") as copy:
            for data in copy:
                size += len(data)

    def close(self) -> None:
        self.conn.close()


MAKERS: dict[str, Callable[[str], Method]] = {
    "ours": Ours,
    "read_sql": ReadSql,
    "fetchall": Fetchall,
    "connectorx": ConnectorX,
    "adbc": Adbc,
    "copy_drain": CopyDrain,
}


# -- the data ------------------------------------------------------------------------------


def build_table(dsn: str, rows: int, *, rebuild: bool) -> None:
    """Make the benchmark table unless one with the right row count exists."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not rebuild:
            try:
                count = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
                if count and count[0] == rows:
                    return
            except psycopg.errors.UndefinedTable:
                pass
        print(f"building {TABLE} with {rows:,} rows ...", flush=True)
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(
            f"""
            CREATE TABLE {TABLE} AS
            SELECT i::int8 AS id,
                   random() * 1000 AS f8,
                   substr(md5(i::text), 1, 20) AS txt,
                   timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' AS ts,
                   round((random() * 1e9)::numeric / 100, 2)::numeric(12, 2) AS num,
                   i %% 2 = 0 AS flag,
                   CASE WHEN i %% 3 = 0 THEN NULL ELSE (i %% 100000)::int4 END AS nint
            FROM generate_series(1, %s) AS i
            """,
            [rows],
        )
        conn.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)")
        conn.execute(f"VACUUM ANALYZE {TABLE}")


def server_dsn(given: str | None) -> tuple[str, Callable[[], None]]:
    """The DSN to use, and what to call at the end (stops a server started here)."""
    dsn = given or os.environ.get("DEEPANALYZE_TEST_PG_DSN", "").strip()
    if dsn:
        return dsn, lambda: None
    from tests.services import start_postgres

    server = start_postgres()
    return server.dsn, server.close


# -- timing --------------------------------------------------------------------------------


def time_methods(
    methods: dict[str, Method], sql: str, runs: int
) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """Median seconds per method, interleaved (the order rotates every run), and dtypes."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    dtypes: dict[str, dict[str, str]] = {}
    names = list(methods)
    for name in names:  # warm-up, and the dtypes
        frame = methods[name].run(sql)
        if frame is not None:
            dtypes[name] = {str(column): str(dtype) for column, dtype in frame.dtypes.items()}
        del frame
    for run in range(runs):
        order = names[run % len(names) :] + names[: run % len(names)]
        for name in order:
            gc.collect()
            start = time.perf_counter()
            frame = methods[name].run(sql)
            times[name].append(time.perf_counter() - start)
            del frame
    return {name: statistics.median(values) for name, values in times.items()}, dtypes


def memory_probe(method: str, dsn: str, sql: str) -> None:
    """(In a fresh subprocess.) Print the RSS growth of one 1M-row query as JSON."""
    maker = MAKERS[method](dsn)
    maker.run(QUERIES["1 row"])
    gc.collect()
    before = _status_kib("VmRSS")
    frame = maker.run(sql)
    peak = _status_kib("VmHWM")
    frame_mib = 0.0 if frame is None else float(frame.memory_usage(deep=True).sum()) / 2**20
    del frame
    gc.collect()
    time.sleep(0.2)  # memory handed back by a thread within moments of the drop counts as given back
    after = _status_kib("VmRSS")
    maker.close()
    print(
        json.dumps(
            {"peak_mib": (peak - before) / 1024, "frame_mib": frame_mib, "kept_mib": (after - before) / 1024}
        )
    )


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_memory(dsn: str, sql: str) -> dict[str, dict[str, float]]:
    """Run :func:`memory_probe` for each method in its own interpreter."""
    results = {}
    for method in METHODS:
        env = {**os.environ, "DEEPANALYZE_BENCH_DSN": dsn}
        probe = subprocess.run(
            [sys.executable, __file__, "--memory-probe", method],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if probe.returncode != 0:
            print(f"memory probe of {method} failed:\n{probe.stderr[-2000:]}", file=sys.stderr)
            continue
        results[method] = json.loads(probe.stdout.strip().splitlines()[-1])
    return results


# -- report --------------------------------------------------------------------------------


def print_times(title: str, medians: dict[str, float]) -> None:
    ours = medians["ours"]
    print(f"\n{title}: median seconds (and time as a multiple of ours)")
    for name, seconds in medians.items():
        shown = f"{seconds * 1000:9.2f} ms" if seconds < 1 else f"{seconds:9.3f} s "
        print(f"  {name:<11} {shown}   {seconds / ours:6.2f}x ours")


def print_dtypes(dtypes: dict[str, dict[str, str]]) -> None:
    frame = pd.DataFrame(dtypes)
    print("\ndtypes of the all-rows result")
    print(frame.to_string())


def print_targets(results: dict[str, dict[str, float]], memory: dict[str, dict[str, float]]) -> None:
    checks: list[tuple[str, bool]] = []
    if big := results.get("all rows"):
        checks += [
            ("all rows: ours <= ADBC", big["ours"] <= big["adbc"]),
            ("all rows: ours <= ConnectorX", big["ours"] <= big["connectorx"]),
            ("all rows: ours <= 1.3x COPY drain", big["ours"] <= 1.3 * big["copy_drain"]),
        ]
    if mid := results.get("10k rows"):
        checks += [
            ("10k rows: ours <= ADBC", mid["ours"] <= mid["adbc"]),
            ("10k rows: ours <= ConnectorX", mid["ours"] <= mid["connectorx"]),
        ]
    if one := results.get("1 row"):
        checks.append(("1 row: ours <= 1.5x psycopg fetchall", one["ours"] <= 1.5 * one["fetchall"]))
    if "ours" in memory and "adbc" in memory:
        lighter = memory["ours"]["peak_mib"] <= memory["adbc"]["peak_mib"]
        checks.append(("all rows: peak memory ours <= ADBC", lighter))
    if ours := memory.get("ours"):
        checks += [
            ("all rows: peak memory <= 1.3x the frame", ours["peak_mib"] <= 1.3 * ours["frame_mib"]),
            ("all rows: within 20 MiB of the start after del", ours["kept_mib"] <= 20),
        ]
    print("\ntargets")
    for label, ok in checks:
        print(f"  {'met ' if ok else 'MISS'}  {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="libpq DSN (default: $DEEPANALYZE_TEST_PG_DSN, else a new server)")
    parser.add_argument("--runs", type=int, default=5, help="runs of the 1M-row query per method")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the table even if it exists")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--only", choices=("all", "10k", "1"), help="time one query size only")
    parser.add_argument("--memory-probe", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_probe:
        memory_probe(args.memory_probe, os.environ["DEEPANALYZE_BENCH_DSN"], QUERIES["all rows"])
        return

    dsn, stop_server = server_dsn(args.dsn)
    try:
        build_table(dsn, args.rows, rebuild=args.rebuild)
        methods = {name: MAKERS[name](dsn) for name in METHODS}
        print(f"{os.cpu_count()} CPUs; PostgreSQL {methods['fetchall'].conn.info.server_version}")  # type: ignore[attr-defined]
        results: dict[str, dict[str, float]] = {}
        all_dtypes: dict[str, dict[str, str]] = {}
        sizes = {"all": ("all rows", args.runs), "10k": ("10k rows", 60), "1": ("1 row", 300)}
        chosen = [sizes[args.only]] if args.only else list(sizes.values())
        for label, runs in chosen:
            results[label], dtypes = time_methods(methods, QUERIES[label], runs)
            if label == "all rows":
                all_dtypes = dtypes
            print_times(f"{args.rows:,} rows" if label == "all rows" else label, results[label])
        for method in methods.values():
            method.close()
        if all_dtypes:
            print_dtypes(all_dtypes)
        memory: dict[str, dict[str, float]] = {}
        if not args.no_memory and args.only in (None, "all"):
            memory = measure_memory(dsn, QUERIES["all rows"])
            print(
                "\nmemory of the all-rows query (RSS growth, fresh process per method): peak, "
                "peak over the frame's size, RSS still above the start after del of the frame"
            )
            for name, values in memory.items():
                peak, size, kept = values["peak_mib"], values["frame_mib"], values["kept_mib"]
                ratio = f"{peak / size:5.2f}x frame ({size:.1f} MiB)" if size else "  (no frame)"
                print(f"  {name:<11} peak {peak:8.1f} MiB  {ratio}   after del {kept:6.1f} MiB")
        print_targets(results, memory)
    finally:
        stop_server()


if __name__ == "__main__":
    main()

"""Text or binary ``COPY``: which reads a result of each column type faster.

For each type, a 10,000-row result of four columns of it is read both ways, interleaved
(median of ``--runs``, ``gc.collect()`` before each): the ``COPY`` drained from the server,
then parsed (text: pyarrow) or decoded (binary: numpy), then made a DataFrame. It prints
both times and binary's time as a multiple of text's; the connector reads a repeated
statement as binary when its columns' gains add up (``_pg_binary.BINARY_GAIN``).

    python bench/bench_pg_copy_formats.py [--dsn DSN] [--runs 25]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from array import array
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_postgresql import server_dsn  # noqa: E402
from deepanalyze_jupyter.connectors.postgresql.binary import binary_gain, decode_binary_copy  # noqa: E402
from deepanalyze_jupyter.connectors.postgresql.columns import frame_from_columns  # noqa: E402
from deepanalyze_jupyter.connectors.postgresql.copy import copy_out, finish_columns, parse_copy_text  # noqa: E402
from deepanalyze_jupyter.connectors.postgresql.result import result_fields  # noqa: E402
from deepanalyze_jupyter.connectors.postgresql.types import ColumnPlan, PlanSettings, plan_columns  # noqa: E402

ROWS = 10_000
TYPES = {
    "int8": "g::int8",
    "int4": "g::int4",
    "int4 with NULLs": "CASE WHEN g % 3 = 0 THEN NULL ELSE g END::int4",
    "bool": "g % 2 = 0",
    "float8": "g / 7.0::float8",
    "numeric(12,2)": "(g * 1.25)::numeric(12, 2)",
    "text, one length": "md5(g::text)",
    "text with NULLs": "CASE WHEN g % 5 = 0 THEN NULL ELSE repeat('ab', g % 17) END",
    "date": "date '2000-01-01' + g % 10000",
    "timestamp": "timestamp '2024-01-01' + g * interval '1 second'",
    "timestamptz": "timestamptz '2024-01-01' + g * interval '1 second'",
}


async def column_plans(conn: psycopg.AsyncConnection[object], sql: str) -> list[ColumnPlan]:
    """The plans of the columns of ``sql``'s result, as the connector makes them."""
    fields = result_fields((await conn.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0")).pgresult)
    return plan_columns(fields, conn.adapters, PlanSettings())


async def read(
    conn: psycopg.AsyncConnection[object], sql: str, plans: list[ColumnPlan], *, binary: bool
) -> float:
    """Seconds to read ``sql`` through ``COPY`` into a DataFrame, one way."""
    ends: array[int] | None = array("q") if binary else None
    statement = f"COPY ({sql}) TO STDOUT" + (" (FORMAT binary)" if binary else "")
    gc.collect()
    start = time.perf_counter()
    rows, data = await conn.wait(
        copy_out(conn.pgconn, statement.encode(), lambda result: None, lambda chunk: None, ends=ends)
    )
    if ends is not None:
        columns = decode_binary_copy(data, ends, plans, rows=rows, keep=rows)
    else:
        columns = finish_columns(parse_copy_text(data, plans), plans)
    frame_from_columns(plans, columns, rows)
    return time.perf_counter() - start


async def main(dsn: str, runs: int) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    print(f"{ROWS:,} rows of four columns of each type; median of {runs} runs\n")
    print(f"  {'type':<18} {'text':>9} {'binary':>9}  binary/text  gain counted")
    for name, expression in TYPES.items():
        columns = ", ".join(f"{expression} AS c{index}" for index in range(4))
        sql = f"SELECT {columns} FROM generate_series(1, {ROWS}) AS g"
        plans = await column_plans(conn, sql)
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(runs):
            for binary in (False, True):
                times[binary].append(await read(conn, sql, plans, binary=binary))
        text, binary = (statistics.median(times[way]) * 1000 for way in (False, True))
        gain = binary_gain(plans)
        print(f"  {name:<18} {text:7.2f} ms {binary:6.2f} ms  {binary / text:9.2f}x  {gain:+d}")
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", help="a PostgreSQL to use (default: start one as the tests do)")
    parser.add_argument("--runs", type=int, default=25)
    args = parser.parse_args()
    dsn, stop = server_dsn(args.dsn)
    try:
        asyncio.run(main(dsn, args.runs))
    finally:
        stop()

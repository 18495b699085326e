"""A PostgreSQL query of 200,000 rows in each result format, and the same query from the results cache.

Run (from the repository root)::

    python bench/bench_result_formats.py [--runs 5]

It starts a throwaway PostgreSQL the way the tests do (or uses ``DEEPANALYZE_TEST_PG_DSN``'s
server through the test helpers), makes a table of six columns (integers, integers with
NULLs, floats, ``numeric(16, 2)``, ``timestamptz``, text) and prints the median time of
``Session.query`` with ``output="pandas"``, ``"arrow"`` and ``"polars"``, interleaved run by
run, each as a multiple of pandas', then a cache hit (``cache_ttl``) of pandas (copied out)
and of Arrow as a multiple of the pandas query. The machine may be busy: compare ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deepanalyze_jupyter import Session  # noqa: E402
from tests.connectors.postgresql.postgres import source_options  # noqa: E402
from tests.services import start_postgres  # noqa: E402

QUERY = "SELECT * FROM bench_formats"
TABLE = (
    "CREATE TABLE bench_formats AS SELECT g AS id, CASE WHEN g % 7 = 0 THEN NULL ELSE g END AS n,"
    " g * 1.5::float8 AS x, (g / 100.0)::numeric(16, 2) AS price, now() - g * interval '1 s' AS at,"
    " 'row ' || g AS label FROM generate_series(1, 200000) g"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    server = start_postgres()
    try:
        with server.admin_connection() as connection:
            connection.execute("DROP TABLE IF EXISTS bench_formats")
            connection.execute(TABLE)
        with Session() as session:
            session.add("pg", "postgresql", secrets={"password": server.password}, **source_options(server))
            times: dict[str, list[float]] = {"pandas": [], "arrow": [], "polars": []}
            for _ in range(runs):
                for output, samples in times.items():
                    start = time.perf_counter()
                    session.query("pg", QUERY, limit=None, output=output)
                    samples.append(time.perf_counter() - start)
            medians = {output: statistics.median(samples) for output, samples in times.items()}
            for output, median in medians.items():
                ratio = median / medians["pandas"]
                print(f"{output:>6}: {median * 1000:7.1f} ms  ({ratio:.2f} x pandas)")
            for output in ("pandas", "arrow"):
                session.query("pg", QUERY, limit=None, output=output, cache_ttl=3600)
                hits = []
                for _ in range(runs):
                    start = time.perf_counter()
                    session.query("pg", QUERY, limit=None, output=output, cache_ttl=3600)
                    hits.append(time.perf_counter() - start)
                hit = statistics.median(hits)
                share = hit / medians["pandas"]
                print(f"cache hit, {output}: {hit * 1000:.2f} ms  ({share:.4f} x the query)")
    finally:
        server.close()


if __name__ == "__main__":
    main()

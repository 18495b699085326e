"""Query results exported to local files batch by batch, on the real server: the values of a
whole read, a file that appears only complete, and flat memory for a large result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import WriteConflict
from tests.connectors.files.test_batches import PEAK_RSS
from tests.connectors.postgresql.postgres import source_options
from tests.connectors.postgresql.test_batches import MIXED, SLOW, interrupt_main_thread
from tests.services import PostgresServer


def test_a_parquet_export_holds_the_values_of_the_whole_read(pg: Session, tmp_path: Path) -> None:
    target = tmp_path / "out" / "mixed.parquet"
    message = pg.export("pg", MIXED, target, rows=700)
    assert message == f"pg: 2500 row(s) written to {target} (parquet)"
    whole = pg.query("pg", MIXED, limit=None)
    back = pq.read_table(target)
    assert back.num_rows == 2500
    assert back.to_pydict() == pq.read_table(_parquet_of(whole, tmp_path)).to_pydict()
    assert [p.name for p in target.parent.iterdir()] == ["mixed.parquet"]  # no temporary left


def _parquet_of(frame: pd.DataFrame, folder: Path) -> Path:
    path = folder / "expected.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_csv_and_jsonl_by_extension(pg: Session, tmp_path: Path) -> None:
    sql = "SELECT g AS n, 'a\tb' AS t FROM generate_series(1, 5) AS g"
    pg.export("pg", sql, tmp_path / "x.csv", rows=2)
    assert pd.read_csv(tmp_path / "x.csv")["n"].tolist() == [1, 2, 3, 4, 5]
    pg.export("pg", sql, tmp_path / "x.jsonl", rows=2)
    lines = (tmp_path / "x.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"n": n, "t": "a\tb"} for n in range(1, 6)]


def test_a_one_column_export_with_missing_values_keeps_every_row(pg: Session, tmp_path: Path) -> None:
    sql = "SELECT CASE WHEN g % 2 = 0 THEN NULL ELSE g END AS n FROM generate_series(1, 5) AS g"
    pg.export("pg", sql, tmp_path / "one.csv", rows=2)
    assert pd.read_csv(tmp_path / "one.csv")["n"].tolist()[::2] == [1, 3, 5]
    assert len(pd.read_csv(tmp_path / "one.csv")) == 5


def test_an_empty_result_is_a_file_with_its_columns(pg: Session, tmp_path: Path) -> None:
    pg.export("pg", "SELECT 1 AS a, 'x' AS b WHERE false", tmp_path / "e.parquet")
    assert pq.read_table(tmp_path / "e.parquet").column_names == ["a", "b"]


def test_an_existing_file_needs_overwrite(pg: Session, tmp_path: Path) -> None:
    target = tmp_path / "old.csv"
    target.write_text("old\n")
    with pytest.raises(
        WriteConflict, match=r"old.csv exists: nothing was written; pass overwrite=True to replace it$"
    ):
        pg.export("pg", "SELECT 1 AS a", target)
    assert target.read_text() == "old\n"
    pg.export("pg", "SELECT 1 AS a", target, overwrite=True)
    assert target.read_text().splitlines() == ['"a"', '"1"']


@pytest.mark.usefixtures("ctrl_c")
def test_an_interrupted_export_leaves_no_file_and_the_old_one_intact(pg: Session, tmp_path: Path) -> None:
    target = tmp_path / "big.parquet"
    target.write_bytes(b"old")
    timer = threading.Timer(0.7, interrupt_main_thread)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            pg.export("pg", SLOW, target, rows=1000, overwrite=True)
    finally:
        timer.cancel()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["big.parquet"]


#: 3M rows of about 110 bytes: over 300 MiB of text, far more as a whole frame.
_LARGE = "SELECT g AS id, repeat('x', 100) || g AS payload FROM generate_series(1, 3000000) AS g"
_MEASURE = PEAK_RSS + textwrap.dedent(
    """
    import json, sys
    from deepanalyze_jupyter import Session
    options, password, sql, target = json.loads(sys.argv[1])
    with Session() as session:
        session.add("pg", "postgresql", secrets={"password": password}, **options)
        session.query("pg", "SELECT 1 AS warm")
        before = peak_mib()
        message = session.export("pg", sql, target, rows=50_000)
        after = peak_mib()
    print(json.dumps([before, after, message]))
    """
)


def test_a_large_export_keeps_memory_flat(pg_server: PostgresServer, tmp_path: Path) -> None:
    target = tmp_path / "large.parquet"
    argument = json.dumps([source_options(pg_server), pg_server.password, _LARGE, str(target)])
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, argument],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        check=True,
    )
    before, after, message = json.loads(done.stdout.splitlines()[-1])
    assert message.startswith("pg: 3000000 row(s) written")
    assert pq.read_metadata(target).num_rows == 3_000_000
    assert after - before < 200, f"peak RSS grew by {after - before} MiB during the export"


_MEASURE_INTO_SOURCE = PEAK_RSS + textwrap.dedent(
    """
    import json, sys
    from deepanalyze_jupyter import Session
    options, password, sql, folder = json.loads(sys.argv[1])
    with Session() as session:
        session.add("pg", "postgresql", secrets={"password": password}, **options)
        session.add("out", "local", path=folder, read_only=False)
        message = session.export("pg", sql, "dsrc://out/large.parquet", rows=100_000, overwrite=True)
        peak = peak_mib()
    print(json.dumps([peak, message]))
    """
)


def _peak_exporting(pg_server: PostgresServer, folder: Path, rows: int) -> int:
    """The peak RSS (MiB) of a fresh process exporting ``rows`` rows into a folder source."""
    sql = _LARGE.replace("3000000", str(rows))
    argument = json.dumps([source_options(pg_server), pg_server.password, sql, str(folder)])
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE_INTO_SOURCE, argument],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        check=True,
    )
    peak, message = json.loads(done.stdout.splitlines()[-1])
    assert message == f"out: {rows} row(s) written to large.parquet (parquet)"
    assert pq.read_metadata(folder / "large.parquet").num_rows == rows
    return int(peak)


def test_an_export_into_a_source_stays_under_400_mib_at_any_size(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    """2M and 4M rows (about 220 and 440 MiB of values) into dsrc://: the same bounded peak."""
    smaller = _peak_exporting(pg_server, tmp_path, 2_000_000)
    larger = _peak_exporting(pg_server, tmp_path, 4_000_000)
    assert smaller < 400, f"peak RSS {smaller} MiB exporting 2M rows"
    assert larger < 400, f"peak RSS {larger} MiB exporting 4M rows"
    assert larger - smaller < 64, f"peak RSS grew with the rows: {smaller} then {larger} MiB"

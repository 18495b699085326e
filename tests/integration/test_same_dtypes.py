"""The same data read from different sources has the same dtypes, so frames concatenate."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from deepanalyze_jupyter import Session
from tests.connectors.postgresql.postgres import source_options
from tests.services import PostgresServer

UTC = dt.timezone.utc
MOMENTS = [dt.datetime(2024, 3, 1, 12, 30, tzinfo=UTC), dt.datetime(2024, 3, 2, 8, 0, tzinfo=UTC)]
UNIT_AND_ZONE = "datetime64[us, UTC]"


def _write_files(root: Path) -> None:
    for unit in ("s", "ms", "ns"):  # as other tools write Parquet
        table = pa.table(
            {
                "id": pa.array([1, 2], pa.int64()),
                "at": pa.array(MOMENTS, pa.timestamp(unit, tz="UTC")),
                "naive": pa.array([m.replace(tzinfo=None) for m in MOMENTS], pa.timestamp(unit)),
            }
        )
        pq.write_table(table, root / f"rows_{unit}.parquet")
    lines = [
        f"{i},{m.isoformat()},{m.replace(tzinfo=None).isoformat(sep=' ')}" for i, m in enumerate(MOMENTS)
    ]
    (root / "rows.csv").write_text("id,at,naive\n" + "\n".join(lines) + "\n")
    with sqlite3.connect(root / "rows.db") as db:
        db.execute("CREATE TABLE rows (id INTEGER, name TEXT)")
        db.executemany("INSERT INTO rows VALUES (?, ?)", [(1, "a"), (2, "b")])
    db.close()


def test_timestamps_from_every_source_have_one_unit_and_one_utc(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    _write_files(tmp_path)
    with Session() as session:
        session.add(
            "pg",
            "postgresql",
            secrets={"password": pg_server.password},
            **source_options(pg_server, options="-c TimeZone=Etc/UTC"),
        )
        session.add("files", "local", path=str(tmp_path))
        session.add("db", "sqlite", path=str(tmp_path / "rows.db"))
        frames = {
            "postgresql": session.query(
                "pg",
                "SELECT g::int8 AS id, "
                "timestamptz '2024-03-01 12:30:00+00' + (g - 1) * interval '19.5 hours' AS at, "
                "timestamp '2024-03-01 12:30:00' + (g - 1) * interval '19.5 hours' AS naive "
                "FROM generate_series(1, 2) AS g",
            ),
            **{f"parquet {u}": session.read("files", f"rows_{u}.parquet") for u in ("s", "ms", "ns")},
            "csv": session.read("files", "rows.csv"),
        }
        sqlite_rows = session.query("db", "SELECT id, name FROM rows")
    for name, frame in frames.items():
        assert str(frame["at"].dtype) == UNIT_AND_ZONE, name
        assert str(frame["naive"].dtype) == "datetime64[us]", name
        assert frame["at"].tolist() == [pd.Timestamp(m) for m in MOMENTS], name
    together = pd.concat([*frames.values(), sqlite_rows], ignore_index=True)
    assert str(together["at"].dtype) == UNIT_AND_ZONE
    assert str(together["naive"].dtype) == "datetime64[us]"
    assert str(together["id"].dtype) == "int64"
    assert together["at"].notna().sum() == 2 * len(frames)

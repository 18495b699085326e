"""A local-folder read of 2,000,000 rows as Arrow: straight from the files, against pandas converted once.

Run (from the repository root)::

    python bench/bench_file_arrow.py [--runs 5]

It writes four ``month=N`` Parquet files and one CSV file of the same rows (integers,
integers with NULLs, floats, text) and prints the median time of ``Session.read`` with
``output="arrow"`` against ``output="pandas"`` followed by ``convert_result(..., "arrow")``
(what an Arrow read did before it came straight from the files), interleaved run by run,
then the peak memory each way, measured in a fresh process (Linux). The machine may be busy:
compare ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deepanalyze_jupyter import Session  # noqa: E402
from deepanalyze_jupyter.results import convert_result  # noqa: E402

ROWS = 2_000_000
READS = ("*/*.parquet", "all.csv")


def write_files(folder: Path) -> None:
    """The same rows as four partition folders of Parquet and as one CSV file."""
    ids = np.arange(ROWS)
    table = pa.table(
        {
            "id": ids,
            "n": pa.array(ids, mask=ids % 7 == 0),
            "x": np.random.default_rng(0).random(ROWS),
            "label": pa.array([f"row {i}" for i in range(ROWS)]),
        }
    )
    quarter = ROWS // 4
    for month in range(4):
        (folder / f"month={month + 1}").mkdir()
        pq.write_table(table.slice(month * quarter, quarter), folder / f"month={month + 1}" / "part.parquet")
    pcsv.write_csv(table, folder / "all.csv")


def read(session: Session, path: str, way: str) -> pa.Table:
    """One read as Arrow: ``native`` straight from the files, ``converted`` through pandas."""
    if way == "native":
        return session.read("files", path, limit=None, output="arrow")
    return convert_result(session.read("files", path, limit=None), "arrow")


def peak_of_one_read(folder: Path, path: str, way: str) -> int:
    """The peak memory (KiB) one read adds, in a fresh process."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from bench.bench_file_arrow import one_read; one_read(Path(sys.argv[2]), sys.argv[3], sys.argv[4])"
    )
    command = [sys.executable, "-c", code, str(ROOT), str(folder), path, way]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def one_read(folder: Path, path: str, way: str) -> None:
    """Print the peak memory (KiB) of one read over what an open session holds."""
    with Session() as session:
        session.add("files", "local", path=str(folder))
        before = _high_water_kib()
        read(session, path, way)
        print(_high_water_kib() - before)


def _high_water_kib() -> int:
    """This process's peak resident memory (``ru_maxrss`` would include its parent's, across exec)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_files(folder)
        with Session() as session:
            session.add("files", "local", path=str(folder))
            for path in READS:
                times: dict[str, list[float]] = {"converted": [], "native": []}
                for _ in range(runs):
                    for way, samples in times.items():
                        start = time.perf_counter()
                        read(session, path, way)
                        samples.append(time.perf_counter() - start)
                converted, native = (statistics.median(times[way]) for way in ("converted", "native"))
                print(
                    f"{path}: through pandas {converted * 1000:.0f} ms, straight {native * 1000:.0f} ms"
                    f" ({native / converted:.2f} x)"
                )
        for path in READS:
            converted_peak = peak_of_one_read(folder, path, "converted")
            native_peak = peak_of_one_read(folder, path, "native")
            print(
                f"{path} peak memory: through pandas +{converted_peak // 1024} MiB,"
                f" straight +{native_peak // 1024} MiB ({native_peak / converted_peak:.2f} x)"
            )


if __name__ == "__main__":
    main()

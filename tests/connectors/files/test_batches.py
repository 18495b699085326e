"""Files of local folders and blob containers (real Azurite) read in batches: the values and
dtypes of a whole read, batches of bounded size in file order, and a read that stops when
the caller stops (or interrupts)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import ConfigurationError, FormatError
from tests.services import AzuriteServer

ROWS = 2_500


def _frame(rows: int = ROWS) -> pd.DataFrame:
    numbers = np.arange(rows)
    return pd.DataFrame(
        {
            "id": numbers,
            "maybe": pd.array([None if n % 5 == 0 else n * 3 for n in numbers], dtype="Int64"),
            "ratio": numbers / 7,
            "name": [None if n % 11 == 0 else f'n, "{n}"' for n in numbers],
            "at": pd.date_range("2024-01-01", periods=rows, freq="min", tz="UTC"),
        }
    )


def _write_formats(folder: Path, frame: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, folder / "data.parquet", row_group_size=600)
    pa_csv.write_csv(table, folder / "data.csv")
    (folder / "data.tsv").write_text(frame.to_csv(sep="\t", index=False))
    with gzip.open(folder / "data.csv.gz", "wb") as zipped:
        zipped.write((folder / "data.csv").read_bytes())
    frame.to_json(folder / "data.jsonl", orient="records", lines=True, date_format="iso")
    frame.head(300).to_json(folder / "small.json", orient="records", date_format="iso")


@pytest.fixture
def folder(session: Session, tmp_path: Path) -> Session:
    _write_formats(tmp_path, _frame())
    session.add("files", "local", path=str(tmp_path))
    return session


FILES = ["data.parquet", "data.csv", "data.tsv", "data.csv.gz", "data.jsonl", "small.json"]


@pytest.mark.parametrize("path", FILES)
def test_pandas_batches_equal_the_whole_read(folder: Session, path: str) -> None:
    batches = list(folder.read_batches("files", path, rows=700, output="pandas"))
    whole = folder.read("files", path, limit=None)
    assert all(len(batch) <= 700 for batch in batches)
    assert len(batches) == -(-len(whole) // 700)
    joined = pd.concat(batches, ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole, check_column_type=False)
    assert all((batch.dtypes == whole.dtypes).all() for batch in batches)


@pytest.mark.parametrize("path", FILES)
def test_arrow_batches_equal_the_whole_arrow_read(folder: Session, path: str) -> None:
    batches = list(folder.read_batches("files", path, rows=999))
    whole = folder.read("files", path, limit=None, output="arrow")
    assert all(isinstance(batch, pa.Table) and batch.num_rows <= 999 for batch in batches)
    assert pa.concat_tables(batches).equals(whole)


def test_values_agree_with_pandas_own_readers(folder: Session, tmp_path: Path) -> None:
    ours = pd.concat(folder.read_batches("files", "data.csv", rows=500, output="pandas"), ignore_index=True)
    theirs = pd.read_csv(tmp_path / "data.csv")
    assert ours["id"].tolist() == theirs["id"].tolist()
    # pandas 2's float parser may miss the nearest double by one unit in the last place (pandas 3 does not)
    assert ours["ratio"].tolist() == pytest.approx(theirs["ratio"].tolist(), rel=1e-15, abs=0, nan_ok=True)
    assert [None if pd.isna(v) else v for v in ours["name"]] == [
        None if pd.isna(v) else v for v in theirs["name"]
    ]
    parquet = pd.concat(folder.read_batches("files", "data.parquet", rows=500, output="pandas"))
    assert parquet["maybe"].tolist() == pd.read_parquet(tmp_path / "data.parquet")["maybe"].tolist()


def test_globs_come_in_read_order_with_partitions_and_options(session: Session, tmp_path: Path) -> None:
    for month in (2, 10, 1):
        part = tmp_path / "sales" / f"month={month}"
        part.mkdir(parents=True)
        pa_csv.write_csv(pa.table({"n": [month * 100 + i for i in range(5)], "x": ["a"] * 5}), part / "p.csv")
    session.add("files", "local", path=str(tmp_path))
    options = {"source_column": "file", "columns": ["month", "n"]}
    batches = list(session.read_batches("files", "sales/**/*.csv", rows=3, output="pandas", **options))
    whole = session.read("files", "sales/**/*.csv", limit=None, **options)
    assert [len(batch) for batch in batches] == [3, 2, 3, 2, 3, 2]  # never across two files
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), whole, check_column_type=False)
    assert whole["month"].tolist()[::5] == [1, 2, 10]


def test_an_empty_file_gives_one_empty_batch_with_its_columns(session: Session, tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": pa.array([], pa.int64())}), tmp_path / "empty.parquet")
    (tmp_path / "header.csv").write_text("a,b\n")
    session.add("files", "local", path=str(tmp_path))
    for path, columns in (("empty.parquet", ["a"]), ("header.csv", ["a", "b"])):
        (batch,) = session.read_batches("files", path, output="pandas")
        assert list(batch.columns) == columns
        assert len(batch) == 0


def test_bad_input_is_one_line_naming_the_source(folder: Session, tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(FormatError, match=r"^files: cannot parse bad.parquet as parquet"):
        list(folder.read_batches("files", "bad.parquet"))
    with pytest.raises(ConfigurationError, match="batch size"):
        list(folder.read_batches("files", "data.csv", rows=0))
    with pytest.raises(ConfigurationError, match="output must be one of"):
        list(folder.read_batches("files", "data.csv", output="polars"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(-(2**40), 2**40)),
            st.one_of(st.none(), st.text(alphabet=st.characters(codec="utf-8"), max_size=12)),
            st.floats(allow_nan=False, allow_infinity=False, width=32),
        ),
        max_size=120,
    ),
    rows=st.integers(1, 50),
    suffix=st.sampled_from(["parquet", "csv", "jsonl"]),
)
def test_any_batch_size_gives_the_whole_read(
    session: Session,
    tmp_path: Path,
    values: list[tuple[int | None, str | None, float]],
    rows: int,
    suffix: str,
) -> None:
    if not session.registry.exists("files"):
        session.add("files", "local", path=str(tmp_path))
    frame = pd.DataFrame(
        {
            "i": pd.array([v[0] for v in values], dtype="Int64"),
            "s": pd.array([v[1] for v in values], dtype="string"),
            "f": [v[2] for v in values],
        }
    )
    name = f"{uuid.uuid4().hex}.{suffix}"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if suffix == "parquet":
        pq.write_table(table, tmp_path / name, row_group_size=7)
    elif suffix == "csv":
        pa_csv.write_csv(table, tmp_path / name)
    else:
        frame.to_json(tmp_path / name, orient="records", lines=True)
    whole = session.read("files", name, limit=None)
    batches = list(session.read_batches("files", name, rows=rows, output="pandas"))
    assert all(len(batch) <= rows for batch in batches)
    joined = pd.concat(batches, ignore_index=True) if len(batches) > 1 else batches[0]
    pd.testing.assert_frame_equal(joined, whole, check_column_type=False)


def test_a_late_value_the_first_block_did_not_foresee_says_which_dtype_to_give(
    session: Session, tmp_path: Path
) -> None:
    rows = 200_000  # several blocks of text; only the last rows give column b a value
    lines = [f"{n},{'x' if n >= rows - 10 else ''}" for n in range(rows)]
    (tmp_path / "late.csv").write_text("a,b\n" + "\n".join(lines) + "\n")
    session.add("files", "local", path=str(tmp_path))
    with pytest.raises(FormatError, match=r"^files: cannot parse late.csv as csv: column 'b' .*dtype=\{'b'"):
        list(session.read_batches("files", "late.csv"))
    given = {"dtype": {"b": "string"}}
    batches = list(session.read_batches("files", "late.csv", output="pandas", **given))
    whole = session.read("files", "late.csv", limit=None, **given)
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), whole, check_column_type=False)


# -- stopping ---------------------------------------------------------------------------------------


def _reading_threads() -> list[str]:
    """The threads whose stack is inside a batched file read (its reader or its ranged reads)."""
    busy = []
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        stack = frame
        while stack is not None:
            filename = stack.f_code.co_filename
            if filename.endswith(("files/batches.py", os.path.join("deepanalyze_jupyter", "filesystem.py"))):
                busy.append(filename)
                break
            stack = stack.f_back
    return busy


def _wait_for(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


def test_stopping_early_closes_the_reader(folder: Session) -> None:
    batches = folder.read_batches("files", "data.csv", rows=100)
    first = next(batches)
    assert first.num_rows == 100
    batches.close()
    assert _wait_for(lambda: not _reading_threads()), _reading_threads()
    # the session still reads (nothing was left holding its loop)
    assert len(folder.read("files", "data.csv", limit=None)) == ROWS


@pytest.fixture
def lake(session: Session, azurite: AzuriteServer, blob_container: str) -> Session:
    secrets = {"connection_string": azurite.connection_string}
    session.add("lake", "azure_blob", container=blob_container, secrets=secrets)
    return session


def _put(azurite: AzuriteServer, container: str, name: str, data: bytes) -> None:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.get_blob_client(container, name).upload_blob(data, overwrite=True)


def test_blob_batches_equal_the_whole_read(
    lake: Session, azurite: AzuriteServer, blob_container: str, tmp_path: Path
) -> None:
    _write_formats(tmp_path, _frame())
    for path in FILES:
        _put(azurite, blob_container, f"in/{path}", (tmp_path / path).read_bytes())
    for path in FILES:
        whole = lake.read("lake", f"in/{path}", limit=None)
        batches = list(lake.read_batches("lake", f"in/{path}", rows=800, output="pandas"))
        assert all(len(batch) <= 800 for batch in batches)
        pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), whole, check_column_type=False)
    arrow = list(lake.read_batches("lake", "in/*.parquet", rows=800))
    assert pa.concat_tables(arrow).equals(lake.read("lake", "in/*.parquet", limit=None, output="arrow"))


def _large_csv(rows: int) -> bytes:
    table = pa.table({"n": np.arange(rows), "label": pa.array([f"row-{n:09d}" for n in range(rows)])})
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.usefixtures("ctrl_c")
def test_an_interrupt_or_an_early_stop_ends_the_blob_downloads(
    lake: Session, azurite: AzuriteServer, blob_container: str
) -> None:
    _put(azurite, blob_container, "big.csv", _large_csv(1_500_000))  # about 30 MiB
    batches = lake.read_batches("lake", "big.csv", rows=10_000)
    assert next(batches).num_rows == 10_000
    batches.close()
    assert _wait_for(lambda: not _reading_threads()), _reading_threads()

    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def interrupt_while_reading() -> None:  # Ctrl-C once a worker thread is inside a ranged read
        if _wait_for(lambda: bool(_reading_threads()), 30):
            signal.pthread_kill(main_thread, signal.SIGINT)

    watcher = threading.Thread(target=interrupt_while_reading, daemon=True)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        list(lake.read_batches("lake", "big.csv", rows=2_000_000))
    watcher.join()
    assert _wait_for(lambda: not _reading_threads()), _reading_threads()
    assert lake.read("lake", "big.csv", limit=5)["n"].tolist() == [0, 1, 2, 3, 4]


#: ``peak_mib()``: the process's peak RSS so far, in MiB. From ``VmHWM``, which starts afresh
#: with the program: ``ru_maxrss`` keeps the peak of the parent (a large pytest) across exec.
PEAK_RSS = textwrap.dedent(
    """
    def peak_mib():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024
    """
)

_MEASURE = PEAK_RSS + textwrap.dedent(
    """
    import json, sys
    from deepanalyze_jupyter import Session
    folder, path = sys.argv[1:3]
    with Session() as session:
        session.add("files", "local", path=folder)
        before = peak_mib()
        rows = 0
        for batch in session.read_batches("files", path, rows=100_000):
            rows += batch.num_rows
        after = peak_mib()
    print(json.dumps([before, after, rows]))
    """
)


def _growth_reading(folder: Path, rows: int) -> int:
    """MiB the peak RSS of a fresh process grew by while it read a CSV of ``rows`` rows in batches."""
    table = pa.table({"n": np.arange(rows), "payload": pa.array(np.full(rows, "x" * 40))})
    pa_csv.write_csv(table, folder / "large.csv")  # about 50 bytes a row
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(folder), "large.csv"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        check=True,
    )
    (folder / "large.csv").unlink()
    before, after, read = json.loads(done.stdout.splitlines()[-1])
    assert read == rows
    return int(after - before)


def test_a_large_csv_is_read_at_flat_memory(tmp_path: Path) -> None:
    """150 MiB and 300 MiB of CSV (a whole read holds several times that): the same bounded growth."""
    smaller = _growth_reading(tmp_path, 3_000_000)
    larger = _growth_reading(tmp_path, 6_000_000)
    assert smaller < 200, f"peak RSS grew by {smaller} MiB reading 150 MiB"
    assert larger < 200, f"peak RSS grew by {larger} MiB reading 300 MiB"
    assert larger - smaller < 60, f"peak RSS grew with the file: {smaller} then {larger} MiB"

"""Arrow results of file sources come straight from the parsed files, never through pandas.

On a real local folder and on Azurite: for each format (with gzip, partition folders and a
source column), ``output="arrow"`` holds what ``pa.Table.from_pandas`` of the pandas result
holds, as the README maps the dtypes, and no pandas frame is built on the way.
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient

from deepanalyze_jupyter import Session, frames, results
from deepanalyze_jupyter.connectors.files import combine, conversion, partitions
from deepanalyze_jupyter.results import convert_result, result_info
from tests.services import AzuriteServer

PARIS = "Europe/Paris"
CSV = "id,n,x,name\n1,1,0.5,a\n2,,,b\n3,3,NaN,\n"
JSONL = '{"id": 1, "n": 1, "name": "a"}\n{"id": 2, "n": null, "name": "b"}\n{"id": 3, "n": 3, "name": null}\n'
JSON = '[{"id": 1, "n": 1, "name": "a"}, {"id": 2, "n": null, "name": "b"}, {"id": 3, "n": 3, "name": null}]'


def _parquet() -> bytes:
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "n": pa.array([1, None, 3], pa.int64()),
            "x": pa.array([math.nan, None, 2.5], pa.float64(), from_pandas=False),
            "price": pa.array([Decimal("1.10"), None, Decimal("12345678901234.99")], pa.decimal128(16, 2)),
            "at": pa.array(
                [pd.Timestamp("2024-01-01 10:00", tz="Europe/Paris"), None, None],
                pa.timestamp("us", "Europe/Paris"),
            ),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _nan_parquet() -> bytes:
    """A float column with a NaN and no NULL (pandas holds it as numpy ``float64``)."""
    sink = io.BytesIO()
    pq.write_table(pa.table({"x": pa.array([math.nan, 2.5], pa.float64(), from_pandas=False)}), sink)
    return sink.getvalue()


#: Each file name -> its bytes: every format, gzip, and ``key=value`` partition folders.
FILES: dict[str, bytes] = {
    "plain/data.csv": CSV.encode(),
    "plain/data.tsv": CSV.replace(",", "\t").encode(),
    "plain/data.csv.gz": gzip.compress(CSV.encode()),
    "plain/data.jsonl": JSONL.encode(),
    "plain/data.json": JSON.encode(),
    "plain/data.parquet": _parquet(),
    "plain/nan.parquet": _nan_parquet(),
    "parts/month=2/part.parquet": _parquet(),
    "parts/month=10/part.parquet": _parquet(),
    "parts/month=1/part.csv": CSV.encode(),
}
READS = [
    pytest.param("plain/data.csv", {}, id="csv"),
    pytest.param("plain/data.tsv", {}, id="tsv"),
    pytest.param("plain/data.csv.gz", {}, id="csv-gzip"),
    pytest.param("plain/data.jsonl", {}, id="jsonl"),
    pytest.param("plain/data.json", {}, id="json"),
    pytest.param("plain/data.parquet", {}, id="parquet"),
    pytest.param("plain/nan.parquet", {}, id="parquet-nan"),
    pytest.param("parts/*/*.parquet", {"source_column": "file"}, id="partitions-source-column"),
    pytest.param("parts/*/*.parquet", {"limit": 4}, id="partitions-limit"),
    pytest.param("parts/*/*", {}, id="partitions-csv-and-parquet"),
    pytest.param("plain/data.csv", {"dtype": {"n": "Int32"}}, id="csv-dtype"),
]


@pytest.fixture
def session() -> Iterator[Session]:
    with Session() as opened:
        yield opened


@pytest.fixture
def local(session: Session, tmp_path: Path) -> str:
    for name, data in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    session.add("files", "local", path=str(tmp_path))
    return "files"


@pytest.fixture
def blob(session: Session, azurite: AzuriteServer, blob_container: str) -> str:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        for name, data in FILES.items():
            service.get_blob_client(blob_container, name).upload_blob(data)
    session.add(
        "lake",
        "azure_blob",
        container=blob_container,
        show_progress=False,
        secrets={"connection_string": azurite.connection_string},
    )
    return "lake"


@pytest.fixture(params=["local", "blob"])
def source(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def _rows(table: pa.Table) -> str:
    """The table's values, NaN equal to NaN (``Table.equals`` says NaN differs from itself)."""
    return repr(table.to_pylist())


def _no_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building a pandas frame from Arrow (anywhere on a file read) fail the test."""

    def no_pandas(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pandas frame was built")

    for module in (frames, conversion, partitions):
        monkeypatch.setattr(module, "arrow_to_frame", no_pandas)
    monkeypatch.setattr(combine, "to_frame", no_pandas)
    monkeypatch.setattr(results, "_arrow_table", no_pandas)


@pytest.mark.parametrize(("path", "kwargs"), READS)
def test_arrow_equals_the_pandas_result_in_arrow(
    session: Session, source: str, path: str, kwargs: dict[str, object]
) -> None:
    from_pandas = convert_result(session.read(source, path, output="pandas", **kwargs), "arrow")
    native = session.read(source, path, output="arrow", **kwargs)
    assert isinstance(native, pa.Table)
    assert native.schema.remove_metadata() == from_pandas.schema.remove_metadata()
    assert _rows(native) == _rows(from_pandas)
    assert result_info(native) == result_info(from_pandas)


@pytest.mark.parametrize(("path", "kwargs"), READS)
def test_arrow_and_polars_build_no_pandas_frame(
    session: Session, source: str, path: str, kwargs: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = session.read(source, path, output="arrow", **kwargs)
    _no_pandas(monkeypatch)
    table = session.read(source, path, output="arrow", **kwargs)
    assert _rows(table) == _rows(expected)
    assert session.read(source, path, output="polars", **kwargs).to_arrow().num_rows == table.num_rows


def test_the_cut_is_in_the_schema_metadata(session: Session, local: str) -> None:
    table = session.read(local, "parts/*/*.parquet", limit=4, output="arrow")
    assert table.num_rows == 4
    assert result_info(table) == {"source": "files", "truncated": True, "row_limit": 4}


@pytest.mark.parametrize("output", ["pandas", "arrow", "polars"])
def test_nan_without_null_stays_nan(session: Session, source: str, output: str) -> None:
    result = session.read(source, "plain/nan.parquet", output=output)
    if output == "pandas":
        table = convert_result(result, "arrow")
    else:
        table = result.to_arrow() if output == "polars" else result
    column = table.column("x")
    assert [math.isnan(value) for value in column.to_pylist()] == [True, False]

"""Partition folders: typed as pyarrow's own discovery types them, and natural order."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from deepanalyze_jupyter.connectors.files.partitions import natural_key, partition_values

#: Values of one key across files; each list is checked against pyarrow's discovery.
VALUE_SETS = [
    ["1", "2", "10"],
    ["-3", "0", "2147483647"],
    ["1", "2147483648"],  # past int32: text
    ["1", "1.5"],
    ["2024-01-01", "2024-01-02"],
    ["a%20b", "c%2Fd"],  # URL-encoded
    ["__HIVE_DEFAULT_PARTITION__", "7"],  # a missing value
    ["007", "8"],
    ["", "1"],  # an empty value is text
]


@pytest.mark.parametrize("values", VALUE_SETS)
def test_partition_values_are_typed_as_pyarrow_discovers_them(tmp_path: Path, values: list[str]) -> None:
    paths = [f"key={value}/part.parquet" for value in values]
    for path in paths:
        (tmp_path / path).parent.mkdir(parents=True)
        pq.write_table(pa.table({"x": [1]}), tmp_path / path)
    dataset = ds.dataset(tmp_path, format="parquet", partitioning="hive")
    discovered = {
        Path(file).relative_to(tmp_path).as_posix(): row["key"]
        for file, row in zip(dataset.files, _rows_per_file(dataset), strict=True)
    }
    ours = partition_values(paths)
    assert [found["key"].type for found in ours] == [dataset.schema.field("key").type] * len(paths)
    assert [found["key"].as_py() for found in ours] == [discovered[path] for path in paths]


def _rows_per_file(dataset: ds.FileSystemDataset) -> list[dict[str, object]]:
    return [fragment.to_table(schema=dataset.schema).to_pylist()[0] for fragment in dataset.get_fragments()]


def test_only_key_value_folders_count() -> None:
    found = partition_values(["flights/month=1/day=2/part=3.parquet", "x.csv", "b/=c/y.csv"])
    assert [{key: value.as_py() for key, value in row.items()} for row in found] == [
        {"month": 1, "day": 2},
        {},
        {},
    ]


def test_natural_order_compares_numbers_as_numbers() -> None:
    names = ["m=10/a.csv", "m=2/a.csv", "m=1/b.csv", "m=1/a10.csv", "m=1/a9.csv"]
    assert sorted(names, key=natural_key) == [
        "m=1/a9.csv",
        "m=1/a10.csv",
        "m=1/b.csv",
        "m=2/a.csv",
        "m=10/a.csv",
    ]


def test_a_value_pyarrow_cannot_url_decode_is_kept_as_text() -> None:
    found = partition_values(["k=%FF/j=3/x.csv", "k=1/j=4/y.csv"])
    assert [{key: value.as_py() for key, value in row.items()} for row in found] == [
        {"k": "%FF", "j": 3},
        {"k": "1", "j": 4},
    ]

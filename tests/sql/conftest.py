"""A file source holding Parquet, CSV and JSON files: a local folder, or a container of the test Azurite."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from azure.storage.blob import BlobServiceClient

from deepanalyze_jupyter import Session

#: Rows of each Parquet file, in row groups of a quarter of them.
ROWS = 40_000
PARQUET_FILES = 3
CSV_FILES = 4


def parquet_frame(part: int) -> pd.DataFrame:
    """Part ``part`` of the Parquet dataset: 19 integer columns and ``region``."""
    numbers = np.arange(part * ROWS, (part + 1) * ROWS, dtype=np.int64)
    frame = pd.DataFrame({f"c{index}": numbers * (index + 1) % 1_000_003 for index in range(19)})
    frame["region"] = np.where(numbers % 3 == 0, "EU", np.where(numbers % 3 == 1, "US", "APAC"))
    return frame


def csv_frame(day: int) -> pd.DataFrame:
    return pd.DataFrame({"day": day, "item": [f"item-{n % 7}" for n in range(50)], "qty": range(50)})


def dataset_files() -> dict[str, bytes]:
    """Every file of the source, by path."""
    files: dict[str, bytes] = {}
    for part in range(PARQUET_FILES):
        buffer = io.BytesIO()
        parquet_frame(part).to_parquet(buffer, row_group_size=ROWS // 4, index=False)
        files[f"sales/2024/part-{part}.parquet"] = buffer.getvalue()
    for day in range(CSV_FILES):
        files[f"csv/day-{day}.csv"] = csv_frame(day).to_csv(index=False).encode()
    files["json/items.jsonl"] = b'{"item": "item-1", "price": 2.5}\n{"item": "item-2", "price": 4.0}\n'
    return files


def lake_connector_class(session: Session) -> Any:
    """The connector class of ``session``'s source ``lake`` (to patch its reads in a test)."""
    return session.registry.connector_class(session.registry.get_config("lake").type)


@pytest.fixture
def session() -> Iterator[Session]:
    with Session() as opened:
        yield opened


@pytest.fixture
def local_lake(session: Session, tmp_path: Path) -> Session:
    """Source ``lake``: a local folder with the dataset (and a secret file beside it)."""
    root = tmp_path / "lake"
    for name, data in dataset_files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (tmp_path / "outside.csv").write_text("secret\nnot-yours\n")
    session.add("lake", "local", path=str(root))
    return session


@pytest.fixture
def blob_lake(session: Session, azurite: object, blob_container: str) -> Session:
    """Source ``lake``: a container of the test Azurite with the dataset, by connection string."""
    connection_string = azurite.connection_string  # type: ignore[attr-defined]
    with BlobServiceClient.from_connection_string(connection_string) as service:
        container = service.get_container_client(blob_container)
        for name, data in dataset_files().items():
            container.upload_blob(name, data)
    session.add(
        "lake", "azure_blob", container=blob_container, secrets={"connection_string": connection_string}
    )
    return session


@pytest.fixture(params=["local", pytest.param("blob", marks=[pytest.mark.integration, pytest.mark.azurite])])
def lake(request: pytest.FixtureRequest) -> Session:
    """A session whose source ``lake`` is a local folder, then an Azurite container."""
    return request.getfixturevalue(f"{request.param}_lake")  # type: ignore[no-any-return]

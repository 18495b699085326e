"""SQL over an Azurite container and dsrc:// URLs in a real Jupyter kernel (jupyter_client)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas
from jupyter_client.manager import KernelManager

from tests.notebook.magics.test_kernel import TIMEOUT, Kernel
from tests.services import AzuriteServer
from tests.sql.conftest import PARQUET_FILES, ROWS, dataset_files

pytestmark = pytest.mark.kernel


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[KernelManager]:
    started = KernelManager(kernel_name="python3")
    started.start_kernel(env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}, cwd=str(tmp_path))
    yield started
    started.shutdown_kernel(now=True)


@pytest.fixture
def kernel(manager: KernelManager) -> Iterator[Kernel]:
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        yield Kernel(client)
    finally:
        client.stop_channels()


@pytest.fixture
def sas(azurite: AzuriteServer, blob_container: str) -> str:
    """The dataset in the container; a read-only SAS for it."""
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.get_container_client(blob_container)
        for name, data in dataset_files().items():
            container.upload_blob(name, data)
    return generate_container_sas(
        azurite.account_name,
        blob_container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


def test_sql_and_urls_over_a_blob_source_in_a_kernel(
    kernel: Kernel, manager: KernelManager, azurite: AzuriteServer, blob_container: str, sas: str
) -> None:
    cells = [kernel.ok("%load_ext deepanalyze_jupyter")]
    cells.append(
        kernel.ok(
            f"%datasource add lake --type azure_blob --account-url {azurite.blob_endpoint} "
            f"--container {blob_container} --prompt sas_token",
            answer=sas,
        )
    )
    grouped = kernel.ok(
        "%%dsquery lake -o by_region\n"
        "SELECT region, count(*) AS n FROM 'sales/2024/*.parquet' GROUP BY region ORDER BY region"
    )
    assert kernel.ok("list(by_region['n'])").result["text/plain"] == f"[{ROWS}, {ROWS}, {ROWS}]"
    read = kernel.ok('import pandas as pd\nlen(pd.read_parquet("dsrc://lake/sales/2024/", columns=["c1"]))')
    assert read.result["text/plain"] == str(ROWS * PARQUET_FILES)
    joined = kernel.ok("%%dsquery lake --frames by_region\nSELECT sum(n) AS total FROM by_region")
    assert str(ROWS * PARQUET_FILES) in joined.result["text/plain"]
    cells += [grouped, read, joined]

    unnamed = kernel.run("%%dsquery lake\nSELECT * FROM by_region")
    escape = kernel.run("%%dsquery lake\nSELECT * FROM read_csv('/etc/passwd')")
    for cell in (unnamed, escape):
        assert cell.reply["status"] == "error"
        lines = cell.stderr.strip().splitlines()
        assert len(lines) == 1, cell.stderr
        assert lines[0].startswith("lake: ") or ": lake: " in lines[0], lines
    cells += [unnamed, escape]

    # An interrupt during a long scan stops DuckDB at once and leaves the kernel answering.
    client = kernel.client
    client.execute(
        "%%dsquery lake\nSELECT count(*) FROM 'sales/2024/*.parquet' a, range(1000000) r "
        "WHERE (a.c1 * r.range) % 1000003 = 7"
    )
    time.sleep(3)
    started = time.monotonic()
    manager.interrupt_kernel()
    reply = client.get_shell_msg(timeout=TIMEOUT)
    stopped = time.monotonic() - started
    assert reply["content"]["status"] == "error"
    assert stopped < 10, stopped  # at once: the scan alone runs for minutes
    assert kernel.ok("1 + 1").result["text/plain"] == "2"

    for cell in cells:
        assert sas not in cell.everything

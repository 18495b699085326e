"""Every notebook in notebooks/ runs top to bottom in a real kernel; a cell error fails.

The kernel is this interpreter's own (ipykernel's native spec, made from ``sys.executable``),
so it sees the package under test. The PostgreSQL and Azure notebooks get their connection
details through the kernel's environment, as a user's would, and no output may show the
password or the account key.
"""

from __future__ import annotations

import gzip
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import nbformat
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode
from psycopg import sql
from traitlets import default

from tests.services import AzuriteServer, PostgresServer

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SAMPLE_DATA = NOTEBOOKS / "data"
CELL_TIMEOUT = 180


class OwnInterpreterKernelManager(AsyncKernelManager):
    """Starts ipykernel's native kernel, run by this interpreter, whatever kernelspecs are installed."""

    @default("kernel_spec_manager")
    def _native_kernel_only(self) -> KernelSpecManager:
        return KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)


def run_notebook(name: str, env: Mapping[str, str] | None = None) -> NotebookNode:
    """Execute ``notebooks/<name>`` from the notebooks folder and return it with its outputs."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    execute(notebook, env)
    return notebook


def execute(notebook: NotebookNode, env: Mapping[str, str] | None = None) -> None:
    """Run ``notebook``'s cells in place, in the notebooks folder; the first cell error raises."""
    client = NotebookClient(
        notebook,
        kernel_manager_class=OwnInterpreterKernelManager,
        kernel_name=NATIVE_KERNEL_NAME,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    kernel_env = {**os.environ, **(env or {})}
    # A notebook reads what it needs from the environment; nothing else leaks in.
    for variable in ("PGPASSWORD", "AZURE_STORAGE_CONNECTION_STRING"):
        if env is None or variable not in env:
            kernel_env.pop(variable, None)
    client.execute(env=kernel_env)


def outputs_text(notebook: NotebookNode) -> str:
    """Every output of every cell as one text (streams, results, errors, widget models)."""
    return nbformat.writes(notebook)


# -- the committed files ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["quickstart.ipynb", "postgresql.ipynb", "azure_blob.ipynb"])
def test_committed_notebook_is_valid_and_has_no_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert notebook.metadata.kernelspec.name == "python3"


#: Far above what the clean notebooks weigh (9 to 11 KB), far below a saved run with widget state.
MAX_NOTEBOOK_BYTES = 20_000
#: What a cell's metadata may hold (anything else is left over from a run or an editor).
CELL_METADATA = {"tags"}


@pytest.mark.parametrize("name", ["quickstart.ipynb", "postgresql.ipynb", "azure_blob.ipynb"])
def test_committed_notebook_is_small_and_holds_nothing_a_run_leaves(name: str) -> None:
    path = NOTEBOOKS / name
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES
    notebook = nbformat.read(path, as_version=4)
    assert set(notebook.metadata) <= {"kernelspec", "language_info"}  # no "widgets" state
    assert set(notebook.metadata.language_info) == {"name"}  # no version of the last kernel
    for cell in notebook.cells:
        assert set(cell.metadata) <= CELL_METADATA, (cell.id, dict(cell.metadata))
        assert "attachments" not in cell


def test_every_notebook_is_tested() -> None:
    assert {path.name for path in NOTEBOOKS.glob("*.ipynb")} == {
        "quickstart.ipynb",
        "postgresql.ipynb",
        "azure_blob.ipynb",
    }


def test_sample_data_is_what_the_script_makes(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(SAMPLE_DATA / "make_sample_data.py"), str(tmp_path)], check=True)
    committed = sorted(p.relative_to(SAMPLE_DATA) for p in (SAMPLE_DATA / "files").rglob("*") if p.is_file())
    made = sorted(p.relative_to(tmp_path) for p in (tmp_path / "files").rglob("*") if p.is_file())
    assert committed == made
    for relative in made:
        if relative.suffix == ".parquet":  # bytes may differ between pyarrow versions; data may not
            assert pq.read_table(tmp_path / relative).equals(pq.read_table(SAMPLE_DATA / relative))
        elif relative.suffix == ".gz":  # the header's OS byte differs between Python versions
            made_text = gzip.decompress((tmp_path / relative).read_bytes())
            assert made_text == gzip.decompress((SAMPLE_DATA / relative).read_bytes()), relative
        else:
            assert (tmp_path / relative).read_bytes() == (SAMPLE_DATA / relative).read_bytes(), relative

    def dump(path: Path) -> list[str]:
        connection = sqlite3.connect(path)
        try:
            return list(connection.iterdump())
        finally:
            connection.close()

    assert dump(tmp_path / "shop.db") == dump(SAMPLE_DATA / "shop.db")
    total = sum(p.stat().st_size for p in SAMPLE_DATA.rglob("*") if p.is_file())
    assert total < 300_000


# -- running them --------------------------------------------------------------------------------


@pytest.mark.kernel
def test_quickstart_runs_with_nothing_but_the_package() -> None:
    notebook = run_notebook("quickstart.ipynb")
    text = outputs_text(notebook)
    assert "revenue_by_region" in text  # the table listing
    assert "application/vnd.jupyter.widget-view+json" in text  # the browse form was displayed
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error" or (output.get("name") == "stderr" and "Error" in output.text)
    ]
    assert errors == []


#: What the PostgreSQL and Azure notebooks create, and remove again at their end.
DEMO_SCHEMA = "deepanalyze_demo"
DEMO_CONTAINER = "deepanalyze-demo"


@pytest.fixture
def pg_env(pg_server: PostgresServer) -> Iterator[dict[str, str]]:
    yield {
        "PGHOST": pg_server.host,
        "PGPORT": str(pg_server.port),
        "PGDATABASE": pg_server.dbname,
        "PGUSER": pg_server.user,
        "PGPASSWORD": pg_server.password,
    }
    with pg_server.admin_connection() as connection:  # when the notebook failed half-way
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(DEMO_SCHEMA)))


@pytest.mark.kernel
def test_postgresql_notebook_runs_against_the_real_server(
    pg_env: dict[str, str], pg_server: PostgresServer
) -> None:
    notebook = run_notebook("postgresql.ipynb", pg_env)
    text = outputs_text(notebook)
    assert f"{DEMO_SCHEMA}.orders" in text
    assert "cannot execute DELETE in a read-only transaction" in text
    assert pg_env["PGPASSWORD"] not in text
    with pg_server.admin_connection() as connection:  # the notebook cleaned up after itself
        found = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (DEMO_SCHEMA,))
        assert found.fetchone() is None


@pytest.fixture
def azure_env(azurite: AzuriteServer) -> Iterator[dict[str, str]]:
    yield {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.get_container_client(DEMO_CONTAINER)
        if container.exists():  # when the notebook failed half-way
            container.delete_container()


@pytest.mark.kernel
def test_azure_blob_notebook_runs_against_azurite(azure_env: dict[str, str], azurite: AzuriteServer) -> None:
    notebook = run_notebook("azure_blob.ipynb", azure_env)
    text = outputs_text(notebook)
    assert "Uploaded 9 files to deepanalyze-demo" in text
    assert "sales/2024-q4.csv" in text
    for secret in (azurite.account_key, azure_env["AZURE_STORAGE_CONNECTION_STRING"]):
        assert secret not in text
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        assert not service.get_container_client(DEMO_CONTAINER).exists()


@pytest.mark.kernel
def test_azure_blob_notebook_without_the_connection_string_stops_in_one_line_at_once() -> None:
    notebook = nbformat.read(NOTEBOOKS / "azure_blob.ipynb", as_version=4)
    with pytest.raises(CellExecutionError) as caught:
        execute(notebook, env={})  # AZURE_STORAGE_CONNECTION_STRING is removed from the kernel's
    assert caught.value.ename == "UsageError"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    (shown,) = code[0].outputs
    assert shown.output_type == "stream" and shown.name == "stderr"
    assert shown.text.splitlines() == [
        "UsageError: AZURE_STORAGE_CONNECTION_STRING is not set: export it in the shell you start "
        "JupyterLab from (see above), then start JupyterLab again"
    ]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code[1:])


@pytest.mark.kernel
def test_postgresql_notebook_runs_with_a_password_file_and_no_pgpassword(
    pg_env: dict[str, str], pg_server: PostgresServer, tmp_path: Path
) -> None:
    password_file = tmp_path / "pgpass"
    escaped = pg_server.password.replace("\\", "\\\\").replace(":", "\\:")
    password_file.write_text(f"{pg_server.host}:{pg_server.port}:*:{pg_server.user}:{escaped}\n")
    password_file.chmod(0o600)  # libpq ignores a password file others can read
    env = {name: value for name, value in pg_env.items() if name != "PGPASSWORD"}
    notebook = run_notebook("postgresql.ipynb", {**env, "PGPASSFILE": str(password_file)})
    text = outputs_text(notebook)
    assert "Added data source 'warehouse' (postgresql): connected." in text
    assert f"{DEMO_SCHEMA}.orders" in text
    assert "cannot execute DELETE in a read-only transaction" in text
    assert pg_server.password not in text
    with pg_server.admin_connection() as connection:
        found = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (DEMO_SCHEMA,))
        assert found.fetchone() is None

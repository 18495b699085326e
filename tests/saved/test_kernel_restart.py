"""Sources saved in a real kernel come back after it restarts; no secret is written anywhere."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from tests.notebook.magics.test_kernel import TIMEOUT, Cell, Kernel
from tests.services import PostgresServer

from .conftest import read_toml

pytestmark = pytest.mark.kernel

TYPED_SECRET = "Typed-Ref-Canary-0a9b8c7d"


class RestartableKernel(Kernel):
    """A kernel whose manager can restart it, as a notebook's Restart does."""

    def __init__(self, manager: KernelManager) -> None:
        self.manager = manager
        super().__init__(manager.blocking_client())
        self.client.start_channels()
        self.client.wait_for_ready(timeout=TIMEOUT)

    def restart(self) -> None:
        self.manager.restart_kernel(now=True)
        self.client.wait_for_ready(timeout=TIMEOUT)


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    """The Jupyter config directory and the notebook's directory of the kernel."""
    config, project = tmp_path / "config", tmp_path / "project"
    project.mkdir()
    with closing(sqlite3.connect(project / "shop.db")) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER)")
        connection.execute("INSERT INTO orders VALUES (1), (2), (3)")
        connection.commit()
    return config, project


@pytest.fixture
def kernel(
    tmp_path: Path, places: tuple[Path, Path], pg_server: PostgresServer
) -> Iterator[RestartableKernel]:
    config, project = places
    pgpass = tmp_path / "pgpass"  # the libpq password file: only for database "postgres"
    pgpass.write_text(f"*:*:postgres:{pg_server.user}:{pg_server.password}\n")
    pgpass.chmod(0o600)
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PG")},
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_CONFIG_DIR": str(config),
        "SAVED_PG_PASSWORD": pg_server.password,
        "PGPASSFILE": str(pgpass),
    }
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=environment, cwd=str(project))
    try:
        started = RestartableKernel(manager)
        yield started
        started.client.stop_channels()
    finally:
        manager.shutdown_kernel(now=True)


def test_saved_sources_survive_a_kernel_restart(
    kernel: RestartableKernel, places: tuple[Path, Path], pg_server: PostgresServer, tmp_path: Path
) -> None:
    config, project = places
    server = f"--type postgresql --host {pg_server.host} --port {pg_server.port} --user {pg_server.user}"
    cells: list[Cell] = [kernel.ok("%load_ext deepanalyze_jupyter")]
    cells.append(
        kernel.ok(
            f"%datasource add pg_env {server} --dbname {pg_server.dbname} --password-env SAVED_PG_PASSWORD"
        )
    )
    prompted = kernel.ok(
        f"%datasource add pg_prompt {server} --dbname {pg_server.dbname} --prompt password",
        answer=pg_server.password,
    )
    cells += [
        prompted,
        kernel.ok(f"%datasource add pg_pass {server} --dbname postgres"),
        kernel.ok("%datasource add shop --type sqlite --path shop.db"),
    ]
    refused = kernel.usage_error(f"%datasource save pg_prompt --ref password {TYPED_SECRET}")
    assert refused.startswith("pg_prompt: refused the value of --ref: it is not a reference")
    assert TYPED_SECRET not in refused
    saved = [
        kernel.ok("%datasource save pg_env --ref password env:SAVED_PG_PASSWORD"),
        kernel.ok("%datasource save pg_prompt --ref password prompt --project"),
        kernel.ok("%datasource save pg_pass shop"),
    ]
    user_file, project_file = config / "deepanalyze" / "sources.toml", project / ".deepanalyze-sources.toml"
    assert saved[0].stdout.startswith(f"Saved pg_env to {user_file} (secrets as references only")
    assert saved[1].stdout.startswith(f"Saved pg_prompt to {project_file}")
    cells += saved
    assert sorted(read_toml(user_file)["sources"]) == ["pg_env", "pg_pass", "shop"]
    assert read_toml(project_file)["sources"]["pg_prompt"]["secrets"] == {"password": "prompt"}

    kernel.restart()

    loaded = kernel.ok("%load_ext deepanalyze_jupyter")
    assert sorted(loaded.stdout.splitlines()) == [
        f"pg_env: loaded from {user_file}",
        f"pg_pass: loaded from {user_file}",
        f"pg_prompt: loaded from {project_file}",
        f"shop: loaded from {user_file}",
    ]
    listed = kernel.ok("%datasource list --saved")
    assert listed.result["text/plain"].count("in this kernel; ready") == 4
    cells += [loaded, listed]

    for source in ("pg_env", "pg_pass"):
        answered = kernel.ok(f"%%dsquery {source}\nSELECT 41 + 1 AS answer")
        assert "42" in answered.result["text/plain"]
        assert answered.asked == []
        cells.append(answered)
    first = kernel.ok("%%dsquery pg_prompt\nSELECT current_database() AS db", answer=pg_server.password)
    assert [(asked["prompt"], asked["password"]) for asked in first.asked] == [
        ("password for pg_prompt: ", True)
    ]
    assert pg_server.dbname in first.result["text/plain"]
    again = kernel.ok("%datasource test pg_prompt")
    assert again.asked == []
    shop = kernel.ok("%%dsquery shop\nSELECT count(*) AS n FROM orders")
    assert "3" in shop.result["text/plain"]
    forgot = kernel.ok("%datasource forget shop")
    assert "shop" not in read_toml(user_file)["sources"]
    cells += [first, again, shop, forgot]

    kernel.restart()
    kernel.ok("%config DataSourceMagics.autoload = False")
    quiet = kernel.ok("%load_ext deepanalyze_jupyter")
    assert quiet.stdout == ""
    assert kernel.ok("%datasource list").stdout.startswith("no data sources yet")
    reloaded = kernel.ok("%datasource load")
    assert sorted(line.split(":")[0] for line in reloaded.stdout.splitlines()) == [
        "pg_env",
        "pg_pass",
        "pg_prompt",
    ]
    cells.append(reloaded)

    # No secret in any file written, any message of the kernel, or its history.
    kernel.ok("get_ipython().history_manager.writeout_cache()")
    written = [path for base in (config, project) for path in base.rglob("*") if path.is_file()]
    history = tmp_path / "ipython" / "profile_default" / "history.sqlite"
    assert history.exists()
    for secret in (pg_server.password, TYPED_SECRET):
        for path in [*written, history]:
            assert secret.encode() not in path.read_bytes(), path
        for cell in cells:
            assert secret not in cell.everything

"""A script or a terminal IPython that never closes its sources exits without a word.

The session closes its sources at interpreter exit; each test runs a real interpreter that
connects a source of one type, uses it and ends, and checks that it printed nothing else.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.postgresql.postgres import source_options
from tests.services.azurite import AzuriteServer
from tests.services.postgres import PostgresServer

#: Adds source ``it`` of the given type, lists it, and ends without closing anything.
SCRIPT = """
import json, os, sys
from deepanalyze_jupyter import Session

session = Session()
session.add("it", sys.argv[1], secrets=json.loads(os.environ["SOURCE_SECRETS"]),
            **json.loads(os.environ["SOURCE_OPTIONS"]))
print(len(session.list_items("it")), "items")
"""


def run_python(arguments: list[str], options: dict[str, Any], secrets: dict[str, str], cwd: Path) -> str:
    """Run a Python interpreter to its end; return what it printed (it must succeed)."""
    env = {
        **os.environ,
        "SOURCE_OPTIONS": json.dumps(options),
        "SOURCE_SECRETS": json.dumps(secrets),
        "IPYTHONDIR": str(cwd / "ipython"),
    }
    done = subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    return done.stdout


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, quantity INTEGER)")
        connection.commit()
    return path


def test_a_script_with_a_sqlite_source_exits_quietly(database: Path, tmp_path: Path) -> None:
    printed = run_python(["-c", SCRIPT, "sqlite"], {"path": str(database)}, {}, tmp_path)
    assert printed == "1 items\n"


def test_a_script_with_a_local_source_exits_quietly(tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text("region,amount\nEU,3\n")
    printed = run_python(["-c", SCRIPT, "local"], {"path": str(tmp_path)}, {}, tmp_path)
    assert printed.endswith(" items\n")


def test_a_script_with_a_postgresql_source_exits_quietly(pg_server: PostgresServer, tmp_path: Path) -> None:
    printed = run_python(
        ["-c", SCRIPT, "postgresql"], source_options(pg_server), {"password": pg_server.password}, tmp_path
    )
    assert printed.endswith(" items\n")


def test_a_script_with_an_azure_blob_source_exits_quietly(
    azurite: AzuriteServer, blob_container: str, tmp_path: Path
) -> None:
    printed = run_python(
        ["-c", SCRIPT, "azure_blob"],
        {"container": blob_container},
        {"connection_string": azurite.connection_string},
        tmp_path,
    )
    assert printed == "0 items\n"


def test_a_terminal_ipython_exits_quietly(database: Path, tmp_path: Path) -> None:
    cell = textwrap.dedent(
        f"""
        %load_ext deepanalyze_jupyter
        %datasource add shop --type sqlite --path {database}
        %datasource ls shop
        """
    )
    printed = run_python(
        ["-m", "IPython", "--quick", "--no-banner", "--colors=NoColor", "-c", cell], {}, {}, tmp_path
    )
    assert "Added data source 'shop'" in printed
    assert "orders" in printed

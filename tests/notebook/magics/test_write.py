"""``%datasource write`` against the real PostgreSQL server and a local folder."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.connectors.postgresql.postgres import admin
from tests.connectors.postgresql.test_write import (
    commit_held,
    committing,
    copying,
    interrupt_when,
    large_frame,
)
from tests.services import PostgresServer

from .conftest import run, usage_error


def add_postgres(shell: InteractiveShell, pg_server: PostgresServer, *flags: str) -> None:
    line = (
        f"%datasource add scratch --type postgresql --host {pg_server.host} --port {pg_server.port} "
        f"--dbname {pg_server.dbname} --user {pg_server.user} --password-env PGPASSWORD {' '.join(flags)}"
    )
    ran = run(shell, line)
    assert ran.error is None, ran.text


@pytest.fixture
def with_password(pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", pg_server.password)


@pytest.mark.usefixtures("with_password")
def test_write_a_variable_into_a_table_in_each_mode(
    shell: InteractiveShell, pg_server: PostgresServer, pg_schema: str
) -> None:
    add_postgres(shell, pg_server, "--read-only false")
    shell.user_ns["by_region"] = pd.DataFrame({"region": ["EU", "US"], "total": [10.5, 20.25]})
    target = f"{pg_schema}.region_totals"
    ran = run(shell, f"%datasource write scratch {target} by_region")
    assert ran.error is None, ran.text
    assert ran.out.strip() == f"scratch: 2 row(s) written, table {target} created"
    assert "already exists" in usage_error(shell, f"%datasource write scratch {target} by_region")
    assert run(shell, f"%datasource write scratch {target} by_region --mode append").error is None
    assert admin(pg_server, f"SELECT count(*) FROM {target}") == [(4,)]
    ran = run(
        shell, f"%datasource write scratch {target} by_region --mode replace --types total=numeric(6,2)"
    )
    assert ran.error is None, ran.text
    assert admin(pg_server, f"SELECT region, total::text FROM {target} ORDER BY 1") == [
        ("EU", "10.50"),
        ("US", "20.25"),
    ]


@pytest.mark.usefixtures("with_password")
def test_a_read_only_source_refuses_naming_the_flag(
    shell: InteractiveShell, pg_server: PostgresServer, pg_schema: str
) -> None:
    add_postgres(shell, pg_server)
    shell.user_ns["frame"] = pd.DataFrame({"a": [1]})
    line = usage_error(shell, f"%datasource write scratch {pg_schema}.nope frame")
    assert line.startswith("scratch: the source is read-only: nothing was written")
    assert line.endswith("register it with --read-only false to allow writes")
    assert line.count("--read-only") == 1
    assert pg_server.password not in line
    assert admin(pg_server, "SELECT to_regclass(%s)", f"{pg_schema}.nope") == [(None,)]


def test_write_a_file_and_bad_variables(shell: InteractiveShell, tmp_path: Path) -> None:
    assert run(shell, f"%datasource add out --type local --path {tmp_path} --read-only false").error is None
    shell.user_ns["frame"] = pd.DataFrame({"a": [1, 2]}, index=pd.Index(["x", "y"], name="key"))
    ran = run(shell, "%datasource write out exports/frame.csv frame --index")
    assert ran.out.strip() == "out: 2 row(s) written to exports/frame.csv (csv)"
    assert (tmp_path / "exports" / "frame.csv").read_text() == '"key","a"\n"x",1\n"y",2\n'
    refused = usage_error(shell, "%datasource write out exports/frame.csv frame")
    assert refused.endswith(
        "exists: nothing was written; pass --overwrite to replace it"
    )  # as the magic takes it
    assert run(shell, "%datasource write out exports/frame.csv frame --overwrite").error is None
    assert "no variable 'missing'" in usage_error(shell, "%datasource write out x.csv missing")
    shell.user_ns["number"] = 3
    assert "'number' is a int, not a DataFrame" in usage_error(shell, "%datasource write out x.csv number")
    assert "--types takes COLUMN=TYPE" in usage_error(shell, "%datasource write out x.csv frame --types a")


def test_a_file_refuses_mode_append_in_the_magics_words(shell: InteractiveShell, tmp_path: Path) -> None:
    assert run(shell, f"%datasource add out --type local --path {tmp_path} --read-only false").error is None
    shell.user_ns["frame"] = pd.DataFrame({"a": [1, 2]})
    assert run(shell, "%datasource write out x.csv frame").error is None
    refused = usage_error(shell, "%datasource write out x.csv frame --mode append")
    assert refused == (
        "out: files are written whole: --mode append is for tables; pass --overwrite to replace 'x.csv'"
    )
    assert (tmp_path / "x.csv").read_text() == '"a"\n"1"\n"2"\n'
    assert "--mode append" in usage_error(shell, "%datasource write out new.csv frame --mode append")
    assert not (tmp_path / "new.csv").exists()


@pytest.mark.usefixtures("with_password", "ctrl_c")
def test_an_interrupted_write_says_what_it_left(
    shell: InteractiveShell, pg_server: PostgresServer, pg_schema: str
) -> None:
    app = f"magic-write-{uuid4().hex[:8]}"
    add_postgres(shell, pg_server, "--read-only false", f"--application-name {app}")
    shell.user_ns["big"] = large_frame(5_000_000)  # a COPY of a second or more
    target = f"{pg_schema}.kept"
    watcher = interrupt_when(lambda: copying(pg_server, app))  # Ctrl-C while the server takes the rows
    ran = run(shell, f"%datasource write scratch {target} big")
    watcher.join()
    assert isinstance(ran.error, KeyboardInterrupt)
    assert ran.text.strip().splitlines() == [
        f"KeyboardInterrupt: scratch: interrupted; nothing was written to {target}"
    ]
    assert admin(pg_server, "SELECT to_regclass(%s)", target) == [(None,)]

    shell.user_ns["one"] = pd.DataFrame({"a": [1]})
    held = f"{pg_schema}.held"
    with commit_held(pg_server, held):
        watcher = interrupt_when(lambda: committing(pg_server, app))  # Ctrl-C while COMMIT waits
        ran = run(shell, f"%datasource write scratch {held} one --mode append")
    watcher.join()
    assert ran.text.strip().splitlines() == [
        "KeyboardInterrupt: scratch: interrupted while committing; the write may or may not have been "
        f"committed; check the table {held}"
    ]

"""``%%dsquery`` and ``%dsquery`` in a real InteractiveShell: binding, limits, outputs."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from deepanalyze_jupyter.session import Session

from .conftest import run, usage_error


@pytest.fixture
def warehouse(shell: InteractiveShell) -> str:
    assert run(shell, "%datasource add w --type fakesql --host ok").error is None
    return "w"


@pytest.fixture
def shop(shell: InteractiveShell, tmp_path: Path) -> str:
    """A real SQLite source with an ``orders`` table."""
    path = tmp_path / "shop.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("CREATE TABLE orders (id INTEGER, region TEXT, note TEXT)")
        connection.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [(1, "EU", "a:b"), (2, "US", "x"), (3, "EU", "it's")]
        )
    connection.close()
    assert run(shell, f"%datasource add shop --type sqlite --path '{path}'").error is None
    return "shop"


def test_a_cell_query_binds_names_and_assigns_the_result(shell: InteractiveShell, warehouse: str) -> None:
    run(shell, "region = 'EU'; since = 20240101")
    ran = run(shell, "%%dsquery w -o orders\nSELECT * FROM orders WHERE region = :region AND day >= :since")
    frame = ran.result
    assert ran.error is None
    assert frame.loc[0, "region"] == "EU"
    assert frame.loc[0, "since"] == 20240101
    assert shell.user_ns["orders"] is frame
    assert shell.user_ns["_"] is frame
    assert "Showing" not in ran.out


def test_casts_strings_and_comments_are_not_parameters(shell: InteractiveShell, warehouse: str) -> None:
    sql = "SELECT x::int, 'a :quoted colon', time '10:30' -- :commented\nFROM t WHERE y = :y"
    run(shell, "y = 1")
    frame = run(shell, f"%%dsquery w\n{sql}").result
    assert frame.loc[0, "sql"] == sql
    assert [name for name in frame.columns if name not in ("sql", "timeout")] == ["y"]


def test_a_missing_variable_is_named(shell: InteractiveShell, warehouse: str) -> None:
    message = usage_error(shell, "%%dsquery w\nSELECT * FROM t WHERE a = :undefined_thing")
    assert message == "w: the query uses :undefined_thing, but no variable 'undefined_thing' is defined"


def test_hostile_values_stay_values_and_change_nothing(shell: InteractiveShell, shop: str) -> None:
    shell.user_ns["region"] = "EU' OR '1'='1"
    shell.user_ns["evil"] = "x'; DROP TABLE orders; --"
    frame = run(shell, "%%dsquery shop\nSELECT * FROM orders WHERE region = :region OR note = :evil").result
    assert len(frame) == 0
    shell.user_ns["note"] = "it's"
    assert run(shell, "%%dsquery shop\nSELECT id FROM orders WHERE note = :note").result["id"].tolist() == [3]
    assert len(run(shell, "%dsquery shop SELECT * FROM orders").result) == 3  # the table is still there


def test_the_line_form(shell: InteractiveShell, shop: str) -> None:
    shell.user_ns["wanted"] = "EU"
    ran = run(shell, "%dsquery shop -o eu SELECT id FROM orders WHERE region = :wanted ORDER BY id")
    assert ran.result["id"].tolist() == [1, 3]
    assert shell.user_ns["eu"] is ran.result
    value = run(shell, "ids = %dsquery shop SELECT id FROM orders ORDER BY id\nids['id'].sum()").result
    assert value == 6


def test_limits_and_the_note_when_rows_were_cut(shell: InteractiveShell, warehouse: str) -> None:
    ran = run(shell, "%%dsquery w --limit 5\nROWS 8")
    assert len(ran.result) == 5
    assert ran.out.startswith(
        "Showing the first 5 rows; the result was cut at --limit 5. Use --no-limit to fetch all.\n"
    )
    run(shell, "%config DataSourceMagics.autolimit = 3")
    ran = run(shell, "%%dsquery w\nROWS 8")
    assert len(ran.result) == 3
    assert "cut at the autolimit of 3 rows (DataSourceMagics.autolimit)" in ran.out
    ran = run(shell, "%%dsquery w --no-limit\nROWS 8")
    assert len(ran.result) == 8
    assert "Showing" not in ran.out
    run(shell, "%config DataSourceMagics.autolimit = 0")
    assert len(run(shell, "%dsquery w ROWS 8").result) == 8
    assert len(run(shell, "%dsquery w ROWS 2").result) == 2


def test_timeout_is_passed_to_the_source(shell: InteractiveShell, warehouse: str) -> None:
    frame = run(shell, "%%dsquery w --timeout 2.5\nSELECT 1").result
    assert frame.loc[0, "timeout"] == 2.5


def test_the_default_source(shell: InteractiveShell, warehouse: str) -> None:
    assert usage_error(shell, "%%dsquery\nSELECT 1").startswith("%dsquery: no source given")
    run(shell, "%config DataSourceMagics.default_source = 'w'")
    assert run(shell, "%%dsquery -o r\nSELECT 1").result.loc[0, "sql"] == "SELECT 1"
    assert run(shell, "%dsquery SELECT 2").result.loc[0, "sql"] == "SELECT 2"
    assert run(shell, "%dsquery w SELECT 3").result.loc[0, "sql"] == "SELECT 3"


def test_file_sources_read_one_path_per_line(shell: InteractiveShell) -> None:
    run(shell, "%datasource add f --type fakefiles --root r")
    ran = run(
        shell, "%%dsquery f -o files --format csv --source-column origin\n2024/*\n\n# a comment\nreadme.txt\n"
    )
    assert ran.result["path"].tolist() == ["2024/01.csv", "2024/02.csv", "readme.txt"]
    assert set(ran.result["format"]) == {"csv"}
    assert ran.result["origin"].tolist() == ran.result["path"].tolist()
    assert shell.user_ns["files"] is ran.result
    assert run(shell, "%dsquery f 2025/01.csv").result["path"].tolist() == ["2025/01.csv"]
    limited = run(shell, "%%dsquery f --limit 1\n2024/*")
    assert len(limited.result) == 1
    assert "cut at --limit 1" in limited.out


def test_errors_of_the_source_are_one_line(shell: InteractiveShell, warehouse: str) -> None:
    assert usage_error(shell, "%%dsquery w\nFAIL now") == 'w: syntax error at or near "FAIL"'
    assert usage_error(shell, "%%dsquery nope\nSELECT 1").startswith("nope: no such data source (known: w)")


def test_a_library_error_in_a_connector_is_one_masked_line(shell: InteractiveShell, warehouse: str) -> None:
    message = usage_error(shell, "%%dsquery w\nBUG")
    assert message == "w: ValueError: a bug with a dsn postgresql://bob:********@db/x inside"


def test_an_unexpected_error_keeps_its_traceback_without_the_secret(
    shell: InteractiveShell, session: Session, warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_query(*args: object, **kwargs: object) -> None:
        raise KeyError("postgresql://bob:" + "leaky-" + "secret-77@db/x")  # not one literal in the source

    monkeypatch.setattr(session, "query_result", broken_query)
    ran = run(shell, "%%dsquery w\nSELECT 1")
    assert isinstance(ran.error, KeyError)
    assert "Traceback" in ran.text
    assert "broken_query" in ran.text
    assert "leaky-secret-77" not in ran.text
    assert "postgresql://bob:********@db/x" in ran.text


def test_variables_are_not_expanded_in_the_line(shell: InteractiveShell, warehouse: str) -> None:
    run(shell, "x = 'expanded'")
    assert run(shell, "%dsquery w SELECT '$x', '{x}'").result.loc[0, "sql"] == "SELECT '$x', '{x}'"
    assert run(shell, "%%dsquery w -o out\nSELECT '$x {x}'").result.loc[0, "sql"] == "SELECT '$x {x}'"


@pytest.mark.usefixtures("ctrl_c")
def test_an_interrupt_shows_one_line_and_stops_the_cell(shell: InteractiveShell, shop: str) -> None:
    """Ctrl-C during a query: the cell stops, the user reads one line, the source still works."""
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))  # Ctrl-C
    timer.start()
    ran = run(shell, f"%%dsquery shop -o counted\n{endless}")
    timer.join()
    assert isinstance(ran.error, KeyboardInterrupt)
    assert ran.text.strip().splitlines() == ["KeyboardInterrupt: shop: interrupted; the query was cancelled"]
    assert "counted" not in shell.user_ns
    assert run(shell, "%%dsquery shop -o one\nSELECT 1 AS n").error is None
    assert int(shell.user_ns["one"]["n"][0]) == 1

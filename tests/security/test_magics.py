"""Every magic subcommand, and every error path, on sources whose secrets are canaries.

The secrets reach the magics the ways a user gives them (environment variables and a
hidden prompt); the checks then look for every canary in what each cell printed, showed,
returned and raised, in the log at DEBUG, and in IPython's history in memory and on disk.
"""

from __future__ import annotations

import getpass
import sqlite3
from contextlib import closing

import pytest

from deepanalyze_jupyter.redaction import MASK
from tests.security.conftest import Planted, Shell

#: Environment variables holding the canaries, as a user's notebook would read them.
ENV = {
    "CANARY_PASSWORD": "password",
    "CANARY_SSLPASSWORD": "sslpassword",
    "CANARY_SAS": "sas_token",
    "CANARY_CS_SAS": "sas_connection_string",
    "CANARY_CS_KEY": "key_connection_string",
    "CANARY_ACCOUNT_KEY": "account_key",
    "CANARY_TAMPERED_SAS": "tampered_sas",
    "CANARY_WRONG": "wrong_password",
    "CANARY_UNREACHABLE": "unreachable_password",
    "CANARY_NO_TEST": "no_test_password",
}


@pytest.fixture
def canary_env(planted: Planted, monkeypatch: pytest.MonkeyPatch) -> Planted:
    """The canaries in the environment, and a hidden prompt that answers the PostgreSQL one."""
    for variable, attribute in ENV.items():
        monkeypatch.setenv(variable, getattr(planted, attribute))

    def hidden_prompt(prompt: str = "Password: ", stream: object = None) -> str:
        return planted.password

    monkeypatch.setattr(getpass, "getpass", hidden_prompt)
    return planted


def _pg(planted: Planted) -> str:
    return (
        f"--type postgresql --host {planted.host} --port {planted.port} --dbname {planted.dbname} "
        f"--user {planted.role} --options '-c search_path={planted.schema}'"
    )


def _lake(planted: Planted) -> str:
    return f"--type azure_blob --account-url {planted.blob_endpoint} --container {planted.container}"


def test_working_sources_through_every_subcommand(
    shell: Shell, canary_env: Planted, debug_log: list[str]
) -> None:
    planted = canary_env
    pg, lake = _pg(planted), _lake(planted)
    shell.ok(f"%datasource add pg {pg} --password-env CANARY_PASSWORD --sslpassword env:CANARY_SSLPASSWORD")
    shell.ok(f"%datasource add prompted {pg} --prompt password")
    shell.ok(f"%datasource add lake {lake} --sas-token-env CANARY_SAS")
    box = f"--type azure_blob --container {planted.container}"
    shell.ok(f"%datasource add signed {box} --connection-string-env CANARY_CS_SAS")

    listing = shell.ok("%datasource list").result
    assert list(listing["status"]) == ["connected"] * 4
    info = shell.ok("%datasource info pg").result
    assert dict(zip(info["field"], info["value"], strict=True))["secret password"] == MASK
    shell.ok("%datasource info lake")
    shell.ok("%datasource info signed")
    assert shell.ok("%datasource test pg").out.startswith("pg: OK: PostgreSQL")
    shell.ok("%datasource test lake")
    shell.ok("%datasource test signed")
    assert "orders" in set(shell.ok("%datasource tables pg").result["name"])
    shell.ok(f"%datasource tables pg {planted.schema}")
    shell.ok(f"%datasource columns pg {planted.schema}.orders")
    shell.ok("%datasource ls pg")
    shell.ok(f"%datasource ls pg {planted.schema}")
    assert set(shell.ok("%datasource ls lake 2024/").result["name"]) == {"2024/jan.csv", "2024/feb.csv"}
    shell.ok("%datasource ls lake --recursive --limit 1")
    shell.ok("%datasource columns lake 2024/jan.csv")
    assert sorted(shell.ok("%datasource read lake '2024/*.csv' -o sales").result["amount"]) == [10, 20]
    shell.ok("%datasource read signed 2024/jan.csv --source-column file")
    assert list(
        shell.ok("%%dsquery pg -o orders\nSELECT id, region FROM orders ORDER BY id").result["id"]
    ) == [1, 2]
    shell.ok("region = 'EU'")
    shell.ok("%%dsquery prompted --limit 1\nSELECT * FROM orders WHERE region = :region")
    shell.ok("%dsquery pg SELECT current_user AS who")
    shell.ok("%%dsquery lake\n2024/jan.csv\n2024/feb.csv")
    shell.ok("%datasource cache clear pg")
    shell.ok("%datasource cache clear")
    shell.ok("%datasource browse")
    shell.ok("%datasource add")
    shell.ok("%datasource")
    shell.ok("%datasource add --type postgresql --help")
    shell.ok("%datasource update pg --name Warehouse")
    shell.ok("%datasource update pg --password-env CANARY_PASSWORD")
    shell.ok("%datasource update lake --sas-token-env CANARY_SAS --no-test")
    shell.ok("%datasource update prompted --prompt password")
    shell.ok("%datasource remove prompted")
    shell.ok("%datasource list")
    _check_everything(shell, planted, debug_log)


def test_every_error_path(shell: Shell, canary_env: Planted, debug_log: list[str]) -> None:
    planted = canary_env
    pg, lake = _pg(planted), _lake(planted)
    shell.ok(f"%datasource add pg {pg} --password-env CANARY_PASSWORD")
    shell.ok(f"%datasource add lake {lake} --sas-token-env CANARY_SAS")
    before = shell.ok("%datasource list").result
    shell.ok("import pandas as pd\nframe = pd.DataFrame({'a': [1]})")

    refusals = {
        f"%datasource add wrong {pg} --password-env CANARY_WRONG": "authentication failed",
        (
            f"%datasource add far --type postgresql --host 127.0.0.1 --port {planted.unreachable_port} "
            "--connect-timeout 3 --user nobody --password-env CANARY_UNREACHABLE"
        ): "cannot connect",
        (
            f"%datasource add keyed --type azure_blob --container {planted.container} "
            "--connection-string-env CANARY_CS_KEY"
        ): "refused",
        (
            f"%datasource add keyed --type azure_blob --account-url {planted.blob_endpoint} "
            "--account-key-env CANARY_ACCOUNT_KEY"
        ): "refused",
        f"%datasource add tampered {lake} --sas-token-env CANARY_TAMPERED_SAS": "refused",
        "%datasource update pg --password-env CANARY_WRONG": "authentication failed",
        "%datasource update lake --sas-token-env CANARY_TAMPERED_SAS": "refused",
        "%%dsquery pg\nSELEC 1": "syntax error",
        "%%dsquery pg\nSELECT * FROM no_such_table": "does not exist",
        "%%dsquery pg\nSELECT :not_defined_anywhere": "no variable",
        "%%dsquery pg --timeout 0.2\nSELECT pg_sleep(5)": "statement timeout",
        "%datasource columns pg no_such_table": "no table or view",
        "%datasource read lake missing.csv": "no blob",
        "%%dsquery lake\nmissing/*.csv": "no files match",
        "%datasource read lake 2024/jan.parquet": "no blob",
        "%datasource ls nope": "no such data source",
        "%datasource add pg --type nosuch": "unknown source type",
        "%datasource add pg --type sqlite --path x.db": "already registered",
        f"%datasource add leak {pg} --password-env NOT_SET_ANYWHERE_123": "is not set",
        f"%datasource write pg {planted.schema}.made frame": "read-only: nothing was written",
        "%datasource write lake made.csv frame --overwrite": "read-only: nothing was written",
    }
    for code, expected in refusals.items():
        assert expected in shell.refused(code), code
    after = shell.ok("%datasource list").result
    assert after[["id", "type", "status"]].equals(before[["id", "type", "status"]])
    # Both sources still work with their original secrets.
    shell.ok("%dsquery pg SELECT 1 AS one")
    shell.ok("%datasource ls lake --refresh")

    shell.ok(
        f"%datasource add later --type postgresql --host 127.0.0.1 --port {planted.unreachable_port} "
        "--connect-timeout 3 --user nobody --password-env CANARY_NO_TEST --no-test"
    )
    info = shell.ok("%datasource info later").result
    assert "secret password" in set(info["field"])
    assert "cannot connect" in shell.refused("%datasource test later")
    assert "cannot connect" in shell.refused("%dsquery later SELECT 1")
    assert "error: " in str(shell.ok("%datasource list").result.set_index("id").loc["later", "status"])
    shell.ok("%datasource info later")
    shell.ok("%datasource remove later")
    _check_everything(shell, planted, debug_log)


def test_a_literal_secret_is_refused_and_leaves_no_trace(
    shell: Shell, planted: Planted, debug_log: list[str]
) -> None:
    literal = planted.book.make("literal secret typed in a magic line")
    message = shell.refused(f"%datasource add leaky {_pg(planted)} --password {literal}")
    assert "refused the literal secret given to --password" in message
    message = shell.refused(
        f"%datasource add leaky --type postgresql --dsn 'postgresql://u:{literal}@{planted.host}/db'"
    )
    assert "holds a secret" in message
    assert not shell.ipython.user_ns.get("leaky")
    _check_everything(shell, planted, debug_log)


def _check_everything(shell: Shell, planted: Planted, debug_log: list[str]) -> None:
    """No canary in any cell's output, result or error, in the log, or in the history."""
    book = planted.book
    for ran in shell.ran:
        operation = ran.code.splitlines()[0].split(" --")[0]
        book.check(f"magic {operation}", ran.out, ran.err, ran.error, ran.shown, repr(ran.result))
    book.check("logging at DEBUG", debug_log)
    book.check("IPython history in memory", shell.history_texts())
    manager = shell.ipython.history_manager
    manager.writeout_cache()
    with closing(sqlite3.connect(shell.history_file)) as connection:
        inputs = connection.execute("SELECT source, source_raw FROM history").fetchall()
        outputs = connection.execute("SELECT output FROM output_history").fetchall()
    assert inputs, "the history file holds the cells"
    book.check("IPython history SQLite rows", inputs, outputs)
    book.check_file("IPython history SQLite file", shell.history_file)

"""With external servers configured, the tests that stop a server still run (on one of their own).

A run given DEEPANALYZE_TEST_PG_DSN and DEEPANALYZE_TEST_AZURE_CONN (here: this session's own
servers) must not skip the stop/restart tests: under CI=true a skipped promise is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import AzuriteServer, PostgresServer
from tests.services.azurite import EXTERNAL_CONN_ENV
from tests.services.postgres import EXTERNAL_DSN_ENV

ROOT = Path(__file__).resolve().parents[2]
#: One test of each kind that stops the server it uses.
STOPPING_TESTS = (
    "tests/faults/test_postgres.py::test_a_stopped_server_fails_fast_and_the_source_works_after_restart[crashed]",
    "tests/faults/test_azurite.py::test_a_stopped_service_fails_fast_and_the_source_works_after_restart",
)


@pytest.mark.timeout(300)
def test_stop_and_restart_tests_run_on_their_own_servers_when_external_ones_are_given(
    pg_server: PostgresServer, azurite: AzuriteServer
) -> None:
    env = {
        **os.environ,
        EXTERNAL_DSN_ENV: pg_server.dsn,
        EXTERNAL_CONN_ENV: azurite.connection_string,
        "CI": "true",
    }
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", *STOPPING_TESTS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    summary = ran.stdout.strip().splitlines()[-1]
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert "2 passed" in summary
    assert "skipped" not in summary
    # The servers given were left running: the tests stopped their own.
    assert pg_server.is_running()
    assert azurite.is_running()

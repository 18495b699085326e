"""Real services for the integration tests: PostgreSQL and Azurite (Azure Blob Storage).

Plain classes, turned into session fixtures by tests/conftest.py. Each service is taken from an
environment variable when set (DEEPANALYZE_TEST_PG_DSN, DEEPANALYZE_TEST_AZURE_CONN), else started
from this machine's programs; `start_*` raise ServiceUnavailable when those are not installed.
"""

from tests.services.azurite import EXTERNAL_CONN_ENV as EXTERNAL_AZURE_CONN_ENV
from tests.services.azurite import (
    AzuriteServer,
    install_pinned_npm_packages,
    start_azurite,
    start_own_azurite,
)
from tests.services.postgres import PostgresServer, start_own_postgres, start_postgres
from tests.services.process import ServiceUnavailable

__all__ = [
    "EXTERNAL_AZURE_CONN_ENV",
    "AzuriteServer",
    "PostgresServer",
    "ServiceUnavailable",
    "install_pinned_npm_packages",
    "start_azurite",
    "start_own_azurite",
    "start_own_postgres",
    "start_postgres",
]

"""Fixtures of the core's unit tests: a fake service, its connector and a registry using it."""

from __future__ import annotations

from typing import Any

import pytest

from deepanalyze_jupyter.models import DataSourceConfig, Secret
from deepanalyze_jupyter.registry import DataSourceRegistry
from tests.core.fakes import FakeConnector, FakeService, fake_connector_class

#: A password long enough for the redactor, with characters that need quoting in URIs and DSNs.
PASSWORD = "Tr0ub4dor&3 it's @/:secret"
#: A second password, for rotation.
NEW_PASSWORD = "c0rrect-h0rse-battery-staple"


@pytest.fixture
def service() -> FakeService:
    """The pretend server of one test."""
    return FakeService()


@pytest.fixture
def fake_class(service: FakeService) -> type[FakeConnector]:
    """A fake connector class bound to this test's service."""
    return fake_connector_class(service)


@pytest.fixture
def registry(fake_class: type[FakeConnector]) -> DataSourceRegistry:
    """A registry without entry-point discovery, knowing the fake connector."""
    registry = DataSourceRegistry(discover=False)
    registry.register_connector_class(fake_class)
    return registry


def fake_config(
    source_id: str = "db", *, password: str | None = PASSWORD, **options: Any
) -> DataSourceConfig:
    """A config for the fake connector, with a password unless told otherwise."""
    secrets = {} if password is None else {"password": Secret(password)}
    return DataSourceConfig(
        id=source_id, type="fake", options={"host": "db.example", **options}, secrets=secrets
    )

"""The one error tree: its shape, its one-line messages, and that they name the source."""

from __future__ import annotations

import asyncio
import inspect
import pickle

import pytest

import deepanalyze_jupyter
from deepanalyze_jupyter import errors
from deepanalyze_jupyter.errors import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    CredentialError,
    DataSourceError,
    DataSourceExists,
    DataSourceNotFound,
    RegistryError,
    UnknownSourceType,
)
from deepanalyze_jupyter.models import DataSourceConfig
from deepanalyze_jupyter.registry import DataSourceRegistry
from tests.core.conftest import fake_config

ERROR_CLASSES = [
    value
    for value in vars(errors).values()
    if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == errors.__name__
]

#: The tree drawn in the errors module's docstring: class -> parent.
EXPECTED_PARENTS = {
    "ConfigurationError": "DataSourceError",
    "UnknownSourceType": "ConfigurationError",
    "RegistryError": "DataSourceError",
    "DataSourceExists": "RegistryError",
    "DataSourceNotFound": "RegistryError",
    "CredentialError": "DataSourceError",
    "ConnectionFailed": "DataSourceError",
    "AuthenticationFailed": "ConnectionFailed",
    "ItemNotFound": "DataSourceError",
    "QueryError": "DataSourceError",
    "WriteConflict": "QueryError",
    "FormatError": "DataSourceError",
    "OperationCancelled": "DataSourceError",
}


def test_every_error_derives_from_one_root() -> None:
    assert DataSourceError.__bases__ == (Exception,)
    for cls in ERROR_CLASSES:
        assert issubclass(cls, DataSourceError), cls


def test_the_tree_is_the_documented_one() -> None:
    actual = {cls.__name__: cls.__bases__[0].__name__ for cls in ERROR_CLASSES if cls is not DataSourceError}
    assert actual == EXPECTED_PARENTS
    for name in EXPECTED_PARENTS:
        assert name in (errors.__doc__ or "")


def test_every_error_is_exported_by_the_package() -> None:
    names = {cls.__name__ for cls in ERROR_CLASSES}
    assert names == set(errors.__all__)
    for name in names:
        assert getattr(deepanalyze_jupyter, name) is getattr(errors, name)
        assert name in deepanalyze_jupyter.__all__


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_message_names_the_source_on_one_line(cls: type[DataSourceError]) -> None:
    error = cls("something went wrong", source="shop")
    assert str(error) == "shop: something went wrong"
    assert error.args == ("shop: something went wrong",)
    assert (error.message, error.source) == ("something went wrong", "shop")
    assert "\n" not in str(error)


def test_message_without_a_source() -> None:
    assert str(ConfigurationError("no key")) == "no key"


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_errors_survive_pickling(cls: type[DataSourceError]) -> None:
    copy = pickle.loads(pickle.dumps(cls("gone", source="shop")))
    assert type(copy) is cls
    assert (copy.message, copy.source, str(copy)) == ("gone", "shop", "shop: gone")


def test_authentication_failure_is_a_connection_failure() -> None:
    assert issubclass(AuthenticationFailed, ConnectionFailed)
    assert issubclass(UnknownSourceType, ConfigurationError)
    assert issubclass(DataSourceNotFound, RegistryError)


def test_registry_errors_name_the_source(registry: DataSourceRegistry) -> None:
    async def scenario() -> None:
        await registry.register_data_source(fake_config("shop"))
        with pytest.raises(DataSourceExists, match=r"^shop: "):
            await registry.register_data_source(fake_config("shop"))
        with pytest.raises(DataSourceNotFound, match=r"^nowhere: no such data source \(known: shop\)$"):
            await registry.get_connector("nowhere")
        with pytest.raises(UnknownSourceType, match=r"^other: unknown source type 'mystery'; known types: "):
            await registry.register_data_source(DataSourceConfig(id="other", type="mystery", options={}))
        with pytest.raises(ConfigurationError, match=r"^other: unknown option 'colour' for a fake source"):
            await registry.register_data_source(fake_config("other", colour="red"))
        with pytest.raises(ConfigurationError, match=r"^other: missing required option 'host'$"):
            await registry.register_data_source(DataSourceConfig(id="other", type="fake", options={}))

    asyncio.run(scenario())


def test_credential_errors_name_the_source_and_field(registry: DataSourceRegistry) -> None:
    async def scenario() -> None:
        await registry.register_data_source(fake_config("shop"), test_connection=False)
        stored = registry._sources["shop"].secrets
        foreign = DataSourceRegistry(discover=False).credentials
        with pytest.raises(CredentialError, match=r"^shop: the stored password cannot be decrypted"):
            foreign.decrypt(stored.tokens["password"], source="shop", field="password")

    asyncio.run(scenario())

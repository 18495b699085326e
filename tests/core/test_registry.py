"""The registry: connector types, registering, updating, connecting and the metadata cache."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import textwrap
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest

from deepanalyze_jupyter.connectors import BUILTIN_CONNECTORS, ENTRY_POINT_GROUP
from deepanalyze_jupyter.errors import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    DataSourceExists,
    DataSourceNotFound,
    QueryError,
    UnknownSourceType,
)
from deepanalyze_jupyter.models import DataSourceConfig, Secret
from deepanalyze_jupyter.redaction import MASK
from deepanalyze_jupyter.registry import DEFAULT_ROW_LIMIT, DataSourceRegistry
from tests.core.conftest import NEW_PASSWORD, PASSWORD, fake_config
from tests.core.fakes import FakeConnector, FakeService, fake_connector_class

T = TypeVar("T")

#: Upper bound for waits that only guard against a hang; never a speed requirement.
HANG_GUARD = 10.0


async def fake_connector(registry: DataSourceRegistry, source_id: str) -> FakeConnector:
    """``registry.get_connector`` for a fake source, typed as the fake it is."""
    connector = await registry.get_connector(source_id)
    assert isinstance(connector, FakeConnector)
    return connector


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    """Run an async test scenario on a fresh event loop."""

    async def main() -> T:
        return await scenario()

    return asyncio.run(main())


async def settle() -> None:
    """Let every task that is ready run until it waits again."""
    for _ in range(20):
        await asyncio.sleep(0)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- connector types ---------------------------------------------------------------------------


class TestConnectorTypes:
    def test_builtin_types_are_known_without_importing_them(self) -> None:
        registry = DataSourceRegistry(discover=False)
        assert set(BUILTIN_CONNECTORS) <= set(registry.source_types)
        assert registry.source_types == sorted(registry.source_types)

    def test_register_connector_class(self, service: FakeService) -> None:
        registry = DataSourceRegistry(discover=False)
        cls = fake_connector_class(service, "custom")
        registry.register_connector_class(cls)
        registry.register_connector_class(cls)  # the same class again is harmless
        assert "custom" in registry.source_types
        assert registry.connector_class("custom") is cls

    def test_a_type_is_not_taken_over_silently(self, service: FakeService) -> None:
        registry = DataSourceRegistry(discover=False)
        first, second = fake_connector_class(service, "custom"), fake_connector_class(service, "custom")
        registry.register_connector_class(first)
        with pytest.raises(ConfigurationError, match="type 'custom' is already registered"):
            registry.register_connector_class(second)
        assert registry.connector_class("custom") is first
        registry.register_connector_class(second, replace=True)
        assert registry.connector_class("custom") is second

    def test_only_connectors_can_be_registered(self) -> None:
        registry = DataSourceRegistry(discover=False)
        with pytest.raises(ConfigurationError, match="is not a Connector subclass"):
            registry.register_connector_class(dict)  # type: ignore[arg-type]

    def test_unknown_type(self) -> None:
        registry = DataSourceRegistry(discover=False)
        with pytest.raises(UnknownSourceType, match="unknown source type 'nope'; known types: azure_blob"):
            registry.connector_class("nope")

    def test_an_unknown_type_close_to_a_known_one_is_named(self) -> None:
        registry = DataSourceRegistry(discover=False)
        with pytest.raises(UnknownSourceType) as caught:
            registry.connector_class("postgres", source="pg")
        assert str(caught.value) == "pg: unknown source type 'postgres'; did you mean postgresql?"


THIRD_PARTY_MODULE = """
from deepanalyze_jupyter.connectors import Connector


class ThirdPartyConnector(Connector):
    type_name = "thirdparty"
    display_name = "Third party"
    kind = "files"

    async def connect(self):
        self.connected = True

    async def disconnect(self):
        self.connected = False

    async def test_connection(self):
        return "third party connector answered"

    async def list_items(self, prefix=None, *, recursive=False, limit=None):
        raise NotImplementedError


NotAConnector = object()
"""


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An installed distribution declaring connectors in the registry's entry-point group."""
    module = "deepanalyze_thirdparty_connector"
    (tmp_path / f"{module}.py").write_text(THIRD_PARTY_MODULE)
    dist_info = tmp_path / "deepanalyze_thirdparty-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: deepanalyze-thirdparty\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""
            [{ENTRY_POINT_GROUP}]
            thirdparty = {module}:ThirdPartyConnector
            postgresql = {module}:ThirdPartyConnector
            broken = {module}_missing:Nothing
            notconnector = {module}:NotAConnector
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    yield module
    sys.modules.pop(module, None)


class TestDiscovery:
    def test_entry_points_add_types_loaded_on_first_use(self, third_party: str) -> None:
        registry = DataSourceRegistry()
        assert {"thirdparty", "broken", "notconnector"} <= set(registry.source_types)
        assert third_party not in sys.modules
        cls = registry.connector_class("thirdparty")
        assert cls.__name__ == "ThirdPartyConnector"
        assert cls.__module__ == third_party

        async def scenario() -> str:
            await registry.register_data_source(DataSourceConfig(id="tp", type="thirdparty"))
            return await registry.test_connection("tp")

        assert run(scenario) == "third party connector answered"

    def test_an_entry_point_does_not_replace_a_builtin(self, third_party: str) -> None:
        registry = DataSourceRegistry()
        assert registry.connector_types._targets["postgresql"] == BUILTIN_CONNECTORS["postgresql"]

    def test_discover_reports_what_it_added_once(self, third_party: str) -> None:
        registry = DataSourceRegistry(discover=False)
        assert "thirdparty" not in registry.source_types
        assert set(registry.discover_connectors()) == {"thirdparty", "broken", "notconnector"}
        assert registry.discover_connectors() == []

    def test_a_broken_entry_point_fails_only_when_used(self, third_party: str) -> None:
        registry = DataSourceRegistry()
        with pytest.raises(ConfigurationError, match="the connector for type 'broken' cannot be loaded"):
            registry.connector_class("broken")
        with pytest.raises(ConfigurationError, match="'notconnector' is not a Connector subclass"):
            registry.connector_class("notconnector")

        async def scenario() -> None:
            with pytest.raises(ConfigurationError, match=r"^b: the connector for type 'broken' cannot be"):
                await registry.register_data_source(DataSourceConfig(id="b", type="broken"))

        run(scenario)
        assert not registry.exists("b")


# -- registering ---------------------------------------------------------------------------------


class TestRegister:
    def test_register_connects_and_returns_the_sanitized_config(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> DataSourceConfig:
            return await registry.register_data_source(fake_config("shop", port="6543"))

        config = run(scenario)
        assert service.connects == ["shop"]
        assert service.passwords_seen == [PASSWORD]
        assert config.options == {"host": "db.example", "port": 6543, "database": "main"}
        assert config.secrets == {"password": Secret(MASK)}
        assert registry.exists("shop")
        assert "shop" in registry
        assert len(registry) == 1
        assert registry.source_ids == ["shop"]
        assert registry.status("shop") == "connected"

    def test_without_test_connection_nothing_connects(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        run(lambda: registry.register_data_source(fake_config("shop"), test_connection=False))
        assert service.connects == []
        assert registry.status("shop") == "not connected"

    def test_a_secret_given_as_an_option_is_moved_into_the_secrets(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        config = DataSourceConfig(id="shop", type="fake", options={"host": "h", "password": PASSWORD})
        stored = run(lambda: registry.register_data_source(config))
        assert "password" not in stored.options
        assert "password" in stored.secrets
        assert service.passwords_seen == [PASSWORD]

    def test_duplicate_ids_are_refused(self, registry: DataSourceRegistry, service: FakeService) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop", port=1))
            with pytest.raises(
                DataSourceExists, match=r"^shop: a data source with this id is already registered$"
            ):
                await registry.register_data_source(fake_config("shop", port=2))

        run(scenario)
        assert registry.get_config("shop").options["port"] == 1
        assert service.connects == ["shop"]

    def test_an_id_being_registered_is_taken(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            gate = service.gate("shop")
            first = asyncio.create_task(registry.register_data_source(fake_config("shop")))
            await service.started("shop").wait()
            with pytest.raises(DataSourceExists):
                await registry.register_data_source(fake_config("shop"))
            gate.set()
            await first

        run(scenario)
        assert registry.source_ids == ["shop"]

    def test_unknown_types_are_refused(self, registry: DataSourceRegistry) -> None:
        config = DataSourceConfig(id="shop", type="oracle", options={"host": "h"})
        with pytest.raises(
            UnknownSourceType, match=r"^shop: unknown source type 'oracle'; known types: .*fake"
        ):
            run(lambda: registry.register_data_source(config))
        assert registry.source_ids == []

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"colour": "red"}, "unknown option 'colour' for a fake source"),
            ({"port": "many"}, "option 'port' must be a whole number, got 'many'"),
        ],
    )
    def test_invalid_options_are_refused(
        self, registry: DataSourceRegistry, service: FakeService, options: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=f"^shop: {message}"):
            run(lambda: registry.register_data_source(fake_config("shop", **options)))
        assert registry.source_ids == []
        assert service.connects == []

    def test_an_unknown_secret_field_is_refused(self, registry: DataSourceRegistry) -> None:
        config = DataSourceConfig(
            id="shop", type="fake", options={"host": "h"}, secrets={"host": Secret("x")}
        )
        with pytest.raises(ConfigurationError, match="'host' is not a secret field of a fake source"):
            run(lambda: registry.register_data_source(config))

    def test_a_failed_test_leaves_nothing_registered(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        service.accepted_password = NEW_PASSWORD
        with pytest.raises(AuthenticationFailed, match=r"^shop: password authentication failed$"):
            run(lambda: registry.register_data_source(fake_config("shop")))
        assert not registry.exists("shop")
        assert registry.list_data_sources() == []
        assert registry.sources_frame().empty
        assert registry.redactor.contains_secret(PASSWORD)  # typed once: masked for good
        assert service.open_connections() == 0
        # The id is free again.
        service.accepted_password = PASSWORD
        run(lambda: registry.register_data_source(fake_config("shop")))
        assert registry.exists("shop")

    def test_a_library_error_in_the_test_is_wrapped(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        service.connect_errors["shop"] = OSError("connection refused by db.example:5432")
        with pytest.raises(
            ConnectionFailed, match=r"^shop: OSError: connection refused by db.example:5432$"
        ) as e:
            run(lambda: registry.register_data_source(fake_config("shop")))
        assert isinstance(e.value.__cause__, OSError)
        assert not registry.exists("shop")

    def test_a_cancelled_registration_leaves_nothing(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            service.gate("shop")
            task = asyncio.create_task(registry.register_data_source(fake_config("shop")))
            await service.started("shop").wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        run(scenario)
        assert not registry.exists("shop")
        assert registry.redactor.contains_secret(PASSWORD)  # typed once: masked for good


class TestConfigs:
    def test_get_config_is_sanitized_unless_asked(self, registry: DataSourceRegistry) -> None:
        run(lambda: registry.register_data_source(fake_config("shop"), test_connection=False))
        masked = registry.get_config("shop")
        assert masked.secrets == {"password": Secret(MASK)}
        assert PASSWORD not in repr(masked)
        revealed = registry.get_config("shop", decrypt=True)
        assert revealed.secrets["password"].reveal() == PASSWORD
        assert PASSWORD not in repr(revealed)  # still a Secret: shown masked

    def test_list_data_sources(self, registry: DataSourceRegistry) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("b"), test_connection=False)
            await registry.register_data_source(fake_config("a", password=None), test_connection=False)

        run(scenario)
        listed = registry.list_data_sources()
        assert [config.id for config in listed] == ["b", "a"]
        assert listed[0].secrets == {"password": Secret(MASK)}
        assert listed[1].secrets == {}

    def test_sources_frame(self, registry: DataSourceRegistry, service: FakeService) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("up"))
            await registry.register_data_source(fake_config("idle"), test_connection=False)
            await registry.register_data_source(fake_config("down"), test_connection=False)
            service.connect_errors["down"] = OSError("no route to host")
            with pytest.raises(ConnectionFailed):
                await registry.get_connector("down")

        run(scenario)
        frame = registry.sources_frame()
        assert list(frame.columns) == ["id", "type", "name", "status", "last_success", "created"]
        assert frame["status"].tolist() == ["connected", "not connected", "error: OSError: no route to host"]
        assert frame["last_success"].notna().tolist() == [True, False, False]
        assert isinstance(frame["last_success"].dtype, pd.DatetimeTZDtype)
        assert str(frame["id"].dtype) == "string"
        assert isinstance(frame["created"].dtype, pd.DatetimeTZDtype)
        assert PASSWORD not in frame.to_string()

    def test_unknown_ids(self, registry: DataSourceRegistry) -> None:
        with pytest.raises(
            DataSourceNotFound, match=r"^ghost: no such data source \(known: none registered\)$"
        ):
            registry.get_config("ghost")
        with pytest.raises(DataSourceNotFound):
            registry.status("ghost")
        with pytest.raises(DataSourceNotFound):
            run(lambda: registry.unregister_data_source("ghost"))
        with pytest.raises(DataSourceNotFound):
            run(lambda: registry.update_data_source("ghost", options={"port": 1}))
        with pytest.raises(DataSourceNotFound):
            run(lambda: registry.disconnect("ghost"))
        assert not registry.exists("ghost")


class TestUnregister:
    def test_unregister_disconnects_and_forgets(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            registry.cache_metadata("shop", "k", "v")
            await registry.unregister_data_source("shop")

        run(scenario)
        assert service.disconnects == ["shop"]
        assert service.open_connections() == 0
        assert not registry.exists("shop")
        assert registry.cache.get("shop", "k") is None
        assert registry.redactor.contains_secret(PASSWORD)  # still masked: it may be printed later
        run(lambda: registry.register_data_source(fake_config("shop")))
        assert registry.exists("shop")

    def test_a_failing_disconnect_still_forgets(
        self, registry: DataSourceRegistry, service: FakeService, caplog: pytest.LogCaptureFixture
    ) -> None:
        service.disconnect_errors["shop"] = RuntimeError(f"socket closed while sending {PASSWORD}")

        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            await registry.unregister_data_source("shop")

        run(scenario)
        assert not registry.exists("shop")
        assert "closing 'shop' failed: socket closed" in caplog.text
        assert PASSWORD not in caplog.text


class TestUpdate:
    def test_rotating_the_password_keeps_the_id(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            original = await registry.register_data_source(fake_config("shop", port=1))
            old = await fake_connector(registry, "shop")
            service.accepted_password = NEW_PASSWORD
            updated = await registry.update_data_source("shop", secrets={"password": NEW_PASSWORD})
            assert updated.id == "shop"
            assert updated.created_at == original.created_at
            assert updated.options == original.options
            assert not old.connected
            new = await fake_connector(registry, "shop")
            assert new is not old
            assert new.connected

        run(scenario)
        assert service.passwords_seen == [PASSWORD, NEW_PASSWORD]
        assert registry.get_config("shop", decrypt=True).secrets["password"].reveal() == NEW_PASSWORD
        assert service.open_connections() == 1

    def test_changing_options_keeps_the_secrets(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> DataSourceConfig:
            await registry.register_data_source(fake_config("shop", port=1))
            return await registry.update_data_source("shop", options={"port": "2"}, name="Shop EU")

        updated = run(scenario)
        assert updated.options["port"] == 2
        assert updated.name == "Shop EU"
        assert service.passwords_seen == [PASSWORD, PASSWORD]
        assert registry.get_config("shop", decrypt=True).secrets["password"].reveal() == PASSWORD

    def test_removing_an_option_and_a_secret(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        config = DataSourceConfig(
            id="shop",
            type="fake",
            options={"host": "h", "database": "x"},
            secrets={"password": Secret(PASSWORD), "token": Secret("token-value-1")},
        )

        async def scenario() -> DataSourceConfig:
            await registry.register_data_source(config)
            return await registry.update_data_source(
                "shop", options={"database": None}, secrets={"token": ""}
            )

        updated = run(scenario)
        assert updated.options["database"] == "main"  # back to the default
        assert set(updated.secrets) == {"password"}

    def test_metadata_can_be_replaced(self, registry: DataSourceRegistry) -> None:
        async def scenario() -> DataSourceConfig:
            await registry.register_data_source(fake_config("shop"))
            return await registry.update_data_source("shop", metadata={"owner": "ana"}, test_connection=False)

        assert run(scenario).metadata == {"owner": "ana"}

    def test_a_failed_update_leaves_the_source_as_it_was(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            service.accepted_password = PASSWORD
            await registry.register_data_source(fake_config("shop", port=1))
            registry.cache_metadata("shop", "tables", ["a"])
            before = registry.get_config("shop")
            connector = await fake_connector(registry, "shop")
            with pytest.raises(AuthenticationFailed, match=r"^shop: password authentication failed$"):
                await registry.update_data_source(
                    "shop", options={"port": 2}, secrets={"password": NEW_PASSWORD}
                )
            with pytest.raises(ConfigurationError, match="unknown option 'colour'"):
                await registry.update_data_source("shop", options={"colour": "red"})
            after = registry.get_config("shop")
            assert (after.options, after.secrets, after.name) == (before.options, before.secrets, before.name)
            assert registry.get_config("shop", decrypt=True).secrets["password"].reveal() == PASSWORD
            assert await registry.get_connector("shop") is connector
            assert connector.connected
            assert registry.get_cached_metadata("shop", "tables") == ["a"]
            assert registry.redactor.contains_secret(NEW_PASSWORD)  # a refused secret stays masked too

        run(scenario)
        assert service.connects == ["shop", "shop"]  # the registration, and the refused update

    def test_an_update_clears_the_cache(self, registry: DataSourceRegistry) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            registry.cache_metadata("shop", "tables", ["a"])
            await registry.update_data_source("shop", options={"port": 7})

        run(scenario)
        assert registry.get_cached_metadata("shop", "tables") is None

    def test_a_source_removed_during_its_update(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            gate = service.gate("shop")
            service.connect_started.clear()  # forget the registration's connect
            update = asyncio.create_task(registry.update_data_source("shop", options={"port": 2}))
            await service.started("shop").wait()
            await registry.unregister_data_source("shop")
            gate.set()
            with pytest.raises(DataSourceNotFound, match="removed while it was being updated"):
                await update

        run(scenario)
        assert service.open_connections() == 0


# -- connections ---------------------------------------------------------------------------------


class TestGetConnector:
    def test_connects_lazily_and_reuses(self, registry: DataSourceRegistry, service: FakeService) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"), test_connection=False)
            assert service.connects == []
            first = await registry.get_connector("shop")
            second = await registry.get_connector("shop")
            assert first is second
            assert isinstance(first, FakeConnector)

        run(scenario)
        assert service.connects == ["shop"]

    def test_reconnects_when_the_connection_died(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            first = await fake_connector(registry, "shop")
            service.drop_connections("shop")
            second = await fake_connector(registry, "shop")
            assert second is not first
            assert not first.connected
            assert await second.is_alive()

        run(scenario)
        assert service.connects == ["shop", "shop"]
        assert service.open_connections("shop") == 1

    def test_a_failing_liveness_check_means_reconnect(
        self, registry: DataSourceRegistry, service: FakeService, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            first = await fake_connector(registry, "shop")

            async def broken_check() -> bool:
                raise OSError("server closed the connection unexpectedly")

            monkeypatch.setattr(first, "is_alive", broken_check)
            second = await fake_connector(registry, "shop")
            assert second is not first
            assert second.connected

        run(scenario)
        assert service.connects == ["shop", "shop"]

    def test_a_failed_reconnect_is_reported_and_retried(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            service.drop_connections("shop")
            service.connect_errors["shop"] = OSError("server restarting")
            with pytest.raises(ConnectionFailed, match="server restarting"):
                await registry.get_connector("shop")
            assert registry.status("shop") == "error: OSError: server restarting"
            del service.connect_errors["shop"]
            await registry.get_connector("shop")
            assert registry.status("shop") == "connected"

        run(scenario)
        assert service.connects == ["shop", "shop", "shop"]

    def test_fifty_concurrent_callers_share_one_connect(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"), test_connection=False)
            gate = service.gate("shop")
            tasks = [asyncio.create_task(registry.get_connector("shop")) for _ in range(50)]
            await service.started("shop").wait()
            await settle()
            assert not any(task.done() for task in tasks)
            gate.set()
            connectors = await asyncio.wait_for(asyncio.gather(*tasks), HANG_GUARD)
            assert all(connector is connectors[0] for connector in connectors)

        run(scenario)
        assert service.connects == ["shop"]

    def test_concurrent_callers_after_a_drop_share_one_reconnect(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            service.drop_connections("shop")
            results = await asyncio.gather(*(registry.get_connector("shop") for _ in range(50)))
            assert len({id(connector) for connector in results}) == 1

        run(scenario)
        assert service.connects == ["shop", "shop"]

    def test_a_slow_source_does_not_delay_another(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("slow"), test_connection=False)
            await registry.register_data_source(fake_config("fast"), test_connection=False)
            gate = service.gate("slow")
            slow = asyncio.create_task(fake_connector(registry, "slow"))
            await service.started("slow").wait()
            # The slow connect goes on only once the fast one is done: a shared lock would hang here.
            fast = await asyncio.wait_for(fake_connector(registry, "fast"), HANG_GUARD)
            assert fast.connected
            assert not slow.done()
            gate.set()
            assert (await slow).connected

        run(scenario)
        assert service.connects == ["slow", "fast"]

    def test_a_slow_registration_does_not_delay_others(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("ready"), test_connection=False)
            gate = service.gate("slow")
            slow = asyncio.create_task(registry.register_data_source(fake_config("slow")))
            await service.started("slow").wait()
            await asyncio.wait_for(registry.register_data_source(fake_config("other")), HANG_GUARD)
            await asyncio.wait_for(registry.get_connector("ready"), HANG_GUARD)
            assert registry.list_data_sources()
            assert not slow.done()
            gate.set()
            await slow

        run(scenario)
        assert registry.source_ids == ["ready", "other", "slow"]

    def test_unregister_during_a_connect_leaves_no_connection(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"), test_connection=False)
            gate = service.gate("shop")
            connecting = asyncio.create_task(registry.get_connector("shop"))
            await service.started("shop").wait()
            await asyncio.wait_for(registry.unregister_data_source("shop"), HANG_GUARD)
            gate.set()
            with pytest.raises(DataSourceNotFound, match="removed while it was connecting"):
                await connecting

        run(scenario)
        assert service.open_connections() == 0

    def test_an_update_during_a_connect_leaves_one_connection(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"), test_connection=False)
            gate = service.gate("shop")
            connecting = asyncio.create_task(registry.get_connector("shop"))
            await service.started("shop").wait()
            await registry.update_data_source("shop", options={"port": 9}, test_connection=False)
            gate.set()
            with pytest.raises(DataSourceNotFound, match="removed while it was connecting"):
                await connecting
            assert (await registry.get_connector("shop")).options["port"] == 9

        run(scenario)
        assert service.open_connections() == 1

    def test_an_update_tested_during_a_connect_closes_the_old_connection(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"), test_connection=False)
            gate = service.gate("shop")
            connecting = asyncio.create_task(registry.get_connector("shop"))
            await service.started("shop").wait()
            update = asyncio.create_task(registry.update_data_source("shop", options={"port": 9}))
            await settle()
            gate.set()
            await asyncio.wait_for(asyncio.gather(connecting, update, return_exceptions=True), HANG_GUARD)
            assert (await registry.get_connector("shop")).options["port"] == 9

        run(scenario)
        assert service.open_connections() == 1


class TestConnectionOperations:
    def test_test_connection(self, registry: DataSourceRegistry, service: FakeService) -> None:
        async def scenario() -> str:
            await registry.register_data_source(fake_config("shop", port=7), test_connection=False)
            return await registry.test_connection("shop")

        assert run(scenario) == "fake server at db.example:7"
        assert service.connects == ["shop"]

    def test_test_connection_failure(self, registry: DataSourceRegistry, service: FakeService) -> None:
        service.connect_errors["shop"] = TimeoutError("timed out")

        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"), test_connection=False)
            with pytest.raises(ConnectionFailed, match=r"^shop: TimeoutError: timed out$"):
                await registry.test_connection("shop")

        run(scenario)

    def test_disconnect_and_disconnect_all(self, registry: DataSourceRegistry, service: FakeService) -> None:
        service.disconnect_errors["b"] = RuntimeError("already closed")

        async def scenario() -> None:
            for source_id in ("a", "b", "c"):
                await registry.register_data_source(fake_config(source_id))
            await registry.disconnect("a")
            assert registry.status("a") == "not connected"
            await registry.disconnect_all()
            assert [registry.status(s) for s in ("a", "b", "c")] == ["not connected"] * 3
            assert service.open_connections() == 0
            await registry.get_connector("c")  # and connects again on the next use

        run(scenario)
        assert sorted(service.disconnects) == ["a", "b", "c"]
        assert service.connects == ["a", "b", "c", "c"]


class TestOperations:
    def test_query_applies_the_row_limit(self, registry: DataSourceRegistry) -> None:
        async def scenario() -> list[pd.DataFrame]:
            await registry.register_data_source(fake_config("shop"))
            return [
                await registry.query("shop", "SELECT 1"),
                await registry.query("shop", "SELECT 1", limit=3),
                await registry.query("shop", "SELECT 1", limit=None),
            ]

        default, limited, unlimited = run(scenario)
        assert default["limit"].iloc[0] == DEFAULT_ROW_LIMIT
        assert len(limited) == 3
        assert len(unlimited) == 10

    def test_the_default_row_limit_is_configurable(self, fake_class: type[FakeConnector]) -> None:
        registry = DataSourceRegistry(discover=False, default_row_limit=4)
        registry.register_connector_class(fake_class)

        async def scenario() -> pd.DataFrame:
            await registry.register_data_source(fake_config("shop"))
            return await registry.query("shop", "SELECT 1")

        assert len(run(scenario)) == 4

    def test_read_list_and_describe(self, registry: DataSourceRegistry) -> None:
        async def scenario() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
            await registry.register_data_source(fake_config("shop"))
            return (
                await registry.read("shop", "a.csv", format="csv"),
                await registry.list_items("shop", "b"),
                await registry.describe("shop", "alpha"),
            )

        read, listed, described = run(scenario)
        assert read.to_dict("list") == {"path": ["a.csv"], "format": ["csv"]}
        assert listed["name"].tolist() == ["beta"]
        assert described["item"].tolist() == ["alpha"]

    def test_library_errors_become_query_errors(self, registry: DataSourceRegistry, monkeypatch: Any) -> None:
        async def failing_query(self: FakeConnector, sql: str, *args: Any, **kwargs: Any) -> pd.DataFrame:
            raise ValueError('relation "nope" does not exist\nLINE 1: SELECT * FROM nope')

        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            monkeypatch.setattr(registry.connector_class("fake"), "query", failing_query)
            with pytest.raises(
                QueryError, match=r'^shop: ValueError: relation "nope" does not exist$'
            ) as caught:
                await registry.query("shop", "SELECT * FROM nope")
            assert isinstance(caught.value.__cause__, ValueError)

        run(scenario)

    def test_package_errors_pass_through_unchanged(
        self, registry: DataSourceRegistry, monkeypatch: Any
    ) -> None:
        error = QueryError("permission denied for table orders", source="shop")

        async def failing_query(self: FakeConnector, sql: str, *args: Any, **kwargs: Any) -> pd.DataFrame:
            raise error

        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            monkeypatch.setattr(registry.connector_class("fake"), "query", failing_query)
            with pytest.raises(QueryError) as caught:
                await registry.query("shop", "SELECT * FROM orders")
            assert caught.value is error

        run(scenario)

    def test_cancelling_an_operation_propagates_and_keeps_the_connector(
        self, registry: DataSourceRegistry, monkeypatch: Any
    ) -> None:
        started = asyncio.Event()

        async def endless_query(self: FakeConnector, sql: str, *args: Any, **kwargs: Any) -> pd.DataFrame:
            started.set()
            await asyncio.sleep(3600)
            raise AssertionError("not reached")

        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            connector = await registry.get_connector("shop")
            monkeypatch.setattr(registry.connector_class("fake"), "query", endless_query)
            task = asyncio.create_task(registry.query("shop", "SELECT pg_sleep(3600)"))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await registry.get_connector("shop") is connector

        run(scenario)


# -- metadata cache ------------------------------------------------------------------------------


class TestMetadataCache:
    def test_the_default_clock_is_monotonic(self) -> None:
        assert inspect.signature(DataSourceRegistry).parameters["clock"].default is time.monotonic
        assert DataSourceRegistry(discover=False).cache._clock is time.monotonic

    def test_entries_expire_exactly_at_the_ttl(self, fake_class: type[FakeConnector]) -> None:
        clock = FakeClock()
        registry = DataSourceRegistry(discover=False, cache_ttl=30.0, clock=clock)
        registry.register_connector_class(fake_class)
        run(lambda: registry.register_data_source(fake_config("shop"), test_connection=False))
        registry.cache_metadata("shop", ("tables", "public"), ["orders"])
        clock.now += 29.999
        assert registry.get_cached_metadata("shop", ("tables", "public")) == ["orders"]
        clock.now += 0.001
        assert registry.get_cached_metadata("shop", ("tables", "public")) is None

    def test_cache_for_unknown_sources_is_refused(self, registry: DataSourceRegistry) -> None:
        with pytest.raises(DataSourceNotFound):
            registry.cache_metadata("ghost", "k", 1)
        with pytest.raises(DataSourceNotFound):
            registry.clear_cache("ghost")
        assert registry.get_cached_metadata("ghost", "k") is None

    def test_clear_one_source_or_all(self, registry: DataSourceRegistry) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("a"), test_connection=False)
            await registry.register_data_source(fake_config("b"), test_connection=False)

        run(scenario)
        for source_id in ("a", "b"):
            registry.cache_metadata(source_id, "x", 1)
            registry.cache_metadata(source_id, "y", 2)
        assert registry.clear_cache("a") == 2
        assert registry.get_cached_metadata("a", "x") is None
        assert registry.get_cached_metadata("b", "x") == 1
        assert registry.clear_cache() == 2
        assert registry.get_cached_metadata("b", "y") is None

    def test_listings_are_cached_for_the_ttl(self, fake_class: type[FakeConnector], monkeypatch: Any) -> None:
        clock = FakeClock()
        registry = DataSourceRegistry(discover=False, cache_ttl=10.0, clock=clock)
        registry.register_connector_class(fake_class)
        calls: list[str | None] = []
        original = fake_class.list_items

        async def counted(self: FakeConnector, prefix: str | None = None, **kwargs: Any) -> pd.DataFrame:
            calls.append(prefix)
            return await original(self, prefix, **kwargs)

        monkeypatch.setattr(fake_class, "list_items", counted)

        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            first = await registry.list_items("shop")
            first.loc[0, "name"] = "changed by the caller"
            again = await registry.list_items("shop")
            assert again["name"].tolist() == ["alpha", "beta", "gamma"]
            await registry.list_items("shop", refresh=True)
            clock.now += 10.0
            await registry.list_items("shop")
            await registry.describe("shop", "alpha")
            await registry.describe("shop", "alpha")

        run(scenario)
        assert calls == [None, None, None]

    def test_a_zero_ttl_disables_the_cache(self, fake_class: type[FakeConnector]) -> None:
        registry = DataSourceRegistry(discover=False, cache_ttl=0)
        registry.register_connector_class(fake_class)
        run(lambda: registry.register_data_source(fake_config("shop"), test_connection=False))
        registry.cache_metadata("shop", "k", 1)
        assert registry.get_cached_metadata("shop", "k") is None


# -- regressions of the implementation this package replaces -------------------------------------


class TestRegressions:
    def test_registry_work_does_not_block_the_loop(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        """A heartbeat keeps ticking while a slow connect runs; it alone lets the connect finish."""

        async def scenario() -> int:
            gate = service.gate("slow")
            ticks = 0

            async def heartbeat() -> None:
                nonlocal ticks
                while ticks < 5:
                    await asyncio.sleep(0.001)
                    ticks += 1
                gate.set()

            beating = asyncio.create_task(heartbeat())
            await asyncio.wait_for(registry.register_data_source(fake_config("slow")), HANG_GUARD)
            await beating
            return ticks

        assert run(scenario) == 5

    def test_acquire_and_release_do_not_deadlock(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        """Many users getting connectors while connections drop and are closed all finish."""

        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))

            async def user() -> None:
                for _ in range(20):
                    await registry.query("shop", "SELECT 1", limit=1)

            async def churn() -> None:
                for round_ in range(20):
                    if round_ % 2:
                        service.drop_connections("shop")
                    else:
                        await registry.disconnect("shop")
                    await asyncio.sleep(0)

            await asyncio.wait_for(asyncio.gather(churn(), *(user() for _ in range(10))), HANG_GUARD)

        run(scenario)
        assert len(service.queries) == 200
        assert service.open_connections() <= 1


# -- secrets stay out of errors, reprs and logs --------------------------------------------------


def error_texts(error: BaseException) -> str:
    """Everything an error can show: str, repr and args along its whole chain, and its traceback."""
    texts = ["".join(traceback.format_exception(error))]
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        texts += [str(current), repr(current), repr(current.args)]
        pending += [chained for chained in (current.__cause__, current.__context__) if chained is not None]
    return "\n".join(texts)


class TestSecretsStayOut:
    LEAKY_MESSAGES = [
        f"could not connect: password {PASSWORD} was rejected",
        f"connection failed\nDETAIL: tried the password {PASSWORD!r}",
    ]

    @pytest.mark.parametrize("message", LEAKY_MESSAGES)
    def test_a_failed_registration(
        self, registry: DataSourceRegistry, service: FakeService, message: str
    ) -> None:
        service.connect_errors["shop"] = RuntimeError(message)
        with pytest.raises(ConnectionFailed, match=r"^shop: RuntimeError: ") as caught:
            run(lambda: registry.register_data_source(fake_config("shop")))
        assert PASSWORD not in error_texts(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None

    @pytest.mark.parametrize("message", LEAKY_MESSAGES)
    def test_a_failed_connect(self, registry: DataSourceRegistry, service: FakeService, message: str) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"), test_connection=False)
            service.connect_errors["shop"] = RuntimeError(message)
            for operation in (
                lambda: registry.get_connector("shop"),
                lambda: registry.test_connection("shop"),
                lambda: registry.query("shop", "SELECT 1"),
            ):
                with pytest.raises(ConnectionFailed) as caught:
                    await operation()
                assert PASSWORD not in error_texts(caught.value)
            assert PASSWORD not in registry.status("shop")
            assert PASSWORD not in registry.sources_frame().to_string()

        run(scenario)

    def test_a_failed_update(self, registry: DataSourceRegistry, service: FakeService) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            service.connect_errors["shop"] = RuntimeError(f"rejected password {NEW_PASSWORD}")
            with pytest.raises(ConnectionFailed) as caught:
                await registry.update_data_source("shop", secrets={"password": NEW_PASSWORD})
            assert NEW_PASSWORD not in error_texts(caught.value)

        run(scenario)

    def test_a_package_error_with_a_secret_and_a_leaky_cause(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        try:
            try:
                raise OSError(f"socket error with {PASSWORD}")
            except OSError as library_error:
                raise AuthenticationFailed(f"refused {PASSWORD}", source="shop") from library_error
        except AuthenticationFailed as error:
            service.connect_errors["shop"] = error
        with pytest.raises(AuthenticationFailed, match=r"^shop: refused \*{8}$") as caught:
            run(lambda: registry.register_data_source(fake_config("shop")))
        assert PASSWORD not in error_texts(caught.value)

    def test_a_clean_package_error_with_a_leaky_cause(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        error = AuthenticationFailed("password authentication failed", source="shop")
        error.__cause__ = RuntimeError(f"libpq said {PASSWORD}")
        service.connect_errors["shop"] = error
        with pytest.raises(AuthenticationFailed, match=r"^shop: password authentication failed$") as caught:
            run(lambda: registry.register_data_source(fake_config("shop")))
        assert PASSWORD not in error_texts(caught.value)

    def test_a_clean_error_keeps_its_cause(self, registry: DataSourceRegistry, service: FakeService) -> None:
        service.connect_errors["shop"] = OSError("connection refused")
        with pytest.raises(ConnectionFailed) as caught:
            run(lambda: registry.register_data_source(fake_config("shop")))
        assert isinstance(caught.value.__cause__, OSError)

    def test_a_query_error_echoing_a_secret(self, registry: DataSourceRegistry, monkeypatch: Any) -> None:
        async def echoing_query(self: FakeConnector, sql: str, *args: Any, **kwargs: Any) -> pd.DataFrame:
            raise ValueError(f"syntax error at or near {sql!r}")

        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            monkeypatch.setattr(registry.connector_class("fake"), "query", echoing_query)
            with pytest.raises(QueryError) as caught:
                await registry.query("shop", f"ALTER USER ana PASSWORD '{PASSWORD}' oops")
            assert PASSWORD not in error_texts(caught.value)

        run(scenario)

    def test_no_repr_of_the_registry_state_shows_a_secret(self, registry: DataSourceRegistry) -> None:
        async def scenario() -> FakeConnector:
            await registry.register_data_source(fake_config("shop"))
            return await registry.get_connector("shop")  # type: ignore[return-value]

        connector = run(scenario)
        source = registry._sources["shop"]
        for text in (
            repr(registry),
            repr(source),
            repr(vars(source)),
            repr(connector),
            repr(connector.context),
        ):
            assert PASSWORD not in text

    def test_nothing_logs_or_prints_a_secret(
        self,
        registry: DataSourceRegistry,
        service: FakeService,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        caplog.set_level(logging.DEBUG)
        service.disconnect_errors["shop"] = RuntimeError(f"close failed, password {PASSWORD}")

        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"))
            await registry.get_connector("shop")
            service.drop_connections("shop")
            await registry.get_connector("shop")
            await registry.update_data_source("shop", secrets={"password": NEW_PASSWORD})
            service.connect_errors["other"] = RuntimeError(f"bad password {PASSWORD}")
            with pytest.raises(ConnectionFailed):
                await registry.register_data_source(fake_config("other"))
            service.accepted_password = "something else entirely"
            with pytest.raises(AuthenticationFailed):
                await registry.update_data_source("shop", secrets={"password": PASSWORD})
            await registry.disconnect_all()
            await registry.unregister_data_source("shop")

        run(scenario)
        assert caplog.records, "the registry logs what it does"
        logged = caplog.text + "\n".join(
            f"{record.getMessage()} {record.args!r}" for record in caplog.records
        )
        captured = capsys.readouterr()
        for secret in (PASSWORD, NEW_PASSWORD):
            assert secret not in logged
            assert secret not in captured.out + captured.err


class TestCheckDataSource:
    def test_checks_a_config_without_registering_it(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        answer = run(lambda: registry.check_data_source(fake_config("trial")))
        assert answer == "fake server at db.example:5432"
        assert not registry.exists("trial")
        assert service.connects == ["trial"]
        assert service.open_connections() == 0  # the trial connection was closed again
        assert registry.redactor.contains_secret(PASSWORD)  # a checked secret stays masked

    def test_a_failed_check_raises_without_the_secret_and_registers_nothing(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        service.connect_errors["trial"] = RuntimeError(f"server said: bad password {PASSWORD}")
        with pytest.raises(ConnectionFailed) as caught:
            run(lambda: registry.check_data_source(fake_config("trial")))
        assert PASSWORD not in "".join(traceback.format_exception(caught.value))
        assert not registry.exists("trial")
        assert service.open_connections() == 0

    def test_checking_an_id_in_use_leaves_that_source_alone(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> str:
            await registry.register_data_source(fake_config("db"))
            return await registry.check_data_source(fake_config("db", password=NEW_PASSWORD))

        assert run(scenario) == "fake server at db.example:5432"
        assert registry.exists("db")
        assert service.passwords_seen == [PASSWORD, NEW_PASSWORD]
        assert registry.redactor.contains_secret(PASSWORD)

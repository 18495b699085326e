"""A fake connector for the core's unit tests: it records what the registry asks of it.

Each test makes its own :class:`FakeService` and a connector class bound to it with
:func:`fake_connector_class`, so no state is shared between tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from deepanalyze_jupyter.connectors import Connector, SourceContext
from deepanalyze_jupyter.errors import AuthenticationFailed
from deepanalyze_jupyter.models import OptionSpec

FAKE_OPTIONS = (
    OptionSpec("host", required=True, help="where the fake server is"),
    OptionSpec("port", int, default=5432),
    OptionSpec("database", default="main"),
    OptionSpec("password", secret=True),
    OptionSpec("token", secret=True),
)


@dataclass
class FakeService:
    """The pretend server behind every fake connector of one test."""

    #: When set, connect refuses any other password with AuthenticationFailed.
    accepted_password: str | None = None
    #: source id -> exception that connect raises for it.
    connect_errors: dict[str, BaseException] = field(default_factory=dict)
    #: source id -> event that connect waits for before it succeeds.
    connect_gates: dict[str, asyncio.Event] = field(default_factory=dict)
    #: source id -> event set as soon as a connect of that source begins.
    connect_started: dict[str, asyncio.Event] = field(default_factory=dict)
    #: source id -> exception that disconnect raises for it.
    disconnect_errors: dict[str, BaseException] = field(default_factory=dict)
    connects: list[str] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)
    passwords_seen: list[str | None] = field(default_factory=list)
    queries: list[tuple[str, str]] = field(default_factory=list)
    live: list[FakeConnector] = field(default_factory=list)

    def started(self, source_id: str) -> asyncio.Event:
        """The event set when a connect of ``source_id`` begins (made on first ask)."""
        return self.connect_started.setdefault(source_id, asyncio.Event())

    def gate(self, source_id: str) -> asyncio.Event:
        """Make connects of ``source_id`` wait until the returned event is set."""
        return self.connect_gates.setdefault(source_id, asyncio.Event())

    def drop_connections(self, source_id: str) -> None:
        """Pretend the server closed every connection of ``source_id``."""
        for connector in self.live:
            if connector.source_id == source_id:
                connector.alive = False

    def open_connections(self, source_id: str | None = None) -> int:
        """How many connectors are connected and not yet disconnected."""
        return sum(1 for c in self.live if c.connected and source_id in (None, c.source_id))


class FakeConnector(Connector):
    """An SQL-like connector that talks to a :class:`FakeService` instead of a server."""

    type_name = "fake"
    display_name = "Fake"
    kind = "sql"
    option_specs = FAKE_OPTIONS
    service: ClassVar[FakeService]

    def __init__(self, context: SourceContext) -> None:
        super().__init__(context)
        self.alive = False
        self.connected = False

    async def connect(self) -> None:
        service = self.service
        service.started(self.source_id).set()
        service.connects.append(self.source_id)
        password = self.context.secrets.reveal("password")
        service.passwords_seen.append(password)
        gate = service.connect_gates.get(self.source_id)
        if gate is not None:
            await gate.wait()
        error = service.connect_errors.get(self.source_id)
        if error is not None:
            raise error
        if service.accepted_password is not None and password != service.accepted_password:
            raise AuthenticationFailed("password authentication failed", source=self.source_id)
        self.alive = self.connected = True
        service.live.append(self)

    async def disconnect(self) -> None:
        if self.connected:
            self.service.disconnects.append(self.source_id)
        self.alive = self.connected = False
        error = self.service.disconnect_errors.get(self.source_id)
        if error is not None:
            raise error

    async def is_alive(self) -> bool:
        return self.alive

    async def test_connection(self) -> str:
        return f"fake server at {self.options['host']}:{self.options['port']}"

    async def list_items(
        self, prefix: str | None = None, *, recursive: bool = False, limit: int | None = None
    ) -> pd.DataFrame:
        names = ["alpha", "beta", "gamma"]
        if prefix:
            names = [name for name in names if name.startswith(prefix)]
        return pd.DataFrame({"name": pd.array(names[:limit], dtype="string")})

    async def describe(self, item: str) -> pd.DataFrame:
        return pd.DataFrame({"column": pd.array(["id"], dtype="string"), "item": [item]})

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> pd.DataFrame:
        self.service.queries.append((self.source_id, sql))
        await asyncio.sleep(0)
        values = list(range(10))[:limit]
        return pd.DataFrame({"n": values, "limit": [limit] * len(values)})

    async def read(
        self,
        paths: Sequence[str],
        *,
        format: str | None = None,
        limit: int | None = None,
        source_column: str | None = None,
        reader_options: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        return pd.DataFrame({"path": list(paths), "format": [format] * len(paths)})


def fake_connector_class(service: FakeService, type_name: str = "fake") -> type[FakeConnector]:
    """A :class:`FakeConnector` subclass bound to ``service``, registered as ``type_name``."""
    return type(
        "BoundFakeConnector",
        (FakeConnector,),
        {"service": service, "type_name": type_name, "__module__": __name__},
    )
